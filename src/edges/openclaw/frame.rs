//! The gateway's JSON frames (oc `docs/gateway/protocol/transport.md`): requests
//! `{type:"req", id, method, params}`, responses `{type:"res", id, ok, payload | error}`
//! and events `{type:"event", event, payload}`; and the size bound on what we send.

use serde_json::{Value as Json, json};

/// A gateway error as it arrives in a failed response: branch on `code` and
/// `details_code`, never on `message`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GatewayError {
    pub code: String,
    pub message: String,
    /// `error.details.code` (`AUTH_TOKEN_MISMATCH`, `DEVICE_AUTH_SIGNATURE_INVALID`, ...).
    pub details_code: Option<String>,
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.details_code {
            Some(d) => write!(f, "{} ({d}): {}", self.code, self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

/// One frame from the gateway.
#[derive(Debug, PartialEq)]
pub(crate) enum Incoming {
    Event {
        event: String,
        payload: Json,
    },
    Res {
        id: String,
        result: Result<Json, GatewayError>,
    },
    /// A request to us (the gateway sends none to nodes today): ignored.
    Req,
}

/// Parse one text frame.
pub(crate) fn parse(text: &str) -> Result<Incoming, String> {
    let mut v: Json = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    match v["type"].as_str() {
        Some("event") => Ok(Incoming::Event {
            event: v["event"].as_str().unwrap_or("").to_string(),
            payload: v["payload"].take(),
        }),
        Some("res") => {
            let id = v["id"].as_str().unwrap_or("").to_string();
            let result = if v["ok"].as_bool() == Some(true) {
                Ok(v["payload"].take())
            } else {
                let e = &v["error"];
                Err(GatewayError {
                    code: e["code"].as_str().unwrap_or("UNKNOWN").to_string(),
                    message: e["message"].as_str().unwrap_or("").to_string(),
                    details_code: e["details"]["code"].as_str().map(str::to_string),
                })
            };
            Ok(Incoming::Res { id, result })
        }
        Some("req") => Ok(Incoming::Req),
        other => Err(format!("unknown frame type {other:?}")),
    }
}

/// A request frame, or `None` when it would be larger than `max_payload` bytes (the
/// gateway's `policy.maxPayload`: it closes a connection that sends more).
pub(crate) fn request(id: &str, method: &str, params: &Json, max_payload: usize) -> Option<String> {
    let text = json!({"type": "req", "id": id, "method": method, "params": params}).to_string();
    (text.len() <= max_payload).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_events_and_errors_are_told_apart() {
        let ok = parse(r#"{"type":"res","id":"7","ok":true,"payload":{"type":"hello-ok"}}"#);
        assert_eq!(
            ok.unwrap(),
            Incoming::Res {
                id: "7".into(),
                result: Ok(json!({"type": "hello-ok"}))
            }
        );
        let err = parse(
            r#"{"type":"res","id":"1","ok":false,"error":{"code":"INVALID_REQUEST","message":"unauthorized","details":{"code":"AUTH_TOKEN_MISMATCH"}}}"#,
        )
        .unwrap();
        let Incoming::Res { result: Err(e), .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!(e.details_code.as_deref(), Some("AUTH_TOKEN_MISMATCH"));
        assert_eq!(
            e.to_string(),
            "INVALID_REQUEST (AUTH_TOKEN_MISMATCH): unauthorized"
        );
        let ev = parse(r#"{"type":"event","event":"tick","payload":{"ts":1}}"#).unwrap();
        assert_eq!(
            ev,
            Incoming::Event {
                event: "tick".into(),
                payload: json!({"ts": 1})
            }
        );
        assert!(parse("[1]").is_err() && parse("nope").is_err());
    }

    #[test]
    fn a_request_larger_than_the_gateways_max_payload_is_not_built() {
        let params = json!({"text": "x".repeat(1000)});
        let frame = request("1", "node.event", &params, 2000).unwrap();
        assert!(frame.len() > 1000 && frame.len() <= 2000);
        assert_eq!(
            serde_json::from_str::<Json>(&frame).unwrap()["method"],
            "node.event"
        );
        assert_eq!(request("1", "node.event", &params, 1000), None);
        // The bound is inclusive: a frame of exactly max_payload bytes goes.
        assert!(request("1", "node.event", &params, frame.len()).is_some());
    }
}
