//! The bearer token that endpoints which change the world (GPIO writes, questions that
//! may run write tools) require.

use super::HttpView;
use super::response::{Reply, err};

/// `Ok` when `auth` is `Bearer <[http] token>`; else the 403 (no token set: such
/// endpoints are off) or 401 to answer. Compared in constant time.
pub(crate) fn require_token(view: &HttpView, auth: Option<&str>) -> Result<(), Reply> {
    let Some(token) = view.settings.http.token.as_deref() else {
        return Err(err(
            403,
            "write endpoints are disabled: set [http] token (or SMOLLAMA_HTTP_TOKEN) to enable them",
        ));
    };
    let presented = auth.and_then(|a| a.strip_prefix("Bearer ")).unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        return Err(err(
            401,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        ));
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
