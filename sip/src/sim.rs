//! In-process network for tests, the demo and benchmarks: user agents and a registrar exchange
//! datagrams in virtual time, with an optional loss filter. Sans-io like the rest of the crate.

use std::time::{Duration, Instant};

use crate::registrar::Registrar;
use crate::transaction::Transmit;
use crate::ua::{Event, UserAgent};

/// A datagram in flight, as logged.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub at: Instant,
    pub from: std::net::SocketAddr,
    pub to: std::net::SocketAddr,
    /// First line of the SIP message.
    pub first_line: String,
    pub dropped: bool,
}

/// Loss filter: return `true` to drop a datagram.
pub type LossFn = Box<dyn FnMut(&Delivery) -> bool + Send>;

/// Registrar + user agents on one virtual network.
pub struct Network {
    pub now: Instant,
    pub registrar: Registrar,
    pub uas: Vec<UserAgent>,
    /// Events from each UA, tagged with the UA's index.
    pub events: Vec<(usize, Event)>,
    pub log: Vec<Delivery>,
    pub keep_log: bool,
    pub loss: Option<LossFn>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("registrar", &self.registrar)
            .field("uas", &self.uas.len())
            .finish()
    }
}

impl Network {
    pub fn new(now: Instant, registrar: Registrar, uas: Vec<UserAgent>) -> Network {
        Network {
            now,
            registrar,
            uas,
            events: Vec::new(),
            log: Vec::new(),
            keep_log: true,
            loss: None,
        }
    }

    fn deliver(&mut self, from: std::net::SocketAddr, t: Transmit) {
        let d = Delivery {
            at: self.now,
            from,
            to: t.to,
            first_line: String::from_utf8_lossy(
                t.payload.split(|b| *b == b'\r').next().unwrap_or_default(),
            )
            .into_owned(),
            dropped: false,
        };
        let dropped = self.loss.as_mut().is_some_and(|f| f(&d));
        if self.keep_log {
            self.log.push(Delivery { dropped, ..d });
        }
        if dropped {
            return;
        }
        if t.to == self.registrar.addr() {
            self.registrar.handle_input(self.now, from, &t.payload);
        } else if let Some(ua) = self.uas.iter_mut().find(|u| u.contact() == t.to) {
            ua.handle_input(self.now, from, &t.payload);
        }
    }

    /// Deliver everything queued (repeatedly) without advancing time. Returns the number of
    /// datagrams moved.
    pub fn flush(&mut self) -> usize {
        let mut n = 0;
        loop {
            let mut batch = Vec::new();
            while let Some(t) = self.registrar.poll_transmit() {
                batch.push((self.registrar.addr(), t));
            }
            for ua in self.uas.iter_mut() {
                while let Some(t) = ua.poll_transmit() {
                    batch.push((ua.contact(), t));
                }
            }
            for (i, ua) in self.uas.iter_mut().enumerate() {
                while let Some(e) = ua.poll_event() {
                    self.events.push((i, e));
                }
            }
            if batch.is_empty() {
                return n;
            }
            n += batch.len();
            for (from, t) in batch {
                self.deliver(from, t);
            }
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        let uas = self.uas.iter().filter_map(UserAgent::poll_timeout).min();
        [uas, self.registrar.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Run until `deadline`, jumping from timer to timer.
    pub fn run_until(&mut self, deadline: Instant) {
        loop {
            self.flush();
            match self.next_timeout() {
                Some(t) if t <= deadline => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    for ua in self.uas.iter_mut() {
                        ua.handle_timeout(now);
                    }
                    self.registrar.handle_timeout(now);
                }
                _ => break,
            }
        }
        self.now = self.now.max(deadline);
        self.flush();
    }

    pub fn run_for(&mut self, d: Duration) {
        let deadline = self.now + d;
        self.run_until(deadline);
    }

    /// Take the events collected so far.
    pub fn take_events(&mut self) -> Vec<(usize, Event)> {
        std::mem::take(&mut self.events)
    }
}
