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
/// 401 to answer. Compared in constant time (`constant_time_eq`).
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

/// Whether `presented` (what a client sent) equals `secret`, in a time that depends on
/// the length of `presented` alone: every byte sent is compared with a byte of the
/// secret (cycling through it), whatever the first difference, so neither where a guess
/// goes wrong nor how long the secret is shows in the answer's timing. `black_box`
/// keeps the optimiser from turning the fold back into an early exit.
pub(crate) fn constant_time_eq(presented: &[u8], secret: &[u8]) -> bool {
    if secret.is_empty() {
        // Never a configured token ([http] token has a minimum length); kept total.
        return presented.is_empty();
    }
    let mut diff = u8::from(presented.len() != secret.len());
    for (i, &p) in presented.iter().enumerate() {
        diff |= p ^ secret[i % secret.len()];
        diff = std::hint::black_box(diff);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
        // A repetition of the secret matches it byte for byte; the length still differs.
        assert!(!constant_time_eq(b"abcabc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"a", b""));
        let secret = b"0123456789abcdef";
        for i in 0..secret.len() {
            let mut guess = *secret;
            guess[i] ^= 1;
            assert!(
                !constant_time_eq(&guess, secret),
                "a difference at byte {i}"
            );
        }
    }
}
