//! Standard Webhooks v1 (standardwebhooks.com) signing: a `whsec_` secret is base64 of the
//! key; a delivery is signed `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` and
//! carries `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SECRET_PREFIX: &str = "whsec_";
/// Key bytes of a generated secret (Standard Webhooks asks for 24 to 64).
const KEY_BYTES: usize = 32;

/// A fresh `whsec_` secret from the OS's random source.
pub fn generate_secret() -> std::io::Result<String> {
    use std::io::Read;
    let mut key = [0u8; KEY_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
}

/// The key bytes of a `whsec_` secret, or why it is not one.
pub fn key_of(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or_else(|| format!("a secret starts with {SECRET_PREFIX}"))?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| format!("a secret is {SECRET_PREFIX} and base64"))?;
    if !(24..=64).contains(&key.len()) {
        return Err(format!(
            "a secret's key is 24 to 64 bytes, this one is {}",
            key.len()
        ));
    }
    Ok(key)
}

/// The `webhook-signature` header value for a delivery.
pub fn sign(key: &[u8], id: &str, timestamp_s: u64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        unreachable!("HMAC takes a key of any length");
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in the Standard Webhooks specification (and its reference libraries).
    #[test]
    fn signs_as_the_specification_does() {
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn generated_secrets_are_valid_and_differ() {
        let one = generate_secret().expect("random");
        let two = generate_secret().expect("random");
        assert_ne!(one, two);
        assert_eq!(key_of(&one).expect("valid").len(), KEY_BYTES);
        assert!(key_of("whsec_dG9vc2hvcnQ=").is_err(), "too short");
        assert!(
            key_of("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err(),
            "no prefix"
        );
    }
}
