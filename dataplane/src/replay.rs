//! Anti-replay window (RFC 4303 §3.4.3) as a ring of 64-bit words (RFC 6479), with Extended Sequence
//! Number inference (RFC 4303 Appendix A).
//!
//! Use in two steps, so that forged packets cannot move the window: [`ReplayWindow::check`] before the
//! integrity check (cheap rejection, and the full 64-bit number the ICV must cover), then
//! [`ReplayWindow::accept`] once the ICV verified.

/// Largest configurable window, in packets.
pub const MAX_WINDOW: u32 = 4096;
/// IOS default (`crypto ipsec security-association replay window-size`).
pub const DEFAULT_WINDOW: u32 = 64;

/// Why a sequence number was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Already received.
    Duplicate,
    /// Left of the window.
    TooOld,
    /// Sequence number zero (never sent; RFC 4303 §3.3.3: the first packet has number 1).
    Zero,
}

/// Receive-side replay state of one inbound SA.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// Window size in packets; 0 = replay checking disabled.
    size: u32,
    esn: bool,
    /// Highest full sequence number authenticated so far (0 = none yet).
    top: u64,
    bitmap: Vec<u64>,
}

impl ReplayWindow {
    /// A window of `size` packets (0 disables checking; otherwise clamped to 32..=[`MAX_WINDOW`]).
    /// Memory is allocated here, never per packet.
    pub fn new(size: u32, esn: bool) -> Self {
        let size = if size == 0 {
            0
        } else {
            size.clamp(32, MAX_WINDOW)
        };
        // One spare word beyond the window so a shift never clears bits still inside it (RFC 6479 §3),
        // rounded to a power of two so the word index is a mask.
        let words = if size == 0 {
            0
        } else {
            (size as usize)
                .div_ceil(64)
                .saturating_add(1)
                .next_power_of_two()
        };
        Self {
            size,
            esn,
            top: 0,
            bitmap: vec![0; words],
        }
    }

    /// Configured size (0 = disabled).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Whether checking is on (`replay detection support: Y`).
    pub fn enabled(&self) -> bool {
        self.size != 0
    }

    /// Highest authenticated sequence number.
    pub fn top(&self) -> u64 {
        self.top
    }

    /// Infers the full sequence number from the 32 bits on the wire and checks it against the
    /// window. Does not change state.
    pub fn check(&self, seq_low: u32) -> Result<u64, ReplayError> {
        let seq = self.infer(seq_low);
        if seq == 0 {
            return Err(ReplayError::Zero);
        }
        if !self.enabled() || seq > self.top {
            return Ok(seq);
        }
        if seq + u64::from(self.size) <= self.top {
            return Err(ReplayError::TooOld);
        }
        if self.bit(seq) {
            Err(ReplayError::Duplicate)
        } else {
            Ok(seq)
        }
    }

    /// Records an authenticated sequence number (returned by [`Self::check`]).
    pub fn accept(&mut self, seq: u64) {
        if seq > self.top {
            if self.enabled() {
                let words = self.bitmap.len() as u64;
                let old_word = self.top >> 6;
                let new_word = seq >> 6;
                let diff = (new_word - old_word).min(words);
                for i in 1..=diff {
                    let idx = ((old_word + i) & (words - 1)) as usize;
                    if let Some(w) = self.bitmap.get_mut(idx) {
                        *w = 0;
                    }
                }
            }
            self.top = seq;
        }
        if self.enabled() {
            self.set_bit(seq);
        }
    }

    /// Test hook: behave as if `seq` (and nothing else) had been received.
    #[cfg(test)]
    pub(crate) fn assume_received(&mut self, seq: u64) {
        self.bitmap.iter_mut().for_each(|w| *w = 0);
        self.top = seq;
        if self.enabled() {
            self.set_bit(seq);
        }
    }

    fn word_bit(&self, seq: u64) -> (usize, u64) {
        let words = self.bitmap.len() as u64;
        (
            ((seq >> 6) & (words.saturating_sub(1))) as usize,
            1u64 << (seq & 63),
        )
    }

    fn bit(&self, seq: u64) -> bool {
        let (w, m) = self.word_bit(seq);
        self.bitmap.get(w).is_some_and(|v| v & m != 0)
    }

    fn set_bit(&mut self, seq: u64) {
        let (w, m) = self.word_bit(seq);
        if let Some(v) = self.bitmap.get_mut(w) {
            *v |= m;
        }
    }

    /// RFC 4303 Appendix A2.2: the high-order half of an ESN from the low-order half on the wire.
    fn infer(&self, seql: u32) -> u64 {
        if !self.esn {
            return u64::from(seql);
        }
        // With checking disabled the inference still needs a window; use the IOS default.
        let w = if self.size == 0 {
            DEFAULT_WINDOW
        } else {
            self.size
        };
        let th = (self.top >> 32) as u32;
        let tl = self.top as u32;
        //= https://www.rfc-editor.org/rfc/rfc4303#appendix-A.2.2
        //# If (Tl >= W - 1)                      Case A
        //#     If (Seql >= Tl - W + 1)  Seqh = Th
        //#     else                     Seqh = Th + 1
        //# If (Tl < W - 1)                       Case B
        //#     If (Seql >= Tl - W + 1)  Seqh = Th - 1
        //#     else                     Seqh = Th
        let bottom = tl.wrapping_sub(w - 1);
        let seqh = if tl >= w - 1 {
            if seql >= bottom {
                th
            } else {
                th.wrapping_add(1)
            }
        } else if seql >= bottom {
            // Wrapped window: the packet belongs to the previous 2^32 block. Before the first wrap
            // there is no previous block, so it belongs to the first one.
            th.checked_sub(1).unwrap_or(th)
        } else {
            th
        };
        (u64::from(seqh) << 32) | u64::from(seql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn recv(w: &mut ReplayWindow, seq: u64) -> Result<u64, ReplayError> {
        let got = w.check(seq as u32)?;
        assert_eq!(got, seq, "inference");
        w.accept(got);
        Ok(got)
    }

    #[test]
    fn replay_rejects_duplicate() {
        let mut w = ReplayWindow::new(64, false);
        assert_eq!(recv(&mut w, 1), Ok(1));
        assert_eq!(w.check(1), Err(ReplayError::Duplicate));
    }

    #[test]
    fn replay_accepts_reordered_inside_window_and_rejects_left_of_it() {
        let mut w = ReplayWindow::new(64, false);
        recv(&mut w, 100).unwrap();
        assert_eq!(recv(&mut w, 37), Ok(37)); // 100 - 64 + 1
        assert_eq!(w.check(36), Err(ReplayError::TooOld));
        assert_eq!(w.check(37), Err(ReplayError::Duplicate));
    }

    #[test]
    fn replay_rejects_zero() {
        let w = ReplayWindow::new(64, false);
        assert_eq!(w.check(0), Err(ReplayError::Zero));
    }

    #[test]
    fn disabled_window_accepts_duplicates() {
        let mut w = ReplayWindow::new(0, false);
        assert!(!w.enabled());
        recv(&mut w, 5).unwrap();
        assert_eq!(recv(&mut w, 5), Ok(5));
        assert_eq!(recv(&mut w, 1), Ok(1));
    }

    #[test]
    fn large_jump_clears_old_bits() {
        let mut w = ReplayWindow::new(1024, false);
        for s in 1..=1000 {
            recv(&mut w, s).unwrap();
        }
        recv(&mut w, 1_000_000).unwrap();
        // 999_000 is far left; 999_500 inside the window and unseen.
        assert_eq!(w.check(998_976), Err(ReplayError::TooOld));
        assert_eq!(recv(&mut w, 999_500), Ok(999_500));
    }

    #[test]
    fn esn_infers_next_block_after_wrap() {
        let mut w = ReplayWindow::new(64, true);
        assert_eq!(recv(&mut w, 1), Ok(1));
        // First packet with a large low half, before any wrap: current block.
        assert_eq!(w.check(u32::MAX - 5), Ok(u64::from(u32::MAX - 5)));
        w.assume_received(u64::from(u32::MAX) - 1);
        // Low half wraps to 3: it is 2^32 + 3.
        assert_eq!(w.check(3), Ok((1 << 32) | 3));
        w.accept((1 << 32) | 3);
        // A late packet from before the wrap is in the previous block (case B).
        assert_eq!(w.check(u32::MAX), Ok(u64::from(u32::MAX)));
        assert_eq!(w.check(u32::MAX - 1), Err(ReplayError::Duplicate));
    }

    /// The naive model: a set of everything seen and the highest value.
    struct Model {
        seen: BTreeSet<u64>,
        top: u64,
        size: u64,
    }

    impl Model {
        fn receive(&mut self, seq: u64) -> bool {
            let ok = seq != 0
                && (self.size == 0 || seq + self.size > self.top)
                && (self.size == 0 || !self.seen.contains(&seq));
            if ok {
                self.seen.insert(seq);
                self.top = self.top.max(seq);
            }
            ok
        }
    }

    /// Runs the window the way decapsulation does: check, "ICV" (true full number must equal the
    /// inferred one, since the ICV covers the high half), accept.
    fn window_receive(w: &mut ReplayWindow, seq: u64) -> bool {
        match w.check(seq as u32) {
            Ok(inferred) if inferred == seq => {
                w.accept(seq);
                true
            }
            _ => false,
        }
    }

    /// A sender that mostly advances and sometimes replays or delays: offsets relative to a moving
    /// "sent so far" counter.
    fn arb_steps() -> impl Strategy<Value = Vec<(u8, u32)>> {
        prop::collection::vec((0u8..4, 0u32..3000), 1..400)
    }

    fn run_model(
        size: u32,
        esn: bool,
        start: u64,
        steps: &[(u8, u32)],
    ) -> Result<(), TestCaseError> {
        let mut w = ReplayWindow::new(size, esn);
        let mut m = Model {
            seen: BTreeSet::new(),
            top: 0,
            size: u64::from(size),
        };
        let mut sent = start;
        let mut history: Vec<u64> = Vec::new();
        if start > 0 {
            // The SA has been running: `start` was the last packet received.
            w.assume_received(start);
            m.seen.insert(start);
            m.top = start;
            history.push(start);
        }
        for &(kind, n) in steps {
            let seq = match kind {
                // advance by a small step
                0 | 1 => {
                    sent += u64::from(n % 50) + 1;
                    sent
                }
                // replay something from history
                2 => history
                    .get(n as usize % history.len().max(1))
                    .copied()
                    .unwrap_or(sent),
                // a delayed packet: behind the head by up to 3000
                _ => sent.saturating_sub(u64::from(n)).max(1),
            };
            if !esn && seq > u64::from(u32::MAX) {
                break;
            }
            history.push(seq);
            let a = window_receive(&mut w, seq);
            let b = m.receive(seq);
            prop_assert_eq!(a, b, "seq {} top {}", seq, m.top);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn window_64_agrees_with_model(steps in arb_steps()) {
            run_model(64, false, 0, &steps)?;
        }

        #[test]
        fn window_1024_agrees_with_model(steps in arb_steps()) {
            run_model(1024, false, 0, &steps)?;
        }

        #[test]
        fn window_64_esn_agrees_with_model_across_wrap(steps in arb_steps(), back in 0u64..20_000) {
            run_model(64, true, (1u64 << 32) - back - 1, &steps)?;
        }

        #[test]
        fn window_1024_esn_agrees_with_model_across_wrap(steps in arb_steps(), back in 0u64..20_000) {
            run_model(1024, true, (5u64 << 32) - back - 1, &steps)?;
        }

        #[test]
        fn disabled_window_agrees_with_model(steps in arb_steps()) {
            run_model(0, false, 0, &steps)?;
        }
    }
}
