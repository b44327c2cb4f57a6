//! The connect handshake (oc `docs/gateway/protocol/handshake.md`, `auth.md`): the
//! gateway's `connect.challenge` `{nonce, ts}`, our signed `connect` request as a
//! headless Linux node (`client.id` `node-host`, mode `node`, protocol 3–4), and what we
//! keep of `hello-ok` (tick interval, max payload, the device token).

use serde_json::{Value as Json, json};

use super::identity::Identity;

pub(crate) const CLIENT_ID: &str = "node-host";
pub(crate) const CLIENT_MODE: &str = "node";
pub(crate) const ROLE: &str = "node";
pub(crate) const PLATFORM: &str = "linux";
pub(crate) const DEVICE_FAMILY: &str = "";
/// Nodes may speak v3 (the N-1 window); the gateway's current one is 4.
pub(crate) const MIN_PROTOCOL: u32 = 3;
pub(crate) const MAX_PROTOCOL: u32 = 4;

/// The gateway's challenge: what the signature must cover.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Challenge {
    pub nonce: String,
    pub ts: i64,
}

impl Challenge {
    pub(crate) fn from_payload(p: &Json) -> Option<Challenge> {
        Some(Challenge {
            nonce: p["nonce"].as_str()?.to_string(),
            ts: p["ts"].as_i64()?,
        })
    }
}

/// The v3 signature payload: `v3|deviceId|clientId|clientMode|role|scopes|signedAtMs|
/// token|nonce|platform|deviceFamily`, platform and family trimmed and lower-cased.
pub(crate) fn signature_payload(device_id: &str, ch: &Challenge, token: &str) -> String {
    [
        "v3",
        device_id,
        CLIENT_ID,
        CLIENT_MODE,
        ROLE,
        "", // scopes: a node asks for none
        &ch.ts.to_string(),
        token,
        &ch.nonce,
        &PLATFORM.trim().to_ascii_lowercase(),
        &DEVICE_FAMILY.trim().to_ascii_lowercase(),
    ]
    .join("|")
}

/// What the node tells the gateway about itself.
pub(crate) struct NodeInfo<'a> {
    pub display_name: &'a str,
    pub version: &'a str,
    pub caps: &'a [&'a str],
    pub commands: &'a [&'a str],
}

/// The `connect` params (a closed schema: nothing else may be added), signed for `ch`
/// with `token` (the shared token or the device token; empty for none).
pub(crate) fn connect_params(id: &Identity, ch: &Challenge, token: &str, node: &NodeInfo) -> Json {
    let signature = id.sign(&signature_payload(&id.device_id, ch, token));
    let mut p = json!({
        "minProtocol": MIN_PROTOCOL,
        "maxProtocol": MAX_PROTOCOL,
        "client": {
            "id": CLIENT_ID,
            "version": node.version,
            "platform": PLATFORM,
            "mode": CLIENT_MODE,
            "displayName": node.display_name,
        },
        "role": ROLE,
        "scopes": [],
        "caps": node.caps,
        "commands": node.commands,
        "permissions": {},
        "userAgent": format!("smollama/{}", node.version),
        "device": {
            "id": id.device_id,
            "publicKey": id.public_key,
            "signature": signature,
            "signedAt": ch.ts,
            "nonce": ch.nonce,
        },
    });
    if !token.is_empty() {
        p["auth"] = json!({ "token": token });
    }
    p
}

/// What we keep of `hello-ok`.
#[derive(Debug, PartialEq)]
pub(crate) struct Hello {
    pub protocol: u64,
    pub tick_interval_ms: u64,
    pub max_payload: usize,
    /// `auth.deviceToken`: to persist and present on the next connect.
    pub device_token: Option<String>,
    /// `auth.method`: `token`, `device-token`, ...
    pub auth_method: String,
}

pub(crate) fn parse_hello(p: &Json) -> Result<Hello, String> {
    if p["type"] != "hello-ok" {
        return Err(format!("expected hello-ok, got {}", p["type"]));
    }
    let policy = &p["policy"];
    Ok(Hello {
        protocol: p["protocol"].as_u64().unwrap_or(0),
        // Read from the gateway (30 s observed, 15 s in the docs' example).
        tick_interval_ms: policy["tickIntervalMs"].as_u64().unwrap_or(30_000),
        max_payload: policy["maxPayload"].as_u64().unwrap_or(25 << 20) as usize,
        device_token: p["auth"]["deviceToken"].as_str().map(str::to_string),
        auth_method: p["auth"]["method"].as_str().unwrap_or("").to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v3_payload_puts_every_field_in_its_place() {
        let ch = Challenge {
            nonce: "n-1".into(),
            ts: 1700,
        };
        assert_eq!(
            signature_payload("abc", &ch, "tok"),
            "v3|abc|node-host|node|node||1700|tok|n-1|linux|"
        );
        assert_eq!(
            signature_payload("abc", &ch, ""),
            "v3|abc|node-host|node|node||1700||n-1|linux|"
        );
    }

    #[test]
    fn hello_ok_gives_the_policy_and_the_device_token() {
        let h = parse_hello(&json!({
            "type": "hello-ok", "protocol": 4,
            "auth": {"method": "token", "role": "node", "scopes": [], "deviceToken": "dt"},
            "policy": {"maxPayload": 26214400, "tickIntervalMs": 30000}
        }))
        .unwrap();
        assert_eq!(
            h,
            Hello {
                protocol: 4,
                tick_interval_ms: 30_000,
                max_payload: 26_214_400,
                device_token: Some("dt".into()),
                auth_method: "token".into()
            }
        );
        assert!(parse_hello(&json!({"type": "other"})).is_err());
    }

    /// A handshake captured from a real gateway (`tests/fixtures/openclaw/capture.mjs`:
    /// the gateway accepted it, and its own `verifyDeviceSignature` and
    /// `deriveDeviceIdFromPublicKey` checked it): the same key, challenge and token give
    /// byte for byte the same device id, payload, signature and connect fields here.
    #[test]
    fn signing_matches_a_handshake_the_real_gateway_verified() {
        let fx: Json = serde_json::from_str(include_str!(
            "../../../tests/fixtures/openclaw/handshake.json"
        ))
        .unwrap();
        let gw = &fx["gateway"];
        assert_eq!(gw["accepted"], true);
        assert_eq!(gw["signatureValid"], true);
        // The capture's key: the seed 1, 2, ..., 32.
        let seed: [u8; 32] = std::array::from_fn(|i| i as u8 + 1);
        let id = Identity::from_seed(&seed);
        let sent = &fx["connect"];
        assert_eq!(id.device_id, gw["derivedDeviceId"].as_str().unwrap());
        assert_eq!(id.public_key, sent["device"]["publicKey"].as_str().unwrap());
        let ch = Challenge::from_payload(&fx["challenge"]).unwrap();
        let token = sent["auth"]["token"].as_str().unwrap();
        let payload = signature_payload(&id.device_id, &ch, token);
        assert_eq!(payload, gw["payloadV3"].as_str().unwrap());
        assert_eq!(
            id.sign(&payload),
            sent["device"]["signature"].as_str().unwrap()
        );
        let ours = connect_params(
            &id,
            &ch,
            token,
            &NodeInfo {
                display_name: sent["client"]["displayName"].as_str().unwrap(),
                version: sent["client"]["version"].as_str().unwrap(),
                caps: &[],
                commands: &[],
            },
        );
        for field in [
            "device",
            "auth",
            "client",
            "role",
            "scopes",
            "minProtocol",
            "maxProtocol",
        ] {
            assert_eq!(ours[field], sent[field], "{field}");
        }
    }
}
