//! The harness itself works: namespaces, veth, ping, and cleanup on drop.
#![allow(clippy::unwrap_used)]
mod common;

use common::*;

#[test]
fn netns_pair_pings_over_veth_and_cleans_up() {
    if !netns_available("netns_pair_pings_over_veth_and_cleans_up") {
        return;
    }
    let name_a;
    {
        let a = Netns::new("hA");
        let b = Netns::new("hB");
        name_a = a.name.clone();
        veth(&a, "eth0", "198.51.100.1/24", &b, "eth0", "198.51.100.2/24");
        let _cap = Capture::start(&a, "eth0", "harness");
        a.run(&["ping", "-c", "1", "-W", "2", "198.51.100.2"]);
    }
    let list = sh(std::process::Command::new("ip").args(["netns", "list"]));
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(&name_a),
        "namespace {name_a} survived its guard"
    );
}
