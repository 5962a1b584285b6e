//! The inputs each target starts from: the shipped data files, a package written by the node
//! (`seeds/package.tar`, see `docs/fuzzing.md`), and messages made here with the fixed keys,
//! so that a seed passes the checks its target makes and the fuzzer starts behind them.

use crate::{AGE_IDENTITY, WITNESS, now, party, sender_key, witness_key};
use entente_core::domain::{Conditions, DataCategory, OnwardTransfer, Purpose, RequestKind};
use entente_wire::MessageKind;
use entente_wire::envelope::{Ack, AckItem, AckStatus, Batch, Envelope};
use entente_wire::messages::{
    ConsentMessage, DatumMessage, EventRecord, PackageOffer, PsiEvaluationMessage, PsiKeyMessage,
    PsiQueryMessage, RequestEventMessage, RequestMessage,
};
use rand::SeedableRng as _;
use std::io::Write as _;
use std::str::FromStr as _;

/// A package written by the node's `build_package` (two items, four proven custody events);
/// made by `packages_tests::write_fuzz_seed` in entente-node.
pub(crate) const PACKAGE: &[u8] = include_bytes!("../seeds/package.tar");

macro_rules! data {
    ($path:literal) => {
        ($path, include_str!(concat!("../../../data/", $path)))
    };
}

/// The shipped lexicon: concepts, sources, then each jurisdiction's statutes.
pub(crate) const LEXICON: [(&str, &str); 10] = [
    data!("lexicon/concepts.toml"),
    data!("lexicon/sources.toml"),
    data!("lexicon/jurisdictions/au.toml"),
    data!("lexicon/jurisdictions/ca.toml"),
    data!("lexicon/jurisdictions/de.toml"),
    data!("lexicon/jurisdictions/fr.toml"),
    data!("lexicon/jurisdictions/jp.toml"),
    data!("lexicon/jurisdictions/nl.toml"),
    data!("lexicon/jurisdictions/uk.toml"),
    data!("lexicon/jurisdictions/us.toml"),
];

/// The shipped agreements.
pub(crate) const AGREEMENTS: [(&str, &str); 8] = [
    data!("agreements/cets-224.toml"),
    data!("agreements/ets-185.toml"),
    data!("agreements/eu-2023-1543.toml"),
    data!("agreements/jit-nl-de-template.toml"),
    data!("agreements/jit-lantern.toml"),
    data!("agreements/mou-deconfliction-pilot.toml"),
    data!("agreements/nl-us-mla.toml"),
    data!("agreements/nis2-csirt-cooperation.toml"),
];

const REGIMES: [(&str, &str); 9] = [
    data!("incidents/au-ransomware.toml"),
    data!("incidents/au-soci.toml"),
    data!("incidents/circia.toml"),
    data!("incidents/dora.toml"),
    data!("incidents/gdpr.toml"),
    data!("incidents/in-cert-in.toml"),
    data!("incidents/nis2.toml"),
    data!("incidents/sec-8k.toml"),
    data!("incidents/uk-nis.toml"),
];

const FACTS: [(&str, &str); 1] = [data!("incidents/examples/lantern-hospital.toml")];

const SCENARIOS: [(&str, &str); 4] = [
    data!("scenarios/lantern.toml"),
    data!("scenarios/stress-2021.toml"),
    data!("scenarios/stress-before-eevidence.toml"),
    data!("scenarios/stress-coverage.toml"),
];

const HOLIDAYS: [(&str, &str); 3] =
    [data!("holidays/DE.toml"), data!("holidays/NL.toml"), data!("holidays/US.toml")];

const SELECTORS: &str = "\
# The pilot's selectors, and one of each kind as investigators write them
ip:198.51.100.23
203.0.113.77
2001:DB8::1
email:Ops.Lantern+drop@Mail.Example
domain:update-lantern.example.
url:https://update-lantern.example/a/../gate?x=1
phone:+31 20 123 4567
btc:bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq
eth:0x52908400098527886E0F7030069857D2E4169EE7
hash:5E884898DA28047151D0E56F8DC6292773603D0D6AABBDD62A11EF721D1542D8
account:telegram:lantern_ops
";

fn texts(files: &[(&str, &str)]) -> Vec<Vec<u8>> {
    files.iter().map(|(_, t)| t.as_bytes().to_vec()).collect()
}

fn json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(v).map_err(|e| e.to_string())
}

/// The seeds of the target `name`.
///
/// # Errors
/// An unknown target, or a seed that could not be made (a bug in this module).
pub fn seeds(name: &str) -> Result<Vec<Vec<u8>>, String> {
    Ok(match name {
        "ustar" | "package" => vec![PACKAGE.to_vec()],
        "package_age" => vec![encrypted(PACKAGE)?],
        "ledger_entry" => package_entries()?,
        "entry_bundle" => {
            let entries = package_entries()?;
            let one = entente_core::ledger::encode_entry_bundle(entries.iter().map(Vec::as_slice))?;
            vec![one, Vec::new()]
        }
        "tile_path" => ["0/000", "0/x001/234.p/7", "1/000.p/3", "entries/x002/000", "entries/000.p/1"]
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect(),
        "checkpoint" => checkpoints()?,
        "envelope" => envelopes()?.iter().map(json).collect::<Result<_, _>>()?,
        "ack" => vec![json(&ack()?)?],
        "federation_batch" => vec![json(&Batch { envelopes: envelopes()? })?],
        "wire_message" => payloads()?
            .into_iter()
            .map(|(k, v)| {
                let mut s = format!("{}\n", k.as_str()).into_bytes();
                s.extend(json(&v)?);
                Ok(s)
            })
            .collect::<Result<_, String>>()?,
        "stix_bundle" => vec![stix_bundle().into_bytes()],
        "taxii_envelope" => vec![format!(r#"{{"objects":[{}],"more":false}}"#, stix_objects().join(",")).into_bytes()],
        "stix_pattern" => [
            "[ipv4-addr:value = '198.51.100.23']",
            "[file:hashes.'SHA-256' = '5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8'] AND [domain-name:value LIKE '%.example']",
            "([network-traffic:dst_port IN (80, 443)] OR [url:value MATCHES '^https?://']) FOLLOWEDBY [process:name = 'x'] WITHIN 300 SECONDS",
            "[x509-certificate:validity_not_before > t'2026-01-01T00:00:00Z'] REPEATS 3 TIMES START t'2026-01-01T00:00:00Z' STOP t'2026-02-01T00:00:00Z'",
        ]
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect(),
        "agreement" => texts(&AGREEMENTS),
        "lexicon" => (0..24u8)
            .map(|which| {
                // The file `which` replaces, as it is shipped.
                let file = match which % 3 {
                    0 => LEXICON[0].1,
                    1 => LEXICON[1].1,
                    _ => LEXICON[2 + usize::from(which / 3) % 8].1,
                };
                let mut s = vec![which];
                s.extend_from_slice(file.as_bytes());
                s
            })
            .collect(),
        "incident_regime" => texts(&REGIMES),
        "incident_facts" => texts(&FACTS),
        "scenario" => texts(&SCENARIOS),
        "holiday_calendar" => {
            let mut s = texts(&HOLIDAYS);
            s.push(format!("{}\n%%\n{}", HOLIDAYS[0].1, HOLIDAYS[1].1).into_bytes());
            s
        }
        "psi_selector" => {
            let mut s: Vec<Vec<u8>> = SELECTORS
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| l.as_bytes().to_vec())
                .collect();
            s.push(SELECTORS.as_bytes().to_vec());
            s
        }
        "psi_wire" => psi_messages()?.0,
        other => return Err(format!("no fuzz target `{other}`")),
    })
}

fn encrypted(plain: &[u8]) -> Result<Vec<u8>, String> {
    let identity = age::x25519::Identity::from_str(AGE_IDENTITY).map_err(|e| e.to_string())?;
    let recipient = identity.to_public();
    let enc = age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut w = enc.wrap_output(&mut out).map_err(|e| e.to_string())?;
    w.write_all(plain).map_err(|e| e.to_string())?;
    w.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

/// The ledger entries the seed package proves its custody events with.
fn package_entries() -> Result<Vec<Vec<u8>>, String> {
    let mut r = entente_evidence::ustar::Reader::new(PACKAGE);
    while let Some((name, _)) = r.next_member().map_err(|e| e.to_string())? {
        let mut bytes = Vec::new();
        std::io::copy(&mut r.data(), &mut bytes).map_err(|e| e.to_string())?;
        if name == "manifest.json" {
            let m: entente_evidence::package::Manifest =
                serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            return Ok(m
                .items
                .iter()
                .flat_map(|i| i.custody.iter())
                .filter_map(|p| p.ledger.as_ref().map(|l| l.entry.clone().into_bytes()))
                .collect());
        }
    }
    Err("the seed package has no manifest".into())
}

fn checkpoints() -> Result<Vec<Vec<u8>>, String> {
    use entente_core::{ledger, witness};
    let key = sender_key();
    let de = party("DE").ok_or("party")?;
    let origin = ledger::origin_for(&de, &key.verifying_key());
    let signer = ledger::LogSigner::new(&origin, &key);
    let mut out = Vec::new();
    for size in [1u64, 7, 256, 1_000_001] {
        let note = signer
            .sign_checkpoint(size, ledger::Hash([u8::try_from(size % 251).unwrap_or(0); 32]))
            .map_err(|e| e.to_string())?;
        let line = witness::cosign(&note, WITNESS, &witness_key(), 1_796_112_000)
            .map_err(|e| e.to_string())?;
        out.push(witness::add_cosignatures(&note, &[line]));
        out.push(note);
    }
    out.push(witness::verifier_key(WITNESS, &witness_key().verifying_key()).into_bytes());
    Ok(out)
}

fn conditions() -> Result<Conditions, String> {
    Ok(Conditions {
        originator: party("DE").ok_or("party")?,
        agreement: "cets-185".into(),
        purposes: vec![Purpose::CriminalInvestigation],
        retain_until: Some("2027-12-01T00:00:00Z".into()),
        onward_transfer: OnwardTransfer::ConsentOfOriginator,
        commercial_use_prohibited: true,
        conditions: vec!["specialty".into()],
    })
}

/// One payload of each kind that is simple to make here, and the PSI messages.
fn stamp(text: &str) -> Result<entente_core::Stamp, String> {
    text.parse().map_err(|e: entente_core::stamp::InvalidStamp| e.to_string())
}

fn payloads() -> Result<Vec<(MessageKind, serde_json::Value)>, String> {
    let v = |x: Result<serde_json::Value, serde_json::Error>| x.map_err(|e| e.to_string());
    let (de, nl) = (party("DE").ok_or("party")?, party("NL").ok_or("party")?);
    let mut content = serde_json::Map::new();
    content.insert("ip".into(), "198.51.100.23".into());
    let mut out = vec![
        (
            MessageKind::Datum,
            v(serde_json::to_value(DatumMessage {
                id: "de-c2-logs-1".into(),
                case_id: "LANTERN".into(),
                category: DataCategory::Traffic,
                concepts: vec!["illegal-access".into()],
                purpose: Purpose::CriminalInvestigation,
                content,
                conditions: conditions()?,
                minimized: vec!["subscriber".into()],
            }))?,
        ),
        (
            MessageKind::Consent,
            v(serde_json::to_value(ConsentMessage {
                datum_id: "D-1".into(),
                recipient: de.clone(),
            }))?,
        ),
        (
            MessageKind::Request,
            v(serde_json::to_value(RequestMessage {
                id: "NL-REQ-1".into(),
                case_id: "LANTERN".into(),
                kind: RequestKind::Production,
                agreement: "ets-185".into(),
                requesting: nl.clone(),
                requested: de.clone(),
                emergency: false,
                created_at: stamp("2026-12-01T08:00:00Z")?,
                provisions: vec!["nl-sr-138ab".into()],
                events: vec![EventRecord {
                    seq: 0,
                    event: "submit".into(),
                    grounds: vec![],
                    at: stamp("2026-12-01T08:00:00Z")?,
                }],
            }))?,
        ),
        (
            MessageKind::RequestEvent,
            v(serde_json::to_value(RequestEventMessage {
                id: "NL-REQ-1".into(),
                record: EventRecord {
                    seq: 1,
                    event: "refuse".into(),
                    grounds: vec!["dual-criminality".into()],
                    at: stamp("2026-12-02T08:00:00Z")?,
                },
            }))?,
        ),
        (
            MessageKind::PackageOffer,
            v(serde_json::to_value(PackageOffer {
                sha256: "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8".into(),
                size: 10_240,
                file_name: "lantern.tar".into(),
                manifest_sha256: "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
                    .into(),
                request: Some("NL-REQ-1".into()),
                items: vec!["de-item-1".into()],
            }))?,
        ),
    ];
    let (_, query, evaluation, chunk, public_key) = psi_messages()?;
    out.push((
        MessageKind::PsiQuery,
        v(serde_json::to_value(PsiQueryMessage {
            id: "NL-12".into(),
            agreement: "mou-deconfliction-pilot".into(),
            case_ref: "LANTERN".into(),
            query,
        }))?,
    ));
    out.push((
        MessageKind::PsiEvaluation,
        v(serde_json::to_value(PsiEvaluationMessage {
            query: "NL-12".into(),
            agreement: "mou-deconfliction-pilot".into(),
            evaluation: Some(evaluation),
            refused: None,
        }))?,
    ));
    out.push((
        MessageKind::PsiKey,
        v(serde_json::to_value(PsiKeyMessage {
            agreement: "mou-deconfliction-pilot".into(),
            public_key,
            rotated_at: now(),
            chunk,
        }))?,
    ));
    Ok(out)
}

fn envelopes() -> Result<Vec<Envelope>, String> {
    let (de, nl) = (party("DE").ok_or("party")?, party("NL").ok_or("party")?);
    payloads()?
        .into_iter()
        .enumerate()
        .map(|(i, (kind, payload))| {
            Envelope::seal(
                &sender_key(),
                de.clone(),
                nl.clone(),
                kind,
                i as u64 + 1,
                payload,
                now(),
            )
            .map_err(|e| e.to_string())
        })
        .collect()
}

fn ack() -> Result<Ack, String> {
    let (de, nl) = (party("DE").ok_or("party")?, party("NL").ok_or("party")?);
    let items = vec![AckItem {
        id: "NL-DE-1".into(),
        seq: 1,
        status: AckStatus::Applied,
        ledger_index: 41,
        replayed: false,
        reason: None,
        next_seq: None,
    }];
    // The acknowledging node (DE in the ack target) signs with the fixed key.
    Ack::seal(&sender_key(), de, nl, items, now()).map_err(|e| e.to_string())
}

type PsiMessages = (
    Vec<Vec<u8>>,
    entente_psi::QueryMessage,
    entente_psi::EvaluationMessage,
    entente_psi::SetChunk,
    String,
);

/// A labelled query, its evaluation and the first set chunk, made with a seeded generator.
fn psi_messages() -> Result<PsiMessages, String> {
    use entente_psi::*;
    let e = |x: PsiError| x.to_string();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let key = HolderKey::from_seed(&[9; 32]).map_err(e)?;
    let sel = |l: &str| selector::parse_line(l, EmailRules::default()).map_err(|x| x.to_string());
    let label = Label { case_reference: "DE-1".into(), contact: "cyber-desk@bka.example".into() };
    let entries = group_holdings([(sel("ip:203.0.113.7")?, label)]);
    let limits = Limits::default();
    let set = key.prepare_set(Mode::Labelled, &entries, 10, &mut rng, |_, _| {}).map_err(e)?;
    let holder = *key.public_key();
    let mine = [sel("203.0.113.7")?, sel("198.51.100.1")?];
    let (_, query) = LabelledQuery::new(&holder, &mine, 4, &limits, &mut rng).map_err(e)?;
    let evaluation = key.evaluate(&set, &query, &limits, &mut rng).map_err(e)?;
    let chunk = set.chunks(3).into_iter().next().ok_or("no chunk")?;
    let mut seeds = Vec::new();
    for (tag, bytes) in [
        (0u8, query.to_json().map_err(|x| x.to_string())?),
        (1, evaluation.to_json().map_err(|x| x.to_string())?),
        (2, chunk.to_json().map_err(|x| x.to_string())?),
    ] {
        let mut s = vec![tag];
        s.extend(bytes);
        seeds.push(s);
    }
    let public_key = holder.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    Ok((seeds, query, evaluation, chunk, public_key))
}

fn stix_objects() -> Vec<String> {
    use entente_intel::tlp::Tlp;
    let indicator = |n: u32, pattern: &str| {
        format!(
            r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--1a7e0000-0000-4000-8000-{n:012}","created":"2026-11-26T09:00:00.000Z","modified":"2026-11-26T09:00:00.000Z","name":"LANTERN","indicator_types":["malicious-activity"],"pattern":"{pattern}","pattern_type":"stix","valid_from":"2026-11-26T09:00:00Z","object_marking_refs":["{}"]}}"#,
            Tlp::Amber.marking_id()
        )
    };
    vec![
        indicator(1, "[ipv4-addr:value = '198.51.100.23']"),
        indicator(2, "[domain-name:value = 'update-lantern.example']"),
        r#"{"type":"ipv4-addr","id":"ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd","value":"198.51.100.23"}"#.into(),
        Tlp::Amber.marking_definition(),
    ]
}

fn stix_bundle() -> String {
    format!(
        r#"{{"type":"bundle","id":"bundle--1a7e0000-0000-4000-8000-000000000000","objects":[{}]}}"#,
        stix_objects().join(",")
    )
}
