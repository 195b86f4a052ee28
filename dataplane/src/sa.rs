//! Security associations: what IKE negotiated, turned into per-packet encapsulation/decapsulation.

use crate::crypto::{Cipher, Encr, Integ, KeyError};
use crate::replay::{ReplayError, ReplayWindow};
use crate::wire::esp;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

/// ESP mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Whole inner IP packet protected (SVTI).
    Tunnel,
    /// Upper-layer payload protected (GRE tunnel protection); the caller builds the outer IP header.
    Transport,
}

/// SA lifetimes (RFC 4301 §4.4.2.1). `None` = no limit of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lifetime {
    pub soft_bytes: Option<u64>,
    pub hard_bytes: Option<u64>,
    pub soft_time: Option<Duration>,
    pub hard_time: Option<Duration>,
}

impl Lifetime {
    /// IOS style: `set security-association lifetime kilobytes K seconds S` as the hard limits, with
    /// soft limits at 90 % so IKE can rekey before expiry (IOS defaults: 4608000 KB / 3600 s).
    pub fn from_ios(kilobytes: u64, seconds: u64) -> Self {
        let hard_bytes = kilobytes.saturating_mul(1024);
        Self {
            soft_bytes: Some(hard_bytes / 10 * 9),
            hard_bytes: Some(hard_bytes),
            soft_time: Some(Duration::from_secs(seconds) / 10 * 9),
            hard_time: Some(Duration::from_secs(seconds)),
        }
    }

    /// No limits.
    pub const fn unlimited() -> Self {
        Self {
            soft_bytes: None,
            hard_bytes: None,
            soft_time: None,
            hard_time: None,
        }
    }
}

/// Everything needed to build one direction of a child SA, as IKE hands it over.
#[derive(Clone)]
pub struct SaParams<'k> {
    pub spi: u32,
    pub encr: Encr,
    pub integ: Option<Integ>,
    /// Encryption key; for GCM followed by the 4-byte salt (RFC 4106 §8.1).
    pub enc_key: &'k [u8],
    pub integ_key: &'k [u8],
    pub esn: bool,
    pub mode: Mode,
    /// Anti-replay window in packets (inbound only); 0 = disabled.
    pub replay_window: u32,
    pub lifetime: Lifetime,
    /// `set security-association idle-time`: no traffic on the SA pair for this long raises an
    /// idle event.
    pub idle_timeout: Option<Duration>,
}

impl std::fmt::Debug for SaParams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaParams")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("encr", &self.encr)
            .field("integ", &self.integ)
            .field("enc_key_len", &self.enc_key.len())
            .field("integ_key_len", &self.integ_key.len())
            .field("esn", &self.esn)
            .field("mode", &self.mode)
            .field("replay_window", &self.replay_window)
            .field("lifetime", &self.lifetime)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

/// Building an SA failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("SPI 0 is reserved")]
    ZeroSpi,
}

/// Why a packet was not forwarded. Indexes the drop counters (`DropReason as usize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than ESP header + IV + one block + ICV, or misaligned.
    Truncated,
    /// No inbound SA for this SPI.
    InvalidSpi,
    /// Sequence number already seen (anti-replay).
    Replay,
    /// Sequence number left of the window (anti-replay).
    ReplayTooOld,
    /// ICV / AEAD tag mismatch.
    Integrity,
    /// Padding bytes or pad length malformed after decryption.
    BadPadding,
    /// Decrypted next header is not an IP protocol the tunnel carries.
    BadNextHeader,
    /// Decrypted inner packet is not a well-formed IP packet.
    BadInnerPacket,
    /// The SA reached its hard lifetime (or the 32-bit sequence space is exhausted).
    SaExpired,
    /// The caller's buffer has no room for ESP headers/trailers.
    BufferTooSmall,
    /// The tunnel has no SA and the acquire queue is full.
    QueueFull,
    /// The acquire attempt failed; queued packets were discarded.
    AcquireFailed,
    /// Too big for the tunnel with DF set: an ICMP "fragmentation needed" goes back instead.
    TooBig,
    /// Outer header had CE while the inner packet is Not-ECT (RFC 6040 §4.2).
    EcnDrop,
    /// Not an ESP packet (IKE or garbage on the NAT-T port).
    NotEsp,
    /// Crypto backend failure on seal.
    SealFailed,
}

impl DropReason {
    /// Number of variants (size of counter arrays).
    pub const COUNT: usize = 16;

    /// All reasons, in counter order.
    pub const ALL: [DropReason; Self::COUNT] = [
        Self::Truncated,
        Self::InvalidSpi,
        Self::Replay,
        Self::ReplayTooOld,
        Self::Integrity,
        Self::BadPadding,
        Self::BadNextHeader,
        Self::BadInnerPacket,
        Self::SaExpired,
        Self::BufferTooSmall,
        Self::QueueFull,
        Self::AcquireFailed,
        Self::TooBig,
        Self::EcnDrop,
        Self::NotEsp,
        Self::SealFailed,
    ];
}

/// A lifetime threshold newly crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Soft limit: time to rekey.
    Soft,
    /// Hard limit: the SA is dead.
    Hard,
}

/// Per-SA counters (`show crypto ipsec sa`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaCounters {
    /// Packets (`#pkts encaps` / `#pkts decaps`).
    pub packets: u64,
    /// Inner bytes protected or recovered.
    pub bytes: u64,
    /// Outbound: seal failures; inbound: packets dropped by this SA.
    pub errors: u64,
    /// Inbound: anti-replay rejections.
    pub replay_failures: u64,
    /// Inbound: ICV failures.
    pub auth_failures: u64,
    /// Inbound: RFC 4303 §2.6 dummy packets (next header 59).
    pub dummy_packets: u64,
}

#[derive(Debug)]
struct LifeTracker {
    lifetime: Lifetime,
    installed: Instant,
    soft_fired: bool,
    hard_fired: bool,
    /// The hard limits as the per-packet check reads them (`u64::MAX` / `None` = none).
    hard_bytes: u64,
    hard_at: Option<Instant>,
}

impl LifeTracker {
    fn new(lifetime: Lifetime, now: Instant) -> Self {
        Self {
            lifetime,
            installed: now,
            soft_fired: false,
            hard_fired: false,
            hard_bytes: lifetime.hard_bytes.unwrap_or(u64::MAX),
            hard_at: lifetime.hard_time.and_then(|t| now.checked_add(t)),
        }
    }

    #[inline]
    fn hard_reached(&self, now: Instant, bytes: u64) -> bool {
        bytes >= self.hard_bytes || self.hard_at.is_some_and(|t| now >= t)
    }

    fn soft_reached(&self, now: Instant, bytes: u64) -> bool {
        self.lifetime.soft_bytes.is_some_and(|b| bytes >= b)
            || self
                .lifetime
                .soft_time
                .is_some_and(|t| now >= self.installed + t)
    }

    fn poll(&mut self, now: Instant, bytes: u64) -> Option<Expiry> {
        if !self.hard_fired && self.hard_reached(now, bytes) {
            self.hard_fired = true;
            self.soft_fired = true;
            return Some(Expiry::Hard);
        }
        if !self.soft_fired && self.soft_reached(now, bytes) {
            self.soft_fired = true;
            return Some(Expiry::Soft);
        }
        None
    }

    fn next_deadline(&self) -> Option<Instant> {
        let soft = (!self.soft_fired)
            .then_some(self.lifetime.soft_time)
            .flatten();
        let hard = (!self.hard_fired)
            .then_some(self.lifetime.hard_time)
            .flatten();
        [soft, hard]
            .into_iter()
            .flatten()
            .map(|d| self.installed + d)
            .min()
    }

    fn remaining(&self, now: Instant, bytes: u64) -> (Option<u64>, Option<Duration>) {
        (
            self.lifetime.hard_bytes.map(|b| b.saturating_sub(bytes)),
            self.lifetime
                .hard_time
                .map(|t| (self.installed + t).saturating_duration_since(now)),
        )
    }
}

/// The alignment [`OutboundSa::encapsulate`] pads the ESP plaintext (payload, padding, pad length,
/// next header) to when it may. AES-GCM needs only 4 (RFC 4106 §3.2), but `ring` seals a trailing
/// partial 16-byte block much more slowly than whole blocks (AES-128-GCM, one core: 68 bytes 110 ns,
/// 80 bytes 82 ns; 516 bytes 156 ns, 528 bytes 135 ns; 1404 bytes 247 ns, 1408 bytes 209 ns; see
/// docs/performance.md), so up to 12 more padding bytes on the wire buy 15–25 % per packet. RFC 4303
/// §2.4 allows padding beyond the minimum; the receiver (ours, strongSwan, Linux, IOS) only reads the
/// pad length.
pub const PREFERRED_ALIGN: usize = 16;

/// Padding content 1, 2, 3, ... (RFC 4303 §2.4), copied rather than counted per packet.
static PAD_BYTES: [u8; 255] = {
    let mut t = [0u8; 255];
    let mut i = 0;
    while i < 255 {
        t[i] = (i + 1) as u8;
        i += 1;
    }
    t
};

/// The sending half of a child SA.
#[derive(Debug)]
pub struct OutboundSa {
    spi: u32,
    cipher: Cipher,
    esn: bool,
    mode: Mode,
    /// Last sequence number used (0 = none yet).
    seq: u64,
    life: LifeTracker,
    idle_timeout: Option<Duration>,
    counters: SaCounters,
    last_used: Instant,
}

/// Result of a successful decapsulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decapsulated {
    /// The inner payload (an IP packet in tunnel mode) inside the caller's buffer.
    pub range: Range<usize>,
    /// The ESP next-header value.
    pub next_header: u8,
    /// The authenticated full sequence number.
    pub seq: u64,
    /// `seq` is higher than every sequence number this SA authenticated before: the newest packet, not
    /// one that arrived late (reordered) inside the replay window. Only the newest may move the peer's
    /// address (RFC 7296 §2.23, as RFC 4555 §3.5 for MOBIKE: an older packet from the old address
    /// must not undo the move).
    pub newest: bool,
}

impl OutboundSa {
    pub fn new(now: Instant, p: &SaParams<'_>) -> Result<Self, SaError> {
        if p.spi == 0 {
            return Err(SaError::ZeroSpi);
        }
        Ok(Self {
            spi: p.spi,
            cipher: Cipher::new(p.encr, p.integ, p.enc_key, p.integ_key)?,
            esn: p.esn,
            mode: p.mode,
            seq: 0,
            life: LifeTracker::new(p.lifetime, now),
            idle_timeout: p.idle_timeout,
            counters: SaCounters::default(),
            last_used: now,
        })
    }

    pub fn spi(&self) -> u32 {
        self.spi
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    pub fn counters(&self) -> SaCounters {
        self.counters
    }

    pub fn last_used(&self) -> Instant {
        self.last_used
    }

    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// Last sequence number sent.
    pub fn sequence(&self) -> u64 {
        self.seq
    }

    /// Test/bench hook: continue numbering after `seq` (e.g. to exercise ESN wrap).
    pub fn set_sequence(&mut self, seq: u64) {
        self.seq = seq;
    }

    /// ESP bytes [`Self::encapsulate`] adds around a payload of `len` bytes (header, IV, padding,
    /// trailer, ICV) when neither the buffer nor a length limit forces the minimum padding.
    pub fn overhead(&self, len: usize) -> usize {
        let padded = (len + 2).div_ceil(PREFERRED_ALIGN) * PREFERRED_ALIGN;
        esp::HEADER_LEN + self.cipher.iv_len() + padded - len + self.cipher.icv_len()
    }

    /// The largest inner payload that fits in `outer_mtu` bytes of ESP (after outer IP/UDP headers
    /// are subtracted by the caller), padding and trailer included.
    pub fn max_payload(&self, esp_room: usize) -> usize {
        let blk = self.cipher.block_len();
        let room =
            esp_room.saturating_sub(esp::HEADER_LEN + self.cipher.iv_len() + self.cipher.icv_len());
        (room / blk * blk).saturating_sub(2)
    }

    /// Newly crossed lifetime threshold, if any (call after traffic and on timeouts).
    pub fn poll_expiry(&mut self, now: Instant) -> Option<Expiry> {
        self.life.poll(now, self.counters.bytes)
    }

    /// Next time-based lifetime deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.life.next_deadline()
    }

    /// Remaining hard lifetime (bytes, time) for `sa timing: remaining key lifetime (k/sec)`.
    pub fn remaining(&self, now: Instant) -> (Option<u64>, Option<Duration>) {
        self.life.remaining(now, self.counters.bytes)
    }

    /// Encapsulates `buf[payload]` in place as ESP. The payload must have [`crate::HEADROOM`] bytes
    /// before it and [`crate::TAILROOM`] after it inside `buf` (if the headroom is short but the buffer
    /// is long enough, the payload is moved). Returns the range of the ESP packet (SPI to ICV).
    ///
    /// The plaintext is padded to a multiple of 16 bytes (see [`PREFERRED_ALIGN`]) when that fits the
    /// buffer; [`Self::encapsulate_within`] also bounds the ESP packet's length.
    #[inline]
    pub fn encapsulate(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        payload: Range<usize>,
        next_header: u8,
    ) -> Result<Range<usize>, DropReason> {
        self.encapsulate_within(now, buf, payload, next_header, usize::MAX)
    }

    /// [`Self::encapsulate`], with extra padding only while the ESP packet (SPI to ICV) stays within
    /// `max_len` bytes (the room the path MTU leaves after the outer headers). The minimum padding
    /// the transform requires is always used, whatever `max_len` says: the caller checks the inner
    /// packet against [`Self::max_payload`] first.
    pub fn encapsulate_within(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        payload: Range<usize>,
        next_header: u8,
        max_len: usize,
    ) -> Result<Range<usize>, DropReason> {
        if self.life.hard_fired || self.life.hard_reached(now, self.counters.bytes) {
            return Err(DropReason::SaExpired);
        }
        if payload.start > payload.end || payload.end > buf.len() {
            return Err(DropReason::BufferTooSmall);
        }
        //= https://www.rfc-editor.org/rfc/rfc4303#section-3.3.3
        //# If anti-replay is enabled (the default), the sender checks to ensure that the counter
        //# has not cycled before inserting the new value in the Sequence Number field.
        let next = self.seq.wrapping_add(1);
        if next == 0 || (!self.esn && next > u64::from(u32::MAX)) {
            self.life.hard_fired = true;
            return Err(DropReason::SaExpired);
        }
        let len = payload.len();
        let iv_len = self.cipher.iv_len();
        let icv_len = self.cipher.icv_len();
        let blk = self.cipher.block_len();
        let head = esp::HEADER_LEN + iv_len;
        let mut padded = (len + 2).div_ceil(blk) * blk;
        if blk < PREFERRED_ALIGN {
            let wide = (len + 2).div_ceil(PREFERRED_ALIGN) * PREFERRED_ALIGN;
            let wide_total = head + wide + icv_len;
            if wide_total <= max_len && payload.start.max(head) - head + wide_total <= buf.len() {
                padded = wide;
            }
        }
        let pad_len = padded - len - 2;
        let total = head + padded + icv_len;
        let mut start = payload.start;
        if start < head {
            if head + len + (total - head - len) > buf.len() {
                return Err(DropReason::BufferTooSmall);
            }
            buf.copy_within(payload.clone(), head);
            start = head;
        }
        let esp_start = start - head;
        let esp_end = esp_start + total;
        if esp_end > buf.len() {
            return Err(DropReason::BufferTooSmall);
        }
        let pkt = &mut buf[esp_start..esp_end];
        pkt[..4].copy_from_slice(&self.spi.to_be_bytes());
        pkt[4..8].copy_from_slice(&(next as u32).to_be_bytes());
        //= https://www.rfc-editor.org/rfc/rfc4303#section-2.4
        //# the Padding bytes are initialized with a series of (unsigned, 1-byte) integer values.
        //# The first padding byte appended to the plaintext is numbered 1
        let trailer = head + len;
        pkt[trailer..trailer + pad_len].copy_from_slice(&PAD_BYTES[..pad_len]);
        pkt[trailer + pad_len] = pad_len as u8;
        pkt[trailer + pad_len + 1] = next_header;
        if self.cipher.seal(pkt, next, self.esn).is_err() {
            self.counters.errors += 1;
            return Err(DropReason::SealFailed);
        }
        self.seq = next;
        self.counters.packets += 1;
        self.counters.bytes += len as u64;
        self.last_used = now;
        Ok(esp_start..esp_end)
    }
}

/// The receiving half of a child SA.
#[derive(Debug)]
pub struct InboundSa {
    spi: u32,
    cipher: Cipher,
    mode: Mode,
    esn: bool,
    replay: ReplayWindow,
    life: LifeTracker,
    counters: SaCounters,
    last_used: Instant,
}

impl InboundSa {
    pub fn new(now: Instant, p: &SaParams<'_>) -> Result<Self, SaError> {
        if p.spi == 0 {
            return Err(SaError::ZeroSpi);
        }
        Ok(Self {
            spi: p.spi,
            cipher: Cipher::new(p.encr, p.integ, p.enc_key, p.integ_key)?,
            mode: p.mode,
            esn: p.esn,
            replay: ReplayWindow::new(p.replay_window, p.esn),
            life: LifeTracker::new(p.lifetime, now),
            counters: SaCounters::default(),
            last_used: now,
        })
    }

    pub fn spi(&self) -> u32 {
        self.spi
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    pub fn counters(&self) -> SaCounters {
        self.counters
    }

    pub fn replay_window(&self) -> &ReplayWindow {
        &self.replay
    }

    pub fn last_used(&self) -> Instant {
        self.last_used
    }

    pub fn poll_expiry(&mut self, now: Instant) -> Option<Expiry> {
        self.life.poll(now, self.counters.bytes)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.life.next_deadline()
    }

    pub fn remaining(&self, now: Instant) -> (Option<u64>, Option<Duration>) {
        self.life.remaining(now, self.counters.bytes)
    }

    /// Verifies and decrypts `buf[esp]` (an ESP packet from the SPI on) in place.
    #[inline]
    pub fn decapsulate(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        esp: Range<usize>,
    ) -> Result<Decapsulated, DropReason> {
        let r = self.decapsulate_inner(now, buf, esp);
        if r.is_err() {
            self.counters.errors += 1;
        }
        r
    }

    fn decapsulate_inner(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        esp_range: Range<usize>,
    ) -> Result<Decapsulated, DropReason> {
        let pkt = buf
            .get_mut(esp_range.clone())
            .ok_or(DropReason::Truncated)?;
        let view = esp::Packet::new_checked(&*pkt).map_err(|_| DropReason::Truncated)?;
        if view.spi() != self.spi {
            return Err(DropReason::InvalidSpi);
        }
        let iv_len = self.cipher.iv_len();
        let icv_len = self.cipher.icv_len();
        let blk = self.cipher.block_len();
        let min = esp::HEADER_LEN + iv_len + blk + icv_len;
        if pkt.len() < min || !(pkt.len() - esp::HEADER_LEN - iv_len - icv_len).is_multiple_of(blk)
        {
            return Err(DropReason::Truncated);
        }
        if self.life.hard_fired || self.life.hard_reached(now, self.counters.bytes) {
            return Err(DropReason::SaExpired);
        }
        //= https://www.rfc-editor.org/rfc/rfc4303#section-3.4.3
        //# If the received packet falls within the window and is not a duplicate, or if the packet
        //# is to the right of the window, then the receiver proceeds to ICV verification.
        let seq = match self.replay.check(view.sequence_number()) {
            Ok(s) => s,
            Err(e) => {
                self.counters.replay_failures += 1;
                return Err(match e {
                    ReplayError::Duplicate => DropReason::Replay,
                    ReplayError::TooOld | ReplayError::Zero => DropReason::ReplayTooOld,
                });
            }
        };
        if self.cipher.open(pkt, seq, self.esn).is_err() {
            self.counters.auth_failures += 1;
            return Err(DropReason::Integrity);
        }
        //= https://www.rfc-editor.org/rfc/rfc4303#section-3.4.3
        //# The receive window is updated only if the ICV verification succeeds.
        let newest = seq > self.replay.top();
        self.replay.accept(seq);
        let body_end = pkt.len() - icv_len;
        let next_header = pkt[body_end - 1];
        let pad_len = usize::from(pkt[body_end - 2]);
        let data_start = esp::HEADER_LEN + iv_len;
        let data_end = body_end
            .checked_sub(2 + pad_len)
            .filter(|&e| e >= data_start)
            .ok_or(DropReason::BadPadding)?;
        //= https://www.rfc-editor.org/rfc/rfc4303#section-2.4
        //# the receiver SHOULD inspect the Padding field.
        if pkt[data_end..data_end + pad_len]
            .iter()
            .enumerate()
            .any(|(i, &b)| b != (i + 1) as u8)
        {
            return Err(DropReason::BadPadding);
        }
        self.counters.packets += 1;
        self.last_used = now;
        let range = esp_range.start + data_start..esp_range.start + data_end;
        //= https://www.rfc-editor.org/rfc/rfc4303#section-2.6
        //# A transmitter MUST be capable of generating dummy packets marked with this value in
        //# the next protocol field, and a receiver MUST be prepared to discard such packets
        if next_header == crate::wire::IpProtocol::NO_NEXT_HEADER.0 {
            self.counters.dummy_packets += 1;
        } else {
            self.counters.bytes += range.len() as u64;
        }
        Ok(Decapsulated {
            range,
            next_header,
            seq,
            newest,
        })
    }
}

/// An ESP packet no SA owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownSpi {
    /// The SPI, if the packet had an ESP header at all.
    pub spi: Option<u32>,
    pub from: SocketAddr,
    /// Whether IKE should send an INVALID_SPI notification now (at most one per second, RFC 7296
    /// §2.21.1 asks for rate limiting; the packet is counted either way).
    pub notify: bool,
}

/// Inbound SPI → owner (e.g. tunnel id) map, for a socket shared by several tunnels.
#[derive(Debug, Default)]
pub struct SaDb<T> {
    by_spi: HashMap<u32, T>,
    invalid_spi: u64,
    last_notify: Option<Instant>,
}

impl<T: Copy> SaDb<T> {
    pub fn new() -> Self {
        Self {
            by_spi: HashMap::new(),
            invalid_spi: 0,
            last_notify: None,
        }
    }

    pub fn insert(&mut self, spi: u32, owner: T) {
        self.by_spi.insert(spi, owner);
    }

    pub fn remove(&mut self, spi: u32) -> Option<T> {
        self.by_spi.remove(&spi)
    }

    /// Finds the owner of an ESP packet. Unknown SPI (or no ESP header): counted, and reported as
    /// [`UnknownSpi`] so the coordinator can have IKE send INVALID_SPI when `notify` is set.
    pub fn lookup(
        &mut self,
        now: Instant,
        esp_packet: &[u8],
        from: SocketAddr,
    ) -> Result<T, UnknownSpi> {
        let spi = esp::peek_spi(esp_packet);
        if let Some(&t) = spi.and_then(|s| self.by_spi.get(&s)) {
            return Ok(t);
        }
        self.invalid_spi += 1;
        let notify = spi.is_some()
            && self
                .last_notify
                .is_none_or(|t| now >= t + Duration::from_secs(1));
        if notify {
            self.last_notify = Some(now);
        }
        Err(UnknownSpi { spi, from, notify })
    }

    /// Packets with an unknown SPI so far.
    pub fn invalid_spi_count(&self) -> u64 {
        self.invalid_spi
    }

    pub fn len(&self) -> usize {
        self.by_spi.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_spi.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::AesKeyLen;
    use crate::crypto::tests::{MCGREW3_KEY, MCGREW3_PLAIN, MCGREW3_WIRE, hex};
    use crate::{HEADROOM, TAILROOM};

    pub(crate) fn params<'k>(
        spi: u32,
        encr: Encr,
        integ: Option<Integ>,
        ek: &'k [u8],
        ik: &'k [u8],
    ) -> SaParams<'k> {
        SaParams {
            spi,
            encr,
            integ,
            enc_key: ek,
            integ_key: ik,
            esn: false,
            mode: Mode::Tunnel,
            replay_window: 64,
            lifetime: Lifetime::unlimited(),
            idle_timeout: None,
        }
    }

    fn all_transforms() -> Vec<(Encr, Option<Integ>)> {
        let mut v = vec![
            (Encr::AesGcm16(AesKeyLen::Aes128), None),
            (Encr::AesGcm16(AesKeyLen::Aes256), None),
        ];
        for k in [AesKeyLen::Aes128, AesKeyLen::Aes192, AesKeyLen::Aes256] {
            for i in [
                Integ::HmacSha1_96,
                Integ::HmacSha256_128,
                Integ::HmacSha384_192,
                Integ::HmacSha512_256,
            ] {
                v.push((Encr::AesCbc(k), Some(i)));
            }
        }
        v
    }

    fn pair(encr: Encr, integ: Option<Integ>, esn: bool, now: Instant) -> (OutboundSa, InboundSa) {
        let ek = vec![0x11; encr.key_material_len()];
        let ik = vec![0x22; integ.map_or(0, |i| i.key_len())];
        let mut p = params(0x1000_0001, encr, integ, &ek, &ik);
        p.esn = esn;
        (
            OutboundSa::new(now, &p).unwrap(),
            InboundSa::new(now, &p).unwrap(),
        )
    }

    #[test]
    fn every_transform_round_trips_every_length() {
        let now = crate::test_origin();
        for (encr, integ) in all_transforms() {
            for esn in [false, true] {
                let (mut out, mut inb) = pair(encr, integ, esn, now);
                for len in [0usize, 1, 2, 3, 13, 14, 15, 16, 17, 63, 64, 1400] {
                    let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
                    let mut buf = vec![0u8; HEADROOM + len + TAILROOM];
                    buf[HEADROOM..HEADROOM + len].copy_from_slice(&payload);
                    let r = out
                        .encapsulate(now, &mut buf, HEADROOM..HEADROOM + len, 4)
                        .unwrap();
                    assert_eq!(r.len(), len + out.overhead(len), "{encr:?} {len}");
                    // Ciphertext part aligned to the transform block size.
                    let ct = r.len() - 8 - out.cipher().iv_len() - out.cipher().icv_len();
                    assert_eq!(ct % out.cipher().block_len(), 0);
                    let d = inb.decapsulate(now, &mut buf, r).unwrap();
                    assert_eq!(
                        &buf[d.range.clone()],
                        &payload[..],
                        "{encr:?} {integ:?} {len}"
                    );
                    assert_eq!(d.next_header, 4);
                }
                assert_eq!(inb.counters().packets, 12);
                assert_eq!(out.counters().packets, 12);
            }
        }
    }

    #[test]
    fn decapsulates_mcgrew_case3_packet_and_reports_next_header() {
        let now = crate::test_origin();
        let key = hex(MCGREW3_KEY);
        let mut p = params(
            0x4a2c_bfe3,
            Encr::AesGcm16(AesKeyLen::Aes256),
            None,
            &key,
            &[],
        );
        p.replay_window = 64;
        let mut inb = InboundSa::new(now, &p).unwrap();
        let mut buf = hex(MCGREW3_WIRE);
        let len = buf.len();
        let d = inb.decapsulate(now, &mut buf, 0..len).unwrap();
        // The draft's plaintext ends with padding 01 02, pad length 2, next header 1.
        let plain = hex(MCGREW3_PLAIN);
        assert_eq!(&buf[d.range.clone()], &plain[..plain.len() - 4]);
        assert_eq!(d.next_header, 1);
        assert_eq!(d.seq, 2);
        // Replaying it fails the anti-replay check before any crypto.
        let mut again = hex(MCGREW3_WIRE);
        assert_eq!(
            inb.decapsulate(now, &mut again, 0..len),
            Err(DropReason::Replay)
        );
        assert_eq!(inb.counters().replay_failures, 1);
    }

    /// `newest` marks a packet above every sequence number seen before, not a late one inside the window
    /// (the NAT rebinding of protected GRE follows only the newest, `GreEsp::open`).
    #[test]
    fn only_a_packet_above_the_highest_sequence_number_is_the_newest() {
        let now = crate::test_origin();
        for replay_window in [64, 0] {
            let ek = [0x11; 20];
            let mut p = params(
                0x1000_0002,
                Encr::AesGcm16(AesKeyLen::Aes128),
                None,
                &ek,
                &[],
            );
            p.replay_window = replay_window;
            let mut out = OutboundSa::new(now, &p).unwrap();
            let mut inb = InboundSa::new(now, &p).unwrap();
            let mut sealed: Vec<(Vec<u8>, Range<usize>)> = (0..4)
                .map(|_| {
                    let mut buf = vec![0u8; HEADROOM + 20 + TAILROOM];
                    let r = out
                        .encapsulate(now, &mut buf, HEADROOM..HEADROOM + 20, 4)
                        .unwrap();
                    (buf, r)
                })
                .collect();
            let mut open = |i: usize| {
                let (buf, r) = &mut sealed[i];
                let d = inb.decapsulate(now, buf, r.clone()).unwrap();
                (d.seq, d.newest)
            };
            assert_eq!(open(1), (2, true), "window {replay_window}");
            assert_eq!(open(2), (3, true));
            // Sequence number 1 arrives late, inside the window: authentic, but not the newest.
            assert_eq!(open(0), (1, false));
            assert_eq!(open(3), (4, true));
        }
    }

    #[test]
    fn tampered_packet_fails_integrity_and_does_not_move_window() {
        let now = crate::test_origin();
        for (encr, integ) in all_transforms() {
            let (mut out, mut inb) = pair(encr, integ, false, now);
            let mut buf = vec![0u8; HEADROOM + 100 + TAILROOM];
            let r = out
                .encapsulate(now, &mut buf, HEADROOM..HEADROOM + 100, 4)
                .unwrap();
            let mut bad = buf.clone();
            bad[r.start + 30] ^= 0x80;
            assert_eq!(
                inb.decapsulate(now, &mut bad, r.clone()),
                Err(DropReason::Integrity)
            );
            // Forged high sequence number: rejected, and the genuine packet 1 still accepted.
            let mut forged = buf.clone();
            forged[r.start + 4..r.start + 8].copy_from_slice(&1000u32.to_be_bytes());
            assert_eq!(
                inb.decapsulate(now, &mut forged, r.clone()),
                Err(DropReason::Integrity)
            );
            assert!(inb.decapsulate(now, &mut buf, r).is_ok());
            assert_eq!(inb.counters().auth_failures, 2);
        }
    }

    #[test]
    fn esn_round_trip_across_the_32_bit_wrap() {
        let now = crate::test_origin();
        for (encr, integ) in [
            (Encr::AesGcm16(AesKeyLen::Aes128), None),
            (Encr::AesCbc(AesKeyLen::Aes128), Some(Integ::HmacSha1_96)),
        ] {
            let (mut out, mut inb) = pair(encr, integ, true, now);
            out.set_sequence(u64::from(u32::MAX) - 3);
            inb.replay.assume_received(u64::from(u32::MAX) - 3);
            for _ in 0..8 {
                let mut buf = vec![0u8; HEADROOM + 40 + TAILROOM];
                let r = out
                    .encapsulate(now, &mut buf, HEADROOM..HEADROOM + 40, 4)
                    .unwrap();
                let d = inb.decapsulate(now, &mut buf, r).unwrap();
                assert_eq!(d.seq, out.sequence());
            }
            assert!(out.sequence() > u64::from(u32::MAX));
        }
    }

    #[test]
    fn non_esn_sender_stops_before_sequence_cycles() {
        let now = crate::test_origin();
        let (mut out, _) = pair(Encr::AesGcm16(AesKeyLen::Aes128), None, false, now);
        out.set_sequence(u64::from(u32::MAX) - 1);
        let mut buf = vec![0u8; HEADROOM + 10 + TAILROOM];
        assert!(
            out.encapsulate(now, &mut buf, HEADROOM..HEADROOM + 10, 4)
                .is_ok()
        );
        assert_eq!(
            out.encapsulate(now, &mut buf, HEADROOM..HEADROOM + 10, 4),
            Err(DropReason::SaExpired)
        );
    }

    #[test]
    fn gcm_pads_to_16_only_within_the_length_limit() {
        let now = crate::test_origin();
        let (mut out, mut inb) = pair(Encr::AesGcm16(AesKeyLen::Aes128), None, false, now);
        for len in [1usize, 14, 15, 62, 64, 1436, 1438] {
            let mut buf = vec![0u8; HEADROOM + len + TAILROOM];
            // No limit: the plaintext with its trailer is a whole number of AES blocks.
            let r = out
                .encapsulate(now, &mut buf, HEADROOM..HEADROOM + len, 4)
                .unwrap();
            assert_eq!((r.len() - 8 - 8 - 16) % 16, 0, "{len}");
            assert_eq!(r.len(), len + out.overhead(len));
            assert_eq!(inb.decapsulate(now, &mut buf, r).unwrap().range.len(), len);
            // A limit of the minimal length: 4-byte alignment (RFC 4106 §3.2), never more.
            let minimal = 8 + 8 + (len + 2).div_ceil(4) * 4 + 16;
            let r = out
                .encapsulate_within(now, &mut buf, HEADROOM..HEADROOM + len, 4, minimal)
                .unwrap();
            assert_eq!(r.len(), minimal, "{len}");
            assert_eq!(inb.decapsulate(now, &mut buf, r).unwrap().range.len(), len);
        }
    }

    #[test]
    fn bad_padding_is_rejected() {
        let now = crate::test_origin();
        let (mut out, mut inb) = pair(Encr::AesGcm16(AesKeyLen::Aes128), None, false, now);
        // Encapsulate a 5-byte payload as if it were the plaintext trailer area, with a wrong pad
        // byte: build it by hand through the cipher.
        let mut buf = vec![0u8; HEADROOM + 5 + TAILROOM];
        let r = out
            .encapsulate(now, &mut buf, HEADROOM..HEADROOM + 5, 4)
            .unwrap();
        // Decrypt, corrupt the padding, re-seal with the same sequence number.
        let mut copy = buf.clone();
        let pkt = &mut copy[r.clone()];
        out.cipher().open(pkt, 1, false).unwrap();
        let body_end = pkt.len() - 16;
        pkt[body_end - 3] = 0xee; // the last pad byte (pad bytes count 1, 2, ...)
        out.cipher().seal(pkt, 1, false).unwrap();
        assert_eq!(
            inb.decapsulate(now, &mut copy, r),
            Err(DropReason::BadPadding)
        );
    }

    #[test]
    fn headroom_shortfall_moves_payload_when_buffer_allows() {
        let now = crate::test_origin();
        let (mut out, mut inb) = pair(Encr::AesGcm16(AesKeyLen::Aes128), None, false, now);
        let mut buf = vec![0u8; 200];
        buf[..20].copy_from_slice(&[0xab; 20]);
        let r = out.encapsulate(now, &mut buf, 0..20, 4).unwrap();
        let d = inb.decapsulate(now, &mut buf, r).unwrap();
        assert_eq!(&buf[d.range], &[0xab; 20][..]);
        let mut tiny = vec![0u8; 30];
        assert_eq!(
            out.encapsulate(now, &mut tiny, 0..20, 4),
            Err(DropReason::BufferTooSmall)
        );
    }

    #[test]
    fn garbage_and_wrong_spi_never_panic() {
        let now = crate::test_origin();
        let (_, mut inb) = pair(
            Encr::AesCbc(AesKeyLen::Aes128),
            Some(Integ::HmacSha1_96),
            false,
            now,
        );
        for len in 0..80 {
            let mut b: Vec<u8> = (0..len).map(|i| i as u8).collect();
            if len >= 4 {
                b[..4].copy_from_slice(&0x1000_0001u32.to_be_bytes());
            }
            let _ = inb.decapsulate(now, &mut b, 0..len);
            let _ = inb.decapsulate(now, &mut b, len..len + 3);
        }
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(
            inb.decapsulate(now, &mut b, 0..64),
            Err(DropReason::InvalidSpi)
        );
    }

    #[test]
    fn lifetimes_fire_soft_then_hard_once() {
        let now = crate::test_origin();
        let ek = [1u8; 20];
        let mut p = params(9, Encr::AesGcm16(AesKeyLen::Aes128), None, &ek, &[]);
        p.lifetime = Lifetime {
            soft_bytes: Some(1000),
            hard_bytes: Some(2000),
            soft_time: Some(Duration::from_secs(90)),
            hard_time: Some(Duration::from_secs(100)),
        };
        let mut out = OutboundSa::new(now, &p).unwrap();
        assert_eq!(out.poll_expiry(now), None);
        let mut buf = vec![0u8; HEADROOM + 600 + TAILROOM];
        out.encapsulate(now, &mut buf, HEADROOM..HEADROOM + 600, 4)
            .unwrap();
        assert_eq!(out.poll_expiry(now), None);
        out.encapsulate(now, &mut buf, HEADROOM..HEADROOM + 600, 4)
            .unwrap();
        assert_eq!(out.poll_expiry(now), Some(Expiry::Soft));
        assert_eq!(out.poll_expiry(now), None);
        assert_eq!(out.next_deadline(), Some(now + Duration::from_secs(100)));
        assert_eq!(
            out.poll_expiry(now + Duration::from_secs(100)),
            Some(Expiry::Hard)
        );
        assert_eq!(
            out.encapsulate(now, &mut buf, HEADROOM..HEADROOM + 600, 4),
            Err(DropReason::SaExpired)
        );
        assert_eq!(out.next_deadline(), None);
        let l = Lifetime::from_ios(4_608_000, 3600);
        assert_eq!(l.hard_bytes, Some(4_608_000 * 1024));
        assert_eq!(l.soft_time, Some(Duration::from_secs(3240)));
    }

    #[test]
    fn transport_mode_carries_gre_next_header() {
        let now = crate::test_origin();
        let ek = [5u8; 16];
        let ik = [6u8; 32];
        let mut p = params(
            0x77,
            Encr::AesCbc(AesKeyLen::Aes128),
            Some(Integ::HmacSha256_128),
            &ek,
            &ik,
        );
        p.mode = Mode::Transport;
        let mut out = OutboundSa::new(now, &p).unwrap();
        let mut inb = InboundSa::new(now, &p).unwrap();
        let gre = [0u8, 0, 0x08, 0x00, 0x45, 0, 0, 20];
        let mut buf = vec![0u8; HEADROOM + gre.len() + TAILROOM];
        buf[HEADROOM..HEADROOM + gre.len()].copy_from_slice(&gre);
        let r = out
            .encapsulate(
                now,
                &mut buf,
                HEADROOM..HEADROOM + gre.len(),
                crate::wire::IpProtocol::GRE.0,
            )
            .unwrap();
        let d = inb.decapsulate(now, &mut buf, r).unwrap();
        assert_eq!(d.next_header, 47);
        assert_eq!(&buf[d.range], &gre[..]);
        assert_eq!(inb.mode(), Mode::Transport);
    }

    #[test]
    fn sadb_counts_unknown_spi_and_rate_limits_notifications() {
        let now = crate::test_origin();
        let mut db = SaDb::<u32>::new();
        db.insert(0x100, 7);
        let from: SocketAddr = "192.0.2.1:4500".parse().unwrap();
        assert_eq!(db.lookup(now, &[0, 0, 1, 0, 0, 0, 0, 1], from), Ok(7));
        let e = db.lookup(now, &[0, 0, 2, 0, 0, 0, 0, 1], from).unwrap_err();
        assert_eq!(
            e,
            UnknownSpi {
                spi: Some(0x200),
                from,
                notify: true
            }
        );
        let e = db.lookup(now, &[0, 0, 2, 0, 0, 0, 0, 2], from).unwrap_err();
        assert!(!e.notify);
        assert_eq!(db.lookup(now, &[1, 2], from).unwrap_err().spi, None);
        let later = now + Duration::from_secs(1);
        assert!(
            db.lookup(later, &[0, 0, 3, 0, 0, 0, 0, 1], from)
                .unwrap_err()
                .notify
        );
        assert_eq!(db.invalid_spi_count(), 4);
        assert_eq!(db.remove(0x100), Some(7));
        assert!(db.is_empty());
    }

    /// An ESP packet built by hand from RustCrypto primitives, following RFC 4303/3602/2404 to the
    /// letter (explicit IV, monotonic padding, ICV over SPI..ciphertext, ESN high bits appended for
    /// the ICV only), decapsulates.
    #[test]
    fn decapsulates_independently_built_cbc_sha1_packet_with_esn() {
        use aes::cipher::{BlockModeEncrypt, KeyIvInit};
        use hmac::{Hmac, KeyInit, Mac};
        let now = crate::test_origin();
        let ek = [0x61u8; 16];
        let ik = [0x62u8; 20];
        let spi = 0xA97E_DEE7u32;
        let seq: u64 = (3 << 32) | 17;
        let payload = b"0123456789abcdefghij"; // 20 bytes -> 10 padding bytes to reach 32
        let iv = [0x99u8; 16];
        let mut plain = payload.to_vec();
        plain.extend(1u8..=10);
        plain.extend([10, 4]);
        assert_eq!(plain.len(), 32);
        let mut enc = cbc::Encryptor::<aes::Aes128>::new_from_slices(&ek, &iv).unwrap();
        let (blocks, _) = aes::cipher::array::Array::slice_as_chunks_mut(&mut plain[..]);
        enc.encrypt_blocks(blocks);
        let mut pkt = Vec::new();
        pkt.extend(spi.to_be_bytes());
        pkt.extend((seq as u32).to_be_bytes());
        pkt.extend(iv);
        pkt.extend(&plain);
        let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&ik).unwrap();
        mac.update(&pkt);
        mac.update(&((seq >> 32) as u32).to_be_bytes());
        pkt.extend(&mac.finalize().into_bytes()[..12]);
        let mut p = params(
            spi,
            Encr::AesCbc(AesKeyLen::Aes128),
            Some(Integ::HmacSha1_96),
            &ek,
            &ik,
        );
        p.esn = true;
        let mut inb = InboundSa::new(now, &p).unwrap();
        inb.replay.assume_received(seq - 1);
        let len = pkt.len();
        let d = inb.decapsulate(now, &mut pkt, 0..len).unwrap();
        assert_eq!(&pkt[d.range], payload);
        assert_eq!((d.next_header, d.seq), (4, seq));
    }

    /// The same for AES-GCM with ESN, sealed by RustCrypto `aes-gcm` with the RFC 4106 §5 AAD
    /// (SPI ‖ seq-hi ‖ seq-lo) and nonce (salt ‖ explicit IV).
    #[test]
    fn decapsulates_independently_built_gcm_packet_with_esn() {
        use aes_gcm::aead::{AeadInOut, KeyInit as _};
        let now = crate::test_origin();
        let key = [0x71u8; 16];
        let salt = [1u8, 2, 3, 4];
        let spi = 0x4776_A36Bu32;
        let seq: u64 = (1 << 32) | 5;
        let iv = [0xabu8; 8];
        let mut plain = b"hello, ipsec".to_vec(); // 12 bytes -> 2 padding bytes to reach 16
        plain.extend([1, 2, 2, 41]);
        let mut aad = spi.to_be_bytes().to_vec();
        aad.extend(seq.to_be_bytes());
        let mut nonce = salt.to_vec();
        nonce.extend(iv);
        let c = aes_gcm::Aes128Gcm::new_from_slice(&key).unwrap();
        let tag = c
            .encrypt_inout_detached(
                &aes_gcm::Nonce::try_from(&nonce[..]).unwrap(),
                &aad,
                plain.as_mut_slice().into(),
            )
            .unwrap();
        let mut pkt = spi.to_be_bytes().to_vec();
        pkt.extend((seq as u32).to_be_bytes());
        pkt.extend(iv);
        pkt.extend(&plain);
        pkt.extend(tag.as_slice());
        let ek = [key.as_slice(), &salt].concat();
        let mut p = params(spi, Encr::AesGcm16(AesKeyLen::Aes128), None, &ek, &[]);
        p.esn = true;
        let mut inb = InboundSa::new(now, &p).unwrap();
        inb.replay.assume_received(seq - 2);
        let len = pkt.len();
        let d = inb.decapsulate(now, &mut pkt, 0..len).unwrap();
        assert_eq!(&pkt[d.range], b"hello, ipsec");
        assert_eq!(d.next_header, 41);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
            #[test]
            fn round_trip_any_payload_and_next_header(
                payload in prop::collection::vec(any::<u8>(), 0..1600),
                nh in any::<u8>(),
                which in 0usize..14,
                esn in any::<bool>(),
            ) {
                let now = crate::test_origin();
                let (encr, integ) = all_transforms()[which];
                let (mut out, mut inb) = pair(encr, integ, esn, now);
                let len = payload.len();
                let mut buf = vec![0u8; HEADROOM + len + TAILROOM];
                buf[HEADROOM..HEADROOM + len].copy_from_slice(&payload);
                let r = out.encapsulate(now, &mut buf, HEADROOM..HEADROOM + len, nh).unwrap();
                let d = inb.decapsulate(now, &mut buf, r).unwrap();
                prop_assert_eq!(&buf[d.range], &payload[..]);
                prop_assert_eq!(d.next_header, nh);
            }

            /// Flipping any bit of a packet makes decapsulation fail (never a wrong plaintext).
            #[test]
            fn any_bit_flip_is_rejected(len in 0usize..200, bit in any::<prop::sample::Index>(), which in 0usize..14) {
                let now = crate::test_origin();
                let (encr, integ) = all_transforms()[which];
                let (mut out, mut inb) = pair(encr, integ, false, now);
                let mut buf = vec![0u8; HEADROOM + len + TAILROOM];
                let r = out.encapsulate(now, &mut buf, HEADROOM..HEADROOM + len, 4).unwrap();
                let i = bit.index(r.len() * 8);
                buf[r.start + i / 8] ^= 1 << (i % 8);
                prop_assert!(inb.decapsulate(now, &mut buf, r).is_err());
            }
        }
    }

    #[test]
    fn sa_params_debug_hides_keys() {
        let ek = [0x42u8; 20];
        let p = params(1, Encr::AesGcm16(AesKeyLen::Aes128), None, &ek, &[]);
        let s = format!("{p:?}");
        assert!(s.contains("enc_key_len: 20"));
        assert!(!s.contains("66"), "{s}");
    }
}
