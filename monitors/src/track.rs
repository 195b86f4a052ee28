//! Track objects, sans-io.
//!
//! ```text
//! track 1 ip sla 1 reachability
//!  delay up 10 down 5
//! track 2 ip sla 2 state
//! track 3 interface GigabitEthernet0/0/1 line-protocol
//! ```
//! Rules (each has a test):
//! - `reachability` is Up when the latest SLA return code is `OK` or `Over threshold`; `state` is Up only on
//!   `OK`; `Timeout` is Down for both. `line-protocol` follows the interface's line protocol.
//! - Every object starts Down with 0 changes (as IOS does before the first result).
//! - With `delay up S` (`down S`) a change to Up (Down) happens only if the underlying state stays Up (Down)
//!   for S; a flap back within S cancels it and the change counter does not move. A repeat of the pending
//!   value does not restart the delay.
//! - Each real change increments the change counter, records the instant and emits `TrackEvent`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::sla::{ReturnCode, SlaEvent};
use crate::{SlaId, TrackId};

/// What an object follows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// `track N ip sla M reachability`.
    SlaReachability(SlaId),
    /// `track N ip sla M state`.
    SlaState(SlaId),
    /// `track N interface IF line-protocol`.
    InterfaceLineProtocol(String),
}

/// One `track N ...` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackObject {
    pub id: TrackId,
    pub kind: TrackKind,
    /// `delay up S`.
    pub delay_up: Option<Duration>,
    /// `delay down S`.
    pub delay_down: Option<Duration>,
}

impl TrackObject {
    pub fn new(id: TrackId, kind: TrackKind) -> Self {
        TrackObject {
            id,
            kind,
            delay_up: None,
            delay_down: None,
        }
    }
}

/// Largest `delay up|down` (IOS: 0-180 seconds).
pub const MAX_DELAY: Duration = Duration::from_secs(180);

/// Configuration errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackError {
    #[error("track {0} already exists")]
    Exists(TrackId),
    #[error("track {0} does not exist")]
    NoSuchObject(TrackId),
    #[error("delay must not exceed 180 seconds")]
    DelayTooLarge,
}

/// A tracked state changed (after any delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackEvent {
    pub id: TrackId,
    pub up: bool,
    pub at: Instant,
}

/// One object's state for `show track`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSnapshot {
    pub object: TrackObject,
    pub up: bool,
    pub changes: u64,
    pub last_change: Option<Instant>,
    /// A change waiting for its delay: (new state, when).
    pub pending: Option<(bool, Instant)>,
    /// For SLA objects: the operation's latest return code and RTT.
    pub latest_code: Option<ReturnCode>,
    pub latest_rtt: Option<Duration>,
}

#[derive(Debug)]
struct State {
    object: TrackObject,
    up: bool,
    changes: u64,
    last_change: Option<Instant>,
    pending: Option<(bool, Instant)>,
}

/// All track objects and the inputs they follow.
#[derive(Debug, Default)]
pub struct Tracker {
    objects: HashMap<TrackId, State>,
    by_sla: HashMap<SlaId, Vec<TrackId>>,
    by_interface: HashMap<String, Vec<TrackId>>,
    sla_latest: HashMap<SlaId, (ReturnCode, Option<Duration>)>,
    interfaces: HashMap<String, bool>,
    deadlines: BTreeSet<(Instant, TrackId)>,
    events: VecDeque<TrackEvent>,
}

fn sla_up(kind: &TrackKind, code: ReturnCode) -> bool {
    match kind {
        TrackKind::SlaReachability(_) => matches!(code, ReturnCode::Ok | ReturnCode::OverThreshold),
        TrackKind::SlaState(_) => code == ReturnCode::Ok,
        TrackKind::InterfaceLineProtocol(_) => false,
    }
}

impl Tracker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Adds an object; it starts Down and immediately evaluates the latest known input.
    pub fn add(&mut self, now: Instant, object: TrackObject) -> Result<(), TrackError> {
        let id = object.id;
        // IOS: `delay {up seconds [down seconds] | down seconds}`, 0-180 seconds.
        if [object.delay_up, object.delay_down]
            .iter()
            .flatten()
            .any(|d| *d > MAX_DELAY)
        {
            return Err(TrackError::DelayTooLarge);
        }
        if self.objects.contains_key(&id) {
            return Err(TrackError::Exists(id));
        }
        let input = match &object.kind {
            TrackKind::SlaReachability(s) | TrackKind::SlaState(s) => {
                self.by_sla.entry(*s).or_default().push(id);
                self.sla_latest
                    .get(s)
                    .map(|(c, _)| sla_up(&object.kind, *c))
            }
            TrackKind::InterfaceLineProtocol(name) => {
                self.by_interface.entry(name.clone()).or_default().push(id);
                self.interfaces.get(name).copied()
            }
        };
        self.objects.insert(
            id,
            State {
                object,
                up: false,
                changes: 0,
                last_change: None,
                pending: None,
            },
        );
        if let Some(up) = input {
            self.observe(now, id, up);
        }
        Ok(())
    }

    /// Removes an object (`no track N`).
    pub fn remove(&mut self, id: TrackId) -> Result<TrackObject, TrackError> {
        let st = self
            .objects
            .remove(&id)
            .ok_or(TrackError::NoSuchObject(id))?;
        if let Some((_, at)) = st.pending {
            self.deadlines.remove(&(at, id));
        }
        let list = match &st.object.kind {
            TrackKind::SlaReachability(s) | TrackKind::SlaState(s) => self.by_sla.get_mut(s),
            TrackKind::InterfaceLineProtocol(n) => self.by_interface.get_mut(n),
        };
        if let Some(list) = list {
            list.retain(|t| *t != id);
        }
        Ok(st.object)
    }

    /// Feeds an SLA result.
    pub fn handle_sla_result(
        &mut self,
        now: Instant,
        sla: SlaId,
        code: ReturnCode,
        rtt: Option<Duration>,
    ) {
        self.sla_latest.insert(sla, (code, rtt));
        let Some(ids) = self.by_sla.get(&sla) else {
            return;
        };
        // Index loop: `observe` needs `&mut self`; the id list is not changed by it.
        for i in 0..ids.len() {
            let Some(id) = self.by_sla.get(&sla).and_then(|v| v.get(i)).copied() else {
                break;
            };
            let Some(up) = self.objects.get(&id).map(|s| sla_up(&s.object.kind, code)) else {
                continue;
            };
            self.observe(now, id, up);
        }
    }

    /// Feeds an [`SlaEvent`] straight from the engine.
    pub fn handle_sla_event(&mut self, now: Instant, event: &SlaEvent) {
        if let SlaEvent::Completed { id, code, rtt, .. } = event {
            self.handle_sla_result(now, *id, *code, *rtt);
        }
    }

    /// Feeds an interface's line-protocol state.
    pub fn handle_interface(&mut self, now: Instant, name: &str, up: bool) {
        self.interfaces.insert(name.to_owned(), up);
        let n = self.by_interface.get(name).map_or(0, Vec::len);
        for i in 0..n {
            let Some(id) = self.by_interface.get(name).and_then(|v| v.get(i)).copied() else {
                break;
            };
            self.observe(now, id, up);
        }
    }

    fn observe(&mut self, now: Instant, id: TrackId, input: bool) {
        let Some(st) = self.objects.get_mut(&id) else {
            return;
        };
        if input == st.up {
            // Back to the current state: a pending change is cancelled.
            if let Some((_, at)) = st.pending.take() {
                self.deadlines.remove(&(at, id));
            }
            return;
        }
        if st.pending.is_some_and(|(to, _)| to == input) {
            return; // already waiting for this change
        }
        if let Some((_, at)) = st.pending.take() {
            self.deadlines.remove(&(at, id));
        }
        let delay = if input {
            st.object.delay_up
        } else {
            st.object.delay_down
        };
        match delay {
            Some(d) if !d.is_zero() => {
                let at = now + d;
                st.pending = Some((input, at));
                self.deadlines.insert((at, id));
            }
            _ => {
                st.up = input;
                st.changes += 1;
                st.last_change = Some(now);
                self.events.push_back(TrackEvent {
                    id,
                    up: input,
                    at: now,
                });
            }
        }
    }

    /// Applies changes whose delay has elapsed.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(st) = self.objects.get_mut(&id) else {
                continue;
            };
            let Some((to, when)) = st.pending else {
                continue;
            };
            if when != at {
                continue;
            }
            st.pending = None;
            st.up = to;
            st.changes += 1;
            st.last_change = Some(at);
            self.events.push_back(TrackEvent { id, up: to, at });
        }
    }

    /// The next delay deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    pub fn poll_event(&mut self) -> Option<TrackEvent> {
        self.events.pop_front()
    }

    /// Current state of an object (`None`: no such object).
    pub fn is_up(&self, id: TrackId) -> Option<bool> {
        self.objects.get(&id).map(|s| s.up)
    }

    /// Number of changes of an object.
    pub fn changes(&self, id: TrackId) -> Option<u64> {
        self.objects.get(&id).map(|s| s.changes)
    }

    /// Plain data for `show track`, sorted by id.
    pub fn snapshot(&self) -> Vec<TrackSnapshot> {
        let mut v: Vec<TrackSnapshot> = self
            .objects
            .values()
            .map(|s| {
                let latest = match &s.object.kind {
                    TrackKind::SlaReachability(sla) | TrackKind::SlaState(sla) => {
                        self.sla_latest.get(sla).copied()
                    }
                    TrackKind::InterfaceLineProtocol(_) => None,
                };
                TrackSnapshot {
                    object: s.object.clone(),
                    up: s.up,
                    changes: s.changes,
                    last_change: s.last_change,
                    pending: s.pending,
                    latest_code: latest.map(|l| l.0),
                    latest_rtt: latest.and_then(|l| l.1),
                }
            })
            .collect();
        v.sort_by_key(|s| s.object.id);
        v
    }

    /// Approximate heap bytes (capacity-based accounting, for the scale benchmark).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let names: usize = self
            .objects
            .values()
            .map(|s| match &s.object.kind {
                TrackKind::InterfaceLineProtocol(n) => n.capacity(),
                _ => 0,
            })
            .sum();
        self.objects.capacity() * (size_of::<(TrackId, State)>() + 1)
            + self.by_sla.capacity() * (size_of::<(SlaId, Vec<TrackId>)>() + 1)
            + self.by_sla.values().map(|v| v.capacity() * size_of::<TrackId>()).sum::<usize>()
            + self.by_interface.capacity() * (size_of::<(String, Vec<TrackId>)>() + 1)
            + self.sla_latest.capacity() * (size_of::<(SlaId, (ReturnCode, Option<Duration>))>() + 1)
            + self.interfaces.capacity() * (size_of::<(String, bool)>() + 1)
            // BTreeSet: roughly 1.5x the element size with node overhead
            + self.deadlines.len() * size_of::<(Instant, TrackId)>() * 3 / 2
            + self.events.capacity() * size_of::<TrackEvent>()
            + names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn reach(id: u32, sla: u32) -> TrackObject {
        TrackObject::new(TrackId(id), TrackKind::SlaReachability(SlaId(sla)))
    }

    fn events(t: &mut Tracker) -> Vec<(u32, bool)> {
        std::iter::from_fn(|| t.poll_event())
            .map(|e| (e.id.0, e.up))
            .collect()
    }

    #[test]
    fn object_starts_down_with_no_changes() {
        let t0 = crate::test_t0();
        let mut t = Tracker::new();
        t.add(t0, reach(1, 1)).unwrap();
        assert_eq!(t.is_up(TrackId(1)), Some(false));
        assert_eq!(t.changes(TrackId(1)), Some(0));
        assert!(events(&mut t).is_empty());
    }

    #[test]
    fn reachability_is_up_on_ok_and_over_threshold_down_on_timeout() {
        let t0 = crate::test_t0();
        let mut t = Tracker::new();
        t.add(t0, reach(1, 1)).unwrap();
        t.handle_sla_result(t0, SlaId(1), ReturnCode::OverThreshold, Some(secs(1)));
        assert_eq!(t.is_up(TrackId(1)), Some(true));
        t.handle_sla_result(t0, SlaId(1), ReturnCode::Ok, None);
        t.handle_sla_result(t0, SlaId(1), ReturnCode::Timeout, None);
        assert_eq!(t.is_up(TrackId(1)), Some(false));
        assert_eq!(events(&mut t), [(1, true), (1, false)]);
        assert_eq!(t.changes(TrackId(1)), Some(2));
    }

    #[test]
    fn state_is_up_only_on_ok() {
        let t0 = crate::test_t0();
        let mut t = Tracker::new();
        t.add(
            t0,
            TrackObject::new(TrackId(2), TrackKind::SlaState(SlaId(1))),
        )
        .unwrap();
        t.handle_sla_result(t0, SlaId(1), ReturnCode::Ok, None);
        assert_eq!(t.is_up(TrackId(2)), Some(true));
        t.handle_sla_result(t0, SlaId(1), ReturnCode::OverThreshold, None);
        assert_eq!(t.is_up(TrackId(2)), Some(false));
        t.handle_sla_result(t0, SlaId(1), ReturnCode::Timeout, None);
        assert_eq!(t.changes(TrackId(2)), Some(2));
    }

    #[test]
    fn line_protocol_follows_interface_and_known_state_applies_on_add() {
        let t0 = crate::test_t0();
        let mut t = Tracker::new();
        t.handle_interface(t0, "Gi0/0", true);
        let obj = TrackObject::new(TrackId(3), TrackKind::InterfaceLineProtocol("Gi0/0".into()));
        t.add(t0, obj).unwrap();
        assert_eq!(t.is_up(TrackId(3)), Some(true));
        t.handle_interface(t0, "Gi0/1", false);
        assert_eq!(t.is_up(TrackId(3)), Some(true));
        t.handle_interface(t0, "Gi0/0", false);
        assert_eq!(events(&mut t), [(3, true), (3, false)]);
    }

    #[test]
    fn delay_up_waits_for_stable_up() {
        let t0 = crate::test_t0();
        let mut t = Tracker::new();
        t.add(
            t0,
            TrackObject {
                delay_up: Some(secs(10)),
                ..reach(1, 1)
            },
        )
        .unwrap();
        t.handle_sla_result(t0, SlaId(1), ReturnCode::Ok, None);
        assert_eq!(t.is_up(TrackId(1)), Some(false));
        assert_eq!(t.poll_timeout(), Some(t0 + secs(10)));
        // A repeat of the pending value does not restart the delay.
        t.handle_sla_result(t0 + secs(2), SlaId(1), ReturnCode::Ok, None);
        assert_eq!(t.poll_timeout(), Some(t0 + secs(10)));
        t.handle_timeout(t0 + secs(9));
        assert_eq!(t.is_up(TrackId(1)), Some(false));
        t.handle_timeout(t0 + secs(10));
        assert_eq!(t.is_up(TrackId(1)), Some(true));
        let s = &t.snapshot()[0];
        assert_eq!(
            (s.changes, s.last_change, s.pending),
            (1, Some(t0 + secs(10)), None)
        );
        assert_eq!(events(&mut t), [(1, true)]);
    }

    #[test]
    fn flap_within_delay_cancels_change_and_counter_stays() {
        let t0 = crate::test_t0();
        let mut t = Tracker::new();
        t.add(
            t0,
            TrackObject {
                delay_down: Some(secs(5)),
                ..reach(1, 1)
            },
        )
        .unwrap();
        t.handle_sla_result(t0, SlaId(1), ReturnCode::Ok, None);
        assert_eq!(t.is_up(TrackId(1)), Some(true));
        t.handle_sla_result(t0 + secs(2), SlaId(1), ReturnCode::Timeout, None);
        assert_eq!(t.is_up(TrackId(1)), Some(true));
        t.handle_sla_result(t0 + secs(4), SlaId(1), ReturnCode::Ok, None);
        assert_eq!(t.poll_timeout(), None);
        t.handle_timeout(t0 + secs(60));
        assert_eq!(t.is_up(TrackId(1)), Some(true));
        assert_eq!(t.changes(TrackId(1)), Some(1));
        // A sustained failure goes down after the delay, counted from the first Timeout.
        t.handle_sla_result(t0 + secs(70), SlaId(1), ReturnCode::Timeout, None);
        t.handle_sla_result(t0 + secs(72), SlaId(1), ReturnCode::Timeout, None);
        t.handle_timeout(t0 + secs(75));
        assert_eq!(t.is_up(TrackId(1)), Some(false));
        assert_eq!(t.changes(TrackId(1)), Some(2));
        assert_eq!(events(&mut t), [(1, true), (1, false)]);
    }

    #[test]
    fn delay_up_and_down_are_independent() {
        let t0 = crate::test_t0();
        let mut t = Tracker::new();
        let obj = TrackObject {
            delay_up: Some(secs(10)),
            delay_down: None,
            ..reach(1, 1)
        };
        t.add(t0, obj).unwrap();
        t.handle_sla_result(t0, SlaId(1), ReturnCode::Ok, None);
        t.handle_timeout(t0 + secs(10));
        assert_eq!(t.is_up(TrackId(1)), Some(true));
        t.handle_sla_result(t0 + secs(11), SlaId(1), ReturnCode::Timeout, None);
        assert_eq!(t.is_up(TrackId(1)), Some(false)); // no down delay
    }

    #[test]
    fn one_sla_feeds_several_objects() {
        let t0 = crate::test_t0();
        let mut t = Tracker::new();
        t.add(t0, reach(1, 7)).unwrap();
        t.add(
            t0,
            TrackObject::new(TrackId(2), TrackKind::SlaState(SlaId(7))),
        )
        .unwrap();
        t.handle_sla_event(
            t0,
            &SlaEvent::Completed {
                id: SlaId(7),
                code: ReturnCode::OverThreshold,
                rtt: None,
                started: t0,
            },
        );
        assert_eq!(t.is_up(TrackId(1)), Some(true));
        assert_eq!(t.is_up(TrackId(2)), Some(false));
    }

    #[test]
    fn removed_object_stops_and_pending_timer_goes() {
        let t0 = crate::test_t0();
        let mut t = Tracker::new();
        t.add(
            t0,
            TrackObject {
                delay_up: Some(secs(10)),
                ..reach(1, 1)
            },
        )
        .unwrap();
        t.handle_sla_result(t0, SlaId(1), ReturnCode::Ok, None);
        t.remove(TrackId(1)).unwrap();
        assert_eq!(t.poll_timeout(), None);
        t.handle_sla_result(t0, SlaId(1), ReturnCode::Ok, None);
        assert!(events(&mut t).is_empty());
        assert_eq!(
            t.remove(TrackId(1)),
            Err(TrackError::NoSuchObject(TrackId(1)))
        );
        t.add(t0, reach(1, 1)).unwrap();
        // The latest SLA result applies to a new object at once.
        assert_eq!(t.is_up(TrackId(1)), Some(true));
        assert_eq!(t.add(t0, reach(1, 1)), Err(TrackError::Exists(TrackId(1))));
        let slow = TrackObject {
            delay_up: Some(secs(181)),
            ..reach(2, 1)
        };
        assert_eq!(t.add(t0, slow), Err(TrackError::DelayTooLarge));
    }
}
