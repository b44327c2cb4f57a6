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

/// `v` scaled to unit length (the query form for `cosine`).
pub fn normalised(v: &[f32]) -> Result<Vec<f32>, VectorError> {
    check(v)?;
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    Ok(v.iter().map(|&x| (f64::from(x) / norm) as f32).collect())
}

/// Cosine similarity of a unit-length query with a stored value; None if the dimensions
/// differ or the value is malformed.
#[inline]
pub fn cosine(query_unit: &[f32], stored: &[u8]) -> Option<f32> {
    let (head, comps) = stored.split_at_checked(HEADER)?;
    if comps.len() != query_unit.len() {
        return None;
    }
    let inv_norm = f32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    Some(dot_i8(query_unit, comps) * inv_norm)
}

/// Σ q_i × (x_i as i8), with independent lanes so the compiler vectorises it.
#[inline]
pub fn dot_i8(q: &[f32], x: &[u8]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let qc = q.chunks_exact(LANES);
    let xc = x.chunks_exact(LANES);
    let (qr, xr) = (qc.remainder(), xc.remainder());
    for (a, b) in qc.zip(xc) {
        for i in 0..LANES {
            acc[i] += a[i] * f32::from(b[i] as i8);
        }
    }
    let mut tail = 0f32;
    for (a, &b) in qr.iter().zip(xr) {
        tail += a * f32::from(b as i8);
    }
    acc.iter().sum::<f32>() + tail
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
        let qu = normalised(q).expect("finite non-zero query");
        for (i, (v, s)) in data.iter().zip(&stored).enumerate() {
            exact.push(cosine_f32(q, v), i);
            approx.push(cosine(&qu, s).unwrap_or(f32::NEG_INFINITY), i);
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
        let qu = normalised(&v).unwrap();
        let c = cosine(&qu, &s).unwrap();
        assert!((c - 1.0).abs() < 1e-3, "{c}");
        // Wrong dimension: no score.
        assert_eq!(cosine(&qu[..383], &s), None);
    }

    #[test]
    fn bad_vectors_are_refused() {
        assert_eq!(quantise(&[]), Err(VectorError::Empty));
        assert_eq!(quantise(&[0.0, 0.0]), Err(VectorError::Zero));
        assert_eq!(quantise(&[1.0, f32::NAN]), Err(VectorError::NotFinite));
        assert_eq!(normalised(&[0.0]), Err(VectorError::Zero));
    }

    #[test]
    fn dot_handles_remainders() {
        let q: Vec<f32> = (0..37).map(|i| i as f32).collect();
        let x: Vec<u8> = (0..37).map(|i| (i as i8 - 18) as u8).collect();
        let expect: f32 = (0..37).map(|i| i as f32 * (i as f32 - 18.0)).sum();
        assert_eq!(dot_i8(&q, &x), expect);
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
