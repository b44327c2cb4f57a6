//! Embedding vectors: i8 quantisation with one scale per vector, and cosine similarity of
//! an f32 query against stored i8 vectors without allocating per candidate.
//!
//! Stored value (`vectors` database): `inv_norm f32 LE ++ scale f32 LE ++ dim × i8`.
//!
//! - `scale = max|x| / 127`, `q_i = round(x_i / scale)` (so `x_i ≈ q_i × scale`);
//! - `inv_norm = 1 / ‖q‖` over the i8 values, precomputed at write time, so the cosine of a
//!   normalised query `u` with the stored vector is `inv_norm × Σ u_i q_i` (the scale
//!   cancels out of the cosine; it is kept to reconstruct the vector).

/// Bytes before the i8 components.
pub const HEADER: usize = 8;

/// Why a vector cannot be stored or used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorError {
    Empty,
    /// NaN or infinite components.
    NotFinite,
    /// All components zero: no direction, no cosine.
    Zero,
}

impl std::fmt::Display for VectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VectorError::Empty => "embedding vector is empty",
            VectorError::NotFinite => "embedding vector has NaN or infinite components",
            VectorError::Zero => "embedding vector is all zeros",
        })
    }
}

impl std::error::Error for VectorError {}

fn check(v: &[f32]) -> Result<f32, VectorError> {
    if v.is_empty() {
        return Err(VectorError::Empty);
    }
    let mut max = 0f32;
    for &x in v {
        if !x.is_finite() {
            return Err(VectorError::NotFinite);
        }
        max = max.max(x.abs());
    }
    if max == 0.0 {
        return Err(VectorError::Zero);
    }
    Ok(max)
}

/// Quantise `v` into `out` (cleared first): the stored value format above.
pub fn quantise_into(v: &[f32], out: &mut Vec<u8>) -> Result<(), VectorError> {
    let max = check(v)?;
    let scale = max / 127.0;
    out.clear();
    out.reserve(HEADER + v.len());
    out.extend_from_slice(&[0u8; HEADER]);
    let mut sq = 0f64;
    for &x in v {
        let q = (x / scale).round().clamp(-127.0, 127.0) as i8;
        sq += f64::from(q) * f64::from(q);
        out.push(q as u8);
    }
    // At least one component is ±127, so the norm is never zero.
    let inv_norm = (1.0 / sq.sqrt()) as f32;
    out[..4].copy_from_slice(&inv_norm.to_le_bytes());
    out[4..8].copy_from_slice(&scale.to_le_bytes());
    Ok(())
}

pub fn quantise(v: &[f32]) -> Result<Vec<u8>, VectorError> {
    let mut out = Vec::new();
    quantise_into(v, &mut out)?;
    Ok(out)
}

/// Dimension of a stored value (None if too short to be one).
pub fn stored_dim(stored: &[u8]) -> Option<usize> {
    stored.len().checked_sub(HEADER)
}

/// The f32 vector a stored value approximates.
pub fn dequantise(stored: &[u8]) -> Option<Vec<f32>> {
    let scale = f32::from_le_bytes(stored.get(4..8)?.try_into().ok()?);
    Some(
        stored[HEADER..]
            .iter()
            .map(|&b| f32::from(b as i8) * scale)
            .collect(),
    )
}

/// `v` scaled to unit length.
pub fn normalised(v: &[f32]) -> Result<Vec<f32>, VectorError> {
    check(v)?;
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    Ok(v.iter().map(|&x| (f64::from(x) / norm) as f32).collect())
}

/// A query prepared once for many `cosine`s: normalised, then quantised to i16 (at most
/// 32767 per component, less for dimensions past 528 so a whole dot product fits i32;
/// 1/4000 relative precision even at dimension 4096).
#[derive(Clone, Debug)]
pub struct Query {
    q: Vec<i16>,
    /// 1 / the i16 scale.
    factor: f32,
}

impl Query {
    pub fn new(v: &[f32]) -> Result<Query, VectorError> {
        let u = normalised(v)?;
        let umax = u.iter().fold(0f32, |m, x| m.max(x.abs()));
        let qmax = (i32::MAX as f64 / (u.len() as f64 * 127.0)).min(32767.0) as f32;
        let scale = qmax / umax;
        Ok(Query {
            q: u.iter()
                .map(|&x| (x * scale).round().clamp(-qmax, qmax) as i16)
                .collect(),
            factor: 1.0 / scale,
        })
    }

    pub fn dim(&self) -> usize {
        self.q.len()
    }

    /// Cosine similarity with a stored value; None if the dimensions differ or the value
    /// is malformed. Allocates nothing.
    #[inline]
    pub fn cosine(&self, stored: &[u8]) -> Option<f32> {
        let (head, comps) = stored.split_at_checked(HEADER)?;
        if comps.len() != self.q.len() {
            return None;
        }
        prefetch_before(stored.as_ptr(), stored.len());
        let inv_norm = f32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        Some(dot_i16_i8(&self.q, comps) as f32 * self.factor * inv_norm)
    }
}

/// Hint the cache about the `len` bytes before `p`: LMDB lays a page's values out from its
/// end downwards, so in a scan the next value usually sits right below this one. Only a
/// hint (a prefetch never faults, whatever the address).
#[inline]
fn prefetch_before(p: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let mut off = 64;
        while off <= len + 64 {
            // SAFETY: prefetch is a hint, valid for any address; wrapping_sub forms it
            // without asserting it points into an allocation.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_sub(off).cast()) };
            off += 64;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        let mut off = 64;
        while off <= len + 64 {
            // SAFETY: PRFM is a hint: it never faults, whatever the address, and writes
            // nothing.
            unsafe {
                std::arch::asm!(
                    "prfm pldl1keep, [{0}]",
                    in(reg) p.wrapping_sub(off),
                    options(nostack, preserves_flags, readonly)
                )
            };
            off += 64;
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = (p, len);
}

/// Σ q_i × (x_i as i8), scalar (the reference, and the tail of the SIMD versions).
pub fn dot_scalar(q: &[i16], x: &[u8]) -> i32 {
    q.iter().zip(x).fold(0i32, |a, (&q, &x)| {
        a.wrapping_add(i32::from(q) * i32::from(x as i8))
    })
}

/// Σ q_i × (x_i as i8) with SSE2 (baseline on x86_64): 16 components per step through
/// `pmaddwd`. Explicit because the release profile (opt-level "s") does not vectorise.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn dot_i16_i8(q: &[i16], x: &[u8]) -> i32 {
    use std::arch::x86_64::*;
    let n = q.len().min(x.len());
    let chunks = n / 16;
    // SAFETY: SSE2 is part of the x86_64 baseline; every load reads 16 bytes at offset
    // c * 16 (+ 8 i16) with c * 16 + 16 <= n, within both slices (unaligned loads); the
    // store writes 16 bytes into a 16-byte array.
    unsafe {
        let mut acc0 = _mm_setzero_si128();
        let mut acc1 = _mm_setzero_si128();
        for c in 0..chunks {
            let xv = _mm_loadu_si128(x.as_ptr().add(c * 16).cast());
            // Each byte doubled into an i16, then shifted back: sign extension.
            let lo = _mm_srai_epi16(_mm_unpacklo_epi8(xv, xv), 8);
            let hi = _mm_srai_epi16(_mm_unpackhi_epi8(xv, xv), 8);
            let q0 = _mm_loadu_si128(q.as_ptr().add(c * 16).cast());
            let q1 = _mm_loadu_si128(q.as_ptr().add(c * 16 + 8).cast());
            acc0 = _mm_add_epi32(acc0, _mm_madd_epi16(lo, q0));
            acc1 = _mm_add_epi32(acc1, _mm_madd_epi16(hi, q1));
        }
        let mut lanes = [0i32; 4];
        _mm_storeu_si128(lanes.as_mut_ptr().cast(), _mm_add_epi32(acc0, acc1));
        let tail = dot_scalar(&q[chunks * 16..n], &x[chunks * 16..n]);
        lanes.iter().fold(tail, |a, &b| a.wrapping_add(b))
    }
}

/// Σ q_i × (x_i as i8) with NEON (baseline on aarch64): widening multiply-accumulate.
#[cfg(target_arch = "aarch64")]
#[inline]
pub fn dot_i16_i8(q: &[i16], x: &[u8]) -> i32 {
    use std::arch::aarch64::*;
    let n = q.len().min(x.len());
    let chunks = n / 16;
    // SAFETY: every load reads 16 bytes / 8 i16 at offsets c * 16 (+ 8) with
    // c * 16 + 16 <= n, within both slices; NEON loads need no alignment.
    unsafe {
        let mut acc0 = vdupq_n_s32(0);
        let mut acc1 = vdupq_n_s32(0);
        for c in 0..chunks {
            let xv = vld1q_s8(x.as_ptr().add(c * 16).cast());
            let xl = vmovl_s8(vget_low_s8(xv));
            let xh = vmovl_high_s8(xv);
            let q0 = vld1q_s16(q.as_ptr().add(c * 16));
            let q1 = vld1q_s16(q.as_ptr().add(c * 16 + 8));
            acc0 = vmlal_s16(acc0, vget_low_s16(xl), vget_low_s16(q0));
            acc1 = vmlal_high_s16(acc1, xl, q0);
            acc0 = vmlal_s16(acc0, vget_low_s16(xh), vget_low_s16(q1));
            acc1 = vmlal_high_s16(acc1, xh, q1);
        }
        let tail = dot_scalar(&q[chunks * 16..n], &x[chunks * 16..n]);
        vaddvq_s32(vaddq_s32(acc0, acc1)).wrapping_add(tail)
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
#[inline]
pub fn dot_i16_i8(q: &[i16], x: &[u8]) -> i32 {
    dot_scalar(q, x)
}

/// Exact cosine of two f32 vectors (reference for quality checks).
pub fn cosine_f32(a: &[f32], b: &[f32]) -> f32 {
    let (mut d, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        d += f64::from(x) * f64::from(y);
        na += f64::from(x) * f64::from(x);
        nb += f64::from(y) * f64::from(y);
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    (d / (na.sqrt() * nb.sqrt())) as f32
}

/// A fixed-capacity top-k buffer of (score, item), best first. Allocates once.
pub struct TopK<T> {
    k: usize,
    items: Vec<(f32, T)>,
}

impl<T: Copy> TopK<T> {
    pub fn new(k: usize) -> TopK<T> {
        TopK {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }

    /// The score an item must beat to enter (−∞ while not full).
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.items.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.items.last().map_or(f32::NEG_INFINITY, |x| x.0)
        }
    }

    #[inline]
    pub fn push(&mut self, score: f32, item: T) {
        if self.k == 0 || score.is_nan() || score <= self.threshold() {
            return;
        }
        let pos = self.items.partition_point(|x| x.0 >= score);
        if self.items.len() == self.k {
            self.items.pop();
        }
        self.items.insert(pos, (score, item));
    }

    pub fn into_sorted(self) -> Vec<(f32, T)> {
        self.items
    }
}

/// A deterministic stand-in embedding for tests and benches (not a model): hashed
/// character trigrams of the lower-cased text, so texts sharing words get similar vectors.
pub fn trigram_vector(text: &str, dim: usize) -> Vec<f32> {
    let mut v = vec![0f32; dim.max(1)];
    let chars: Vec<char> = format!("  {}  ", text.to_lowercase()).chars().collect();
    for w in chars.windows(3) {
        // FNV-1a over the three chars.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for c in w {
            h ^= u64::from(*c);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let i = (h % v.len() as u64) as usize;
        v[i] += if (h >> 40) & 1 == 0 { 1.0 } else { -1.0 };
    }
    if v.iter().all(|&x| x == 0.0) {
        v[0] = 1.0;
    }
    v
}

/// A small deterministic PRNG (xorshift64*) for tests and benches.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Roughly standard normal (sum of 4 uniforms, centred and scaled).
    pub fn normal(&mut self) -> f32 {
        let s: f32 = (0..4).map(|_| self.uniform()).sum();
        (s - 2.0) * 1.732
    }
}

/// Clustered test data: `n` vectors of `dim` around `clusters` random centres, with
/// per-vector noise of `noise` relative to the centre.
pub fn clustered(
    n: usize,
    dim: usize,
    clusters: usize,
    noise: f32,
    rng: &mut Rng,
) -> Vec<Vec<f32>> {
    let centres: Vec<Vec<f32>> = (0..clusters.max(1))
        .map(|_| (0..dim).map(|_| rng.normal()).collect())
        .collect();
    (0..n)
        .map(|i| {
            let c = &centres[i % centres.len()];
            c.iter().map(|&x| x + noise * rng.normal()).collect()
        })
        .collect()
}

/// Mean overlap of the top-`k` by exact f32 cosine and by quantised cosine, over the
/// queries: 1.0 means quantisation never changed a top-k set.
pub fn quantisation_overlap(data: &[Vec<f32>], queries: &[Vec<f32>], k: usize) -> f64 {
    let stored: Vec<Vec<u8>> = data
        .iter()
        .map(|v| quantise(v).expect("finite non-zero test vector"))
        .collect();
    let mut total = 0usize;
    for q in queries {
        let mut exact = TopK::new(k);
        let mut approx = TopK::new(k);
        let qu = Query::new(q).expect("finite non-zero query");
        for (i, (v, s)) in data.iter().zip(&stored).enumerate() {
            exact.push(cosine_f32(q, v), i);
            approx.push(qu.cosine(s).unwrap_or(f32::NEG_INFINITY), i);
        }
        let e: Vec<usize> = exact.into_sorted().into_iter().map(|x| x.1).collect();
        total += approx
            .into_sorted()
            .iter()
            .filter(|x| e.contains(&x.1))
            .count();
    }
    total as f64 / (queries.len() * k).max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantise_round_trips_closely() {
        let v: Vec<f32> = (0..384)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let s = quantise(&v).unwrap();
        assert_eq!(s.len(), HEADER + 384);
        assert_eq!(stored_dim(&s), Some(384));
        let back = dequantise(&s).unwrap();
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        for (a, b) in v.iter().zip(&back) {
            assert!((a - b).abs() <= max / 127.0 * 0.5 + 1e-6, "{a} vs {b}");
        }
        let qu = Query::new(&v).unwrap();
        let c = qu.cosine(&s).unwrap();
        assert!((c - 1.0).abs() < 1e-3, "{c}");
        let w: Vec<f32> = v.iter().rev().copied().collect();
        let c = Query::new(&w).unwrap().cosine(&s).unwrap();
        assert!((c - cosine_f32(&v, &w)).abs() < 1e-2, "{c}");
        // Wrong dimension: no score.
        assert!(Query::new(&v[..383]).unwrap().cosine(&s).is_none());
    }

    #[test]
    fn bad_vectors_are_refused() {
        assert_eq!(quantise(&[]), Err(VectorError::Empty));
        assert_eq!(quantise(&[0.0, 0.0]), Err(VectorError::Zero));
        assert_eq!(quantise(&[1.0, f32::NAN]), Err(VectorError::NotFinite));
        assert_eq!(normalised(&[0.0]), Err(VectorError::Zero));
    }

    #[test]
    fn simd_dot_matches_scalar_with_remainders_and_extremes() {
        let mut rng = Rng(7);
        for n in [0, 1, 15, 16, 17, 37, 384, 1000] {
            let q: Vec<i16> = (0..n).map(|_| rng.next_u64() as i16).collect();
            let x: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            assert_eq!(dot_i16_i8(&q, &x), dot_scalar(&q, &x), "n = {n}");
            let expect: i64 = q
                .iter()
                .zip(&x)
                .map(|(&a, &b)| i64::from(a) * i64::from(b as i8))
                .sum();
            assert_eq!(i64::from(dot_scalar(&q, &x)), expect, "n = {n}");
        }
        // The largest query components against ±127 at dimension 4096: no overflow.
        let v: Vec<f32> = (0..4096)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let s = quantise(&v).unwrap();
        let c = Query::new(&v).unwrap().cosine(&s).unwrap();
        assert!((c - 1.0).abs() < 1e-3, "{c}");
    }

    #[test]
    fn top_k_keeps_the_best_in_order() {
        let mut t = TopK::new(3);
        for (s, i) in [
            (0.1, 1),
            (0.9, 2),
            (0.5, 3),
            (0.7, 4),
            (0.2, 5),
            (f32::NAN, 6),
        ] {
            t.push(s, i);
        }
        assert_eq!(t.into_sorted(), vec![(0.9, 2), (0.7, 4), (0.5, 3)]);
        let mut z = TopK::new(0);
        z.push(1.0, 1);
        assert!(z.into_sorted().is_empty());
    }

    #[test]
    fn quantisation_keeps_top5_over_2000_vectors_of_dim_384() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let data = clustered(2000, 384, 40, 0.6, &mut rng);
        let queries: Vec<Vec<f32>> = (0..50)
            .map(|i| {
                data[i * 37]
                    .iter()
                    .map(|&x| x + 0.3 * rng.normal())
                    .collect()
            })
            .collect();
        let overlap = quantisation_overlap(&data, &queries, 5);
        assert!(overlap >= 0.95, "top-5 overlap {overlap}");
        // Unclustered (random) data too.
        let random = clustered(2000, 384, 2000, 0.0, &mut rng);
        let queries: Vec<Vec<f32>> = (0..50).map(|i| random[i * 13].clone()).collect();
        let overlap = quantisation_overlap(&random, &queries, 5);
        assert!(overlap >= 0.95, "top-5 overlap (random) {overlap}");
    }
}
