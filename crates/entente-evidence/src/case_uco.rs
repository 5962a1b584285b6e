//! CASE/UCO export: the items of a package as a CASE 1.x / UCO 1.x JSON-LD graph.
//!
//! Written with `serde_json` against a fixed `@context` (no JSON-LD processor): each item is
//! a `uco-observable:File` with a `FileFacet` (name, size) and a `ContentDataFacet` (SHA-256,
//! size); a `case-investigation:ProvenanceRecord` holds it under its exhibit number (the item
//! id); every custody event is a `case-investigation:InvestigativeAction` with its time,
//! performer, the legal basis and the provenance record as object; the case is a
//! `case-investigation:Investigation`. Node identifiers are `kb:` IRIs ending in UUIDs derived
//! from the item id and the event digest, so the same package always gives the same graph.

use crate::package::{PackageItem, SenderInfo};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The fixed JSON-LD context.
pub fn context() -> Value {
    json!({
        "kb": "http://example.org/kb/",
        "case-investigation": "https://ontology.caseontology.org/case/investigation/",
        "uco-action": "https://ontology.unifiedcyberontology.org/uco/action/",
        "uco-core": "https://ontology.unifiedcyberontology.org/uco/core/",
        "uco-identity": "https://ontology.unifiedcyberontology.org/uco/identity/",
        "uco-observable": "https://ontology.unifiedcyberontology.org/uco/observable/",
        "uco-types": "https://ontology.unifiedcyberontology.org/uco/types/",
        "xsd": "http://www.w3.org/2001/XMLSchema#"
    })
}

/// A UUID-shaped identifier derived from `parts` (the SHA-256 of them, version nibble 5 and
/// RFC 4122 variant set).
fn uuid(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let mut b: [u8; 16] = [0; 16];
    b.copy_from_slice(&h.finalize()[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &x[..8], &x[8..12], &x[12..16], &x[16..20], &x[20..])
}

fn id(kind: &str, parts: &[&str]) -> String {
    format!("kb:{kind}-{}", uuid(parts))
}

fn datetime(s: &str) -> Value {
    json!({"@type": "xsd:dateTime", "@value": s})
}

/// The CASE/UCO graph of a package's items, as pretty JSON bytes.
///
/// # Errors
/// If serialisation fails.
pub fn export(
    sender: &SenderInfo,
    case_id: &str,
    items: &[PackageItem],
) -> Result<Vec<u8>, String> {
    let mut graph = Vec::new();
    let mut identities = std::collections::BTreeMap::new();
    let mut org = |party: &str| -> String {
        let oid = id("Organization", &["party", party]);
        identities.entry(party.to_owned()).or_insert_with(|| {
            json!({
                "@id": oid,
                "@type": "uco-identity:Organization",
                "uco-core:name": format!("Entente node {party}"),
            })
        });
        oid
    };
    let sender_org = org(sender.party.as_str());
    let mut records = Vec::new();
    for item in items {
        let file = id("File", &["file", &item.id, &item.sha256]);
        let file_facet = id("FileFacet", &["file-facet", &item.id, &item.sha256]);
        let content_facet = id("ContentDataFacet", &["content-facet", &item.id, &item.sha256]);
        let hash = id("Hash", &["hash", &item.id, &item.sha256]);
        let record = id("ProvenanceRecord", &["provenance", &item.id, &item.sha256]);
        let size = i64::try_from(item.size).map_err(|e| e.to_string())?;
        let mut facet = json!({
            "@id": file_facet,
            "@type": "uco-observable:FileFacet",
            "uco-observable:sizeInBytes": size,
        });
        if let Some(name) = &item.file_name {
            facet["uco-observable:fileName"] = json!(name);
        }
        graph.push(json!({
            "@id": hash,
            "@type": "uco-types:Hash",
            "uco-types:hashMethod": "SHA256",
            "uco-types:hashValue": {"@type": "xsd:hexBinary", "@value": item.sha256},
        }));
        graph.push(facet);
        graph.push(json!({
            "@id": content_facet,
            "@type": "uco-observable:ContentDataFacet",
            "uco-observable:hash": [{"@id": hash}],
            "uco-observable:sizeInBytes": size,
            "uco-observable:mimeType": item.media_type,
        }));
        graph.push(json!({
            "@id": file,
            "@type": "uco-observable:File",
            "uco-core:description": item.description,
            "uco-core:hasFacet": [{"@id": file_facet}, {"@id": content_facet}],
        }));
        graph.push(json!({
            "@id": record,
            "@type": "case-investigation:ProvenanceRecord",
            "case-investigation:exhibitNumber": item.id,
            "uco-core:object": [{"@id": file}],
        }));
        records.push(json!({"@id": record}));
        for p in &item.custody {
            let e = &p.event;
            let performer = org(e.party.as_str());
            let mut action = json!({
                "@id": id("InvestigativeAction", &["custody", &item.id, &e.digest()]),
                "@type": "case-investigation:InvestigativeAction",
                "uco-core:name": e.event.as_str(),
                "uco-core:description": format!(
                    "{} by {} at {}: {}{}",
                    e.event,
                    e.actor,
                    e.party,
                    e.reason,
                    e.legal_basis.as_deref().map(|b| format!(" (legal basis {b})")).unwrap_or_default()
                ),
                "uco-action:startTime": datetime(&e.at),
                "uco-action:performer": {"@id": performer},
                "uco-action:object": [{"@id": record}],
            });
            if e.event == crate::CustodyKind::Acquired {
                action["uco-action:result"] = json!([{"@id": record}]);
            }
            graph.push(action);
        }
    }
    graph.push(json!({
        "@id": id("Investigation", &["case", sender.party.as_str(), case_id]),
        "@type": "case-investigation:Investigation",
        "uco-core:name": case_id,
        "uco-core:description": format!("evidence sent by {} ({})", sender.party, sender.name),
        "uco-core:object": records,
    }));
    let _ = sender_org;
    graph.extend(identities.into_values());
    let doc = json!({"@context": context(), "@graph": graph});
    serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string())
}
