//! STIX 2.1 bundles and TAXII 2.1 envelopes: parsed, validated, each object's text kept.
//!
//! An object is kept as the exact JSON text it arrived in ([`StixObject::raw`]): unknown
//! properties, custom properties, extensions and custom object types round-trip byte for
//! byte. The properties the node needs are indexed beside it. Validation covers the common
//! properties (type, id, spec_version, created, modified, references, markings), the
//! required properties of every STIX 2.1 object type, timestamps, and indicator patterns
//! (STIX patterns checked for syntax by [`crate::pattern`]).

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::Digest as _;
use std::collections::HashMap;
use std::fmt;

/// The Entente property naming who may receive an object beyond what its TLP level alone
/// allows: party codes (`DE`) or users of a party (`NL:eva`). TLP:RED objects go only to
/// those named; TLP:AMBER objects to the recipient parties named (or, if none is named, the
/// parties of the collection).
pub const RECIPIENTS_PROPERTY: &str = "x_entente_recipients";

/// Most problems reported for one document (the rest are counted).
const MAX_PROBLEMS: usize = 100;

/// The STIX Domain Object types of STIX 2.1 with their required properties beyond the
/// common ones.
const SDO_REQUIRED: &[(&str, &[&str])] = &[
    ("attack-pattern", &["name"]),
    ("campaign", &["name"]),
    ("course-of-action", &["name"]),
    ("grouping", &["context", "object_refs"]),
    ("identity", &["name"]),
    ("incident", &["name"]),
    ("indicator", &["pattern", "pattern_type", "valid_from"]),
    ("infrastructure", &["name"]),
    ("intrusion-set", &["name"]),
    ("location", &[]),
    ("malware", &["is_family"]),
    ("malware-analysis", &["product"]),
    ("note", &["content", "object_refs"]),
    ("observed-data", &["first_observed", "last_observed", "number_observed"]),
    ("opinion", &["opinion", "object_refs"]),
    ("report", &["name", "published", "object_refs"]),
    ("threat-actor", &["name"]),
    ("tool", &["name"]),
    ("vulnerability", &["name"]),
    ("relationship", &["relationship_type", "source_ref", "target_ref"]),
    ("sighting", &["sighting_of_ref"]),
    ("language-content", &["object_ref", "contents"]),
    ("extension-definition", &["name", "schema", "version", "extension_types", "created_by_ref"]),
];

/// The STIX Cyber-observable Object types of STIX 2.1 with their required properties.
const SCO_REQUIRED: &[(&str, &[&str])] = &[
    ("artifact", &[]),
    ("autonomous-system", &["number"]),
    ("directory", &["path"]),
    ("domain-name", &["value"]),
    ("email-addr", &["value"]),
    ("email-message", &["is_multipart"]),
    ("file", &[]),
    ("ipv4-addr", &["value"]),
    ("ipv6-addr", &["value"]),
    ("mac-addr", &["value"]),
    ("mutex", &["name"]),
    ("network-traffic", &["protocols"]),
    ("process", &[]),
    ("software", &["name"]),
    ("url", &["value"]),
    ("user-account", &[]),
    ("windows-registry-key", &[]),
    ("x509-certificate", &[]),
];

/// Properties holding timestamps, checked wherever they appear at the top level.
const TIMESTAMP_PROPERTIES: &[&str] = &[
    "created",
    "modified",
    "valid_from",
    "valid_until",
    "first_seen",
    "last_seen",
    "first_observed",
    "last_observed",
    "published",
];

/// One STIX object: its original text and the properties the node indexes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StixObject {
    /// The object's JSON text exactly as received.
    pub raw: String,
    /// `type`.
    pub kind: String,
    /// `id`.
    pub id: String,
    /// `spec_version` (absent on some SCOs, which default to 2.1).
    pub spec_version: String,
    /// `created`, if any.
    pub created: Option<String>,
    /// `modified`, if any.
    pub modified: Option<String>,
    /// Marking definitions referenced by `object_marking_refs` and by granular markings.
    pub markings: Vec<String>,
    /// Whether some markings are granular (on parts of the object).
    pub granular: bool,
    /// The named recipients ([`RECIPIENTS_PROPERTY`]).
    pub recipients: Vec<String>,
}

impl StixObject {
    /// The version TAXII identifies the object by: `modified`, else `created`.
    pub fn version(&self) -> Option<&str> {
        self.modified.as_deref().or(self.created.as_deref())
    }

    /// The version as a sortable key (RFC 3339 with nine fractional digits), if any.
    pub fn version_key(&self) -> Option<String> {
        self.version().and_then(sort_key)
    }

    /// `sha256:` digest of the object's text.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(self.raw.as_bytes())))
    }
}

/// A timestamp as a sortable key (UTC, nine fractional digits), if it parses.
pub fn sort_key(ts: &str) -> Option<String> {
    ts.parse::<jiff::Timestamp>().ok().map(|t| format!("{t:.9}"))
}

/// One thing wrong with a document: where (object index and id, property) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The object's position in `objects`, if the problem is in one.
    pub index: Option<usize>,
    /// The object's id, if it has a readable one.
    pub id: Option<String>,
    /// The property, if the problem is in one.
    pub property: Option<String>,
    /// What is wrong and what the specification requires.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(i) = self.index {
            write!(f, "objects[{i}]")?;
            if let Some(id) = &self.id {
                write!(f, " ({id})")?;
            }
            f.write_str(": ")?;
        }
        if let Some(p) = &self.property {
            write!(f, "{p}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A document that is not valid STIX 2.1; nothing of it may be imported.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    /// The problems found (at most 100).
    pub problems: Vec<Problem>,
    /// How many more were found and not listed.
    pub more: usize,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        if self.more > 0 {
            write!(f, "; and {} more", self.more)?;
        }
        Ok(())
    }
}

fn whole(message: impl Into<String>) -> Invalid {
    Invalid {
        problems: vec![Problem { index: None, id: None, property: None, message: message.into() }],
        more: 0,
    }
}

/// A parsed bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The bundle's id.
    pub id: String,
    /// Its objects, duplicates (same id, version and content) removed.
    pub objects: Vec<StixObject>,
}

fn json_error(e: &serde_json::Error) -> Invalid {
    whole(format!("invalid JSON at line {} column {}: {e}", e.line(), e.column()))
}

type TopLevel<'a> = HashMap<String, &'a RawValue>;

fn top_level(text: &str) -> Result<TopLevel<'_>, Invalid> {
    if !text.trim_start().starts_with('{') {
        // Say what is wrong with the JSON first, if anything.
        serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| json_error(&e))?;
        return Err(whole("expected a JSON object at the top level"));
    }
    serde_json::from_str(text).map_err(|e| json_error(&e))
}

fn objects_of<'a>(top: &TopLevel<'a>) -> Result<Vec<&'a RawValue>, Invalid> {
    match top.get("objects") {
        None => Ok(Vec::new()),
        Some(raw) => serde_json::from_str::<Vec<&RawValue>>(raw.get())
            .map_err(|_| whole("objects: expected an array of STIX objects")),
    }
}

/// Parses and validates a STIX 2.1 bundle (`{"type": "bundle", "id": "bundle--…",
/// "objects": […]}`).
///
/// # Errors
/// Every problem found, each naming the object (index and id) and property.
pub fn parse_bundle(text: &str) -> Result<Bundle, Invalid> {
    let top = top_level(text)?;
    let str_of = |k: &str| top.get(k).and_then(|r| serde_json::from_str::<String>(r.get()).ok());
    if str_of("type").as_deref() != Some("bundle") {
        return Err(whole("type: expected \"bundle\" (a STIX 2.1 bundle)"));
    }
    let id = str_of("id").unwrap_or_default();
    if !is_identifier(&id, Some("bundle")) {
        return Err(whole(format!("id: expected `bundle--<UUID>`, found `{id}`")));
    }
    if let Some(v) = str_of("spec_version") {
        return Err(whole(format!(
            "spec_version: a STIX 2.1 bundle has none (found \"{v}\", a STIX 2.0 bundle?); each object carries \"spec_version\": \"2.1\""
        )));
    }
    let objects = validate_objects(&objects_of(&top)?)?;
    Ok(Bundle { id, objects })
}

/// Parses and validates a TAXII 2.1 envelope (`{"objects": […], "more": …, "next": …}`).
///
/// # Errors
/// Every problem found, each naming the object (index and id) and property.
pub fn parse_envelope(text: &str) -> Result<Vec<StixObject>, Invalid> {
    let top = top_level(text)?;
    if let Some(k) = top.keys().find(|k| !matches!(k.as_str(), "objects" | "more" | "next")) {
        return Err(whole(format!(
            "`{k}`: a TAXII 2.1 envelope has only `objects`, `more` and `next`"
        )));
    }
    validate_objects(&objects_of(&top)?)
}

fn validate_objects(raws: &[&RawValue]) -> Result<Vec<StixObject>, Invalid> {
    let mut problems = Vec::new();
    let mut out: Vec<StixObject> = Vec::with_capacity(raws.len());
    // (id, version) → position in `out`.
    let mut seen: HashMap<(String, Option<String>), usize> = HashMap::with_capacity(raws.len());
    let mut origin: Vec<usize> = Vec::with_capacity(raws.len());
    // Problems beyond the first MAX_PROBLEMS are counted, not kept: an envelope of millions
    // of bad objects costs no more memory than one of a hundred.
    let mut more = 0usize;
    for (i, raw) in raws.iter().enumerate() {
        if problems.len() > MAX_PROBLEMS {
            more += problems.len() - MAX_PROBLEMS;
            problems.truncate(MAX_PROBLEMS);
        }
        match validate_object(i, raw.get(), &mut problems) {
            Some(obj) => {
                let key = (obj.id.clone(), obj.version_key());
                if let Some(&j) = seen.get(&key) {
                    let same = serde_json::from_str::<Value>(&out[j].raw).ok()
                        == serde_json::from_str::<Value>(&obj.raw).ok();
                    if !same {
                        problems.push(Problem {
                            index: Some(i),
                            id: Some(obj.id.clone()),
                            property: None,
                            message: format!(
                                "same id and version as objects[{}] but different content; a new version needs a later `modified`",
                                origin[j]
                            ),
                        });
                    }
                    continue;
                }
                seen.insert(key, out.len());
                origin.push(i);
                out.push(obj);
            }
            None => continue,
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        more += problems.len().saturating_sub(MAX_PROBLEMS);
        problems.truncate(MAX_PROBLEMS);
        Err(Invalid { problems, more })
    }
}

/// Whether `s` is `<type>--<UUID>` (with the given type, if any).
pub fn is_identifier(s: &str, kind: Option<&str>) -> bool {
    let Some((t, uuid)) = s.split_once("--") else {
        return false;
    };
    if let Some(k) = kind
        && t != k
    {
        return false;
    }
    is_type_name(t) && is_uuid(uuid)
}

fn is_type_name(t: &str) -> bool {
    (3..=250).contains(&t.len())
        && t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !t.starts_with('-')
        && !t.ends_with('-')
        && !t.contains("--")
}

fn is_uuid(u: &str) -> bool {
    let parts: Vec<&str> = u.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12].iter().zip(&parts).all(|(n, p)| {
            p.len() == *n && p.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
}

/// Checks a STIX timestamp: RFC 3339 in UTC, `YYYY-MM-DDTHH:MM:SS[.s+]Z`.
///
/// # Errors
/// What is wrong, with the expected form.
pub fn check_timestamp(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let shape = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b.ends_with(b"Z")
        && (b.len() == 20 || (b[19] == b'.' && b.len() > 21));
    if !shape || s.parse::<jiff::Timestamp>().is_err() {
        return Err(format!(
            "`{s}` is not a STIX timestamp; expected RFC 3339 in UTC such as 2026-11-29T12:00:00.000Z"
        ));
    }
    Ok(())
}

fn validate_object(index: usize, text: &str, problems: &mut Vec<Problem>) -> Option<StixObject> {
    let start = problems.len();
    let mut report = |id: Option<&str>, property: Option<&str>, message: String| {
        problems.push(Problem {
            index: Some(index),
            id: id.map(str::to_owned),
            property: property.map(str::to_owned),
            message,
        });
    };
    let map: Map<String, Value> = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            report(None, None, format!("expected a JSON object ({e})"));
            return None;
        }
    };
    let get_str = |k: &str| map.get(k).and_then(Value::as_str);
    let kind = match get_str("type") {
        Some(t) if is_type_name(t) => t.to_owned(),
        Some(t) => {
            report(
                None,
                Some("type"),
                format!("`{t}` is not a STIX type name (3 to 250 of a-z, 0-9, `-`)"),
            );
            return None;
        }
        None => {
            report(None, Some("type"), "required; expected a string".into());
            return None;
        }
    };
    let id = match get_str("id") {
        Some(id) if is_identifier(id, Some(&kind)) => id.to_owned(),
        Some(id) => {
            report(Some(id), Some("id"), format!("expected `{kind}--<UUID>`, found `{id}`"));
            return None;
        }
        None => {
            report(None, Some("id"), format!("required; expected `{kind}--<UUID>`"));
            return None;
        }
    };
    let mut report = |property: &str, message: String| {
        problems.push(Problem {
            index: Some(index),
            id: Some(id.clone()),
            property: Some(property.to_owned()),
            message,
        });
    };
    let sco = SCO_REQUIRED.iter().find(|(t, _)| *t == kind).map(|(_, r)| *r);
    let sdo = SDO_REQUIRED.iter().find(|(t, _)| *t == kind).map(|(_, r)| *r);
    let is_marking = kind == "marking-definition";
    let is_custom = sco.is_none() && sdo.is_none() && !is_marking;
    let spec_version = match map.get("spec_version") {
        Some(Value::String(v)) if v == "2.1" => v.clone(),
        Some(v) => {
            report("spec_version", format!("expected \"2.1\", found {v}"));
            String::new()
        }
        None if sco.is_some() => "2.1".to_owned(),
        None => {
            report("spec_version", "required; expected \"2.1\"".into());
            String::new()
        }
    };
    for p in TIMESTAMP_PROPERTIES {
        match map.get(*p) {
            None => {}
            Some(Value::String(s)) => {
                if let Err(m) = check_timestamp(s) {
                    report(p, m);
                }
            }
            Some(v) => report(p, format!("expected a timestamp string, found {v}")),
        }
    }
    let needs_created = sdo.is_some() || is_marking;
    let needs_modified = sdo.is_some();
    if needs_created && !map.contains_key("created") {
        report("created", "required; expected a timestamp such as 2026-11-29T12:00:00.000Z".into());
    }
    if needs_modified && !map.contains_key("modified") {
        report("modified", "required; expected a timestamp not before `created`".into());
    }
    let created = get_str("created").map(str::to_owned);
    let modified = get_str("modified").map(str::to_owned);
    if let (Some(c), Some(m)) =
        (created.as_deref().and_then(sort_key), modified.as_deref().and_then(sort_key))
        && m < c
    {
        report("modified", "must not be earlier than `created`".into());
    }
    if let Some(required) = sdo.or(sco) {
        for p in required {
            if !map.contains_key(*p) {
                report(p, format!("required for a {kind}"));
            }
        }
    }
    if is_custom && !map.contains_key("spec_version") {
        // Reported above; custom objects follow the common rules only.
    }
    if kind == "indicator" {
        if let (Some(from), Some(until)) =
            (get_str("valid_from").and_then(sort_key), get_str("valid_until").and_then(sort_key))
            && until <= from
        {
            report("valid_until", "must be later than `valid_from`".into());
        }
        match (get_str("pattern_type"), map.get("pattern")) {
            (Some("stix"), Some(Value::String(p))) => {
                if let Err(e) = crate::pattern::check(p) {
                    report("pattern", format!("not a valid STIX pattern: {e}"));
                }
            }
            (_, Some(Value::String(_)) | None) => {}
            (_, Some(v)) => report("pattern", format!("expected a string, found {v}")),
        }
    }
    if is_marking
        && !map.contains_key("extensions")
        && !(map.contains_key("definition_type") && map.contains_key("definition"))
    {
        report(
            "definition",
            "a marking-definition needs `definition_type` and `definition`, or `extensions` (as TLP 2.0 markings have)"
                .into(),
        );
    }
    // References: `*_ref` and `*_refs` at the top level hold identifiers.
    for (k, v) in &map {
        if k.ends_with("_ref") {
            match v {
                Value::String(s) if is_identifier(s, None) => {}
                other => {
                    report(k, format!("expected an identifier `<type>--<UUID>`, found {other}"))
                }
            }
        } else if k.ends_with("_refs") {
            match v {
                Value::Array(items) if !items.is_empty() => {
                    for (j, item) in items.iter().enumerate() {
                        if !item.as_str().is_some_and(|s| is_identifier(s, None)) {
                            report(
                                &format!("{k}[{j}]"),
                                format!("expected an identifier `<type>--<UUID>`, found {item}"),
                            );
                        }
                    }
                }
                other => {
                    report(k, format!("expected a non-empty list of identifiers, found {other}"))
                }
            }
        }
    }
    let mut markings = Vec::new();
    if let Some(Value::Array(refs)) = map.get("object_marking_refs") {
        for r in refs {
            if let Some(s) = r.as_str() {
                if !is_identifier(s, Some("marking-definition")) {
                    report("object_marking_refs", format!("`{s}` is not a marking-definition id"));
                }
                markings.push(s.to_owned());
            }
        }
    }
    let mut granular = false;
    match map.get("granular_markings") {
        None => {}
        Some(Value::Array(items)) if !items.is_empty() => {
            for (j, g) in items.iter().enumerate() {
                let at = format!("granular_markings[{j}]");
                let marking_ref = g.get("marking_ref").and_then(Value::as_str);
                let lang = g.get("lang").and_then(Value::as_str);
                let selectors = g.get("selectors").and_then(Value::as_array);
                if marking_ref.is_none() == lang.is_none() {
                    report(&at, "expected exactly one of `marking_ref` and `lang`".into());
                }
                if !selectors.is_some_and(|s| !s.is_empty() && s.iter().all(Value::is_string)) {
                    report(
                        &format!("{at}.selectors"),
                        "required; expected a non-empty list of strings".into(),
                    );
                }
                if let Some(m) = marking_ref {
                    granular = true;
                    markings.push(m.to_owned());
                }
            }
        }
        Some(other) => {
            report("granular_markings", format!("expected a non-empty list, found {other}"))
        }
    }
    let mut recipients = Vec::new();
    match map.get(RECIPIENTS_PROPERTY) {
        None => {}
        Some(Value::Array(items)) => {
            for item in items {
                match item.as_str() {
                    Some(s) if is_recipient(s) => recipients.push(s.to_owned()),
                    _ => report(
                        RECIPIENTS_PROPERTY,
                        format!(
                            "expected party codes (`DE`) or users of a party (`NL:eva`), found {item}"
                        ),
                    ),
                }
            }
        }
        Some(other) => {
            report(RECIPIENTS_PROPERTY, format!("expected a list of strings, found {other}"))
        }
    }
    if problems.len() > start {
        return None;
    }
    Some(StixObject {
        raw: text.to_owned(),
        kind,
        id,
        spec_version,
        created,
        modified,
        markings,
        granular,
        recipients,
    })
}

fn is_recipient(s: &str) -> bool {
    let (party, user) = match s.split_once(':') {
        Some((p, u)) => (p, Some(u)),
        None => (s, None),
    };
    party.parse::<entente_core::PartyCode>().is_ok()
        && user.is_none_or(|u| entente_core::ids::check_identifier("user", u).is_ok())
}

/// Writes a TAXII envelope or a bundle body around objects' original texts:
/// `{<head>"objects":[raw,…]}`.
pub fn write_objects(head: &str, raws: &[&str]) -> String {
    let len: usize = raws.iter().map(|r| r.len() + 1).sum();
    let mut out = String::with_capacity(head.len() + len + 16);
    out.push('{');
    out.push_str(head);
    out.push_str("\"objects\":[");
    for (i, r) in raws.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r);
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const IND: &str = r#"{"type":"indicator","spec_version":"2.1","id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","created":"2026-11-01T10:00:00.000Z","modified":"2026-11-01T10:00:00.000Z","pattern":"[ipv4-addr:value = '198.51.100.7']","pattern_type":"stix","valid_from":"2026-11-01T10:00:00Z","x_custom":{"b":1,"a":[1.50,"é"]}}"#;

    fn bundle(objects: &[&str]) -> String {
        format!(
            r#"{{"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[{}]}}"#,
            objects.join(",")
        )
    }

    #[test]
    fn problems_beyond_the_limit_are_counted_not_kept() {
        // An envelope of 5,000 empty objects (each with several problems): the first 100
        // problems are listed, the rest counted, and the envelope is refused whole.
        let text = format!(r#"{{"objects":[{}]}}"#, vec!["{}"; 5000].join(","));
        let e = parse_envelope(&text).unwrap_err();
        assert_eq!(e.problems.len(), MAX_PROBLEMS);
        assert!(e.more >= 5000 - MAX_PROBLEMS, "{}", e.more);
        let one = parse_envelope(r#"{"objects":[{}]}"#).unwrap_err();
        let per_object = one.problems.len() + one.more;
        assert_eq!(e.problems.len() + e.more, 5000 * per_object);
        assert!(e.to_string().contains(&format!("and {} more", e.more)), "{e}");
    }

    #[test]
    fn keeps_original_text_and_indexes() {
        let custom = r#"{ "type" : "x-lantern-note", "id": "x-lantern-note--0b8a0c4c-4e1d-4a4e-9d4f-1f1d5b2d0c11", "spec_version": "2.1", "body": 12345678901234567890123.0000000000000000001 }"#;
        let b = parse_bundle(&bundle(&[IND, custom])).unwrap();
        assert_eq!(b.objects.len(), 2);
        assert_eq!(b.objects[0].raw, IND);
        assert_eq!(b.objects[1].raw, custom);
        assert_eq!(b.objects[0].version(), Some("2026-11-01T10:00:00.000Z"));
        assert_eq!(b.objects[1].kind, "x-lantern-note");
        let written = write_objects("", &[&b.objects[0].raw, &b.objects[1].raw]);
        assert!(written.contains(custom));
    }

    #[test]
    fn errors_name_object_and_property() {
        let missing = IND.replace(r#""pattern_type":"stix","#, "");
        let wrong_spec = IND.replace(r#""spec_version":"2.1""#, r#""spec_version":"2.0""#);
        let bad_pattern = IND.replace("[ipv4-addr:value = '198.51.100.7']", "[ipv4-addr:value = ");
        for (doc, needle) in [
            (bundle(&[&missing]), "objects[0] (indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f): pattern_type: required for a indicator"),
            (bundle(&[&wrong_spec]), "spec_version: expected \"2.1\", found \"2.0\""),
            (bundle(&[&bad_pattern]), "pattern: not a valid STIX pattern: at character 19"),
            ("{\"type\": \"bundle\",".to_owned(), "invalid JSON at line 1 column 18"),
            ("[1]".to_owned(), "top level"),
            (bundle(&["1"]), "objects[0]: expected a JSON object"),
            (bundle(&[&IND.replace("indicator--8e2e", "indicator--XXXX")]), "id: expected `indicator--<UUID>`"),
            (bundle(&[&IND.replace("2026-11-01T10:00:00Z", "2026-11-01 10:00")]), "valid_from: `2026-11-01 10:00` is not a STIX timestamp"),
            (
                bundle(&[IND, &IND.replace("198.51.100.7", "198.51.100.8")]),
                "objects[1] (indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f): same id and version as objects[0] but different content",
            ),
            (
                r#"{"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","spec_version":"2.0","objects":[]}"#.to_owned(),
                "STIX 2.0 bundle",
            ),
            (bundle(&[&IND.replace("\"x_custom\"", "\"created_by_ref\":\"me\",\"x_custom\"")]), "created_by_ref: expected an identifier"),
        ] {
            let e = parse_bundle(&doc).expect_err(&doc).to_string();
            assert!(e.contains(needle), "{e}\n  expected: {needle}");
        }
    }

    #[test]
    fn identical_duplicates_are_one_object() {
        let b = parse_bundle(&bundle(&[IND, IND])).unwrap();
        assert_eq!(b.objects.len(), 1);
    }

    #[test]
    fn envelope() {
        let objs = parse_envelope(&format!(r#"{{"objects":[{IND}]}}"#)).unwrap();
        assert_eq!(objs.len(), 1);
        let e = parse_envelope(&format!(r#"{{"objects":[{IND}],"type":"bundle"}}"#)).unwrap_err();
        assert!(e.to_string().contains("`type`"), "{e}");
    }

    proptest::proptest! {
        /// Any string property survives the round trip byte for byte.
        #[test]
        fn round_trip(s in ".{0,40}") {
            let v = serde_json::to_string(&s).unwrap();
            let obj = IND.replace(r#"{"b":1,"a":[1.50,"é"]}"#, &v);
            let b = parse_bundle(&bundle(&[&obj])).unwrap();
            proptest::prop_assert_eq!(&b.objects[0].raw, &obj);
        }
    }
}
