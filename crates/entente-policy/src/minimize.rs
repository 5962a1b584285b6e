//! Minimization of a datum before it leaves the node, as an agreement's
//! [`MinimizationRule`]s require.
//!
//! A datum is a JSON object. [`minimize`] applies, in order, every rule of the datum's
//! category to the field the rule names, and returns the minimized datum with the list of
//! what was done ([`Applied`]: field names and transforms, never values). Any field that cannot
//! be minimized as required (an IP field that holds no IP address, a timestamp field that holds
//! no timestamp, a value of the wrong type) is an error naming the field, and then nothing is
//! returned: a datum leaves minimized or not at all.
//!
//! Field names: a rule's field is a key of the datum; a dotted name `a.b` also reaches key `b`
//! of the object under key `a` (at any depth, and with every way of reading the dots: a key
//! that itself contains a dot is matched literally as well), so that how a sender spelled its
//! keys cannot make a field escape its rule. An array on the way to a field is an error (the
//! rule cannot say which elements it means).
//!
//! Rules apply in sequence to the current value: a later rule on a field sees the earlier
//! rule's output (a field dropped earlier is no longer there; an IP address redacted earlier is
//! no longer an IP address, and truncating it then is an error rather than a silent pass).
//!
//! Pure: no I/O, no clock. The node secret that pseudonym keys derive from is passed in.

use crate::agreement::{DataCategory, MinimizationRule, Transform};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac as _};
use serde_json::{Map, Value};
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[cfg(test)]
mod tests;

/// The value a redacted field holds.
pub const REDACTED: &str = "[redacted]";

/// The prefix of a pseudonym; 32 lowercase hex characters (128 bits of the keyed hash) follow.
pub const PSEUDONYM_PREFIX: &str = "pse:";

/// The context string the per-agreement pseudonym key is derived with.
const KEY_CONTEXT: &[u8] = b"entente pseudonym key v1\0";

/// A per-agreement pseudonymization key.
///
/// Derived from the node secret and the agreement id ([`PseudonymKey::derive`]); it never
/// leaves the node: it has no serialization, and its `Debug` form does not show it.
pub struct PseudonymKey([u8; 32]);

impl PseudonymKey {
    /// Derives the key of agreement `agreement_id`:
    /// HMAC-SHA-256(`node_secret`, `"entente pseudonym key v1\0"` ‖ `agreement_id`).
    ///
    /// Different agreements get unrelated keys, so the pseudonyms of one agreement cannot be
    /// linked with those of another.
    pub fn derive(node_secret: &[u8; 32], agreement_id: &str) -> Self {
        PseudonymKey(hmac_sha256(node_secret, &[KEY_CONTEXT, agreement_id.as_bytes()]))
    }

    /// The pseudonym of `input` under this key: `pse:` and the first 32 hex characters of
    /// HMAC-SHA-256(key, `input`).
    pub fn pseudonym(&self, input: &[u8]) -> String {
        let mac = hmac_sha256(&self.0, &[input]);
        format!("{PSEUDONYM_PREFIX}{}", hex::encode(&mac[..16]))
    }
}

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(<hidden>)")
    }
}

/// HMAC-SHA-256 with a 32-byte key over the concatenation of `parts`.
///
/// The key is zero-padded to the 64-byte SHA-256 block, exactly as HMAC does with any key
/// shorter than a block (RFC 2104 §2), so initialization cannot fail.
fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as KeyInit>::new((&block).into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// One transform applied to one field.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    /// The field, as the rule names it.
    pub field: String,
    /// The transform applied.
    pub transform: Transform,
}

/// A minimized datum and what was done to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Minimized {
    /// The datum, minimized.
    pub datum: Map<String, Value>,
    /// The transforms applied, in order: one per rule that found its field.
    pub applied: Vec<Applied>,
}

/// A datum that cannot be minimized as its rules require. The message names the field, never
/// its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MinimizeError {
    /// The field (or an object on the way to it) holds something the transform cannot
    /// minimize.
    #[error("field `{field}`: {} expects {expected}, found {found}", transform_name(*.transform))]
    Field {
        /// The field, as the rule names it.
        field: String,
        /// The transform the rule requires.
        transform: Transform,
        /// What was found (a JSON type or a description, never the value).
        found: &'static str,
        /// What the transform expects.
        expected: &'static str,
    },
}

/// The name of a transform as agreement files write it.
pub fn transform_name(transform: Transform) -> &'static str {
    match transform {
        Transform::Drop => "drop",
        Transform::Redact => "redact",
        Transform::Pseudonymize => "pseudonymize",
        Transform::TruncateIp => "truncate-ip",
        Transform::CoarsenTime => "coarsen-time",
    }
}

/// Minimizes `datum` of `category`: applies every rule of `rules` whose category is
/// `category`, in order, to the field it names (see the [module documentation](self) for
/// dotted names). A field the datum does not have is left alone and not recorded.
///
/// # Errors
/// [`MinimizeError`] when a field cannot be minimized as its rule requires; nothing is
/// returned then.
pub fn minimize(
    datum: &Map<String, Value>,
    category: DataCategory,
    rules: &[MinimizationRule],
    key: &PseudonymKey,
) -> Result<Minimized, MinimizeError> {
    let mut out = datum.clone();
    let mut applied = Vec::new();
    for rule in rules.iter().filter(|r| r.category == category) {
        let step = Step { field: &rule.field, transform: rule.transform, key };
        if step.apply_at(&mut out, &rule.field)? {
            applied.push(Applied { field: rule.field.clone(), transform: rule.transform });
        }
    }
    Ok(Minimized { datum: out, applied })
}

/// One rule being applied.
struct Step<'a> {
    field: &'a str,
    transform: Transform,
    key: &'a PseudonymKey,
}

impl Step<'_> {
    fn error(&self, found: &'static str, expected: &'static str) -> MinimizeError {
        MinimizeError::Field {
            field: self.field.to_owned(),
            transform: self.transform,
            found,
            expected,
        }
    }

    /// Applies the transform wherever `path` leads in `obj`: to the key `path` itself, and for
    /// every dot in `path`, under the object at the part before the dot to the part after it.
    /// Returns whether any value was found.
    fn apply_at(&self, obj: &mut Map<String, Value>, path: &str) -> Result<bool, MinimizeError> {
        let mut found = false;
        if obj.contains_key(path) {
            self.apply_to_key(obj, path)?;
            found = true;
        }
        for (i, _) in path.match_indices('.') {
            let (head, tail) = (&path[..i], &path[i + 1..]);
            match obj.get_mut(head) {
                Some(Value::Object(inner)) => found |= self.apply_at(inner, tail)?,
                Some(Value::Array(_)) => {
                    return Err(self.error(
                        "an array on the way to the field",
                        "objects on the way to a dotted field",
                    ));
                }
                // A scalar or null cannot hold the field: nothing there.
                _ => {}
            }
        }
        Ok(found)
    }

    fn apply_to_key(&self, obj: &mut Map<String, Value>, key: &str) -> Result<(), MinimizeError> {
        let Some(value) = obj.get(key) else {
            return Ok(());
        };
        match self.transformed(value)? {
            Some(new) => {
                obj.insert(key.to_owned(), new);
            }
            None => {
                obj.remove(key);
            }
        }
        Ok(())
    }

    /// The minimized value, or `None` when the field is to be removed.
    fn transformed(&self, value: &Value) -> Result<Option<Value>, MinimizeError> {
        let new = match self.transform {
            Transform::Drop => return Ok(None),
            Transform::Redact => Value::String(REDACTED.to_owned()),
            Transform::Pseudonymize => {
                let pseudonym = match value {
                    Value::String(s) => self.key.pseudonym(s.as_bytes()),
                    other => {
                        let text =
                            entente_core::canonical::to_canonical_vec(other).map_err(|_| {
                                self.error(
                                    "a value without a canonical JSON form",
                                    "a string or a JSON value with a canonical form",
                                )
                            })?;
                        self.key.pseudonym(&text)
                    }
                };
                Value::String(pseudonym)
            }
            Transform::TruncateIp => {
                let Value::String(s) = value else {
                    return Err(self.error(json_type(value), "a string holding an IP address"));
                };
                let ip: IpAddr = s.parse().map_err(|_| {
                    self.error("a string that is not an IP address", "an IPv4 or IPv6 address")
                })?;
                Value::String(truncate_ip(ip).to_string())
            }
            Transform::CoarsenTime => {
                let Value::String(s) = value else {
                    return Err(
                        self.error(json_type(value), "a string holding an RFC 3339 timestamp")
                    );
                };
                let coarse = coarsen_time(s).ok_or_else(|| {
                    self.error(
                        "a string that is not an RFC 3339 timestamp",
                        "an RFC 3339 timestamp with an offset",
                    )
                })?;
                Value::String(coarse)
            }
        };
        Ok(Some(new))
    }
}

/// The JSON type of a value, for messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Truncates an address: IPv4 to its /24, IPv6 to its /48. An IPv4-mapped IPv6 address
/// (`::ffff:a.b.c.d`) is an IPv4 address and is truncated to its /24, keeping the mapped form.
pub fn truncate_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(truncate_v4(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V6(truncate_v4(v4).to_ipv6_mapped()),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & (!0u128 << 80))),
        },
    }
}

fn truncate_v4(v4: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from_bits(v4.to_bits() & 0xffff_ff00)
}

/// Coarsens an RFC 3339 timestamp to the start of its hour, in UTC
/// (`2026-03-28T08:41:07.5+02:00` → `2026-03-28T06:00:00Z`). `None` if `text` is not a
/// timestamp with an offset.
pub fn coarsen_time(text: &str) -> Option<String> {
    let ts: jiff::Timestamp = text.parse().ok()?;
    let hour = ts
        .round(jiff::TimestampRound::new().smallest(jiff::Unit::Hour).mode(jiff::RoundMode::Floor))
        .ok()?;
    Some(hour.to_string())
}
