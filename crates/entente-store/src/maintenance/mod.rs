//! The operator's maintenance of the node: backups (`entente backup`), crash leftovers
//! swept from the blob store, and scrubs of the evidence blobs. Each is one ledger entry and one `maintenance_events` row
//! whose detail is counts, sizes and digests only.

use crate::gate::{EffectCx, GateCommand, GateError, PayloadDigests, Ruling};
use crate::store::{Backend, Store, StoreError, stamp, to_i64, to_u64};
use entente_core::digest::Sha256;
use entente_core::ledger::Hash;
use entente_core::{Action, PartyCode, Stamp, Subject, SubjectKind};

use sqlx::Row as _;
use std::collections::HashSet;
use std::path::Path;

/// `maintenance_events.kind` of a backup.
pub const KIND_BACKUP: &str = "backup";
/// `maintenance_events.kind` of a sweep.
pub const KIND_SWEEP: &str = "sweep";
/// `maintenance_events.kind` of a scrub.
pub const KIND_SCRUB: &str = "scrub";
/// `maintenance_events.kind` of the end of a hold of the ledger.
pub const KIND_RELEASE: &str = "ledger-release";

/// Record a backup: the digest of its manifest, the ledger it holds, its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordBackup {
    /// SHA-256 of the manifest file.
    pub manifest_sha256: Sha256,
    /// Ledger size the backup holds.
    pub ledger_size: u64,
    /// Root hash of that ledger.
    pub ledger_root: String,
    /// Files in the backup.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl RecordBackup {
    fn detail(&self) -> serde_json::Value {
        serde_json::json!({
            "manifest_sha256": self.manifest_sha256.to_hex(),
            "ledger_size": self.ledger_size,
            "ledger_root": self.ledger_root,
            "files": self.files,
            "bytes": self.bytes,
        })
    }
}

impl GateCommand for RecordBackup {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::NodeBackup
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::digest(SubjectKind::Backup, &self.manifest_sha256)]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([("backup", self.detail())])
    }

    fn validate(&self) -> Result<(), GateError> {
        if self.ledger_root.is_empty() || self.ledger_root.len() > 128 {
            return Err(GateError::Invalid("ledger_root: expected a tree hash".into()));
        }
        Ok(())
    }

    crate::gate::decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        insert_event(cx, KIND_BACKUP, &self.detail()).await
    }
}

/// Record a sweep of crash leftovers that removed something: counts and bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSweep {
    /// The node's party (the subject).
    pub party: PartyCode,
    /// Temporary blob parts removed.
    pub parts: u64,
    /// Their bytes.
    pub part_bytes: u64,
    /// Blobs with no committed row removed.
    pub orphans: u64,
    /// Their bytes.
    pub orphan_bytes: u64,
    /// The grace period applied, in seconds.
    pub grace_secs: u64,
}

impl RecordSweep {
    fn detail(&self) -> serde_json::Value {
        serde_json::json!({
            "parts": self.parts,
            "part_bytes": self.part_bytes,
            "orphans": self.orphans,
            "orphan_bytes": self.orphan_bytes,
            "grace_secs": self.grace_secs,
        })
    }
}

impl GateCommand for RecordSweep {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::MaintenanceSweep
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Node, self.party.as_str())]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([("sweep", self.detail())])
    }

    fn validate(&self) -> Result<(), GateError> {
        if self.parts + self.orphans == 0 {
            return Err(GateError::Invalid(
                "a sweep is recorded only when it removed something".into(),
            ));
        }
        Ok(())
    }

    crate::gate::decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        insert_event(cx, KIND_SWEEP, &self.detail()).await
    }
}

/// Record a scrub of the evidence blobs: how many were decrypted and hashed again, their
/// bytes, how many are damaged and the digest of the list naming them (the list itself stays
/// with the operator: blob names are content digests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordScrub {
    /// The node's party (the subject).
    pub party: PartyCode,
    /// Blobs read.
    pub blobs: u64,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// Blobs that are missing, do not decrypt, or hash to other content.
    pub damaged: u64,
    /// SHA-256 of the damaged blobs' content digests, one per line, sorted.
    pub damaged_sha256: Sha256,
    /// The rate limit applied, bytes per second (0: none).
    pub rate: u64,
}

impl RecordScrub {
    fn detail(&self) -> serde_json::Value {
        serde_json::json!({
            "blobs": self.blobs,
            "bytes": self.bytes,
            "damaged": self.damaged,
            "damaged_sha256": self.damaged_sha256.to_hex(),
            "rate": self.rate,
        })
    }
}

impl GateCommand for RecordScrub {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::MaintenanceScrub
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Node, self.party.as_str())]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([("scrub", self.detail())])
    }

    fn validate(&self) -> Result<(), GateError> {
        if self.damaged > self.blobs {
            return Err(GateError::Invalid("damaged: more than the blobs read".into()));
        }
        Ok(())
    }

    crate::gate::decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        insert_event(cx, KIND_SCRUB, &self.detail()).await
    }
}

/// End a hold of the ledger ([`crate::gate::Gate::hold`]): the operator has seen what the
/// witness holds and decides that the node goes on from the ledger it has (the witness will
/// go on alarming about this ledger until its own operator re-pins it). The entry records
/// the digest of the witness's checkpoint and the digest of the operator's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseHold {
    /// The node's party (the subject).
    pub party: PartyCode,
    /// The witness whose checkpoint caused the hold.
    pub witness: PartyCode,
    /// SHA-256 of that checkpoint (the signed note as the witness sent it).
    pub checkpoint_sha256: Sha256,
    /// Why the operator goes on (not recorded in clear).
    pub reason: String,
}

impl GateCommand for ReleaseHold {
    const WHILE_HELD: bool = true;
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::LedgerRelease
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Ledger, self.party.as_str()),
            Subject::new(SubjectKind::Party, self.witness.as_str()),
        ]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([
            ("checkpoint", serde_json::json!(self.checkpoint_sha256.to_hex())),
            ("reason", serde_json::json!(self.reason)),
        ])
    }

    fn validate(&self) -> Result<(), GateError> {
        if self.reason.trim().is_empty() || self.reason.len() > 2000 {
            return Err(GateError::Invalid("reason: expected 1 to 2000 characters".into()));
        }
        Ok(())
    }

    crate::gate::decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        let detail = serde_json::json!({
            "witness": self.witness,
            "checkpoint_sha256": self.checkpoint_sha256.to_hex(),
        });
        insert_event(cx, KIND_RELEASE, &detail).await
    }
}

/// An evidence blob to scrub: where it is, how to open it, what it must hash to, and the
/// items that hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrubBlob {
    /// SHA-256 of the plaintext, hex.
    pub sha256: String,
    /// Plaintext size.
    pub size: u64,
    /// The blob's name in the blob store.
    pub blob_name: String,
    /// Its wrapped data key.
    pub wrapped_key: String,
    /// The evidence items of this content.
    pub items: Vec<String>,
}

async fn insert_event(
    cx: &mut EffectCx<'_>,
    kind: &str,
    detail: &serde_json::Value,
) -> Result<(), GateError> {
    let detail = entente_core::canonical::to_canonical_vec(detail)
        .map_err(|e| GateError::Encoding(e.to_string()))?;
    let detail = String::from_utf8(detail).map_err(|e| GateError::Encoding(e.to_string()))?;
    sqlx::query(
        "INSERT INTO maintenance_events (ledger_index, kind, at, detail) VALUES ($1, $2, $3, $4)",
    )
    .bind(to_i64(cx.index)?)
    .bind(kind)
    .bind(cx.now_text())
    .bind(detail)
    .execute(&mut **cx.tx)
    .await?;
    Ok(())
}

/// One recorded maintenance event.
#[derive(Clone, Debug, PartialEq)]
pub struct MaintenanceEvent {
    /// Its ledger entry.
    pub ledger_index: u64,
    /// When.
    pub at: Stamp,
    /// Counts, sizes and digests.
    pub detail: serde_json::Value,
}

impl Store {
    /// The evidence blobs that still hold content (not destroyed), with their items, by
    /// content digest.
    ///
    /// # Errors
    /// Database errors.
    pub async fn scrub_blobs(&self) -> Result<Vec<ScrubBlob>, StoreError> {
        let rows = sqlx::query(
            "SELECT b.sha256, b.size, b.blob_name, b.wrapped_key, i.id FROM evidence_blobs b \
             LEFT JOIN evidence_items i ON i.sha256 = b.sha256 \
             WHERE b.destroyed_at IS NULL AND b.wrapped_key IS NOT NULL ORDER BY b.sha256, i.id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<ScrubBlob> = Vec::new();
        for r in &rows {
            let sha: String = r.try_get(0)?;
            let item: Option<String> = r.try_get(4)?;
            if let Some(last) = out.last_mut().filter(|b| b.sha256 == sha) {
                last.items.extend(item);
                continue;
            }
            out.push(ScrubBlob {
                sha256: sha,
                size: to_u64(r.try_get(1)?)?,
                blob_name: r.try_get(2)?,
                wrapped_key: r.try_get(3)?,
                items: item.into_iter().collect(),
            });
        }
        Ok(out)
    }

    /// The digests (hex) of the witnesses' checkpoints whose holds the operator released
    /// (`ledger.release`): a witness that shows the same checkpoint again does not hold the
    /// ledger again.
    ///
    /// # Errors
    /// Database errors, a stored detail that is not JSON.
    pub async fn released_checkpoints(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT detail FROM maintenance_events WHERE kind = $1")
                .bind(KIND_RELEASE)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|d| {
                let v: serde_json::Value = serde_json::from_str(d)
                    .map_err(|e| StoreError::Inconsistent(format!("maintenance detail: {e}")))?;
                Ok(v["checkpoint_sha256"].as_str().unwrap_or_default().to_owned())
            })
            .collect()
    }

    /// The latest maintenance event of `kind` ([`KIND_BACKUP`], [`KIND_SWEEP`]).
    ///
    /// # Errors
    /// Database errors, a stored detail that is not JSON.
    pub async fn last_maintenance(
        &self,
        kind: &str,
    ) -> Result<Option<MaintenanceEvent>, StoreError> {
        let row = sqlx::query(
            "SELECT ledger_index, at, detail FROM maintenance_events WHERE kind = $1 \
             ORDER BY ledger_index DESC LIMIT 1",
        )
        .bind(kind)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let detail: String = r.try_get(2)?;
        Ok(Some(MaintenanceEvent {
            ledger_index: to_u64(r.try_get(0)?)?,
            at: stamp(&r, 1)?,
            detail: serde_json::from_str(&detail)
                .map_err(|e| StoreError::Inconsistent(format!("maintenance event detail: {e}")))?,
        }))
    }

    /// The names of every blob that a committed row refers to (destroyed ones included).
    ///
    /// # Errors
    /// Database errors.
    pub async fn committed_blob_names(&self) -> Result<HashSet<String>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar("SELECT blob_name FROM evidence_blobs")
            .fetch_all(&self.pool)
            .await?;
        Ok(names.into_iter().collect())
    }

    /// The root hash of the ledger's tree of `size` entries, from the stored hashes.
    ///
    /// # Errors
    /// Database errors, a size beyond the ledger.
    pub async fn tree_root(&self, size: u64) -> Result<Hash, StoreError> {
        let (head, _) = self.ledger_head().await?;
        if size > head {
            return Err(StoreError::Inconsistent(format!(
                "the ledger has {head} entries, fewer than {size}"
            )));
        }
        Ok(crate::store::load_frontier(&self.pool, size).await?.root())
    }

    /// A consistent copy of a SQLite database, taken while it is in use (`VACUUM INTO`): a
    /// read of the database, which it does not change. `to` must not exist.
    ///
    /// # Errors
    /// A PostgreSQL store (use `pg_dump`), an existing target, database errors.
    pub async fn sqlite_snapshot(&self, to: &Path) -> Result<(), StoreError> {
        if self.backend() != Backend::Sqlite {
            return Err(StoreError::Inconsistent(
                "a snapshot with VACUUM INTO is SQLite's; back a PostgreSQL database up with pg_dump".into(),
            ));
        }
        let target = to.to_str().ok_or_else(|| {
            StoreError::Inconsistent(format!("{}: not a UTF-8 path", to.display()))
        })?;
        sqlx::query("VACUUM INTO $1").bind(target).execute(&self.pool).await?;
        Ok(())
    }
}
