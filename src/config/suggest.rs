//! "Did you mean ...?" for config keys, kinds and names: plain edit distance.

/// Levenshtein distance between two strings (by chars).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub fn closest<'a, I, S>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str> + 'a,
{
    let lower = word.to_ascii_lowercase();
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| {
            let d = edit_distance(&lower, &c.as_ref().to_ascii_lowercase());
            (d, c.as_ref().to_string())
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Candidates sorted closest first (ties keep their order).
pub fn by_closeness<I, S>(word: &str, candidates: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut v: Vec<(usize, String)> = candidates
        .into_iter()
        .map(|c| (edit_distance(word, c.as_ref()), c.as_ref().to_string()))
        .collect();
    v.sort_by_key(|(d, _)| *d);
    v.into_iter().map(|(_, c)| c).collect()
}

/// "a", "a or b", "a, b or c": a short list read as alternatives.
pub fn one_of(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// A hint naming the closest candidate (if any) and listing all of them.
pub fn hint(word: &str, what: &str, candidates: &[&str]) -> String {
    let list = candidates.join(", ");
    match closest(word, candidates.iter()) {
        Some(c) => format!("did you mean '{c}'? valid {what}: {list}"),
        None => format!("valid {what}: {list}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(closest("nmae", ["name", "data_dir"]), Some("name".into()));
        assert_eq!(closest("zzzzzz", ["name", "data_dir"]), None);
        assert_eq!(by_closeness("bnd", ["token", "bind"])[0], "bind");
        assert_eq!(one_of(&["a", "b", "c"]), "a, b or c");
        assert_eq!(one_of(&["a"]), "a");
    }
}
