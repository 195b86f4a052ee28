//! SIP message codec (RFC 3261 §7, §20, §25): a strict, total parser into small owned types and a
//! serialiser. Header names are canonicalised (compact forms expanded), folded lines unfolded, the
//! body cut at `Content-Length`. [`Message::parse`] validates what this crate relies on: the start
//! line, exactly one To/From/Call-ID/CSeq/Content-Length/Max-Forwards, at least one Via, the CSeq
//! method matching the request method, scalar ranges and the name-addr syntax of To/From/Contact.
//!
//! Why not `rsip` (the issue names it): measured on the RFC 4475 messages in `tests/torture/`
//! (`tests/torture.rs` keeps the comparison), rsip rejects valid messages that use header line
//! folding, whitespace before the colon and compact forms as typed headers, and it accepts invalid
//! ones (negative Content-Length, CSeq/start-line mismatch, `<>` around the Request-URI). Fixing
//! that around it costs more than this module. rsip stays a dev-dependency for that comparison.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

/// Largest message we accept (UDP datagram bound).
pub const MAX_MESSAGE: usize = 65_535;

/// Parse failures. The peer misbehaved; a request that fails gets 400 (or 505 for the version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message too large")]
    TooLarge,
    #[error("no CRLF CRLF after the headers")]
    Truncated,
    #[error("not UTF-8 in the header section")]
    NotUtf8,
    #[error("bad start line")]
    StartLine,
    #[error("unsupported SIP version")]
    Version,
    #[error("bad header line")]
    HeaderLine,
    #[error("missing mandatory header {0}")]
    Missing(&'static str),
    #[error("header {0} appears more than once")]
    Duplicate(&'static str),
    #[error("bad value in header {0}")]
    BadValue(&'static str),
    #[error("body shorter than Content-Length")]
    BodyTooShort,
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
}

impl ParseError {
    /// Status for a request that fails to parse.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::Version => 505,
            _ => 400,
        }
    }
}

/// Request method; unknown methods survive parse and emit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Other(String),
}

impl Method {
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        if s.is_empty() || !s.bytes().all(is_token_char) {
            return None;
        }
        // methods are case-sensitive (RFC 3261 §7.1)
        Some(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            _ => Method::Other(s.to_owned()),
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Headers in order, with canonical names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header, comma-separated lists split (Via, Contact, Route, ...).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| split_list(v))
    }

    fn count(&self, name: &str) -> usize {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_owned(), value.into()));
    }

    /// Insert before the first header (used for Via and Record-Route by the proxy).
    pub fn push_front(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(0, (name.to_owned(), value.into()));
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.push(name, value);
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Remove the first element of a (possibly comma-joined) list header and return it.
    pub fn pop_first(&mut self, name: &str) -> Option<String> {
        let idx = self
            .0
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))?;
        let items: Vec<String> = split_list(&self.0[idx].1).map(str::to_owned).collect();
        let mut it = items.into_iter();
        let first = it.next();
        let rest: Vec<String> = it.collect();
        if rest.is_empty() {
            self.0.remove(idx);
        } else {
            self.0[idx].1 = rest.join(", ");
        }
        first
    }
}

/// Split a header value at top-level commas (outside quotes and `<>`).
pub fn split_list(v: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut esc, mut start) = (0i32, false, false, 0usize);
    for (i, c) in v.char_indices() {
        if esc {
            esc = false;
            continue;
        }
        match c {
            '\\' if quoted => esc = true,
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(v[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(v[start..].trim());
    parts.into_iter().filter(|p| !p.is_empty())
}

const COMPACT: [(&str, &str); 10] = [
    ("i", "Call-ID"),
    ("m", "Contact"),
    ("e", "Content-Encoding"),
    ("l", "Content-Length"),
    ("c", "Content-Type"),
    ("f", "From"),
    ("s", "Subject"),
    ("k", "Supported"),
    ("t", "To"),
    ("v", "Via"),
];

const KNOWN: [&str; 24] = [
    "Via",
    "Max-Forwards",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Content-Type",
    "Content-Length",
    "Expires",
    "Min-Expires",
    "Route",
    "Record-Route",
    "Authorization",
    "Proxy-Authorization",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Allow",
    "Accept",
    "Supported",
    "User-Agent",
    "Server",
    "Warning",
    "Reason",
];

fn canonical(name: &str) -> String {
    if let Some((_, full)) = COMPACT.iter().find(|(c, _)| c.eq_ignore_ascii_case(name)) {
        return (*full).to_owned();
    }
    if let Some(k) = KNOWN.iter().find(|k| k.eq_ignore_ascii_case(name)) {
        return (*k).to_owned();
    }
    name.to_owned()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

/// `CSeq: <seq> <method>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(v: &str) -> Option<CSeq> {
        let mut it = v.split_ascii_whitespace();
        let (Some(n), Some(m), None) = (it.next(), it.next(), it.next()) else {
            return None;
        };
        //= https://www.rfc-editor.org/rfc/rfc3261#section-8.1.1.5
        //# The sequence number value MUST be expressible as a 32-bit unsigned integer and MUST be
        //# less than 2**31.
        let seq: u32 = n.parse().ok()?;
        if seq >= 1 << 31 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(CSeq {
            seq,
            method: Method::parse(m)?,
        })
    }
}

/// `Via: SIP/2.0/UDP host:port;branch=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
}

impl Via {
    pub fn parse(v: &str) -> Option<Via> {
        let v = v.trim();
        let (proto, rest) = split_proto(v)?;
        let mut parts = rest.split(';');
        let sent_by = parts.next()?.trim();
        let (host, port) = split_host_port(sent_by)?;
        let params = parse_params(parts)?;
        Some(Via {
            transport: proto.to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn branch(&self) -> Option<&str> {
        self.param("branch")
    }

    /// Where responses go (RFC 3261 §18.2.2 + RFC 3581): received/rport, else sent-by.
    pub fn response_addr(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self
            .param("received")
            .unwrap_or(&self.host)
            .trim_matches(['[', ']'])
            .parse()
            .ok()?;
        let port = self
            .param("rport")
            .and_then(|p| p.parse().ok())
            .or(self.port)
            .unwrap_or(5060);
        Some(SocketAddr::new(ip, port))
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write_params(f, &self.params)
    }
}

fn write_params(f: &mut fmt::Formatter<'_>, params: &[(String, Option<String>)]) -> fmt::Result {
    for (n, v) in params {
        match v {
            Some(v) => write!(f, ";{n}={v}")?,
            None => write!(f, ";{n}")?,
        }
    }
    Ok(())
}

/// "SIP / 2.0 / UDP" with optional LWS around the slashes (RFC 4475 wsinv).
fn split_proto(v: &str) -> Option<(&str, &str)> {
    let mut rest = v;
    let mut fields = [""; 3];
    for (i, field) in fields.iter_mut().enumerate() {
        rest = rest.trim_start();
        let end = rest
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(rest.len());
        *field = &rest[..end];
        rest = rest[end..].trim_start();
        if i < 2 {
            rest = rest.strip_prefix('/')?;
        }
    }
    if !fields[0].eq_ignore_ascii_case("SIP") || fields[1] != "2.0" || fields[2].is_empty() {
        return None;
    }
    if !fields[2].bytes().all(is_token_char) {
        return None;
    }
    Some((fields[2], rest))
}

fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.trim().parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (format!("[{h}]"), port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h.trim().to_owned(), Some(p.trim().parse().ok()?)),
            None => (s.to_owned(), None),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
    {
        return None;
    }
    Some((host, port))
}

fn parse_params<'a>(parts: impl Iterator<Item = &'a str>) -> Option<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            return None; // `;;` (RFC 4475 badinv01)
        }
        match p.split_once('=') {
            Some((n, v)) => {
                let (n, v) = (n.trim(), v.trim());
                if n.is_empty() || v.is_empty() || !n.bytes().all(is_token_char) {
                    return None;
                }
                out.push((n.to_owned(), Some(v.to_owned())));
            }
            None => {
                if !p.bytes().all(is_token_char) {
                    return None;
                }
                out.push((p.to_owned(), None));
            }
        }
    }
    Some(out)
}

/// A `sip:`/`sips:` URI reduced to what routing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub scheme: String,
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
}

impl SipUri {
    pub fn parse(s: &str) -> Option<SipUri> {
        let (scheme, rest) = s.split_once(':')?;
        if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")) {
            return None;
        }
        if rest
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b == b'<' || b == b'>')
        {
            return None;
        }
        let rest = rest.split('?').next().unwrap_or(rest);
        // user part may contain ';' (RFC 4475 semiuri), so split at '@' first
        let (user, hostpart) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h),
            None => (None, rest),
        };
        let mut parts = hostpart.split(';');
        let (host, port) = split_host_port(parts.next()?)?;
        let params = parse_params(parts)?;
        Some(SipUri {
            scheme: scheme.to_ascii_lowercase(),
            user,
            host,
            port,
            params,
        })
    }

    /// The address this URI points at when the host is an IP literal (default port 5061 for
    /// `sips:` and `;transport=tls`, else 5060).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self.host.trim_matches(['[', ']']).parse().ok()?;
        let tls = self.scheme == "sips"
            || self
                .param("transport")
                .is_some_and(|t| t.eq_ignore_ascii_case("tls"));
        let default = if tls { 5061 } else { 5060 };
        Some(SocketAddr::new(ip, self.port.unwrap_or(default)))
    }

    /// A URI parameter's value (`None` when absent or valueless).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn has_param(&self, name: &str) -> bool {
        self.params
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write_params(f, &self.params)
    }
}

/// `name-addr` or `addr-spec` with header parameters (From, To, Contact, Route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: String,
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    pub fn new(uri: impl Into<String>) -> NameAddr {
        NameAddr {
            display: None,
            uri: uri.into(),
            params: Vec::new(),
        }
    }

    pub fn with_param(mut self, n: &str, v: Option<&str>) -> NameAddr {
        self.params.push((n.to_owned(), v.map(str::to_owned)));
        self
    }

    pub fn parse(v: &str) -> Option<NameAddr> {
        let v = v.trim();
        if v.is_empty() {
            return None;
        }
        let (display, uri, rest) = if let Some(rest) = v.strip_prefix('"') {
            // quoted display name
            let mut end = None;
            let mut esc = false;
            for (i, c) in rest.char_indices() {
                if esc {
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else if c == '"' {
                    end = Some(i);
                    break;
                }
            }
            let end = end?; // unterminated quote (RFC 4475 quotbal)
            let after = rest[end + 1..].trim_start().strip_prefix('<')?;
            let (uri, tail) = after.split_once('>')?;
            (Some(rest[..end].to_owned()), uri, tail)
        } else if let Some(lt) = v.find('<') {
            let dn = v[..lt].trim();
            // an unquoted display name is a sequence of tokens (RFC 4475 baddn)
            if !dn
                .split_ascii_whitespace()
                .all(|t| t.bytes().all(is_token_char))
            {
                return None;
            }
            let (uri, rest) = v[lt + 1..].split_once('>')?;
            ((!dn.is_empty()).then(|| dn.to_owned()), uri, rest)
        } else {
            // addr-spec: no display name; parameters after ';' belong to the header
            //= https://www.rfc-editor.org/rfc/rfc3261#section-20
            //# If the URI is not enclosed in angle brackets, any semicolon-delimited parameters
            //# are header-parameters, not URI parameters.
            let (uri, rest) = match v.find(';') {
                Some(i) => (v[..i].trim_end(), &v[i..]),
                None => (v, ""),
            };
            // `?` or `,` in an unbracketed URI is ambiguous (RFC 4475 regbadct)
            if uri.contains(['?', ',', ' ']) {
                return None;
            }
            (None, uri, rest)
        };
        if uri.is_empty() || uri.bytes().any(|b| b.is_ascii_whitespace()) || !uri.contains(':') {
            return None; // RFC 4475 badaspec
        }
        let rest = rest.trim();
        let params = if rest.is_empty() {
            Vec::new()
        } else {
            parse_params(rest.strip_prefix(';')?.split(';'))?
        };
        Some(NameAddr {
            display,
            uri: uri.to_owned(),
            params,
        })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn tag(&self) -> Option<&str> {
        self.param("tag")
    }

    pub fn sip_uri(&self) -> Option<SipUri> {
        SipUri::parse(&self.uri)
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "\"{}\" ", d.replace('\\', "\\\\").replace('"', "\\\""))?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)
    }
}

fn find_head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n")
}

impl Message {
    /// Parse one message from a datagram. Octets after `Content-Length` are ignored
    /// (RFC 3261 §18.3; RFC 4475 dblreq).
    pub fn parse(data: &[u8]) -> Result<Message, ParseError> {
        if data.len() > MAX_MESSAGE {
            return Err(ParseError::TooLarge);
        }
        // RFC 3261 §7.5: ignore CRLFs before the start line (keep-alives)
        let mut start = 0;
        while data.get(start..start + 2) == Some(b"\r\n") {
            start += 2;
        }
        let data = &data[start..];
        let end = find_head_end(data).ok_or(ParseError::Truncated)?;
        let head = std::str::from_utf8(&data[..end]).map_err(|_| ParseError::NotUtf8)?;
        let body_all = &data[end + 4..];
        let mut lines = head.split("\r\n");
        let start_line = lines.next().ok_or(ParseError::StartLine)?;
        let mut headers = Headers::default();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                // folded continuation (RFC 3261 §7.3.1)
                let last = headers.0.last_mut().ok_or(ParseError::HeaderLine)?;
                last.1.push(' ');
                last.1.push_str(line.trim());
                continue;
            }
            let (name, value) = line.split_once(':').ok_or(ParseError::HeaderLine)?;
            let name = name.trim_end_matches([' ', '\t']);
            if name.is_empty() || !name.bytes().all(is_token_char) {
                return Err(ParseError::HeaderLine);
            }
            headers.0.push((canonical(name), value.trim().to_owned()));
        }
        for (_, v) in headers.0.iter_mut() {
            let t = v.trim().to_owned();
            *v = t;
        }

        for h in ["To", "From", "Call-ID", "CSeq"] {
            match headers.count(h) {
                0 => return Err(ParseError::Missing(h)),
                1 => {}
                _ => return Err(ParseError::Duplicate(h)),
            }
        }
        for h in ["Content-Length", "Max-Forwards", "Content-Type"] {
            if headers.count(h) > 1 {
                return Err(ParseError::Duplicate(h));
            }
        }
        if headers.get_all("Via").next().is_none() {
            return Err(ParseError::Missing("Via"));
        }
        for v in headers.get_all("Via") {
            if Via::parse(v).is_none() {
                return Err(ParseError::BadValue("Via"));
            }
        }
        let cseq = headers
            .get("CSeq")
            .and_then(CSeq::parse)
            .ok_or(ParseError::BadValue("CSeq"))?;
        if headers
            .get("Call-ID")
            .is_some_and(|c| c.is_empty() || c.contains(char::is_whitespace))
        {
            return Err(ParseError::BadValue("Call-ID"));
        }
        for h in ["To", "From"] {
            let v = headers.get(h).unwrap_or_default();
            if split_list(v).count() != 1 || NameAddr::parse(v).is_none() {
                return Err(ParseError::BadValue(if h == "To" { "To" } else { "From" }));
            }
        }
        for c in headers.get_all("Contact") {
            if c != "*" && NameAddr::parse(c).is_none() {
                return Err(ParseError::BadValue("Contact"));
            }
        }
        if let Some(mf) = headers.get("Max-Forwards") {
            let n: u32 = mf
                .parse()
                .map_err(|_| ParseError::BadValue("Max-Forwards"))?;
            if n > 255 {
                return Err(ParseError::BadValue("Max-Forwards"));
            }
        }
        //= https://www.rfc-editor.org/rfc/rfc3261#section-25.1
        //# SIP-date = rfc1123-date ... "GMT"
        if headers.get("Date").is_some_and(|d| !d.ends_with(" GMT")) {
            return Err(ParseError::BadValue("Date"));
        }
        if let Some(e) = headers.get("Expires") {
            let _: u32 = e.parse().map_err(|_| ParseError::BadValue("Expires"))?;
        }
        let body = match headers.get("Content-Length") {
            Some(cl) => {
                if !cl.bytes().all(|b| b.is_ascii_digit()) || cl.is_empty() {
                    return Err(ParseError::BadValue("Content-Length"));
                }
                let n: usize = cl
                    .parse()
                    .map_err(|_| ParseError::BadValue("Content-Length"))?;
                body_all.get(..n).ok_or(ParseError::BodyTooShort)?.to_vec()
            }
            // UDP: the body is the rest of the datagram (RFC 3261 §18.3)
            None => body_all.to_vec(),
        };

        if let Some(rest) = start_line.strip_prefix("SIP/") {
            // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
            let mut it = rest.splitn(3, ' ');
            let (Some(ver), Some(code), reason) = (it.next(), it.next(), it.next()) else {
                return Err(ParseError::StartLine);
            };
            if ver != "2.0" {
                return Err(ParseError::Version);
            }
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::StartLine);
            }
            let status: u16 = code.parse().map_err(|_| ParseError::StartLine)?;
            if !(100..=699).contains(&status) {
                return Err(ParseError::StartLine);
            }
            return Ok(Message::Response(Response {
                status,
                reason: reason.unwrap_or("").to_owned(),
                headers,
                body,
            }));
        }
        // Request-Line = Method SP Request-URI SP SIP-Version CRLF (single SPs, RFC 4475 lwsstart)
        let parts: Vec<&str> = start_line.split(' ').collect();
        let [m, uri, ver] = parts[..] else {
            return Err(ParseError::StartLine);
        };
        let method = Method::parse(m).ok_or(ParseError::StartLine)?;
        if !ver.starts_with("SIP/") {
            return Err(ParseError::StartLine);
        }
        if ver != "SIP/2.0" {
            return Err(ParseError::Version);
        }
        // absoluteURI: scheme ":" ...; no '<' (RFC 4475 ltgtruri); no embedded headers in a
        // Request-URI (RFC 3261 §19.1.1 table, RFC 4475 escruri)
        let Some((scheme, _)) = uri.split_once(':') else {
            return Err(ParseError::StartLine);
        };
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            || !scheme.as_bytes()[0].is_ascii_alphabetic()
            || uri.contains(['<', '>', '\t'])
        {
            return Err(ParseError::StartLine);
        }
        // (the user part may contain '?', RFC 4475 intmeth: look after the last '@')
        if (scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips"))
            && uri.rsplit('@').next().is_some_and(|h| h.contains('?'))
        {
            return Err(ParseError::StartLine);
        }
        if cseq.method != method {
            return Err(ParseError::CSeqMismatch);
        }
        Ok(Message::Request(Request {
            method,
            uri: uri.to_owned(),
            headers,
            body,
        }))
    }

    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }
}

fn write_headers(out: &mut String, h: &Headers, body: &[u8]) {
    for (n, v) in &h.0 {
        if n.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        let _ = write!(out, "{n}: {v}\r\n");
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
}

impl Request {
    /// Serialise; `Content-Length` is always (re)computed from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("{} {} SIP/2.0\r\n", self.method, self.uri);
        write_headers(&mut s, &self.headers, &self.body);
        let mut b = s.into_bytes();
        b.extend_from_slice(&self.body);
        b
    }

    pub fn cseq(&self) -> Option<CSeq> {
        self.headers.get("CSeq").and_then(CSeq::parse)
    }

    pub fn top_via(&self) -> Option<Via> {
        self.headers.get_all("Via").next().and_then(Via::parse)
    }

    pub fn call_id(&self) -> &str {
        self.headers.get("Call-ID").unwrap_or("")
    }

    pub fn from(&self) -> Option<NameAddr> {
        self.headers.get("From").and_then(NameAddr::parse)
    }

    pub fn to(&self) -> Option<NameAddr> {
        self.headers.get("To").and_then(NameAddr::parse)
    }

    /// Build a response that copies Via, From, To, Call-ID, CSeq (RFC 3261 §8.2.6.2). `to_tag`
    /// is added to To when the request's To has none.
    pub fn response(&self, status: u16, reason: &str, to_tag: Option<&str>) -> Response {
        let mut h = Headers::default();
        for (n, v) in &self.headers.0 {
            if ["Via", "From", "Call-ID", "CSeq", "Record-Route"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(n))
                && !(status == 100 && n.eq_ignore_ascii_case("Record-Route"))
            {
                h.push(n, v.clone());
            }
            if n.eq_ignore_ascii_case("To") {
                let mut to = v.clone();
                if let (Some(tag), Some(na)) = (to_tag, NameAddr::parse(v))
                    && na.tag().is_none()
                    && status != 100
                {
                    to = na.with_param("tag", Some(tag)).to_string();
                }
                h.push("To", to);
            }
        }
        Response {
            status,
            reason: reason.to_owned(),
            headers: h,
            body: Vec::new(),
        }
    }
}

impl Response {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("SIP/2.0 {} {}\r\n", self.status, self.reason);
        write_headers(&mut s, &self.headers, &self.body);
        let mut b = s.into_bytes();
        b.extend_from_slice(&self.body);
        b
    }

    pub fn cseq(&self) -> Option<CSeq> {
        self.headers.get("CSeq").and_then(CSeq::parse)
    }

    pub fn top_via(&self) -> Option<Via> {
        self.headers.get_all("Via").next().and_then(Via::parse)
    }

    pub fn call_id(&self) -> &str {
        self.headers.get("Call-ID").unwrap_or("")
    }

    pub fn to(&self) -> Option<NameAddr> {
        self.headers.get("To").and_then(NameAddr::parse)
    }
}

/// Standard reason phrases for the statuses this crate sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        603 => "Decline",
        _ => "Unknown",
    }
}

/// Fuzzing entry (for `fuzz/fuzz_targets/sip_message.rs`): parse arbitrary bytes; an accepted
/// message must serialise and parse again to the same start line, headers (Content-Length
/// aside, it is recomputed) and body. Panics when that property fails.
pub fn fuzz_round_trip(data: &[u8]) {
    fn strip(h: &Headers) -> Vec<&(String, String)> {
        h.0.iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("Content-Length"))
            .collect()
    }
    let Ok(m) = Message::parse(data) else { return };
    let bytes = match &m {
        Message::Request(r) => r.to_bytes(),
        Message::Response(r) => r.to_bytes(),
    };
    let back = match Message::parse(&bytes) {
        Ok(b) => b,
        Err(e) => panic!("emitted message does not parse: {e}"),
    };
    match (&m, &back) {
        (Message::Request(a), Message::Request(b)) => {
            assert_eq!((&a.method, &a.uri, &a.body), (&b.method, &b.uri, &b.body));
            assert_eq!(strip(&a.headers), strip(&b.headers));
        }
        (Message::Response(a), Message::Response(b)) => {
            assert_eq!(
                (a.status, &a.reason, &a.body),
                (b.status, &b.reason, &b.body)
            );
            assert_eq!(strip(&a.headers), strip(&b.headers));
        }
        _ => panic!("message kind changed on round trip"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &str = "REGISTER sip:lifeline.test SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.12:5065;branch=z9hG4bK-2584-1-0\r\n\
Max-Forwards: 70\r\n\
From: <sip:1003@lifeline.test>;tag=2584SIPpTag1\r\n\
To: <sip:1003@lifeline.test>\r\n\
Call-ID: 1-2584@192.0.2.12\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sip:1003@192.0.2.12:5065;transport=UDP>;expires=600\r\n\
User-Agent: lifeline-testbed-sipp\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn captured_register_parses_and_reserialises_identically() {
        let Message::Request(r) = Message::parse(REGISTER.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(r.method, Method::Register);
        let via = r.top_via().unwrap();
        assert_eq!(via.branch(), Some("z9hG4bK-2584-1-0"));
        assert_eq!(
            via.response_addr(),
            Some("192.0.2.12:5065".parse().unwrap())
        );
        assert_eq!(r.from().unwrap().tag(), Some("2584SIPpTag1"));
        let c = NameAddr::parse(r.headers.get("Contact").unwrap()).unwrap();
        assert_eq!(c.param("expires"), Some("600"));
        assert_eq!(
            c.sip_uri().unwrap().socket_addr(),
            Some("192.0.2.12:5065".parse().unwrap())
        );
        assert_eq!(String::from_utf8(r.to_bytes()).unwrap(), REGISTER);
    }

    #[test]
    fn compact_forms_and_folding_are_normalised() {
        let m = "OPTIONS sip:x@y SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:a@b>;tag=1\r\n\
t: sip:x@y\r\ni: abc\r\nCSeq:\r\n  7 OPTIONS\r\nl: 0\r\n\r\n";
        let Message::Request(r) = Message::parse(m.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(r.call_id(), "abc");
        assert_eq!(r.cseq().unwrap().seq, 7);
        assert!(r.headers.get("Via").is_some());
    }

    #[test]
    fn response_copies_dialog_headers_and_adds_to_tag() {
        let Message::Request(r) = Message::parse(REGISTER.as_bytes()).unwrap() else {
            panic!()
        };
        let resp = r.response(200, "OK", Some("abc"));
        let Message::Response(back) = Message::parse(&resp.to_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(back.status, 200);
        assert_eq!(back.to().unwrap().tag(), Some("abc"));
        assert_eq!(back.call_id(), "1-2584@192.0.2.12");
    }

    #[test]
    fn pop_first_splits_comma_lists() {
        let mut h = Headers::default();
        h.push("Route", "<sip:a;lr>, <sip:b;lr>");
        assert_eq!(h.pop_first("Route").as_deref(), Some("<sip:a;lr>"));
        assert_eq!(h.get("Route"), Some("<sip:b;lr>"));
        assert_eq!(h.pop_first("Route").as_deref(), Some("<sip:b;lr>"));
        assert_eq!(h.get("Route"), None);
    }
}
