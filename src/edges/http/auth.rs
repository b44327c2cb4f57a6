//! Who may change the world (GPIO writes, questions that may run write tools): API
//! clients with the bearer token, and dashboard sessions (`session.rs`) whose write
//! carries the session's CSRF token.

use super::HttpView;
use super::request::Call;
use super::response::{Reply, err};
use super::session::{self, Presented};

/// `Ok` when the request has `Authorization: Bearer <[http] token>`, or, without an
/// `Authorization` header, a live session cookie and that session's `X-CSRF-Token`;
/// else the 403 (no token set: such endpoints are off; or the CSRF token is missing) or
/// 401 to answer. Compared in constant time.
pub(crate) fn require_token(view: &HttpView, call: &Call) -> Result<(), Reply> {
    let Some(token) = view.settings.http.token.as_deref() else {
        return Err(err(
            403,
            "write endpoints are disabled: set [http] token (or SMOLLAMA_HTTP_TOKEN) to enable them",
        ));
    };
    if call.auth.is_none() {
        match session::check(view, call) {
            Presented::Valid => return Ok(()),
            Presented::NoCsrf => {
                return Err(err(
                    403,
                    "missing or wrong X-CSRF-Token header (a write with the session cookie needs the token GET /api/session gives)",
                ));
            }
            Presented::Unknown => {
                return Err(err(401, "session expired or ended: log in again"));
            }
            Presented::None => {}
        }
    }
    let presented = call
        .auth
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        return Err(err(
            401,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        ));
    }
    Ok(())
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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
