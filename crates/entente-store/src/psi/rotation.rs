//! The holder's key epochs: a rotation prepared outside the gate's writer and recorded by one
//! command ([`RotatePsiKey`]), and the current epoch sent to a partner pinned since
//! ([`SendPsiKey`]).
//!
//! A rotation is three steps, so that the costly one holds no lock (`docs/psi.md`):
//! 1. [`rotation_decision`], pure and cheap: the role rule and the agreement, before anything
//!    is read (a refusal is recorded by submitting [`RotatePsiKey::unprepared`]);
//! 2. [`crate::Store::psi_holdings`] reads the holdings in one read transaction together with
//!    the ledger size (the watermark), and [`PsiHoldings::prepare`] PRFs them under a new key,
//!    on the caller's blocking threads;
//! 3. [`RotatePsiKey::new`] records the epoch in one gate transaction, which decides again
//!    (role, agreement, and that no other rotation of the agreement was recorded since the
//!    holdings were read).

use super::{CHUNK_ELEMENTS, LIMITS, agreement_between, json, mode_name, open, psi_error, seal};
use crate::gate::{
    DecideCx, EffectCx, GateCommand, GateError, PayloadDigests, Ruling, digest_json, role_decision,
};
use crate::store::{Store, StoreError, to_i64, to_u64};
use entente_core::{Action, Actor, Decision, PartyCode, Subject, SubjectKind, ids};
use entente_policy::agreement::{Agreement, Deconfliction};
use entente_policy::engine::Engine;
use entente_psi::{HolderKey, Label, Mode, Selector, SelectorKind, SetChunk, SetSummary, selector};
use entente_wire::{MessageKind, PsiKeyMessage};
use jiff::Timestamp;
use serde::Serialize;
use sqlx::Row;

/// Longest contact point a label carries.
pub const MAX_CONTACT: usize = 200;

/// The selectors in the string values of a JSON value (nested), as the agreement types them.
fn selectors_in(
    v: &serde_json::Value,
    rules: entente_psi::EmailRules,
    kinds: &[SelectorKind],
    out: &mut Vec<Selector>,
) {
    match v {
        serde_json::Value::String(s) if s.len() <= 2048 => {
            if let Ok(sel) = selector::parse_line(s, rules)
                && kinds.contains(&sel.kind())
            {
                out.push(sel);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| selectors_in(x, rules, kinds, out)),
        serde_json::Value::Object(m) => {
            m.values().for_each(|x| selectors_in(x, rules, kinds, out));
        }
        _ => {}
    }
}

/// The selectors a STIX cyber-observable carries, by its type.
fn stix_selectors(
    raw: &serde_json::Value,
    rules: entente_psi::EmailRules,
    kinds: &[SelectorKind],
) -> Vec<Selector> {
    let mut out = Vec::new();
    let value = raw.get("value").and_then(|v| v.as_str());
    let typed = |kind: SelectorKind, text: &str, out: &mut Vec<Selector>| {
        if kinds.contains(&kind)
            && let Ok(s) = selector::parse(kind, text, rules)
        {
            out.push(s);
        }
    };
    match (raw.get("type").and_then(|t| t.as_str()), value) {
        (Some("ipv4-addr" | "ipv6-addr"), Some(v)) => typed(SelectorKind::Ip, v, &mut out),
        (Some("domain-name"), Some(v)) => typed(SelectorKind::Domain, v, &mut out),
        (Some("url"), Some(v)) => typed(SelectorKind::Url, v, &mut out),
        (Some("email-addr"), Some(v)) => typed(SelectorKind::Email, v, &mut out),
        (Some("file"), _) => {
            if let Some(h) = raw.get("hashes").and_then(|h| h.as_object()) {
                for (name, kind) in [
                    ("MD5", SelectorKind::Md5),
                    ("SHA-1", SelectorKind::Sha1),
                    ("SHA-256", SelectorKind::Sha256),
                ] {
                    if let Some(v) = h.get(name).and_then(|v| v.as_str()) {
                        typed(kind, v, &mut out);
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// Checks a rotation's agreement id and contact point (before anything is decided or read).
///
/// # Errors
/// [`GateError::Invalid`], naming the field.
pub fn check_rotation(agreement: &str, contact: &str) -> Result<(), GateError> {
    ids::check_identifier("agreement id", agreement).map_err(GateError::Invalid)?;
    let c = contact.trim();
    if c.is_empty() || c.len() > MAX_CONTACT || c.chars().any(char::is_control) {
        return Err(GateError::Invalid(format!(
            "contact: expected a contact point of 1 to {MAX_CONTACT} bytes without control characters (e.g. `deconfliction desk, BKA`)"
        )));
    }
    Ok(())
}

/// The agreement a rotation is for, if it provides for deconfliction by `party` on `now`;
/// otherwise the `psi.agreement` deny.
fn rotation_agreement<'a>(
    engine: &'a Engine,
    party: &PartyCode,
    agreement: &str,
    now: Timestamp,
) -> Result<(&'a Agreement, &'a Deconfliction), Decision> {
    let Some(a) = engine.agreement(agreement) else {
        return Err(Decision::deny(
            "psi.agreement",
            format!("no agreement `{agreement}` is loaded"),
        ));
    };
    let day = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    match &a.deconfliction {
        None => Err(format!("agreement {} has no [deconfliction] section", a.id)),
        Some(_) if !a.in_force_for(party, day) => {
            Err(format!("agreement {} is not in force for {party} on {day}", a.id))
        }
        Some(d) if !d.parties.contains(party) => {
            Err(format!("agreement {}'s [deconfliction] does not name {party}", a.id))
        }
        Some(d) => Ok((a, d)),
    }
    .map_err(|reason| Decision::deny("psi.agreement", reason))
}

/// Whether `actor` may rotate `party`'s deconfliction key for `agreement` at `now`: the role
/// rule, then the agreement (it provides for deconfliction, is in force and names `party`).
/// Pure and cheap: what a caller decides before reading or preparing anything. The gate
/// decides the same again when the rotation is recorded.
pub fn rotation_decision(
    engine: &Engine,
    party: &PartyCode,
    actor: &Actor,
    agreement: &str,
    now: Timestamp,
) -> Decision {
    let subjects = [Subject::new(SubjectKind::PsiKey, agreement)];
    let role = role_decision(Action::PsiKeyRotate, &subjects, actor, party, now);
    if !role.is_permit() {
        return role;
    }
    match rotation_agreement(engine, party, agreement, now) {
        Ok((a, _)) => role.followed_by(Decision::permit(
            &format!("{}#deconfliction", a.id),
            format!("{} provides for deconfliction by {party}", a.id),
            Vec::new(),
        )),
        Err(deny) => role.followed_by(deny),
    }
}

/// The holdings a rotation prepares its set from, read outside the gate with the ledger size
/// they correspond to ([`Store::psi_holdings`]).
pub struct PsiHoldings {
    agreement: String,
    contact: String,
    mode: Mode,
    found: Vec<(Selector, Label)>,
    watermark: u64,
}

impl std::fmt::Debug for PsiHoldings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PsiHoldings")
            .field("agreement", &self.agreement)
            .field("holdings", &self.found.len())
            .field("watermark", &self.watermark)
            .finish_non_exhaustive()
    }
}

impl PsiHoldings {
    /// The agreement.
    pub fn agreement(&self) -> &str {
        &self.agreement
    }

    /// How many holdings (selector and label) were found, before grouping.
    pub fn len(&self) -> usize {
        self.found.len()
    }

    /// Whether none were found.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The ledger size read with the holdings: every entry below it is reflected in them.
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// A new key and the holdings prepared under it: one OPRF evaluation per distinct
    /// selector, on `threads` threads (at least one, the caller's), one chunk of
    /// [`CHUNK_ELEMENTS`] per thread at a time; `progress(done, total)` after each round,
    /// which stops the preparation by returning `false`. Costly (about 50 s per million
    /// selectors on one core): call it on a blocking thread, never inside the gate.
    ///
    /// # Errors
    /// [`GateError::Closed`] when `progress` stopped it; a key that cannot be made or an
    /// element that cannot be prepared (internal faults).
    pub fn prepare(
        self,
        threads: usize,
        mut progress: impl FnMut(u64, u64) -> bool,
    ) -> Result<PreparedEpoch, GateError> {
        let holdings = self.found.len() as u64;
        let key = HolderKey::generate(&mut rand::rngs::OsRng).map_err(psi_error)?;
        let entries = entente_psi::group_holdings(self.found);
        let total = entries.len() as u64;
        let mode = self.mode;
        let threads = threads.max(1);
        let mut prepared = Vec::with_capacity(entries.len().div_ceil(CHUNK_ELEMENTS));
        let mut done = 0u64;
        for round in entries.chunks(CHUNK_ELEMENTS * threads) {
            let parts: Vec<&[entente_psi::HolderEntry]> = round.chunks(CHUNK_ELEMENTS).collect();
            let results = if parts.len() == 1 {
                vec![key.prepare_chunk(mode, parts[0], &mut rand::rngs::OsRng)]
            } else {
                std::thread::scope(|s| {
                    let handles: Vec<_> = parts
                        .iter()
                        .map(|part| {
                            let key = &key;
                            s.spawn(move || key.prepare_chunk(mode, part, &mut rand::rngs::OsRng))
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| {
                            h.join().unwrap_or_else(|_| {
                                Err(entente_psi::PsiError::Label(
                                    "a preparing thread stopped".into(),
                                ))
                            })
                        })
                        .collect::<Vec<_>>()
                })
            };
            for r in results {
                prepared.push(r.map_err(psi_error)?);
            }
            done += round.len() as u64;
            if !progress(done, total) {
                return Err(GateError::Closed);
            }
        }
        drop(entries);
        let set =
            entente_psi::PreparedSet::assemble(key.epoch(), mode, prepared).map_err(psi_error)?;
        let summary = set.summary();
        let chunks = set.chunks(CHUNK_ELEMENTS);
        Ok(PreparedEpoch {
            agreement: self.agreement,
            contact: self.contact,
            mode,
            key,
            chunks,
            summary,
            watermark: self.watermark,
            holdings,
        })
    }
}

/// A key epoch prepared outside the gate: the new key, the prepared set in chunks, and the
/// watermark of the holdings it was prepared from. Recorded by [`RotatePsiKey::new`].
pub struct PreparedEpoch {
    agreement: String,
    contact: String,
    mode: Mode,
    key: HolderKey,
    chunks: Vec<SetChunk>,
    summary: SetSummary,
    watermark: u64,
    holdings: u64,
}

impl std::fmt::Debug for PreparedEpoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedEpoch")
            .field("agreement", &self.agreement)
            .field("epoch", &self.key.epoch())
            .field("set_size", &self.summary.size)
            .field("watermark", &self.watermark)
            .finish_non_exhaustive()
    }
}

impl PreparedEpoch {
    /// The new epoch.
    pub fn epoch(&self) -> entente_psi::EpochId {
        self.key.epoch()
    }

    /// Distinct selectors in the prepared set.
    pub fn set_size(&self) -> u64 {
        self.summary.size
    }
}

impl Store {
    /// The node's holdings of the selector kinds that `deconfliction` names, each labelled
    /// with its case (or `intel collection C`) and `contact`, read in one read transaction
    /// together with the ledger size (the watermark the prepared set will record): string
    /// values of data items, evidence digests (when `sha256` is named), STIX cyber-observables.
    /// A read: it takes no writer lock.
    ///
    /// # Errors
    /// Database errors.
    pub async fn psi_holdings(
        &self,
        agreement: &str,
        deconfliction: &Deconfliction,
        contact: &str,
    ) -> Result<PsiHoldings, StoreError> {
        let (rules, kinds) = (deconfliction.email, deconfliction.selectors.clone());
        let label = |case: String| Label { case_reference: case, contact: contact.to_owned() };
        let mut tx = self.pool.begin().await?;
        if self.backend() == crate::store::Backend::Postgres {
            // One snapshot for the watermark and every holding.
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let watermark: i64 = sqlx::query_scalar("SELECT size FROM ledger_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let mut found = Vec::new();
        let rows = sqlx::query(
            "SELECT case_id, content FROM data_items WHERE destroyed_at IS NULL AND content IS NOT NULL ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            let case: String = r.try_get(0)?;
            let content: String = r.try_get(1)?;
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&content) else { continue };
            let mut sels = Vec::new();
            selectors_in(&v, rules, &kinds, &mut sels);
            found.extend(sels.into_iter().map(|s| (s, label(case.clone()))));
        }
        drop(rows);
        if kinds.contains(&SelectorKind::Sha256) {
            let rows = sqlx::query(
                "SELECT case_id, sha256 FROM evidence_items WHERE destroyed_at IS NULL ORDER BY id",
            )
            .fetch_all(&mut *tx)
            .await?;
            for r in &rows {
                let case: String = r.try_get(0)?;
                let sha: String = r.try_get(1)?;
                let hex = sha.strip_prefix("sha256:").unwrap_or(&sha);
                if let Ok(s) = selector::parse(SelectorKind::Sha256, hex, rules) {
                    found.push((s, label(case)));
                }
            }
        }
        let rows = sqlx::query(
            "SELECT collection_id, raw FROM intel_objects WHERE latest = 1 AND kind IN \
             ('ipv4-addr', 'ipv6-addr', 'domain-name', 'url', 'email-addr', 'file') ORDER BY seq",
        )
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            let collection: String = r.try_get(0)?;
            let raw: String = r.try_get(1)?;
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&raw) else { continue };
            for s in stix_selectors(&v, rules, &kinds) {
                found.push((s, label(format!("intel collection {collection}"))));
            }
        }
        tx.rollback().await?;
        Ok(PsiHoldings {
            agreement: agreement.to_owned(),
            contact: contact.to_owned(),
            mode: deconfliction.mode,
            found,
            watermark: to_u64(watermark)?,
        })
    }

    /// This node's current (not destroyed) key epochs: agreement, epoch, when rotated.
    ///
    /// # Errors
    /// Database errors, a stored instant that does not parse.
    pub async fn psi_current_epochs(&self) -> Result<Vec<CurrentEpoch>, StoreError> {
        let rows = sqlx::query(
            "SELECT agreement, epoch, created_at FROM psi_keys WHERE destroyed_at IS NULL ORDER BY agreement",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let at: String = r.try_get(2)?;
                Ok(CurrentEpoch {
                    agreement: r.try_get(0)?,
                    epoch: r.try_get(1)?,
                    rotated_at: at.parse().map_err(|e| {
                        StoreError::Inconsistent(format!("psi_keys.created_at `{at}`: {e}"))
                    })?,
                })
            })
            .collect()
    }

    /// The parties that should have this node's current epoch of an agreement and were not
    /// sent it: named by the agreement's `[deconfliction]` (in `engine`, in force on `now`),
    /// pinned, and not among the epoch's recipients. `(agreement, party)` pairs.
    ///
    /// # Errors
    /// Database errors.
    pub async fn psi_unsent(
        &self,
        engine: &Engine,
        me: &PartyCode,
        now: Timestamp,
    ) -> Result<Vec<(String, PartyCode)>, StoreError> {
        let day = now.to_zoned(jiff::tz::TimeZone::UTC).date();
        let pinned: Vec<String> = sqlx::query_scalar("SELECT party FROM peers ORDER BY party")
            .fetch_all(&self.pool)
            .await?;
        let sent = sqlx::query(
            "SELECT k.agreement, r.party FROM psi_keys k JOIN psi_key_recipients r ON r.epoch = k.epoch \
             WHERE k.destroyed_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?)))
        .collect::<Result<std::collections::BTreeSet<_>, sqlx::Error>>()?;
        let mut out = Vec::new();
        for current in self.psi_current_epochs().await? {
            let Some(d) = engine
                .agreement(&current.agreement)
                .filter(|a| a.in_force_on(day))
                .and_then(|a| a.deconfliction.as_ref())
            else {
                continue;
            };
            for p in d.parties.iter().filter(|p| *p != me && pinned.iter().any(|x| x == p.as_str()))
            {
                if !sent.contains(&(current.agreement.clone(), p.as_str().to_owned())) {
                    out.push((current.agreement.clone(), p.clone()));
                }
            }
        }
        Ok(out)
    }
}

/// One of this node's current key epochs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CurrentEpoch {
    /// The agreement.
    pub agreement: String,
    /// The epoch (hex).
    pub epoch: String,
    /// When it was rotated to.
    pub rotated_at: Timestamp,
}

/// Record a new deconfliction key epoch for an agreement, prepared outside the gate
/// ([`PsiHoldings::prepare`]): the key and the prepared set sealed at rest, the previous
/// epoch's key destroyed, and the new public key with the prepared set sent to every other
/// party of the agreement's `[deconfliction]` that is pinned.
pub struct RotatePsiKey {
    agreement: String,
    contact: String,
    prepared: Option<PreparedEpoch>,
}

impl std::fmt::Debug for RotatePsiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatePsiKey")
            .field("agreement", &self.agreement)
            .field("prepared", &self.prepared)
            .finish_non_exhaustive()
    }
}

impl RotatePsiKey {
    /// Records `prepared` as the agreement's new epoch.
    pub fn new(prepared: PreparedEpoch) -> RotatePsiKey {
        RotatePsiKey {
            agreement: prepared.agreement.clone(),
            contact: prepared.contact.clone(),
            prepared: Some(prepared),
        }
    }

    /// A rotation refused before anything was read or prepared ([`rotation_decision`]
    /// denied): submitted so that the gate records the refusal. The gate never permits it.
    pub fn unprepared(agreement: impl Into<String>, contact: impl Into<String>) -> RotatePsiKey {
        RotatePsiKey { agreement: agreement.into(), contact: contact.into(), prepared: None }
    }
}

/// What a rotation made and sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RotationReport {
    /// The agreement.
    pub agreement: String,
    /// The new epoch (hex).
    pub epoch: String,
    /// Distinct selectors in the prepared set.
    pub set_size: u64,
    /// Chunks it is sent in.
    pub chunks: u64,
    /// The ledger size the holdings were read at: what was recorded from there on is in the
    /// next epoch's set.
    pub holdings_at: u64,
    /// Partners it was sent to.
    pub sent_to: Vec<PartyCode>,
    /// Parties of the agreement that are not pinned here (nothing sent).
    pub not_pinned: Vec<PartyCode>,
    /// The epochs whose keys this rotation destroyed.
    pub destroyed: Vec<String>,
}

/// What the recording reads in the gate's transaction: the agreement's epochs and the pins.
#[derive(Debug)]
pub struct RotationFacts {
    /// The ledger index of the agreement's latest epoch.
    latest: Option<u64>,
    pinned: Vec<PartyCode>,
}

impl GateCommand for RotatePsiKey {
    type Output = RotationReport;
    type Facts = RotationFacts;

    fn action(&self) -> Action {
        Action::PsiKeyRotate
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::PsiKey, &self.agreement)]
    }

    /// The new epoch, the set's size and digest and the recipients, known once made.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        check_rotation(&self.agreement, &self.contact)
    }

    async fn load(&self, cx: &mut EffectCx<'_>) -> Result<RotationFacts, GateError> {
        let latest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(ledger_index) FROM psi_keys WHERE agreement = $1")
                .bind(&self.agreement)
                .fetch_one(&mut **cx.tx)
                .await?;
        let pinned: Vec<String> = sqlx::query_scalar("SELECT party FROM peers ORDER BY party")
            .fetch_all(&mut **cx.tx)
            .await?;
        let pinned = pinned.iter().filter_map(|p| p.parse().ok()).collect();
        Ok(RotationFacts { latest: latest.map(to_u64).transpose()?, pinned })
    }

    fn decide(&self, cx: &DecideCx<'_>, facts: &RotationFacts) -> Ruling {
        let deny = |rule: &str, reason: String| {
            Ruling::of(cx.role.followed_by(Decision::deny(rule, reason)))
        };
        let (a, d) = match rotation_agreement(cx.engine, cx.party, &self.agreement, cx.now) {
            Ok(x) => x,
            Err(refusal) => return Ruling::of(cx.role.followed_by(refusal)),
        };
        let Some(p) = &self.prepared else {
            return deny(
                "psi.unprepared",
                format!("a rotation for {} is recorded only with its prepared set", a.id),
            );
        };
        if p.mode != d.mode {
            return deny(
                "psi.mode",
                format!(
                    "the set was prepared in {} mode; {} provides for {} mode",
                    p.mode, a.id, d.mode
                ),
            );
        }
        if let Some(latest) = facts.latest
            && latest >= p.watermark
        {
            return deny(
                "psi.superseded",
                format!(
                    "a rotation for {} was recorded at ledger entry {latest}, after this set's holdings were read at ledger size {}; rotate again",
                    a.id, p.watermark
                ),
            );
        }
        Ruling::of(cx.role.followed_by(Decision::permit(
            &format!("{}#deconfliction", a.id),
            format!(
                "a new deconfliction key epoch for {}: {} holdings of the kinds it names ({} distinct selectors), as recorded before ledger size {}",
                a.id, p.holdings, p.summary.size, p.watermark
            ),
            Vec::new(),
        )))
    }

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        facts: RotationFacts,
        _: &Ruling,
    ) -> Result<RotationReport, GateError> {
        let p = self.prepared.ok_or_else(|| {
            GateError::Internal("a permitted rotation has no prepared set".into())
        })?;
        let d = cx
            .engine
            .agreement(&self.agreement)
            .and_then(|a| a.deconfliction.as_ref())
            .ok_or_else(|| GateError::Internal("a permitted rotation has no section".into()))?;
        let epoch = p.key.epoch().to_string();
        let public_key = hex::encode(p.key.public_key().to_bytes());
        let summary = p.summary;
        let (now_text, index) = (cx.now_text(), cx.index);
        let sealed_secret = seal(cx.secret, "psi key", &epoch, p.key.to_bytes().as_ref())?;
        drop(p.key);

        let destroyed: Vec<String> = sqlx::query_scalar(
            "SELECT epoch FROM psi_keys WHERE agreement = $1 AND destroyed_at IS NULL ORDER BY epoch",
        )
        .bind(&self.agreement)
        .fetch_all(&mut **cx.tx)
        .await?;
        sqlx::query(
            "DELETE FROM psi_set_chunks WHERE epoch IN (SELECT epoch FROM psi_keys WHERE agreement = $1)",
        )
        .bind(&self.agreement)
        .execute(&mut **cx.tx)
        .await?;
        sqlx::query(
            "UPDATE psi_keys SET sealed_secret = NULL, destroyed_at = $1 WHERE agreement = $2 AND destroyed_at IS NULL",
        )
        .bind(&now_text)
        .bind(&self.agreement)
        .execute(&mut **cx.tx)
        .await?;
        let chunks = p.chunks;
        sqlx::query(
            "INSERT INTO psi_keys (epoch, agreement, mode, public_key, sealed_secret, set_size, set_digest, \
             chunks, created_at, destroyed_at, ledger_index, holdings_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11)",
        )
        .bind(&epoch)
        .bind(&self.agreement)
        .bind(mode_name(p.mode))
        .bind(&public_key)
        .bind(sealed_secret)
        .bind(to_i64(summary.size)?)
        .bind(summary.digest.to_string())
        .bind(to_i64(chunks.len() as u64)?)
        .bind(&now_text)
        .bind(to_i64(index)?)
        .bind(to_i64(p.watermark)?)
        .execute(&mut **cx.tx)
        .await?;
        let others = d.parties.iter().filter(|p| *p != cx.party);
        let (recipients, not_pinned): (Vec<PartyCode>, Vec<PartyCode>) =
            others.cloned().partition(|p| facts.pinned.contains(p));
        for (i, chunk) in chunks.into_iter().enumerate() {
            let bytes = chunk.to_json().map_err(GateError::encoding)?;
            let sealed = seal(cx.secret, "psi set", &format!("{epoch}/{i}"), &bytes)?;
            sqlx::query("INSERT INTO psi_set_chunks (epoch, idx, sealed) VALUES ($1, $2, $3)")
                .bind(&epoch)
                .bind(to_i64(i as u64)?)
                .bind(sealed)
                .execute(&mut **cx.tx)
                .await?;
            if recipients.is_empty() {
                continue;
            }
            let message = PsiKeyMessage {
                agreement: self.agreement.clone(),
                public_key: public_key.clone(),
                rotated_at: cx.now,
                chunk,
            };
            let payload = json(&message)?;
            for to in &recipients {
                crate::flows::outbox(cx.tx, to, MessageKind::PsiKey, &payload, &now_text, index)
                    .await?;
            }
        }
        for to in &recipients {
            insert_recipient(cx, &epoch, to).await?;
        }
        let total = summary.size.div_ceil(CHUNK_ELEMENTS as u64).max(1);
        let report = RotationReport {
            agreement: self.agreement,
            epoch,
            set_size: summary.size,
            chunks: total,
            holdings_at: p.watermark,
            sent_to: recipients,
            not_pinned,
            destroyed,
        };
        cx.record_digests(vec![(
            "rotation".into(),
            digest_json(&serde_json::json!({
                "epoch": report.epoch,
                "public_key": public_key,
                "set_size": report.set_size,
                "set_digest": summary.digest.to_string(),
                "chunks": report.chunks,
                "holdings_at": report.holdings_at,
                "sent_to": report.sent_to,
                "destroyed": report.destroyed,
            }))?,
        )]);
        Ok(report)
    }
}

async fn insert_recipient(
    cx: &mut EffectCx<'_>,
    epoch: &str,
    to: &PartyCode,
) -> Result<(), GateError> {
    sqlx::query(
        "INSERT INTO psi_key_recipients (epoch, party, sent_at, ledger_index) VALUES ($1, $2, $3, $4)",
    )
    .bind(epoch)
    .bind(to.as_str())
    .bind(cx.now_text())
    .bind(to_i64(cx.index)?)
    .execute(&mut **cx.tx)
    .await?;
    Ok(())
}

/// Send this node's current epoch of a deconfliction agreement (its public key and prepared
/// set, chunk by chunk, as the rotation sent it) to a party of the agreement that was not sent
/// it: one pinned after the rotation. The chunks are read back sealed and go to the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendPsiKey {
    /// The deconfliction agreement.
    pub agreement: String,
    /// The partner.
    pub to: PartyCode,
}

/// What sending reads: the agreement's current epoch, whether the partner is pinned and
/// was sent it.
#[derive(Debug)]
pub struct SendFacts {
    key: Option<(String, String, String, u64)>,
    pinned: bool,
    sent: bool,
}

impl GateCommand for SendPsiKey {
    type Output = String;
    type Facts = SendFacts;

    fn action(&self) -> Action {
        Action::PsiKeySend
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::PsiKey, &self.agreement),
            Subject::new(SubjectKind::Party, self.to.as_str()),
        ]
    }

    /// The epoch and its set, known once read.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        ids::check_identifier("agreement id", &self.agreement).map_err(GateError::Invalid)
    }

    async fn load(&self, cx: &mut EffectCx<'_>) -> Result<SendFacts, GateError> {
        let key = sqlx::query(
            "SELECT epoch, public_key, created_at, chunks FROM psi_keys \
             WHERE agreement = $1 AND destroyed_at IS NULL",
        )
        .bind(&self.agreement)
        .fetch_optional(&mut **cx.tx)
        .await?
        .map(|r| -> Result<_, GateError> {
            Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, to_u64(r.try_get(3)?)?))
        })
        .transpose()?;
        let pinned: Option<i64> = sqlx::query_scalar("SELECT 1 FROM peers WHERE party = $1")
            .bind(self.to.as_str())
            .fetch_optional(&mut **cx.tx)
            .await?;
        let sent: Option<i64> = match &key {
            Some((epoch, ..)) => {
                sqlx::query_scalar(
                    "SELECT 1 FROM psi_key_recipients WHERE epoch = $1 AND party = $2",
                )
                .bind(epoch)
                .bind(self.to.as_str())
                .fetch_optional(&mut **cx.tx)
                .await?
            }
            None => None,
        };
        Ok(SendFacts { key, pinned: pinned.is_some(), sent: sent.is_some() })
    }

    fn decide(&self, cx: &DecideCx<'_>, facts: &SendFacts) -> Ruling {
        let deny = |rule: &str, reason: String| {
            Ruling::of(cx.role.followed_by(Decision::deny(rule, reason)))
        };
        let a =
            match agreement_between(cx.engine, cx.party, &self.to, Some(&self.agreement), cx.now) {
                Ok((a, _)) => a,
                Err(why) => return deny("psi.no-agreement", why),
            };
        let Some((epoch, ..)) = &facts.key else {
            return deny(
                "psi.no-key",
                format!("{} has no deconfliction key for {} (psi rotate)", cx.party, a.id),
            );
        };
        if !facts.pinned {
            return deny("psi.not-pinned", format!("{} is not pinned here", self.to));
        }
        if facts.sent {
            return deny(
                "psi.sent",
                format!("epoch {epoch} of {} was sent to {} before", a.id, self.to),
            );
        }
        Ruling::of(cx.role.followed_by(Decision::permit(
            &format!("{}#deconfliction", a.id),
            format!("the current deconfliction key epoch {epoch} of {} to {}", a.id, self.to),
            Vec::new(),
        )))
    }

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        facts: SendFacts,
        _: &Ruling,
    ) -> Result<String, GateError> {
        let (epoch, public_key, created_at, chunks) =
            facts.key.ok_or_else(|| GateError::Internal("a permitted send has no key".into()))?;
        let rotated_at: Timestamp = created_at.parse().map_err(|e| {
            GateError::Store(StoreError::Inconsistent(format!("psi_keys.created_at: {e}")))
        })?;
        let (now_text, index) = (cx.now_text(), cx.index);
        let mut digests = Vec::new();
        for i in 0..chunks {
            let sealed: Vec<u8> = sqlx::query_scalar(
                "SELECT sealed FROM psi_set_chunks WHERE epoch = $1 AND idx = $2",
            )
            .bind(&epoch)
            .bind(to_i64(i)?)
            .fetch_one(&mut **cx.tx)
            .await?;
            let bytes = open(cx.secret, "psi set", &format!("{epoch}/{i}"), &sealed)?;
            let chunk = SetChunk::decode(&bytes, &LIMITS).map_err(|e| {
                GateError::Store(StoreError::Inconsistent(format!(
                    "psi set chunk {epoch}/{i}: {e}"
                )))
            })?;
            let message = PsiKeyMessage {
                agreement: self.agreement.clone(),
                public_key: public_key.clone(),
                rotated_at,
                chunk,
            };
            let payload = json(&message)?;
            digests.push(digest_json(&payload)?);
            crate::flows::outbox(cx.tx, &self.to, MessageKind::PsiKey, &payload, &now_text, index)
                .await?;
        }
        insert_recipient(cx, &epoch, &self.to).await?;
        cx.record_digests(vec![(
            "key".into(),
            digest_json(
                &serde_json::json!({"epoch": epoch, "public_key": public_key, "chunks": digests}),
            )?,
        )]);
        Ok(epoch)
    }
}
