//! Threat intelligence in the gate: TAXII collections, STIX objects imported all or nothing,
//! and pages served under TLP 2.0. Private to the crate; reached only from [`crate::gate`],
//! except the read-only metadata methods on [`Store`] (collections, status resources).
//!
//! - `IntelCollectionCreate` — a collection with the partner parties it is shared with.
//! - `IntelImport` — objects already parsed and validated (`entente_intel::stix`); all or
//!   nothing: an object with the id and version of a stored one but different content
//!   refuses the whole import (conflict), an identical one counts as a success (already
//!   held). Each version is a row, with its original text; the status resource is written
//!   in the same transaction.
//! - `IntelRead` — one page of objects, manifest entries or versions: every candidate object
//!   is decided by `entente_intel::tlp::decide` for the requester under the governing
//!   agreement (the most specific in force binding this party and a peer), withheld objects
//!   are skipped. One ledger entry per page: the requester (actor), the collection, the
//!   digest of the served (id, version) list, the digest of the per-object decisions and a
//!   summary of the rules that decided.

use crate::gate::{
    EffectCx, GateCommand, GateError, MAX_PARAMS, PayloadDigests, Ruling, decided_by_role,
    multi_row_insert,
};
use crate::store::{Backend, Store, StoreError, stamp, to_i64, to_u64};
use entente_core::{Action, Actor, PartyCode, Stamp, Subject, SubjectKind};

use entente_intel::stix::StixObject;
use entente_intel::tlp::{self, Exchange, Requester, Shared, Tlp};
use entente_policy::agreement::AgreementKind;
use entente_policy::engine::Engine;
use jiff::Timestamp;
use serde::Serialize;
use sha2::Digest as _;
use sqlx::{AssertSqlSafe, Row};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Largest page served.
pub const MAX_PAGE: usize = 1000;

/// A TAXII collection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IntelCollection {
    /// Its id (a UUID).
    pub id: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// The partner parties it is shared with.
    pub parties: Vec<String>,
    /// When it was created.
    pub created_at: Stamp,
}

/// What is read: objects, manifest entries or versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntelView {
    /// The objects themselves.
    Objects,
    /// Manifest entries (id, date_added, version, media type).
    Manifest,
    /// Versions of objects.
    Versions,
}

impl IntelView {
    fn as_str(self) -> &'static str {
        match self {
            IntelView::Objects => "objects",
            IntelView::Manifest => "manifest",
            IntelView::Versions => "versions",
        }
    }
}

/// A query on a collection (TAXII filters), with the position to continue from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntelQuery {
    /// Only objects added after this instant (RFC 3339).
    pub added_after: Option<String>,
    /// Continue after this position `(date_added, seq)` (from a pagination cursor).
    pub after: Option<(String, i64)>,
    /// Most objects in the page (1 to [`MAX_PAGE`]).
    pub limit: usize,
    /// `match[id]`.
    pub ids: Vec<String>,
    /// `match[type]`.
    pub types: Vec<String>,
    /// `match[version]`: `last`, `first`, `all` or timestamps. Empty: `last`.
    pub versions: Vec<String>,
    /// `match[spec_version]`.
    pub spec_versions: Vec<String>,
}

/// One object version in a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntelRow {
    /// Position (commit order).
    pub seq: i64,
    /// Object id.
    pub id: String,
    /// Object type.
    pub kind: String,
    /// spec_version.
    pub spec_version: String,
    /// The version (modified or created), if any.
    pub version: Option<String>,
    /// When this node added it.
    pub date_added: String,
    /// The object's original text.
    pub raw: String,
}

/// A page served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntelPage {
    /// The rows served, in (date_added, seq) order.
    pub rows: Vec<IntelRow>,
    /// Whether more rows may follow.
    pub more: bool,
    /// The position of the last row examined (served or withheld): where the next page
    /// starts.
    pub last: Option<(String, i64)>,
    /// How many candidate objects the TLP decision withheld.
    pub withheld: usize,
}

/// One object in a status resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StatusDetail {
    /// Object id.
    pub id: String,
    /// Version, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// A message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A TAXII status resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IntelStatus {
    /// Status id.
    pub id: String,
    /// The collection.
    pub collection_id: String,
    /// `complete` (imports are applied within the request).
    pub status: String,
    /// When the request was made.
    pub request_timestamp: String,
    /// Objects in the request.
    pub total_count: u64,
    /// Objects stored (new or already held, identical).
    pub success_count: u64,
    /// Objects refused.
    pub failure_count: u64,
    /// Objects pending.
    pub pending_count: u64,
    /// The objects stored: one page of them, from `first` (the whole count is
    /// `success_count`).
    pub successes: Vec<StatusDetail>,
    /// The objects refused (on the same page).
    pub failures: Vec<StatusDetail>,
    /// Who made the import (`user:NAME`, `peer:XX`, `operator`); only they may read the
    /// status. `None` for a status recorded before this was kept.
    pub requested_by: Option<String>,
    /// The position of the first object on this page.
    pub first: u64,
    /// The position of the first object of the next page, if there is one.
    pub next: Option<u64>,
}

/// Objects of a status resource listed per page by default.
pub const STATUS_PAGE: u64 = 1000;
/// The most objects of a status resource one page may list.
pub const MAX_STATUS_PAGE: u64 = 10_000;

/// Who made an import, as its status resource records it.
pub fn requester_of(actor: &Actor) -> String {
    match actor {
        Actor::User { name, .. } | Actor::OperatorFor { name, .. } => format!("user:{name}"),
        Actor::Peer { party } => format!("peer:{party}"),
        Actor::Operator => "operator".into(),
        Actor::Anonymous => "anonymous".into(),
    }
}

fn not_found(id: &str) -> GateError {
    GateError::NotFound(format!("collection `{id}`"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn uuid(what: &str, id: &str) -> Result<(), GateError> {
    entente_core::ids::check_uuid(what, id).map_err(GateError::Invalid)
}

/// The agreement in force on `now` binding `a` and `b`: the most specific one (JIT, then
/// regulation or bilateral treaty, then MoU, protocol, treaty).
pub fn governing_agreement<'e>(
    engine: &'e Engine,
    a: &PartyCode,
    b: &PartyCode,
    now: Timestamp,
) -> Option<&'e str> {
    let day = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let rank = |k: AgreementKind| match k {
        AgreementKind::Jit => 0,
        AgreementKind::Regulation | AgreementKind::Directive | AgreementKind::BilateralMla => 1,
        AgreementKind::Mou => 2,
        AgreementKind::Protocol => 3,
        AgreementKind::Treaty => 4,
    };
    engine
        .agreements()
        .iter()
        .filter(|ag| ag.in_force_between(a, b, day))
        .min_by_key(|ag| (rank(ag.kind), ag.id.clone()))
        .map(|ag| ag.id.as_str())
}

/// Create a TAXII collection shared with the given partner parties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntelCollectionCreate {
    /// Collection id (a UUID).
    pub id: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// The partner parties it is shared with (the TLP:AMBER audience).
    pub parties: Vec<PartyCode>,
}

impl GateCommand for IntelCollectionCreate {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::IntelCollectionCreate
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Collection, &self.id)]
    }

    /// The collection as created (recorded with the effect).
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        uuid("collection id", &self.id)?;
        if self.title.trim().is_empty() || self.title.len() > 200 || self.description.len() > 2000 {
            return Err(GateError::Invalid(
                "title: expected 1 to 200 characters (description at most 2000)".into(),
            ));
        }
        Ok(())
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        let IntelCollectionCreate { id, title, description, parties } = self;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM intel_collections WHERE id = $1")
                .bind(&id)
                .fetch_optional(&mut **cx.tx)
                .await?;
        if exists.is_some() {
            return Err(GateError::Conflict(format!("collection `{id}` already exists")));
        }
        let parties_json =
            serde_json::to_string(&parties).map_err(|e| GateError::Encoding(e.to_string()))?;
        sqlx::query(
            "INSERT INTO intel_collections (id, title, description, parties, created_at, ledger_index) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&title)
        .bind(&description)
        .bind(&parties_json)
        .bind(cx.now_text())
        .bind(to_i64(cx.index)?)
        .execute(&mut **cx.tx)
        .await?;
        let digest = sha256_hex(
            serde_json::json!({"id": id, "title": title, "description": description, "parties": parties})
                .to_string()
                .as_bytes(),
        );
        cx.record_digests(vec![("collection".into(), digest)]);
        Ok(())
    }
}

/// Import STIX objects (parsed and validated) into a collection, all or nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct IntelImport {
    /// Collection id.
    pub collection: String,
    /// The objects, each with its original text.
    pub objects: Arc<Vec<StixObject>>,
    /// The party that published them, if not this node's (objects from a peer).
    pub originator: Option<PartyCode>,
    /// The id of the status resource to write.
    pub status_id: String,
}

impl GateCommand for IntelImport {
    type Output = IntelStatus;
    type Facts = ();

    fn action(&self) -> Action {
        Action::IntelImport
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Collection, &self.collection),
            Subject::new(SubjectKind::Status, &self.status_id),
        ]
    }

    /// The objects imported and refused, known once the import ran.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        uuid("collection id", &self.collection)?;
        uuid("status id", &self.status_id)
    }

    decided_by_role!();

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        _: (),
        _: &Ruling,
    ) -> Result<IntelStatus, GateError> {
        let IntelImport { collection, objects, originator, status_id } = self;
        load_collection(cx.tx, &collection).await?;
        let originator = originator.unwrap_or_else(|| cx.party.clone());
        let importer = match cx.actor {
            Actor::User { name, .. } | Actor::OperatorFor { name, .. } => Some(name.clone()),
            _ => None,
        };
        let (status, digests) = import(
            cx.tx,
            cx.backend,
            &collection,
            &objects,
            &originator,
            importer,
            (&status_id, requester_of(cx.actor)),
            cx.now,
            cx.index,
        )
        .await?;
        cx.record_digests(digests);
        Ok(status)
    }
}

/// Read one page of a collection (objects, manifest or versions), each object decided under
/// TLP 2.0 for the requester; one ledger entry per page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntelRead {
    /// Collection id.
    pub collection: String,
    /// What is read.
    pub view: IntelView,
    /// Filters and position.
    pub query: IntelQuery,
}

impl GateCommand for IntelRead {
    type Output = IntelPage;
    type Facts = ();

    fn action(&self) -> Action {
        Action::IntelRead
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Collection, &self.collection)]
    }

    /// What was served and withheld, object by object, known once the page is decided.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        uuid("collection id", &self.collection)?;
        if self.query.limit == 0 || self.query.limit > MAX_PAGE {
            return Err(GateError::Invalid(format!(
                "limit: expected 1 to {MAX_PAGE}, found {}",
                self.query.limit
            )));
        }
        Ok(())
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<IntelPage, GateError> {
        let IntelRead { collection, view, query } = self;
        let (party, now) = (cx.party, cx.now);
        let coll = load_collection(cx.tx, &collection).await?;
        let requester_party;
        let requester = match cx.actor {
            Actor::Peer { party: p } => {
                requester_party = p.clone();
                Requester::Peer { party: &requester_party }
            }
            Actor::User { name, .. } | Actor::OperatorFor { name, .. } => Requester::User { name },
            _ => Requester::User { name: "operator" },
        };
        let governing = match requester {
            Requester::Peer { party: p } => governing_agreement(cx.engine, party, p, now),
            Requester::User { .. } => None,
        };
        let parties: Vec<PartyCode> = coll.parties.iter().filter_map(|p| p.parse().ok()).collect();
        let exchange = Exchange { node_party: party, collection_parties: &parties, governing };
        let (page, digests) = read(cx.tx, &collection, view, &query, requester, &exchange).await?;
        cx.record_digests(digests);
        Ok(page)
    }
}

/// Release STIX objects to a pinned partner that this node then pushes them to (a TAXII
/// `POST` on the partner's collection, over mutual TLS as this node). Each object is decided
/// under TLP 2.0 for that partner under the governing agreement, exactly as if the partner
/// had read it here; only the released objects may be pushed. One ledger entry per push,
/// recorded before anything leaves.
#[derive(Clone, Debug, PartialEq)]
pub struct IntelRelease {
    /// The partner pushed to.
    pub to: PartyCode,
    /// The partner's collection (a UUID).
    pub collection: String,
    /// The objects, parsed and validated, each with its original text.
    pub objects: Arc<Vec<StixObject>>,
}

/// What a push may send: the released objects, and how many TLP withheld.
#[derive(Clone, Debug, PartialEq)]
pub struct IntelReleased {
    /// The objects released to the partner, in their order.
    pub objects: Vec<StixObject>,
    /// How many the TLP decision withheld.
    pub withheld: usize,
}

impl GateCommand for IntelRelease {
    type Output = IntelReleased;
    type Facts = ();

    fn action(&self) -> Action {
        Action::IntelPush
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Party, self.to.as_str()),
            Subject::new(SubjectKind::Collection, &self.collection),
        ]
    }

    /// What was released and withheld, object by object, known once each is decided.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        uuid("collection id", &self.collection)?;
        if self.objects.is_empty() {
            return Err(GateError::Invalid("a push releases at least one object".into()));
        }
        Ok(())
    }

    decided_by_role!();

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        _: (),
        _: &Ruling,
    ) -> Result<IntelReleased, GateError> {
        let pinned: Option<i64> = sqlx::query_scalar("SELECT 1 FROM peers WHERE party = $1")
            .bind(self.to.as_str())
            .fetch_optional(&mut **cx.tx)
            .await?;
        if pinned.is_none() {
            return Err(GateError::Invalid(format!(
                "no partner node is pinned for {} (entente peer add)",
                self.to
            )));
        }
        let party = cx.party;
        let governing = governing_agreement(cx.engine, party, &self.to, cx.now);
        let parties = [self.to.clone()];
        let exchange = Exchange { node_party: party, collection_parties: &parties, governing };
        let requester = Requester::Peer { party: &self.to };
        let importer = match cx.actor {
            Actor::User { name, .. } | Actor::OperatorFor { name, .. } => Some(name.as_str()),
            _ => None,
        };
        let (mut released, mut withheld) = (Vec::new(), 0);
        let (mut served, mut decisions) = (sha2::Sha256::new(), sha2::Sha256::new());
        let mut rules: BTreeMap<&str, usize> = BTreeMap::new();
        for o in self.objects.iter() {
            let shared = Shared {
                tlp: tlp::effective(&o.markings),
                recipients: &o.recipients,
                originator: party,
                importer,
            };
            let release = tlp::decide(&shared, requester, &exchange);
            *rules.entry(release.rule).or_default() += 1;
            let line = format!("{}|{}|{}\n", o.id, o.version().unwrap_or(""), release.rule);
            decisions.update(line.as_bytes());
            if release.permit {
                served.update(format!("{}|{}\n", o.id, o.version().unwrap_or("")).as_bytes());
                released.push(o.clone());
            } else {
                withheld += 1;
            }
        }
        let summary = rules.iter().map(|(r, n)| format!("{r}={n}")).collect::<Vec<_>>().join(",");
        cx.record_digests(vec![
            ("released".to_owned(), format!("sha256:{}", hex::encode(served.finalize()))),
            ("tlp".to_owned(), format!("sha256:{}", hex::encode(decisions.finalize()))),
            (
                "tlp.summary".to_owned(),
                format!(
                    "push {}: released {}, withheld {withheld}; {summary}",
                    governing.unwrap_or("-"),
                    released.len()
                ),
            ),
        ]);
        Ok(IntelReleased { objects: released, withheld })
    }
}

async fn load_collection(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
) -> Result<IntelCollection, GateError> {
    let row = sqlx::query(
        "SELECT id, title, description, parties, created_at FROM intel_collections WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| not_found(id))?;
    collection_of(&row).map_err(GateError::Store)
}

fn collection_of(row: &sqlx::any::AnyRow) -> Result<IntelCollection, StoreError> {
    let parties: String = row.try_get(3)?;
    Ok(IntelCollection {
        id: row.try_get(0)?,
        title: row.try_get(1)?,
        description: row.try_get(2)?,
        parties: serde_json::from_str(&parties)
            .map_err(|e| StoreError::Inconsistent(format!("collection parties: {e}")))?,
        created_at: stamp(row, 4)?,
    })
}

/// The level an object is handled at: the standard TLP marking definitions themselves are
/// public (CLEAR); any other object its strictest marking, TLP:AMBER if unmarked.
fn level(o: &StixObject) -> Tlp {
    if o.kind == "marking-definition" && Tlp::from_marking_id(&o.id).is_some() {
        Tlp::Clear
    } else {
        tlp::effective(&o.markings)
    }
}

/// `n` comma-separated bind markers for an `IN (…)` list whose first value is parameter
/// `first` (`?` on SQLite, `$N` on PostgreSQL).
fn bind_list(backend: Backend, first: usize, n: usize) -> String {
    (0..n)
        .map(|i| match backend {
            Backend::Sqlite => "?".to_owned(),
            Backend::Postgres => format!("${}", first + i),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[allow(clippy::too_many_arguments, reason = "one import's context")]
async fn import(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    collection: &str,
    objects: &Arc<Vec<StixObject>>,
    originator: &PartyCode,
    importer: Option<String>,
    (status_id, requested_by): (&str, String),
    now: Timestamp,
    index: u64,
) -> Result<(IntelStatus, Vec<(String, String)>), GateError> {
    // What the collection already holds of these ids: (id, version_key) → digest, and the
    // latest version key per id.
    let mut held: HashMap<(String, String), String> = HashMap::new();
    let mut latest: HashMap<String, String> = HashMap::new();
    let mut ids: Vec<&str> = objects.iter().map(|o| o.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    for chunk in ids.chunks(MAX_PARAMS) {
        let sql = format!(
            "SELECT id, version_key, digest, latest FROM intel_objects WHERE collection_id = {} AND id IN ({})",
            bind_list(backend, 1, 1),
            bind_list(backend, 2, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false).bind(collection);
        for id in chunk {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&mut **tx).await? {
            let id: String = r.try_get(0)?;
            let vk: String = r.try_get(1)?;
            let is_latest: i64 = r.try_get(3)?;
            if is_latest == 1 {
                latest.insert(id.clone(), vk.clone());
            }
            held.insert((id, vk), r.try_get(2)?);
        }
    }
    // Refuse the whole import on the first conflict, before any write.
    let mut fresh: Vec<(&StixObject, String, String)> = Vec::with_capacity(objects.len());
    let mut successes = Vec::with_capacity(objects.len());
    let mut digests = sha2::Sha256::new();
    for o in objects.iter() {
        let vk = o.version_key().unwrap_or_default();
        let digest = o.digest();
        digests.update(digest.as_bytes());
        match held.get(&(o.id.clone(), vk.clone())) {
            Some(d) if *d == digest => {
                successes.push(StatusDetail {
                    id: o.id.clone(),
                    version: o.version().map(str::to_owned),
                    message: Some("already held, identical".into()),
                });
            }
            Some(_) => {
                return Err(GateError::Conflict(format!(
                    "{} version {}: the collection holds this version with different content; a new version needs a later `modified` (nothing was imported)",
                    o.id,
                    o.version().unwrap_or("(none)")
                )));
            }
            None => {
                successes.push(StatusDetail {
                    id: o.id.clone(),
                    version: o.version().map(str::to_owned),
                    message: None,
                });
                fresh.push((o, vk, digest));
            }
        }
    }
    // The new latest version of each id.
    let mut newest: HashMap<&str, &str> = HashMap::new();
    for (o, vk, _) in &fresh {
        let cur = newest.entry(o.id.as_str()).or_insert(vk.as_str());
        if vk.as_str() > *cur {
            *cur = vk.as_str();
        }
    }
    let mut demote: Vec<&str> = Vec::new();
    let mut newest_final: HashMap<&str, &str> = HashMap::with_capacity(newest.len());
    for (id, vk) in newest {
        match latest.get(id) {
            // A stored version stays the latest.
            Some(old) if old.as_str() >= vk => {}
            Some(_) => {
                demote.push(id);
                newest_final.insert(id, vk);
            }
            None => {
                newest_final.insert(id, vk);
            }
        }
    }
    for chunk in demote.chunks(MAX_PARAMS) {
        let sql = format!(
            "UPDATE intel_objects SET latest = 0 WHERE collection_id = {} AND id IN ({})",
            bind_list(backend, 1, 1),
            bind_list(backend, 2, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false).bind(collection);
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut **tx).await?;
    }
    // Positions: after every committed row (we hold the writer lock), so a cursor never
    // misses an object committed later.
    let row = sqlx::query("SELECT MAX(seq), MAX(date_added) FROM intel_objects")
        .fetch_one(&mut **tx)
        .await?;
    let mut seq: i64 = row.try_get::<Option<i64>, _>(0)?.unwrap_or(0);
    let max_added: Option<String> = row.try_get(1)?;
    let now_text = format!("{now:.6}");
    let date_added = match max_added {
        Some(m) if m > now_text => m,
        _ => now_text.clone(),
    };
    let index_i = to_i64(index)?;
    const COLS: usize = 16;
    for chunk in fresh.chunks(MAX_PARAMS / COLS) {
        let sql = multi_row_insert(
            backend,
            "intel_objects (seq, collection_id, id, kind, spec_version, version, version_key, date_added, latest, tlp, recipients, originator, importer, digest, raw, ledger_index)",
            COLS,
            chunk.len(),
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for (o, vk, digest) in chunk {
            seq += 1;
            let is_latest = newest_final.get(o.id.as_str()) == Some(&vk.as_str());
            let recipients = serde_json::to_string(&o.recipients)
                .map_err(|e| GateError::Encoding(e.to_string()))?;
            q = q
                .bind(seq)
                .bind(collection.to_owned())
                .bind(o.id.clone())
                .bind(o.kind.clone())
                .bind(o.spec_version.clone())
                .bind(o.version().map(str::to_owned))
                .bind(vk.clone())
                .bind(date_added.clone())
                .bind(i64::from(is_latest))
                .bind(level(o).code())
                .bind(recipients)
                .bind(originator.as_str().to_owned())
                .bind(importer.clone())
                .bind(digest.clone())
                .bind(o.raw.clone())
                .bind(index_i);
        }
        q.execute(&mut **tx).await?;
    }
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM intel_status WHERE id = $1")
        .bind(status_id)
        .fetch_optional(&mut **tx)
        .await?;
    if exists.is_some() {
        return Err(GateError::Conflict(format!("status `{status_id}` already exists")));
    }
    sqlx::query(
        "INSERT INTO intel_status (id, collection_id, status, request_timestamp, total_count, success_count, failure_count, pending_count, successes, failures, ledger_index, requested_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '[]', '[]', $9, $10)",
    )
    .bind(status_id)
    .bind(collection)
    .bind("complete")
    .bind(&now_text)
    .bind(to_i64(objects.len() as u64)?)
    .bind(to_i64(successes.len() as u64)?)
    .bind(0i64)
    .bind(0i64)
    .bind(index_i)
    .bind(&requested_by)
    .execute(&mut **tx)
    .await?;
    // One row per object, so that the status is read a page at a time.
    const DETAIL_COLS: usize = 6;
    for (c, chunk) in successes.chunks(MAX_PARAMS / DETAIL_COLS).enumerate() {
        let sql = multi_row_insert(
            backend,
            "intel_status_objects (status_id, n, outcome, id, version, message)",
            DETAIL_COLS,
            chunk.len(),
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for (i, d) in chunk.iter().enumerate() {
            let n = c * (MAX_PARAMS / DETAIL_COLS) + i;
            q = q
                .bind(status_id)
                .bind(to_i64(n as u64)?)
                .bind("success")
                .bind(&d.id)
                .bind(&d.version)
                .bind(&d.message);
        }
        q.execute(&mut **tx).await?;
    }
    let total = successes.len() as u64;
    successes.truncate(STATUS_PAGE as usize);
    let status = IntelStatus {
        id: status_id.to_owned(),
        collection_id: collection.to_owned(),
        status: "complete".into(),
        request_timestamp: now_text,
        total_count: objects.len() as u64,
        success_count: total,
        failure_count: 0,
        pending_count: 0,
        successes,
        failures: Vec::new(),
        requested_by: Some(requested_by),
        first: 0,
        next: (total > STATUS_PAGE).then_some(STATUS_PAGE),
    };
    let hashes = vec![
        ("objects".to_owned(), format!("sha256:{}", hex::encode(digests.finalize()))),
        (
            "imported".to_owned(),
            format!(
                "{} new, {} already held",
                fresh.len(),
                status.success_count as usize - fresh.len()
            ),
        ),
    ];
    Ok((status, hashes))
}

async fn read(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    collection: &str,
    view: IntelView,
    query: &IntelQuery,
    requester: Requester<'_>,
    exchange: &Exchange<'_>,
) -> Result<(IntelPage, Vec<(String, String)>), GateError> {
    let mut rows_out = Vec::new();
    let mut withheld = 0usize;
    let mut more = false;
    let mut cursor = query.after.clone();
    let mut decisions = sha2::Sha256::new();
    let mut rules: BTreeMap<&'static str, usize> = BTreeMap::new();
    'outer: loop {
        let batch = fetch(tx, collection, view, query, cursor.as_ref()).await?;
        let n = batch.len();
        for (row, tlp_code, recipients, originator, importer, digest) in batch {
            if rows_out.len() == query.limit {
                more = true;
                break 'outer;
            }
            cursor = Some((row.date_added.clone(), row.seq));
            let recipients: Vec<String> = serde_json::from_str(&recipients)
                .map_err(|e| StoreError::Inconsistent(format!("recipients of {}: {e}", row.id)))?;
            let originator: PartyCode = originator
                .parse()
                .map_err(|e| StoreError::Inconsistent(format!("originator of {}: {e}", row.id)))?;
            let shared = Shared {
                tlp: Tlp::parse(&tlp_code).unwrap_or(Tlp::Red),
                recipients: &recipients,
                originator: &originator,
                importer: importer.as_deref(),
            };
            // An object whose text no longer hashes to the digest recorded at import was
            // altered in the database: withheld (the page's entry counts it), and an alarm.
            let intact = entente_core::canonical::sha256_tagged(row.raw.as_bytes()) == digest;
            let (permit, rule) = if intact {
                let release = tlp::decide(&shared, requester, exchange);
                (release.permit, release.rule)
            } else {
                tracing::error!(collection, object = %row.id, "integrity alarm: an altered STIX object withheld");
                (false, INTEGRITY_RULE)
            };
            *rules.entry(rule).or_default() += 1;
            decisions.update(
                format!("{}|{}|{}\n", row.id, row.version.as_deref().unwrap_or(""), rule)
                    .as_bytes(),
            );
            if permit {
                rows_out.push(row);
            } else {
                withheld += 1;
            }
        }
        if n <= query.limit {
            break;
        }
    }
    let mut served = sha2::Sha256::new();
    for r in &rows_out {
        served.update(format!("{}|{}\n", r.id, r.version.as_deref().unwrap_or("")).as_bytes());
    }
    let summary = rules.iter().map(|(r, n)| format!("{r}={n}")).collect::<Vec<_>>().join(",");
    let hashes = vec![
        ("served".to_owned(), format!("sha256:{}", hex::encode(served.finalize()))),
        ("tlp".to_owned(), format!("sha256:{}", hex::encode(decisions.finalize()))),
        (
            "tlp.summary".to_owned(),
            format!(
                "{} {}: served {}, withheld {withheld}; {summary}",
                view.as_str(),
                exchange.governing.unwrap_or("-"),
                rows_out.len()
            ),
        ),
    ];
    Ok((IntelPage { rows: rows_out, more, last: cursor, withheld }, hashes))
}

/// The rule of an object withheld because its text differs from its recorded digest.
const INTEGRITY_RULE: &str = "integrity.object-digest";

type Candidate = (IntelRow, String, String, String, Option<String>, String);

async fn fetch(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    collection: &str,
    view: IntelView,
    query: &IntelQuery,
    after: Option<&(String, i64)>,
) -> Result<Vec<Candidate>, GateError> {
    enum Bind {
        S(String),
        I(i64),
    }
    // Every value is bound; the statement is built from fixed text and `$N` placeholders.
    let mut binds: Vec<Bind> = vec![Bind::S(collection.to_owned())];
    let mut sql = String::from(
        "SELECT seq, id, kind, spec_version, version, date_added, raw, tlp, recipients, originator, importer, digest \
         FROM intel_objects o WHERE collection_id = $1",
    );
    let next = |binds: &mut Vec<Bind>, v: Bind| {
        binds.push(v);
        format!("${}", binds.len())
    };
    if let Some((d, s)) = after {
        let pd = next(&mut binds, Bind::S(d.clone()));
        let ps = next(&mut binds, Bind::I(*s));
        sql.push_str(&format!(" AND (date_added > {pd} OR (date_added = {pd} AND seq > {ps}))"));
    }
    if let Some(a) = &query.added_after {
        let p = next(&mut binds, Bind::S(a.clone()));
        sql.push_str(&format!(" AND date_added > {p}"));
    }
    for (col, values) in
        [("id", &query.ids), ("kind", &query.types), ("spec_version", &query.spec_versions)]
    {
        if !values.is_empty() {
            let ps: Vec<String> =
                values.iter().map(|v| next(&mut binds, Bind::S(v.clone()))).collect();
            sql.push_str(&format!(" AND {col} IN ({})", ps.join(",")));
        }
    }
    let versions: Vec<&str> = if query.versions.is_empty() {
        match view {
            IntelView::Versions => vec!["all"],
            _ => vec!["last"],
        }
    } else {
        query.versions.iter().map(String::as_str).collect()
    };
    if !versions.contains(&"all") {
        let mut alts = Vec::new();
        for v in versions {
            match v {
                "last" => alts.push("latest = 1".to_owned()),
                "first" => alts.push(
                    "version_key = (SELECT MIN(o2.version_key) FROM intel_objects o2 WHERE o2.collection_id = o.collection_id AND o2.id = o.id)"
                        .to_owned(),
                ),
                ts => {
                    let key = entente_intel::stix::sort_key(ts).unwrap_or_default();
                    let p = next(&mut binds, Bind::S(key));
                    alts.push(format!("version_key = {p}"));
                }
            }
        }
        sql.push_str(&format!(" AND ({})", alts.join(" OR ")));
    }
    sql.push_str(" ORDER BY date_added, seq LIMIT ");
    sql.push_str(&(query.limit + 1).to_string());
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for b in binds {
        q = match b {
            Bind::S(s) => q.bind(s),
            Bind::I(i) => q.bind(i),
        };
    }
    let rows = q.fetch_all(&mut **tx).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push((
            IntelRow {
                seq: r.try_get(0)?,
                id: r.try_get(1)?,
                kind: r.try_get(2)?,
                spec_version: r.try_get(3)?,
                version: r.try_get(4)?,
                date_added: r.try_get(5)?,
                raw: r.try_get(6)?,
            },
            r.try_get(7)?,
            r.try_get(8)?,
            r.try_get(9)?,
            r.try_get(10)?,
            r.try_get(11)?,
        ));
    }
    Ok(out)
}

impl Store {
    /// The TAXII collections (metadata; objects are read through the gate).
    ///
    /// # Errors
    /// Database failures.
    pub async fn intel_collections(&self) -> Result<Vec<IntelCollection>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, title, description, parties, created_at FROM intel_collections ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(collection_of).collect()
    }

    /// One TAXII collection.
    ///
    /// # Errors
    /// `NotFound` for an unknown id; database failures.
    pub async fn intel_collection(&self, id: &str) -> Result<IntelCollection, StoreError> {
        let row = sqlx::query(
            "SELECT id, title, description, parties, created_at FROM intel_collections WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("collection `{id}`")))?;
        collection_of(&row)
    }

    /// A status resource of an import.
    ///
    /// # Errors
    /// `NotFound` for an unknown id; database failures.
    pub async fn intel_status(
        &self,
        id: &str,
        first: u64,
        limit: u64,
    ) -> Result<IntelStatus, StoreError> {
        let limit = limit.clamp(1, MAX_STATUS_PAGE);
        let row = sqlx::query(
            "SELECT id, collection_id, status, request_timestamp, total_count, success_count, failure_count, pending_count, requested_by \
             FROM intel_status WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("status `{id}`")))?;
        let rows = sqlx::query(
            "SELECT n, outcome, id, version, message FROM intel_status_objects \
             WHERE status_id = $1 AND n >= $2 ORDER BY n LIMIT $3",
        )
        .bind(id)
        .bind(to_i64(first)?)
        .bind(to_i64(limit + 1)?)
        .fetch_all(&self.pool)
        .await?;
        let (mut successes, mut failures, mut next) = (Vec::new(), Vec::new(), None);
        for (i, r) in rows.iter().enumerate() {
            let n = to_u64(r.try_get(0)?)?;
            if i as u64 == limit {
                next = Some(n);
                break;
            }
            let outcome: String = r.try_get(1)?;
            let d =
                StatusDetail { id: r.try_get(2)?, version: r.try_get(3)?, message: r.try_get(4)? };
            match outcome.as_str() {
                "success" => successes.push(d),
                _ => failures.push(d),
            }
        }
        Ok(IntelStatus {
            id: row.try_get(0)?,
            collection_id: row.try_get(1)?,
            status: row.try_get(2)?,
            request_timestamp: row.try_get(3)?,
            total_count: to_u64(row.try_get(4)?)?,
            success_count: to_u64(row.try_get(5)?)?,
            failure_count: to_u64(row.try_get(6)?)?,
            pending_count: to_u64(row.try_get(7)?)?,
            successes,
            failures,
            requested_by: row.try_get(8)?,
            first,
            next,
        })
    }
}
