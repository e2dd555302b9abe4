//! Signed events. With `--event-keys FILE`, every event a component publishes carries an
//! HMAC-SHA256 of its bytes in the `orderly-signature` header, and every consumer refuses (and
//! dead-letters) an event without a valid one. Events are then not a way in: someone who can
//! produce to the broker but holds no key (a hand-made OrderPlaced selling three laptops for a
//! cent) changes nothing anywhere. The bytes signed are the record's value as sent, so a newer
//! producer's envelope, with fields an older consumer does not know, still verifies.
//!
//! The components share the key (one trust domain, like their CA). The file holds keys as hex,
//! one per line, at least 32 bytes each: the first signs, every one verifies. A key is rotated
//! without losing events in flight: add the new key second and roll out, move it first and roll
//! out, then drop the old one.

use std::path::{Path, PathBuf};

use aws_lc_rs::hmac;

/// The record header holding an event's signature (hex).
pub const SIGNATURE: &str = "orderly-signature";

/// The shortest key accepted: HMAC-SHA256's own output length.
const MIN_KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot read the event keys {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("event keys {path}, line {line}: {reason}")]
    Invalid {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("event keys {0}: no key (one hex key of at least {MIN_KEY_BYTES} bytes per line)")]
    Empty(PathBuf),
}

/// The keys events are signed and checked with.
pub struct EventKeys {
    /// The first key signs; every key verifies.
    keys: Vec<hmac::Key>,
}

impl EventKeys {
    /// The keys in `path`: hex, one per line; blank lines and `#` comments are skipped.
    pub fn load(path: &Path) -> Result<Self, KeysError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeysError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let invalid = |reason: String| KeysError::Invalid {
                path: path.to_owned(),
                line: index + 1,
                reason,
            };
            let bytes = hex::decode(line).map_err(|error| invalid(format!("not hex: {error}")))?;
            if bytes.len() < MIN_KEY_BYTES {
                let short = format!("{} bytes, fewer than {MIN_KEY_BYTES}", bytes.len());
                return Err(invalid(short));
            }
            keys.push(hmac::Key::new(hmac::HMAC_SHA256, &bytes));
        }
        if keys.is_empty() {
            return Err(KeysError::Empty(path.to_owned()));
        }
        Ok(Self { keys })
    }

    /// The signature of `value` (a record's bytes), as the header carries it.
    pub fn sign(&self, value: &[u8]) -> String {
        hex::encode(hmac::sign(&self.keys[0], value).as_ref())
    }

    /// Whether `signature` (the header, if any) is one of the keys' signature of `value`; the
    /// reason it is not otherwise, for the dead letter.
    pub fn verify(&self, value: &[u8], signature: Option<&[u8]>) -> Result<(), String> {
        let Some(signature) = signature else {
            return Err(format!("not signed: no {SIGNATURE} header"));
        };
        let tag = std::str::from_utf8(signature)
            .ok()
            .and_then(|text| hex::decode(text).ok())
            .ok_or_else(|| format!("the {SIGNATURE} header is not hex"))?;
        // Constant time: how much of a forged tag matched must not show.
        if self
            .keys
            .iter()
            .any(|key| hmac::verify(key, value, &tag).is_ok())
        {
            Ok(())
        } else {
            Err("signed with no key this component holds (forged or altered)".to_owned())
        }
    }
}

/// A new key as the key file holds it: 32 random bytes, hex.
pub fn new_key() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(lines: &str) -> EventKeys {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), lines).unwrap();
        EventKeys::load(file.path()).unwrap()
    }

    #[test]
    fn a_signed_value_verifies_and_anything_else_is_refused_saying_why() {
        let (first, second) = (new_key(), new_key());
        let keys = loaded(&format!("# rotating\n{first}\n\n{second}\n"));
        let signature = keys.sign(b"event");
        assert_eq!(keys.verify(b"event", Some(signature.as_bytes())), Ok(()));
        let altered = keys.verify(b"Event", Some(signature.as_bytes()));
        assert!(altered.unwrap_err().contains("forged or altered"));
        assert!(
            keys.verify(b"event", None)
                .unwrap_err()
                .contains("not signed")
        );
        assert!(
            keys.verify(b"event", Some(b"zz"))
                .unwrap_err()
                .contains("not hex")
        );
        // Signed with the second key (another component mid-rotation): still verifies.
        let rotated = loaded(&format!("{second}\n"));
        let signed_by_second = rotated.sign(b"event");
        assert_eq!(
            keys.verify(b"event", Some(signed_by_second.as_bytes())),
            Ok(())
        );
        // A key set without the signer's key refuses it.
        let other = loaded(&new_key());
        assert!(other.verify(b"event", Some(signature.as_bytes())).is_err());
    }

    #[test]
    fn a_short_or_malformed_key_file_is_refused_naming_the_line() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "abcd\n").unwrap();
        let error = EventKeys::load(file.path()).err().unwrap().to_string();
        assert!(
            error.contains("line 1") && error.contains("2 bytes"),
            "{error}"
        );
        std::fs::write(file.path(), "# nothing\n").unwrap();
        let error = EventKeys::load(file.path()).err().unwrap().to_string();
        assert!(error.contains("no key"), "{error}");
    }
}
