//! BM25 over lower-cased word tokens: the recall fallback when no query embedding is
//! available. Computed at query time over the stored texts (nothing is persisted).
//!
//! Feed every document of one corpus with `add`, then `top`. Per document it keeps only
//! the term frequencies of the (few) query terms, and only for documents that match one.
//! Tokens are compared with the query terms in place, without allocating.

use super::vectors::TopK;

const K1: f32 = 1.2;
const B: f32 = 0.75;

/// Common English words dropped from queries (an LLM asks in sentences: "why is the…").
const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by", "can", "did",
    "do", "does", "for", "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it",
    "its", "me", "my", "no", "not", "of", "on", "or", "so", "than", "that", "the", "their", "then",
    "there", "these", "this", "to", "was", "we", "were", "what", "when", "where", "which", "while",
    "who", "why", "will", "with", "you", "your",
];

/// Word tokens: maximal runs of alphanumeric characters.
pub fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
}

/// Whether `tok` lower-cased equals `term` (already lower-case), without allocating.
#[inline]
fn matches(tok: &str, term: &str) -> bool {
    if tok.is_ascii() {
        tok.len() == term.len() && tok.eq_ignore_ascii_case(term)
    } else {
        tok.chars().flat_map(char::to_lowercase).eq(term.chars())
    }
}

/// One BM25 computation: the query's terms and what the corpus fed so far says of them.
pub struct Bm25<T> {
    terms: Vec<String>,
    /// Documents containing each term.
    df: Vec<u32>,
    docs: u64,
    total_len: u64,
    /// Matching documents: their item, length, and `terms.len()` frequencies each (flat).
    matched: Vec<(T, u32)>,
    tf: Vec<u16>,
    scratch: Vec<u16>,
}

impl<T: Copy> Bm25<T> {
    /// The query's distinct lower-cased words, stop words left out.
    pub fn new(query: &str) -> Bm25<T> {
        let mut terms: Vec<String> = Vec::new();
        for t in tokens(query) {
            let t = t.to_lowercase();
            if !STOPWORDS.contains(&t.as_str()) && !terms.contains(&t) {
                terms.push(t);
            }
        }
        let n = terms.len();
        Bm25 {
            terms,
            df: vec![0; n],
            docs: 0,
            total_len: 0,
            matched: Vec::new(),
            tf: Vec::new(),
            scratch: vec![0; n],
        }
    }

    /// Whether the query has any term at all.
    pub fn has_terms(&self) -> bool {
        !self.terms.is_empty()
    }

    pub fn add(&mut self, item: T, text: &str) {
        self.scratch.fill(0);
        let mut len = 0u32;
        for tok in tokens(text) {
            len = len.saturating_add(1);
            for (i, term) in self.terms.iter().enumerate() {
                if matches(tok, term) {
                    self.scratch[i] = self.scratch[i].saturating_add(1);
                }
            }
        }
        self.docs += 1;
        self.total_len += u64::from(len);
        if self.scratch.iter().any(|&f| f > 0) {
            for (d, &f) in self.df.iter_mut().zip(&self.scratch) {
                *d += u32::from(f > 0);
            }
            self.matched.push((item, len));
            self.tf.extend_from_slice(&self.scratch);
        }
    }

    /// The best `k` matching documents, best first, with relevance in 0..1: the BM25 score
    /// over the sum of the query terms' idf (what a document of average length containing
    /// every term once scores), capped at 1.
    pub fn top(&self, k: usize) -> Vec<(f32, T)> {
        let n = self.docs as f32;
        let idf: Vec<f32> = self
            .df
            .iter()
            .map(|&df| (1.0 + (n - df as f32 + 0.5) / (df as f32 + 0.5)).ln())
            .collect();
        let norm: f32 = idf.iter().sum();
        let avg = (self.total_len as f32 / n.max(1.0)).max(1.0);
        let mut top = TopK::new(k);
        if norm <= 0.0 {
            return top.into_sorted();
        }
        let nt = self.terms.len();
        for (j, &(item, len)) in self.matched.iter().enumerate() {
            let tf = &self.tf[j * nt..(j + 1) * nt];
            let lnorm = K1 * (1.0 - B + B * len as f32 / avg);
            let s: f32 = tf
                .iter()
                .zip(&idf)
                .map(|(&f, &w)| {
                    let f = f32::from(f);
                    w * f * (K1 + 1.0) / (f + lnorm)
                })
                .sum();
            top.push((s / norm).min(1.0), item);
        }
        top.into_sorted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_on_non_alphanumerics() {
        let t: Vec<&str> = tokens("CPU-temp: 71°C, fan=ON!  Ünïcode").collect();
        assert_eq!(t, vec!["CPU", "temp", "71", "C", "fan", "ON", "Ünïcode"]);
        assert!(matches("Ünïcode", "ünïcode"));
        assert!(matches("CPU", "cpu"));
        assert!(!matches("cpus", "cpu"));
    }

    #[test]
    fn bm25_ranks_the_lexical_match_first() {
        let docs = [
            "The garage door opened at night",
            "CPU temperature rose above 70 degrees during the backup",
            "Humidity in the kitchen is stable",
            "the the the the the the",
            "Fan speed increased while the CPU was busy",
        ];
        let mut bm = Bm25::new("why is the CPU temperature high?");
        for (i, d) in docs.iter().enumerate() {
            bm.add(i, d);
        }
        let top = bm.top(3);
        assert_eq!(top[0].1, 1, "{top:?}");
        assert_eq!(top[1].1, 4, "{top:?}");
        assert!(top.iter().all(|(s, _)| (0.0..=1.0).contains(s)), "{top:?}");
        assert!(top[0].0 > top[1].0);
        // No match, no terms: nothing.
        let mut bm = Bm25::new("zebra");
        bm.add(0, docs[0]);
        assert!(bm.top(3).is_empty());
        let bm: Bm25<usize> = Bm25::new(" ?! ");
        assert!(!bm.has_terms());
        assert!(bm.top(3).is_empty());
    }
}
