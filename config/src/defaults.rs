//! Every default the seeds state (and the few IOS defaults the model relies on), in one place.
//! The model keeps unset values as `None`; code that needs the value in effect calls the
//! `effective_*` functions of [`crate::Config`], which read these constants.

use std::time::Duration;

/// The default transform set used by an IPsec profile with no `set transform-set`
/// (seed: `Transform sets={ default: { esp-aes esp-sha-hmac } , }`).
pub const DEFAULT_TRANSFORM_SET_NAME: &str = "default";
/// Transforms of the default transform set.
pub const DEFAULT_TRANSFORMS: [&str; 2] = ["esp-aes", "esp-sha-hmac"];
/// Default transform-set mode (`in use settings ={Tunnel, }`).
pub const DEFAULT_IPSEC_MODE: crate::IpsecMode = crate::IpsecMode::Tunnel;

/// Global IPsec SA lifetime in seconds (observed `life (KB/Sec) 4608000/3600`).
pub const SA_LIFETIME_SECONDS: u32 = 3600;
/// Global IPsec SA lifetime in kilobytes.
pub const SA_LIFETIME_KILOBYTES: u64 = 4_608_000;
/// Anti-replay window size in packets when nothing is configured.
pub const REPLAY_WINDOW: u32 = 64;
/// IPsec SA idle time: none by default (VPN-SIP makes it mandatory).
pub const SA_IDLE_TIME: Option<Duration> = None;
/// The idle time the VPN-SIP chapter recommends (used in suggestions).
pub const VPN_SIP_RECOMMENDED_IDLE_TIME: Duration = Duration::from_secs(120);
/// PFS: not requested by default.
pub const PFS_GROUP: Option<u16> = None;
/// DH group of a bare `set pfs`.
pub const BARE_PFS_GROUP: u16 = 1;

/// VPN-SIP per-session WAN ports (Lifeline; the seed's samples start at 50001). 15 535 concurrent sessions.
pub const VPN_SIP_SESSION_PORTS: (u16, u16) = (50001, 65535);
/// The bandwidths VPN-SIP accepts, kbps.
pub const VPN_SIP_BANDWIDTHS_KBPS: [u32; 5] = [64, 128, 256, 512, 1000];

/// IKEv2 default proposal (seed Ch2 text; see seed-ipsec-vti §6.3 on its staleness).
pub const IKEV2_DEFAULT_ENCRYPTION: [&str; 2] = ["aes-cbc-128", "3des"];
/// IKEv2 default proposal integrity.
pub const IKEV2_DEFAULT_INTEGRITY: [&str; 2] = ["sha1", "md5"];
/// IKEv2 default proposal DH groups.
pub const IKEV2_DEFAULT_GROUPS: [u16; 2] = [5, 2];
/// IKEv2 SA lifetime (IOS default).
pub const IKEV2_LIFETIME: Duration = Duration::from_secs(86_400);

/// ISAKMP policy defaults (IOS XE 17.6+: AES / SHA / group 14; authentication rsa-sig).
pub const ISAKMP_ENCRYPTION: &str = "aes";
/// ISAKMP default hash.
pub const ISAKMP_HASH: &str = "sha";
/// ISAKMP default authentication.
pub const ISAKMP_AUTHENTICATION: &str = "rsa-sig";
/// ISAKMP default DH group.
pub const ISAKMP_GROUP: u16 = 14;
/// ISAKMP default lifetime.
pub const ISAKMP_LIFETIME: Duration = Duration::from_secs(86_400);

/// IP SLA defaults (IOS): threshold and timeout 5000 ms, frequency 60 s.
pub const SLA_THRESHOLD: Duration = Duration::from_millis(5000);
/// IP SLA default timeout.
pub const SLA_TIMEOUT: Duration = Duration::from_millis(5000);
/// IP SLA default frequency.
pub const SLA_FREQUENCY: Duration = Duration::from_secs(60);

/// Static route administrative distance.
pub const ROUTE_DISTANCE: u8 = 1;

/// NHRP holdtime (IOS default).
pub const NHRP_HOLDTIME: u32 = 7200;
/// NHRP max-send: 100 packets every 10 seconds.
pub const NHRP_MAX_SEND: (u32, u32) = (100, 10);

/// Tunnel interface mode when `tunnel mode` is absent.
pub const TUNNEL_MODE: crate::TunnelMode = crate::TunnelMode::GreIp;
