//! Token buckets and rate estimation, in integer virtual time.
//!
//! Tokens are kept in "bit-nanoseconds" (bits x 10^9) so that `cir_bps x elapsed_ns` is exact.
use super::spec::{PoliceSpec, ShapeSpec};
use std::time::{Duration, Instant};

const NANOS: i128 = 1_000_000_000;

/// Adds `cir x elapsed` to a bucket, capped at `depth`; returns the new last-update time.
#[inline]
fn elapsed_ns(last: &mut Option<Instant>, now: Instant) -> i128 {
    match *last {
        None => {
            *last = Some(now);
            0
        }
        Some(l) if now > l => {
            *last = Some(now);
            now.duration_since(l).as_nanos() as i128
        }
        Some(_) => 0,
    }
}

/// The shaper of a parent class (`shape average`): a token bucket of depth `bc + be` filled at
/// `cir`. A packet may leave while the bucket is not in deficit (tokens >= 0); its size is then
/// taken, possibly driving the bucket negative, so packets larger than the bucket still pass and
/// the long-run rate is exactly `cir`. The burst after idle is `bc + be` bits plus one packet.
///
/// While packets wait (the scheduler says so with [`Shaper::set_backlogged`]), the bucket may fill
/// beyond `bc + be` by up to [`CATCH_UP`] of CIR: a driver that wakes late (a loaded machine, a
/// coarse timer) then sends what the late wake-up held back, so the long-run rate stays `cir` as
/// long as wake-ups are less than 100 ms late. Without it every wake-up later than `bc + be` (8 ms
/// of CIR) lost credit: 14 debug-build appliances on two busy cores shaped to 60-90 % of CIR.
#[derive(Debug, Clone)]
pub struct Shaper {
    cir_bps: u64,
    depth: i128,
    catch_up: i128,
    tokens: i128,
    last: Option<Instant>,
    backlogged: bool,
}

/// How far behind a backlogged shaper may catch up at once.
pub const CATCH_UP: Duration = Duration::from_millis(100);

impl Shaper {
    /// A full bucket.
    pub fn new(spec: &ShapeSpec) -> Self {
        let depth = i128::from(spec.bc_bits.saturating_add(spec.be_bits)) * NANOS;
        Shaper {
            cir_bps: spec.cir_bps,
            depth,
            catch_up: i128::from(spec.cir_bps) * CATCH_UP.as_nanos() as i128,
            tokens: depth,
            last: None,
            backlogged: false,
        }
    }

    pub fn cir_bps(&self) -> u64 {
        self.cir_bps
    }

    #[inline]
    fn refill(&mut self, now: Instant) {
        let ns = elapsed_ns(&mut self.last, now);
        if ns > 0 {
            let cap = if self.backlogged {
                self.depth + self.catch_up
            } else {
                self.depth
            };
            self.tokens = (self.tokens + ns * i128::from(self.cir_bps)).min(cap);
        }
    }

    /// Whether packets wait for this shaper from now on (see the type's docs).
    #[inline]
    pub fn set_backlogged(&mut self, backlogged: bool) {
        self.backlogged = backlogged;
    }

    /// Whether a packet may leave at `now`.
    #[inline]
    pub fn conforms(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= 0
    }

    /// Takes `bytes` from the bucket (after [`Shaper::conforms`] said yes).
    #[inline]
    pub fn consume(&mut self, bytes: usize) {
        self.tokens -= (bytes as i128) * 8 * NANOS;
    }

    /// When the bucket leaves its deficit (`None` when it is not in deficit or cannot refill).
    pub fn ready_at(&self) -> Option<Instant> {
        if self.tokens >= 0 || self.cir_bps == 0 {
            return None;
        }
        let last = self.last?;
        let rate = i128::from(self.cir_bps);
        let ns = (-self.tokens + rate - 1) / rate;
        last.checked_add(Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX)))
    }
}

/// The colour a policer gives a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Conform,
    Exceed,
    Violate,
}

/// Single-rate policer.
///
/// Two-colour (no violate action): one bucket of `bc` bytes; a packet that fits conforms,
/// otherwise it exceeds. Three-colour: RFC 2697 srTCM.
///
//= https://www.rfc-editor.org/rfc/rfc2697#section-3
//# The token buckets C and E are initially (at time 0) full, i.e., the token count Tc(0) = CBS
//# and the token count Te(0) = EBS.  Thereafter, the token counts Tc and Te are updated CIR
//# times per second as follows:
//#   o If Tc is less than CBS, Tc is incremented by one, else
//#   o if Te is less then EBS, Te is incremented by one, else
//#   o neither Tc nor Te is incremented.
#[derive(Debug, Clone)]
pub struct Policer {
    cir_bps: u64,
    cbs: i128,
    ebs: i128,
    tc: i128,
    te: i128,
    three_colour: bool,
    last: Option<Instant>,
}

impl Policer {
    pub fn new(spec: &PoliceSpec) -> Self {
        Self::with_buckets(spec.cir_bps, spec.bc(), spec.be(), spec.violate.is_some())
    }

    /// A policer with explicit bucket sizes in bytes.
    pub fn with_buckets(cir_bps: u64, bc_bytes: u64, be_bytes: u64, three_colour: bool) -> Self {
        let cbs = i128::from(bc_bytes) * 8 * NANOS;
        let ebs = i128::from(be_bytes) * 8 * NANOS;
        Policer {
            cir_bps,
            cbs,
            ebs,
            tc: cbs,
            te: ebs,
            three_colour,
            last: None,
        }
    }

    #[inline]
    fn refill(&mut self, now: Instant) {
        let ns = elapsed_ns(&mut self.last, now);
        if ns > 0 {
            let mut add = ns * i128::from(self.cir_bps);
            let room = self.cbs - self.tc;
            let to_c = add.min(room.max(0));
            self.tc += to_c;
            add -= to_c;
            self.te = (self.te + add).min(self.ebs);
        }
    }

    /// Colours a packet of `bytes` at `now`, taking its tokens when it is not violating.
    //= https://www.rfc-editor.org/rfc/rfc2697#section-4
    //# If Tc(t)-B >= 0, the packet is green and Tc is decremented by B down to the minimum value
    //# of 0, else
    //# if Te(t)-B >= 0, the packets is yellow and Te is decremented by B down to the minimum
    //# value of 0, else
    //# the packet is red and neither Tc nor Te is decremented.
    pub fn colour(&mut self, now: Instant, bytes: usize) -> Colour {
        self.refill(now);
        let b = (bytes as i128) * 8 * NANOS;
        if self.tc - b >= 0 {
            self.tc -= b;
            Colour::Conform
        } else if !self.three_colour {
            Colour::Exceed
        } else if self.te - b >= 0 {
            self.te -= b;
            Colour::Exceed
        } else {
            Colour::Violate
        }
    }
}

/// IOS "5 minute offered rate": an exponentially weighted moving average with a 300 s time
/// constant, sampled every [`RateEstimator::INTERVAL`]; each sample is the mean rate over the
/// interval. `add` costs one comparison except at interval boundaries.
#[derive(Debug, Clone, Default)]
pub struct RateEstimator {
    next: Option<Instant>,
    acc_bits: u64,
    rate_bps: f64,
}

impl RateEstimator {
    /// Sampling interval.
    pub const INTERVAL: Duration = Duration::from_secs(5);
    /// Time constant of the average (`load-interval 300`).
    pub const TIME_CONSTANT: Duration = Duration::from_secs(300);

    /// Counts `bytes` at `now`.
    #[inline]
    pub fn add(&mut self, now: Instant, bytes: usize) {
        self.tick(now);
        self.acc_bits = self.acc_bits.saturating_add(bytes as u64 * 8);
    }

    /// Closes every interval that ended at or before `now`.
    #[inline]
    pub fn tick(&mut self, now: Instant) {
        match self.next {
            None => self.next = Some(now + Self::INTERVAL),
            Some(next) if now >= next => self.close(now, next),
            Some(_) => {}
        }
    }

    #[cold]
    fn close(&mut self, now: Instant, next: Instant) {
        let iv = Self::INTERVAL.as_secs_f64();
        let w = (-iv / Self::TIME_CONSTANT.as_secs_f64()).exp();
        let periods = 1 + (now.duration_since(next).as_nanos() / Self::INTERVAL.as_nanos());
        let sample = self.acc_bits as f64 / iv;
        self.rate_bps = self.rate_bps * w + sample * (1.0 - w);
        if periods > 1 {
            let idle = i32::try_from(periods - 1).unwrap_or(i32::MAX);
            self.rate_bps *= w.powi(idle);
        }
        self.acc_bits = 0;
        let advance = Self::INTERVAL.saturating_mul(u32::try_from(periods).unwrap_or(u32::MAX));
        self.next = next.checked_add(advance).or(Some(now + Self::INTERVAL));
    }

    /// The average in bit/s as of `now` (without changing the estimator).
    pub fn rate_bps(&self, now: Instant) -> u64 {
        let mut e = self.clone();
        e.tick(now);
        e.rate_bps.round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shaper_refills_at_cir_and_caps_at_bc_plus_be() {
        let t0 = crate::test_origin();
        let mut s = Shaper::new(&ShapeSpec::average(1_000_000)); // 8000 bits = 1000 bytes
        assert!(s.conforms(t0));
        s.consume(1500); // 12000 bits: deficit 4000 bits
        assert!(!s.conforms(t0));
        assert_eq!(s.ready_at(), Some(t0 + Duration::from_millis(4)));
        assert!(s.conforms(t0 + Duration::from_millis(4)));
        // Long idle: capped at bc + be.
        assert!(s.conforms(t0 + Duration::from_secs(10)));
        s.consume(1000);
        assert!(s.conforms(t0 + Duration::from_secs(10)));
        s.consume(1);
        assert!(!s.conforms(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn two_colour_policer_conforms_up_to_bc_then_exceeds() {
        let t0 = crate::test_origin();
        let mut p = Policer::with_buckets(8000, 1500, 0, false); // 1000 bytes/s
        assert_eq!(p.colour(t0, 1000), Colour::Conform);
        assert_eq!(p.colour(t0, 600), Colour::Exceed);
        assert_eq!(p.colour(t0, 500), Colour::Conform);
        assert_eq!(
            p.colour(t0 + Duration::from_millis(500), 500),
            Colour::Conform
        );
        assert_eq!(p.colour(t0 + Duration::from_millis(500), 1), Colour::Exceed);
    }

    #[test]
    fn three_colour_policer_follows_rfc2697() {
        let t0 = crate::test_origin();
        let mut p = Policer::with_buckets(8000, 1000, 500, true);
        assert_eq!(p.colour(t0, 1000), Colour::Conform);
        assert_eq!(p.colour(t0, 400), Colour::Exceed);
        assert_eq!(p.colour(t0, 400), Colour::Violate);
        // One second refills C (1000 bytes) first, then E gets nothing until C is full.
        assert_eq!(p.colour(t0 + Duration::from_secs(1), 1000), Colour::Conform);
        assert_eq!(p.colour(t0 + Duration::from_secs(1), 100), Colour::Exceed);
        assert_eq!(p.colour(t0 + Duration::from_secs(1), 1), Colour::Violate);
        // Two more seconds: C full (1000), the rest (1000) overflows into E, capped at 500.
        assert_eq!(p.colour(t0 + Duration::from_secs(3), 1000), Colour::Conform);
        assert_eq!(p.colour(t0 + Duration::from_secs(3), 500), Colour::Exceed);
    }

    #[test]
    fn rate_estimator_converges_to_a_constant_rate_and_decays_when_idle() {
        let t0 = crate::test_origin();
        let mut e = RateEstimator::default();
        // 130 kbit/s: one 1625-byte packet every 100 ms, for 40 minutes.
        let step = Duration::from_millis(100);
        let mut t = t0;
        for _ in 0..(40 * 60 * 10) {
            e.add(t, 1625);
            t += step;
        }
        let r = e.rate_bps(t);
        assert!((128_000..=131_000).contains(&r), "{r}");
        // 5 minutes idle: about 1/e of it.
        let r5 = e.rate_bps(t + Duration::from_secs(300));
        assert!((46_000..=50_000).contains(&r5), "{r5}");
        assert_eq!(e.rate_bps(t + Duration::from_secs(100_000)), 0);
    }
}
