//! SIP over TCP and TLS: one task per (local, remote) connection, fed by [`SipStreams::send`].
//!
//! - The connection's source is the contact address (WAN:5060, `SO_REUSEADDR`/`SO_REUSEPORT`), so a
//!   registrar that routes to our registered contact reuses the connection we registered over; if that
//!   address cannot be bound the kernel picks a port (and the registrar must route by `received`/`rport`).
//! - TLS is rustls with the ring provider (the crypto the data plane already uses), TLS 1.2/1.3, server
//!   certificate checked against the `ca-file` trust anchors (or the system's) for the SIP domain or the
//!   registrar's address (RFC 5922 §7.2).
//! - Received bytes go through `sip::stream::StreamFramer` (Content-Length framing, several messages per
//!   read, CRLF keep-alives); a framing error closes the connection.
//! - A failed connect or a lost connection is reported ([`SipIn::Lost`]); the next attempt waits 1, 2, 4, ...
//!   up to 60 s (messages queued meanwhile, at most [`MAX_QUEUED`]). Idle connections send a CRLF CRLF
//!   keep-alive every 30 s (RFC 5626 §3.5.1) and are closed after [`IDLE_CLOSE`] without traffic.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::sipnet::{SipIn, SipOut};

/// Messages waiting for a connection.
pub const MAX_QUEUED: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const KEEPALIVE: Duration = Duration::from_secs(30);
/// An idle connection with nothing to send is closed after this (the registration refresh reopens it).
const IDLE_CLOSE: Duration = Duration::from_secs(3600 + 120);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The daemon's SIP stream transports and resolver: turns [`SipOut`] into tasks whose reports come back
/// through `tx` wrapped by `wrap`.
pub struct SipStreams<T: Send + 'static> {
    conns: HashMap<(SocketAddr, SocketAddr), Conn>,
    tls: HashMap<Option<String>, Arc<rustls::ClientConfig>>,
    resolver: Option<tokio::task::JoinHandle<()>>,
    tx: mpsc::Sender<T>,
    wrap: fn(SipIn) -> T,
}

struct Conn {
    queue: mpsc::Sender<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
}

impl<T: Send + 'static> SipStreams<T> {
    pub fn new(tx: mpsc::Sender<T>, wrap: fn(SipIn) -> T) -> SipStreams<T> {
        SipStreams {
            conns: HashMap::new(),
            tls: HashMap::new(),
            resolver: None,
            tx,
            wrap,
        }
    }

    /// Carry out one [`SipOut`].
    pub fn handle(&mut self, out: SipOut) {
        match out {
            SipOut::Stream {
                transport,
                local,
                remote,
                server_name,
                ca_file,
                payload,
            } => {
                let tls = if transport == sip::Transport::Tls {
                    match self.tls_config(ca_file) {
                        Ok(c) => Some((c, server_name)),
                        Err(e) => {
                            let _ = self.tx.try_send((self.wrap)(SipIn::Lost {
                                remote,
                                error: format!("TLS trust anchors: {e}"),
                            }));
                            return;
                        }
                    }
                } else {
                    None
                };
                self.send(local, remote, tls, payload);
            }
            SipOut::Resolve {
                discover,
                name_servers,
            } => {
                if let Some(r) = self.resolver.take() {
                    r.abort();
                }
                let tx = self.tx.clone();
                let wrap = self.wrap;
                self.resolver = Some(tokio::spawn(async move {
                    let targets =
                        crate::resolve::discover_until_found(&discover, &name_servers).await;
                    let _ = tx.send(wrap(SipIn::Resolved(targets))).await;
                }));
            }
        }
    }

    fn tls_config(&mut self, ca_file: Option<String>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        if let Some(c) = self.tls.get(&ca_file) {
            return Ok(c.clone());
        }
        let c = Arc::new(tls_client_config(ca_file.as_deref())?);
        self.tls.insert(ca_file, c.clone());
        Ok(c)
    }

    fn send(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        tls: Option<(Arc<rustls::ClientConfig>, String)>,
        payload: Vec<u8>,
    ) {
        // A new contact address (the WAN lease changed): connections from the old one are stale.
        self.conns.retain(|(l, r), c| {
            let stale = *r == remote && *l != local;
            let keep = !(stale || c.task.is_finished());
            if !keep {
                c.task.abort();
            }
            keep
        });
        let conn = self.conns.entry((local, remote)).or_insert_with(|| {
            let (qtx, qrx) = mpsc::channel(MAX_QUEUED);
            let task = tokio::spawn(connection(
                local,
                remote,
                tls,
                qrx,
                self.tx.clone(),
                self.wrap,
            ));
            Conn { queue: qtx, task }
        });
        // Full queue: the registrar is away and the UA's transactions will time out; drop.
        let _ = conn.queue.try_send(payload);
    }

    /// Close every connection (shutdown).
    pub fn shutdown(&mut self) {
        for (_, c) in self.conns.drain() {
            c.task.abort();
        }
        if let Some(r) = self.resolver.take() {
            r.abort();
        }
    }
}

/// rustls client configuration: ring provider, safe default versions, trust anchors from `ca_file` (PEM)
/// or the system bundle.
pub fn tls_client_config(ca_file: Option<&str>) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    const SYSTEM: &str = "/etc/ssl/certs/ca-certificates.crt";
    let path = ca_file.unwrap_or(SYSTEM);
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| anyhow::anyhow!("{path}: {e}"))? {
        let cert = cert.map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    }
    if roots.is_empty() {
        anyhow::bail!("{path}: no certificates");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

async fn connect(
    local: SocketAddr,
    remote: SocketAddr,
    tls: &Option<(Arc<rustls::ClientConfig>, String)>,
) -> anyhow::Result<Box<dyn Stream>> {
    let sock = |bind: SocketAddr| -> std::io::Result<tokio::net::TcpSocket> {
        let s = if remote.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        s.set_reuseaddr(true)?;
        s.set_reuseport(true)?;
        s.set_nodelay(true)?;
        s.bind(bind)?;
        Ok(s)
    };
    let tcp = async {
        match sock(local) {
            Ok(s) => match s.connect(remote).await {
                Ok(c) => return Ok(c),
                // the 4-tuple may still be in TIME_WAIT from a connection we closed
                Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {}
                Err(e) => return Err(e),
            },
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
            Err(e) => return Err(e),
        }
        sock(SocketAddr::new(local.ip(), 0))?.connect(remote).await
    };
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tcp)
        .await
        .map_err(|_| anyhow::anyhow!("connect timed out"))??;
    let Some((cfg, name)) = tls else {
        return Ok(Box::new(tcp));
    };
    let server_name = rustls::pki_types::ServerName::try_from(name.clone())
        .map_err(|e| anyhow::anyhow!("TLS server name {name}: {e}"))?;
    let tls = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_rustls::TlsConnector::from(cfg.clone()).connect(server_name, tcp),
    )
    .await
    .map_err(|_| anyhow::anyhow!("TLS handshake timed out"))?
    .map_err(|e| anyhow::anyhow!("TLS: {e}"))?;
    Ok(Box::new(tls))
}

/// One connection's life: connect (with backoff after failures), write what is queued, read and frame
/// what arrives, report losses; ends when the daemon drops the queue.
async fn connection<T: Send + 'static>(
    local: SocketAddr,
    remote: SocketAddr,
    tls: Option<(Arc<rustls::ClientConfig>, String)>,
    mut queue: mpsc::Receiver<Vec<u8>>,
    tx: mpsc::Sender<T>,
    wrap: fn(SipIn) -> T,
) {
    let mut pending: VecDeque<Vec<u8>> = VecDeque::new();
    let mut backoff = Duration::from_secs(1);
    let mut next_attempt = Instant::now();
    loop {
        if pending.is_empty() {
            match queue.recv().await {
                Some(m) => pending.push_back(m),
                None => return,
            }
        }
        // wait out the backoff, collecting what the UA sends meanwhile
        while Instant::now() < next_attempt {
            tokio::select! {
                m = queue.recv() => match m {
                    Some(m) if pending.len() < MAX_QUEUED => pending.push_back(m),
                    Some(_) => {}
                    None => return,
                },
                _ = tokio::time::sleep_until(next_attempt) => {}
            }
        }
        let stream = match connect(local, remote, &tls).await {
            Ok(s) => s,
            Err(e) => {
                pending.clear();
                next_attempt = Instant::now() + backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                if tx
                    .send(wrap(SipIn::Lost {
                        remote,
                        error: format!("{e:#}"),
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
        };
        backoff = Duration::from_secs(1);
        if tx.send(wrap(SipIn::Connected { remote })).await.is_err() {
            return;
        }
        let error = match run(stream, remote, &mut pending, &mut queue, &tx, wrap).await {
            Ok(()) => return,
            Err(e) => e,
        };
        pending.clear();
        next_attempt = Instant::now() + backoff;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        if tx.send(wrap(SipIn::Lost { remote, error })).await.is_err() {
            return;
        }
    }
}

/// Pump one established connection. `Ok` when the daemon dropped the queue, `Err(reason)` when the
/// connection ended.
async fn run<T: Send + 'static>(
    stream: Box<dyn Stream>,
    remote: SocketAddr,
    pending: &mut VecDeque<Vec<u8>>,
    queue: &mut mpsc::Receiver<Vec<u8>>,
    tx: &mpsc::Sender<T>,
    wrap: fn(SipIn) -> T,
) -> Result<(), String> {
    let (mut rd, mut wr) = tokio::io::split(stream);
    for m in pending.drain(..) {
        wr.write_all(&m).await.map_err(|e| e.to_string())?;
    }
    wr.flush().await.map_err(|e| e.to_string())?;
    let mut framer = sip::stream::StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut last_write = Instant::now();
    let mut last_traffic = Instant::now();
    loop {
        let keepalive = last_write + KEEPALIVE;
        tokio::select! {
            m = queue.recv() => {
                let Some(m) = m else { return Ok(()) };
                wr.write_all(&m).await.map_err(|e| e.to_string())?;
                wr.flush().await.map_err(|e| e.to_string())?;
                last_write = Instant::now();
                last_traffic = last_write;
            }
            n = rd.read(&mut buf) => {
                let n = n.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("closed by the peer".into());
                }
                last_traffic = Instant::now();
                framer.push(&buf[..n]);
                loop {
                    match framer.next_message() {
                        Ok(Some(bytes)) => {
                            if tx.send(wrap(SipIn::Message { remote, bytes })).await.is_err() {
                                return Ok(());
                            }
                        }
                        Ok(None) => break,
                        Err(e) => return Err(format!("framing: {e}")),
                    }
                }
            }
            _ = tokio::time::sleep_until(keepalive) => {
                if last_traffic.elapsed() > IDLE_CLOSE {
                    return Err("idle".into());
                }
                wr.write_all(b"\r\n\r\n").await.map_err(|e| e.to_string())?;
                wr.flush().await.map_err(|e| e.to_string())?;
                last_write = Instant::now();
            }
        }
    }
}
