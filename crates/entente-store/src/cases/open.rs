//! Opening and reading a case. Case openings are the bulk of a node's traffic, so they use
//! the gate's batch hook: one query finds which ids of the whole batch are taken, and the
//! rows are written with multi-row inserts before any other command runs.

use super::load_case;
use crate::gate::{
    BatchPlan, DecideCx, Deferred, EffectCx, GateCommand, GateError, MAX_PARAMS, PayloadDigests,
    Ruling, multi_row_insert, placeholders,
};
use crate::store::{Backend, CaseRecord, to_i64};
use entente_core::{Action, CaseId, PartyCode, Subject, SubjectKind, ids};
use sqlx::AssertSqlSafe;
use std::collections::HashSet;

/// Open a case led by this node's party.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenCase {
    /// Case id.
    pub id: CaseId,
    /// Title.
    pub title: String,
    /// Offense concepts.
    pub concepts: Vec<String>,
}

/// What a case entry records (`case`), also rebuilt from a row by `ledger verify --state`.
pub(crate) fn payload(
    id: &str,
    title: &str,
    concepts: &impl serde::Serialize,
) -> serde_json::Value {
    serde_json::json!({"id": id, "title": title, "concepts": concepts})
}

impl GateCommand for OpenCase {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::CaseOpen
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Case, &self.id)]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([(
            "case",
            payload(self.id.as_str(), &self.title, &self.concepts),
        )])
    }

    fn validate(&self) -> Result<(), GateError> {
        if self.title.trim().is_empty() || self.title.len() > 500 {
            return Err(GateError::Invalid("title: expected 1 to 500 characters".into()));
        }
        for c in &self.concepts {
            ids::check_identifier("offense concept", c).map_err(GateError::Invalid)?;
        }
        Ok(())
    }

    async fn load(&self, _cx: &mut EffectCx<'_>) -> Result<(), GateError> {
        Ok(())
    }

    fn decide(&self, cx: &DecideCx<'_>, _facts: &()) -> Ruling {
        Ruling::of(cx.role.clone())
    }

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        let opened_by = cx.actor.to_string();
        let (now, index) = (cx.now_text(), to_i64(cx.index)?);
        let rows = cx.deferred::<CaseRows>()?;
        if rows.taken.contains(self.id.as_str()) {
            return Err(GateError::Conflict(format!("case `{}` already exists", self.id)));
        }
        let concepts = serde_json::to_string(&self.concepts)
            .map_err(|e| GateError::Encoding(e.to_string()))?;
        rows.taken.insert(self.id.to_string());
        rows.pending.push((self.id.into(), self.title, concepts, opened_by, now, index));
        Ok(())
    }

    fn plan(&self, plan: &mut BatchPlan) {
        if let Some(rows) = plan.state::<OpenCase, CaseRows>(CaseRows::new) {
            rows.planned.push(self.id.to_string());
        }
    }
}

/// A case row waiting for its multi-row insert: id, title, concepts (JSON), opened by,
/// opened at, ledger index.
type CaseRow = (String, String, String, String, String, i64);

/// The case openings of one batch: which ids exist, and the rows not yet written.
struct CaseRows {
    backend: Backend,
    /// The node's party, the lead of every case it opens.
    party: String,
    /// Ids the batch's openings name, for the prefetch.
    planned: Vec<String>,
    /// Ids of the batch's case openings that already exist or were opened earlier in it.
    taken: HashSet<String>,
    /// Rows of permitted openings, written by the flush.
    pending: Vec<CaseRow>,
}

impl CaseRows {
    fn new(backend: Backend, party: &PartyCode) -> CaseRows {
        CaseRows {
            backend,
            party: party.as_str().to_owned(),
            planned: Vec::new(),
            taken: HashSet::new(),
            pending: Vec::new(),
        }
    }

    /// Finds which of the planned ids already exist, in one query per `MAX_PARAMS` ids (the
    /// gate holds the writer lock, and only the gate writes cases).
    async fn find_taken(&mut self, tx: &mut crate::gate::Tx) -> Result<(), GateError> {
        for chunk in self.planned.chunks(MAX_PARAMS) {
            // `(p1),(p2),…` is a valid IN list on both backends; the ids are bound.
            let list = placeholders(self.backend, 1, chunk.len());
            let sql = format!("SELECT id FROM cases WHERE id IN ({list})");
            let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql)).persistent(false);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            self.taken.extend(q.fetch_all(&mut **tx).await?);
        }
        self.pending.reserve(self.planned.len());
        self.planned.clear();
        Ok(())
    }

    /// Writes the pending rows: the cases, and the node's party as the lead member of each.
    async fn write(&mut self, tx: &mut crate::gate::Tx) -> Result<(), GateError> {
        const COLS: usize = 6;
        const MEMBER_COLS: usize = 5;
        for chunk in self.pending.chunks(MAX_PARAMS / COLS) {
            // The statement is built from a fixed table name and placeholders only.
            let sql = multi_row_insert(
                self.backend,
                "cases (id, title, concepts, opened_by, opened_at, ledger_index)",
                COLS,
                chunk.len(),
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for (id, title, concepts, by, at, index) in chunk {
                q = q.bind(id).bind(title).bind(concepts).bind(by).bind(at).bind(*index);
            }
            q.execute(&mut **tx).await?;
        }
        for chunk in self.pending.chunks(MAX_PARAMS / MEMBER_COLS) {
            // The statement is built from a fixed table name and placeholders only.
            let sql = multi_row_insert(
                self.backend,
                "case_members (case_id, party, role, added_at, ledger_index)",
                MEMBER_COLS,
                chunk.len(),
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for (id, _, _, _, at, index) in chunk {
                q = q.bind(id).bind(&self.party).bind("lead").bind(at).bind(*index);
            }
            q.execute(&mut **tx).await?;
        }
        self.pending.clear();
        Ok(())
    }
}

impl Deferred for CaseRows {
    fn prefetch<'a>(
        &'a mut self,
        tx: &'a mut crate::gate::Tx,
    ) -> crate::gate::BoxFuture<'a, Result<(), GateError>> {
        Box::pin(self.find_taken(tx))
    }

    fn flush<'a>(
        &'a mut self,
        tx: &'a mut crate::gate::Tx,
    ) -> crate::gate::BoxFuture<'a, Result<(), GateError>> {
        Box::pin(self.write(tx))
    }

    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// Read a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadCase {
    /// Case id.
    pub id: CaseId,
}

impl GateCommand for ReadCase {
    type Output = CaseRecord;
    type Facts = ();

    fn action(&self) -> Action {
        Action::CaseRead
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Case, &self.id)]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::SubjectsOnly)
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
    ) -> Result<CaseRecord, GateError> {
        load_case(cx.tx, self.id.as_str()).await
    }
}
