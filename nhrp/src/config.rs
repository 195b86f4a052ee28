//! Per-interface NHRP configuration, in RFC vocabulary (the appliance maps the
//! IOS `ip nhrp ...` / `tunnel ...` lines of the `config` crate onto it).

use crate::cache::Prefix;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;
use zeroize::Zeroizing;

/// `ip nhrp authentication <string>`: sent in clear text (extension 7), but kept
/// out of logs. IOS limits it to 8 characters; longer strings are cut to 8.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKey(Zeroizing<Vec<u8>>);

impl AuthKey {
    /// The first 8 bytes of `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self(Zeroizing::new(secret.iter().take(8).copied().collect()))
    }

    /// The bytes sent on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthKey({} bytes)", self.0.len())
    }
}

/// One NHRP-enabled tunnel interface.
#[derive(Debug, Clone)]
pub struct Config {
    /// `Tunnel0`.
    pub interface: String,
    /// The tunnel (protocol) address and prefix length (`ip address`).
    pub tunnel_addr: Ipv4Addr,
    pub tunnel_prefix_len: u8,
    /// Our NBMA address (`tunnel source`).
    pub nbma_addr: Ipv4Addr,
    /// `tunnel key`.
    pub gre_key: Option<u32>,
    /// `ip nhrp holdtime` (IOS default 7200 s).
    pub holdtime: Duration,
    /// `ip nhrp registration timeout` (default holdtime / 3).
    pub registration_timeout: Option<Duration>,
    /// False with `ip nhrp registration no-unique`.
    pub unique: bool,
    /// `ip nhrp authentication`.
    pub authentication: Option<AuthKey>,
    /// `ip nhrp map <proto> <nbma>`.
    pub static_maps: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// `ip nhrp map multicast <nbma>`.
    pub multicast_static: Vec<Ipv4Addr>,
    /// `ip nhrp map multicast dynamic`.
    pub multicast_dynamic: bool,
    /// `ip nhrp nhs <proto>`, in priority order.
    pub nhs: Vec<Ipv4Addr>,
    /// `ip nhrp redirect` (hub: send traffic indications).
    pub redirect: bool,
    /// `ip nhrp shortcut` (spoke: act on traffic indications).
    pub shortcut: bool,
    /// `ip nhrp max-send <pkts> every <secs>` (default 100 every 10 s).
    pub max_send: (u32, Duration),
    /// MTU advertised in CIEs (`ip mtu`; 0 = not advertised).
    pub mtu: u16,
    /// Networks behind this node that it answers resolution requests for
    /// (Phase 3: the reply carries the covering prefix).
    pub local_prefixes: Vec<Prefix>,
    /// Tunnel protection profile name (for `show dmvpn detail`).
    pub protect: Option<String>,
    /// First request ID (inject randomness here; tests pin it).
    pub first_request_id: u32,
}

impl Config {
    /// Defaults for an interface: IOS holdtime 7200 s, unique registrations,
    /// max-send 100 per 10 s, no NHS (a hub).
    pub fn new(
        interface: &str,
        tunnel_addr: Ipv4Addr,
        tunnel_prefix_len: u8,
        nbma_addr: Ipv4Addr,
    ) -> Self {
        Self {
            interface: interface.to_string(),
            tunnel_addr,
            tunnel_prefix_len,
            nbma_addr,
            gre_key: None,
            holdtime: Duration::from_secs(7200),
            registration_timeout: None,
            unique: true,
            authentication: None,
            static_maps: Vec::new(),
            multicast_static: Vec::new(),
            multicast_dynamic: false,
            nhs: Vec::new(),
            redirect: false,
            shortcut: false,
            max_send: (100, Duration::from_secs(10)),
            mtu: 0,
            local_prefixes: Vec::new(),
            protect: None,
            first_request_id: 1,
        }
    }

    /// Interval between registrations.
    //= https://www.rfc-editor.org/rfc/rfc2332#section-5.2.3
    //# it is RECOMMENDED that the NHC send NHRP Registration Requests at a
    //# rate of one third of the Holding Time
    pub fn registration_interval(&self) -> Duration {
        self.registration_timeout
            .unwrap_or(self.holdtime / 3)
            .max(Duration::from_secs(1))
    }

    /// Holding time in seconds as carried in CIEs.
    pub fn holdtime_secs(&self) -> u16 {
        u16::try_from(self.holdtime.as_secs()).unwrap_or(u16::MAX)
    }
}
