//! The per-tunnel scheduler: one attached policy, run in virtual time.
//!
//! Per packet, on [`Scheduler::enqueue`]: parent counters, classification (first matching class,
//! class-default last), the class policer, the class `set dscp`, the parent marking (`dscp cs4` of
//! VPN-SIP; the parent's marking is applied last and wins), the LLQ conditional policer (only
//! while the tunnel is congested), then the class tail-drop queue. On [`Scheduler::dequeue`]: the
//! parent shaper gates; priority classes are served first (strict, in configuration order), then
//! the CBWFQ classes by self-clocked fair queueing (SCFQ, Golestani 1994): each backlogged class's
//! head packet carries a finish tag `max(V, previous tag) + wire length / weight`, the smallest tag
//! is served and becomes the virtual time `V`; weights are the classes' bandwidths (class-default's
//! is the unreserved remainder). Shares hold packet by packet, not only per round as with deficit
//! round robin, whose quanta grow with the weight ratio (60 % against class-default's 1 % made a
//! round last 1.2 s at 1 Mbit/s).
//!
//! Counters, as `show policy-map interface` prints them: a class's `packets`/`bytes` and offered
//! rate count every packet classified into it (before any drop); `total drops` counts tail drops
//! and LLQ `b/w exceed drops` of the class queue, while policer drops appear in the `police`
//! block; the drop rate covers all three. The parent class-default counts every packet offered,
//! every drop below it, every packet output, and `Packets marked` for every packet it marks (all
//! of them, drops included, as in the seed: `Packets marked 105782` = its packet count); with a
//! child policy its own queue depth is 0 (the packets wait in the child's queues). Output bytes
//! include the encapsulation overhead set with [`Scheduler::set_overhead`].
//!
//! Nothing allocates per packet: queues are created with `queue_limit` capacity when the policy is
//! attached, and packets own the caller's buffers.
use super::Packet;
use super::classify::Classifier;
use super::meter::{Colour, Policer, RateEstimator, Shaper};
use super::spec::{
    ClassSpec, PoliceAction, PoliceSpec, PolicySpec, Queueing, Rate, ShapeSpec, SpecError,
};
use super::{DEFAULT_QUEUE_LIMIT, Dscp, Encap};
use std::collections::VecDeque;
use std::time::Instant;

/// Finish tags are wire bytes x TAG_SCALE / weight (bit/s): exact enough for any weight up to
/// 2^40 bit/s, and a u128 tag cannot overflow in any realistic uptime.
const TAG_SCALE: u128 = 1 << 40;

/// Why the scheduler refused a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropCause {
    /// The class queue was at its `queue-limit` (tail drop).
    QueueFull,
    /// The class policer's action was `drop`.
    Policed,
    /// A `priority` class exceeded its rate while the tunnel was congested (`b/w exceed drops`).
    PriorityExceeded,
}

/// A refused packet, with its buffer for reuse.
#[derive(Debug)]
pub struct Drop {
    pub cause: DropCause,
    pub packet: Packet,
}

#[derive(Debug, Clone, Default)]
struct Counters {
    packets: u64,
    bytes: u64,
    offered: RateEstimator,
    dropped: RateEstimator,
    total_drops: u64,
    out_packets: u64,
    out_bytes: u64,
    marked: u64,
}

impl Counters {
    #[inline]
    fn offer(&mut self, now: Instant, len: usize) {
        self.packets += 1;
        self.bytes += len as u64;
        self.offered.add(now, len);
        self.dropped.tick(now);
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct PoliceCounters {
    packets: u64,
    bytes: u64,
}

#[derive(Debug, Clone)]
struct PoliceState {
    spec: PoliceSpec,
    policer: Policer,
    conform: PoliceCounters,
    exceed: PoliceCounters,
    violate: PoliceCounters,
}

#[derive(Debug, Clone)]
enum Kind {
    Priority {
        rate: Option<Rate>,
        rate_bps: Option<u64>,
        burst_bytes: u64,
        policer: Option<Policer>,
        exceed_drops: u64,
    },
    Weighted {
        bandwidth: Option<(Rate, u64)>,
        /// Bit/s (at least 1).
        weight: u64,
        /// Finish tag of the head packet when `tagged`, else of the last packet served.
        finish: u128,
        tagged: bool,
    },
}

#[derive(Debug)]
struct Leaf {
    name: String,
    classifier: Classifier,
    kind: Kind,
    queue: VecDeque<Packet>,
    limit: u32,
    police: Option<PoliceState>,
    set_dscp: Option<Dscp>,
    c: Counters,
}

#[derive(Debug)]
struct Parent {
    class_name: String,
    shaper: Option<Shaper>,
    shape: Option<ShapeSpec>,
    mark: Option<Dscp>,
    queue_limit: u32,
    c: Counters,
}

/// One attached policy (see the module docs for the per-packet order).
#[derive(Debug)]
pub struct Scheduler {
    name: String,
    /// The hierarchical form's parent class-default (shaper, marking, aggregate counters).
    parent: Option<Parent>,
    /// Name of the child policy when the parent has one; `None` = the leaves are the parent's own
    /// class-default (hierarchical form) or the policy's classes (flat form).
    child_name: Option<String>,
    leaves: Vec<Leaf>,
    /// SCFQ virtual time: the finish tag of the last weighted packet served.
    vtime: u128,
    queued: usize,
    encap: Encap,
    last_now: Option<Instant>,
}

impl Scheduler {
    /// Builds the scheduler of `spec`. `link_bps` is what percentages refer to when the policy has
    /// no shaper (e.g. the tunnel `bandwidth`); a shaper's CIR takes precedence.
    pub fn new(spec: &PolicySpec, link_bps: Option<u64>) -> Result<Self, SpecError> {
        spec.validate(link_bps)?;
        let classes = spec.normalized();
        if spec.is_parent() {
            let pc = &classes[0];
            let rate = pc.shape.map(|s| s.cir_bps).or(link_bps);
            let parent = Parent {
                class_name: pc.name.clone(),
                shaper: pc.shape.as_ref().map(Shaper::new),
                shape: pc.shape,
                mark: pc.set_dscp,
                queue_limit: pc.queue_limit(),
                c: Counters::default(),
            };
            let (child_name, leaf_specs) = match &pc.child {
                Some(child) => (Some(child.name.clone()), child.normalized()),
                None => {
                    // The parent's class-default is the only queue; its marking is the parent's.
                    let mut own = pc.clone();
                    own.set_dscp = None;
                    own.shape = None;
                    own.child = None;
                    (None, vec![own])
                }
            };
            Ok(Scheduler {
                name: spec.name.clone(),
                parent: Some(parent),
                child_name,
                leaves: build_leaves(&leaf_specs, rate),
                vtime: 0,
                queued: 0,
                encap: Encap::NONE,
                last_now: None,
            })
        } else {
            Ok(Scheduler {
                name: spec.name.clone(),
                parent: None,
                child_name: None,
                leaves: build_leaves(&classes, link_bps),
                vtime: 0,
                queued: 0,
                encap: Encap::NONE,
                last_now: None,
            })
        }
    }

    /// A fixed number of bytes added to every packet by encapsulation, charged to the shaper and
    /// counted in `bytes output` (IOS counts output bytes after encapsulation: 126 B out for 46 B
    /// in at seed L3639). Default 0. See [`Scheduler::set_encap`] for the exact ESP form.
    pub fn set_overhead(&mut self, bytes: usize) {
        self.encap = Encap::from(bytes);
    }

    /// How packets grow on the wire ([`Encap`]); the shaper, the SCFQ finish tags and `bytes output`
    /// count [`Encap::wire_len`] of each packet.
    pub fn set_encap(&mut self, encap: Encap) {
        self.encap = encap;
    }

    /// The current [`Encap`].
    pub fn encap(&self) -> Encap {
        self.encap
    }

    /// The policy name (`Service-policy output: NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Packets waiting in all queues.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Offers one inner packet. `Ok` = queued (call [`Scheduler::dequeue`]); `Err` = dropped, with
    /// the buffer.
    pub fn enqueue(&mut self, now: Instant, mut pkt: Packet) -> Result<(), Drop> {
        self.last_now = Some(now);
        let len = pkt.len();
        let congested = self.queued > 0
            || self
                .parent
                .as_mut()
                .and_then(|p| p.shaper.as_mut())
                .is_some_and(|s| !s.conforms(now));
        if let Some(p) = &mut self.parent {
            p.c.offer(now, len);
        }
        let last = self.leaves.len() - 1;
        let idx = self
            .leaves
            .iter()
            .position(|l| l.classifier.matches(pkt.bytes()))
            .unwrap_or(last);
        let leaf = &mut self.leaves[idx];
        leaf.c.offer(now, len);

        let mut cause = None;
        if let Some(ps) = &mut leaf.police {
            let (action, ctr) = match ps.policer.colour(now, len) {
                Colour::Conform => (ps.spec.conform, &mut ps.conform),
                Colour::Exceed => (ps.spec.exceed, &mut ps.exceed),
                Colour::Violate => (
                    ps.spec.violate.unwrap_or(PoliceAction::Drop),
                    &mut ps.violate,
                ),
            };
            ctr.packets += 1;
            ctr.bytes += len as u64;
            match action {
                PoliceAction::Transmit => {}
                PoliceAction::Drop => cause = Some(DropCause::Policed),
                PoliceAction::SetDscpTransmit(d) => {
                    pkt.set_dscp(d);
                }
            }
        }
        if let Some(d) = leaf.set_dscp
            && pkt.set_dscp(d)
        {
            leaf.c.marked += 1;
        }
        if let Some(p) = &mut self.parent
            && let Some(d) = p.mark
            && pkt.set_dscp(d)
        {
            p.c.marked += 1;
        }
        if cause.is_none()
            && congested
            && let Kind::Priority {
                policer: Some(pol),
                exceed_drops,
                ..
            } = &mut leaf.kind
            && pol.colour(now, len) != Colour::Conform
        {
            *exceed_drops += 1;
            leaf.c.total_drops += 1;
            cause = Some(DropCause::PriorityExceeded);
        }
        if cause.is_none() && leaf.queue.len() >= leaf.limit as usize {
            leaf.c.total_drops += 1;
            cause = Some(DropCause::QueueFull);
        }
        match cause {
            Some(cause) => {
                leaf.c.dropped.add(now, len);
                if let Some(p) = &mut self.parent {
                    p.c.total_drops += 1;
                    p.c.dropped.add(now, len);
                }
                Err(Drop { cause, packet: pkt })
            }
            None => {
                leaf.queue.push_back(pkt);
                self.queued += 1;
                self.note_backlog();
                Ok(())
            }
        }
    }

    /// The next packet the tunnel may send at `now`, if any (the shaper allows it and a queue holds
    /// one).
    pub fn dequeue(&mut self, now: Instant) -> Option<Packet> {
        let p = self.dequeue_inner(now);
        self.note_backlog();
        p
    }

    /// Tells the shaper whether packets are waiting for it.
    #[inline]
    fn note_backlog(&mut self) {
        let backlogged = self.queued > 0;
        if let Some(p) = &mut self.parent
            && let Some(s) = &mut p.shaper
        {
            s.set_backlogged(backlogged);
        }
    }

    fn dequeue_inner(&mut self, now: Instant) -> Option<Packet> {
        self.last_now = Some(now);
        if self.queued == 0 {
            return None;
        }
        if let Some(p) = &mut self.parent
            && let Some(s) = &mut p.shaper
            && !s.conforms(now)
        {
            return None;
        }
        let idx = self.pick()?;
        let leaf = &mut self.leaves[idx];
        let pkt = leaf.queue.pop_front()?;
        self.queued -= 1;
        let wire = self.encap.wire_len(pkt.len());
        leaf.c.out_packets += 1;
        leaf.c.out_bytes += wire as u64;
        if let Some(p) = &mut self.parent {
            p.c.out_packets += 1;
            p.c.out_bytes += wire as u64;
            if let Some(s) = &mut p.shaper {
                s.consume(wire);
            }
        }
        Some(pkt)
    }

    /// Strict priority first (configuration order), then the weighted class whose head packet has
    /// the smallest SCFQ finish tag (ties: configuration order).
    fn pick(&mut self) -> Option<usize> {
        if let Some(i) = self
            .leaves
            .iter()
            .position(|l| matches!(l.kind, Kind::Priority { .. }) && !l.queue.is_empty())
        {
            return Some(i);
        }
        let encap = self.encap;
        let vtime = self.vtime;
        let mut best: Option<(u128, usize)> = None;
        for (i, leaf) in self.leaves.iter_mut().enumerate() {
            let Some(head) = leaf.queue.front() else {
                continue;
            };
            if let Kind::Weighted {
                weight,
                finish,
                tagged,
                ..
            } = &mut leaf.kind
            {
                if !*tagged {
                    let len = encap.wire_len(head.len()) as u128;
                    *finish = (*finish).max(vtime) + len * TAG_SCALE / u128::from((*weight).max(1));
                    *tagged = true;
                }
                if best.is_none_or(|(f, _)| *finish < f) {
                    best = Some((*finish, i));
                }
            }
        }
        let (f, i) = best?;
        self.vtime = f;
        if let Some(Kind::Weighted { tagged, .. }) = self.leaves.get_mut(i).map(|l| &mut l.kind) {
            *tagged = false;
        }
        Some(i)
    }

    /// When [`Scheduler::dequeue`] will next yield: `None` when nothing is queued, the shaper's
    /// deadline when it is in deficit, otherwise the last `now` seen (ready at once).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.queued == 0 {
            return None;
        }
        self.parent
            .as_ref()
            .and_then(|p| p.shaper.as_ref())
            .and_then(Shaper::ready_at)
            .or(self.last_now)
    }

    /// Removes every queued packet (on detach), so the caller can reuse the buffers (or still
    /// send them). Not on the per-packet path: it allocates the returned vector.
    pub fn drain(&mut self) -> Vec<Packet> {
        self.queued = 0;
        self.note_backlog();
        let mut out = Vec::new();
        for l in &mut self.leaves {
            out.extend(l.queue.drain(..));
            if let Kind::Weighted { tagged, .. } = &mut l.kind {
                *tagged = false;
            }
        }
        out
    }

    /// Counters and configuration for `show policy-map interface`.
    pub fn snapshot(&self, now: Instant) -> PolicySnapshot {
        let leaves: Vec<ClassSnapshot> =
            self.leaves.iter().map(|l| leaf_snapshot(l, now)).collect();
        let prio = priority_queue_stats(&self.leaves);
        match &self.parent {
            None => PolicySnapshot {
                name: self.name.clone(),
                classes: leaves,
                priority_queue: prio,
                child: None,
            },
            Some(p) => {
                let own_depth = if self.child_name.is_some() {
                    0
                } else {
                    self.queued as u32
                };
                let class = ClassSnapshot {
                    name: p.class_name.clone(),
                    match_any: true,
                    matches: vec!["any".into()],
                    packets: p.c.packets,
                    bytes: p.c.bytes,
                    offered_rate_bps: p.c.offered.rate_bps(now),
                    drop_rate_bps: p.c.dropped.rate_bps(now),
                    queue: Some(QueueSnapshot {
                        labelled: true,
                        limit: p.queue_limit,
                        depth: own_depth,
                        total_drops: p.c.total_drops,
                        no_buffer_drops: 0,
                        output_packets: p.c.out_packets,
                        output_bytes: p.c.out_bytes,
                    }),
                    priority: None,
                    bandwidth: None,
                    set_dscp: p.mark.map(|d| (d, p.c.marked)),
                    police: None,
                    shape: p.shape,
                };
                let child = self.child_name.as_ref().map(|n| {
                    Box::new(PolicySnapshot {
                        name: n.clone(),
                        classes: leaves,
                        priority_queue: prio,
                        child: None,
                    })
                });
                PolicySnapshot {
                    name: self.name.clone(),
                    classes: vec![class],
                    priority_queue: None,
                    child,
                }
            }
        }
    }
}

fn build_leaves(specs: &[ClassSpec], parent_bps: Option<u64>) -> Vec<Leaf> {
    let reserved: u64 = specs
        .iter()
        .map(|c| match c.queueing {
            Queueing::Bandwidth(r) | Queueing::Priority { rate: Some(r), .. } => {
                r.bps(parent_bps.unwrap_or(0))
            }
            _ => 0,
        })
        .sum();
    // Weights for SCFQ: bandwidth classes their rate; the others share the remainder (at least 1%
    // of the parent), or weigh as much as the smallest bandwidth class when no rate is known.
    let explicit: Vec<u64> = specs
        .iter()
        .filter_map(|c| match c.queueing {
            Queueing::Bandwidth(r) => Some(r.bps(parent_bps.unwrap_or(0)).max(1)),
            _ => None,
        })
        .collect();
    let fifo_count = specs
        .iter()
        .filter(|c| c.queueing == Queueing::Fifo)
        .count()
        .max(1) as u64;
    let fifo_weight = match parent_bps {
        Some(p) => (p.saturating_sub(reserved) / fifo_count)
            .max(p / 100)
            .max(1),
        None => explicit.iter().copied().min().unwrap_or(1),
    };
    specs
        .iter()
        .map(|c| {
            let kind = match c.queueing {
                Queueing::Priority { rate, burst_bytes } => {
                    let rate_bps = rate.map(|r| r.bps(parent_bps.unwrap_or(0)));
                    // IOS: the LLQ burst defaults to 200 ms at the priority rate
                    // ("Priority: 1000 kbps, burst bytes 25000", 001 L2578).
                    let burst = burst_bytes
                        .map(u64::from)
                        .unwrap_or_else(|| rate_bps.unwrap_or(0) / 40);
                    Kind::Priority {
                        rate,
                        rate_bps,
                        burst_bytes: burst,
                        policer: rate_bps
                            .map(|bps| Policer::with_buckets(bps, burst.max(1), 0, false)),
                        exceed_drops: 0,
                    }
                }
                Queueing::Bandwidth(r) => {
                    let bps = r.bps(parent_bps.unwrap_or(0)).max(1);
                    Kind::Weighted {
                        bandwidth: Some((r, bps)),
                        weight: bps,
                        finish: 0,
                        tagged: false,
                    }
                }
                Queueing::Fifo => Kind::Weighted {
                    bandwidth: None,
                    weight: fifo_weight,
                    finish: 0,
                    tagged: false,
                },
            };
            let limit = c.queue_limit.unwrap_or(DEFAULT_QUEUE_LIMIT);
            Leaf {
                name: c.name.clone(),
                classifier: c.classifier.clone(),
                kind,
                queue: VecDeque::with_capacity(limit.min(1 << 16) as usize),
                limit,
                police: c.police.map(|spec| PoliceState {
                    spec,
                    policer: Policer::new(&spec),
                    conform: PoliceCounters::default(),
                    exceed: PoliceCounters::default(),
                    violate: PoliceCounters::default(),
                }),
                set_dscp: c.set_dscp,
                c: Counters::default(),
            }
        })
        .collect()
}

fn leaf_snapshot(l: &Leaf, now: Instant) -> ClassSnapshot {
    let queue = QueueSnapshot {
        labelled: matches!(
            l.kind,
            Kind::Weighted {
                bandwidth: Some(_),
                ..
            }
        ),
        limit: l.limit,
        depth: l.queue.len() as u32,
        total_drops: l.c.total_drops,
        no_buffer_drops: 0,
        output_packets: l.c.out_packets,
        output_bytes: l.c.out_bytes,
    };
    let (queue, priority, bandwidth) = match &l.kind {
        Kind::Priority {
            rate,
            rate_bps,
            burst_bytes,
            exceed_drops,
            ..
        } => (
            None,
            Some(PrioritySnapshot {
                rate: *rate,
                kbps: rate_bps.map(|b| b / 1000),
                burst_bytes: *burst_bytes,
                exceed_drops: *exceed_drops,
                queue,
            }),
            None,
        ),
        Kind::Weighted { bandwidth, .. } => (
            Some(queue),
            None,
            bandwidth.map(|(rate, bps)| BandwidthSnapshot {
                rate,
                kbps: bps / 1000,
            }),
        ),
    };
    ClassSnapshot {
        name: l.name.clone(),
        match_any: l.classifier.match_any,
        matches: l
            .classifier
            .matches
            .iter()
            .map(|m| m.show_label())
            .collect(),
        packets: l.c.packets,
        bytes: l.c.bytes,
        offered_rate_bps: l.c.offered.rate_bps(now),
        drop_rate_bps: l.c.dropped.rate_bps(now),
        queue,
        priority,
        bandwidth,
        set_dscp: l.set_dscp.map(|d| (d, l.c.marked)),
        police: l.police.as_ref().map(|p| PoliceSnapshot {
            spec: p.spec,
            conformed: (p.conform.packets, p.conform.bytes),
            exceeded: (p.exceed.packets, p.exceed.bytes),
            violated: (p.violate.packets, p.violate.bytes),
        }),
        shape: None,
    }
}

fn priority_queue_stats(leaves: &[Leaf]) -> Option<QueueSnapshot> {
    let mut any = false;
    let mut q = QueueSnapshot {
        labelled: false,
        limit: 0,
        depth: 0,
        total_drops: 0,
        no_buffer_drops: 0,
        output_packets: 0,
        output_bytes: 0,
    };
    for l in leaves {
        if matches!(l.kind, Kind::Priority { .. }) {
            any = true;
            q.limit = q.limit.saturating_add(l.limit);
            q.depth += l.queue.len() as u32;
            q.total_drops += l.c.total_drops;
            q.output_packets += l.c.out_packets;
            q.output_bytes += l.c.out_bytes;
        }
    }
    any.then_some(q)
}

/// One policy level of `show policy-map interface`.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySnapshot {
    pub name: String,
    pub classes: Vec<ClassSnapshot>,
    /// `queue stats for all priority classes` (when the policy has a `priority` class).
    pub priority_queue: Option<QueueSnapshot>,
    /// The child policy of the parent class-default.
    pub child: Option<Box<PolicySnapshot>>,
}

/// One class of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassSnapshot {
    pub name: String,
    pub match_any: bool,
    /// `Match:` labels (`any`, `protocol ip`, ...).
    pub matches: Vec<String>,
    /// Offered packets and bytes (before any drop).
    pub packets: u64,
    pub bytes: u64,
    pub offered_rate_bps: u64,
    pub drop_rate_bps: u64,
    /// Queue statistics (`None` for priority classes, see [`PrioritySnapshot::queue`]).
    pub queue: Option<QueueSnapshot>,
    pub priority: Option<PrioritySnapshot>,
    pub bandwidth: Option<BandwidthSnapshot>,
    /// `QoS Set` / `dscp V` / `Packets marked N`.
    pub set_dscp: Option<(Dscp, u64)>,
    pub police: Option<PoliceSnapshot>,
    pub shape: Option<ShapeSpec>,
}

/// `Queueing` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// Whether IOS prints the `Queueing` label (classes with a queueing action).
    pub labelled: bool,
    pub limit: u32,
    pub depth: u32,
    pub total_drops: u64,
    pub no_buffer_drops: u64,
    pub output_packets: u64,
    pub output_bytes: u64,
}

/// `Priority: ...` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrioritySnapshot {
    pub rate: Option<Rate>,
    pub kbps: Option<u64>,
    pub burst_bytes: u64,
    pub exceed_drops: u64,
    pub queue: QueueSnapshot,
}

/// `bandwidth N% (K kbps)` / `bandwidth K kbps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BandwidthSnapshot {
    pub rate: Rate,
    pub kbps: u64,
}

/// Policer counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoliceSnapshot {
    pub spec: PoliceSpec,
    /// (packets, bytes).
    pub conformed: (u64, u64),
    pub exceeded: (u64, u64),
    pub violated: (u64, u64),
}

/// What [`Egress::offer`] did with a packet.
#[derive(Debug)]
pub enum Offer {
    /// No policy attached: encrypt and send it now.
    Send(Packet),
    /// Queued: call [`Egress::dequeue`].
    Queued,
    /// Dropped by the policy; the buffer comes back.
    Dropped(Drop),
}

/// Why a policy could not be attached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// QOS-4: "If there is a pre-existing statically configured policy, the programmatically
    /// configured QoS policy is not applied and session fails." (seed 002 L3131)
    #[error(
        "a statically configured service-policy is attached; the VPN-SIP policy is not applied"
    )]
    StaticPolicyPresent,
    #[error("a service-policy is already attached")]
    AlreadyAttached,
    #[error(transparent)]
    Spec(#[from] SpecError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Static,
    VpnSip,
}

/// The output attachment point of one tunnel (`service-policy output`): pass-through when nothing
/// is attached, so an unshaped tunnel pays one branch per packet.
#[derive(Debug, Default)]
pub struct Egress {
    attached: Option<(Box<Scheduler>, Origin)>,
}

impl Egress {
    pub const fn new() -> Self {
        Egress { attached: None }
    }

    /// `service-policy output P` configured on the tunnel.
    pub fn attach_static(
        &mut self,
        spec: &PolicySpec,
        link_bps: Option<u64>,
    ) -> Result<(), EgressError> {
        if self.attached.is_some() {
            return Err(EgressError::AlreadyAttached);
        }
        let s = Scheduler::new(spec, link_bps)?;
        self.attached = Some((Box::new(s), Origin::Static));
        Ok(())
    }

    /// VPN-SIP session up: attach `VPN-SIP-Tunnel<N>-Bandwidth` at the negotiated rate with the
    /// user's policy as its child. Refused when a static policy is attached (QOS-4), when the
    /// child uses more than priority / `bandwidth percent` / `queue-limit` (QOS-3), or when its
    /// reservations exceed the negotiated rate: the session then fails, as on IOS.
    /// `encap` = how packets grow on the wire (an [`Encap`], or a fixed byte count), charged to the
    /// shaper.
    pub fn attach_vpn_sip(
        &mut self,
        tunnel_id: u32,
        negotiated_kbps: u32,
        child: Option<PolicySpec>,
        encap: impl Into<Encap>,
    ) -> Result<(), EgressError> {
        match &self.attached {
            Some((_, Origin::Static)) => return Err(EgressError::StaticPolicyPresent),
            Some((_, Origin::VpnSip)) => return Err(EgressError::AlreadyAttached),
            None => {}
        }
        if let Some(c) = &child {
            c.check_vpn_sip_child()?;
        }
        let spec = PolicySpec::vpn_sip(tunnel_id, negotiated_kbps, child);
        let mut s = Scheduler::new(&spec, None)?;
        s.set_encap(encap.into());
        self.attached = Some((Box::new(s), Origin::VpnSip));
        Ok(())
    }

    /// Sets the attached scheduler's [`Encap`] (e.g. when a new SA with another transform is
    /// installed). No effect when nothing is attached.
    pub fn set_encap(&mut self, encap: Encap) {
        if let Some((s, _)) = &mut self.attached {
            s.set_encap(encap);
        }
    }

    /// Session end / `no service-policy output`: detaches the policy. Drain the returned scheduler
    /// ([`Scheduler::drain`]) to recycle (or still send) its queued buffers.
    pub fn detach(&mut self) -> Option<Scheduler> {
        self.attached.take().map(|(s, _)| *s)
    }

    #[inline]
    pub fn is_attached(&self) -> bool {
        self.attached.is_some()
    }

    /// Whether the attached policy is the implicit VPN-SIP one.
    pub fn is_vpn_sip(&self) -> bool {
        matches!(self.attached, Some((_, Origin::VpnSip)))
    }

    pub fn scheduler(&self) -> Option<&Scheduler> {
        self.attached.as_ref().map(|(s, _)| &**s)
    }

    pub fn scheduler_mut(&mut self) -> Option<&mut Scheduler> {
        self.attached.as_mut().map(|(s, _)| &mut **s)
    }

    /// One inner packet leaving through the tunnel.
    #[inline]
    pub fn offer(&mut self, now: Instant, pkt: Packet) -> Offer {
        match &mut self.attached {
            None => Offer::Send(pkt),
            Some((s, _)) => match s.enqueue(now, pkt) {
                Ok(()) => Offer::Queued,
                Err(d) => Offer::Dropped(d),
            },
        }
    }

    /// See [`Scheduler::dequeue`].
    #[inline]
    pub fn dequeue(&mut self, now: Instant) -> Option<Packet> {
        self.attached.as_mut()?.0.dequeue(now)
    }

    /// See [`Scheduler::poll_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.attached.as_ref()?.0.poll_timeout()
    }

    /// See [`Scheduler::snapshot`].
    pub fn snapshot(&self, now: Instant) -> Option<PolicySnapshot> {
        self.attached.as_ref().map(|(s, _)| s.snapshot(now))
    }
}
