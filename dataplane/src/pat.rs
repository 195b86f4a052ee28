//! The programmatic PAT of VPN-SIP (seed-vpnsip NAT-1): per session, the inside IKE/ESP endpoint
//! (`loopback:4500`) is translated to `WAN:<local SDP port>` towards the peer, for the lifetime of the
//! session. IKE and ESP run in user space, so the table is what the driver consults to pick the
//! socket, and what `show ip nat translations` prints (seed-vpnsip §6.9).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

/// One translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatEntry {
    /// The owning session (VPN-SIP call); the entry dies with it.
    pub session: u64,
    /// Inside endpoint, e.g. `2.2.2.2:4500` (the loopback IKE/ESP address).
    pub inside: SocketAddr,
    /// Outside (translated) endpoint, e.g. `10.6.6.50:50001` (WAN address, local SDP port).
    pub outside: SocketAddr,
    /// The peer, e.g. `10.6.6.49:50002` (peer WAN address, peer SDP port).
    pub peer: SocketAddr,
}

/// Why an insert was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PatError {
    #[error("session {0} already has a translation")]
    SessionExists(u64),
    #[error("outside endpoint {0} is already in use")]
    OutsideInUse(SocketAddr),
}

/// PAT table keyed both ways.
#[derive(Debug, Default)]
pub struct PatTable {
    by_session: HashMap<u64, PatEntry>,
    by_outside: HashMap<SocketAddr, u64>,
    by_inside_peer: HashMap<(SocketAddr, SocketAddr), u64>,
}

impl PatTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the translation of `session`.
    pub fn insert(
        &mut self,
        session: u64,
        inside: SocketAddr,
        outside: SocketAddr,
        peer: SocketAddr,
    ) -> Result<(), PatError> {
        if self.by_session.contains_key(&session) {
            return Err(PatError::SessionExists(session));
        }
        if self.by_outside.contains_key(&outside) {
            return Err(PatError::OutsideInUse(outside));
        }
        self.by_session.insert(
            session,
            PatEntry {
                session,
                inside,
                outside,
                peer,
            },
        );
        self.by_outside.insert(outside, session);
        self.by_inside_peer.insert((inside, peer), session);
        Ok(())
    }

    /// Outbound: a datagram from `inside` to `peer` leaves from this outside endpoint.
    pub fn outside_for(&self, inside: SocketAddr, peer: SocketAddr) -> Option<SocketAddr> {
        let s = self.by_inside_peer.get(&(inside, peer))?;
        self.by_session.get(s).map(|e| e.outside)
    }

    /// Inbound: a datagram that arrived on `outside` belongs to this entry (inside endpoint, session).
    pub fn inside_for(&self, outside: SocketAddr) -> Option<&PatEntry> {
        let s = self.by_outside.get(&outside)?;
        self.by_session.get(s)
    }

    pub fn get(&self, session: u64) -> Option<&PatEntry> {
        self.by_session.get(&session)
    }

    /// The session ended: its translation goes.
    pub fn remove_session(&mut self, session: u64) -> Option<PatEntry> {
        let e = self.by_session.remove(&session)?;
        self.by_outside.remove(&e.outside);
        self.by_inside_peer.remove(&(e.inside, e.peer));
        Some(e)
    }

    pub fn len(&self) -> usize {
        self.by_session.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_session.is_empty()
    }

    /// Rows in a stable order (by session).
    pub fn snapshot(&self) -> Vec<PatEntry> {
        let mut v: Vec<PatEntry> = self.by_session.values().copied().collect();
        v.sort_by_key(|e| e.session);
        v
    }
}

/// `show ip nat translations`, in the seed's layout (seed-vpnsip §6.9 (a)):
///
/// ```text
/// Pro Inside global      Inside local      Outside local     Outside global
/// udp 2.2.2.2:4500      10.6.6.50:50001  10.6.6.49:50002  10.6.6.49:50002
/// ```
///
/// The seed fills "Inside global" with the loopback endpoint and "Inside local" with the WAN endpoint
/// (the reverse of the usual IOS meaning, seed-vpnsip §9 C4); we print what the seed prints. The PDF
/// lost the exact column widths, so columns are padded to the header widths.
pub fn render_ip_nat_translations(rows: &[PatEntry]) -> String {
    const HEADER: &str =
        "Pro Inside global      Inside local      Outside local     Outside global";
    let mut out = String::new();
    out.push_str(HEADER);
    out.push('\n');
    for r in rows {
        let _ = writeln!(
            out,
            "udp {}{}{}{}",
            col(&r.inside.to_string(), 19),
            col(&r.outside.to_string(), 18),
            col(&r.peer.to_string(), 18),
            r.peer
        );
    }
    out
}

/// Left-aligns `s` in `width` columns, always followed by at least one space.
fn col(s: &str, width: usize) -> String {
    format!("{:<width$}", format!("{s} "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn lookups_work_both_ways_and_die_with_the_session() {
        let mut t = PatTable::new();
        t.insert(
            1,
            sa("2.2.2.2:4500"),
            sa("10.6.6.50:50001"),
            sa("10.6.6.49:50002"),
        )
        .unwrap();
        assert_eq!(
            t.outside_for(sa("2.2.2.2:4500"), sa("10.6.6.49:50002")),
            Some(sa("10.6.6.50:50001"))
        );
        assert_eq!(
            t.inside_for(sa("10.6.6.50:50001")).unwrap().inside,
            sa("2.2.2.2:4500")
        );
        assert_eq!(
            t.outside_for(sa("2.2.2.2:4500"), sa("10.6.6.48:50002")),
            None
        );
        assert!(t.remove_session(1).is_some());
        assert!(t.is_empty());
        assert_eq!(t.inside_for(sa("10.6.6.50:50001")), None);
        assert_eq!(
            t.outside_for(sa("2.2.2.2:4500"), sa("10.6.6.49:50002")),
            None
        );
    }

    #[test]
    fn duplicate_session_or_outside_port_is_refused() {
        let mut t = PatTable::new();
        t.insert(
            1,
            sa("2.2.2.2:4500"),
            sa("10.6.6.50:50001"),
            sa("10.6.6.49:50002"),
        )
        .unwrap();
        assert_eq!(
            t.insert(
                1,
                sa("2.2.2.2:4500"),
                sa("10.6.6.50:50003"),
                sa("10.6.6.47:50002")
            ),
            Err(PatError::SessionExists(1))
        );
        assert_eq!(
            t.insert(
                2,
                sa("2.2.2.2:4500"),
                sa("10.6.6.50:50001"),
                sa("10.6.6.47:50002")
            ),
            Err(PatError::OutsideInUse(sa("10.6.6.50:50001")))
        );
        // A second session to another peer shares the inside endpoint.
        t.insert(
            2,
            sa("2.2.2.2:4500"),
            sa("10.6.6.50:50003"),
            sa("10.6.6.47:50004"),
        )
        .unwrap();
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn renders_seed_row() {
        let mut t = PatTable::new();
        t.insert(
            1,
            sa("2.2.2.2:4500"),
            sa("10.6.6.50:50001"),
            sa("10.6.6.49:50002"),
        )
        .unwrap();
        let s = render_ip_nat_translations(&t.snapshot());
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[0],
            "Pro Inside global      Inside local      Outside local     Outside global"
        );
        let words: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            words,
            [
                "udp",
                "2.2.2.2:4500",
                "10.6.6.50:50001",
                "10.6.6.49:50002",
                "10.6.6.49:50002"
            ]
        );
        // Columns start under their headers.
        assert_eq!(lines[1].find("10.6.6.50"), lines[0].find("Inside local"));
        assert_eq!(lines[1].find("10.6.6.49"), lines[0].find("Outside local"));
    }
}
