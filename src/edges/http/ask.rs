//! `POST /api/ask`: a question for the agent, answered in the response. The proof that
//! questions can come from somewhere other than MQTT: the body goes to the agent's
//! intake (`messages::QuestionIntake`) like an MQTT payload, and the answer comes back
//! here because the question's origin says so.
//!
//! It needs the bearer token: the agent may run write tools (GPIO, publish). It runs on
//! the `http` thread itself, awaiting the answer without blocking (a question can take
//! minutes on a small board; no worker thread is held meanwhile), for at most the
//! request's `timeout_s`.

use std::time::Duration;

use serde_json::{Value as Json, json};

use super::HttpView;
use super::auth::require_token;
use super::request::Call;
use super::response::{Reply, err, ok};
use crate::messages::{Arrival, Offered};

/// How long a request waits for its answer unless it says (`timeout_s`)...
const DEFAULT_WAIT_S: u64 = 120;
/// ...and at most.
const MAX_WAIT_S: u64 = 600;

/// `timeout_s` from a JSON body (plain text takes the default), or the 400 to answer.
fn wait_of(body: &str) -> Result<Duration, Reply> {
    let json: Option<Json> = serde_json::from_str(body).ok();
    let secs = match json.as_ref().map(|j| &j["timeout_s"]) {
        None | Some(Json::Null) => DEFAULT_WAIT_S,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=MAX_WAIT_S) => n,
            _ => {
                return Err(err(
                    400,
                    format!("timeout_s must be an integer from 1 to {MAX_WAIT_S} (seconds)"),
                ));
            }
        },
    };
    Ok(Duration::from_secs(secs))
}

/// `POST /api/ask` `{"question": "...", "id": "...", "timeout_s": 120}` (or the question
/// as plain text): 200 with the answer (`docs/mqtt.md`'s answer payload), 503 with it
/// when the model could not answer, 504 when it did not within `timeout_s`.
pub(crate) async fn ask(view: &HttpView, call: &Call) -> Reply {
    if let Err(refused) = require_token(view, call) {
        return refused;
    }
    let Some(intake) = &view.ask else {
        return err(
            503,
            "the agent is off ([agent] enabled = false), so nothing answers questions",
        );
    };
    let body = match call.body_text() {
        Ok(b) => b,
        Err(r) => return r,
    };
    let wait = match wait_of(body) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (reply, answer) = async_channel::bounded(1);
    let id = match intake.offer(Arrival::Http { reply }, body.as_bytes()) {
        Offered::Accepted(id) => id,
        Offered::Ignored => {
            return err(
                400,
                "no question: send {\"question\": \"...\"} or the question as plain text",
            );
        }
        Offered::RateLimited => {
            return err(
                429,
                format!(
                    "more than {} questions a minute over HTTP ([agent] rate_per_minute); try again later",
                    view.settings.agent.rate_per_minute
                ),
            );
        }
        Offered::Busy => return err(503, "the agent is busy (64 questions waiting); try again"),
    };
    let got = smol::future::or(async { Some(answer.recv().await) }, async {
        smol::Timer::after(wait).await;
        None
    })
    .await;
    match got {
        Some(Ok(a)) if a.get("error").is_some() => Reply {
            code: 503,
            body: a,
            allow: None,
            raw: None,
            set_cookie: None,
        },
        Some(Ok(a)) => ok(a),
        Some(Err(_)) => err(503, "the agent stopped before answering"),
        None => Reply {
            code: 504,
            body: json!({
                "error": format!("no answer within {}s (timeout_s); the answer will not be delivered", wait.as_secs()),
                "id": id,
            }),
            allow: None,
            raw: None,
            set_cookie: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_is_bounded() {
        assert_eq!(wait_of("plain text").unwrap().as_secs(), DEFAULT_WAIT_S);
        assert_eq!(
            wait_of(r#"{"question": "q"}"#).unwrap().as_secs(),
            DEFAULT_WAIT_S
        );
        assert_eq!(wait_of(r#"{"timeout_s": 5}"#).unwrap().as_secs(), 5);
        for bad in [
            r#"{"timeout_s": 0}"#,
            r#"{"timeout_s": 601}"#,
            r#"{"timeout_s": "5"}"#,
        ] {
            assert_eq!(wait_of(bad).unwrap_err().code, 400, "{bad}");
        }
    }
}
