//! Evidence that may be privileged (legal professional privilege, or other protected
//! third-party material in a seized mailbox or disk). Anyone who handles the item may flag
//! it; from then on it cannot be exported or packaged until a filter team (the
//! `filter-team` role: reviewers outside the case team) reviews it and either releases it,
//! withholds it for good, or replaces it by a redacted item, which is then what may leave.
//! Each step is a gate command and one ledger entry; the reason is recorded as a digest.

use crate::gate::{EffectCx, GateCommand, GateError, PayloadDigests, Ruling, decided_by_role};
use crate::store::{to_i64, to_u64};
use entente_core::{Action, ItemId, Subject, SubjectKind};
use serde_json::json;
use sqlx::Row as _;

/// Where a flagged item stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivilegeStatus {
    /// Flagged, awaiting review: may not leave.
    Flagged,
    /// Reviewed and not privileged: may leave.
    Released,
    /// Reviewed and privileged: may never leave.
    Withheld,
    /// Reviewed: privileged parts removed into another item, which may leave; this one not.
    Redacted,
}

impl PrivilegeStatus {
    /// The name stored and recorded.
    pub fn as_str(self) -> &'static str {
        match self {
            PrivilegeStatus::Flagged => "flagged",
            PrivilegeStatus::Released => "released",
            PrivilegeStatus::Withheld => "withheld",
            PrivilegeStatus::Redacted => "redacted",
        }
    }

    fn parse(s: &str) -> Result<PrivilegeStatus, GateError> {
        match s {
            "flagged" => Ok(PrivilegeStatus::Flagged),
            "released" => Ok(PrivilegeStatus::Released),
            "withheld" => Ok(PrivilegeStatus::Withheld),
            "redacted" => Ok(PrivilegeStatus::Redacted),
            other => Err(GateError::Internal(format!("stored privilege status `{other}`"))),
        }
    }
}

/// What the ledger records of a privilege row (its columns, without the reason).
pub(crate) fn payload(item: &str, status: &str, redacted_item: Option<&str>) -> serde_json::Value {
    json!({"item": item, "status": status, "redacted_item": redacted_item})
}

fn reason_ok(r: &str) -> Result<(), GateError> {
    if r.trim().is_empty() || r.len() > 2000 {
        Err(GateError::Invalid("reason: expected 1 to 2000 characters".into()))
    } else {
        Ok(())
    }
}

/// The item's privilege row: status, redacted item, the entry of its last change.
async fn row(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
) -> Result<Option<(PrivilegeStatus, Option<String>, u64)>, GateError> {
    let r = sqlx::query(
        "SELECT status, redacted_item, ledger_index FROM evidence_privilege WHERE item_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(r) = r else { return Ok(None) };
    let status: String = r.try_get(0)?;
    Ok(Some((PrivilegeStatus::parse(&status)?, r.try_get(1)?, to_u64(r.try_get(2)?)?)))
}

/// Why the item may not leave the node, if it may not: flagged and awaiting review, withheld,
/// or redacted into another item.
pub(crate) async fn hold(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
) -> Result<Option<String>, GateError> {
    Ok(match row(tx, id).await? {
        Some((PrivilegeStatus::Flagged, _, i)) => Some(format!(
            "evidence `{id}` is flagged as possibly privileged (ledger entry {i}) and awaits a filter team's review"
        )),
        Some((PrivilegeStatus::Withheld, _, i)) => Some(format!(
            "evidence `{id}` was withheld as privileged by the filter team (ledger entry {i})"
        )),
        Some((PrivilegeStatus::Redacted, r, i)) => Some(format!(
            "evidence `{id}` was redacted by the filter team (ledger entry {i}); export `{}` instead",
            r.unwrap_or_default()
        )),
        Some((PrivilegeStatus::Released, _, _)) | None => None,
    })
}

async fn ensure_item(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
) -> Result<String, GateError> {
    let r = sqlx::query("SELECT case_id, destroyed_at FROM evidence_items WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| GateError::NotFound(format!("evidence `{id}`")))?;
    let destroyed: Option<String> = r.try_get(1)?;
    if destroyed.is_some() {
        return Err(GateError::Conflict(format!("evidence `{id}` was destroyed")));
    }
    Ok(r.try_get(0)?)
}

/// Flag an item as possibly privileged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagPrivilege {
    /// Item id.
    pub id: ItemId,
    /// Why (recorded as a digest): e.g. "mailbox holds correspondence with counsel".
    pub reason: String,
}

impl GateCommand for FlagPrivilege {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::EvidencePrivilegeFlag
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Evidence, &self.id)]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([
            ("privilege", payload(self.id.as_str(), PrivilegeStatus::Flagged.as_str(), None)),
            ("reason", json!(self.reason)),
        ])
    }

    fn validate(&self) -> Result<(), GateError> {
        reason_ok(&self.reason)
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        let id = self.id.as_str();
        ensure_item(cx.tx, id).await?;
        let index = to_i64(cx.index)?;
        match row(cx.tx, id).await? {
            Some((
                s @ (PrivilegeStatus::Flagged
                | PrivilegeStatus::Withheld
                | PrivilegeStatus::Redacted),
                _,
                i,
            )) => {
                return Err(GateError::Conflict(format!(
                    "evidence `{id}` is already {} (ledger entry {i})",
                    s.as_str()
                )));
            }
            Some((PrivilegeStatus::Released, _, _)) => {
                sqlx::query(
                    "UPDATE evidence_privilege SET status = 'flagged', redacted_item = NULL, \
                     flagged_index = $1, ledger_index = $1 WHERE item_id = $2",
                )
                .bind(index)
                .bind(id)
                .execute(&mut **cx.tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO evidence_privilege (item_id, status, redacted_item, flagged_index, ledger_index) \
                     VALUES ($1, 'flagged', NULL, $2, $2)",
                )
                .bind(id)
                .bind(index)
                .execute(&mut **cx.tx)
                .await?;
            }
        }
        Ok(())
    }
}

/// What a filter team decides about a flagged item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReviewOutcome {
    /// Not privileged: the item may leave.
    Release,
    /// Privileged: the item never leaves.
    Withhold,
    /// Privileged parts removed: `item` (another item of the same case, already taken in)
    /// leaves in its place.
    Redact {
        /// The redacted item.
        item: ItemId,
    },
}

/// A filter team's review of a flagged item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewPrivilege {
    /// Item id.
    pub id: ItemId,
    /// The decision.
    pub outcome: ReviewOutcome,
    /// Why (recorded as a digest).
    pub reason: String,
}

impl ReviewPrivilege {
    fn status(&self) -> PrivilegeStatus {
        match self.outcome {
            ReviewOutcome::Release => PrivilegeStatus::Released,
            ReviewOutcome::Withhold => PrivilegeStatus::Withheld,
            ReviewOutcome::Redact { .. } => PrivilegeStatus::Redacted,
        }
    }

    fn redacted(&self) -> Option<&ItemId> {
        match &self.outcome {
            ReviewOutcome::Redact { item } => Some(item),
            _ => None,
        }
    }
}

impl GateCommand for ReviewPrivilege {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::EvidencePrivilegeReview
    }

    fn subjects(&self) -> Vec<Subject> {
        let mut s = vec![Subject::new(SubjectKind::Evidence, &self.id)];
        if let Some(r) = self.redacted() {
            s.push(Subject::new(SubjectKind::Evidence, r));
        }
        s
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        let redacted = self.redacted().map(ItemId::as_str);
        PayloadDigests::canonical([
            ("privilege", payload(self.id.as_str(), self.status().as_str(), redacted)),
            ("reason", json!(self.reason)),
        ])
    }

    fn validate(&self) -> Result<(), GateError> {
        reason_ok(&self.reason)?;
        if self.redacted() == Some(&self.id) {
            return Err(GateError::Invalid(
                "redacted item: expected another item than the one reviewed".into(),
            ));
        }
        Ok(())
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        let id = self.id.as_str();
        let case = ensure_item(cx.tx, id).await?;
        match row(cx.tx, id).await? {
            Some((PrivilegeStatus::Flagged, _, _)) => {}
            Some((s, _, i)) => {
                return Err(GateError::Conflict(format!(
                    "evidence `{id}` was already reviewed: {} (ledger entry {i})",
                    s.as_str()
                )));
            }
            None => {
                return Err(GateError::Conflict(format!(
                    "evidence `{id}` is not flagged as possibly privileged"
                )));
            }
        }
        if let Some(r) = self.redacted() {
            let other = ensure_item(cx.tx, r.as_str()).await?;
            if other != case {
                return Err(GateError::Invalid(format!(
                    "redacted item `{r}` belongs to case `{other}`, not `{case}`"
                )));
            }
            if hold(cx.tx, r.as_str()).await?.is_some() {
                return Err(GateError::Conflict(format!(
                    "redacted item `{r}` is itself under privilege review"
                )));
            }
        }
        sqlx::query(
            "UPDATE evidence_privilege SET status = $1, redacted_item = $2, ledger_index = $3 WHERE item_id = $4",
        )
        .bind(self.status().as_str())
        .bind(self.redacted().map(ItemId::as_str))
        .bind(to_i64(cx.index)?)
        .bind(id)
        .execute(&mut **cx.tx)
        .await?;
        Ok(())
    }
}
