//! `lifeline run` with a seed VPN-SIP configuration: starts, answers `show running-config` through the
//! control socket, stops cleanly on SIGTERM within a second. No root needed.
#![allow(clippy::unwrap_used)]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Daemon;

const BIN: &str = env!("CARGO_BIN_EXE_lifeline");

/// The first seed fixture that configures VPN-SIP (`vpn-sip enable`).
fn vpn_sip_fixture() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cfg"))
        .filter(|p| {
            std::fs::read_to_string(p)
                .is_ok_and(|t| t.contains("vpn-sip enable") && t.contains("remote-number"))
        })
        .collect();
    names.sort();
    names.into_iter().next().expect("a VPN-SIP seed fixture")
}

fn wait_for_socket(sock: &Path, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("daemon exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "daemon did not open {}",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn daemon_serves_running_config_and_stops_on_sigterm() {
    let cfg = vpn_sip_fixture();
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("daemon-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("ctl.sock");
    let child = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&cfg)
        .arg("--socket")
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);
    wait_for_socket(&sock, &mut daemon.0);

    let out = Command::new(BIN)
        .args(["show", "running-config", "--socket"])
        .arg(&sock)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let expected = config::render(&config::parse(&std::fs::read_to_string(&cfg).unwrap()).config);
    assert!(text.starts_with("Building configuration..."), "{text}");
    assert!(
        text.contains(&expected),
        "show running-config differs from the rendering:\n{text}"
    );
    assert!(text.contains("vpn-sip"), "{text}");

    // Abbreviated form, as an operator types it.
    let out = Command::new(BIN)
        .args(["sh", "run", "--socket"])
        .arg(&sock)
        .output()
        .unwrap();
    assert!(!out.status.success(), "`lifeline sh` is not a subcommand");
    let out = Command::new(BIN)
        .args(["show", "run", "--socket"])
        .arg(&sock)
        .output()
        .unwrap();
    assert!(out.status.success());

    // SIGTERM: exit 0 within a second, socket removed.
    let pid = daemon.0.id().to_string();
    let t0 = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    loop {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            assert!(status.success(), "daemon exit status {status}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "daemon still running 1 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("daemon stopped {:?} after SIGTERM", t0.elapsed());
    assert!(!sock.exists(), "control socket left behind");
}

#[test]
fn check_rejects_a_broken_configuration_with_a_diagnostic() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("broken-{}.cfg", std::process::id()));
    std::fs::write(
        &path,
        "vpn-sip enable\ninterface Tunnel1\n vpn-sip local-number 1111 remote-number 2222 bandwidth 100\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("error"), "{text}");
    let out = Command::new(BIN)
        .args(["check", "--json", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON diagnostics");
    assert!(v.as_array().is_some_and(|a| !a.is_empty()));
}

#[test]
fn example_configurations_pass_check() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    for name in ["site-a.cfg", "site-b.cfg"] {
        let out = Command::new(BIN)
            .args(["check", "-c"])
            .arg(dir.join(name))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {text}");
        assert!(text.contains("0 error(s), 0 warning(s)"), "{name}: {text}");
    }
}
