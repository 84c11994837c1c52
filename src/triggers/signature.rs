//! Signed webhooks, both ways: `X-Weft-Signature: t=UNIX,v1=HEX`, where
//! HEX is HMAC-SHA256 with the hook's secret over `t`, a `.` and the raw
//! body (the scheme Stripe uses). The timestamp inside the signed text
//! makes a captured request useless after [`TOLERANCE`]; the receiver
//! compares in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header that carries the signature.
pub const HEADER: &str = "x-weft-signature";
/// How far a signature's time may be from the receiver's clock.
pub const TOLERANCE_SECS: u64 = 300;

/// Why a signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No header, or not `t=...,v1=...`.
    #[error("no valid X-Weft-Signature header (expected `t=UNIX_SECONDS,v1=HEX`)")]
    Malformed,
    /// The time is too far from now.
    #[error("the signature's time is {0} s from the server's clock, more than the 300 s allowed")]
    Stale(u64),
    /// The MAC does not match.
    #[error("the signature does not match the body and the hook's secret")]
    Mismatch,
}

fn mac(secret: &[u8], t: u64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value signing `body` at `t` (seconds since the epoch).
pub fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    let code = mac(secret, t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(code))
}

/// Checks `header` against `body` at `now` (seconds since the epoch);
/// returns the verified MAC, hex, which names this exact delivery.
pub fn verify(secret: &[u8], header: Option<&str>, body: &[u8], now: u64) -> Result<String, SignatureError> {
    let header = header.ok_or(SignatureError::Malformed)?;
    let mut t = None;
    let mut codes = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<u64>().ok(),
            Some(("v1", value)) => codes.push(value),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if codes.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let skew = now.abs_diff(t);
    if skew > TOLERANCE_SECS {
        return Err(SignatureError::Stale(skew));
    }
    for code in codes {
        let Ok(bytes) = hex::decode(code) else { continue };
        // `verify_slice` compares in constant time.
        if mac(secret, t, body).verify_slice(&bytes).is_ok() {
            return Ok(code.to_ascii_lowercase());
        }
    }
    Err(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_its_secret_body_and_time() {
        let header = sign(b"s3cret", 1_000, b"{\"a\":1}");
        assert!(verify(b"s3cret", Some(&header), b"{\"a\":1}", 1_010).is_ok());
        assert_eq!(
            verify(b"other", Some(&header), b"{\"a\":1}", 1_010),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", Some(&header), b"{\"a\":2}", 1_010),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", Some(&header), b"{\"a\":1}", 1_301),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(verify(b"s3cret", Some("v1=00"), b"", 0), Err(SignatureError::Malformed));
        assert_eq!(verify(b"s3cret", None, b"", 0), Err(SignatureError::Malformed));
        // A second v1 (a secret being rotated) is tried too.
        let rotated = format!("{},v1=ffff", sign(b"s3cret", 1_000, b"x"));
        assert!(verify(b"s3cret", Some(&rotated), b"x", 1_000).is_ok());
    }
}
