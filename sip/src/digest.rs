//! HTTP digest authentication as SIP uses it (RFC 3261 §22, RFC 7616): MD5, SHA-256 and their
//! `-sess` variants, `qop=auth` (and the RFC 2069 form without qop). Both sides: the UA answers a
//! challenge ([`Challenge::respond`]); the built-in registrar issues challenges and checks
//! answers ([`Credentials::verify`]).
//!
//! Written here rather than taken from `rsip`: its `DigestGenerator` prints `nc` in decimal,
//! hashes `-sess` like the plain algorithm and caps `nc` at 255 (`crates.md` gotcha 10).

use std::fmt::{self, Write as _};

use md5::{Digest as _, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A password. Zeroized on drop; `Debug` prints the length only.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(s.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

/// Digest algorithm (RFC 7616 §3.3 `algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn from_token(s: &str) -> Option<Algorithm> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|a| a.token().eq_ignore_ascii_case(s))
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Lower-case hex of H(data).
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex(&Md5::digest(data)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex(&Sha256::digest(data)),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Errors in a challenge or a credentials header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("not a Digest header")]
    NotDigest,
    #[error("malformed digest parameter list")]
    Syntax,
    #[error("missing digest parameter {0}")]
    Missing(&'static str),
    #[error("unsupported digest algorithm")]
    Algorithm,
    #[error("no supported qop (only auth)")]
    Qop,
}

/// Split `Digest a=b, c="d, e"` into `(name, value)` pairs (quoted-string unescaped).
pub(crate) fn parse_params(s: &str) -> Result<Vec<(String, String)>, DigestError> {
    let s = s.trim_start();
    let rest = s
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("digest"))
        .and_then(|_| s.get(6..))
        .ok_or(DigestError::NotDigest)?;
    if !rest.starts_with([' ', '\t']) {
        return Err(DigestError::NotDigest);
    }
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            if !(c.is_ascii_alphanumeric() || "-_.!%*+`'~".contains(c)) {
                return Err(DigestError::Syntax);
            }
            name.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || name.is_empty() {
            return Err(DigestError::Syntax);
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(DigestError::Syntax),
                    Some('"') => break,
                    Some('\\') => value.push(chars.next().ok_or(DigestError::Syntax)?),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((name.to_ascii_lowercase(), value));
    }
    Ok(out)
}

fn get<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    p.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// A `WWW-Authenticate` / `Proxy-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// `qop="auth"` offered (we never use auth-int); `false` = RFC 2069 compatibility form.
    pub qop_auth: bool,
    pub stale: bool,
}

impl Challenge {
    /// Parse a challenge header value. A `qop` list without `auth` is refused (we do not do
    /// `auth-int`), as is an unknown algorithm.
    pub fn parse(value: &str) -> Result<Challenge, DigestError> {
        let p = parse_params(value)?;
        let realm = get(&p, "realm").ok_or(DigestError::Missing("realm"))?;
        let nonce = get(&p, "nonce").ok_or(DigestError::Missing("nonce"))?;
        let algorithm = match get(&p, "algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::from_token(a).ok_or(DigestError::Algorithm)?,
        };
        let qop_auth = match get(&p, "qop") {
            None => false,
            Some(q) => {
                if q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")) {
                    true
                } else {
                    return Err(DigestError::Qop);
                }
            }
        };
        Ok(Challenge {
            realm: realm.to_owned(),
            nonce: nonce.to_owned(),
            opaque: get(&p, "opaque").map(str::to_owned),
            algorithm,
            qop_auth,
            stale: get(&p, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// Render as a header value.
    pub fn to_header(&self) -> String {
        let mut s = format!(
            "Digest realm={}, nonce={}, algorithm={}",
            quote(&self.realm),
            quote(&self.nonce),
            self.algorithm.token()
        );
        if self.qop_auth {
            s.push_str(", qop=\"auth\"");
        }
        if let Some(o) = &self.opaque {
            let _ = write!(s, ", opaque={}", quote(o));
        }
        if self.stale {
            s.push_str(", stale=true");
        }
        s
    }

    /// Answer the challenge. `nc` is the nonce count for this nonce (1 for the first use);
    /// `cnonce` comes from the caller's random source.
    pub fn respond(
        &self,
        username: &str,
        password: &Secret,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> Credentials {
        let (qop, nc, cnonce) = if self.qop_auth {
            (Some("auth".to_owned()), Some(nc), Some(cnonce.to_owned()))
        } else {
            (None, None, None)
        };
        let mut c = Credentials {
            username: username.to_owned(),
            realm: self.realm.clone(),
            nonce: self.nonce.clone(),
            uri: uri.to_owned(),
            response: String::new(),
            algorithm: self.algorithm,
            cnonce,
            nc,
            qop,
            opaque: self.opaque.clone(),
        };
        c.response = c.expected(password, method);
        c
    }
}

/// An `Authorization` / `Proxy-Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Algorithm,
    pub cnonce: Option<String>,
    pub nc: Option<u32>,
    pub qop: Option<String>,
    pub opaque: Option<String>,
}

impl Credentials {
    pub fn parse(value: &str) -> Result<Credentials, DigestError> {
        let p = parse_params(value)?;
        let req = |n: &'static str| get(&p, n).map(str::to_owned).ok_or(DigestError::Missing(n));
        let algorithm = match get(&p, "algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::from_token(a).ok_or(DigestError::Algorithm)?,
        };
        let nc = match get(&p, "nc") {
            None => None,
            Some(n) => {
                if n.len() != 8 {
                    return Err(DigestError::Syntax);
                }
                Some(u32::from_str_radix(n, 16).map_err(|_| DigestError::Syntax)?)
            }
        };
        let qop = get(&p, "qop").map(str::to_owned);
        if let Some(q) = &qop {
            if !q.eq_ignore_ascii_case("auth") {
                return Err(DigestError::Qop);
            }
            if nc.is_none() {
                return Err(DigestError::Missing("nc"));
            }
            if get(&p, "cnonce").is_none() {
                return Err(DigestError::Missing("cnonce"));
            }
        }
        Ok(Credentials {
            username: req("username")?,
            realm: req("realm")?,
            nonce: req("nonce")?,
            uri: req("uri")?,
            response: req("response")?,
            algorithm,
            cnonce: get(&p, "cnonce").map(str::to_owned),
            nc,
            qop,
            opaque: get(&p, "opaque").map(str::to_owned),
        })
    }

    /// The response a holder of `password` would compute (lower-case hex).
    pub fn expected(&self, password: &Secret, method: &str) -> String {
        let alg = self.algorithm;
        //= https://www.rfc-editor.org/rfc/rfc7616#section-3.4.2
        //# A1 = unq(username) ":" unq(realm) ":" passwd
        //# ... for "-sess": A1 = H( unq(username) ":" unq(realm) ":" passwd ) ":" unq(nonce-prime) ":" unq(cnonce-prime)
        let a1 = Zeroizing::new(format!(
            "{}:{}:{}",
            self.username,
            self.realm,
            password.expose()
        ));
        // H(A1) is password-equivalent: keep it zeroized too
        let mut ha1 = Zeroizing::new(alg.hash_hex(a1.as_bytes()));
        if alg.is_sess() {
            let cnonce = self.cnonce.as_deref().unwrap_or("");
            let sess = Zeroizing::new(format!("{}:{}:{cnonce}", *ha1, self.nonce));
            ha1 = Zeroizing::new(alg.hash_hex(sess.as_bytes()));
        }
        //= https://www.rfc-editor.org/rfc/rfc7616#section-3.4.3
        //# If the qop value is "auth" or is unspecified, then A2 is:
        //# A2 = Method ":" request-uri
        let ha2 = alg.hash_hex(format!("{method}:{}", self.uri).as_bytes());
        //= https://www.rfc-editor.org/rfc/rfc7616#section-3.4.1
        //# response = <"> < KD ( H(A1), unq(nonce) ":" nc ":" unq(cnonce) ":" unq(qop) ":" H(A2) ) <">
        let data = match (&self.qop, self.nc, &self.cnonce) {
            (Some(qop), Some(nc), Some(cnonce)) => {
                format!("{}:{}:{nc:08x}:{cnonce}:{qop}:{ha2}", *ha1, self.nonce)
            }
            // RFC 2069 compatibility
            _ => format!("{}:{}:{ha2}", *ha1, self.nonce),
        };
        alg.hash_hex(data.as_bytes())
    }

    /// Constant-time check of `response` against `password` (registrar side).
    pub fn verify(&self, password: &Secret, method: &str) -> bool {
        let exp = self.expected(password, method);
        exp.as_bytes()
            .ct_eq(self.response.to_ascii_lowercase().as_bytes())
            .into()
    }

    /// Render as a header value; `nc` is 8 lower-case hex digits (RFC 7616 §3.4).
    pub fn to_header(&self) -> String {
        let mut s = format!(
            "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
            quote(&self.username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(&self.uri),
            quote(&self.response),
            self.algorithm.token()
        );
        if let (Some(qop), Some(nc), Some(cnonce)) = (&self.qop, self.nc, &self.cnonce) {
            let _ = write!(s, ", qop={qop}, nc={nc:08x}, cnonce={}", quote(cnonce));
        }
        if let Some(o) = &self.opaque {
            let _ = write!(s, ", opaque={}", quote(o));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    const RFC7616_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";

    fn rfc7616(alg: &str) -> Challenge {
        Challenge::parse(&format!(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
             algorithm={alg}, nonce=\"{RFC7616_NONCE}\", opaque=\"{RFC7616_OPAQUE}\""
        ))
        .unwrap()
    }

    //= https://www.rfc-editor.org/rfc/rfc7616#section-3.9.1
    #[test]
    fn rfc7616_md5_example_response() {
        let c = rfc7616("MD5").respond(
            "Mufasa",
            &Secret::new("Circle of Life"),
            "GET",
            "/dir/index.html",
            1,
            RFC7616_CNONCE,
        );
        assert_eq!(c.response, "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn rfc7616_sha256_example_response() {
        let c = rfc7616("SHA-256").respond(
            "Mufasa",
            &Secret::new("Circle of Life"),
            "GET",
            "/dir/index.html",
            1,
            RFC7616_CNONCE,
        );
        assert_eq!(
            c.response,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        let h = c.to_header();
        assert!(h.contains("nc=00000001"), "{h}");
        assert!(h.contains("algorithm=SHA-256"), "{h}");
        assert!(h.contains(&format!("opaque=\"{RFC7616_OPAQUE}\"")), "{h}");
    }

    //= https://www.rfc-editor.org/rfc/rfc2617#section-3.5
    #[test]
    fn rfc2617_example_response() {
        let ch = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        let c = ch.respond(
            "Mufasa",
            &Secret::new("Circle Of Life"),
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        assert_eq!(c.response, "6629fae49393a05397450978507c4ef1");
    }

    /// The REGISTER exchange captured against the Kamailio test bed (testbed/sip/capture-register.txt).
    #[test]
    fn kamailio_capture_register_response() {
        let ch = Challenge::parse(
            "Digest realm=\"lifeline.test\", nonce=\"awNyjmsDcWIoqT4IZdYgnYZnuCU6EFVf\", qop=\"auth\", algorithm=MD5",
        )
        .unwrap();
        let c = ch.respond(
            "1003",
            &Secret::new("secret1003"),
            "REGISTER",
            "sip:192.0.2.1:5060",
            1,
            "6b8b4567",
        );
        assert_eq!(c.response, "8da2b1f013375428f6bcc78dc08a4de8");
        let captured = Credentials::parse(
            "Digest username=\"1003\",realm=\"lifeline.test\",cnonce=\"6b8b4567\",nc=00000001,qop=auth,\
             uri=\"sip:192.0.2.1:5060\",nonce=\"awNyjmsDcWIoqT4IZdYgnYZnuCU6EFVf\",\
             response=\"8da2b1f013375428f6bcc78dc08a4de8\",algorithm=MD5",
        )
        .unwrap();
        assert!(captured.verify(&Secret::new("secret1003"), "REGISTER"));
        assert!(!captured.verify(&Secret::new("secret1004"), "REGISTER"));
    }

    #[test]
    fn nonce_count_is_printed_as_eight_hex_digits() {
        let ch = rfc7616("MD5");
        for (nc, txt) in [
            (10, "nc=0000000a"),
            (256, "nc=00000100"),
            (u32::MAX, "nc=ffffffff"),
        ] {
            let c = ch.respond("u", &Secret::new("p"), "REGISTER", "sip:x", nc, "c");
            let h = c.to_header();
            assert!(h.contains(txt), "{h}");
            let back = Credentials::parse(&h).unwrap();
            assert_eq!(back.nc, Some(nc));
            assert!(back.verify(&Secret::new("p"), "REGISTER"));
        }
    }

    #[test]
    fn sess_variants_differ_from_plain() {
        let plain = rfc7616("SHA-256").respond("u", &Secret::new("p"), "INVITE", "sip:x", 1, "c");
        let sess =
            rfc7616("SHA-256-sess").respond("u", &Secret::new("p"), "INVITE", "sip:x", 1, "c");
        assert_ne!(plain.response, sess.response);
        assert!(sess.verify(&Secret::new("p"), "INVITE"));
        let md5sess =
            rfc7616("MD5-sess").respond("u", &Secret::new("p"), "INVITE", "sip:x", 1, "c");
        assert!(
            Credentials::parse(&md5sess.to_header())
                .unwrap()
                .verify(&Secret::new("p"), "INVITE")
        );
    }

    #[test]
    fn rfc2069_form_without_qop() {
        let ch = Challenge::parse("Digest realm=\"r\", nonce=\"n\"").unwrap();
        assert!(!ch.qop_auth);
        let c = ch.respond("u", &Secret::new("p"), "REGISTER", "sip:r", 1, "c");
        assert!(!c.to_header().contains("nc="));
        assert!(
            Credentials::parse(&c.to_header())
                .unwrap()
                .verify(&Secret::new("p"), "REGISTER")
        );
    }

    #[test]
    fn challenge_rejects_auth_int_only_and_unknown_algorithm() {
        assert_eq!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""),
            Err(DigestError::Qop)
        );
        assert_eq!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"),
            Err(DigestError::Algorithm)
        );
        assert_eq!(
            Challenge::parse("Basic realm=\"r\""),
            Err(DigestError::NotDigest)
        );
        assert_eq!(
            Challenge::parse("Digest realm=\"r"),
            Err(DigestError::Syntax)
        );
    }

    #[test]
    fn challenge_round_trips_with_escapes() {
        let ch = Challenge {
            realm: "a \"quoted\" \\ realm".into(),
            nonce: "n".into(),
            opaque: Some("o".into()),
            algorithm: Algorithm::Sha256,
            qop_auth: true,
            stale: true,
        };
        assert_eq!(Challenge::parse(&ch.to_header()).unwrap(), ch);
    }

    #[test]
    fn secret_debug_prints_length_only() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(7 bytes)");
    }
}
