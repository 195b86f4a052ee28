//! The QEMU guest harness itself (`tests/common/guest.rs`): a guest boots on a TAP in a test namespace,
//! answers pings, runs commands with their exit status, has the kernel modules this machine lacks, and
//! leaves nothing behind when dropped (no QEMU process, no TAP, no state directory).
#![allow(clippy::unwrap_used)]
mod common;

use std::path::Path;
use std::time::Instant;

use common::guest::{Guest, GuestOpts};
use common::*;

#[test]
fn guest_boots_answers_and_is_gone_after_drop() {
    if !guest::guest_available("guest_boots_answers_and_is_gone_after_drop") {
        return;
    }
    let t0 = Instant::now();
    let lab = Netns::new("gLab");
    lab.run(&["ip", "tuntap", "add", "dev", "tap0", "mode", "tap"]);
    lab.run(&["ip", "addr", "add", "192.0.2.254/24", "dev", "tap0"]);
    let (pid, dir, name);
    {
        let g = Guest::start(
            &lab,
            "tap0",
            GuestOpts {
                script: "basic.sh",
                env: &[("GUEST_ADDR", "192.0.2.1/24"), ("GUEST_IPERF", "no")],
                ..Default::default()
            },
        );
        println!(
            "guest {}: ready after {:.1} s, script done after {:.1} s",
            g.name, g.boot_secs, g.script_secs
        );
        pid = g.pid().expect("qemu runs");
        dir = g.dir.clone();
        name = g.name.clone();

        // The host side reaches the guest over the TAP.
        let out = lab.run(&["ping", "-c", "5", "-i", "0.2", "-W", "2", "192.0.2.1"]);
        let text = String::from_utf8_lossy(&out.stdout);
        println!("{}", text.lines().last().unwrap_or(""));

        // Commands: output and exit status come back; the guest is the Debian kernel with GRE and ESP.
        let (rc, kver) = g.exec("uname -r");
        assert_eq!(rc, 0, "{kver}");
        assert!(kver.contains("cloud-amd64"), "guest kernel: {kver}");
        assert_eq!(g.exec("exit 7").0, 7);
        let mods = g.run("cat /proc/modules | cut -d' ' -f1");
        for m in ["ip_gre", "esp4", "xfrm_user", "sch_netem"] {
            assert!(
                mods.lines().any(|l| l == m),
                "module {m} not loaded:\n{mods}"
            );
        }
        let addr = g.run("ip -br addr show dev eth0");
        assert!(addr.contains("192.0.2.1/24"), "{addr}");
        // ... and the guest reaches the host.
        g.run("ping -c 2 -W 2 192.0.2.254");
        println!("guest {name}: {kver}", kver = kver.trim());
    }
    // Dropped: QEMU gone, the TAP run.sh found (ours) still there, state removed.
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "qemu {pid} survived its guard"
    );
    assert!(!dir.exists(), "{} survived its guard", dir.display());
    let ps = sh(std::process::Command::new("ps").args(["-eo", "args"]));
    assert!(
        !String::from_utf8_lossy(&ps.stdout).contains(&format!("llg-{name} ")),
        "a qemu for {name} is still running"
    );
    println!("whole test {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn guest_tap_created_by_the_harness_is_deleted() {
    if !guest::guest_available("guest_tap_created_by_the_harness_is_deleted") {
        return;
    }
    let lab = Netns::new("gTap");
    guest::bridge(&lab);
    {
        // run.sh creates tapX itself (it does not exist) and enslaves it to br0.
        let g = Guest::start(
            &lab,
            "tapX",
            GuestOpts {
                script: "basic.sh",
                env: &[("GUEST_ADDR", "192.0.2.1/24"), ("GUEST_IPERF", "no")],
                bridge: Some("br0"),
                ..Default::default()
            },
        );
        lab.run(&["ip", "addr", "add", "192.0.2.254/24", "dev", "br0"]);
        lab.run(&["ping", "-c", "2", "-W", "2", "192.0.2.1"]);
        assert!(lab.try_run(&["ip", "link", "show", "tapX"]));
        drop(g);
    }
    assert!(
        !lab.try_run(&["ip", "link", "show", "tapX"]),
        "tapX survived the guest"
    );
}
