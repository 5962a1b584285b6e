//! Crypto-currency addresses: checksums verified, canonical text returned.

use super::{Problem, SelectorKind};
use sha2::{Digest, Sha256};
use sha3::Keccak256;

/// Base58check version bytes of the Bitcoin address kinds accepted: P2PKH and P2SH on mainnet
/// (`1…`, `3…`) and testnet (`m…`/`n…`, `2…`).
const BASE58_VERSIONS: [u8; 4] = [0x00, 0x05, 0x6f, 0xc4];

/// A Bitcoin address: segwit (BIP-173 bech32 for v0, BIP-350 bech32m for v1+; human-readable
/// part `bc` or `tb`) in lower case, or base58check P2PKH/P2SH (checksum: the first four bytes
/// of SHA-256(SHA-256(version || hash160))) as encoded.
pub(super) fn bitcoin(value: &str) -> Result<String, Problem> {
    let kind = SelectorKind::Bitcoin;
    let lower = value.to_ascii_lowercase();
    if lower.starts_with("bc1") || lower.starts_with("tb1") {
        let (hrp, version, program) = bech32::segwit::decode(value)
            .map_err(|e| Problem::expected(kind, value, &format!("segwit: {e}")))?;
        if hrp != bech32::hrp::BC && hrp != bech32::hrp::TB {
            return Err(Problem::expected(kind, value, "segwit: not a bc or tb address"));
        }
        return bech32::segwit::encode(hrp, version, &program)
            .map_err(|e| Problem::expected(kind, value, &format!("segwit: {e}")));
    }
    let bytes = bs58::decode(value)
        .into_vec()
        .map_err(|e| Problem::expected(kind, value, &format!("base58: {e}")))?;
    let Some((payload, checksum)) = bytes.split_at_checked(21).filter(|(_, c)| c.len() == 4) else {
        return Err(Problem::expected(
            kind,
            value,
            &format!("{} bytes; base58check has 25", bytes.len()),
        ));
    };
    let digest = Sha256::digest(Sha256::digest(payload));
    if digest.get(..4) != Some(checksum) {
        return Err(Problem::expected(kind, value, "base58check checksum does not match"));
    }
    if !payload.first().is_some_and(|v| BASE58_VERSIONS.contains(v)) {
        return Err(Problem::expected(kind, value, "not a P2PKH or P2SH version byte"));
    }
    Ok(bs58::encode(&bytes).into_string())
}

/// An Ethereum address: `0x` and 40 hex digits, lower case. Digits of mixed case are an
/// EIP-55 checksum: a letter is upper case exactly when the matching nibble of
/// Keccak-256(lower-case hex) is 8 or more.
pub(super) fn ethereum(value: &str) -> Result<String, Problem> {
    let kind = SelectorKind::Ethereum;
    let Some(hex) = value.strip_prefix("0x").or_else(|| value.strip_prefix("0X")) else {
        return Err(Problem::expected(kind, value, "no 0x"));
    };
    if let Some(i) = hex.find(|c: char| !c.is_ascii_hexdigit()) {
        return Err(Problem::at(
            2 + i,
            format!("found `{value}` (not hex); expected {}", kind.expected()),
        ));
    }
    if hex.len() != 40 {
        return Err(Problem::expected(kind, value, &format!("{} hex digits", hex.len())));
    }
    let lower = hex.to_ascii_lowercase();
    let has_upper = hex.bytes().any(|b| b.is_ascii_uppercase());
    let has_lower = hex.bytes().any(|b| b.is_ascii_lowercase());
    if has_upper && has_lower {
        let hash = Keccak256::digest(lower.as_bytes());
        for (i, c) in hex.bytes().enumerate() {
            if !c.is_ascii_alphabetic() {
                continue;
            }
            let byte = hash.get(i / 2).copied().unwrap_or(0);
            let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
            if c.is_ascii_uppercase() != (nibble >= 8) {
                return Err(Problem::at(
                    2 + i,
                    format!(
                        "found `{value}` (EIP-55 checksum does not match); expected {}",
                        kind.expected()
                    ),
                ));
            }
        }
    }
    Ok(format!("0x{lower}"))
}
