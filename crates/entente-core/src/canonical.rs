//! RFC 8785 (JSON Canonicalization Scheme) encoding.

use serde::Serialize;

/// Error raised when a value cannot be put in canonical form (for example a non-finite float).
#[derive(Debug, thiserror::Error)]
#[error("value cannot be encoded as RFC 8785 canonical JSON: {0}")]
pub struct CanonicalError(String);

/// Returns the RFC 8785 canonical JSON encoding of `value`.
///
/// # Errors
/// Fails when the value holds something JSON cannot represent canonically.
pub fn to_canonical_vec<T: Serialize>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    serde_jcs::to_vec(value).map_err(|e| CanonicalError(e.to_string()))
}

/// Returns the SHA-256 of the canonical encoding as `sha256:<hex>`, the form in which payload
/// digests appear in ledger entries.
///
/// # Errors
/// As [`to_canonical_vec`].
pub fn canonical_digest<T: Serialize>(value: &T) -> Result<String, CanonicalError> {
    Ok(sha256_tagged(&to_canonical_vec(value)?))
}

/// Returns `sha256:<lowercase hex>` of `bytes`.
pub fn sha256_tagged(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_and_whitespace_removed() {
        let v = serde_json::json!({"b": 1, "a": [true, null, "x"], "é": "\u{1}"});
        let out = String::from_utf8(to_canonical_vec(&v).unwrap()).unwrap();
        assert_eq!(out, r#"{"a":[true,null,"x"],"b":1,"é":"\u0001"}"#);
    }

    #[test]
    fn rfc8785_number_forms() {
        // RFC 8785 §3.2.2.3 examples.
        let v = serde_json::json!([1e21, 1e-7, 0.000001, 100.0, -0.0]);
        let out = String::from_utf8(to_canonical_vec(&v).unwrap()).unwrap();
        assert_eq!(out, "[1e+21,1e-7,0.000001,100,0]");
    }

    #[test]
    fn digest_is_tagged_hex() {
        let d = sha256_tagged(b"");
        assert_eq!(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
