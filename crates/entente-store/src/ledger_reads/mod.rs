//! Reads of the ledger itself through the gate (the API's entries route): recorded like any
//! other read, so that who looked at which part of the log is itself in the log.

use crate::gate::{DecideCx, EffectCx, GateCommand, GateError, PayloadDigests, Ruling};
use crate::store::{to_i64, to_u64};
use entente_core::{Action, Subject, SubjectKind};
use sqlx::Row;

/// Most entries one read returns.
pub const MAX_ENTRIES: u64 = 10_000;

/// Read ledger entries `from..to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadLedger {
    /// First index.
    pub from: u64,
    /// One past the last index.
    pub to: u64,
}

impl GateCommand for ReadLedger {
    /// `(index, canonical bytes)` of each entry.
    type Output = Vec<(u64, Vec<u8>)>;
    type Facts = ();

    fn action(&self) -> Action {
        Action::LedgerRead
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Ledger, format!("{}-{}", self.from, self.to))]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::SubjectsOnly)
    }

    fn validate(&self) -> Result<(), GateError> {
        let (from, to) = (self.from, self.to);
        if from >= to || to - from > MAX_ENTRIES {
            return Err(GateError::Invalid(format!(
                "range {from}..{to}: expected from < to and at most {MAX_ENTRIES} entries"
            )));
        }
        Ok(())
    }

    async fn load(&self, _cx: &mut EffectCx<'_>) -> Result<(), GateError> {
        Ok(())
    }

    fn decide(&self, cx: &DecideCx<'_>, _facts: &()) -> Ruling {
        Ruling::of(cx.role.clone())
    }

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        _: (),
        _: &Ruling,
    ) -> Result<Vec<(u64, Vec<u8>)>, GateError> {
        let rows = sqlx::query(
            "SELECT idx, entry FROM ledger_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
        )
        .bind(to_i64(self.from)?)
        .bind(to_i64(self.to)?)
        .fetch_all(&mut **cx.tx)
        .await?;
        rows.iter()
            .map(|r| Ok((to_u64(r.try_get(0)?)?, r.try_get(1)?)))
            .collect::<Result<Vec<_>, GateError>>()
    }
}
