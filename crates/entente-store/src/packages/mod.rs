//! Evidence packages between nodes, in the gate. Private to the crate; reached only from
//! [`crate::gate`].
//!
//! A package is too large for an envelope (many GiB), so it travels in two steps:
//!
//! 1. **send** (`package.send`, a case worker): the package file, already written by this
//!    node (every item in it released by an `exported` custody event, decided by the
//!    agreements), is offered to a pinned partner. The offer — digest, size, manifest digest,
//!    item ids, request — goes into the outbox in the same transaction, and the file becomes
//!    fetchable by that partner only (`packages_out`).
//! 2. **offer** (`package.offer`, the partner's envelope) is recorded on the receiving node
//!    (`packages_in`, status `pending`); its fetcher streams the file over mutual TLS, resuming
//!    after an interruption, and records **arrive** (`package.arrive`): complete with the
//!    offered SHA-256 and size, or — any other bytes — a deny naming both digests, the bytes
//!    discarded and the offer marked `refused` (tampering is never accepted silently).
//!
//! Importing the arrived file into a case is `evidence.receive`, as for a package handed over
//! on a disk.

use crate::flows::OutboxMessage;
use crate::gate::{
    DecideCx, EffectCx, GateCommand, GateError, PayloadDigests, Ruling, decided_by_role,
    digest_json,
};
use crate::store::{Store, StoreError, opt_stamp, stamp, to_i64, to_u64};
use entente_core::{Action, Actor, Decision, PartyCode, Stamp, Subject, SubjectKind};
use entente_evidence::custody::{CustodyEvent, CustodyKind};
use entente_wire::{MessageKind, PackageOffer};
use serde::Serialize;
use sqlx::Row;

/// The most items an offer may list.
pub(crate) const MAX_OFFER_ITEMS: usize = 100_000;
/// The largest package a partner may offer (1 TiB).
pub const MAX_PACKAGE_BYTES: u64 = 1 << 40;

/// A package offered by this node or to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PackageRecord {
    /// The partner (recipient of an outgoing package, sender of an incoming one).
    pub party: String,
    /// The offer.
    pub offer: PackageOffer,
    /// `offered` (outgoing) or `pending`, `arrived`, `refused` (incoming).
    pub status: String,
    /// Why it was refused.
    pub detail: Option<String>,
    /// When it was offered.
    pub offered_at: Stamp,
    /// Ledger entry of the offer (sent or received).
    pub offer_index: u64,
    /// When it arrived, complete and checked.
    pub arrived_at: Option<Stamp>,
    /// Ledger entry of its arrival.
    pub arrival_index: Option<u64>,
    /// Where the last, completing attempt started: bytes already on disk from interrupted
    /// attempts (0: fetched in one go).
    pub resumed_from: Option<u64>,
}

fn hex64(v: &str) -> bool {
    v.len() == 64 && v.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks an offer's own data.
pub(crate) fn validate_offer(o: &PackageOffer) -> Result<(), GateError> {
    if !hex64(&o.sha256) {
        return Err(GateError::Invalid("sha256: expected 64 lowercase hex digits".into()));
    }
    if !hex64(&o.manifest_sha256) {
        return Err(GateError::Invalid("manifest_sha256: expected 64 lowercase hex digits".into()));
    }
    if o.size == 0 || o.size > MAX_PACKAGE_BYTES {
        return Err(GateError::Invalid(format!(
            "size {}: expected 1 byte to {MAX_PACKAGE_BYTES} bytes",
            o.size
        )));
    }
    let name_ok = !o.file_name.is_empty()
        && o.file_name.len() <= 255
        && !o.file_name.contains(['/', '\\', '\0'])
        && o.file_name != "."
        && o.file_name != "..";
    if !name_ok {
        return Err(GateError::Invalid(format!(
            "file_name `{}`: expected a plain file name (1 to 255 bytes, no directory)",
            o.file_name.escape_debug()
        )));
    }
    if o.items.is_empty() || o.items.len() > MAX_OFFER_ITEMS {
        return Err(GateError::Invalid(format!(
            "items: expected 1 to {MAX_OFFER_ITEMS} evidence item ids"
        )));
    }
    for i in &o.items {
        entente_core::ids::check_identifier("evidence item id", i).map_err(GateError::Invalid)?;
    }
    if let Some(r) = &o.request {
        entente_core::ids::check_identifier("request id", r).map_err(GateError::Invalid)?;
    }
    Ok(())
}

/// Offer a package file written by this node to a pinned partner (outbox message
/// `evidence.package`); the partner may then fetch it by digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendPackage {
    /// The partner.
    pub to: PartyCode,
    /// What the partner is told.
    pub offer: PackageOffer,
    /// Each item's `exported` custody event digest (in the offer's item order): proof that
    /// everything in the package left through the gate.
    pub exports: Vec<(String, String)>,
}

impl GateCommand for SendPackage {
    type Output = OutboxMessage;
    type Facts = ();

    fn action(&self) -> Action {
        Action::PackageSend
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Package, &self.offer.sha256),
            Subject::new(SubjectKind::Party, self.to.as_str()),
        ]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        let exports = digest_json(&serde_json::json!(self.exports))?;
        Ok(PayloadDigests::given([
            ("package", format!("sha256:{}", self.offer.sha256)),
            ("manifest", format!("sha256:{}", self.offer.manifest_sha256)),
            ("exports", exports),
        ]))
    }

    fn validate(&self) -> Result<(), GateError> {
        validate_offer(&self.offer)?;
        let exports = &self.exports;
        if exports.len() != self.offer.items.len()
            || exports.iter().zip(&self.offer.items).any(|((item, _), id)| item != id)
        {
            return Err(GateError::Invalid(
                "exports: expected the `exported` custody event of each item, in the offer's order"
                    .into(),
            ));
        }
        Ok(())
    }

    decided_by_role!();

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        _: (),
        _: &Ruling,
    ) -> Result<OutboxMessage, GateError> {
        let SendPackage { to, offer, exports } = self;
        let (now_text, index) = (cx.now_text(), cx.index);
        let pinned: Option<String> = sqlx::query_scalar("SELECT party FROM peers WHERE party = $1")
            .bind(to.as_str())
            .fetch_optional(&mut **cx.tx)
            .await?;
        if pinned.is_none() {
            return Err(GateError::Invalid(format!(
                "no partner node is pinned for {to} (entente peer add)"
            )));
        }
        // Every item in the package left through the gate: its `exported` event is ours.
        for (item, digest) in &exports {
            let event: Option<String> = sqlx::query_scalar(
                "SELECT event FROM evidence_custody WHERE item_id = $1 AND digest = $2",
            )
            .bind(item)
            .bind(digest)
            .fetch_optional(&mut **cx.tx)
            .await?;
            let exported = event
                .and_then(|e| serde_json::from_str::<CustodyEvent>(&e).ok())
                .is_some_and(|e| e.event == CustodyKind::Exported);
            if !exported {
                return Err(GateError::Invalid(format!(
                    "evidence {item}: its custody event {digest} is not an `exported` event recorded by this node; package the items with `entente evidence package` first"
                )));
            }
        }
        let dup: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM packages_out WHERE recipient = $1 AND sha256 = $2")
                .bind(to.as_str())
                .bind(&offer.sha256)
                .fetch_optional(&mut **cx.tx)
                .await?;
        if dup.is_some() {
            return Err(GateError::Conflict(format!(
                "package sha256:{} was already sent to {to}",
                offer.sha256
            )));
        }
        sqlx::query(
            "INSERT INTO packages_out (recipient, sha256, size, file_name, manifest_sha256, request_id, items, sent_at, ledger_index) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(to.as_str())
        .bind(&offer.sha256)
        .bind(to_i64(offer.size)?)
        .bind(&offer.file_name)
        .bind(&offer.manifest_sha256)
        .bind(offer.request.clone())
        .bind(items_json(&offer.items)?)
        .bind(&now_text)
        .bind(to_i64(index)?)
        .execute(&mut **cx.tx)
        .await?;
        let payload =
            serde_json::to_value(&offer).map_err(|e| GateError::Encoding(e.to_string()))?;
        let (id, seq) =
            crate::flows::outbox(cx.tx, &to, MessageKind::PackageOffer, &payload, &now_text, index)
                .await?;
        Ok(OutboxMessage { id, recipient: to, kind: MessageKind::PackageOffer, payload, seq })
    }
}

/// A partner's offer of a package (from its envelope).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivePackageOffer {
    /// The offer.
    pub(crate) offer: PackageOffer,
}

impl GateCommand for ReceivePackageOffer {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::PackageOffer
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Package, &self.offer.sha256)]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::given([
            ("package", format!("sha256:{}", self.offer.sha256)),
            ("manifest", format!("sha256:{}", self.offer.manifest_sha256)),
        ]))
    }

    fn validate(&self) -> Result<(), GateError> {
        validate_offer(&self.offer)
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        let offer = self.offer;
        let Actor::Peer { party } = cx.actor else {
            return Err(GateError::Invalid("a package offer comes from a partner node".into()));
        };
        let dup: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM packages_in WHERE sender = $1 AND sha256 = $2")
                .bind(party.as_str())
                .bind(&offer.sha256)
                .fetch_optional(&mut **cx.tx)
                .await?;
        if dup.is_some() {
            return Err(GateError::Conflict(format!(
                "package sha256:{} was already offered by {party}",
                offer.sha256
            )));
        }
        sqlx::query(
            "INSERT INTO packages_in (sender, sha256, size, file_name, manifest_sha256, request_id, items, offered_at, offer_index, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending')",
        )
        .bind(party.as_str())
        .bind(&offer.sha256)
        .bind(to_i64(offer.size)?)
        .bind(&offer.file_name)
        .bind(&offer.manifest_sha256)
        .bind(offer.request.clone())
        .bind(items_json(&offer.items)?)
        .bind(cx.now_text())
        .bind(to_i64(cx.index)?)
        .execute(&mut **cx.tx)
        .await?;
        Ok(())
    }
}

/// An offered package fetched completely: its digest and size compared with the offer's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArrivePackage {
    /// The partner that offered it.
    pub from: PartyCode,
    /// The offered SHA-256, hex.
    pub sha256: String,
    /// The offered size.
    pub size: u64,
    /// The SHA-256 of the bytes fetched, hex.
    pub got_sha256: String,
    /// How many bytes were fetched.
    pub got_size: u64,
    /// Bytes already on disk, from interrupted attempts, when the completing attempt began.
    pub resumed_from: u64,
}

impl ArrivePackage {
    /// The rule and reason that refuse an arrival whose bytes are not those offered.
    fn mismatch(&self) -> Option<(&'static str, String)> {
        let ArrivePackage { from, sha256, size, got_sha256, got_size, .. } = self;
        (got_sha256 != sha256 || got_size != size).then(|| {
            (
                "federation#package-digest",
                format!(
                    "the package {from} offered is sha256:{sha256} ({size} bytes); the bytes it served are sha256:{got_sha256} ({got_size} bytes): discarded"
                ),
            )
        })
    }
}

impl GateCommand for ArrivePackage {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::PackageArrive
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Package, &self.sha256),
            Subject::new(SubjectKind::Party, self.from.as_str()),
        ]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::given([("fetched", format!("sha256:{}", self.got_sha256))]))
    }

    fn validate(&self) -> Result<(), GateError> {
        if hex64(&self.sha256) && hex64(&self.got_sha256) {
            Ok(())
        } else {
            Err(GateError::Invalid("package digests: expected 64 lowercase hex digits".into()))
        }
    }

    async fn load(&self, _cx: &mut EffectCx<'_>) -> Result<(), GateError> {
        Ok(())
    }

    /// Bytes other than those offered are refused.
    fn decide(&self, cx: &DecideCx<'_>, _: &()) -> Ruling {
        match self.mismatch() {
            Some((rule, reason)) => Ruling::of(Decision::deny(rule, reason)),
            None => Ruling::of(cx.role.clone()),
        }
    }

    /// The refusal of other bytes has an effect: the offer is marked `refused` with the
    /// reason, so that the fetcher does not fetch the same wrong bytes again.
    async fn on_deny(
        &self,
        cx: &mut EffectCx<'_>,
        facts: Option<&()>,
        _decision: &Decision,
    ) -> Result<(), GateError> {
        let Some((_, reason)) = self.mismatch().filter(|_| facts.is_some()) else {
            return Ok(());
        };
        sqlx::query(
            "UPDATE packages_in SET status = 'refused', detail = $1, arrived_at = $2, arrival_index = $3 \
             WHERE sender = $4 AND sha256 = $5 AND status = 'pending'",
        )
        .bind(reason)
        .bind(cx.now_text())
        .bind(to_i64(cx.index)?)
        .bind(self.from.as_str())
        .bind(&self.sha256)
        .execute(&mut **cx.tx)
        .await?;
        Ok(())
    }

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        let ArrivePackage { from, sha256, size, resumed_from, .. } = self;
        let n = sqlx::query(
            "UPDATE packages_in SET status = 'arrived', arrived_at = $1, arrival_index = $2, resumed_from = $6 \
             WHERE sender = $3 AND sha256 = $4 AND size = $5 AND status = 'pending'",
        )
        .bind(cx.now_text())
        .bind(to_i64(cx.index)?)
        .bind(from.as_str())
        .bind(&sha256)
        .bind(to_i64(size)?)
        .bind(to_i64(resumed_from)?)
        .execute(&mut **cx.tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(GateError::NotFound(format!(
                "a pending package sha256:{sha256} ({size} bytes) offered by {from}"
            )));
        }
        Ok(())
    }
}

fn items_json(items: &[String]) -> Result<String, GateError> {
    serde_json::to_string(items).map_err(|e| GateError::Encoding(e.to_string()))
}

fn record_from_row(row: &sqlx::any::AnyRow, outgoing: bool) -> Result<PackageRecord, StoreError> {
    let items: String = row.try_get(6)?;
    let offer = PackageOffer {
        sha256: row.try_get(1)?,
        size: to_u64(row.try_get(2)?)?,
        file_name: row.try_get(3)?,
        manifest_sha256: row.try_get(4)?,
        request: row.try_get(5)?,
        items: serde_json::from_str(&items)
            .map_err(|e| StoreError::Inconsistent(format!("stored package items: {e}")))?,
    };
    Ok(if outgoing {
        PackageRecord {
            party: row.try_get(0)?,
            offer,
            status: "offered".into(),
            detail: None,
            offered_at: stamp(row, 7)?,
            offer_index: to_u64(row.try_get(8)?)?,
            arrived_at: None,
            arrival_index: None,
            resumed_from: None,
        }
    } else {
        PackageRecord {
            party: row.try_get(0)?,
            offer,
            status: row.try_get(9)?,
            detail: row.try_get(10)?,
            offered_at: stamp(row, 7)?,
            offer_index: to_u64(row.try_get(8)?)?,
            arrived_at: opt_stamp(row, 11)?,

            arrival_index: row.try_get::<Option<i64>, _>(12)?.map(to_u64).transpose()?,
            resumed_from: row.try_get::<Option<i64>, _>(13)?.map(to_u64).transpose()?,
        }
    })
}

const OUT_COLUMNS: &str =
    "recipient, sha256, size, file_name, manifest_sha256, request_id, items, sent_at, ledger_index";
const IN_COLUMNS: &str = "sender, sha256, size, file_name, manifest_sha256, request_id, items, offered_at, offer_index, status, detail, arrived_at, arrival_index, resumed_from";

impl Store {
    /// The package `sha256` this node offered to `recipient`, if it did.
    pub async fn package_out(
        &self,
        recipient: &PartyCode,
        sha256: &str,
    ) -> Result<Option<PackageRecord>, StoreError> {
        let sql =
            format!("SELECT {OUT_COLUMNS} FROM packages_out WHERE recipient = $1 AND sha256 = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(recipient.as_str())
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| record_from_row(&r, true))
            .transpose()
    }

    /// Every package this node offered, oldest first.
    pub async fn packages_out(&self) -> Result<Vec<PackageRecord>, StoreError> {
        let sql = format!("SELECT {OUT_COLUMNS} FROM packages_out ORDER BY ledger_index");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| record_from_row(r, true))
            .collect()
    }

    /// Every package offered to this node, oldest first (`pending_only`: those still to fetch).
    pub async fn packages_in(&self, pending_only: bool) -> Result<Vec<PackageRecord>, StoreError> {
        let filter = if pending_only { "WHERE status = 'pending' " } else { "" };
        let sql = format!("SELECT {IN_COLUMNS} FROM packages_in {filter}ORDER BY offer_index");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| record_from_row(r, false))
            .collect()
    }

    /// For each item, the digest of its latest custody event if that event is `exported`
    /// (what [`SendPackage`] must name for a package just written).
    pub async fn latest_exports(
        &self,
        items: &[String],
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let row = sqlx::query(
                "SELECT digest, event FROM evidence_custody WHERE item_id = $1 ORDER BY seq DESC LIMIT 1",
            )
            .bind(item)
            .fetch_optional(&self.pool)
            .await?;
            let digest = match row {
                Some(r) => {
                    let event: String = r.try_get(1)?;
                    let exported = serde_json::from_str::<CustodyEvent>(&event)
                        .is_ok_and(|e| e.event == CustodyKind::Exported);
                    if exported { Some(r.try_get::<String, _>(0)?) } else { None }
                }
                None => None,
            };
            out.push((item.clone(), digest));
        }
        Ok(out)
    }
}
