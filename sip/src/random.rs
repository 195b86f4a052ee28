//! Injected randomness: tags, branches, Call-IDs, cnonces and registrar nonces come from here, so
//! tests and simulations are deterministic. The appliance plugs in the OS generator.

/// A source of random bytes.
pub trait Random {
    fn fill(&mut self, buf: &mut [u8]);
}

/// Lower-case hex of `n` random bytes.
pub(crate) fn hex(rng: &mut dyn Random, n: usize) -> String {
    let mut b = vec![0u8; n];
    rng.fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Deterministic generator (SplitMix64) for tests, simulations and benchmarks. Not for
/// production: digest cnonces and registrar nonces should be unpredictable.
#[derive(Debug, Clone)]
pub struct SeededRandom(u64);

impl SeededRandom {
    pub fn new(seed: u64) -> SeededRandom {
        SeededRandom(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Random for SeededRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}
