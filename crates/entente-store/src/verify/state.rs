//! The state tables checked against the ledger (`entente ledger verify --state`).
//!
//! Every row the gate writes carries `ledger_index`, the entry that wrote it, and that entry
//! carries the digests of what the command wrote. The check reads each row, rebuilds what its
//! command recorded from the row alone, and compares:
//!
//! - the entry exists, is a permit, records one of the actions that write this table, and
//!   names the row among its subjects;
//! - each digest the entry holds for this table (a case's title and concepts, a user's role
//!   and token hash, a datum's content, a peer's pins, a member's agreement, a request's
//!   terms, a custody event, a privilege status, a maintenance event's detail) equals the
//!   digest of the row's columns (consents, request events, complaints and collections are
//!   checked by entry, action and subject: their entries' digests are of messages or keyed
//!   hashes the row does not hold);
//! - what a row says about itself holds (a datum's content hashes to its `content_sha256`, a
//!   custody event's bytes to its digest and its item's hash, a peer's certificate to its
//!   pin, a STIX object's text to its digest).
//!
//! A row changed in the database behind the gate's back (a title rewritten, a role raised to
//! admin, a token hash swapped, a datum's content altered) is named with its table, its key
//! and what differs. Entries written before a command recorded a digest (user entries before
//! they carried the role) are counted as checked by entry and subject only, never as sound.
//!
//! `ledger_subjects`, the index of which entries name which subject (the case timeline reads
//! it), is derived from the entries alone: every subject of every entry has its row and no row
//! names an entry that does not name it.
//!
//! Blobs are checked by the node (`entente_node::scrub`), which holds the keys.

use crate::store::{Store, StoreError, to_i64, to_u64};
use entente_core::canonical::{canonical_digest, sha256_tagged};
use entente_core::ledger::LedgerEntry;
use entente_core::{Action, Outcome, Subject, SubjectKind};
use serde_json::Value;
use sqlx::Row as _;
use std::collections::HashMap;

/// One state table's check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableCheck {
    /// Table name.
    pub table: &'static str,
    /// Rows read.
    pub rows: u64,
    /// Rows whose entry predates the digest the check compares: checked by entry, action
    /// and subject only.
    pub entry_only: u64,
}

/// A row that differs from what the ledger recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDifference {
    /// Table name.
    pub table: &'static str,
    /// The row's key, as `column=value[,column=value]`.
    pub row: String,
    /// The ledger entry the row names.
    pub ledger_index: u64,
    /// What differs, in words.
    pub what: String,
}

impl std::fmt::Display for StateDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} (ledger entry {}): {}", self.table, self.row, self.ledger_index, self.what)
    }
}

/// The outcome of a state check: what was read and every row that differs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateReport {
    /// One line per table, in the order checked.
    pub tables: Vec<TableCheck>,
    /// Every difference found (empty when the state agrees with the ledger).
    pub differences: Vec<StateDifference>,
}

impl StateReport {
    /// Rows read over all tables.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

/// What one row says its entry recorded.
struct Expected {
    row: String,
    index: u64,
    actions: &'static [Action],
    /// The subject the entry must name (`None`: the row's key is not a subject, as for
    /// maintenance events whose subject is a digest).
    subject: Option<Subject>,
    /// Payload name → the digest the row's columns give (or why they give none).
    digests: Vec<(&'static str, Result<String, String>)>,
    /// Differences the row shows on its own.
    intrinsic: Vec<String>,
    /// When true, a missing payload digest is a difference; when false, the entry predates
    /// the digest and the row counts as checked by entry only.
    digest_required: bool,
}

/// A state table the check reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// `users`.
    Users,
    /// `cases`.
    Cases,
    /// `case_members`.
    CaseMembers,
    /// `peers`.
    Peers,
    /// `requests`.
    Requests,
    /// `data_items`.
    DataItems,
    /// `evidence_custody`.
    EvidenceCustody,
    /// `intel_objects`.
    IntelObjects,
    /// `evidence_privilege`.
    EvidencePrivilege,
    /// `consents`.
    Consents,
    /// `request_events`.
    RequestEvents,
    /// `complaints`.
    Complaints,
    /// `intel_collections`.
    IntelCollections,
    /// `maintenance_events`.
    MaintenanceEvents,
}

impl Table {
    /// Every table, in the order checked.
    pub const ALL: [Table; 14] = [
        Table::Users,
        Table::Cases,
        Table::CaseMembers,
        Table::Peers,
        Table::Requests,
        Table::DataItems,
        Table::EvidenceCustody,
        Table::IntelObjects,
        Table::EvidencePrivilege,
        Table::Consents,
        Table::RequestEvents,
        Table::Complaints,
        Table::IntelCollections,
        Table::MaintenanceEvents,
    ];

    /// The table's name in the schema.
    pub fn name(self) -> &'static str {
        match self {
            Table::Users => "users",
            Table::Cases => "cases",
            Table::CaseMembers => "case_members",
            Table::Peers => "peers",
            Table::Requests => "requests",
            Table::DataItems => "data_items",
            Table::EvidenceCustody => "evidence_custody",
            Table::IntelObjects => "intel_objects",
            Table::EvidencePrivilege => "evidence_privilege",
            Table::Consents => "consents",
            Table::RequestEvents => "request_events",
            Table::Complaints => "complaints",
            Table::IntelCollections => "intel_collections",
            Table::MaintenanceEvents => "maintenance_events",
        }
    }

    /// What each row of the table says its entry recorded.
    async fn expected(self, store: &Store, own: &str) -> Result<Vec<Expected>, StoreError> {
        match self {
            Table::Users => users(store).await,
            Table::Cases => cases(store).await,
            Table::CaseMembers => case_members(store).await,
            Table::Peers => peers(store).await,
            Table::Requests => requests(store, own).await,
            Table::DataItems => data_items(store).await,
            Table::EvidenceCustody => custody(store).await,
            Table::IntelObjects => intel_objects(store).await,
            Table::EvidencePrivilege => privilege(store).await,
            Table::Consents => consents(store).await,
            Table::RequestEvents => request_events(store).await,
            Table::Complaints => complaints(store).await,
            Table::IntelCollections => intel_collections(store).await,
            Table::MaintenanceEvents => maintenance_events(store).await,
        }
    }
}

/// Checks every state table against the ledger. `progress(table, done, total)` is called
/// after each table.
///
/// # Errors
/// Database errors only; a difference is a finding, in the report.
pub async fn verify_state(
    store: &Store,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<StateReport, StoreError> {
    // The node's party: as initialised, else as its first entry says.
    let own = match store.meta("party").await? {
        Some(p) => p,
        None => match store.entries(0, 1).await?.first() {
            Some((_, bytes)) => {
                LedgerEntry::decode(bytes).map(|e| e.node.to_string()).unwrap_or_default()
            }
            None => String::new(),
        },
    };
    let mut report = StateReport::default();
    let total = Table::ALL.len() as u64;
    for (n, table) in Table::ALL.into_iter().enumerate() {
        let expected = table.expected(store, &own).await?;
        let check = compare(store, table.name(), expected, &mut report.differences).await?;
        report.tables.push(check);
        progress(table.name(), n as u64 + 1, total);
    }
    report.tables.push(subject_index(store, &mut report.differences).await?);
    progress("ledger_subjects", total, total);
    Ok(report)
}

/// `ledger_subjects` against the entries it is derived from: every subject of every entry
/// has its row, and no row names an entry that does not name it. A row deleted behind the
/// gate's back would hide an entry from a case's timeline; a row added would show one there
/// that is not about the case. Before the first writer after the migration has indexed the
/// earlier entries (`ledger_subjects_upto` empty), nothing has read the table yet: it is not
/// checked.
async fn subject_index(
    store: &Store,
    out: &mut Vec<StateDifference>,
) -> Result<TableCheck, StoreError> {
    const CHUNK: u64 = 10_000;
    const TABLE: &str = "ledger_subjects";
    let built: Option<i64> =
        sqlx::query_scalar("SELECT size FROM ledger_subjects_upto WHERE id = 1")
            .fetch_one(&store.pool)
            .await?;
    let mut check = TableCheck { table: TABLE, rows: 0, entry_only: 0 };
    let Some(built) = built else { return Ok(check) };
    // Read after `built`: entries below it are committed, and indexed with them.
    let (size, _) = store.ledger_head().await?;
    if to_u64(built)? > size {
        out.push(StateDifference {
            table: TABLE,
            row: "id=1".into(),
            ledger_index: size,
            what: format!("says it indexed {built} earlier entries, but the ledger holds {size}"),
        });
    }
    let mut from = 0;
    while from < size {
        let to = (from + CHUNK).min(size);
        let mut want: std::collections::BTreeSet<(String, u64)> = std::collections::BTreeSet::new();
        for (index, bytes) in store.entries(from, to).await? {
            // An entry that does not decode is `ledger verify`'s finding; nothing to index.
            if let Ok(entry) = LedgerEntry::decode(&bytes) {
                want.extend(entry.subjects.iter().map(|s| (s.to_string(), index)));
            }
        }
        let rows =
            sqlx::query("SELECT subject, idx FROM ledger_subjects WHERE idx >= $1 AND idx < $2")
                .bind(to_i64(from)?)
                .bind(to_i64(to)?)
                .fetch_all(&store.pool)
                .await?;
        let mut have = std::collections::BTreeSet::new();
        for r in &rows {
            have.insert((r.try_get::<String, _>(0)?, to_u64(r.try_get(1)?)?));
        }
        check.rows += have.len() as u64;
        for (subject, index) in want.difference(&have) {
            out.push(StateDifference {
                table: TABLE,
                row: format!("subject={subject},idx={index}"),
                ledger_index: *index,
                what: "missing: the entry names this subject".into(),
            });
        }
        for (subject, index) in have.difference(&want) {
            out.push(StateDifference {
                table: TABLE,
                row: format!("subject={subject},idx={index}"),
                ledger_index: *index,
                what: "the entry does not name this subject".into(),
            });
        }
        from = to;
    }
    Ok(check)
}

/// Compares one table's rows with their entries.
async fn compare(
    store: &Store,
    table: &'static str,
    expected: Vec<Expected>,
    out: &mut Vec<StateDifference>,
) -> Result<TableCheck, StoreError> {
    let mut check = TableCheck { table, rows: expected.len() as u64, entry_only: 0 };
    let mut indexes: Vec<u64> = expected.iter().map(|e| e.index).collect();
    indexes.sort_unstable();
    indexes.dedup();
    let entries = entries_at(store, &indexes).await?;
    for e in expected {
        let mut what = e.intrinsic;
        let mut entry_only = false;
        match entries.get(&e.index) {
            None => what.push(format!("ledger entry {} does not exist", e.index)),
            Some(Err(msg)) => what.push(format!("ledger entry {} does not decode: {msg}", e.index)),
            Some(Ok(entry)) => {
                if entry.decision != Outcome::Permit {
                    what.push(format!(
                        "ledger entry {} is a denial of `{}`",
                        e.index, entry.action
                    ));
                }
                if !e.actions.contains(&entry.action) {
                    let names: Vec<&str> = e.actions.iter().map(|a| a.as_str()).collect();
                    what.push(format!(
                        "ledger entry {} records `{}`, which does not write this table (expected {})",
                        e.index,
                        entry.action,
                        names.join(" or ")
                    ));
                }
                if let Some(subject) = e.subject.as_ref().filter(|s| !entry.subjects.contains(s)) {
                    what.push(format!(
                        "ledger entry {} is not about {} `{}`",
                        e.index,
                        subject.kind().as_str(),
                        subject.id()
                    ));
                }
                for (name, computed) in &e.digests {
                    match (entry.payload_hashes.get(*name), computed) {
                        (None, _) if e.digest_required => what.push(format!(
                            "ledger entry {} holds no `{name}` digest to check the row against",
                            e.index
                        )),
                        (None, _) => entry_only = true,
                        (Some(_), Err(why)) => what.push(format!("`{name}`: {why}")),
                        (Some(recorded), Ok(c)) if recorded != c => what.push(format!(
                            "`{name}` differs from what the ledger recorded (recorded {recorded}, the row gives {c})"
                        )),
                        (Some(_), Ok(_)) => {}
                    }
                }
            }
        }
        if what.is_empty() {
            if entry_only {
                check.entry_only += 1;
            }
        } else {
            out.extend(what.into_iter().map(|w| StateDifference {
                table,
                row: e.row.clone(),
                ledger_index: e.index,
                what: w,
            }));
        }
    }
    Ok(check)
}

/// The entries at `indexes`, decoded (or why not).
async fn entries_at(
    store: &Store,
    indexes: &[u64],
) -> Result<HashMap<u64, Result<LedgerEntry, String>>, StoreError> {
    const CHUNK: usize = 500;
    let mut out = HashMap::with_capacity(indexes.len());
    for chunk in indexes.chunks(CHUNK) {
        let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        // The statement is fixed text and `$N` bind parameters, no value in it.
        let sql = format!("SELECT idx, entry FROM ledger_entries WHERE idx IN ({list})");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for i in chunk {
            q = q.bind(to_i64(*i)?);
        }
        for row in q.fetch_all(&store.pool).await? {
            let idx = to_u64(row.try_get(0)?)?;
            let bytes: Vec<u8> = row.try_get(1)?;
            out.insert(idx, LedgerEntry::decode(&bytes).map_err(|e| e.to_string()));
        }
    }
    Ok(out)
}

fn digest_of(v: &Value) -> Result<String, String> {
    canonical_digest(v).map_err(|e| format!("cannot be encoded: {e}"))
}

fn json_column(name: &str, text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("column {name} is not JSON: {e}"))
}

async fn users(store: &Store) -> Result<Vec<Expected>, StoreError> {
    let rows =
        sqlx::query("SELECT name, role, token_sha256, ledger_index FROM users ORDER BY name")
            .fetch_all(&store.pool)
            .await?;
    rows.iter()
        .map(|r| {
            let (name, role, token): (String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            Ok(Expected {
                row: format!("name={name}"),
                index: to_u64(r.try_get(3)?)?,
                actions: &[Action::UserAdd],
                subject: Some(Subject::new(SubjectKind::User, &name)),
                digests: vec![("user", digest_of(&crate::users::payload(&name, &role, &token)))],
                intrinsic: Vec::new(),
                digest_required: false,
            })
        })
        .collect()
}

async fn cases(store: &Store) -> Result<Vec<Expected>, StoreError> {
    let rows = sqlx::query("SELECT id, title, concepts, ledger_index FROM cases ORDER BY id")
        .fetch_all(&store.pool)
        .await?;
    rows.iter()
        .map(|r| {
            let (id, title, concepts): (String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let payload = json_column("concepts", &concepts)
                .and_then(|c| digest_of(&crate::cases::case_payload(&id, &title, &c)));
            Ok(Expected {
                row: format!("id={id}"),
                index: to_u64(r.try_get(3)?)?,
                actions: &[Action::CaseOpen],
                subject: Some(Subject::new(SubjectKind::Case, &id)),
                digests: vec![("case", payload)],
                intrinsic: Vec::new(),
                digest_required: true,
            })
        })
        .collect()
}

async fn case_members(store: &Store) -> Result<Vec<Expected>, StoreError> {
    let rows = sqlx::query(
        "SELECT case_id, party, role, agreement, ledger_index FROM case_members ORDER BY case_id, party",
    )
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let (case_id, party, role): (String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let agreement: Option<String> = r.try_get(3)?;
            let row = format!("case_id={case_id},party={party}");
            let index = to_u64(r.try_get(4)?)?;
            // The lead is written with the case it leads; a member by its own entry.
            Ok(if role == "lead" {
                Expected {
                    row,
                    index,
                    actions: &[Action::CaseOpen],
                    subject: Some(Subject::new(SubjectKind::Case, &case_id)),
                    digests: Vec::new(),
                    intrinsic: Vec::new(),
                    digest_required: true,
                }
            } else {
                Expected {
                    row,
                    index,
                    actions: &[Action::CaseMemberAdd],
                    subject: Some(Subject::new(SubjectKind::Case, &case_id)),
                    digests: vec![(
                        "member",
                        digest_of(&crate::cases::member_payload(
                            &case_id,
                            &party,
                            agreement.as_deref(),
                        )),
                    )],
                    intrinsic: if role == "member" {
                        Vec::new()
                    } else {
                        vec![format!("role `{role}` is neither lead nor member")]
                    },
                    digest_required: true,
                }
            })
        })
        .collect()
}

async fn peers(store: &Store) -> Result<Vec<Expected>, StoreError> {
    let rows = sqlx::query(
        "SELECT party, url, cert_pem, cert_sha256, signing_key, age_recipient, ledger_index FROM peers ORDER BY party",
    )
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let (party, url, pem, cert_sha256, signing_key): (
                String,
                String,
                String,
                String,
                String,
            ) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?);
            let age: Option<String> = r.try_get(5)?;
            let peer =
                crate::peers::payload(&party, &url, &cert_sha256, &signing_key, age.as_deref());
            let intrinsic = match pem_sha256(&pem) {
                Some(h) if h == cert_sha256 => Vec::new(),
                Some(h) => vec![format!(
                    "the stored certificate hashes to {h}, not to its pin {cert_sha256}"
                )],
                None => vec!["the stored certificate is not PEM".to_owned()],
            };
            Ok(Expected {
                row: format!("party={party}"),
                index: to_u64(r.try_get(6)?)?,
                actions: &[Action::PeerAdd],
                subject: Some(Subject::new(SubjectKind::Peer, &party)),
                digests: vec![("peer", digest_of(&peer))],
                intrinsic,
                digest_required: true,
            })
        })
        .collect()
}

/// SHA-256 (hex) of the DER inside the first PEM block of `pem`.
fn pem_sha256(pem: &str) -> Option<String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body).ok()?;
    (!der.is_empty()).then(|| hex::encode(sha2::Sha256::digest(der)))
}

async fn requests(store: &Store, own: &str) -> Result<Vec<Expected>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, case_id, kind, agreement, requesting, requested, emergency, provisions, ledger_index \
         FROM requests ORDER BY id",
    )
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let (id, case_id, kind, agreement, requesting, requested): (
                String,
                String,
                String,
                String,
                String,
                String,
            ) = (
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
                r.try_get(5)?,
            );
            let emergency: i64 = r.try_get(6)?;
            let provisions: String = r.try_get(7)?;
            let index = to_u64(r.try_get(8)?)?;
            let subject = Subject::new(SubjectKind::Request, &id);
            // A request this node made records its terms; one received is bound to the
            // message it arrived in, which the ledger holds as a digest of the message.
            Ok(if requesting == own {
                let payload = json_column("provisions", &provisions).and_then(|p| {
                    digest_of(&crate::requests::request_payload(&crate::requests::RequestTerms {
                        id: &id,
                        case_id: &case_id,
                        kind: &kind,
                        agreement: &agreement,
                        to: &requested,
                        emergency: emergency != 0,
                        provisions: &p,
                    }))
                });
                Expected {
                    row: format!("id={id}"),
                    index,
                    actions: &[Action::RequestCreate],
                    subject: Some(subject),
                    digests: vec![("request", payload)],
                    intrinsic: Vec::new(),
                    digest_required: true,
                }
            } else {
                Expected {
                    row: format!("id={id}"),
                    index,
                    actions: &[Action::RequestReceive],
                    subject: Some(subject),
                    digests: Vec::new(),
                    intrinsic: Vec::new(),
                    digest_required: true,
                }
            })
        })
        .collect()
}

async fn data_items(store: &Store) -> Result<Vec<Expected>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, content, content_sha256, destroyed_at, ledger_index FROM data_items ORDER BY id",
    )
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let id: String = r.try_get(0)?;
            let content: Option<String> = r.try_get(1)?;
            let recorded: String = r.try_get(2)?;
            let destroyed: Option<String> = r.try_get(3)?;
            let mut intrinsic = Vec::new();
            match (&content, &destroyed) {
                (Some(c), _) => match json_column("content", c).and_then(|v| digest_of(&v)) {
                    Ok(d) if d == recorded => {}
                    Ok(d) => intrinsic.push(format!(
                        "the content hashes to {d}, not to its recorded content_sha256 {recorded}"
                    )),
                    Err(e) => intrinsic.push(e),
                },
                (None, None) => {
                    intrinsic.push("the content is gone but the datum was never destroyed".into())
                }
                (None, Some(_)) => {}
            }
            Ok(Expected {
                row: format!("id={id}"),
                index: to_u64(r.try_get(4)?)?,
                actions: &[Action::DatumAdd, Action::DatumReceive],
                subject: Some(Subject::new(SubjectKind::Datum, &id)),
                digests: vec![("content", Ok(recorded))],
                intrinsic,
                digest_required: true,
            })
        })
        .collect()
}

async fn custody(store: &Store) -> Result<Vec<Expected>, StoreError> {
    let rows = sqlx::query(
        "SELECT c.item_id, c.seq, c.event, c.digest, c.ledger_index, i.sha256 FROM evidence_custody c \
         LEFT JOIN evidence_items i ON i.id = c.item_id ORDER BY c.item_id, c.seq",
    )
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let (item, event, digest): (String, String, String) =
                (r.try_get(0)?, r.try_get(2)?, r.try_get(3)?);
            let seq: i64 = r.try_get(1)?;
            let item_sha: Option<String> = r.try_get(5)?;
            let mut intrinsic = Vec::new();
            let computed = sha256_tagged(event.as_bytes());
            if computed != digest {
                intrinsic.push(format!(
                    "the event hashes to {computed}, not to its recorded digest {digest}"
                ));
            }
            match (serde_json::from_str::<Value>(&event), &item_sha) {
                (_, None) => intrinsic.push(format!("no evidence item `{item}`")),
                (Ok(v), Some(sha)) => {
                    if v.get("sha256").and_then(Value::as_str) != Some(sha.as_str()) {
                        intrinsic.push(format!(
                            "the event is about other content than the item's sha256 {sha}"
                        ));
                    }
                    if v.get("item").and_then(Value::as_str) != Some(item.as_str())
                        || v.get("seq").and_then(Value::as_i64) != Some(seq)
                    {
                        intrinsic.push("the event names another item or position".into());
                    }
                }
                (Err(e), Some(_)) => intrinsic.push(format!("the event is not JSON: {e}")),
            }
            Ok(Expected {
                row: format!("item_id={item},seq={seq}"),
                index: to_u64(r.try_get(4)?)?,
                actions: &[
                    Action::EvidenceAdd,
                    Action::EvidenceCustody,
                    Action::EvidenceExport,
                    Action::EvidenceReceive,
                    Action::EvidenceDestroy,
                ],
                subject: Some(Subject::new(SubjectKind::Evidence, &item)),
                digests: vec![("custody", Ok(digest))],
                intrinsic,
                digest_required: true,
            })
        })
        .collect()
}

async fn intel_objects(store: &Store) -> Result<Vec<Expected>, StoreError> {
    let rows = sqlx::query(
        "SELECT collection_id, id, version_key, digest, raw, ledger_index FROM intel_objects \
         ORDER BY collection_id, id, version_key",
    )
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let (collection, id, version, digest, raw): (String, String, String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?);
            let computed = sha256_tagged(raw.as_bytes());
            let intrinsic = if computed == digest {
                Vec::new()
            } else {
                vec![format!(
                    "the object's text hashes to {computed}, not to its recorded digest {digest}"
                )]
            };
            // The import's entry holds one digest over every object it took in; each row is
            // bound to it by its text's digest and its collection.
            Ok(Expected {
                row: format!("collection_id={collection},id={id},version={version}"),
                index: to_u64(r.try_get(5)?)?,
                actions: &[Action::IntelImport],
                subject: Some(Subject::new(SubjectKind::Collection, &collection)),
                digests: Vec::new(),
                intrinsic,
                digest_required: true,
            })
        })
        .collect()
}

async fn privilege(store: &Store) -> Result<Vec<Expected>, StoreError> {
    let rows = sqlx::query(
        "SELECT item_id, status, redacted_item, ledger_index FROM evidence_privilege ORDER BY item_id",
    )
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let (item, status): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            let redacted: Option<String> = r.try_get(2)?;
            let payload = crate::evidence::privilege_payload(&item, &status, redacted.as_deref());
            Ok(Expected {
                row: format!("item_id={item}"),
                index: to_u64(r.try_get(3)?)?,
                actions: &[Action::EvidencePrivilegeFlag, Action::EvidencePrivilegeReview],
                subject: Some(Subject::new(SubjectKind::Evidence, &item)),
                digests: vec![("privilege", digest_of(&payload))],
                intrinsic: Vec::new(),
                digest_required: true,
            })
        })
        .collect()
}

/// A row checked by its entry, its action and its subject alone (its entry's digests are
/// not reproducible from the row: a message, a keyed hash, a digest over a set).
fn by_entry(
    row: String,
    index: u64,
    actions: &'static [Action],
    subject: Option<Subject>,
) -> Expected {
    Expected {
        row,
        index,
        actions,
        subject,
        digests: Vec::new(),
        intrinsic: Vec::new(),
        digest_required: true,
    }
}

async fn consents(store: &Store) -> Result<Vec<Expected>, StoreError> {
    let rows = sqlx::query(
        "SELECT datum_id, recipient, ledger_index FROM consents ORDER BY datum_id, recipient",
    )
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let (datum, recipient): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            Ok(by_entry(
                format!("datum_id={datum},recipient={recipient}"),
                to_u64(r.try_get(2)?)?,
                &[Action::ConsentReceive],
                Some(Subject::new(SubjectKind::Datum, &datum)),
            ))
        })
        .collect()
}

async fn request_events(store: &Store) -> Result<Vec<Expected>, StoreError> {
    let rows = sqlx::query(
        "SELECT request_id, seq, ledger_index FROM request_events ORDER BY request_id, seq",
    )
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let id: String = r.try_get(0)?;
            let seq: i64 = r.try_get(1)?;
            Ok(by_entry(
                format!("request_id={id},seq={seq}"),
                to_u64(r.try_get(2)?)?,
                &[
                    Action::RequestCreate,
                    Action::RequestTransition,
                    Action::RequestReceive,
                    Action::RequestUpdate,
                ],
                Some(Subject::new(SubjectKind::Request, &id)),
            ))
        })
        .collect()
}

async fn complaints(store: &Store) -> Result<Vec<Expected>, StoreError> {
    let rows =
        sqlx::query("SELECT id, ledger_index, answer_ledger_index FROM complaints ORDER BY id")
            .fetch_all(&store.pool)
            .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.try_get(0)?;
        let subject = Some(Subject::new(SubjectKind::Complaint, &id));
        out.push(by_entry(
            format!("id={id}"),
            to_u64(r.try_get(1)?)?,
            &[Action::ComplaintFile],
            subject.clone(),
        ));
        if let Some(answer) = r.try_get::<Option<i64>, _>(2)? {
            out.push(by_entry(
                format!("id={id} (answer)"),
                to_u64(answer)?,
                &[Action::ComplaintAnswer],
                subject,
            ));
        }
    }
    Ok(out)
}

async fn intel_collections(store: &Store) -> Result<Vec<Expected>, StoreError> {
    let rows = sqlx::query("SELECT id, ledger_index FROM intel_collections ORDER BY id")
        .fetch_all(&store.pool)
        .await?;
    rows.iter()
        .map(|r| {
            let id: String = r.try_get(0)?;
            Ok(by_entry(
                format!("id={id}"),
                to_u64(r.try_get(1)?)?,
                &[Action::IntelCollectionCreate],
                Some(Subject::new(SubjectKind::Collection, &id)),
            ))
        })
        .collect()
}

async fn maintenance_events(store: &Store) -> Result<Vec<Expected>, StoreError> {
    use crate::maintenance::{KIND_BACKUP, KIND_RELEASE, KIND_SCRUB, KIND_SWEEP};
    let rows = sqlx::query(
        "SELECT ledger_index, kind, detail FROM maintenance_events ORDER BY ledger_index",
    )
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let index = to_u64(r.try_get(0)?)?;
            let (kind, detail): (String, String) = (r.try_get(1)?, r.try_get(2)?);
            // Backups, sweeps and scrubs record the digest of their detail as it is stored.
            let (actions, payload): (&'static [Action], Option<&'static str>) = match kind.as_str()
            {
                KIND_BACKUP => (&[Action::NodeBackup], Some("backup")),
                KIND_SWEEP => (&[Action::MaintenanceSweep], Some("sweep")),
                KIND_SCRUB => (&[Action::MaintenanceScrub], Some("scrub")),
                KIND_RELEASE => (&[Action::LedgerRelease], None),
                _ => (&[], None),
            };
            let mut e = by_entry(format!("ledger_index={index},kind={kind}"), index, actions, None);
            if actions.is_empty() {
                e.intrinsic.push(format!("unknown kind `{kind}`"));
            }
            if let Some(name) = payload {
                e.digests.push((name, json_column("detail", &detail).and_then(|v| digest_of(&v))));
            }
            Ok(e)
        })
        .collect()
}
