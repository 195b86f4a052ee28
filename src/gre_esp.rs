//! `tunnel protection ipsec profile P` on GRE and mGRE tunnels: one transport-mode ESP SA pair per NBMA peer,
//! keyed by IKE with host-to-host GRE (IP protocol 47) selectors, brought up on demand by the first GRE
//! packet for the peer (an NHRP registration, resolution, or data). Sans-io, part of [`crate::node::Node`].
//!
//! Behind NAT (IKE detected it, or `nat force-encap`) the peer's ESP travels in UDP (RFC 3948) from and to the
//! ports IKE ended on ([`PeerSa::udp`]); the node sends it on its IKE port-4500 socket like an SVTI's.
//!
//! With `tunnel protection ipsec profile P shared` the tunnels on one source and profile share one SA database:
//! the peers here are keyed by the first such tunnel's index ([`crate::gre::GreTunnel::sadb`]), so one IKE SA
//! and one SA pair per NBMA peer carry the GRE of all of them (the GRE key picks the tunnel after decryption);
//! whichever tunnel sends to a peer first brings the pair up, and it stays while any of them uses it.
//!
//! Keyed by IKEv2 (the IPsec profile's `set ikev2-profile`) or, without one, by IKEv1 (`crate::ikev1`, the GRE
//! quick-mode set): both hand the node the same `ChildSaKeys`, installed here by `Node::install_gre_child`.
//!
//! NAT rebinding: the newest authenticated ESP in UDP (a sequence number above all before it) from a new port
//! of the peer's address moves [`PeerSa::udp`] (and the IKE SA, IKEv2 or IKEv1) there ([`GreEsp::open`],
//! `Node::gre_peer_moved`); a late, reordered packet from the old port does not move it back. A peer whose
//! NBMA *address* changes is a new peer. (NAT keepalives come from the IKE SA, on the same UDP 4500 address
//! pair.)
//!
//! A peer behind NAT keys us rather than we it (`Node::waits_for_natted_peer`, [`PeerSa::nat_wait`]); when it
//! has not within [`NAT_PEER_WAIT`], a timer ([`GreEsp::nat_waits_over`]) makes us initiate.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use dataplane::{HEADROOM, InboundSa, OutboundSa, TAILROOM};
use ike::IkeSaId;

use crate::pkt::PacketBuf;

/// Packets held per peer while its SA is negotiated.
const PENDING_MAX: usize = 32;
/// After a negotiation with a peer failed (refused, unauthenticated, unanswered), its packets are dropped
/// for this long before the next one initiates again: at most one attempt per second per peer, not one
/// per packet against a peer that refuses us.
pub const RETRY_HOLD: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a peer's packets wait for its SA before later ones (and the waiting ones) go through the NHS
/// (`Node::gre_detour`): an SA normally comes up in well under a second.
pub const DETOUR_AFTER: std::time::Duration = std::time::Duration::from_secs(3);

/// How long protected GRE waits for a peer behind NAT to start IKE before initiating itself
/// (`Node::waits_for_natted_peer`).
pub const NAT_PEER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// True when an IKE SA went because its negotiation failed (as opposed to a delete, DPD or expiry).
pub fn negotiation_failed(reason: &ike::DeleteReason) -> bool {
    matches!(
        reason,
        ike::DeleteReason::NegotiationTimeout
            | ike::DeleteReason::NegotiationFailed(_)
            | ike::DeleteReason::AuthFailed(_)
    )
}

/// The ESP state of one (SA database, peer) pair.
#[derive(Default)]
pub struct PeerSa {
    pub out: Option<OutboundSa>,
    /// SPIs of this peer's inbound SAs (the SAs live in [`GreEsp::inbound`]).
    pub spis: Vec<u32>,
    /// GRE packets waiting for the SA.
    pub pending: Vec<PacketBuf>,
    /// The IKE SA being negotiated or in use.
    pub ike: Option<IkeSaId>,
    /// ESP in UDP: (our address and port, the peer's as seen after NAT) of the IKE SA that made the pair.
    pub udp: Option<(SocketAddr, SocketAddr)>,
    /// Since when we wait for this peer, behind NAT, to key us (see `Node::waits_for_natted_peer`).
    pub nat_wait: Option<Instant>,
    /// After a failed negotiation: no new one (and packets dropped) before this instant.
    pub retry_at: Option<Instant>,
    /// Since when packets wait for this peer's SA (cleared when it is installed).
    pub waiting: Option<Instant>,
    /// When ESP from this peer last decrypted (IKEv1 on-demand DPD, `Node::v1_gre_on_demand_dpd`).
    pub heard: Option<Instant>,
    /// The inbound SA (SPI) whose packet last moved [`Self::udp`] (NAT rebinding, [`GreEsp::open`]).
    pub moved_on: Option<u32>,
    /// Creation order (`show crypto map` lists the profile instances in it).
    pub seq: u64,
    pub encrypted: u64,
    pub decrypted: u64,
}

#[derive(Default)]
pub struct GreEsp {
    /// (SA database: the index of its first tunnel, NBMA peer) -> state.
    pub peers: HashMap<(usize, Ipv4Addr), PeerSa>,
    /// Inbound SPI -> (SA, SA database, peer).
    pub inbound: HashMap<u32, (InboundSa, usize, Ipv4Addr)>,
    /// Packets dropped: no SA and the queue full, or encryption/decryption failed.
    pub dropped: u64,
    next_seq: u64,
    /// The waits for peers behind NAT to key us ([`PeerSa::nat_wait`]): (since, GRE tunnel, SA database,
    /// peer). An entry outlives a wait that ended early (the peer's SA came) until its deadline.
    nat_timers: Vec<(Instant, usize, usize, Ipv4Addr)>,
}

/// An authentic ESP packet of a GRE peer ([`GreEsp::open`]).
pub struct Opened {
    /// The SA database (the index of its first tunnel).
    pub tunnel: usize,
    pub peer: Ipv4Addr,
    pub gre: PacketBuf,
    /// The peer's NAT moved it to the packet's source port: its ESP went to this address before.
    pub moved: Option<SocketAddr>,
}

/// What to do with an outgoing GRE packet.
pub enum Sealed {
    /// The ESP packet (IP protocol 50) to send, in the GRE packet's buffer.
    Esp(PacketBuf),
    /// Queued; negotiate an SA with the peer (`true`: no IKE SA is under way yet).
    Queued {
        initiate: bool,
    },
    Dropped,
}

impl GreEsp {
    /// Encrypt a GRE packet for `peer`, or queue it until the SA exists.
    /// The peer's state, made (numbered in creation order) if it is new.
    fn peer<'a>(
        peers: &'a mut HashMap<(usize, Ipv4Addr), PeerSa>,
        next_seq: &mut u64,
        tunnel: usize,
        peer: Ipv4Addr,
    ) -> &'a mut PeerSa {
        let seq = *next_seq;
        let p = peers.entry((tunnel, peer)).or_insert_with(|| PeerSa {
            seq,
            ..PeerSa::default()
        });
        if p.seq == seq {
            *next_seq += 1;
        }
        p
    }

    /// True when packets for `peer` are sealed at once (its outbound SA is up).
    pub fn ready(&self, tunnel: usize, peer: Ipv4Addr) -> bool {
        self.peers
            .get(&(tunnel, peer))
            .is_some_and(|p| p.out.is_some())
    }

    /// `peer` has no SA and its packets have waited long enough ([`DETOUR_AFTER`]), or fill the queue, or
    /// a failed negotiation holds it: its packets should go another way meanwhile.
    pub fn stalled(&self, now: Instant, tunnel: usize, peer: Ipv4Addr) -> bool {
        self.peers.get(&(tunnel, peer)).is_some_and(|p| {
            p.out.is_none()
                && (p.retry_at.is_some_and(|t| now < t)
                    || p.pending.len() >= PENDING_MAX
                    || p.waiting.is_some_and(|t| now >= t + DETOUR_AFTER))
        })
    }

    /// The waiting packets for `peer` that `keep` selects (the rest stay).
    pub fn take_pending(
        &mut self,
        tunnel: usize,
        peer: Ipv4Addr,
        keep: impl Fn(&PacketBuf) -> bool,
    ) -> Vec<PacketBuf> {
        let Some(p) = self.peers.get_mut(&(tunnel, peer)) else {
            return Vec::new();
        };
        let (taken, left) = std::mem::take(&mut p.pending).into_iter().partition(keep);
        p.pending = left;
        taken
    }

    /// A packet for `peer` is sent elsewhere meanwhile: true when a negotiation with it should start now
    /// (none under way, and not held after a failed one), as [`Sealed::Queued`] says for a queued packet.
    pub fn want(&mut self, now: Instant, tunnel: usize, peer: Ipv4Addr) -> bool {
        let p = Self::peer(&mut self.peers, &mut self.next_seq, tunnel, peer);
        p.out.is_none() && p.ike.is_none() && p.retry_at.is_none_or(|t| now >= t)
    }

    /// Encrypts in place: the ESP header goes into the buffer's headroom, the trailer after the packet
    /// (a buffer without that room is copied once).
    pub fn seal(&mut self, now: Instant, tunnel: usize, peer: Ipv4Addr, gre: PacketBuf) -> Sealed {
        let p = Self::peer(&mut self.peers, &mut self.next_seq, tunnel, peer);
        let Some(out) = p.out.as_mut() else {
            let held = p.ike.is_none() && p.retry_at.is_some_and(|t| now < t);
            if held || p.pending.len() >= PENDING_MAX {
                self.dropped += 1;
                return Sealed::Dropped;
            }
            p.pending.push(gre);
            p.waiting.get_or_insert(now);
            return Sealed::Queued {
                initiate: p.ike.is_none(),
            };
        };
        let mut gre = gre;
        let (block, r) = gre.block_mut();
        if r.start < HEADROOM || block.len() - r.end < TAILROOM {
            gre = PacketBuf::copy_with_headroom(HEADROOM, &gre);
        }
        let (block, r) = gre.block_mut();
        match out.encapsulate(now, block, r, 47) {
            Ok(r) => {
                p.encrypted += 1;
                gre.set_range(r);
                Sealed::Esp(gre)
            }
            Err(_) => {
                self.dropped += 1;
                Sealed::Dropped
            }
        }
    }

    /// An ESP packet from `from`: `Some` when it is ours and authentic. The GRE packet is decrypted in place
    /// in a pooled copy of `esp`, with room in front for a hub to send it on.
    ///
    /// NAT rebinding: when the packet came in UDP from a new port of the peer's address, the peer's ESP
    /// goes there from now on ([`PeerSa::udp`]; [`Opened::moved`] tells the node, which moves the IKE SA
    /// too) - but only for the newest packet (a sequence number above every one its SA authenticated
    /// before, on an SA no older than the one of the last move). A packet the network reordered, still
    /// from the old port, arrives late inside the replay window and is authentic too; it must not move
    /// the pair back (RFC 7296 §2.23, RFC 4555 §3.5).
    pub fn open(&mut self, now: Instant, esp: &[u8], from: SocketAddr) -> Option<Opened> {
        let spi = u32::from_be_bytes(esp.get(..4)?.try_into().ok()?);
        let (sa, tunnel, peer) = self.inbound.get_mut(&spi)?;
        let mut b = PacketBuf::copy_with_headroom(HEADROOM, esp);
        let (block, r) = b.block_mut();
        match sa.decapsulate(now, block, r) {
            Ok(d) if d.next_header == 47 => {
                let (tunnel, peer) = (*tunnel, *peer);
                let mut moved = None;
                if let Some(p) = self.peers.get_mut(&(tunnel, peer)) {
                    p.decrypted += 1;
                    p.heard = Some(now);
                    // After a rekey, a late packet of the older SA pair (the newest of that SA, sent
                    // before the peer switched) must not undo a move that a packet of the newer SA made:
                    // [`PeerSa::spis`] is in install order.
                    let order = |spi: u32| p.spis.iter().position(|s| *s == spi);
                    let not_older = p
                        .moved_on
                        .and_then(order)
                        .is_none_or(|last| order(spi).is_some_and(|i| i >= last));
                    // A new address is not followed: the peer is keyed by its NBMA address.
                    if d.newest
                        && not_older
                        && from.port() != 0
                        && from.ip() == IpAddr::V4(peer)
                        && let Some((local, old)) = p.udp.filter(|(_, r)| *r != from)
                    {
                        p.udp = Some((local, from));
                        p.moved_on = Some(spi);
                        moved = Some(old);
                    }
                }
                b.set_range(d.range);
                Some(Opened {
                    tunnel,
                    peer,
                    gre: b,
                    moved,
                })
            }
            _ => {
                self.dropped += 1;
                None
            }
        }
    }

    /// GRE tunnel `tunnel` (SA database `sadb`) started waiting at `now` for `peer`, behind NAT, to key us
    /// ([`PeerSa::nat_wait`] is `now`): [`Self::nat_waits_over`] reports it [`NAT_PEER_WAIT`] later.
    pub fn nat_wait_timer(&mut self, now: Instant, tunnel: usize, sadb: usize, peer: Ipv4Addr) {
        self.nat_timers.push((now, tunnel, sadb, peer));
    }

    /// When the next wait for a peer behind NAT ends.
    pub fn nat_wait_deadline(&self) -> Option<Instant> {
        self.nat_timers
            .iter()
            .map(|(since, ..)| *since + NAT_PEER_WAIT)
            .min()
    }

    /// The waits for peers behind NAT that ended by `now` with the peer still unkeyed, no IKE SA under way
    /// and packets waiting for it: (GRE tunnel, peer), which we now key ourselves (a static NAT or a port
    /// forward lets our IKE in). Without this, the wait ended only with the next packet for the peer.
    pub fn nat_waits_over(&mut self, now: Instant) -> Vec<(usize, Ipv4Addr)> {
        let mut over = Vec::new();
        let peers = &self.peers;
        self.nat_timers.retain(|&(since, tunnel, sadb, peer)| {
            if now < since + NAT_PEER_WAIT {
                return true;
            }
            let unkeyed = peers.get(&(sadb, peer)).is_some_and(|p| {
                p.nat_wait == Some(since)
                    && p.ike.is_none()
                    && p.out.is_none()
                    && (!p.pending.is_empty() || p.waiting.is_some())
            });
            if unkeyed {
                over.push((tunnel, peer));
            }
            false
        });
        over
    }

    /// How `peer`'s ESP leaves: `Some((local, remote))` for ESP in UDP, `None` for IP protocol 50.
    pub fn udp(&self, tunnel: usize, peer: Ipv4Addr) -> Option<(SocketAddr, SocketAddr)> {
        self.peers.get(&(tunnel, peer)).and_then(|p| p.udp)
    }

    /// True when `spi` is one of ours.
    pub fn owns(&self, spi: u32) -> bool {
        self.inbound.contains_key(&spi)
    }

    /// A CHILD_SA for (tunnel, peer) is up: the new outbound SA replaces the old one (older inbound SAs
    /// stay until IKE deletes them); returns the packets that waited, encrypted.
    pub fn install(
        &mut self,
        now: Instant,
        tunnel: usize,
        peer: Ipv4Addr,
        out: OutboundSa,
        inb: InboundSa,
        udp: Option<(SocketAddr, SocketAddr)>,
    ) -> Vec<PacketBuf> {
        let spi = inb.spi();
        self.inbound.insert(spi, (inb, tunnel, peer));
        let p = Self::peer(&mut self.peers, &mut self.next_seq, tunnel, peer);
        p.spis.push(spi);
        p.out = Some(out);
        p.udp = udp;
        p.nat_wait = None;
        p.waiting = None;
        let waiting = std::mem::take(&mut p.pending);
        waiting
            .into_iter()
            .filter_map(|g| match self.seal(now, tunnel, peer, g) {
                Sealed::Esp(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    /// A CHILD_SA went (`spi_in` is our inbound SPI of it). Returns the peer's IKE SA when this was the
    /// pair in use (no rekey replaced it first): the peer is left without an SA under a live IKE SA.
    pub fn remove_child(&mut self, spi_in: u32, spi_out: u32) -> Option<IkeSaId> {
        let (_, tunnel, peer) = self.inbound.remove(&spi_in)?;
        let p = self.peers.get_mut(&(tunnel, peer))?;
        p.spis.retain(|s| *s != spi_in);
        if p.out.as_ref().is_some_and(|o| o.spi() == spi_out) {
            p.out = None;
            return p.ike;
        }
        None
    }

    /// An IKE SA went: its peers may negotiate again. When it went `failed` (refused, unauthenticated or
    /// unanswered) before keying a peer, the packets that waited for it are dropped (counted) and the
    /// peer is held for [`RETRY_HOLD`]; the next packet after that initiates again.
    pub fn ike_gone(&mut self, now: Instant, id: IkeSaId, failed: bool) {
        for p in self.peers.values_mut() {
            if p.ike == Some(id) {
                p.ike = None;
                p.nat_wait = None;
                // The next negotiation gets its own grace before packets go through the NHS (during a
                // retry hold they do at once).
                p.waiting = None;
                if failed && p.out.is_none() {
                    self.dropped += p.pending.len() as u64;
                    p.pending.clear();
                    p.retry_at = Some(now + RETRY_HOLD);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn gre() -> PacketBuf {
        PacketBuf::copy_from(&[0u8; 100])
    }

    /// A GRE peer's SA pair keyed as ESP in UDP, with the peer's own outbound SA (its side of our inbound
    /// SA) to make its packets.
    fn keyed_pair(
        now: Instant,
        e: &mut GreEsp,
        peer: Ipv4Addr,
        udp: (SocketAddr, SocketAddr),
        spi_in: u32,
    ) -> OutboundSa {
        use dataplane::{Encr, Lifetime, Mode, SaParams, crypto::AesKeyLen};
        let params = |spi| SaParams {
            spi,
            encr: Encr::AesGcm16(AesKeyLen::Aes128),
            integ: None,
            enc_key: &[0x5a; 20],
            integ_key: &[],
            esn: false,
            mode: Mode::Transport,
            replay_window: 64,
            lifetime: Lifetime::unlimited(),
            idle_timeout: None,
        };
        let out = OutboundSa::new(now, &params(spi_in - 0x100)).unwrap();
        let inb = InboundSa::new(now, &params(spi_in)).unwrap();
        e.install(now, 0, peer, out, inb, Some(udp));
        OutboundSa::new(now, &params(spi_in)).unwrap()
    }

    /// The peer's ESP with sequence number `seq` (GRE inside).
    fn esp_from_peer(now: Instant, theirs: &mut OutboundSa, seq: u64) -> Vec<u8> {
        theirs.set_sequence(seq - 1);
        let mut buf = vec![0u8; HEADROOM + 40 + TAILROOM];
        let r = theirs
            .encapsulate(now, &mut buf, HEADROOM..HEADROOM + 40, 47)
            .unwrap();
        buf[r].to_vec()
    }

    /// The detour's clock: a peer whose packets have waited [`DETOUR_AFTER`] without an SA is stalled (not
    /// before), as it is at once while a failed negotiation holds it; an installed SA ends it, and the next
    /// negotiation gets its own grace. `take_pending` takes only what its filter selects.
    #[test]
    fn a_peer_is_stalled_after_its_packets_waited_and_while_held() {
        let t0 = Instant::now();
        let peer = Ipv4Addr::new(203, 0, 113, 2);
        let mut e = GreEsp::default();
        assert!(!e.stalled(t0, 0, peer));
        assert!(matches!(
            e.seal(t0, 0, peer, PacketBuf::copy_from(&[1u8; 60])),
            Sealed::Queued { initiate: true }
        ));
        e.peers.get_mut(&(0, peer)).unwrap().ike = Some(IkeSaId(7));
        let _ = e.seal(t0, 0, peer, PacketBuf::copy_from(&[2u8; 60]));
        assert!(!e.want(t0, 0, peer), "a negotiation is under way");
        assert!(!e.stalled(t0 + DETOUR_AFTER - Duration::from_millis(1), 0, peer));
        assert!(e.stalled(t0 + DETOUR_AFTER, 0, peer));
        let ones = e.take_pending(0, peer, |g| g[0] == 1);
        assert_eq!(ones.len(), 1);
        assert_eq!(
            e.peers[&(0, peer)].pending.len(),
            1,
            "the other packet waits on"
        );
        // The negotiation fails: held (stalled at once), and no new one before the hold ends.
        let t1 = t0 + Duration::from_secs(10);
        e.ike_gone(t1, IkeSaId(7), true);
        assert!(e.stalled(t1, 0, peer));
        assert!(!e.want(t1, 0, peer));
        let t2 = t1 + RETRY_HOLD;
        assert!(!e.stalled(t2, 0, peer), "a new negotiation gets its grace");
        assert!(e.want(t2, 0, peer));
        let _ = e.seal(t2, 0, peer, PacketBuf::copy_from(&[3u8; 60]));
        assert!(e.stalled(t2 + DETOUR_AFTER, 0, peer));
        // An SA: not stalled, ready.
        let local: SocketAddr = "198.51.100.1:4500".parse().unwrap();
        let remote: SocketAddr = "203.0.113.2:4500".parse().unwrap();
        let _ = keyed_pair(t2, &mut e, peer, (local, remote), 0x200);
        assert!(e.ready(0, peer));
        assert!(!e.stalled(t2 + DETOUR_AFTER, 0, peer));
    }

    /// The peer deletes the SA pair in use but keeps the IKE SA: `remove_child` names that IKE SA (nothing
    /// else would key the peer again); an older pair's deletion after a rekey does not.
    #[test]
    fn deleting_the_pair_in_use_names_the_ike_sa_left_without_one() {
        let t0 = Instant::now();
        let peer = Ipv4Addr::new(203, 0, 113, 2);
        let local: SocketAddr = "198.51.100.1:4500".parse().unwrap();
        let remote: SocketAddr = "203.0.113.2:4500".parse().unwrap();
        let mut e = GreEsp::default();
        let _ = keyed_pair(t0, &mut e, peer, (local, remote), 0x200);
        e.peers.get_mut(&(0, peer)).unwrap().ike = Some(IkeSaId(7));
        let _ = keyed_pair(t0, &mut e, peer, (local, remote), 0x300);
        assert_eq!(e.remove_child(0x200, 0x100), None, "a rekeyed-away pair");
        assert_eq!(e.remove_child(0x300, 0x200), Some(IkeSaId(7)));
        assert!(!e.ready(0, peer));
    }

    /// The NAT rebinds the peer from port A to B, and the network reorders: seq 9 from A, seq 10 from B
    /// (the pair moves to B), then seq 8 late from A. Seq 8 is authentic and inside the replay window, but
    /// not the newest: the pair stays on B (before, it moved back to A until the peer's next packet).
    #[test]
    fn only_the_newest_packet_moves_the_pair_to_a_new_port() {
        let now = Instant::now();
        let peer = Ipv4Addr::new(203, 0, 113, 2);
        let local: SocketAddr = "198.51.100.1:4500".parse().unwrap();
        let a: SocketAddr = "203.0.113.2:4500".parse().unwrap();
        let b: SocketAddr = "203.0.113.2:40001".parse().unwrap();
        let mut e = GreEsp::default();
        let mut theirs = keyed_pair(now, &mut e, peer, (local, a), 0x200);
        let mut open = |e: &mut GreEsp, seq, from| {
            let o = e
                .open(now, &esp_from_peer(now, &mut theirs, seq), from)
                .unwrap();
            assert_eq!((o.tunnel, o.peer), (0, peer));
            o.moved
        };
        assert_eq!(open(&mut e, 9, a), None);
        assert_eq!(e.udp(0, peer), Some((local, a)));
        assert_eq!(open(&mut e, 10, b), Some(a));
        assert_eq!(e.udp(0, peer), Some((local, b)));
        assert_eq!(
            open(&mut e, 8, a),
            None,
            "a late packet moved the pair back"
        );
        assert_eq!(e.udp(0, peer), Some((local, b)));
        // The newest packet from A again (the NAT went back): followed.
        assert_eq!(open(&mut e, 11, a), Some(b));
        assert_eq!(e.udp(0, peer), Some((local, a)));
        // Another address is not followed (the peer is keyed by its NBMA address).
        let elsewhere: SocketAddr = "203.0.113.9:4500".parse().unwrap();
        assert_eq!(open(&mut e, 12, elsewhere), None);
        assert_eq!(e.udp(0, peer), Some((local, a)));
        assert_eq!(e.peers[&(0, peer)].decrypted, 5);
    }

    /// A rekey meets a NAT rebinding: the first packet of the new SA pair comes from the new port B and
    /// moves the pair; then the old SA's last packet, sent from port A before the peer switched, arrives
    /// late. It is the newest of its SA, but its SA is older than the one that moved the pair: no move back.
    #[test]
    fn a_late_packet_of_the_older_sa_does_not_undo_a_move_after_a_rekey() {
        let now = Instant::now();
        let peer = Ipv4Addr::new(203, 0, 113, 2);
        let local: SocketAddr = "198.51.100.1:4500".parse().unwrap();
        let a: SocketAddr = "203.0.113.2:4500".parse().unwrap();
        let b: SocketAddr = "203.0.113.2:40001".parse().unwrap();
        let mut e = GreEsp::default();
        let mut old = keyed_pair(now, &mut e, peer, (local, a), 0x200);
        let open = |e: &mut GreEsp, theirs: &mut OutboundSa, seq, from| {
            let o = e.open(now, &esp_from_peer(now, theirs, seq), from).unwrap();
            o.moved
        };
        assert_eq!(open(&mut e, &mut old, 100, a), None);
        let mut new = keyed_pair(now, &mut e, peer, (local, a), 0x300);
        assert_eq!(open(&mut e, &mut new, 1, b), Some(a));
        assert_eq!(
            open(&mut e, &mut old, 101, a),
            None,
            "the old SA moved it back"
        );
        assert_eq!(e.udp(0, peer), Some((local, b)));
        assert_eq!(open(&mut e, &mut new, 2, b), None);
        // The NAT goes back to A: the new SA's newest packet follows it.
        assert_eq!(open(&mut e, &mut new, 3, a), Some(b));
        assert_eq!(e.udp(0, peer), Some((local, a)));
        // Once the old SA is gone, the remaining one moves the pair as before.
        e.remove_child(0x200, 0x100);
        assert_eq!(open(&mut e, &mut new, 4, b), Some(a));
    }

    #[test]
    fn a_failed_negotiation_empties_the_queue_and_the_peer_initiates_again_after_the_hold() {
        let t0 = Instant::now();
        let peer = Ipv4Addr::new(203, 0, 113, 2);
        let mut e = GreEsp::default();
        assert!(matches!(
            e.seal(t0, 0, peer, gre()),
            Sealed::Queued { initiate: true }
        ));
        e.peers.get_mut(&(0, peer)).unwrap().ike = Some(IkeSaId(7));
        for _ in 1..PENDING_MAX {
            assert!(matches!(
                e.seal(t0, 0, peer, gre()),
                Sealed::Queued { initiate: false }
            ));
        }
        assert!(matches!(e.seal(t0, 0, peer, gre()), Sealed::Dropped));
        assert_eq!(e.dropped, 1);

        // The peer refused us: the waiting packets go, and nothing initiates for RETRY_HOLD...
        e.ike_gone(t0, IkeSaId(7), true);
        assert_eq!(e.dropped, 1 + PENDING_MAX as u64);
        assert!(e.peers[&(0, peer)].pending.is_empty());
        let half = t0 + RETRY_HOLD / 2;
        assert!(matches!(e.seal(half, 0, peer, gre()), Sealed::Dropped));
        // ...then the next packet queues and initiates again (before, a full queue dropped every packet
        // from then on, and the peer was never tried again).
        assert!(matches!(
            e.seal(t0 + RETRY_HOLD, 0, peer, gre()),
            Sealed::Queued { initiate: true }
        ));
    }

    #[test]
    fn an_ike_sa_deleted_after_keying_keeps_the_queue_and_holds_nothing() {
        let t0 = Instant::now();
        let peer = Ipv4Addr::new(203, 0, 113, 2);
        let mut e = GreEsp::default();
        let _ = e.seal(t0, 0, peer, gre());
        e.peers.get_mut(&(0, peer)).unwrap().ike = Some(IkeSaId(7));
        // A DPD or a peer's DELETE is no refusal: the next packet initiates at once.
        e.ike_gone(t0, IkeSaId(7), false);
        assert_eq!(e.peers[&(0, peer)].pending.len(), 1);
        assert!(matches!(
            e.seal(t0 + Duration::from_millis(1), 0, peer, gre()),
            Sealed::Queued { initiate: true }
        ));
    }
}

/// The wait for a peer behind NAT, at node level: a hub (not behind NAT) with `tunnel protection`.
#[cfg(test)]
mod nat_wait_tests {
    use super::*;
    use crate::node::{Node, Output};
    use std::time::Duration;

    const HUB: &str = "\
crypto ikev2 keyring KR
 peer ANY
  address 0.0.0.0 0.0.0.0
  pre-shared-key k-0001
!
crypto ikev2 profile PROF
 match identity remote address 0.0.0.0
 authentication local pre-share
 authentication remote pre-share
 keyring local KR
!
crypto ipsec transform-set TS esp-gcm 256
 mode transport
!
crypto ipsec profile IPS
 set transform-set TS
 set ikev2-profile PROF
!
interface GigabitEthernet0
 device eth0
 ip address 192.0.2.1 255.255.255.0
!
interface Tunnel0
 device dmvpn0
 ip address 10.0.0.1 255.255.255.0
 ip nhrp map multicast dynamic
 ip nhrp network-id 99
 tunnel source GigabitEthernet0
 tunnel mode gre multipoint
 tunnel key 100000
 tunnel protection ipsec profile IPS
";

    /// IKE_SA_INIT requests the node sent to `peer` (UDP to port 500).
    fn ike_inits_to(node: &mut Node, peer: SocketAddr) -> usize {
        let mut n = 0;
        while let Some(o) = node.poll_output() {
            if let Output::Udp { remote, .. } = o
                && remote == peer
            {
                n += 1;
            }
        }
        n
    }

    /// A spoke behind a static NAT (10.0.0.12 at 172.16.2.1, outside 203.0.113.12) registers with the hub
    /// (as over an SA the spoke keyed; here its GRE is handed in directly). The hub's reply is protected and
    /// finds no SA: the spoke is behind NAT, so the hub waits for it to key. When the spoke does not within
    /// NAT_PEER_WAIT (a static NAT or port forward where only our side can start), the hub initiates when the
    /// wait ends - with no further packet for the spoke (before, only the next packet ended the wait).
    #[test]
    fn the_wait_for_a_natted_peer_ends_on_its_own_and_we_initiate() {
        let t0 = Instant::now();
        let parsed = config::parse(HUB);
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let (mut hub, problems) = Node::new(t0, parsed.config, 7);
        assert!(problems.is_empty(), "{problems:?}");
        let private = Ipv4Addr::new(172, 16, 2, 1);
        let outside = Ipv4Addr::new(203, 0, 113, 12);
        let mut cfg = nhrp::Config::new("Tunnel0", Ipv4Addr::new(10, 0, 0, 12), 24, private);
        cfg.gre_key = Some(100_000);
        cfg.static_maps
            .push((Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(192, 0, 2, 1)));
        cfg.nhs.push(Ipv4Addr::new(10, 0, 0, 1));
        let mut spoke = nhrp::Nhc::new(cfg, t0);
        nhrp::NhrpNode::handle_timeout(&mut spoke, t0);
        let reg = nhrp::NhrpNode::poll_transmit(&mut spoke).expect("a registration");
        hub.gre.handle_gre(
            t0,
            Ipv4Addr::new(192, 0, 2, 1),
            outside,
            PacketBuf::copy_from(&reg.to_gre()),
        );
        while hub.poll_gre_output(t0).is_some() {}
        hub.pump(t0);
        let sadb = hub.gre.tunnels[0].sadb;
        let p = &hub.gre_esp.peers[&(sadb, outside)];
        assert_eq!(p.pending.len(), 1, "the registration reply waits");
        assert_eq!(p.nat_wait, Some(t0), "for the spoke behind NAT to key us");
        let ike = SocketAddr::new(outside.into(), crate::node::IKE_PORT);
        assert_eq!(ike_inits_to(&mut hub, ike), 0);

        // The node asks to be woken when the wait ends, and then initiates by itself.
        let deadline = hub.poll_timeout().expect("a deadline");
        assert!(deadline <= t0 + NAT_PEER_WAIT, "{:?}", deadline - t0);
        let mut now = t0;
        while now < t0 + NAT_PEER_WAIT {
            let step = now + Duration::from_millis(1);
            now = hub
                .poll_timeout()
                .map_or(step, |d| d.max(step))
                .min(t0 + NAT_PEER_WAIT);
            hub.handle_timeout(now);
            while hub.poll_gre_output(now).is_some() {}
            if now < t0 + NAT_PEER_WAIT {
                assert_eq!(
                    ike_inits_to(&mut hub, ike),
                    0,
                    "initiated before the wait ended"
                );
            }
        }
        assert_eq!(
            ike_inits_to(&mut hub, ike),
            1,
            "no IKE_SA_INIT when the wait ended"
        );
        assert!(hub.gre_esp.peers[&(sadb, outside)].ike.is_some());
        // The timer fired once: nothing more is due for it.
        assert!(hub.gre_esp.nat_wait_deadline().is_none());
        hub.handle_timeout(now + Duration::from_millis(1));
        assert_eq!(ike_inits_to(&mut hub, ike), 0);
    }
}
