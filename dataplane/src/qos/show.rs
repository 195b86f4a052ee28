//! `show policy-map interface TunnelN` in the layout of the seed's samples (002 L3564-3602 and
//! L3626-3664 for the VPN-SIP parent/child; 001 L2570-2600 for the `Priority:` and priority queue
//! lines), and a JSON rendering of the same snapshot for `--json`.
//!
//! Layout rules taken from the samples:
//! - rates print as `<kbps>000 bps` (rounded to 1000 bit/s), so zero prints `0000 bps`
//!   (`130000 bps`, `0000 bps`);
//! - the `Queueing` label appears on classes with a queueing action (the parent class-default
//!   with its shaper, `bandwidth` classes); a class-default without one prints its queue lines
//!   without the label (the VPN-SIP sample shows a blank line there, the DMVPN sample none);
//! - `QoS Set` / `dscp V` / `Packets marked N` follows the queue block, then the shaper lines.
use super::sched::{ClassSnapshot, PolicySnapshot, QueueSnapshot};
use super::spec::Rate;
use std::fmt::Write as _;

/// Renders `show policy-map interface <interface>` for one attached policy.
pub fn policy_map_interface(interface: &str, snap: &PolicySnapshot) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{interface}");
    let _ = writeln!(o);
    let _ = writeln!(o, "Service-policy output: {}", snap.name);
    policy_body(&mut o, snap);
    if let Some(child) = &snap.child {
        let _ = writeln!(o);
        let _ = writeln!(o, "Service-policy : {}", child.name);
        policy_body(&mut o, child);
    }
    o
}

fn policy_body(o: &mut String, p: &PolicySnapshot) {
    if let Some(q) = &p.priority_queue {
        let _ = writeln!(o);
        let _ = writeln!(o, "  queue stats for all priority classes:");
        queue_lines(o, q, "    ");
    }
    for c in &p.classes {
        let _ = writeln!(o);
        class(o, c);
    }
}

/// IOS rate format: the rate rounded to thousands of bit/s, printed as the thousands followed by
/// `000` (so zero prints `0000`, as in the seed).
pub fn rate(bps: u64) -> String {
    format!("{}000", bps.saturating_add(500) / 1000)
}

fn queue_lines(o: &mut String, q: &QueueSnapshot, ind: &str) {
    let _ = writeln!(o, "{ind}queue limit {} packets", q.limit);
    let _ = writeln!(
        o,
        "{ind}(queue depth/total drops/no-buffer drops) {}/{}/{}",
        q.depth, q.total_drops, q.no_buffer_drops
    );
    let _ = writeln!(
        o,
        "{ind}(pkts output/bytes output) {}/{}",
        q.output_packets, q.output_bytes
    );
}

fn class(o: &mut String, c: &ClassSnapshot) {
    let kind = if c.match_any {
        "match-any"
    } else {
        "match-all"
    };
    let _ = writeln!(o, "Class-map: {} ({kind})", c.name);
    let _ = writeln!(o, "  {} packets, {} bytes", c.packets, c.bytes);
    let _ = writeln!(
        o,
        "  5 minute offered rate {} bps, drop rate {} bps",
        rate(c.offered_rate_bps),
        rate(c.drop_rate_bps)
    );
    for m in &c.matches {
        let _ = writeln!(o, "  Match: {m}");
    }
    if let Some(p) = &c.police {
        let s = &p.spec;
        let _ = writeln!(o, "  police:");
        if s.violate.is_some() {
            let _ = writeln!(
                o,
                "      cir {} bps, bc {} bytes, be {} bytes",
                s.cir_bps,
                s.bc(),
                s.be()
            );
        } else {
            let _ = writeln!(o, "      cir {} bps, bc {} bytes", s.cir_bps, s.bc());
        }
        let mut line = |label: &str, (pk, by): (u64, u64), action: String| {
            let _ = writeln!(o, "    {label} {pk} packets, {by} bytes; actions:");
            let _ = writeln!(o, "      {action}");
        };
        line("conformed", p.conformed, s.conform.ios_words());
        line("exceeded", p.exceeded, s.exceed.ios_words());
        if let Some(v) = s.violate {
            line("violated", p.violated, v.ios_words());
        }
    }
    if let Some(p) = &c.priority {
        let rate = match (p.rate, p.kbps) {
            (Some(Rate::Percent(pc)), Some(k)) => format!("{pc}% ({k} kbps)"),
            (Some(_), Some(k)) => format!("{k} kbps"),
            _ => "Strict".to_string(),
        };
        if p.kbps.is_some() {
            let _ = writeln!(
                o,
                "  Priority: {rate}, burst bytes {}, b/w exceed drops: {}",
                p.burst_bytes, p.exceed_drops
            );
        } else {
            let _ = writeln!(
                o,
                "  Priority: {rate}, b/w exceed drops: {}",
                p.exceed_drops
            );
        }
    }
    if let Some(q) = &c.queue {
        if q.labelled {
            let _ = writeln!(o, "  Queueing");
        }
        queue_lines(o, q, "    ");
    }
    if let Some((d, n)) = c.set_dscp {
        let _ = writeln!(o, "  QoS Set");
        let _ = writeln!(o, "    dscp {}", d.ios_name());
        let _ = writeln!(o, "    Packets marked {n}");
    }
    if let Some(s) = &c.shape {
        let _ = writeln!(
            o,
            "  shape (average) cir {}, bc {}, be {}",
            s.cir_bps, s.bc_bits, s.be_bits
        );
        let _ = writeln!(o, "  target shape rate {}", s.cir_bps);
    }
    if let Some(b) = &c.bandwidth {
        match b.rate {
            Rate::Percent(p) => {
                let _ = writeln!(o, "  bandwidth {p}% ({} kbps)", b.kbps);
            }
            Rate::Kbps(k) => {
                let _ = writeln!(o, "  bandwidth {k} kbps");
            }
        }
    }
}

/// The same snapshot as JSON (`show policy-map interface TunnelN --json`): an object
/// `{"interface", "service_policy": {"name", "direction", "classes": [...], "priority_queue",
/// "child"}}`; every counter is a number, rates in bit/s, absent blocks are `null`.
pub fn policy_map_interface_json(interface: &str, snap: &PolicySnapshot) -> String {
    let mut o = String::new();
    o.push_str("{\"interface\":");
    json_str(&mut o, interface);
    o.push_str(",\"service_policy\":");
    json_policy(&mut o, snap, Some("output"));
    o.push('}');
    o
}

fn json_str(o: &mut String, s: &str) {
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
}

fn json_queue(o: &mut String, q: Option<&QueueSnapshot>) {
    match q {
        None => o.push_str("null"),
        Some(q) => {
            let _ = write!(
                o,
                "{{\"queue_limit_packets\":{},\"queue_depth\":{},\"total_drops\":{},\"no_buffer_drops\":{},\"output_packets\":{},\"output_bytes\":{}}}",
                q.limit,
                q.depth,
                q.total_drops,
                q.no_buffer_drops,
                q.output_packets,
                q.output_bytes
            );
        }
    }
}

fn json_rate(o: &mut String, r: Option<Rate>) {
    match r {
        None => o.push_str("null"),
        Some(Rate::Kbps(k)) => {
            let _ = write!(o, "{{\"kbps\":{k}}}");
        }
        Some(Rate::Percent(p)) => {
            let _ = write!(o, "{{\"percent\":{p}}}");
        }
    }
}

fn json_policy(o: &mut String, p: &PolicySnapshot, direction: Option<&str>) {
    o.push_str("{\"name\":");
    json_str(o, &p.name);
    if let Some(d) = direction {
        o.push_str(",\"direction\":");
        json_str(o, d);
    }
    o.push_str(",\"priority_queue\":");
    json_queue(o, p.priority_queue.as_ref());
    o.push_str(",\"classes\":[");
    for (i, c) in p.classes.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        json_class(o, c);
    }
    o.push_str("],\"child\":");
    match &p.child {
        None => o.push_str("null"),
        Some(c) => json_policy(o, c, None),
    }
    o.push('}');
}

fn json_class(o: &mut String, c: &ClassSnapshot) {
    o.push_str("{\"name\":");
    json_str(o, &c.name);
    let _ = write!(
        o,
        ",\"match\":\"{}\",\"matches\":[",
        if c.match_any {
            "match-any"
        } else {
            "match-all"
        }
    );
    for (i, m) in c.matches.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        json_str(o, m);
    }
    let _ = write!(
        o,
        "],\"packets\":{},\"bytes\":{},\"offered_rate_bps\":{},\"drop_rate_bps\":{},\"queue\":",
        c.packets, c.bytes, c.offered_rate_bps, c.drop_rate_bps
    );
    json_queue(o, c.queue.as_ref());
    o.push_str(",\"priority\":");
    match &c.priority {
        None => o.push_str("null"),
        Some(p) => {
            o.push_str("{\"rate\":");
            json_rate(o, p.rate);
            let _ = write!(
                o,
                ",\"kbps\":{},\"burst_bytes\":{},\"exceed_drops\":{},\"queue\":",
                p.kbps.map_or("null".to_string(), |k| k.to_string()),
                p.burst_bytes,
                p.exceed_drops
            );
            json_queue(o, Some(&p.queue));
            o.push('}');
        }
    }
    o.push_str(",\"bandwidth\":");
    match &c.bandwidth {
        None => o.push_str("null"),
        Some(b) => {
            o.push_str("{\"rate\":");
            json_rate(o, Some(b.rate));
            let _ = write!(o, ",\"kbps\":{}}}", b.kbps);
        }
    }
    o.push_str(",\"set\":");
    match c.set_dscp {
        None => o.push_str("null"),
        Some((d, n)) => {
            o.push_str("{\"dscp\":");
            json_str(o, &d.ios_name());
            let _ = write!(o, ",\"packets_marked\":{n}}}");
        }
    }
    o.push_str(",\"police\":");
    match &c.police {
        None => o.push_str("null"),
        Some(p) => {
            let _ = write!(
                o,
                "{{\"cir_bps\":{},\"bc_bytes\":{},\"be_bytes\":{},\"conformed\":{{\"packets\":{},\"bytes\":{}}},\"exceeded\":{{\"packets\":{},\"bytes\":{}}},\"violated\":{{\"packets\":{},\"bytes\":{}}}}}",
                p.spec.cir_bps,
                p.spec.bc(),
                p.spec.be(),
                p.conformed.0,
                p.conformed.1,
                p.exceeded.0,
                p.exceeded.1,
                p.violated.0,
                p.violated.1
            );
        }
    }
    o.push_str(",\"shape\":");
    match &c.shape {
        None => o.push_str("null"),
        Some(s) => {
            let _ = write!(
                o,
                "{{\"type\":\"average\",\"cir_bps\":{},\"bc_bits\":{},\"be_bits\":{},\"target_shape_rate_bps\":{}}}",
                s.cir_bps, s.bc_bits, s.be_bits, s.cir_bps
            );
        }
    }
    o.push('}');
}
