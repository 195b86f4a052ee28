//! `lifeline run`: the daemon.
//!
//! One task owns the appliance state ([`Appliance`]). Control-socket connections, signals and (in later
//! features) the protocol drivers talk to it through channels; nothing shares state behind a mutex.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

use crate::control::{Reply, Request};
use crate::{ios, show};

/// Everything the daemon knows. Owned by the daemon task alone.
pub struct Appliance {
    pub config: config::Config,
    pub started: Instant,
}

type ControlMsg = (Request, oneshot::Sender<Reply>);

pub fn run(config_path: &Path, socket: &Path) -> anyhow::Result<ExitCode> {
    let text = crate::cli::read_config(config_path)?;
    let parsed = config::parse(&text);
    for d in &parsed.diagnostics {
        match d.severity {
            config::Severity::Error => ios!(
                PARSER,
                Error,
                CONFIG_ERROR,
                "{}: {d}",
                config_path.display()
            ),
            config::Severity::Warning => {
                ios!(
                    PARSER,
                    Warning,
                    CONFIG_WARNING,
                    "{}: {d}",
                    config_path.display()
                )
            }
        }
    }
    if parsed.has_errors() {
        anyhow::bail!(
            "configuration {} has errors; not starting",
            config_path.display()
        );
    }
    let app = Appliance {
        config: parsed.config,
        started: Instant::now(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(serve(app, socket))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(app: Appliance, socket: &Path) -> anyhow::Result<()> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // A socket file left by a daemon that died is stale; a live daemon answers and we refuse to start.
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            anyhow::bail!(
                "another lifeline daemon is listening on {}",
                socket.display()
            );
        }
        std::fs::remove_file(socket).ok();
    }
    let listener = UnixListener::bind(socket)
        .with_context(|| format!("cannot bind the control socket {}", socket.display()))?;
    let _cleanup = RemoveOnDrop(socket.to_path_buf());
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let (tx, mut rx) = mpsc::channel::<ControlMsg>(64);
    ios!(
        SYS,
        Notice,
        STARTED,
        "lifeline {} started, control socket {}",
        env!("CARGO_PKG_VERSION"),
        socket.display()
    );
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(connection(stream, tx.clone()));
                }
            }
            Some((req, reply)) = rx.recv() => {
                let _ = reply.send(handle(&app, &req));
            }
            _ = sigterm.recv() => { ios!(SYS, Notice, SHUTDOWN, "SIGTERM received, shutting down"); break; }
            _ = sigint.recv() => { ios!(SYS, Notice, SHUTDOWN, "SIGINT received, shutting down"); break; }
        }
    }
    Ok(())
}

fn handle(app: &Appliance, req: &Request) -> Reply {
    match req.words.first().map(|w| w.to_ascii_lowercase()) {
        Some(w) if !w.is_empty() && "show".starts_with(&w) => match show::resolve(&req.words) {
            Ok((cmd, args)) => Reply {
                ok: true,
                output: show::answer(app, cmd, &args, req.json),
            },
            Err(e) => Reply {
                ok: false,
                output: e,
            },
        },
        _ => Reply {
            ok: false,
            output: format!("% Invalid input detected: `{}`", req.words.join(" ")),
        },
    }
}

async fn connection(stream: UnixStream, tx: mpsc::Sender<ControlMsg>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    // A request is one line; a client that sends garbage gets an error reply, never a crash.
    let reply = match BufReader::new(read).read_line(&mut line).await {
        Ok(_) => match serde_json::from_str::<Request>(&line) {
            Ok(req) => {
                let (otx, orx) = oneshot::channel();
                if tx.send((req, otx)).await.is_err() {
                    return;
                }
                match orx.await {
                    Ok(r) => r,
                    Err(_) => return,
                }
            }
            Err(e) => Reply {
                ok: false,
                output: format!("% malformed request: {e}"),
            },
        },
        Err(_) => return,
    };
    if let Ok(mut text) = serde_json::to_string(&reply) {
        text.push('\n');
        let _ = write.write_all(text.as_bytes()).await;
    }
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
