//! GRE receive demultiplexing (seed-dmvpn TUN-6, `000:65`): incoming GRE is
//! matched to point-to-point tunnels by (source, destination, key) first, then
//! to multipoint tunnels by (source, key). "No key" is its own value.

use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Index of a tunnel interface in the appliance's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TunnelId(pub u32);

/// Why a tunnel cannot be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DemuxError {
    /// Another tunnel already has this (source, destination, key) or (source, key).
    #[error("tunnel {0:?} already uses this source/destination/key")]
    Duplicate(TunnelId),
}

/// The demultiplexing table.
#[derive(Debug, Clone, Default)]
pub struct GreDemux {
    p2p: HashMap<(Ipv4Addr, Ipv4Addr, Option<u32>), TunnelId>,
    mgre: HashMap<(Ipv4Addr, Option<u32>), TunnelId>,
}

impl GreDemux {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// `tunnel mode gre ip` with `tunnel destination`.
    pub fn add_p2p(
        &mut self,
        id: TunnelId,
        source: Ipv4Addr,
        destination: Ipv4Addr,
        key: Option<u32>,
    ) -> Result<(), DemuxError> {
        if let Some(other) = self.p2p.get(&(source, destination, key)) {
            return Err(DemuxError::Duplicate(*other));
        }
        self.p2p.insert((source, destination, key), id);
        Ok(())
    }

    /// `tunnel mode gre multipoint`.
    pub fn add_mgre(
        &mut self,
        id: TunnelId,
        source: Ipv4Addr,
        key: Option<u32>,
    ) -> Result<(), DemuxError> {
        if let Some(other) = self.mgre.get(&(source, key)) {
            return Err(DemuxError::Duplicate(*other));
        }
        self.mgre.insert((source, key), id);
        Ok(())
    }

    /// The tunnel for a received packet: `local` = outer destination,
    /// `remote` = outer source, `key` = GRE key.
    pub fn lookup(&self, local: Ipv4Addr, remote: Ipv4Addr, key: Option<u32>) -> Option<TunnelId> {
        self.p2p
            .get(&(local, remote, key))
            .or_else(|| self.mgre.get(&(local, key)))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::ip;

    #[test]
    fn p2p_tunnel_wins_over_mgre_on_same_source_and_key() {
        let mut d = GreDemux::new();
        d.add_mgre(TunnelId(0), ip("172.17.0.11"), Some(100_000))
            .unwrap();
        d.add_p2p(
            TunnelId(1),
            ip("172.17.0.11"),
            ip("172.17.0.1"),
            Some(100_000),
        )
        .unwrap();
        assert_eq!(
            d.lookup(ip("172.17.0.11"), ip("172.17.0.1"), Some(100_000)),
            Some(TunnelId(1))
        );
        assert_eq!(
            d.lookup(ip("172.17.0.11"), ip("172.17.0.12"), Some(100_000)),
            Some(TunnelId(0))
        );
    }

    #[test]
    fn key_must_match_exactly_and_no_key_is_a_value() {
        let mut d = GreDemux::new();
        d.add_mgre(TunnelId(0), ip("172.17.0.11"), Some(100_000))
            .unwrap();
        d.add_mgre(TunnelId(1), ip("172.17.0.11"), Some(100_001))
            .unwrap();
        assert_eq!(
            d.lookup(ip("172.17.0.11"), ip("1.1.1.1"), Some(100_001)),
            Some(TunnelId(1))
        );
        assert_eq!(d.lookup(ip("172.17.0.11"), ip("1.1.1.1"), None), None);
        assert_eq!(d.lookup(ip("172.17.0.11"), ip("1.1.1.1"), Some(1)), None);
    }

    #[test]
    fn duplicate_source_and_key_is_refused() {
        let mut d = GreDemux::new();
        d.add_mgre(TunnelId(0), ip("172.17.0.11"), None).unwrap();
        assert_eq!(
            d.add_mgre(TunnelId(1), ip("172.17.0.11"), None),
            Err(DemuxError::Duplicate(TunnelId(0)))
        );
    }
}
