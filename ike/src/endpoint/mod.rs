//! The sans-io IKEv2 endpoint: many IKE SAs behind one or two local UDP sockets (500 and 4500).

mod sa;
mod types;

pub use types::*;

use crate::config::{Fingerprint, Identity, InitiateParams, Profile};
use crate::crypto::Rng;
use crate::wire::{ExchangeType, FLAG_INITIATOR, Message};
use sa::{Ctx, IkeSa};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Standard NAT-T port (RFC 3948).
pub const NAT_T_PORT: u16 = 4500;

/// Error from an operator command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No profile with that name.
    #[error("unknown profile {0}")]
    UnknownProfile(String),
    /// No IKE SA with that id.
    #[error("no such IKE SA")]
    NoSuchSa,
    /// No CHILD_SA with that SPI.
    #[error("no such CHILD_SA")]
    NoSuchChild,
    /// A VPN-SIP profile needs the fingerprint from SDP.
    #[error("VPN-SIP profile without an expected fingerprint")]
    MissingFingerprint,
}

/// One IKEv2 endpoint.
pub struct Endpoint {
    rng: Box<dyn Rng + Send>,
    nat_t_port: u16,
    profiles: Vec<Arc<Profile>>,
    expectations: HashMap<Identity, Fingerprint>,
    /// VPN-SIP: the profile that answers a peer, from [`Endpoint::expect_peer_on`].
    expected_profiles: HashMap<Identity, String>,
    sas: BTreeMap<IkeSaId, IkeSa>,
    /// Each SA's next deadline, as last computed, and a min-heap of them. Heap entries whose time differs
    /// from `deadlines` are stale and skipped, so timers cost O(log n) per SA touched, not O(SAs) per call.
    deadlines: HashMap<IkeSaId, Instant>,
    timers: BinaryHeap<Reverse<(Instant, IkeSaId)>>,
    by_spi: HashMap<u64, IkeSaId>,
    half_open: HashMap<(SocketAddr, u64), IkeSaId>,
    next_id: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    cookie_threshold: Option<usize>,
    cookie_secret: [u8; 32],
    fragment_mtu: Option<u16>,
    pki: crate::pki::Pki,
    /// (monotonic, wall) pair from `set_wall_clock`.
    wall: Option<(Instant, std::time::SystemTime)>,
}

/// The wall-clock time at `now`, from a (monotonic, wall) reference pair.
fn wall_at(
    reference: Option<(Instant, std::time::SystemTime)>,
    now: Instant,
) -> Option<std::time::SystemTime> {
    reference.map(|(at, wall)| {
        if now >= at {
            wall + (now - at)
        } else {
            wall - (at - now)
        }
    })
}

impl core::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Endpoint")
            .field("sas", &self.sas.len())
            .finish()
    }
}

impl Endpoint {
    /// A new endpoint with injected randomness.
    pub fn new(mut rng: Box<dyn Rng + Send>) -> Self {
        let mut cookie_secret = [0u8; 32];
        rng.fill(&mut cookie_secret);
        Endpoint {
            cookie_threshold: None,
            fragment_mtu: None,
            cookie_secret,
            rng,
            nat_t_port: NAT_T_PORT,
            profiles: Vec::new(),
            expectations: HashMap::new(),
            expected_profiles: HashMap::new(),
            sas: BTreeMap::new(),
            deadlines: HashMap::new(),
            timers: BinaryHeap::new(),
            by_spi: HashMap::new(),
            half_open: HashMap::new(),
            next_id: 1,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            pki: crate::pki::Pki::default(),
            wall: None,
        }
    }

    /// Tells the endpoint the wall-clock time `wall` at the monotonic instant `now` (the crate reads no
    /// clock). Needed to validate certificates against CA trustpoints (validity dates, CRL dates); call
    /// again when the system clock is set. Without it, CA-validated peers are refused (`NoClock`).
    pub fn set_wall_clock(&mut self, now: Instant, wall: std::time::SystemTime) {
        self.wall = Some((now, wall));
    }

    /// Adds (or replaces, by name) a CA trustpoint (`crypto pki trustpoint` with a CA certificate).
    /// Profiles name it in `ca_trustpoints`.
    pub fn add_trustpoint(&mut self, tp: crate::pki::Trustpoint) {
        self.pki.trustpoints.retain(|t| t.name != tp.name);
        self.pki.trustpoints.push(tp);
    }

    /// Adds (or replaces, by name) a certificate map (`crypto pki certificate map`). Profiles name it in
    /// `certificate_map`.
    pub fn add_certificate_map(&mut self, m: crate::pki::CertificateMap) {
        self.pki.maps.retain(|x| x.name != m.name);
        self.pki.maps.push(m);
    }

    /// `crypto ikev2 disconnect-revoked-peers`.
    pub fn set_disconnect_revoked_peers(&mut self, on: bool) {
        self.pki.disconnect_revoked_peers = on;
    }

    /// Trustpoints, maps and the revocation setting.
    pub fn pki(&self) -> &crate::pki::Pki {
        &self.pki
    }

    /// A downloaded CRL for `trustpoint` (DER): checked (issuer, signature, dates at the wall clock) and
    /// installed; new IKE_AUTHs are checked against it. When its content changed and
    /// `disconnect-revoked-peers` is on, every IKE SA whose peer certificate (issued by that CA) it
    /// revokes is deleted (DELETE sent; `Event::IkeSaDeleted` with `DeleteReason::CertificateRevoked`).
    /// Returns the IKE SAs being deleted.
    pub fn set_crl(
        &mut self,
        now: Instant,
        trustpoint: &str,
        crl_der: &[u8],
    ) -> Result<Vec<IkeSaId>, crate::pki::PkiError> {
        let wall = wall_at(self.wall, now).ok_or(crate::pki::PkiError::NoClock)?;
        let tp = self
            .pki
            .trustpoints
            .iter_mut()
            .find(|t| t.name == trustpoint)
            .ok_or_else(|| crate::pki::PkiError::UnknownIssuer(trustpoint.to_string()))?;
        let changed = tp.set_crl(crl_der, wall)?;
        if !changed || !self.pki.disconnect_revoked_peers {
            return Ok(Vec::new());
        }
        let Some(tp) = self.pki.trustpoint(trustpoint) else {
            return Ok(Vec::new());
        };
        let revoked: Vec<IkeSaId> = self
            .sas
            .iter()
            .filter(|(_, sa)| {
                sa.peer_cert().is_some_and(|c| {
                    c.trustpoint == trustpoint && c.direct && tp.is_revoked(&c.serial)
                })
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &revoked {
            let _ = self.with_sa(now, *id, |sa, now, ctx| {
                sa.disconnect_revoked(now, ctx);
                Ok(())
            });
        }
        Ok(revoked)
    }

    /// Changes the NAT-T port (the port on which the 4-byte non-ESP marker is used). Default 4500.
    pub fn set_nat_t_port(&mut self, port: u16) {
        self.nat_t_port = port;
    }

    /// IOS `crypto ikev2 cookie-challenge <n>`: above `n` half-open IKE SAs, IKE_SA_INIT requests are answered
    /// with a stateless COOKIE (RFC 7296 §2.6). `None` (default) never asks for cookies.
    pub fn set_cookie_threshold(&mut self, n: Option<usize>) {
        self.cookie_threshold = n;
    }

    /// IOS `crypto ikev2 fragmentation [mtu N]` (RFC 7383): encrypted messages that would make an IP packet
    /// larger than `N` bytes are sent as fragments when the peer announced support. `None` (default): never.
    /// Receiving fragments is always supported (and announced).
    pub fn set_fragment_mtu(&mut self, mtu: Option<u16>) {
        self.fragment_mtu = mtu;
    }

    fn half_open_count(&self) -> usize {
        self.half_open
            .values()
            .filter(|id| self.sas.get(id).is_some_and(IkeSa::is_half_open))
            .count()
    }

    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.6
    //# Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>)
    fn cookie(&self, ni: &[u8], ip: std::net::IpAddr, spi_i: u64) -> Vec<u8> {
        let ip = match ip {
            std::net::IpAddr::V4(a) => a.octets().to_vec(),
            std::net::IpAddr::V6(a) => a.octets().to_vec(),
        };
        let mut c = vec![1u8];
        c.extend_from_slice(&crate::crypto::sha1(&[
            ni,
            &ip,
            &spi_i.to_be_bytes(),
            &self.cookie_secret,
        ]));
        c
    }

    /// Adds (or replaces, by name) a profile. As responder, profiles are matched in order by the peer's
    /// identity (`remote_id`, `None` = any).
    pub fn add_profile(&mut self, p: Profile) {
        let p = Arc::new(p);
        match self.profiles.iter_mut().find(|q| q.name == p.name) {
            Some(q) => *q = p,
            None => self.profiles.push(p),
        }
    }

    /// VPN-SIP responder side: the fingerprint received in SDP from the peer with this identity (its SIP
    /// number as key-id). Replaces an earlier one.
    pub fn expect_peer(&mut self, peer: Identity, fingerprint: Fingerprint) {
        self.expectations.insert(peer, fingerprint);
    }

    /// [`Endpoint::expect_peer`], and the peer's IKE_AUTH is answered with `profile` (its identity and
    /// keyring) instead of the first profile whose `remote_id` matches: a VPN-SIP appliance with several
    /// local numbers keys each number's tunnels with their own profile.
    pub fn expect_peer_on(&mut self, peer: Identity, fingerprint: Fingerprint, profile: &str) {
        self.expected_profiles
            .insert(peer.clone(), profile.to_owned());
        self.expectations.insert(peer, fingerprint);
    }

    /// Forgets an expectation (call ended).
    pub fn forget_peer(&mut self, peer: &Identity) {
        self.expectations.remove(peer);
        self.expected_profiles.remove(peer);
    }

    /// SHA-1 fingerprint of a PSK, for `a=fingerprint:SHA-1` in SDP.
    pub fn local_fingerprint_psk(psk: &[u8]) -> Fingerprint {
        Fingerprint::of_psk(psk)
    }

    /// SHA-1 fingerprint of a DER certificate.
    pub fn fingerprint_cert(der: &[u8]) -> Fingerprint {
        Fingerprint::of_cert(der)
    }

    /// The local SDP fingerprint for a VPN-SIP call to `remote`: the certificate's with `rsa-sig`, else the PSK
    /// of the profile's keyring entry for it.
    pub fn local_fingerprint_for(&self, profile: &str, remote: &Identity) -> Option<Fingerprint> {
        let p = self.profiles.iter().find(|p| p.name == profile)?;
        if let crate::config::LocalAuth::Rsa(c) = &p.local_auth {
            return Some(c.fingerprint());
        }
        // The key we sign with: the peer looks up the same key (its remote one) and hashes it.
        p.keyring
            .lookup_local(remote)
            .map(|k| Fingerprint::of_psk(k.as_bytes()))
    }

    fn alloc_spi(&mut self) -> u64 {
        loop {
            let mut b = [0u8; 8];
            self.rng.fill(&mut b);
            let spi = u64::from_be_bytes(b);
            if spi != 0 && !self.by_spi.contains_key(&spi) {
                return spi;
            }
        }
    }

    /// Starts an IKE SA (IKE_SA_INIT request) and, with it, the first CHILD_SA.
    pub fn initiate(
        &mut self,
        now: Instant,
        params: InitiateParams,
    ) -> Result<IkeSaId, CommandError> {
        let profile = self
            .profiles
            .iter()
            .find(|p| p.name == params.profile)
            .cloned()
            .ok_or_else(|| CommandError::UnknownProfile(params.profile.clone()))?;
        if profile.vpn_sip && params.expected_fingerprint.is_none() {
            return Err(CommandError::MissingFingerprint);
        }
        let id = IkeSaId(self.next_id);
        self.next_id += 1;
        let spi = self.alloc_spi();
        self.by_spi.insert(spi, id);
        let mut ctx = Ctx::new(
            &mut *self.rng,
            &mut self.transmits,
            &mut self.events,
            self.nat_t_port,
        );
        ctx.fragment_mtu = self.fragment_mtu;
        let sa = IkeSa::initiate(now, id, spi, profile, &params, &mut ctx);
        self.sas.insert(id, sa);
        self.rearm(id);
        Ok(id)
    }

    /// Feeds one UDP payload received on `local` from `remote`.
    pub fn handle_input(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
    ) {
        let data = if local.port() == self.nat_t_port {
            //= https://www.rfc-editor.org/rfc/rfc3948#section-2.2
            //# The sender MUST use a one-octet-long payload with the value 0xFF.
            if datagram == [0xff] {
                return;
            }
            //= https://www.rfc-editor.org/rfc/rfc3948#section-2.2
            //# Non-ESP Marker: 32 bits of zero, placed after the UDP header
            match datagram.split_first_chunk::<4>() {
                Some(([0, 0, 0, 0], rest)) => rest,
                _ => return, // ESP: the dataplane's business
            }
        } else {
            datagram
        };
        let Ok(msg) = Message::parse(data) else {
            return;
        };
        let h = msg.header;
        if h.exchange_type == ExchangeType::IKE_SA_INIT && !h.is_response() && h.responder_spi == 0
        {
            self.on_sa_init_request(now, local, remote, msg, data);
            return;
        }
        let ours = if h.flags & FLAG_INITIATOR != 0 {
            h.responder_spi
        } else {
            h.initiator_spi
        };
        let Some(id) = self.by_spi.get(&ours).copied() else {
            return;
        };
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        let mut ctx = Ctx::new(
            &mut *self.rng,
            &mut self.transmits,
            &mut self.events,
            self.nat_t_port,
        );
        ctx.fragment_mtu = self.fragment_mtu;
        ctx.profiles = &self.profiles;
        ctx.expectations = &self.expectations;
        ctx.expected_profiles = &self.expected_profiles;
        ctx.pki = &self.pki;
        ctx.wall = wall_at(self.wall, now);
        sa.handle_message(now, local, remote, &msg, data, &mut ctx);
        let spis = std::mem::take(&mut ctx.new_spis);
        let gone = std::mem::take(&mut ctx.dropped_spis);
        for s in spis {
            self.by_spi.insert(s, id);
        }
        for s in gone {
            self.by_spi.remove(&s);
        }
        self.reap(id);
    }

    fn on_sa_init_request(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        msg: Message,
        raw: &[u8],
    ) {
        let key = (remote, msg.header.initiator_spi);
        if let Some(id) = self.half_open.get(&key).copied()
            && let Some(sa) = self.sas.get_mut(&id)
        {
            let mut ctx = Ctx::new(
                &mut *self.rng,
                &mut self.transmits,
                &mut self.events,
                self.nat_t_port,
            );
            ctx.fragment_mtu = self.fragment_mtu;
            sa.retransmit_sa_init_response(raw, &mut ctx);
            return;
        }
        if self.profiles.is_empty() {
            return;
        }
        if self
            .cookie_threshold
            .is_some_and(|t| self.half_open_count() >= t)
        {
            let ni = msg.payloads.iter().find_map(|p| {
                if let crate::wire::Payload::Nonce(n) = p {
                    Some(n.as_slice())
                } else {
                    None
                }
            });
            let want = self.cookie(ni.unwrap_or(&[]), remote.ip(), msg.header.initiator_spi);
            let got = match msg.payloads.first() {
                Some(crate::wire::Payload::Notify(n))
                    if n.notify_type == crate::wire::NotifyType::COOKIE =>
                {
                    Some(&n.data)
                }
                _ => None,
            };
            if got.is_none_or(|g| {
                !bool::from(subtle::ConstantTimeEq::ct_eq(g.as_slice(), want.as_slice()))
            }) {
                let n = crate::wire::Notify::new(crate::wire::NotifyType::COOKIE, want);
                let raw = sa::unprotected_error(msg.header.initiator_spi, n);
                Ctx::new(
                    &mut *self.rng,
                    &mut self.transmits,
                    &mut self.events,
                    self.nat_t_port,
                )
                .send_raw(local, remote, &raw);
                return;
            }
        }
        let spi = self.alloc_spi();
        let id = IkeSaId(self.next_id);
        let proposals: Vec<_> = self
            .profiles
            .iter()
            .flat_map(|p| p.ike_proposals.iter().cloned())
            .collect();
        let profile = self.profiles[0].clone();
        let mut ctx = Ctx::new(
            &mut *self.rng,
            &mut self.transmits,
            &mut self.events,
            self.nat_t_port,
        );
        ctx.fragment_mtu = self.fragment_mtu;
        if let Some(sa) = IkeSa::respond_init(
            now, id, spi, profile, &proposals, local, remote, &msg, raw, &mut ctx,
        ) {
            self.next_id += 1;
            self.by_spi.insert(spi, id);
            self.half_open.insert(key, id);
            self.sas.insert(id, sa);
            self.rearm(id);
        }
    }

    /// After an SA was touched: its timer entry follows its next deadline.
    fn rearm(&mut self, id: IkeSaId) {
        match self.sas.get(&id).and_then(IkeSa::next_deadline) {
            Some(t) => {
                if self.deadlines.insert(id, t) != Some(t) {
                    self.timers.push(Reverse((t, id)));
                }
            }
            None => {
                self.deadlines.remove(&id);
            }
        }
        self.drop_stale_timers();
    }

    /// Pops stale entries off the top of the timer heap, so that its top is always a live deadline.
    fn drop_stale_timers(&mut self) {
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            if self.deadlines.get(&id) == Some(&t) {
                break;
            }
            self.timers.pop();
        }
    }

    /// Every SA touch ends here: the SA is removed if dead, and its timer rearmed.
    fn reap(&mut self, id: IkeSaId) {
        self.rearm(id);
        let dead = self.sas.get(&id).is_none_or(|s| s.is_dead());
        if dead {
            if let Some(sa) = self.sas.remove(&id) {
                for s in sa.spis() {
                    self.by_spi.remove(&s);
                }
            }
            self.half_open.retain(|_, v| *v != id);
        }
    }

    /// Advances timers (retransmissions, DPD, rekeys, lifetimes, keepalives).
    pub fn handle_timeout(&mut self, now: Instant) {
        // Only the SAs whose deadline has come (O(log n) each), in deadline order.
        let mut ids = Vec::new();
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            if self.deadlines.get(&id) == Some(&t) {
                self.deadlines.remove(&id);
                ids.push(id);
            }
        }
        for id in ids {
            let Some(sa) = self.sas.get_mut(&id) else {
                continue;
            };
            let mut ctx = Ctx::new(
                &mut *self.rng,
                &mut self.transmits,
                &mut self.events,
                self.nat_t_port,
            );
            ctx.fragment_mtu = self.fragment_mtu;
            sa.handle_timeout(now, &mut ctx);
            let spis = std::mem::take(&mut ctx.new_spis);
            let gone = std::mem::take(&mut ctx.dropped_spis);
            for s in spis {
                self.by_spi.insert(s, id);
            }
            for s in gone {
                self.by_spi.remove(&s);
            }
            self.reap(id);
        }
        self.drop_stale_timers();
    }

    fn with_sa<T>(
        &mut self,
        now: Instant,
        id: IkeSaId,
        f: impl FnOnce(&mut IkeSa, Instant, &mut Ctx<'_>) -> Result<T, CommandError>,
    ) -> Result<T, CommandError> {
        let sa = self.sas.get_mut(&id).ok_or(CommandError::NoSuchSa)?;
        let mut ctx = Ctx::new(
            &mut *self.rng,
            &mut self.transmits,
            &mut self.events,
            self.nat_t_port,
        );
        ctx.fragment_mtu = self.fragment_mtu;
        let r = f(sa, now, &mut ctx);
        let spis = std::mem::take(&mut ctx.new_spis);
        for s in spis {
            self.by_spi.insert(s, id);
        }
        self.reap(id);
        r
    }

    /// Deletes an IKE SA and its CHILD_SAs (INFORMATIONAL with a Delete payload).
    pub fn delete_ike_sa(&mut self, now: Instant, id: IkeSaId) -> Result<(), CommandError> {
        self.with_sa(now, id, |sa, now, ctx| {
            sa.command(now, sa::Cmd::DeleteIke, ctx);
            Ok(())
        })
    }

    /// Rekeys a CHILD_SA (identified by its inbound SPI), with PFS when the profile says so.
    pub fn rekey_child(
        &mut self,
        now: Instant,
        id: IkeSaId,
        spi_in: u32,
    ) -> Result<(), CommandError> {
        self.with_sa(now, id, |sa, now, ctx| {
            if !sa.has_child(spi_in) {
                return Err(CommandError::NoSuchChild);
            }
            sa.command(now, sa::Cmd::RekeyChild(spi_in), ctx);
            Ok(())
        })
    }

    /// Rekeys the IKE SA itself (CREATE_CHILD_SA); the `IkeSaId` stays the same.
    pub fn rekey_ike_sa(&mut self, now: Instant, id: IkeSaId) -> Result<(), CommandError> {
        self.with_sa(now, id, |sa, now, ctx| {
            sa.command(now, sa::Cmd::RekeyIke, ctx);
            Ok(())
        })
    }

    /// The coordinator saw authenticated ESP in UDP of this IKE SA's CHILD_SAs arrive from `remote`: the
    /// peer's NAT rebound it to a new port (RFC 7296 §2.23; the SA itself follows an authenticated request
    /// from a new port on its own). The SA's own messages go there from now on. `Ok(true)` when it moved;
    /// only the port of a UDP-encapsulated SA ever does.
    pub fn peer_moved(&mut self, id: IkeSaId, remote: SocketAddr) -> Result<bool, CommandError> {
        let sa = self.sas.get_mut(&id).ok_or(CommandError::NoSuchSa)?;
        Ok(sa.follow_peer_port(remote))
    }

    /// Sends a liveness check now (DPD on demand, e.g. traffic sent but none received).
    pub fn dpd_probe(&mut self, now: Instant, id: IkeSaId) -> Result<(), CommandError> {
        self.with_sa(now, id, |sa, now, ctx| {
            sa.command(now, sa::Cmd::Dpd, ctx);
            Ok(())
        })
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the coordinator.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Earliest deadline of any timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // The heap's top is live (stale entries are dropped whenever the top changes).
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Plain data for `show crypto ikev2 sa` and `show crypto session detail`.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        Snapshot {
            ike_sas: self
                .sas
                .values()
                .filter_map(|s| s.snapshot(now, self.fragment_mtu))
                .collect(),
        }
    }
}
