//! Dashboard sessions: a login with the `[http] token` gets a random session id in an
//! HttpOnly, SameSite=Strict cookie and a CSRF token the page sends back in
//! `X-CSRF-Token` on every write (the synchronizer-token pattern: the CSRF token lives
//! here, beside the session, so a forged request that carries the cookie still lacks it).
//! Sessions are held in memory only (a restart logs everyone out), at most
//! `[http] max_sessions` of them, each ending `[http] session_ttl` after its login.
//!
//! Endpoints: `POST /api/login` `{"token": "..."}`, `POST /api/logout`, `GET
//! /api/session` (whether this browser is logged in, and its CSRF token).

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use serde_json::{Value as Json, json};

use super::HttpView;
use super::auth::constant_time_eq;
use super::request::Call;
use super::response::{Reply, err, ok};
use super::stats::HttpStats;
use crate::clock::{iso8601, now_us};
use crate::graph::Micros;

/// The cookie's name.
pub(crate) const COOKIE: &str = "smollama_session";
/// The header a write made with the cookie must carry the session's CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// One login: its cookie value, its CSRF token (both 32 random bytes, hex) and when it
/// ends.
#[derive(Debug)]
struct Session {
    id: String,
    csrf: String,
    expires: Micros,
}

/// The sessions held now: at most `[http] max_sessions`, none past its expiry once
/// looked at (expired ones are dropped on every access). Shared by the HTTP threads.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    held: Mutex<Vec<Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Session>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session ending at `now + ttl`; the oldest goes when `max` are held
    /// (returned as `true`, to be counted).
    fn open(&self, now: Micros, ttl: Micros, max: usize) -> std::io::Result<(Session, bool)> {
        let s = Session {
            id: random_hex()?,
            csrf: random_hex()?,
            expires: now + ttl,
        };
        let mut held = self.lock();
        held.retain(|s| s.expires > now);
        let mut evicted = false;
        while held.len() >= max.max(1) {
            // Sessions are pushed in login order, so the first is the oldest.
            held.remove(0);
            evicted = true;
        }
        held.push(Session {
            id: s.id.clone(),
            csrf: s.csrf.clone(),
            expires: s.expires,
        });
        Ok((s, evicted))
    }

    /// The CSRF token and expiry of the live session with cookie value `id`.
    fn find(&self, id: &str, now: Micros) -> Option<(String, Micros)> {
        let mut held = self.lock();
        held.retain(|s| s.expires > now);
        held.iter()
            .find(|s| constant_time_eq(s.id.as_bytes(), id.as_bytes()))
            .map(|s| (s.csrf.clone(), s.expires))
    }

    fn close(&self, id: &str) {
        self.lock()
            .retain(|s| !constant_time_eq(s.id.as_bytes(), id.as_bytes()));
    }

    fn count(&self) -> usize {
        self.lock().len()
    }
}

/// 32 bytes from the kernel's CSPRNG (`getrandom(2)`), as 64 hex digits.
fn random_hex() -> std::io::Result<String> {
    let mut buf = [0u8; 32];
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: writes at most the remaining length into our own buffer.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// What the cookie and CSRF header of a request prove.
pub(crate) enum Presented {
    /// No session cookie.
    None,
    /// A cookie that names no live session (expired, logged out, or forged).
    Unknown,
    /// A live session whose CSRF token the request carries.
    Valid,
    /// A live session, but the request lacks its CSRF token (or carries another).
    NoCsrf,
}

/// Check a request's session cookie and CSRF header.
pub(crate) fn check(view: &HttpView, call: &Call) -> Presented {
    let Some(id) = call.session.as_deref() else {
        return Presented::None;
    };
    let Some((csrf, _)) = view.sessions.find(id, now_us()) else {
        return Presented::Unknown;
    };
    let sent = call.csrf.as_deref().unwrap_or("");
    if constant_time_eq(sent.as_bytes(), csrf.as_bytes()) {
        Presented::Valid
    } else {
        Presented::NoCsrf
    }
}

fn set_gauge(view: &HttpView) {
    view.stats
        .sessions_open
        .store(view.sessions.count() as u64, Ordering::Relaxed);
}

/// `POST /api/login` `{"token": "..."}`: 200 with the CSRF token and a session cookie;
/// 401 for a wrong token (counted), 403 when no token is set (writes are off).
pub(crate) fn login(view: &HttpView, call: &Call) -> Reply {
    let Some(token) = view.settings.http.token.as_deref() else {
        return err(
            403,
            "logins are disabled: set [http] token (or SMOLLAMA_HTTP_TOKEN) to enable them",
        );
    };
    let body = match call.body_text() {
        Ok(b) => b,
        Err(r) => return r,
    };
    let parsed: Option<Json> = serde_json::from_str(body).ok();
    let Some(sent) = parsed.as_ref().and_then(|j| j["token"].as_str()) else {
        return err(400, "body must be a JSON object like {\"token\": \"...\"}");
    };
    if !constant_time_eq(sent.as_bytes(), token.as_bytes()) {
        HttpStats::bump(&view.stats.logins_refused);
        log::warn!("http: a dashboard login with a wrong token was refused");
        return err(401, "wrong token ([http] token)");
    }
    let h = &view.settings.http;
    let (s, evicted) = match view
        .sessions
        .open(now_us(), h.session_ttl, h.max_sessions as usize)
    {
        Ok(opened) => opened,
        Err(e) => return err(500, format!("cannot draw a session id: {e}")),
    };
    if evicted {
        HttpStats::bump(&view.stats.sessions_evicted);
    }
    HttpStats::bump(&view.stats.logins);
    set_gauge(view);
    log::info!("http: dashboard login");
    let mut reply = ok(json!({
        "logged_in": true,
        "csrf": s.csrf,
        "expires": iso8601(s.expires),
    }));
    reply.set_cookie = Some(
        format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
            s.id,
            h.session_ttl / 1_000_000
        )
        .into(),
    );
    reply
}

/// `POST /api/logout`: ends this browser's session (a write: needs the CSRF token) and
/// clears the cookie.
pub(crate) fn logout(view: &HttpView, call: &Call) -> Reply {
    match check(view, call) {
        Presented::Valid => {}
        Presented::NoCsrf => return err(403, "missing or wrong X-CSRF-Token header"),
        Presented::None | Presented::Unknown => return err(401, "not logged in"),
    }
    if let Some(id) = call.session.as_deref() {
        view.sessions.close(id);
    }
    set_gauge(view);
    log::info!("http: dashboard logout");
    let mut reply = ok(json!({ "logged_in": false }));
    reply.set_cookie =
        Some(format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0").into());
    reply
}

/// `GET /api/session`: whether writes are possible at all (a token is set), whether this
/// browser is logged in, and then its CSRF token (readable by this origin's pages only:
/// no CORS headers are sent, and the cookie is SameSite=Strict).
pub(crate) fn current(view: &HttpView, call: &Call) -> Reply {
    let writes = view.settings.http.token.is_some();
    let found = call
        .session
        .as_deref()
        .and_then(|id| view.sessions.find(id, now_us()));
    set_gauge(view);
    match found {
        Some((csrf, expires)) => ok(json!({
            "writes_enabled": writes,
            "logged_in": true,
            "csrf": csrf,
            "expires": iso8601(expires),
        })),
        None => ok(json!({ "writes_enabled": writes, "logged_in": false })),
    }
}

/// The session cookie's value in a `Cookie` header, if any.
pub(crate) fn cookie_value(header: &str) -> Option<&str> {
    header.split(';').find_map(|part| {
        let (name, value) = part.trim().split_once('=')?;
        (name == COOKIE && !value.is_empty()).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_bounded_expire_and_close() {
        let s = Sessions::default();
        let (a, ev) = s.open(0, 100, 2).unwrap();
        assert!(!ev);
        assert_eq!(a.id.len(), 64);
        assert_ne!(a.id, a.csrf);
        let (b, _) = s.open(1, 100, 2).unwrap();
        let (c, ev) = s.open(2, 100, 2).unwrap();
        assert!(ev, "the third login at max 2 ends the oldest");
        assert!(s.find(&a.id, 3).is_none());
        assert_eq!(s.find(&b.id, 3).map(|f| f.0), Some(b.csrf.clone()));
        assert!(s.find(&c.id, 101).is_some());
        assert!(s.find(&c.id, 102).is_none(), "expired at login + ttl");
        s.close(&b.id);
        assert_eq!(s.count(), 0);
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(cookie_value("a=1; smollama_session=abc; b=2"), Some("abc"));
        assert_eq!(cookie_value("smollama_session="), None);
        assert_eq!(cookie_value("xsmollama_session=abc"), None);
    }
}
