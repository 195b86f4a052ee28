//! RFC 3261 §17 transactions, sans-io: client and server, INVITE and non-INVITE, with timers A, B,
//! D, E, F, G, H, I, J, K. Timers live in one table per transaction; [`Transaction::poll_timeout`]
//! is the earliest entry. Over a reliable transport the retransmission timers (A, E, G) are not
//! started and D, I, J, K are zero, as §17 says.
//!
//! One addition: an INVITE server transaction that sent a 2xx stays `Accepted` and retransmits
//! the 2xx (T1 doubling to T2) until the ACK arrives or 64*T1 passes. RFC 3261 §13.3.1.4 gives this
//! job to the UAS core and RFC 6026 moves the state into the transaction; keeping it here puts all
//! retransmission in one place.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::msg::{Headers, Method, Request, Response};

/// RTT estimate (RFC 3261 §17.1.1.1).
pub const T1: Duration = Duration::from_millis(500);
/// Maximum retransmit interval for non-INVITE requests and INVITE responses.
pub const T2: Duration = Duration::from_secs(4);
/// Maximum duration a message remains in the network.
pub const T4: Duration = Duration::from_secs(5);

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub payload: Vec<u8>,
}

/// The §17 timers (plus the 2xx retransmission pair of an accepted INVITE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// INVITE request retransmit (client).
    A,
    /// INVITE transaction timeout (client).
    B,
    /// Wait time for response retransmits after a non-2xx final (client INVITE).
    D,
    /// Non-INVITE request retransmit (client).
    E,
    /// Non-INVITE transaction timeout (client).
    F,
    /// INVITE final response retransmit (server).
    G,
    /// Wait time for ACK receipt (server INVITE).
    H,
    /// Wait time for ACK retransmits (server INVITE).
    I,
    /// Wait time for request retransmits (server non-INVITE).
    J,
    /// Wait time for response retransmits (client non-INVITE).
    K,
    /// 2xx retransmit until ACK (RFC 3261 §13.3.1.4).
    Retransmit2xx,
    /// Give up waiting for the ACK of a 2xx (64*T1).
    Ack2xxTimeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ClientInvite,
    ClientNonInvite,
    ServerInvite,
    ServerNonInvite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    /// INVITE server after a 2xx, until ACK (see module docs).
    Accepted,
    Terminated,
}

/// What a transaction tells its user (the UA core).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxEvent {
    /// A response the TU must see (client transactions).
    Response(Response),
    /// Timer B, F or H fired, or no ACK for a 2xx: the request or response was never confirmed.
    Timeout,
    /// The transaction ended (normally or not).
    Terminated,
}

/// One transaction.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub kind: Kind,
    pub state: State,
    /// Top Via branch: the transaction key together with the method.
    pub branch: String,
    pub method: Method,
    /// Where requests (client) or responses (server) go.
    pub peer: SocketAddr,
    pub reliable: bool,
    /// The request: sent (client) or received (server).
    pub request: Request,
    /// Last response sent (server).
    pub last_response: Option<Response>,
    ack: Option<Vec<u8>>,
    timers: Vec<(Timer, Instant)>,
    interval: Duration,
}

impl Transaction {
    fn set(&mut self, t: Timer, at: Instant) {
        self.cancel(t);
        self.timers.push((t, at));
    }

    fn cancel(&mut self, t: Timer) {
        self.timers.retain(|(x, _)| *x != t);
    }

    /// The timer that fires first, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().map(|(_, at)| *at).min()
    }

    /// The armed timers (for tests and `show`).
    pub fn timers(&self) -> impl Iterator<Item = (Timer, Instant)> + '_ {
        self.timers.iter().copied()
    }

    fn wait(&self, unreliable: Duration) -> Duration {
        if self.reliable {
            Duration::ZERO
        } else {
            unreliable
        }
    }

    fn terminate(&mut self, events: &mut VecDeque<TxEvent>) {
        self.state = State::Terminated;
        self.timers.clear();
        events.push_back(TxEvent::Terminated);
    }

    /// Start a client transaction and send the request.
    pub fn client(
        now: Instant,
        request: Request,
        peer: SocketAddr,
        reliable: bool,
        out: &mut VecDeque<Transmit>,
    ) -> Transaction {
        let branch = request
            .top_via()
            .and_then(|v| v.branch().map(str::to_owned))
            .unwrap_or_default();
        let invite = request.method == Method::Invite;
        let mut tx = Transaction {
            kind: if invite {
                Kind::ClientInvite
            } else {
                Kind::ClientNonInvite
            },
            state: if invite {
                State::Calling
            } else {
                State::Trying
            },
            branch,
            method: request.method.clone(),
            peer,
            reliable,
            request,
            last_response: None,
            ack: None,
            timers: Vec::new(),
            interval: T1,
        };
        out.push_back(Transmit {
            to: peer,
            payload: tx.request.to_bytes(),
        });
        //= https://www.rfc-editor.org/rfc/rfc3261#section-17.1.1.2
        //# If an unreliable transport is being used, the client transaction MUST start timer A
        //# with a value of T1. ... For any transport, the client transaction MUST start timer B
        //# with a value of 64*T1 seconds
        //= https://www.rfc-editor.org/rfc/rfc3261#section-17.1.2.2
        //# The "Trying" state is entered when the TU initiates a new client transaction with a
        //# request. When entering this state, the client transaction SHOULD set timer F to fire
        //# in 64*T1 seconds. ... If an unreliable transport is in use, the client transaction
        //# MUST set timer E to fire in T1 seconds.
        let (retx, timeout) = if invite {
            (Timer::A, Timer::B)
        } else {
            (Timer::E, Timer::F)
        };
        if !reliable {
            tx.set(retx, now + T1);
        }
        tx.set(timeout, now + 64 * T1);
        tx
    }

    /// Start a server transaction for a received request (INVITE enters Proceeding, others
    /// Trying). The TU sends responses with [`Transaction::respond`].
    pub fn server(request: Request, peer: SocketAddr, reliable: bool) -> Transaction {
        let branch = request
            .top_via()
            .and_then(|v| v.branch().map(str::to_owned))
            .unwrap_or_default();
        let invite = request.method == Method::Invite;
        Transaction {
            kind: if invite {
                Kind::ServerInvite
            } else {
                Kind::ServerNonInvite
            },
            state: if invite {
                State::Proceeding
            } else {
                State::Trying
            },
            branch,
            method: request.method.clone(),
            peer,
            reliable,
            request,
            last_response: None,
            ack: None,
            timers: Vec::new(),
            interval: T1,
        }
    }

    pub fn is_client(&self) -> bool {
        matches!(self.kind, Kind::ClientInvite | Kind::ClientNonInvite)
    }

    /// Does this message belong to this transaction? (§17.1.3 / §17.2.3: branch and method;
    /// an ACK matches its INVITE server transaction, a CANCEL has its own transaction.)
    pub fn matches(&self, branch: &str, method: &Method, client_side: bool) -> bool {
        if self.is_client() != client_side || self.branch != branch {
            return false;
        }
        &self.method == method || (*method == Method::Ack && self.method == Method::Invite)
    }

    /// Client side: a response arrived. Events tell the TU what to do.
    pub fn on_response(
        &mut self,
        now: Instant,
        resp: Response,
        out: &mut VecDeque<Transmit>,
        events: &mut VecDeque<TxEvent>,
    ) {
        let provisional = resp.status < 200;
        match (self.kind, self.state) {
            (Kind::ClientInvite, State::Calling | State::Proceeding) => {
                if provisional {
                    //# If the client transaction receives a provisional response while in the
                    //# "Calling" state, it transitions to the "Proceeding" state. ... the client
                    //# transaction SHOULD NOT retransmit the request any longer.
                    self.state = State::Proceeding;
                    self.cancel(Timer::A);
                    events.push_back(TxEvent::Response(resp));
                } else if resp.status < 300 {
                    //# When in either the "Calling" or "Proceeding" states, reception of a 2xx
                    //# response MUST cause the client transaction to enter the "Terminated"
                    //# state, and the response MUST be passed up to the TU.
                    events.push_back(TxEvent::Response(resp));
                    self.terminate(events);
                } else {
                    //# When in either the "Calling" or "Proceeding" states, reception of a
                    //# response with status code from 300-699 MUST cause the client transaction
                    //# to transition to "Completed". The client transaction MUST pass the
                    //# received response up to the TU, and the client transaction MUST generate
                    //# an ACK request ... set timer D to fire in at least 32 seconds for
                    //# unreliable transports, and a value of zero seconds for reliable transports.
                    let ack = self.non_2xx_ack(&resp).to_bytes();
                    out.push_back(Transmit {
                        to: self.peer,
                        payload: ack.clone(),
                    });
                    self.ack = Some(ack);
                    self.state = State::Completed;
                    self.timers.clear();
                    let d = self.wait(Duration::from_secs(32));
                    events.push_back(TxEvent::Response(resp));
                    if d.is_zero() {
                        self.terminate(events);
                    } else {
                        self.set(Timer::D, now + d);
                    }
                }
            }
            (Kind::ClientInvite, State::Completed) => {
                //# Any retransmissions of the final response that are received while in the
                //# "Completed" state MUST cause the ACK to be re-passed to the transport layer
                //# for retransmission, but the newly generated ACK MUST NOT be passed up to the TU.
                if !provisional && let Some(ack) = &self.ack {
                    out.push_back(Transmit {
                        to: self.peer,
                        payload: ack.clone(),
                    });
                }
            }
            (Kind::ClientNonInvite, State::Trying | State::Proceeding) => {
                if provisional {
                    self.state = State::Proceeding;
                    events.push_back(TxEvent::Response(resp));
                } else {
                    //= https://www.rfc-editor.org/rfc/rfc3261#section-17.1.2.2
                    //# Once the client transaction enters the "Completed" state, it MUST set
                    //# Timer K to fire in T4 seconds for unreliable transports, and zero seconds
                    //# for reliable transports.
                    self.state = State::Completed;
                    self.timers.clear();
                    events.push_back(TxEvent::Response(resp));
                    let k = self.wait(T4);
                    if k.is_zero() {
                        self.terminate(events);
                    } else {
                        self.set(Timer::K, now + k);
                    }
                }
            }
            _ => {} // absorbed
        }
    }

    /// §17.1.1.3: the ACK for a non-2xx final response (same branch, To from the response).
    fn non_2xx_ack(&self, resp: &Response) -> Request {
        let r = &self.request;
        let mut h = Headers::default();
        if let Some(v) = r.headers.get_all("Via").next() {
            h.push("Via", v);
        }
        for name in ["Route", "Max-Forwards", "From"] {
            for (n, v) in &r.headers.0 {
                if n.eq_ignore_ascii_case(name) {
                    h.push(name, v.clone());
                }
            }
        }
        h.push("To", resp.headers.get("To").unwrap_or_default());
        h.push("Call-ID", r.call_id());
        let seq = r.cseq().map(|c| c.seq).unwrap_or(0);
        h.push("CSeq", format!("{seq} ACK"));
        Request {
            method: Method::Ack,
            uri: r.uri.clone(),
            headers: h,
            body: Vec::new(),
        }
    }

    /// Server side: a retransmission of the request (or the ACK) arrived.
    pub fn on_request(
        &mut self,
        now: Instant,
        method: &Method,
        out: &mut VecDeque<Transmit>,
        events: &mut VecDeque<TxEvent>,
    ) {
        if *method == Method::Ack {
            self.on_ack(now, events);
            return;
        }
        //= https://www.rfc-editor.org/rfc/rfc3261#section-17.2.1
        //# If a request retransmission is received while in the "Proceeding" state, the most
        //# recent provisional response that was received from the TU MUST be passed to the
        //# transport layer for retransmission.
        if matches!(
            self.state,
            State::Proceeding | State::Completed | State::Accepted
        ) && let Some(r) = &self.last_response
        {
            out.push_back(Transmit {
                to: self.peer,
                payload: r.to_bytes(),
            });
        }
    }

    /// The ACK for this INVITE's final response arrived (for a 2xx it has its own branch: the UA
    /// matches it by dialog and calls this directly).
    pub fn on_ack(&mut self, now: Instant, events: &mut VecDeque<TxEvent>) {
        match self.state {
            State::Completed if self.kind == Kind::ServerInvite => {
                //= https://www.rfc-editor.org/rfc/rfc3261#section-17.2.1
                //# If an ACK is received while the server transaction is in the "Completed"
                //# state, the server transaction MUST transition to the "Confirmed" state. As
                //# Timer G is ignored in this state, any retransmissions of the response will
                //# cease. ... timer I is set to fire in T4 seconds for unreliable transports,
                //# and zero seconds for reliable transports.
                self.state = State::Confirmed;
                self.timers.clear();
                let i = self.wait(T4);
                if i.is_zero() {
                    self.terminate(events);
                } else {
                    self.set(Timer::I, now + i);
                }
            }
            State::Accepted => self.terminate(events),
            _ => {}
        }
    }

    /// Server side: the TU sends a response.
    pub fn respond(&mut self, now: Instant, resp: Response, out: &mut VecDeque<Transmit>) {
        if matches!(
            self.state,
            State::Completed | State::Confirmed | State::Terminated | State::Accepted
        ) {
            return; // a final response was already sent
        }
        out.push_back(Transmit {
            to: self.peer,
            payload: resp.to_bytes(),
        });
        let status = resp.status;
        self.last_response = Some(resp);
        if status < 200 {
            if self.state == State::Trying {
                self.state = State::Proceeding;
            }
            return;
        }
        self.interval = T1;
        match self.kind {
            Kind::ServerInvite if status < 300 => {
                self.state = State::Accepted;
                if !self.reliable {
                    self.set(Timer::Retransmit2xx, now + T1);
                }
                self.set(Timer::Ack2xxTimeout, now + 64 * T1);
            }
            Kind::ServerInvite => {
                //= https://www.rfc-editor.org/rfc/rfc3261#section-17.2.1
                //# For unreliable transports, timer G is set to fire in T1 seconds, and is not
                //# set to fire for reliable transports. ... When the "Completed" state is
                //# entered, timer H MUST be set to fire in 64*T1 seconds for all transports.
                self.state = State::Completed;
                if !self.reliable {
                    self.set(Timer::G, now + T1);
                }
                self.set(Timer::H, now + 64 * T1);
            }
            _ => {
                //= https://www.rfc-editor.org/rfc/rfc3261#section-17.2.2
                //# When the server transaction enters the "Completed" state, it MUST set Timer J
                //# to fire in 64*T1 seconds for unreliable transports, and zero seconds for
                //# reliable transports.
                self.state = State::Completed;
                let j = self.wait(64 * T1);
                if j.is_zero() {
                    self.state = State::Terminated;
                } else {
                    self.set(Timer::J, now + j);
                }
            }
        }
    }

    /// Fire every timer due at `now`.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        out: &mut VecDeque<Transmit>,
        events: &mut VecDeque<TxEvent>,
    ) {
        loop {
            let Some(&(timer, at)) = self
                .timers
                .iter()
                .filter(|(_, at)| *at <= now)
                .min_by_key(|(_, at)| *at)
            else {
                return;
            };
            self.cancel(timer);
            match timer {
                Timer::A => {
                    //= https://www.rfc-editor.org/rfc/rfc3261#section-17.1.1.2
                    //# When timer A fires, the client transaction MUST retransmit the request by
                    //# passing it to the transport layer, and MUST reset the timer with a value
                    //# of 2*T1.
                    self.resend_request(out);
                    self.interval *= 2;
                    self.set(Timer::A, at + self.interval);
                }
                Timer::E => {
                    //= https://www.rfc-editor.org/rfc/rfc3261#section-17.1.2.2
                    //# If timer E fires while still in this state, the timer is reset, but this
                    //# time with a value of MIN(2*T1, T2). ... If Timer E fires while in the
                    //# "Proceeding" state, the request MUST be passed to the transport layer for
                    //# retransmission, and Timer E MUST be reset with a value of T2 seconds.
                    self.resend_request(out);
                    self.interval = if self.state == State::Proceeding {
                        T2
                    } else {
                        (self.interval * 2).min(T2)
                    };
                    self.set(Timer::E, at + self.interval);
                }
                Timer::G | Timer::Retransmit2xx => {
                    //= https://www.rfc-editor.org/rfc/rfc3261#section-17.2.1
                    //# If timer G fires, the response is passed to the transport layer once
                    //# more for retransmission, and timer G is set to fire in MIN(2*T1, T2)
                    //# seconds.
                    if let Some(r) = &self.last_response {
                        out.push_back(Transmit {
                            to: self.peer,
                            payload: r.to_bytes(),
                        });
                    }
                    self.interval = (self.interval * 2).min(T2);
                    self.set(timer, at + self.interval);
                }
                Timer::B | Timer::F | Timer::H | Timer::Ack2xxTimeout => {
                    //# If timer B fires while in the "Calling" state, the client transaction
                    //# SHOULD inform the TU that a timeout has occurred.
                    events.push_back(TxEvent::Timeout);
                    self.terminate(events);
                    return;
                }
                Timer::D | Timer::I | Timer::J | Timer::K => {
                    self.terminate(events);
                    return;
                }
            }
        }
    }

    fn resend_request(&self, out: &mut VecDeque<Transmit>) {
        out.push_back(Transmit {
            to: self.peer,
            payload: self.request.to_bytes(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{Message, reason_phrase};

    fn req(method: &str) -> Request {
        let m = format!(
            "{method} sip:1002@lifeline.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKabc\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1001@lifeline.test>;tag=f1\r\nTo: <sip:1002@lifeline.test>\r\n\
             Call-ID: c1@10.0.0.2\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        );
        match Message::parse(m.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    /// Virtual time starts at an arbitrary instant; only differences matter.
    #[allow(clippy::disallowed_methods)]
    fn origin() -> Instant {
        Instant::now()
    }

    fn peer() -> SocketAddr {
        "10.0.0.1:5060".parse().unwrap()
    }

    struct Run {
        tx: Transaction,
        out: VecDeque<Transmit>,
        ev: VecDeque<TxEvent>,
        t0: Instant,
    }

    impl Run {
        fn client(method: &str) -> Run {
            let t0 = origin();
            let mut out = VecDeque::new();
            let tx = Transaction::client(t0, req(method), peer(), false, &mut out);
            Run {
                tx,
                out,
                ev: VecDeque::new(),
                t0,
            }
        }

        fn server(method: &str) -> Run {
            Run {
                tx: Transaction::server(req(method), peer(), false),
                out: VecDeque::new(),
                ev: VecDeque::new(),
                t0: origin(),
            }
        }

        /// Advance virtual time timer by timer until `until` (ms after t0); returns the ms
        /// offsets at which something was sent.
        fn run_until(&mut self, until_ms: u64) -> Vec<u64> {
            let mut sends = Vec::new();
            let end = self.t0 + Duration::from_millis(until_ms);
            while let Some(at) = self.tx.poll_timeout() {
                if at > end {
                    break;
                }
                let before = self.out.len();
                self.tx.handle_timeout(at, &mut self.out, &mut self.ev);
                for _ in before..self.out.len() {
                    sends.push((at - self.t0).as_millis() as u64);
                }
            }
            sends
        }

        fn resp(&self, status: u16) -> Response {
            self.tx
                .request
                .response(status, reason_phrase(status), Some("t2"))
        }
    }

    #[test]
    fn invite_retransmitted_at_half_1_2_4_s_and_timer_b_at_64_t1() {
        let mut r = Run::client("INVITE");
        assert_eq!(r.out.len(), 1);
        let sends = r.run_until(40_000);
        assert_eq!(sends, [500, 1500, 3500, 7500, 15500, 31500]);
        // intervals: 0.5, 1, 2, 4, 8, 16 s (timer A doubles without a cap)
        assert_eq!(r.tx.state, State::Terminated);
        assert_eq!(r.ev.pop_front(), Some(TxEvent::Timeout));
        assert_eq!(r.tx.poll_timeout(), None);
    }

    #[test]
    fn timer_b_fires_at_exactly_32_s() {
        let mut r = Run::client("INVITE");
        r.run_until(31_999);
        assert_ne!(r.tx.state, State::Terminated);
        r.run_until(32_000);
        assert_eq!(r.tx.state, State::Terminated);
        assert!(r.ev.contains(&TxEvent::Timeout));
    }

    #[test]
    fn provisional_stops_timer_a_but_not_timer_b() {
        let mut r = Run::client("INVITE");
        let t = r.t0 + Duration::from_millis(100);
        let resp = r.resp(180);
        r.tx.on_response(t, resp, &mut r.out, &mut r.ev);
        assert_eq!(r.tx.state, State::Proceeding);
        assert!(matches!(r.ev.pop_front(), Some(TxEvent::Response(x)) if x.status == 180));
        let sends = r.run_until(40_000);
        assert!(sends.is_empty());
        assert_eq!(r.ev.pop_front(), Some(TxEvent::Timeout));
    }

    #[test]
    fn invite_2xx_terminates_and_goes_to_tu() {
        let mut r = Run::client("INVITE");
        let resp = r.resp(200);
        r.tx.on_response(r.t0, resp, &mut r.out, &mut r.ev);
        assert_eq!(r.tx.state, State::Terminated);
        assert!(matches!(r.ev.pop_front(), Some(TxEvent::Response(x)) if x.status == 200));
        assert_eq!(r.out.len(), 1, "no ACK from the transaction for a 2xx");
    }

    #[test]
    fn invite_non_2xx_is_acked_and_timer_d_absorbs_retransmits() {
        for status in [486, 488, 603, 408] {
            let mut r = Run::client("INVITE");
            r.out.clear();
            let resp = r.resp(status);
            r.tx.on_response(r.t0, resp.clone(), &mut r.out, &mut r.ev);
            assert_eq!(r.tx.state, State::Completed);
            let ack = r.out.pop_front().unwrap();
            let Message::Request(ack) = Message::parse(&ack.payload).unwrap() else {
                panic!()
            };
            assert_eq!(ack.method, Method::Ack);
            assert_eq!(ack.top_via().unwrap().branch(), Some("z9hG4bKabc"));
            assert_eq!(ack.to().unwrap().tag(), Some("t2"));
            assert_eq!(ack.cseq().unwrap().seq, 1);
            // retransmitted final response: ACK again, not passed up
            r.ev.clear();
            r.tx.on_response(r.t0 + T1, resp, &mut r.out, &mut r.ev);
            assert_eq!(r.out.len(), 1);
            assert!(r.ev.is_empty());
            // timer D: 32 s
            r.out.clear();
            r.run_until(31_999);
            assert_eq!(r.tx.state, State::Completed);
            r.run_until(32_000);
            assert_eq!(r.tx.state, State::Terminated);
            assert!(r.out.is_empty());
        }
    }

    #[test]
    fn reliable_transport_has_no_retransmits_and_zero_timer_d() {
        let t0 = origin();
        let mut out = VecDeque::new();
        let mut ev = VecDeque::new();
        let mut tx = Transaction::client(t0, req("INVITE"), peer(), true, &mut out);
        assert_eq!(tx.timers().map(|(t, _)| t).collect::<Vec<_>>(), [Timer::B]);
        let resp = tx.request.response(486, "Busy Here", Some("x"));
        tx.on_response(t0, resp, &mut out, &mut ev);
        assert_eq!(tx.state, State::Terminated);
    }

    #[test]
    fn non_invite_timer_e_doubles_to_t2_and_timer_f_at_32_s() {
        let mut r = Run::client("REGISTER");
        let sends = r.run_until(40_000);
        // 0.5, 1, 2, 4, 4, 4 ... s
        assert_eq!(
            sends,
            [
                500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(r.ev.pop_front(), Some(TxEvent::Timeout));
        assert_eq!(r.tx.state, State::Terminated);
    }

    #[test]
    fn non_invite_proceeding_retransmits_every_t2() {
        let mut r = Run::client("BYE");
        let resp = r.resp(100);
        r.tx.on_response(
            r.t0 + Duration::from_millis(200),
            resp,
            &mut r.out,
            &mut r.ev,
        );
        assert_eq!(r.tx.state, State::Proceeding);
        let sends = r.run_until(12_000);
        assert_eq!(sends, [500, 4500, 8500]);
    }

    #[test]
    fn non_invite_final_starts_timer_k() {
        let mut r = Run::client("OPTIONS");
        let resp = r.resp(200);
        r.tx.on_response(r.t0, resp.clone(), &mut r.out, &mut r.ev);
        assert_eq!(r.tx.state, State::Completed);
        assert!(matches!(r.ev.pop_front(), Some(TxEvent::Response(_))));
        r.tx.on_response(r.t0, resp, &mut r.out, &mut r.ev);
        assert!(r.ev.is_empty(), "retransmitted final absorbed");
        r.run_until(4_999);
        assert_eq!(r.tx.state, State::Completed);
        r.run_until(5_000);
        assert_eq!(r.tx.state, State::Terminated);
    }

    #[test]
    fn server_invite_timer_g_retransmits_and_timer_h_times_out() {
        let mut r = Run::server("INVITE");
        let resp = r.resp(486);
        r.tx.respond(r.t0, resp, &mut r.out);
        assert_eq!(r.tx.state, State::Completed);
        r.out.clear();
        let sends = r.run_until(40_000);
        // G: 0.5, 1, 2, 4, 4, ... until H at 32 s
        assert_eq!(
            sends,
            [
                500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(r.ev.pop_front(), Some(TxEvent::Timeout));
        assert_eq!(r.tx.state, State::Terminated);
    }

    #[test]
    fn server_invite_ack_confirms_and_timer_i_terminates() {
        let mut r = Run::server("INVITE");
        let resp = r.resp(603);
        r.tx.respond(r.t0, resp, &mut r.out);
        r.tx.on_request(
            r.t0 + Duration::from_millis(700),
            &Method::Ack,
            &mut r.out,
            &mut r.ev,
        );
        assert_eq!(r.tx.state, State::Confirmed);
        r.out.clear();
        let sends = r.run_until(5_699);
        assert!(sends.is_empty(), "timer G ignored in Confirmed");
        assert_eq!(r.tx.state, State::Confirmed);
        r.run_until(5_700);
        assert_eq!(r.tx.state, State::Terminated);
    }

    #[test]
    fn server_invite_request_retransmit_resends_last_response() {
        let mut r = Run::server("INVITE");
        let resp = r.resp(180);
        r.tx.respond(r.t0, resp, &mut r.out);
        r.out.clear();
        r.tx.on_request(r.t0, &Method::Invite, &mut r.out, &mut r.ev);
        assert_eq!(r.out.len(), 1);
    }

    #[test]
    fn server_invite_2xx_retransmitted_until_ack() {
        let mut r = Run::server("INVITE");
        let resp = r.resp(200);
        r.tx.respond(r.t0, resp, &mut r.out);
        assert_eq!(r.tx.state, State::Accepted);
        r.out.clear();
        let sends = r.run_until(3_600);
        assert_eq!(sends, [500, 1500, 3500]);
        r.tx.on_ack(r.t0 + Duration::from_millis(3_600), &mut r.ev);
        assert_eq!(r.tx.state, State::Terminated);
    }

    #[test]
    fn server_invite_2xx_without_ack_times_out() {
        let mut r = Run::server("INVITE");
        let resp = r.resp(200);
        r.tx.respond(r.t0, resp, &mut r.out);
        r.run_until(40_000);
        assert_eq!(r.ev.pop_front(), Some(TxEvent::Timeout));
    }

    #[test]
    fn server_non_invite_timer_j_absorbs_retransmits() {
        let mut r = Run::server("BYE");
        assert_eq!(r.tx.state, State::Trying);
        let resp = r.resp(200);
        r.tx.respond(r.t0, resp, &mut r.out);
        assert_eq!(r.tx.state, State::Completed);
        r.out.clear();
        r.tx.on_request(r.t0 + T1, &Method::Bye, &mut r.out, &mut r.ev);
        assert_eq!(
            r.out.len(),
            1,
            "retransmitted request answered from the cache"
        );
        r.run_until(31_999);
        assert_eq!(r.tx.state, State::Completed);
        r.run_until(32_000);
        assert_eq!(r.tx.state, State::Terminated);
    }

    #[test]
    fn server_non_invite_retransmit_before_any_response_is_absorbed() {
        let mut r = Run::server("OPTIONS");
        r.tx.on_request(r.t0, &Method::Options, &mut r.out, &mut r.ev);
        assert!(r.out.is_empty());
        assert_eq!(r.tx.state, State::Trying);
        let resp = r.resp(100);
        r.tx.respond(r.t0, resp, &mut r.out);
        assert_eq!(r.tx.state, State::Proceeding);
        r.out.clear();
        r.tx.on_request(r.t0, &Method::Options, &mut r.out, &mut r.ev);
        assert_eq!(r.out.len(), 1, "provisional re-sent");
    }

    #[test]
    fn matching_uses_branch_and_method_with_ack_to_invite() {
        let r = Run::server("INVITE");
        assert!(r.tx.matches("z9hG4bKabc", &Method::Invite, false));
        assert!(r.tx.matches("z9hG4bKabc", &Method::Ack, false));
        assert!(!r.tx.matches("z9hG4bKabc", &Method::Cancel, false));
        assert!(!r.tx.matches("z9hG4bKabc", &Method::Invite, true));
        assert!(!r.tx.matches("z9hG4bKother", &Method::Invite, false));
    }
}
