//! IP SLA `icmp-echo` operations and their scheduler, sans-io.
//!
//! ```text
//! ip sla 1
//!  icmp-echo 192.0.2.11 source-interface GigabitEthernet0/0/0
//!  threshold 500
//!  timeout 500
//!  frequency 2
//! ip sla schedule 1 life forever start-time now
//! ```
//! becomes `SlaOperation { frequency: 2 s, timeout: 500 ms, threshold: 500 ms, schedule: Schedule::forever_now(), .. }`
//! added with [`SlaEngine::add`]. The driver loop is:
//! `handle_timeout(now)`, then send every [`SlaEngine::poll_probe`] through a socket bound to
//! [`Probe::source`] (so probes keep using the primary path after routes moved to the backup), feed every
//! echo reply to [`SlaEngine::handle_reply`], drain [`SlaEngine::poll_event`] into the tracker, sleep until
//! [`SlaEngine::poll_timeout`].
//!
//! Rules (each has a test):
//! - a probe starts at `start + k * frequency` while the operation is active (`life` not expired);
//! - a reply later than `timeout` (or none) gives return code `Timeout` (a failure);
//! - a reply with an RTT above `threshold` gives `Over threshold`, counted as a success (the RTT was measured);
//! - otherwise `OK`; statistics keep the latest RTT, start time and return code and the success/failure counts;
//! - if the driver is late, missed starts are skipped (one probe now, the next one on the original grid).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::SlaId;
use crate::icmp::{self, EchoKind, EchoRepr, HEADER_LEN};

/// Where probes leave from (`icmp-echo DEST source-interface IF | source-ip A`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum SlaSource {
    /// No source given: the routing table decides.
    #[default]
    Any,
    /// Bind the probe socket to this interface (`SO_BINDTODEVICE`).
    Interface(String),
    /// Bind the probe socket to this local address.
    Ip(Ipv4Addr),
}

/// `ip sla schedule N start-time ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTime {
    /// `start-time pending` (the IOS default): configured but not running until rescheduled.
    Pending,
    /// `start-time now`.
    Now,
    /// `start-time after hh:mm:ss`. (`start-time hh:mm` on the wall clock is converted by the caller.)
    After(Duration),
}

/// `ip sla schedule N life ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// `life forever`.
    Forever,
    /// `life SECONDS` (IOS default 3600 s).
    For(Duration),
}

/// `ip sla schedule N life L start-time S`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub start: StartTime,
    pub life: Life,
}

impl Schedule {
    /// `life forever start-time now`, the form used in the VPN-SIP guide.
    pub const fn forever_now() -> Self {
        Schedule {
            start: StartTime::Now,
            life: Life::Forever,
        }
    }
}

impl Default for Schedule {
    /// IOS defaults: no schedule means pending, life 3600 seconds.
    fn default() -> Self {
        Schedule {
            start: StartTime::Pending,
            life: Life::For(Duration::from_secs(3600)),
        }
    }
}

/// One `ip sla N` / `icmp-echo` operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaOperation {
    pub id: SlaId,
    pub dest: Ipv4Addr,
    pub source: SlaSource,
    /// `threshold MS` (IOS default 5000 ms).
    pub threshold: Duration,
    /// `timeout MS` (IOS default 5000 ms).
    pub timeout: Duration,
    /// `frequency S` (IOS default 60 s).
    pub frequency: Duration,
    /// `request-data-size BYTES`: echo data bytes after the ICMP header (IOS default 28).
    pub data_size: u16,
    /// `tos N`: the IPv4 ToS byte the socket sets (`IP_TOS`).
    pub tos: u8,
    pub schedule: Schedule,
}

impl SlaOperation {
    /// An `icmp-echo` operation with IOS defaults (pending schedule).
    pub fn icmp_echo(id: SlaId, dest: Ipv4Addr) -> Self {
        SlaOperation {
            id,
            dest,
            source: SlaSource::Any,
            threshold: Duration::from_millis(5000),
            timeout: Duration::from_millis(5000),
            frequency: Duration::from_secs(60),
            data_size: DEFAULT_DATA_SIZE,
            tos: 0,
            schedule: Schedule::default(),
        }
    }
}

/// IOS `request-data-size` default for icmp-echo.
pub const DEFAULT_DATA_SIZE: u16 = 28;
/// Largest `request-data-size` accepted.
pub const MAX_DATA_SIZE: u16 = 16384;
/// Largest `frequency` (IOS: 1-604800 seconds).
pub const MAX_FREQUENCY: Duration = Duration::from_secs(604_800);
/// Largest `life` and `start-time after` accepted (IOS `life` goes up to 2147483647 seconds).
pub const MAX_SCHEDULE: Duration = Duration::from_secs(2_147_483_647);
/// Bytes of echo data used to recognise our own replies (operation id, then a per-engine nonce).
pub const TOKEN_LEN: usize = 8;

/// Local configuration errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlaError {
    #[error("ip sla {0} already exists")]
    Exists(SlaId),
    #[error("ip sla {0} does not exist")]
    NoSuchOperation(SlaId),
    #[error("frequency must be at least 1 second")]
    FrequencyTooSmall,
    #[error("timeout must not exceed frequency")]
    TimeoutAboveFrequency,
    #[error("threshold must not exceed timeout")]
    ThresholdAboveTimeout,
    #[error("request-data-size must not exceed {MAX_DATA_SIZE}")]
    DataTooLarge,
    #[error("frequency must not exceed 604800 seconds")]
    FrequencyTooLarge,
    #[error("schedule start delay or life too large")]
    ScheduleTooLarge,
}

/// `Latest operation return code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnCode {
    Ok,
    Timeout,
    OverThreshold,
}

impl ReturnCode {
    /// The IOS spelling (`OK`, `Timeout`, `Over threshold`).
    pub fn as_ios(self) -> &'static str {
        match self {
            ReturnCode::Ok => "OK",
            ReturnCode::Timeout => "Timeout",
            ReturnCode::OverThreshold => "Over threshold",
        }
    }
}

/// `Codes: * active, ^ inactive, ~ pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpStatus {
    Pending,
    Active,
    Inactive,
}

/// An echo request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub op_id: SlaId,
    pub dest: Ipv4Addr,
    pub source: SlaSource,
    pub tos: u8,
    pub ident: u16,
    pub seq: u16,
    /// The complete ICMP echo request (header with checksum + data).
    pub payload: Vec<u8>,
}

/// Facts for the coordinator (the tracker consumes `Completed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlaEvent {
    /// One operation finished (a reply came, or the timeout expired).
    Completed {
        id: SlaId,
        code: ReturnCode,
        rtt: Option<Duration>,
        started: Instant,
    },
    /// The operation's `life` expired: it is inactive now.
    LifeEnded { id: SlaId },
}

/// `show ip sla statistics` data for one operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlaStats {
    pub latest_rtt: Option<Duration>,
    pub latest_start: Option<Instant>,
    pub latest_code: Option<ReturnCode>,
    pub successes: u64,
    pub failures: u64,
    pub over_threshold: u64,
    pub rtt_min: Option<Duration>,
    pub rtt_max: Option<Duration>,
    pub rtt_sum: Duration,
}

/// One operation's state for `show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaOpSnapshot {
    pub op: SlaOperation,
    pub status: OpStatus,
    pub stats: SlaStats,
    /// When `life` ends (`None`: forever or not started).
    pub ends_at: Option<Instant>,
}

/// All operations, sorted by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaSnapshot {
    pub ops: Vec<SlaOpSnapshot>,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u16,
    sent_at: Instant,
    deadline: Instant,
}

#[derive(Debug)]
struct OpState {
    op: SlaOperation,
    ident: u16,
    next_seq: u16,
    status: OpStatus,
    /// Grid origin: the first start.
    origin: Option<Instant>,
    ends_at: Option<Instant>,
    next_start: Option<Instant>,
    in_flight: Option<InFlight>,
    stats: SlaStats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    // Order matters at equal instants: a timeout due at the same instant as the next start is
    // reported before the next probe starts; life ends before a start at the same instant.
    Timeout = 0,
    End = 1,
    Start = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Instant,
    kind: TimerKind,
    slot: u32,
    epoch: u32,
}

/// The IP SLA scheduler: owns every operation, its timers and its statistics.
#[derive(Debug)]
pub struct SlaEngine {
    slots: Vec<Option<OpState>>,
    gens: Vec<u32>,
    free: Vec<u32>,
    by_id: HashMap<SlaId, u32>,
    timers: BinaryHeap<Reverse<Timer>>,
    probes: VecDeque<Probe>,
    events: VecDeque<SlaEvent>,
    nonce: u32,
    ident_base: u16,
}

impl SlaEngine {
    /// `nonce` (random, injected) goes into every probe's data so stale or forged replies from another run
    /// don't match; `ident_base` is the first echo identifier handed out.
    pub fn new(nonce: u32, ident_base: u16) -> Self {
        SlaEngine {
            slots: Vec::new(),
            gens: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            timers: BinaryHeap::new(),
            probes: VecDeque::new(),
            events: VecDeque::new(),
            nonce,
            ident_base,
        }
    }

    /// Number of configured operations.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    fn validate(op: &SlaOperation) -> Result<(), SlaError> {
        if op.frequency < Duration::from_secs(1) {
            return Err(SlaError::FrequencyTooSmall);
        }
        if op.frequency > MAX_FREQUENCY {
            return Err(SlaError::FrequencyTooLarge);
        }
        Self::validate_schedule(&op.schedule)?;
        if op.timeout > op.frequency {
            return Err(SlaError::TimeoutAboveFrequency);
        }
        if op.threshold > op.timeout {
            return Err(SlaError::ThresholdAboveTimeout);
        }
        if op.data_size > MAX_DATA_SIZE {
            return Err(SlaError::DataTooLarge);
        }
        Ok(())
    }

    fn validate_schedule(s: &Schedule) -> Result<(), SlaError> {
        let too_big = matches!(s.start, StartTime::After(d) if d > MAX_SCHEDULE)
            || matches!(s.life, Life::For(d) if d > MAX_SCHEDULE);
        if too_big {
            Err(SlaError::ScheduleTooLarge)
        } else {
            Ok(())
        }
    }

    /// Adds an operation and applies its schedule at `now`.
    pub fn add(&mut self, now: Instant, op: SlaOperation) -> Result<(), SlaError> {
        Self::validate(&op)?;
        if self.by_id.contains_key(&op.id) {
            return Err(SlaError::Exists(op.id));
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.gens.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        let ident = self.ident_base.wrapping_add(slot as u16);
        let schedule = op.schedule;
        self.by_id.insert(op.id, slot);
        if let Some(s) = self.slots.get_mut(slot as usize) {
            *s = Some(OpState {
                op,
                ident,
                next_seq: 1,
                status: OpStatus::Pending,
                origin: None,
                ends_at: None,
                next_start: None,
                in_flight: None,
                stats: SlaStats::default(),
            });
        }
        self.apply_schedule(now, slot, schedule);
        Ok(())
    }

    /// Removes an operation (`no ip sla N`); its pending probes and timers are forgotten.
    pub fn remove(&mut self, id: SlaId) -> Result<SlaOperation, SlaError> {
        let slot = self
            .by_id
            .remove(&id)
            .ok_or(SlaError::NoSuchOperation(id))?;
        if let Some(g) = self.gens.get_mut(slot as usize) {
            *g = g.wrapping_add(1);
        }
        self.free.push(slot);
        self.probes.retain(|p| p.op_id != id);
        let st = self.slots.get_mut(slot as usize).and_then(Option::take);
        st.map(|s| s.op).ok_or(SlaError::NoSuchOperation(id))
    }

    /// `ip sla schedule N ...` again (for example to start a pending operation); statistics are kept.
    pub fn reschedule(
        &mut self,
        now: Instant,
        id: SlaId,
        schedule: Schedule,
    ) -> Result<(), SlaError> {
        let slot = *self.by_id.get(&id).ok_or(SlaError::NoSuchOperation(id))?;
        Self::validate_schedule(&schedule)?;
        if let Some(g) = self.gens.get_mut(slot as usize) {
            *g = g.wrapping_add(1);
        }
        if let Some(st) = self.state_mut(slot) {
            st.op.schedule = schedule;
            st.in_flight = None;
            st.next_start = None;
            st.origin = None;
            st.ends_at = None;
            st.status = OpStatus::Pending;
        }
        self.apply_schedule(now, slot, schedule);
        Ok(())
    }

    fn state_mut(&mut self, slot: u32) -> Option<&mut OpState> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    fn epoch_of(&self, slot: u32) -> u32 {
        self.gens.get(slot as usize).copied().unwrap_or(0)
    }

    fn apply_schedule(&mut self, now: Instant, slot: u32, schedule: Schedule) {
        let first = match schedule.start {
            StartTime::Pending => return,
            StartTime::Now => now,
            StartTime::After(d) => now + d,
        };
        let epoch = self.epoch_of(slot);
        let ends_at = match schedule.life {
            Life::Forever => None,
            Life::For(d) => Some(first + d),
        };
        if let Some(st) = self.state_mut(slot) {
            st.origin = Some(first);
            st.ends_at = ends_at;
            st.next_start = Some(first);
            st.status = if first <= now {
                OpStatus::Active
            } else {
                OpStatus::Pending
            };
        }
        self.timers.push(Reverse(Timer {
            at: first,
            kind: TimerKind::Start,
            slot,
            epoch,
        }));
        if let Some(end) = ends_at {
            self.timers.push(Reverse(Timer {
                at: end,
                kind: TimerKind::End,
                slot,
                epoch,
            }));
        }
    }

    /// The next instant at which [`SlaEngine::handle_timeout`] has work.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // Drop stale timers lazily so the answer is exact.
        while let Some(Reverse(t)) = self.timers.peek().copied() {
            if self.timer_is_live(&t) {
                return Some(t.at);
            }
            self.timers.pop();
        }
        None
    }

    fn timer_is_live(&self, t: &Timer) -> bool {
        if self.epoch_of(t.slot) != t.epoch {
            return false;
        }
        let Some(Some(st)) = self.slots.get(t.slot as usize) else {
            return false;
        };
        match t.kind {
            TimerKind::Start => st.next_start == Some(t.at),
            TimerKind::Timeout => st.in_flight.is_some_and(|f| f.deadline == t.at),
            TimerKind::End => st.status != OpStatus::Inactive && st.ends_at == Some(t.at),
        }
    }

    /// Starts due probes, expires unanswered ones and ends operations whose life is over.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse(t)) = self.timers.peek().copied() {
            if t.at > now {
                break;
            }
            self.timers.pop();
            if !self.timer_is_live(&t) {
                continue;
            }
            match t.kind {
                TimerKind::Timeout => self.expire(t.slot),
                TimerKind::End => self.end_life(t.slot),
                TimerKind::Start => self.start_probe(now, t.slot),
            }
        }
    }

    fn expire(&mut self, slot: u32) {
        let Some(st) = self.state_mut(slot) else {
            return;
        };
        let Some(f) = st.in_flight.take() else { return };
        st.stats.latest_code = Some(ReturnCode::Timeout);
        st.stats.latest_rtt = None;
        st.stats.failures += 1;
        let id = st.op.id;
        self.events.push_back(SlaEvent::Completed {
            id,
            code: ReturnCode::Timeout,
            rtt: None,
            started: f.sent_at,
        });
    }

    fn end_life(&mut self, slot: u32) {
        let Some(st) = self.state_mut(slot) else {
            return;
        };
        st.status = OpStatus::Inactive;
        st.next_start = None;
        let id = st.op.id;
        self.events.push_back(SlaEvent::LifeEnded { id });
    }

    fn start_probe(&mut self, now: Instant, slot: u32) {
        let epoch = self.epoch_of(slot);
        let nonce = self.nonce;
        let Some(st) = self.state_mut(slot) else {
            return;
        };
        // A still-running probe cannot exist here (timeout <= frequency and timeouts sort first),
        // but if it does, it is reported as a timeout before the next one starts.
        let stale = st.in_flight.take();
        let scheduled = st.next_start.unwrap_or(now);
        let origin = st.origin.unwrap_or(scheduled);
        let freq = st.op.frequency;
        let deadline = now + st.op.timeout;
        // Next start on the original grid, after `now` and not before this probe's deadline (a late driver
        // skips missed starts instead of bunching them).
        let mut next = scheduled + freq;
        if next <= now || next < deadline {
            let target = now.max(deadline);
            let behind = target.saturating_duration_since(origin).as_nanos();
            let f = freq.as_nanos().max(1);
            let mut k = behind.div_ceil(f).max(1);
            if origin + nanos(f * k) <= now {
                k += 1;
            }
            next = origin + nanos(f * k);
        }
        st.next_start = match st.ends_at {
            Some(end) if next >= end => None,
            _ => Some(next),
        };
        st.status = OpStatus::Active;
        let seq = st.next_seq;
        st.next_seq = st.next_seq.wrapping_add(1);
        st.in_flight = Some(InFlight {
            seq,
            sent_at: now,
            deadline,
        });
        st.stats.latest_start = Some(now);
        // One allocation per probe: data written after the header, header and checksum in place.
        let mut payload = vec![0xab; HEADER_LEN + usize::from(st.op.data_size)];
        let token = token_bytes(st.op.id, nonce);
        if let Some(data) = payload.get_mut(HEADER_LEN..) {
            let n = data.len().min(TOKEN_LEN);
            data[..n].copy_from_slice(&token[..n]);
        }
        let _ = icmp::emit_header_in_place(&mut payload, EchoKind::Request, st.ident, seq);
        let probe = Probe {
            op_id: st.op.id,
            dest: st.op.dest,
            source: st.op.source.clone(),
            tos: st.op.tos,
            ident: st.ident,
            seq,
            payload,
        };
        let next_start = st.next_start;
        let id = st.op.id;
        if let Some(f) = stale {
            st.stats.latest_code = Some(ReturnCode::Timeout);
            st.stats.failures += 1;
            self.events.push_back(SlaEvent::Completed {
                id,
                code: ReturnCode::Timeout,
                rtt: None,
                started: f.sent_at,
            });
        }
        self.probes.push_back(probe);
        self.timers.push(Reverse(Timer {
            at: deadline,
            kind: TimerKind::Timeout,
            slot,
            epoch,
        }));
        if let Some(at) = next_start {
            self.timers.push(Reverse(Timer {
                at,
                kind: TimerKind::Start,
                slot,
                epoch,
            }));
        }
    }

    /// The next echo request to send.
    pub fn poll_probe(&mut self) -> Option<Probe> {
        self.probes.pop_front()
    }

    /// The next event for the coordinator.
    pub fn poll_event(&mut self) -> Option<SlaEvent> {
        self.events.pop_front()
    }

    /// Feeds a received ICMP message (already parsed; from any socket). Returns the operation it completed.
    ///
    /// The reply is matched on the token in its data (operation id + nonce), which survives a Linux ping
    /// socket rewriting the identifier; replies with less than [`TOKEN_LEN`] data bytes are matched on the
    /// identifier instead. The reply must come from the operation's destination and carry the sequence
    /// number of the probe in flight.
    pub fn handle_reply(
        &mut self,
        now: Instant,
        from: Ipv4Addr,
        echo: &EchoRepr<'_>,
    ) -> Option<SlaId> {
        if echo.kind != EchoKind::Reply {
            return None;
        }
        let id = if let Some(tok) = echo.data.get(..TOKEN_LEN) {
            let id = SlaId(u32::from_be_bytes([tok[0], tok[1], tok[2], tok[3]]));
            if u32::from_be_bytes([tok[4], tok[5], tok[6], tok[7]]) != self.nonce {
                return None;
            }
            id
        } else {
            // Short data: find the operation by identifier (only the first 65536 slots are reachable this
            // way, and not through a ping socket, which rewrites the identifier).
            let slot = usize::from(echo.ident.wrapping_sub(self.ident_base));
            self.slots
                .get(slot)
                .and_then(Option::as_ref)
                .map(|s| s.op.id)?
        };
        self.handle_reply_for(now, id, echo.seq_no, from)
            .then_some(id)
    }

    /// Completes operation `id`'s probe `seq` (the design's direct form). Returns false if nothing matched.
    pub fn handle_reply_for(&mut self, now: Instant, id: SlaId, seq: u16, from: Ipv4Addr) -> bool {
        let Some(&slot) = self.by_id.get(&id) else {
            return false;
        };
        let Some(st) = self.state_mut(slot) else {
            return false;
        };
        if st.op.dest != from {
            return false;
        }
        let Some(f) = st.in_flight else { return false };
        if f.seq != seq {
            return false;
        }
        st.in_flight = None;
        let rtt = now.saturating_duration_since(f.sent_at);
        let code = if now > f.deadline {
            // The timer was not run yet but the reply is late anyway.
            ReturnCode::Timeout
        } else if rtt > st.op.threshold {
            ReturnCode::OverThreshold
        } else {
            ReturnCode::Ok
        };
        let s = &mut st.stats;
        s.latest_code = Some(code);
        if code == ReturnCode::Timeout {
            s.latest_rtt = None;
            s.failures += 1;
        } else {
            s.latest_rtt = Some(rtt);
            s.successes += 1;
            if code == ReturnCode::OverThreshold {
                s.over_threshold += 1;
            }
            s.rtt_min = Some(s.rtt_min.map_or(rtt, |m| m.min(rtt)));
            s.rtt_max = Some(s.rtt_max.map_or(rtt, |m| m.max(rtt)));
            s.rtt_sum += rtt;
        }
        let id = st.op.id;
        let rtt = (code != ReturnCode::Timeout).then_some(rtt);
        self.events.push_back(SlaEvent::Completed {
            id,
            code,
            rtt,
            started: f.sent_at,
        });
        true
    }

    /// Statistics of one operation.
    pub fn stats(&self, id: SlaId) -> Option<&SlaStats> {
        let slot = *self.by_id.get(&id)?;
        self.slots.get(slot as usize)?.as_ref().map(|s| &s.stats)
    }

    /// Status of one operation.
    pub fn status(&self, id: SlaId) -> Option<OpStatus> {
        let slot = *self.by_id.get(&id)?;
        self.slots.get(slot as usize)?.as_ref().map(|s| s.status)
    }

    /// Plain data for `show ip sla ...`, sorted by operation id.
    pub fn snapshot(&self) -> SlaSnapshot {
        let mut ops: Vec<SlaOpSnapshot> = self
            .slots
            .iter()
            .flatten()
            .map(|s| SlaOpSnapshot {
                op: s.op.clone(),
                status: s.status,
                stats: s.stats.clone(),
                ends_at: s.ends_at,
            })
            .collect();
        ops.sort_by_key(|o| o.op.id);
        SlaSnapshot { ops }
    }

    /// Approximate heap bytes owned by the engine (capacity-based accounting, for the scale benchmark).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let strings: usize = self
            .slots
            .iter()
            .flatten()
            .map(|s| match &s.op.source {
                SlaSource::Interface(n) => n.capacity(),
                _ => 0,
            })
            .sum();
        let probes: usize = self.probes.iter().map(|p| p.payload.capacity()).sum();
        self.slots.capacity() * size_of::<Option<OpState>>()
            + self.gens.capacity() * size_of::<u32>()
            + self.free.capacity() * size_of::<u32>()
            // hashbrown: one control byte per bucket, buckets >= capacity
            + self.by_id.capacity() * (size_of::<(SlaId, u32)>() + 1)
            + self.timers.capacity() * size_of::<Reverse<Timer>>()
            + self.probes.capacity() * size_of::<Probe>()
            + probes
            + self.events.capacity() * size_of::<SlaEvent>()
            + strings
    }
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

fn token_bytes(id: SlaId, nonce: u32) -> [u8; TOKEN_LEN] {
    let mut t = [0u8; TOKEN_LEN];
    t[..4].copy_from_slice(&id.0.to_be_bytes());
    t[4..].copy_from_slice(&nonce.to_be_bytes());
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The guide's operation: threshold 500, timeout 500, frequency 2, life forever start-time now.
    fn guide_op(id: u32) -> SlaOperation {
        SlaOperation {
            threshold: ms(500),
            timeout: ms(500),
            frequency: Duration::from_secs(2),
            schedule: Schedule::forever_now(),
            source: SlaSource::Interface("GigabitEthernet0/0/0".into()),
            ..SlaOperation::icmp_echo(SlaId(id), DEST)
        }
    }

    fn engine() -> SlaEngine {
        SlaEngine::new(0x1122_3344, 0x4000)
    }

    /// Echoes the probe back as the destination would.
    fn answer(e: &mut SlaEngine, now: Instant, p: &Probe) -> Option<SlaId> {
        let req = EchoRepr::parse_bytes(&p.payload).unwrap();
        let reply = req.reply().to_vec();
        e.handle_reply(now, p.dest, &EchoRepr::parse_bytes(&reply).unwrap())
    }

    fn events(e: &mut SlaEngine) -> Vec<SlaEvent> {
        std::iter::from_fn(|| e.poll_event()).collect()
    }

    #[test]
    fn start_time_now_probes_immediately_and_every_frequency() {
        let t0 = crate::test_t0();
        let mut e = engine();
        e.add(t0, guide_op(1)).unwrap();
        assert_eq!(e.poll_timeout(), Some(t0));
        e.handle_timeout(t0);
        let p = e.poll_probe().unwrap();
        assert_eq!((p.op_id, p.dest, p.seq), (SlaId(1), DEST, 1));
        assert_eq!(
            p.source,
            SlaSource::Interface("GigabitEthernet0/0/0".into())
        );
        assert!(e.poll_probe().is_none());
        answer(&mut e, t0 + ms(10), &p).unwrap();
        // Next start exactly one frequency after the first.
        assert_eq!(e.poll_timeout(), Some(t0 + Duration::from_secs(2)));
        e.handle_timeout(t0 + ms(1999));
        assert!(e.poll_probe().is_none());
        e.handle_timeout(t0 + Duration::from_secs(2));
        assert_eq!(e.poll_probe().unwrap().seq, 2);
    }

    #[test]
    fn probe_is_a_valid_echo_request_with_size_tos_and_token() {
        let t0 = crate::test_t0();
        let mut e = engine();
        let op = SlaOperation {
            data_size: 100,
            tos: 0xb8,
            ..guide_op(7)
        };
        e.add(t0, op).unwrap();
        e.handle_timeout(t0);
        let p = e.poll_probe().unwrap();
        assert_eq!(p.tos, 0xb8);
        assert_eq!(p.payload.len(), 8 + 100);
        let r = EchoRepr::parse_bytes(&p.payload).unwrap();
        assert_eq!(r.kind, EchoKind::Request);
        assert_eq!((r.ident, r.seq_no), (p.ident, p.seq));
        assert_eq!(&r.data[..8], &[0, 0, 0, 7, 0x11, 0x22, 0x33, 0x44]);
    }

    #[test]
    fn pending_schedule_never_probes_until_rescheduled() {
        let t0 = crate::test_t0();
        let mut e = engine();
        e.add(t0, SlaOperation::icmp_echo(SlaId(1), DEST)).unwrap();
        assert_eq!(e.status(SlaId(1)), Some(OpStatus::Pending));
        assert_eq!(e.poll_timeout(), None);
        e.handle_timeout(t0 + Duration::from_secs(3600));
        assert!(e.poll_probe().is_none());
        let t1 = t0 + Duration::from_secs(3600);
        e.reschedule(t1, SlaId(1), Schedule::forever_now()).unwrap();
        e.handle_timeout(t1);
        assert!(e.poll_probe().is_some());
        assert_eq!(e.status(SlaId(1)), Some(OpStatus::Active));
    }

    #[test]
    fn start_time_after_delays_the_first_probe() {
        let t0 = crate::test_t0();
        let mut e = engine();
        let op = SlaOperation {
            schedule: Schedule {
                start: StartTime::After(Duration::from_secs(30)),
                life: Life::Forever,
            },
            ..guide_op(1)
        };
        e.add(t0, op).unwrap();
        assert_eq!(e.status(SlaId(1)), Some(OpStatus::Pending));
        assert_eq!(e.poll_timeout(), Some(t0 + Duration::from_secs(30)));
        e.handle_timeout(t0 + Duration::from_secs(29));
        assert!(e.poll_probe().is_none());
        e.handle_timeout(t0 + Duration::from_secs(30));
        assert!(e.poll_probe().is_some());
        assert_eq!(e.status(SlaId(1)), Some(OpStatus::Active));
    }

    #[test]
    fn life_ends_operation_and_it_becomes_inactive() {
        let t0 = crate::test_t0();
        let mut e = engine();
        let op = SlaOperation {
            schedule: Schedule {
                start: StartTime::Now,
                life: Life::For(Duration::from_secs(5)),
            },
            ..guide_op(1)
        };
        e.add(t0, op).unwrap();
        let mut sent = 0;
        let mut now = t0;
        while let Some(t) = e.poll_timeout() {
            now = t;
            e.handle_timeout(now);
            while let Some(p) = e.poll_probe() {
                sent += 1;
                answer(&mut e, now + ms(1), &p);
            }
        }
        // Starts at 0, 2 and 4 s; life ends at 5 s.
        assert_eq!(sent, 3);
        assert_eq!(now, t0 + Duration::from_secs(5));
        assert_eq!(e.status(SlaId(1)), Some(OpStatus::Inactive));
        assert!(events(&mut e).contains(&SlaEvent::LifeEnded { id: SlaId(1) }));
    }

    #[test]
    fn no_reply_within_timeout_is_timeout_failure() {
        let t0 = crate::test_t0();
        let mut e = engine();
        e.add(t0, guide_op(1)).unwrap();
        e.handle_timeout(t0);
        let p = e.poll_probe().unwrap();
        assert_eq!(e.poll_timeout(), Some(t0 + ms(500)));
        e.handle_timeout(t0 + ms(499));
        assert!(events(&mut e).is_empty());
        e.handle_timeout(t0 + ms(500));
        assert_eq!(
            events(&mut e),
            vec![SlaEvent::Completed {
                id: SlaId(1),
                code: ReturnCode::Timeout,
                rtt: None,
                started: t0
            }]
        );
        // A reply after the timeout is ignored.
        assert_eq!(answer(&mut e, t0 + ms(600), &p), None);
        let s = e.stats(SlaId(1)).unwrap();
        assert_eq!(
            (s.successes, s.failures, s.latest_code),
            (0, 1, Some(ReturnCode::Timeout))
        );
        assert_eq!(s.latest_rtt, None);
    }

    #[test]
    fn late_reply_before_timer_runs_is_still_timeout() {
        let t0 = crate::test_t0();
        let mut e = engine();
        e.add(t0, guide_op(1)).unwrap();
        e.handle_timeout(t0);
        let p = e.poll_probe().unwrap();
        assert_eq!(answer(&mut e, t0 + ms(501), &p), Some(SlaId(1)));
        assert_eq!(
            e.stats(SlaId(1)).unwrap().latest_code,
            Some(ReturnCode::Timeout)
        );
    }

    #[test]
    fn rtt_above_threshold_is_over_threshold_and_counts_as_success() {
        let t0 = crate::test_t0();
        let mut e = engine();
        e.add(
            t0,
            SlaOperation {
                threshold: ms(100),
                ..guide_op(1)
            },
        )
        .unwrap();
        e.handle_timeout(t0);
        let p = e.poll_probe().unwrap();
        answer(&mut e, t0 + ms(101), &p).unwrap();
        assert_eq!(
            events(&mut e),
            vec![SlaEvent::Completed {
                id: SlaId(1),
                code: ReturnCode::OverThreshold,
                rtt: Some(ms(101)),
                started: t0
            }]
        );
        let s = e.stats(SlaId(1)).unwrap();
        assert_eq!((s.successes, s.failures, s.over_threshold), (1, 0, 1));
    }

    #[test]
    fn rtt_equal_to_threshold_is_ok() {
        let t0 = crate::test_t0();
        let mut e = engine();
        e.add(
            t0,
            SlaOperation {
                threshold: ms(100),
                ..guide_op(1)
            },
        )
        .unwrap();
        e.handle_timeout(t0);
        let p = e.poll_probe().unwrap();
        answer(&mut e, t0 + ms(100), &p).unwrap();
        assert_eq!(e.stats(SlaId(1)).unwrap().latest_code, Some(ReturnCode::Ok));
    }

    #[test]
    fn statistics_track_latest_and_counts() {
        let t0 = crate::test_t0();
        let mut e = engine();
        e.add(t0, guide_op(1)).unwrap();
        let rtts = [Some(10), None, Some(30), Some(20)];
        for (i, rtt) in rtts.iter().enumerate() {
            let start = t0 + Duration::from_secs(2 * i as u64);
            e.handle_timeout(start);
            let p = e.poll_probe().unwrap();
            match rtt {
                Some(r) => assert!(answer(&mut e, start + ms(*r), &p).is_some()),
                None => e.handle_timeout(start + ms(500)),
            }
        }
        let s = e.stats(SlaId(1)).unwrap();
        assert_eq!((s.successes, s.failures), (3, 1));
        assert_eq!(s.latest_rtt, Some(ms(20)));
        assert_eq!(s.latest_start, Some(t0 + Duration::from_secs(6)));
        assert_eq!(s.latest_code, Some(ReturnCode::Ok));
        assert_eq!(
            (s.rtt_min, s.rtt_max, s.rtt_sum),
            (Some(ms(10)), Some(ms(30)), ms(60))
        );
    }

    #[test]
    fn reply_from_wrong_source_or_seq_or_nonce_is_ignored() {
        let t0 = crate::test_t0();
        let mut e = engine();
        e.add(t0, guide_op(1)).unwrap();
        e.handle_timeout(t0);
        let p = e.poll_probe().unwrap();
        let req = EchoRepr::parse_bytes(&p.payload).unwrap();
        let wrong_seq = EchoRepr {
            seq_no: req.seq_no + 1,
            ..req.reply()
        };
        assert_eq!(e.handle_reply(t0, DEST, &wrong_seq), None);
        assert_eq!(
            e.handle_reply(t0, Ipv4Addr::new(198, 51, 100, 1), &req.reply()),
            None
        );
        let mut data = req.data.to_vec();
        data[4] ^= 0xff; // another run's nonce
        let other = EchoRepr {
            data: &data,
            ..req.reply()
        };
        assert_eq!(e.handle_reply(t0, DEST, &other), None);
        // Our own request looped back is not a reply.
        assert_eq!(e.handle_reply(t0, DEST, &req), None);
        assert_eq!(answer(&mut e, t0 + ms(1), &p), Some(SlaId(1)));
        // Duplicate reply does not count twice.
        assert_eq!(answer(&mut e, t0 + ms(2), &p), None);
        assert_eq!(e.stats(SlaId(1)).unwrap().successes, 1);
    }

    #[test]
    fn reply_matches_by_token_even_if_ping_socket_rewrote_ident() {
        let t0 = crate::test_t0();
        let mut e = engine();
        e.add(t0, guide_op(1)).unwrap();
        e.handle_timeout(t0);
        let p = e.poll_probe().unwrap();
        let req = EchoRepr::parse_bytes(&p.payload).unwrap();
        let rewritten = EchoRepr {
            ident: 0x9999,
            ..req.reply()
        };
        assert_eq!(e.handle_reply(t0 + ms(3), DEST, &rewritten), Some(SlaId(1)));
    }

    #[test]
    fn short_data_reply_matches_by_ident() {
        let t0 = crate::test_t0();
        let mut e = engine();
        e.add(t0, guide_op(1)).unwrap();
        e.add(
            t0,
            SlaOperation {
                data_size: 0,
                ..guide_op(2)
            },
        )
        .unwrap();
        e.handle_timeout(t0);
        let _p1 = e.poll_probe().unwrap();
        let p2 = e.poll_probe().unwrap();
        assert_eq!(p2.payload.len(), 8);
        assert_eq!(answer(&mut e, t0 + ms(3), &p2), Some(SlaId(2)));
    }

    #[test]
    fn late_driver_skips_missed_starts_on_the_grid() {
        let t0 = crate::test_t0();
        let mut e = engine();
        e.add(t0, guide_op(1)).unwrap();
        e.handle_timeout(t0);
        let p = e.poll_probe().unwrap();
        answer(&mut e, t0 + ms(5), &p);
        // The driver wakes up 7.3 s later: one probe now, next at 8 s (grid 0, 2, 4, 6, 8).
        let late = t0 + ms(7300);
        e.handle_timeout(late);
        assert_eq!(e.poll_probe().map(|p| p.seq), Some(2));
        assert!(e.poll_probe().is_none());
        let p = e.stats(SlaId(1)).unwrap().latest_start;
        assert_eq!(p, Some(late));
        e.handle_timeout(late + ms(500));
        assert_eq!(e.poll_timeout(), Some(t0 + Duration::from_secs(8)));
    }

    #[test]
    fn timeout_equal_to_frequency_reports_timeout_before_next_probe() {
        let t0 = crate::test_t0();
        let mut e = engine();
        let op = SlaOperation {
            timeout: Duration::from_secs(2),
            threshold: ms(500),
            ..guide_op(1)
        };
        e.add(t0, op).unwrap();
        e.handle_timeout(t0);
        e.poll_probe().unwrap();
        e.handle_timeout(t0 + Duration::from_secs(2));
        assert!(matches!(
            events(&mut e)[..],
            [SlaEvent::Completed {
                code: ReturnCode::Timeout,
                ..
            }]
        ));
        assert_eq!(e.poll_probe().unwrap().seq, 2);
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        let t0 = crate::test_t0();
        let mut e = engine();
        let bad = [
            (
                SlaOperation {
                    frequency: ms(500),
                    ..guide_op(1)
                },
                SlaError::FrequencyTooSmall,
            ),
            (
                SlaOperation {
                    timeout: Duration::from_secs(3),
                    ..guide_op(1)
                },
                SlaError::TimeoutAboveFrequency,
            ),
            (
                SlaOperation {
                    threshold: ms(501),
                    ..guide_op(1)
                },
                SlaError::ThresholdAboveTimeout,
            ),
            (
                SlaOperation {
                    data_size: MAX_DATA_SIZE + 1,
                    ..guide_op(1)
                },
                SlaError::DataTooLarge,
            ),
        ];
        for (op, err) in bad {
            assert_eq!(e.add(t0, op), Err(err));
        }
        e.add(t0, guide_op(1)).unwrap();
        assert_eq!(e.add(t0, guide_op(1)), Err(SlaError::Exists(SlaId(1))));
        assert_eq!(e.remove(SlaId(9)), Err(SlaError::NoSuchOperation(SlaId(9))));
    }

    #[test]
    fn removed_operation_stops_and_its_slot_is_reused_cleanly() {
        let t0 = crate::test_t0();
        let mut e = engine();
        e.add(t0, guide_op(1)).unwrap();
        e.handle_timeout(t0);
        let old = e.poll_probe().unwrap();
        e.remove(SlaId(1)).unwrap();
        assert_eq!(e.poll_timeout(), None);
        assert!(e.is_empty());
        e.add(t0 + ms(100), guide_op(2)).unwrap();
        // The old probe's reply does not complete the new operation.
        assert_eq!(answer(&mut e, t0 + ms(150), &old), None);
        e.handle_timeout(t0 + ms(100));
        assert_eq!(e.poll_probe().unwrap().op_id, SlaId(2));
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn snapshot_is_sorted_by_id() {
        let t0 = crate::test_t0();
        let mut e = engine();
        for id in [5, 1, 3] {
            e.add(t0, guide_op(id)).unwrap();
        }
        let ids: Vec<u32> = e.snapshot().ops.iter().map(|o| o.op.id.0).collect();
        assert_eq!(ids, [1, 3, 5]);
    }
}
