//! The control socket: one JSON request line in, one JSON reply out, then the connection closes.
//!
//! ```text
//! -> {"words":["show","running-config"],"json":false}
//! <- {"ok":true,"output":"Building configuration...\n..."}
//! ```
//! The daemon side hands each request to the daemon task through a channel (the task owns all state); this
//! module only moves bytes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Request {
    pub words: Vec<String>,
    #[serde(default)]
    pub json: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Reply {
    pub ok: bool,
    pub output: String,
}

/// Where the control socket lives when `--socket` is not given.
pub fn socket_path(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(p) = explicit {
        return p;
    }
    if let Some(p) = std::env::var_os("LIFELINE_SOCKET") {
        return PathBuf::from(p);
    }
    let uid = current_uid();
    if uid == 0 {
        return PathBuf::from("/run/lifeline/lifeline.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) => Path::new(&dir).join("lifeline.sock"),
        None => PathBuf::from(format!("/tmp/lifeline-{uid}.sock")),
    }
}

/// The effective user id, read without `unsafe` from the owner of `/proc/self`.
pub fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

/// `lifeline show ...` as a client.
pub fn client_show(socket: &Path, words: &[String], json: bool) -> anyhow::Result<ExitCode> {
    client("show", socket, words, json)
}

/// `lifeline clear ...` (and other exec commands) as a client.
pub fn client_words(socket: &Path, verb: &str, words: &[String]) -> anyhow::Result<ExitCode> {
    client(verb, socket, words, false)
}

fn client(verb: &str, socket: &Path, words: &[String], json: bool) -> anyhow::Result<ExitCode> {
    let mut all = vec![verb.to_string()];
    all.extend(words.iter().cloned());
    let reply = request(socket, &Request { words: all, json })?;
    print!("{}", reply.output);
    if !reply.output.ends_with('\n') {
        println!();
    }
    Ok(if reply.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn request(socket: &Path, req: &Request) -> anyhow::Result<Reply> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the lifeline daemon at {} (is `lifeline run` running?)",
            socket.display()
        )
    })?;
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    serde_json::from_str(&reply).context("malformed reply from the daemon")
}
