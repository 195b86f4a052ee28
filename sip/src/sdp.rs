//! SDP for IKE (RFC 6193) with the VPN-SIP profile: one `m=application` line that carries the IKE
//! port, `c=IN IP4`, `a=ike-setup`, `a=fingerprint` (RFC 4572 syntax) and a mandatory `b=AS`.
//!
//! Our own codec (≈300 lines) rather than `sdp-rs`: the general-purpose crates are WebRTC-shaped and
//! the only one that keeps RFC 6193 intact (`sdp-rs`) is abandoned; it is kept as a dev-dependency
//! oracle (differential tests in `tests/sdp_oracle.rs`). The parser is total: every input gives
//! `Ok` or an [`SdpError`] whose text the appliance shows and whose [`SdpError::status`] is 488.

use std::fmt::{self, Write as _};
use std::net::Ipv4Addr;

/// `m=application PORT udp <fmt>`: the RFC 6193 format tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IkeTransport {
    /// `ike-esp-udpencap`: IKE and UDP-encapsulated ESP (RFC 3948) on the same port.
    UdpEncap,
    /// `ike-esp`: IKE over UDP, ESP as IP protocol 50.
    Esp,
}

impl IkeTransport {
    pub fn token(self) -> &'static str {
        match self {
            IkeTransport::UdpEncap => "ike-esp-udpencap",
            IkeTransport::Esp => "ike-esp",
        }
    }
}

/// `a=ike-setup:` role (modelled on RFC 4145 `a=setup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setup {
    Active,
    Passive,
    ActPass,
}

impl Setup {
    pub fn token(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
        }
    }

    /// The role an answerer takes for an offered role. For `actpass` we answer `passive`, so the
    /// caller stays the IKE initiator as in the seed (`SESSION_UP (I)` on the caller).
    pub fn answer_to(offer: Setup) -> Setup {
        match offer {
            Setup::Active | Setup::ActPass => Setup::Passive,
            Setup::Passive => Setup::Active,
        }
    }
}

/// RFC 4572 `hash-func`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashFunc {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Md5,
}

impl HashFunc {
    pub fn token(self) -> &'static str {
        match self {
            HashFunc::Sha1 => "SHA-1",
            HashFunc::Sha224 => "SHA-224",
            HashFunc::Sha256 => "SHA-256",
            HashFunc::Sha384 => "SHA-384",
            HashFunc::Sha512 => "SHA-512",
            HashFunc::Md5 => "MD5",
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            HashFunc::Sha1 => 20,
            HashFunc::Sha224 => 28,
            HashFunc::Sha256 => 32,
            HashFunc::Sha384 => 48,
            HashFunc::Sha512 => 64,
            HashFunc::Md5 => 16,
        }
    }

    fn from_token(s: &str) -> Option<HashFunc> {
        //= https://www.rfc-editor.org/rfc/rfc4572#section-5
        //# hash-func = "sha-1" / "sha-224" / "sha-256" / "sha-384" / "sha-512" / "md5" / "md2" / token
        //# ; Additional hash functions can only come from updates to RFC 3279
        // (the tokens are case-insensitive; the seed writes `SHA-1`; md2 is not accepted)
        let all = [
            HashFunc::Sha1,
            HashFunc::Sha224,
            HashFunc::Sha256,
            HashFunc::Sha384,
            HashFunc::Sha512,
            HashFunc::Md5,
        ];
        all.into_iter().find(|h| h.token().eq_ignore_ascii_case(s))
    }
}

/// A certificate (`a=fingerprint`) or pre-shared-key (`a=psk-fingerprint`) fingerprint.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    pub hash: HashFunc,
    pub bytes: Vec<u8>,
    /// Carried as RFC 6193 `a=psk-fingerprint` instead of `a=fingerprint`.
    pub psk: bool,
}

impl Fingerprint {
    pub fn new(hash: HashFunc, bytes: Vec<u8>) -> Fingerprint {
        Fingerprint {
            hash,
            bytes,
            psk: false,
        }
    }

    /// Upper-case hex octets separated by `:` (RFC 4572 §5).
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(self.bytes.len() * 3);
        for (i, b) in self.bytes.iter().enumerate() {
            if i > 0 {
                s.push(':');
            }
            let _ = write!(s, "{b:02X}");
        }
        s
    }

    fn parse(value: &str, psk: bool) -> Result<Fingerprint, SdpError> {
        let (func, hex) = value
            .trim()
            .split_once(' ')
            .ok_or(SdpError::BadFingerprint(
                "no space between hash function and value",
            ))?;
        let hash = HashFunc::from_token(func)
            .ok_or(SdpError::BadFingerprint("unsupported hash function"))?;
        let mut bytes = Vec::with_capacity(hash.digest_len());
        for octet in hex.trim().split(':') {
            if octet.len() != 2 {
                return Err(SdpError::BadFingerprint("octets must be two hex digits"));
            }
            let b = u8::from_str_radix(octet, 16)
                .map_err(|_| SdpError::BadFingerprint("not a hex digit"))?;
            bytes.push(b);
        }
        if bytes.len() != hash.digest_len() {
            return Err(SdpError::BadFingerprint(
                "length does not match the hash function",
            ));
        }
        Ok(Fingerprint { hash, bytes, psk })
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A fingerprint is public (it travels in SDP), so printing it is fine and useful.
        write!(f, "{} {}", self.hash.token(), self.hex())
    }
}

/// The IKE media description of one side (offer or answer).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IkeSdp {
    /// `c=IN IP4`: where the peer sends IKE.
    pub addr: Ipv4Addr,
    /// `m=application PORT`: the sender's unique local IKE port.
    pub port: u16,
    pub transport: IkeTransport,
    pub setup: Setup,
    pub fingerprint: Fingerprint,
    /// `b=AS:` in kbit/s (session or media level; media level wins).
    pub bandwidth_kbps: u32,
}

/// Why an SDP body is unacceptable. Every variant is answered with 488 Not Acceptable Here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP is not UTF-8")]
    NotUtf8,
    #[error("malformed SDP line: {0}")]
    Syntax(&'static str),
    #[error("unsupported SDP version (v= must be 0)")]
    Version,
    #[error("no m=application line for IKE")]
    NoIkeMedia,
    #[error("wrong transport: m=application must be `udp ike-esp-udpencap` or `udp ike-esp`")]
    WrongTransport,
    #[error("missing c=IN IP4 connection address")]
    MissingConnection,
    #[error("only IPv4 connection addresses are supported")]
    NotIpv4,
    #[error("missing b=AS bandwidth (mandatory for VPN-SIP)")]
    MissingBandwidth,
    #[error("b=AS bandwidth must be a positive number of kbit/s")]
    BadBandwidth,
    #[error("missing a=fingerprint")]
    MissingFingerprint,
    #[error("bad a=fingerprint: {0}")]
    BadFingerprint(&'static str),
    #[error("missing a=ike-setup")]
    MissingSetup,
    #[error("bad a=ike-setup role")]
    BadSetup,
    #[error("port 0 (media rejected)")]
    PortZero,
}

impl SdpError {
    /// SIP status for a call whose SDP fails to parse: 488 Not Acceptable Here.
    pub fn status(&self) -> u16 {
        488
    }
}

fn parse_connection(v: &str) -> Result<Ipv4Addr, SdpError> {
    let mut it = v.split_ascii_whitespace();
    let (Some(net), Some(atype), Some(addr), None) = (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(SdpError::Syntax("c= needs nettype addrtype address"));
    };
    if net != "IN" {
        return Err(SdpError::Syntax("c= nettype must be IN"));
    }
    if atype != "IP4" {
        return Err(SdpError::NotIpv4);
    }
    // strip a multicast TTL suffix (`/127`); a unicast address has none
    let addr = addr.split('/').next().unwrap_or(addr);
    addr.parse().map_err(|_| SdpError::Syntax("c= address"))
}

fn parse_bandwidth(v: &str) -> Result<Option<u32>, SdpError> {
    let (ty, n) = v
        .split_once(':')
        .ok_or(SdpError::Syntax("b= needs type:value"))?;
    if !ty.trim().eq_ignore_ascii_case("AS") {
        return Ok(None); // CT, TIAS, ... are ignored
    }
    let n: u32 = n.trim().parse().map_err(|_| SdpError::BadBandwidth)?;
    if n == 0 {
        return Err(SdpError::BadBandwidth);
    }
    Ok(Some(n))
}

#[derive(Default)]
struct Level {
    addr: Option<Ipv4Addr>,
    bw: Option<u32>,
    setup: Option<Setup>,
    fingerprint: Option<Fingerprint>,
}

impl Level {
    fn line(&mut self, kind: u8, v: &str) -> Result<(), SdpError> {
        match kind {
            b'c' => self.addr = Some(parse_connection(v)?),
            b'b' => {
                if let Some(bw) = parse_bandwidth(v)? {
                    self.bw = Some(bw);
                }
            }
            b'a' => {
                let (name, value) = match v.split_once(':') {
                    Some((n, val)) => (n, Some(val)),
                    None => (v, None),
                };
                match (name, value) {
                    ("ike-setup", Some(r)) => {
                        self.setup = Some(match r.trim() {
                            "active" => Setup::Active,
                            "passive" => Setup::Passive,
                            "actpass" => Setup::ActPass,
                            _ => return Err(SdpError::BadSetup),
                        })
                    }
                    ("ike-setup", None) => return Err(SdpError::BadSetup),
                    ("fingerprint", Some(f)) => {
                        self.fingerprint = Some(Fingerprint::parse(f, false)?)
                    }
                    // a certificate fingerprint, if both are present, wins
                    ("psk-fingerprint", Some(f)) if self.fingerprint.is_none() => {
                        self.fingerprint = Some(Fingerprint::parse(f, true)?)
                    }
                    ("psk-fingerprint", Some(f)) => {
                        Fingerprint::parse(f, true)?;
                    }
                    ("fingerprint" | "psk-fingerprint", None) => {
                        return Err(SdpError::BadFingerprint("empty"));
                    }
                    _ => {} // unknown attributes are ignored (RFC 4566 §5.13)
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl IkeSdp {
    /// Parse an SDP body. Lines end in CRLF (RFC 4566) or bare LF. Session-level `c=`, `b=AS`,
    /// `a=ike-setup` and `a=fingerprint` apply unless the IKE media section repeats them.
    pub fn parse(body: &str) -> Result<IkeSdp, SdpError> {
        let mut session = Level::default();
        let mut media: Option<Level> = None;
        let mut ike: Option<(u16, IkeTransport, Level)> = None;
        let mut in_ike = false;
        let mut saw_version = false;
        let mut first = true;
        let mut saw_application = false;
        let mut wrong_transport = false;
        for raw in body.split('\n') {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                continue;
            }
            let b = line.as_bytes();
            if b.len() < 2 || b.get(1) != Some(&b'=') || !b[0].is_ascii_lowercase() {
                return Err(SdpError::Syntax("expected <type>=<value>"));
            }
            let kind = b[0];
            let v = &line[2..];
            if first {
                if kind != b'v' {
                    return Err(SdpError::Syntax("first line must be v="));
                }
                first = false;
            }
            match kind {
                b'v' => {
                    if saw_version || v.trim() != "0" {
                        return Err(SdpError::Version);
                    }
                    saw_version = true;
                }
                b'm' => {
                    // close the previous media section
                    if in_ike && let (Some((_, _, l)), Some(m)) = (ike.as_mut(), media.take()) {
                        *l = m;
                    }
                    in_ike = false;
                    media = Some(Level::default());
                    let mut it = v.split_ascii_whitespace();
                    let (Some(mtype), Some(port), Some(proto)) = (it.next(), it.next(), it.next())
                    else {
                        return Err(SdpError::Syntax("m= needs media port proto fmt"));
                    };
                    let fmts: Vec<&str> = it.collect();
                    if fmts.is_empty() {
                        return Err(SdpError::Syntax("m= needs at least one fmt"));
                    }
                    let port: u16 = port
                        .split('/')
                        .next()
                        .unwrap_or(port)
                        .parse()
                        .map_err(|_| SdpError::Syntax("m= port"))?;
                    if mtype != "application" || ike.is_some() {
                        continue;
                    }
                    saw_application = true;
                    //= https://www.rfc-editor.org/rfc/rfc6193#section-4
                    //# m=application <port> udp ike-esp
                    //# m=application <port> udp ike-esp-udpencap
                    let t = if fmts.contains(&"ike-esp-udpencap") {
                        Some(IkeTransport::UdpEncap)
                    } else if fmts.contains(&"ike-esp") {
                        Some(IkeTransport::Esp)
                    } else {
                        None
                    };
                    match t {
                        Some(t) if proto.eq_ignore_ascii_case("udp") => {
                            ike = Some((port, t, Level::default()));
                            in_ike = true;
                        }
                        _ => wrong_transport = true,
                    }
                }
                b'c' | b'b' | b'a' => match media.as_mut() {
                    Some(m) => m.line(kind, v)?,
                    None => session.line(kind, v)?,
                },
                _ => {}
            }
        }
        if !saw_version {
            return Err(SdpError::Version);
        }
        if in_ike && let (Some((_, _, l)), Some(m)) = (ike.as_mut(), media.take()) {
            *l = m;
        }
        let Some((port, transport, m)) = ike else {
            return Err(if saw_application && wrong_transport {
                SdpError::WrongTransport
            } else {
                SdpError::NoIkeMedia
            });
        };
        if port == 0 {
            return Err(SdpError::PortZero);
        }
        let addr = m.addr.or(session.addr).ok_or(SdpError::MissingConnection)?;
        let bandwidth_kbps = m.bw.or(session.bw).ok_or(SdpError::MissingBandwidth)?;
        let fingerprint = m
            .fingerprint
            .or(session.fingerprint)
            .ok_or(SdpError::MissingFingerprint)?;
        let setup = m.setup.or(session.setup).ok_or(SdpError::MissingSetup)?;
        Ok(IkeSdp {
            addr,
            port,
            transport,
            setup,
            fingerprint,
            bandwidth_kbps,
        })
    }

    /// Render a complete SDP body (CRLF line ends). `b=AS` is emitted at media level (RFC 4566
    /// order `m, c, b, a`); `o=` carries `session_id` and `version` (bump it on a re-offer).
    pub fn to_sdp(&self, session_id: u64, version: u64) -> String {
        let mut s = String::with_capacity(256);
        let a = self.addr;
        let _ = write!(
            s,
            "v=0\r\no=- {session_id} {version} IN IP4 {a}\r\ns=-\r\nc=IN IP4 {a}\r\nt=0 0\r\n\
             m=application {} udp {}\r\nb=AS:{}\r\na=ike-setup:{}\r\na={}:{} {}\r\n",
            self.port,
            self.transport.token(),
            self.bandwidth_kbps,
            self.setup.token(),
            if self.fingerprint.psk {
                "psk-fingerprint"
            } else {
                "fingerprint"
            },
            self.fingerprint.hash.token(),
            self.fingerprint.hex()
        );
        s
    }
}

/// Which side starts IKE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeInitiator {
    Offerer,
    Answerer,
}

/// The result of an offer/answer exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub initiator: IkeInitiator,
    pub transport: IkeTransport,
    /// The smaller of the two `b=AS` values: both sides shape to it.
    pub bandwidth_kbps: u32,
}

/// Why an offer/answer pair cannot set up a session (the call is refused with 488).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("transport mismatch: offer {offer:?}, answer {answer:?}")]
    TransportMismatch {
        offer: IkeTransport,
        answer: IkeTransport,
    },
    #[error("ike-setup roles do not complement: offer {offer:?}, answer {answer:?}")]
    RoleConflict { offer: Setup, answer: Setup },
    #[error("local policy refuses transport {0:?} (nat force-encap needs ike-esp-udpencap)")]
    TransportRefused(IkeTransport),
    #[error("{0}")]
    Sdp(#[from] SdpError),
}

impl Rejection {
    /// 488 Not Acceptable Here, the status the call is refused with.
    pub fn status(&self) -> u16 {
        488
    }
}

/// Apply the RFC 6193 offer/answer rules: same transport, complementary roles
/// (`active`/`passive`, or `actpass` answered by either), bandwidth = min of both.
pub fn negotiate(offer: &IkeSdp, answer: &IkeSdp) -> Result<Negotiated, Rejection> {
    if offer.transport != answer.transport {
        return Err(Rejection::TransportMismatch {
            offer: offer.transport,
            answer: answer.transport,
        });
    }
    //= https://www.rfc-editor.org/rfc/rfc4145#section-4.1
    //# 'active': The endpoint will initiate an outgoing connection.
    //# 'passive': The endpoint will accept an incoming connection.
    //# 'actpass': The endpoint is willing to accept an incoming connection or to initiate an
    //# outgoing connection.
    let initiator = match (offer.setup, answer.setup) {
        (Setup::Active, Setup::Passive) | (Setup::ActPass, Setup::Passive) => IkeInitiator::Offerer,
        (Setup::Passive, Setup::Active) | (Setup::ActPass, Setup::Active) => IkeInitiator::Answerer,
        (o, a) => {
            return Err(Rejection::RoleConflict {
                offer: o,
                answer: a,
            });
        }
    };
    Ok(Negotiated {
        initiator,
        transport: offer.transport,
        bandwidth_kbps: offer.bandwidth_kbps.min(answer.bandwidth_kbps),
    })
}

/// Build the local answer to a received offer: our address/port/fingerprint/bandwidth, the
/// complementary role, the offered transport. Refuses `ike-esp` when `require_udpencap` is set
/// (VPN-SIP always forces UDP encapsulation).
pub fn answer_for(
    offer: &IkeSdp,
    addr: Ipv4Addr,
    port: u16,
    fingerprint: Fingerprint,
    bandwidth_kbps: u32,
    require_udpencap: bool,
) -> Result<(IkeSdp, Negotiated), Rejection> {
    if require_udpencap && offer.transport != IkeTransport::UdpEncap {
        return Err(Rejection::TransportRefused(offer.transport));
    }
    let answer = IkeSdp {
        addr,
        port,
        transport: offer.transport,
        setup: Setup::answer_to(offer.setup),
        fingerprint,
        bandwidth_kbps,
    };
    let n = negotiate(offer, &answer)?;
    Ok((answer, n))
}
