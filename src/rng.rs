//! Host random streams of the learning side (docs/score-model.md §1, §7).
//!
//! candle 0.11's CPU backend cannot be seeded, so every random number of training and sampling (batch order,
//! augmentation, diffusion times, noise, dropout masks) comes from a `ChaCha8Rng` on the host and is uploaded with
//! `Tensor::from_vec`. A ChaCha stream is fully described by `(seed, stream, word_pos)`, which [`RngState`] stores in
//! checkpoints so a resumed run continues the very same streams.

use candle_core::{Device, Shape, Tensor};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::sde::standard_normals;
use crate::{Error, Result};

/// The complete position of a `ChaCha8Rng` created by [`stream`]: its `u64` seed, stream number and word position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    pub seed: u64,
    pub stream: u64,
    /// Position in 32-bit words (ChaCha's 68-bit counter), as a decimal string in checkpoints.
    pub word_pos: u128,
}

/// `ChaCha8Rng::seed_from_u64(seed)` on stream `stream`, at its start.
pub fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

impl RngState {
    /// The state of `rng`, which must have been created by [`stream`]`(seed, …)` (the seed is not recoverable from
    /// the generator, so the caller passes it).
    pub fn capture(seed: u64, rng: &ChaCha8Rng) -> Self {
        RngState {
            seed,
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos(),
        }
    }

    /// A generator at exactly this state.
    pub fn restore(&self) -> ChaCha8Rng {
        let mut rng = stream(self.seed, self.stream);
        rng.set_word_pos(self.word_pos);
        rng
    }

    /// `"seed stream word_pos"` in decimal (checkpoint metadata).
    pub fn to_meta(&self) -> String {
        format!("{} {} {}", self.seed, self.stream, self.word_pos)
    }

    /// Parses [`RngState::to_meta`]'s format.
    pub fn from_meta(s: &str) -> Result<Self> {
        let bad = || {
            Error::Config(format!(
                "rng state {s:?}: expected \"seed stream word_pos\""
            ))
        };
        let mut it = s.split_whitespace();
        let seed = it.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
        let stream = it.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
        let word_pos = it.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(RngState {
            seed,
            stream,
            word_pos,
        })
    }
}

/// A tensor of i.i.d. standard normals (f32) of `shape` on `dev`, drawn on the host from `rng`.
pub fn normal_tensor(
    rng: &mut impl RngCore,
    shape: impl Into<Shape>,
    dev: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    let v = standard_normals(rng, shape.elem_count());
    Ok(Tensor::from_vec(v, shape, dev)?)
}

/// `n` uniforms in `[lo, hi)` (f64, 53-bit resolution) from `rng`.
pub fn uniforms(rng: &mut impl RngCore, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    const TWO_POW_M53: f64 = 1.0 / (1u64 << 53) as f64;
    (0..n)
        .map(|_| lo + (hi - lo) * (rng.next_u64() >> 11) as f64 * TWO_POW_M53)
        .collect()
}

/// A uniform integer in `0..n` (Lemire's multiply-shift with rejection, unbiased).
pub fn below(rng: &mut impl RngCore, n: u64) -> u64 {
    assert!(n > 0, "below(0)");
    loop {
        let x = rng.next_u64();
        let m = (x as u128) * (n as u128);
        let lo = m as u64;
        if lo >= n.wrapping_neg() % n {
            return (m >> 64) as u64;
        }
    }
}

/// A uniformly random permutation of `0..n` (Fisher–Yates) from `rng`.
pub fn permutation(rng: &mut impl RngCore, n: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_roundtrip_continues_the_stream() {
        let mut a = stream(7, 3);
        for _ in 0..37 {
            a.next_u32();
        }
        let st = RngState::capture(7, &a);
        let st2 = RngState::from_meta(&st.to_meta()).unwrap();
        assert_eq!(st, st2);
        let mut b = st2.restore();
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert!(RngState::from_meta("1 2").is_err());
        assert!(RngState::from_meta("1 2 x").is_err());
    }

    #[test]
    fn permutation_is_a_permutation_and_seeded() {
        let p = permutation(&mut stream(1, 0), 1000);
        let mut s = p.clone();
        s.sort_unstable();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
        assert_eq!(p, permutation(&mut stream(1, 0), 1000));
        assert_ne!(p, permutation(&mut stream(1, 1), 1000));
        // below() is unbiased enough to hit every residue with similar counts.
        let mut counts = [0usize; 6];
        let mut r = stream(2, 0);
        for _ in 0..60_000 {
            counts[below(&mut r, 6) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{counts:?}"
        );
    }
}
