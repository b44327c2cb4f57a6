//! This node's device identity towards the gateway: an Ed25519 key generated once and
//! kept, with the device token the gateway issued, in `openclaw-device.json` in the
//! store's directory (mode 0600, written whole: temporary file, then rename).
//! The device id is the lowercase hex SHA-256 of the raw 32-byte public key, and keys
//! and signatures travel as unpadded base64url (oc `dist/device-identity-*.mjs`).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

/// The file's name in the store's directory.
pub(crate) const FILE: &str = "openclaw-device.json";

/// The key pair and what the gateway knows it by. The private key never leaves this
/// struct except into its 0600 file.
pub(crate) struct Identity {
    key: SigningKey,
    /// Hex SHA-256 of the public key.
    pub device_id: String,
    /// The raw public key, base64url.
    pub public_key: String,
}

impl Identity {
    pub(crate) fn from_seed(seed: &[u8; 32]) -> Identity {
        let key = SigningKey::from_bytes(seed);
        let public = key.verifying_key().to_bytes();
        Identity {
            device_id: hex(&Sha256::digest(public)),
            public_key: b64url(&public),
            key,
        }
    }

    /// The base64url Ed25519 signature of `payload`'s UTF-8 bytes.
    pub(crate) fn sign(&self, payload: &str) -> String {
        b64url(&self.key.sign(payload.as_bytes()).to_bytes())
    }
}

/// The identity file: the key (made on first use) and the last device token.
pub(crate) struct DeviceFile {
    path: PathBuf,
    pub identity: Identity,
    /// The token from the last `hello-ok` (`auth.deviceToken`); used on reconnect.
    pub device_token: Option<String>,
}

impl DeviceFile {
    /// Read `dir/openclaw-device.json`, or create it with a fresh key.
    pub(crate) fn open(dir: &Path) -> Result<DeviceFile, String> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let v: Json = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
                let seed = v["privateKey"]
                    .as_str()
                    .and_then(b64url_decode)
                    .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                    .ok_or_else(|| format!("{}: no valid privateKey", path.display()))?;
                Ok(DeviceFile {
                    identity: Identity::from_seed(&seed),
                    device_token: v["deviceToken"].as_str().map(str::to_string),
                    path,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom(&mut seed)?;
                let f = DeviceFile {
                    identity: Identity::from_seed(&seed),
                    device_token: None,
                    path,
                };
                f.save(&seed)?;
                log::info!(
                    "openclaw: new device identity {} in {}",
                    f.identity.device_id,
                    f.path.display()
                );
                Ok(f)
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Keep `token` (a new device token from the gateway; `None` forgets it).
    pub(crate) fn set_device_token(&mut self, token: Option<String>) -> Result<(), String> {
        if self.device_token == token {
            return Ok(());
        }
        self.device_token = token;
        self.save(&self.identity.key.to_bytes())
    }

    fn save(&self, seed: &[u8; 32]) -> Result<(), String> {
        let body = json!({
            "version": 1,
            "deviceId": self.identity.device_id,
            "publicKey": self.identity.public_key,
            "privateKey": b64url(seed),
            "deviceToken": self.device_token,
        });
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(body.to_string().as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

fn getrandom(buf: &mut [u8]) -> Result<(), String> {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled rest of `buf`.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("getrandom: {e}"));
            }
        } else {
            filled += n as usize;
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url, as the gateway writes keys and signatures.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(B64URL[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Back from base64url (padding tolerated); `None` on a character outside the alphabet.
pub(crate) fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.trim_end_matches('=').bytes() {
        let v = B64URL.iter().position(|&a| a == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn base64url_round_trips_without_padding() {
        assert_eq!(b64url(b""), "");
        assert_eq!(b64url(b"f"), "Zg");
        assert_eq!(b64url(b"fo"), "Zm8");
        assert_eq!(b64url(b"foo"), "Zm9v");
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
        for n in 0..70u8 {
            let bytes: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(b64url_decode(&b64url(&bytes)).unwrap(), bytes);
        }
        assert_eq!(b64url_decode("Zg=="), Some(b"f".to_vec()));
        assert_eq!(b64url_decode("Z+g"), None);
    }

    #[test]
    fn the_key_is_made_once_kept_0600_and_the_token_survives_a_reopen() {
        let dir = std::env::temp_dir().join(format!("smollama-oc-id-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut first = DeviceFile::open(&dir).unwrap();
        let mode = std::fs::metadata(dir.join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(first.identity.device_id.len(), 64);
        first.set_device_token(Some("dt-1".into())).unwrap();
        let again = DeviceFile::open(&dir).unwrap();
        assert_eq!(again.identity.device_id, first.identity.device_id);
        assert_eq!(again.identity.public_key, first.identity.public_key);
        assert_eq!(again.device_token.as_deref(), Some("dt-1"));
        let mode = std::fs::metadata(dir.join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "a rewrite keeps the mode");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
