//! The gate's writer: one task per process that runs the jobs waiting in its queue — of any
//! command type — in one transaction, appends their ledger entries, signs one checkpoint and
//! acknowledges each job only after the commit.

use super::{DecideCx, EffectCx, GateCommand, GateError, PayloadDigests, Ruling, Verdict};
use crate::federation::{self, Admission, Decoded, InboundEnvelope, InboxRow, VerifiedEnvelope};
use crate::store::{self, Backend, Store, StoreError, to_i64, to_u64};
use ed25519_dalek::SigningKey;
use entente_core::ledger::{self, Frontier, LedgerEntry, LogSigner};
use entente_core::{Action, Actor, Decision, PartyCode, Subject};
use entente_policy::engine::Engine;
use entente_wire::{AckItem, AckStatus};
use jiff::Timestamp;
use sqlx::{AssertSqlSafe, Row as _};
use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 2048;

/// Most scheduler yields spent gathering a batch (each only while the queue is growing).
const GATHER_ROUNDS: usize = 32;

/// Most bound parameters in one statement (SQLite allows 32766, PostgreSQL 65535).
pub(crate) const MAX_PARAMS: usize = 8000;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The transaction every effect runs in.
pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// State that the commands of one type keep across the jobs of a batch: checked in bulk
/// before the batch runs ([`Deferred::prefetch`]) and written in bulk
/// ([`Deferred::flush`]) before a command of another type runs and before the commit, so
/// that every other command sees its effects.
pub(crate) trait Deferred: Any + Send {
    /// Reads what the planned jobs need, once for the batch.
    fn prefetch<'a>(&'a mut self, tx: &'a mut Tx) -> BoxFuture<'a, Result<(), GateError>>;
    /// Writes what the jobs run so far left pending.
    fn flush<'a>(&'a mut self, tx: &'a mut Tx) -> BoxFuture<'a, Result<(), GateError>>;
    /// For the downcast in [`EffectCx::deferred`].
    fn as_any(&mut self) -> &mut dyn Any;
}

/// The deferred states of one batch, each with the command type that owns it.
#[derive(Default)]
pub(crate) struct Deferreds {
    states: Vec<(TypeId, Box<dyn Deferred>)>,
}

impl Deferreds {
    pub(crate) fn get<S: Deferred>(&mut self) -> Option<&mut S> {
        self.states.iter_mut().find_map(|(_, s)| s.as_any().downcast_mut::<S>())
    }

    async fn flush_except(&mut self, owner: TypeId, tx: &mut Tx) -> Result<(), GateError> {
        for (o, s) in &mut self.states {
            if *o != owner {
                s.flush(tx).await?;
            }
        }
        Ok(())
    }

    async fn flush_all(&mut self, tx: &mut Tx) -> Result<(), GateError> {
        for (_, s) in &mut self.states {
            s.flush(tx).await?;
        }
        Ok(())
    }
}

/// What the jobs of a batch plan before any runs (see [`GateCommand::plan`]).
pub struct BatchPlan {
    backend: Backend,
    party: PartyCode,
    states: Deferreds,
}

impl std::fmt::Debug for BatchPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchPlan").field("states", &self.states.states.len()).finish()
    }
}

impl BatchPlan {
    /// The batch state `S` owned by command type `C`, made by `make` on first use.
    pub(crate) fn state<C: GateCommand, S: Deferred>(
        &mut self,
        make: impl FnOnce(Backend, &PartyCode) -> S,
    ) -> Option<&mut S> {
        if self.states.get::<S>().is_none() {
            let s = make(self.backend, &self.party);
            self.states.states.push((TypeId::of::<C>(), Box::new(s)));
        }
        self.states.get::<S>()
    }
}

/// A job in the writer's queue, whatever its command type.
pub(crate) trait Job: Send {
    /// The batch hook of its command.
    fn plan(&self, plan: &mut BatchPlan);
    /// Decides, applies and records it in the batch's transaction. An error ends the batch.
    fn run<'a, 'w>(&'a mut self, st: &'a mut Step<'w>) -> BoxFuture<'a, Result<(), GateError>>
    where
        'w: 'a;
    /// Answers the submitter: with its result once committed, or with the rollback.
    fn settle(self: Box<Self>, rolled_back: Option<&str>);
}

type Sender<O> = oneshot::Sender<Result<Verdict<O>, GateError>>;
type Receiver<O> = oneshot::Receiver<Result<Verdict<O>, GateError>>;

fn settle_with<O>(
    reply: Sender<O>,
    result: Option<Result<Verdict<O>, GateError>>,
    rolled_back: Option<&str>,
) {
    let r = match rolled_back {
        Some(text) => Err(GateError::Store(StoreError::Inconsistent(format!(
            "transaction rolled back: {text}"
        )))),
        None => result.unwrap_or(Err(GateError::Closed)),
    };
    let _ = reply.send(r);
}

/// A job of one command type.
pub(crate) struct Typed<C: GateCommand> {
    actor: Actor,
    command: Option<C>,
    now: Timestamp,
    reply: Sender<C::Output>,
    result: Option<Result<Verdict<C::Output>, GateError>>,
}

impl<C: GateCommand> Typed<C> {
    pub(crate) fn new(actor: Actor, command: C, now: Timestamp) -> (Self, Receiver<C::Output>) {
        let (reply, rx) = oneshot::channel();
        (Typed { actor, command: Some(command), now, reply, result: None }, rx)
    }
}

impl<C: GateCommand> Job for Typed<C> {
    fn plan(&self, plan: &mut BatchPlan) {
        if let Some(c) = &self.command {
            c.plan(plan);
        }
    }

    fn run<'a, 'w>(&'a mut self, st: &'a mut Step<'w>) -> BoxFuture<'a, Result<(), GateError>>
    where
        'w: 'a,
    {
        Box::pin(async move {
            let Some(command) = self.command.take() else { return Ok(()) };
            st.deferred.flush_except(TypeId::of::<C>(), &mut st.tx).await?;
            let r = execute(st, &self.actor, command, self.now, None).await?;
            self.result = Some(r.map(|(v, _)| v));
            Ok(())
        })
    }

    fn settle(self: Box<Self>, rolled_back: Option<&str>) {
        let this = *self;
        settle_with(this.reply, this.result, rolled_back);
    }
}

/// A partner's verdict without its output (the partner is acknowledged, not answered).
fn unit<O>((v, _): (Verdict<O>, bool)) -> Verdict<()> {
    match v {
        Verdict::Permitted { index, decision, .. } => {
            Verdict::Permitted { index, decision, output: () }
        }
        Verdict::Denied { index, decision } => Verdict::Denied { index, decision },
    }
}

/// Checks an envelope's own fields before it is queued.
pub(crate) fn validate_envelope(envelope: &InboundEnvelope) -> Result<(), GateError> {
    if envelope.seq == 0 || envelope.id.is_empty() || envelope.id.len() > 200 {
        return Err(GateError::Invalid(format!(
            "envelope `{}`: sequence numbers start at 1 and ids are 1 to 200 characters",
            envelope.id
        )));
    }
    Ok(())
}

/// An envelope from a partner: admitted once and in order, then its content goes through the
/// decision it needs (an unreadable content is recorded as rejected).
pub(crate) struct InboundJob {
    actor: Actor,
    envelope: VerifiedEnvelope,
    now: Timestamp,
    /// Shared by the envelopes of one batch: set when one of them reused a sequence number.
    broken: Arc<AtomicBool>,
    reply: Sender<()>,
    result: Option<Result<Verdict<()>, GateError>>,
}

impl InboundJob {
    pub(crate) fn new(
        actor: Actor,
        envelope: VerifiedEnvelope,
        now: Timestamp,
        broken: Arc<AtomicBool>,
    ) -> (Self, Receiver<()>) {
        let (reply, rx) = oneshot::channel();
        (InboundJob { actor, envelope, now, broken, reply, result: None }, rx)
    }

    async fn admit_and_run(&mut self, st: &mut Step<'_>) -> Result<(), GateError> {
        let key = Some(self.envelope.signing_key.as_str()).filter(|k| !k.is_empty());
        let envelope = &self.envelope.inner;
        // The writer takes one batch's jobs in order, so an envelope after a reused number
        // sees the flag whatever transaction it falls in.
        if self.broken.load(Ordering::Acquire) {
            self.result = Some(Err(GateError::Conflict(format!(
                "envelope {} not admitted: an earlier envelope of its batch could not be taken under its number; send it again after that one",
                envelope.id
            ))));
            return Ok(());
        }
        let batch_last = st.inbox_last.get(envelope.from.as_str()).copied();
        match federation::admit(&mut st.tx, envelope, key, batch_last).await {
            Ok(Admission::Fresh) => {}
            Ok(Admission::Replay(item)) => {
                self.result = Some(Err(GateError::Replayed(item)));
                return Ok(());
            }
            Ok(Admission::Reused { reason, next_seq }) => {
                // Recorded as a refusal (no inbox row: the applied envelope keeps its number)
                // and raised as an alarm in the log; the sender is told where to go on from.
                tracing::error!(from = %envelope.from, seq = envelope.seq, %reason, "federation alarm: a sequence number reused with another payload");
                self.broken.store(true, Ordering::Release);
                let refusal = crate::peers::RejectEnvelope {
                    from: Some(envelope.from.clone()),
                    cert_sha256: Some(envelope.cert_sha256.clone()),
                    rule: "federation#seq-reuse".into(),
                    reason: format!("envelope {}: {reason}", envelope.id),
                    body_sha256: envelope.envelope_sha256.clone(),
                };
                let r = execute(st, &self.actor, refusal, self.now, None).await?.map(unit);
                self.result = Some(r.and_then(|v| {
                    Err(GateError::SendAgain(AckItem {
                        id: envelope.id.clone(),
                        seq: envelope.seq,
                        status: AckStatus::Resequence,
                        ledger_index: v.index(),
                        replayed: false,
                        reason: Some(reason),
                        next_seq: Some(next_seq),
                    }))
                }));
                return Ok(());
            }
            Ok(Admission::Gap { reason, expected }) => {
                self.broken.store(true, Ordering::Release);
                self.result = Some(Err(GateError::SendAgain(AckItem {
                    id: envelope.id.clone(),
                    seq: envelope.seq,
                    status: AckStatus::Resend,
                    ledger_index: 0,
                    replayed: false,
                    reason: Some(reason),
                    next_seq: Some(expected),
                })));
                return Ok(());
            }
            Err(e) if e.is_fatal() => return Err(e),
            Err(e) => {
                self.result = Some(Err(e));
                return Ok(());
            }
        }
        let reject = |rule: &str, reason: String| {
            Decoded::Refused(crate::peers::RejectEnvelope {
                from: Some(envelope.from.clone()),
                cert_sha256: Some(envelope.cert_sha256.clone()),
                rule: rule.into(),
                reason: format!("envelope {}: {reason}", envelope.id),
                body_sha256: envelope.envelope_sha256.clone(),
            })
        };
        let mut refused = true;
        let command = match federation::decode(envelope) {
            Ok(Decoded::Datum(c)) => {
                match federation::check_case(&mut st.tx, &envelope.from, &c).await? {
                    Ok(()) => {
                        refused = false;
                        Decoded::Datum(c)
                    }
                    Err(reason) => reject("federation#case-member", reason),
                }
            }
            Ok(c) => {
                refused = false;
                c
            }
            Err(reason) => reject("federation#content", reason),
        };
        let (actor, now, inbound) = (&self.actor, self.now, Some((envelope, refused)));
        let r = match command {
            Decoded::Datum(c) => execute(st, actor, c, now, inbound).await?.map(unit),
            Decoded::Consent(c) => execute(st, actor, c, now, inbound).await?.map(unit),
            Decoded::Request(c) => execute(st, actor, c, now, inbound).await?.map(unit),
            Decoded::RequestEvent(c) => execute(st, actor, c, now, inbound).await?.map(unit),
            Decoded::PackageOffer(c) => execute(st, actor, c, now, inbound).await?.map(unit),
            Decoded::Incident(c) => execute(st, actor, c, now, inbound).await?.map(unit),
            Decoded::CaseUpdate(c) => execute(st, actor, c, now, inbound).await?.map(unit),
            Decoded::PsiKey(c) => execute(st, actor, c, now, inbound).await?.map(unit),
            Decoded::PsiQuery(c) => execute(st, actor, c, now, inbound).await?.map(unit),
            Decoded::PsiEvaluation(c) => execute(st, actor, c, now, inbound).await?.map(unit),
            Decoded::Refused(c) => execute(st, actor, c, now, inbound).await?.map(unit),
        };
        self.result = Some(r);
        Ok(())
    }
}

impl Job for InboundJob {
    fn plan(&self, _plan: &mut BatchPlan) {}

    fn run<'a, 'w>(&'a mut self, st: &'a mut Step<'w>) -> BoxFuture<'a, Result<(), GateError>>
    where
        'w: 'a,
    {
        Box::pin(async move {
            st.deferred.flush_all(&mut st.tx).await?;
            self.admit_and_run(st).await
        })
    }

    fn settle(self: Box<Self>, rolled_back: Option<&str>) {
        let this = *self;
        settle_with(this.reply, this.result, rolled_back);
    }
}

/// A command's result before the commit tells whether it stands; `bool` says whether it was
/// a partner's message recorded as rejected.
type Executed<O> = Result<(Verdict<O>, bool), GateError>;

/// decide → apply → record for one command inside the batch's transaction. The outer error
/// ends the batch; the inner one answers only this command (nothing of it was recorded).
async fn execute<C: GateCommand>(
    st: &mut Step<'_>,
    actor: &Actor,
    command: C,
    now: Timestamp,
    inbound: Option<(&InboundEnvelope, bool)>,
) -> Result<Executed<C::Output>, GateError> {
    // An envelope refused before its content was decided is recorded as rejected.
    let mut rejected = inbound.is_some_and(|(_, refused)| refused);
    let inbound = inbound.map(|(m, _)| m);
    let w = st.writer;
    let action = command.action();
    let subjects = command.subjects();
    let digests = command.payload_digests()?;
    let role = command.role(&subjects, actor, &w.party, now);
    let index = st.frontier.size();
    let mut cx = EffectCx {
        tx: &mut st.tx,
        backend: w.store.backend(),
        party: &w.party,
        engine: &w.engine,
        secret: &w.secret,
        actor,
        now,
        index,
        batch_entries: &st.entries,
        deferred: &mut st.deferred,
        digests: Vec::new(),
    };
    let mut facts = None;
    let mut ruling = Ruling::of(role.clone());
    if role.is_permit() {
        match command.load(&mut cx).await {
            Ok(f) => {
                let dcx = DecideCx {
                    party: &w.party,
                    engine: &w.engine,
                    actor,
                    now,
                    role: &role,
                    inbound: inbound.is_some(),
                };
                ruling = command.decide(&dcx, &f);
                facts = Some(f);
            }
            Err(e) if e.is_fatal() => return Err(e),
            // A partner's message about something this node does not hold is recorded as
            // rejected (and acknowledged with the reason).
            Err(e) if inbound.is_some() => {
                ruling = Ruling::of(Decision::deny("federation#content", e.to_string()));
                rejected = true;
            }
            Err(e) => return Ok(Err(e)),
        }
    }
    if !ruling.decision.is_permit() {
        command.on_deny(&mut cx, facts.as_ref(), &ruling.decision).await?;
    }
    let output = match facts {
        Some(f) if ruling.decision.is_permit() => match command.apply(&mut cx, f, &ruling).await {
            Ok(o) => Some(o),
            Err(e) if e.is_fatal() => return Err(e),
            // A partner's message that cannot take effect is recorded as rejected, so that it
            // is acknowledged (and never retried) with the reason.
            Err(e) if inbound.is_some() => {
                ruling = Ruling::of(Decision::deny("federation#content", e.to_string()));
                rejected = true;
                None
            }
            Err(e) => return Ok(Err(e)),
        },
        _ => None,
    };
    let extra = std::mem::take(&mut cx.digests);
    drop(cx);
    let mut payload_hashes = match digests {
        PayloadDigests::Of(map) => map,
        PayloadDigests::SubjectsOnly => BTreeMap::new(),
        PayloadDigests::FromEffect => {
            if output.is_some() && extra.is_empty() {
                return Err(GateError::Internal(format!(
                    "{action} records digests from its effect, and its effect recorded none"
                )));
            }
            BTreeMap::new()
        }
    };
    payload_hashes.extend(extra);
    if let Some(m) = inbound {
        payload_hashes.insert("envelope".into(), m.envelope_sha256.clone());
    }
    let decision = ruling.decision;
    let inbound = inbound.map(|m| {
        let status = match (&output, rejected) {
            (_, true) => AckStatus::Rejected,
            (Some(_), false) => AckStatus::Applied,
            (None, false) => AckStatus::Denied,
        };
        (m, status)
    });
    let index = st.record(actor, action, subjects, &decision, payload_hashes, inbound, now)?;
    Ok(Ok((
        match output {
            Some(output) => Verdict::Permitted { index, decision, output },
            None => Verdict::Denied { index, decision },
        },
        rejected,
    )))
}

/// The state of one batch's transaction.
pub(crate) struct Step<'w> {
    writer: &'w Writer,
    tx: Tx,
    frontier: Frontier,
    entries: Vec<(u64, Vec<u8>)>,
    /// `(subject, entry)` for `ledger_subjects`.
    subjects: Vec<(String, u64)>,
    hashes: Vec<(u64, [u8; 32])>,
    /// Inbox rows are written together at the end; admissions later in the batch see the
    /// sequence numbers admitted earlier in it.
    inbox_rows: Vec<InboxRow>,
    inbox_last: HashMap<String, u64>,
    deferred: Deferreds,
    last_now: Option<Timestamp>,
}

impl Step<'_> {
    /// Appends one ledger entry (and the envelope's inbox row) to the batch.
    #[expect(clippy::too_many_arguments, reason = "the fields of one ledger entry")]
    fn record(
        &mut self,
        actor: &Actor,
        action: Action,
        subjects: Vec<Subject>,
        decision: &Decision,
        payload_hashes: BTreeMap<String, String>,
        inbound: Option<(&InboundEnvelope, AckStatus)>,
        now: Timestamp,
    ) -> Result<u64, GateError> {
        // No entry for a caller that no authenticator admitted: what it chose (a path, an
        // id) would stay in the public log for good. Its refusals are recorded in aggregate
        // by the node (`refusals.record`).
        if matches!(actor, Actor::Anonymous) {
            return Err(GateError::Internal(format!(
                "{action}: an unauthenticated caller's command reached the ledger"
            )));
        }
        let index = self.frontier.size();
        push_subjects(&mut self.subjects, &subjects, index);
        let entry = LedgerEntry {
            v: ledger::ENTRY_FORMAT,
            index,
            time: format!("{now:.6}"),
            node: self.writer.party.clone(),
            actor: actor.clone(),
            action,
            subjects,
            decision: decision.outcome,
            rules: decision.rules.clone(),
            obligations: decision.obligations.clone(),
            reason: decision.reason.clone(),
            payload_hashes,
            unverified_basis: decision.unverified_basis.clone(),
        };
        if let Some((m, status)) = inbound {
            self.inbox_last.insert(m.from.as_str().to_owned(), m.seq);
            self.inbox_rows.push(InboxRow::new(m, status, index, now)?);
        }
        let bytes = entry.encode().map_err(|e| GateError::Encoding(e.to_string()))?;
        for (i, h) in self.frontier.push(ledger::record_hash(&bytes)) {
            self.hashes.push((i, h.0));
        }
        self.entries.push((index, bytes));
        self.last_now = Some(now);
        Ok(index)
    }
}

/// The pseudonymization secret, derived from the node key: the root of the keys the store
/// derives (keyed hashes, at-rest sealing). It never leaves the node.
pub(crate) fn pseudonym_secret(key: &SigningKey) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(b"entente pseudonym secret v1\0");
    h.update(key.to_bytes());
    h.finalize().into()
}

pub(crate) struct Writer {
    store: Store,
    key: SigningKey,
    party: PartyCode,
    origin: String,
    /// The frontier after the last commit of this process; checked against the head row.
    cache: Option<Frontier>,
    /// Whether this process has seen that the entries written before `ledger_subjects` are
    /// indexed (every later entry is indexed in the transaction that appends it).
    indexed: bool,
    engine: Arc<Engine>,
    /// The pseudonymization secret, derived from the node key; it never leaves the node.
    secret: [u8; 32],
}

impl Writer {
    pub(crate) fn new(
        store: Store,
        key: SigningKey,
        party: PartyCode,
        origin: String,
        engine: Arc<Engine>,
    ) -> Writer {
        let secret = pseudonym_secret(&key);
        Writer { store, key, party, origin, cache: None, indexed: false, engine, secret }
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Box<dyn Job>>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            // Take what is queued; while that keeps growing, let the submitters that the last
            // commit woke run and enqueue too, so a batch is not cut short by scheduling.
            for _ in 0..GATHER_ROUNDS {
                let before = batch.len();
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                if batch.len() >= MAX_BATCH || batch.len() == before {
                    break;
                }
                tokio::task::yield_now().await;
            }
            match self.commit_batch(&mut batch).await {
                Ok(()) => {
                    for job in batch {
                        job.settle(None);
                    }
                }
                Err(e) => {
                    self.cache = None;
                    self.indexed = false;
                    tracing::error!(error = %e, "gate transaction failed; batch rolled back");
                    let text = e.to_string();
                    for job in batch {
                        job.settle(Some(&text));
                    }
                }
            }
        }
    }

    /// Runs `jobs` in one transaction: the writer lock, each job in order, the batch's
    /// deferred writes, inbox rows, entries, tree hashes and one signed checkpoint.
    pub(crate) async fn commit_batch(
        &mut self,
        jobs: &mut [Box<dyn Job>],
    ) -> Result<(), GateError> {
        let mut tx = self.store.pool.begin().await?;
        // Take the writer lock first (row lock on PostgreSQL, RESERVED lock on SQLite); the
        // same statement returns the committed size under that lock.
        let size = to_u64(
            sqlx::query_scalar(
                "UPDATE ledger_head SET epoch = epoch + 1 WHERE id = 1 RETURNING size",
            )
            .fetch_one(&mut *tx)
            .await?,
        )?;
        let frontier = match self.cache.take() {
            Some(f) if f.size() == size => f,
            _ => store::load_frontier(&mut *tx, size).await?,
        };
        if !self.indexed {
            index_earlier_subjects(&mut tx, self.store.backend(), size).await?;
        }
        let backend = self.store.backend();
        let mut plan =
            BatchPlan { backend, party: self.party.clone(), states: Deferreds::default() };
        for job in jobs.iter() {
            job.plan(&mut plan);
        }
        let mut deferred = plan.states;
        for (_, s) in &mut deferred.states {
            s.prefetch(&mut tx).await?;
        }
        let mut st = Step {
            writer: &*self,
            tx,
            frontier,
            entries: Vec::with_capacity(jobs.len()),
            subjects: Vec::with_capacity(jobs.len() * 2),
            hashes: Vec::with_capacity(jobs.len() * 2),
            inbox_rows: Vec::new(),
            inbox_last: HashMap::new(),
            deferred,
            last_now: None,
        };
        for job in jobs.iter_mut() {
            job.run(&mut st).await?;
        }
        let Step {
            mut tx,
            frontier,
            entries,
            subjects,
            hashes,
            inbox_rows,
            mut deferred,
            last_now,
            ..
        } = st;
        deferred.flush_all(&mut tx).await?;
        federation::record_inbox(&mut tx, backend, &inbox_rows).await?;
        if let Some(now) = last_now {
            insert_pairs(&mut tx, backend, "ledger_entries (idx, entry)", &entries).await?;
            insert_subjects(&mut tx, backend, &subjects).await?;
            let hashes: Vec<(u64, Vec<u8>)> =
                hashes.into_iter().map(|(i, h)| (i, h.to_vec())).collect();
            insert_pairs(&mut tx, backend, "ledger_hashes (id, hash)", &hashes).await?;
            let note = LogSigner::new(&self.origin, &self.key)
                .sign_checkpoint(frontier.size(), frontier.root())
                .map_err(|e| GateError::Internal(format!("signing the checkpoint: {e}")))?;
            sqlx::query(
                "INSERT INTO ledger_checkpoints (size, note, created_at) VALUES ($1, $2, $3)",
            )
            .bind(to_i64(frontier.size())?)
            .bind(note.clone())
            .bind(format!("{now:.6}"))
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE ledger_head SET size = $1, checkpoint = $2 WHERE id = 1")
                .bind(to_i64(frontier.size())?)
                .bind(note)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.indexed = true;
        self.cache = Some(frontier);
        Ok(())
    }
}

/// Writes `(subject, entry)` rows of `ledger_subjects`.
async fn insert_subjects(
    tx: &mut Tx,
    backend: Backend,
    rows: &[(String, u64)],
) -> Result<(), GateError> {
    for chunk in rows.chunks(MAX_PARAMS / 2) {
        let sql = multi_row_insert(backend, "ledger_subjects (subject, idx)", 2, chunk.len());
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for (s, i) in chunk {
            q = q.bind(s.clone()).bind(to_i64(*i)?);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Indexes the entries below `size` that were written before `ledger_subjects` existed, once:
/// the first writer to commit after the migration finds `ledger_subjects_upto` empty, reads and
/// decodes those entries a chunk at a time under the writer lock the caller holds, and records
/// the size it reached. Every later entry is indexed in the transaction that appends it.
async fn index_earlier_subjects(tx: &mut Tx, backend: Backend, size: u64) -> Result<(), GateError> {
    const CHUNK: u64 = 10_000;
    let done: Option<i64> =
        sqlx::query_scalar("SELECT size FROM ledger_subjects_upto WHERE id = 1")
            .fetch_one(&mut **tx)
            .await?;
    if done.is_some() {
        return Ok(());
    }
    if size > 0 {
        tracing::info!(size, "indexing the subjects of the ledger's earlier entries");
    }
    let mut from = 0;
    while from < size {
        let to = (from + CHUNK).min(size);
        let rows =
            sqlx::query("SELECT idx, entry FROM ledger_entries WHERE idx >= $1 AND idx < $2")
                .bind(to_i64(from)?)
                .bind(to_i64(to)?)
                .fetch_all(&mut **tx)
                .await?;
        let mut subjects = Vec::new();
        for r in &rows {
            let index = to_u64(r.try_get(0)?)?;
            let bytes: Vec<u8> = r.try_get(1)?;
            let entry = LedgerEntry::decode(&bytes)
                .map_err(|e| StoreError::Inconsistent(format!("ledger entry {index}: {e}")))?;
            push_subjects(&mut subjects, &entry.subjects, index);
        }
        insert_subjects(tx, backend, &subjects).await?;
        from = to;
    }
    sqlx::query("UPDATE ledger_subjects_upto SET size = $1 WHERE id = 1")
        .bind(to_i64(size)?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Adds `(subject, entry)` for each of entry `index`'s subjects to `out`, once each.
fn push_subjects(out: &mut Vec<(String, u64)>, subjects: &[Subject], index: u64) {
    let start = out.len();
    for s in subjects {
        let text = s.to_string();
        if !out[start..].iter().any(|(t, _)| *t == text) {
            out.push((text, index));
        }
    }
}

/// `rows` parenthesised groups of `cols` placeholders, comma-separated. SQLite gets anonymous
/// `?` placeholders: it resolves each named `$N` by a linear search of the statement's
/// parameter list, which is quadratic in a multi-row statement (a third of the writer's CPU
/// time at a few thousand parameters). PostgreSQL needs `$N`.
pub(crate) fn placeholders(backend: Backend, cols: usize, rows: usize) -> String {
    let mut sql = String::with_capacity(rows * cols * 7);
    for r in 0..rows {
        sql.push_str(if r > 0 { ",(" } else { "(" });
        for c in 0..cols {
            if c > 0 {
                sql.push(',');
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(r * cols + c + 1).to_string());
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// `INSERT INTO {table_cols} VALUES (…), …` for `rows` rows of `cols` placeholders.
pub(crate) fn multi_row_insert(
    backend: Backend,
    table_cols: &str,
    cols: usize,
    rows: usize,
) -> String {
    format!("INSERT INTO {table_cols} VALUES {}", placeholders(backend, cols, rows))
}

/// Inserts `(integer, blob)` rows with multi-row statements.
async fn insert_pairs(
    tx: &mut Tx,
    backend: Backend,
    table_cols: &str,
    rows: &[(u64, Vec<u8>)],
) -> Result<(), GateError> {
    for chunk in rows.chunks(MAX_PARAMS / 2) {
        // The statement is built from a fixed table name and placeholders only.
        let sql = multi_row_insert(backend, table_cols, 2, chunk.len());
        // Batch-sized statements are not worth a slot in the prepared-statement cache.
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for (k, v) in chunk {
            q = q.bind(to_i64(*k)?).bind(v.clone());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::{OpenCase, ReadCase};
    use crate::gate::EffectCx;
    use entente_core::Role;

    fn open(id: &str) -> OpenCase {
        OpenCase { id: id.parse().unwrap(), title: format!("Case {id}"), concepts: vec![] }
    }

    /// Stores on SQLite, and on PostgreSQL in a fresh schema when `DATABASE_URL` is set (the
    /// schema name is returned for dropping).
    async fn stores(dir: &std::path::Path) -> Vec<(Store, Option<(String, String)>)> {
        let url = format!("sqlite://{}?mode=rwc", dir.join("g.sqlite").display());
        let mut out = vec![(Store::open(&url).await.unwrap(), None)];
        if let Ok(admin) = std::env::var("DATABASE_URL") {
            let schema = format!("g_{}_{}", std::process::id(), Timestamp::now().as_nanosecond());
            entente_test_support::danger::admin_execute(&admin, &format!("CREATE SCHEMA {schema}"))
                .await
                .unwrap();
            let sep = if admin.contains('?') { '&' } else { '?' };
            let url = format!("{admin}{sep}options=-c%20search_path%3D{schema}");
            out.push((Store::open(&url).await.unwrap(), Some((admin, schema))));
        }
        out
    }

    fn job<C: GateCommand>(
        actor: &Actor,
        command: C,
        now: Timestamp,
    ) -> (Box<dyn Job>, Receiver<C::Output>) {
        let (job, rx) = Typed::new(actor.clone(), command, now);
        (Box::new(job), rx)
    }

    /// One transaction with a duplicate opening, reads of a case opened earlier in the same
    /// batch, and a deny: the batched conflict check, and the flush of the batch's case rows
    /// before a command of another type runs.
    #[tokio::test]
    async fn one_batch_sees_its_own_case_openings() {
        let dir = tempfile::tempdir().unwrap();
        for (store, schema) in stores(dir.path()).await {
            let party: PartyCode = "NL".parse().unwrap();
            let key = SigningKey::from_bytes(&[7u8; 32]);
            let origin = ledger::origin_for(&party, &key.verifying_key());
            let engine = Arc::new(Engine::compile(Vec::new()).unwrap());
            let mut writer = Writer::new(store.clone(), key, party, origin, engine);
            let eva = Actor::User { name: "eva".into(), role: Role::Investigator };
            let ann = Actor::User { name: "ann".into(), role: Role::Auditor };
            let now = Timestamp::now();
            let (j0, r0) = job(&eva, open("A"), now);
            let (j1, r1) = job(&eva, open("A"), now);
            let (j2, r2) = job(&eva, ReadCase { id: "A".parse().unwrap() }, now);
            let (j3, r3) = job(&ann, open("B"), now);
            let (j4, r4) = job(&eva, open("C"), now);
            let (j5, r5) = job(&eva, ReadCase { id: "B".parse().unwrap() }, now);
            let mut jobs = vec![j0, j1, j2, j3, j4, j5];
            writer.commit_batch(&mut jobs).await.unwrap();
            for j in jobs {
                j.settle(None);
            }
            assert!(matches!(r0.await.unwrap(), Ok(Verdict::Permitted { index: 0, .. })));
            assert!(matches!(r1.await.unwrap(), Err(GateError::Conflict(_))));
            let r = r2.await.unwrap();
            let Ok(Verdict::Permitted { index: 1, output: case, .. }) = &r else { panic!("{r:?}") };
            assert_eq!(case.ledger_index, 0);
            assert!(matches!(r3.await.unwrap(), Ok(Verdict::Denied { index: 2, .. })));
            assert!(matches!(r4.await.unwrap(), Ok(Verdict::Permitted { index: 3, .. })));
            assert!(matches!(r5.await.unwrap(), Err(GateError::NotFound(_))));
            assert_eq!(store.case_count().await.unwrap(), 2);
            assert_eq!(store.ledger_head().await.unwrap().0, 4);

            // The next batch finds the committed ids through the prefetch.
            let (j, r) = job(&eva, open("C"), now);
            let mut jobs = vec![j];
            writer.commit_batch(&mut jobs).await.unwrap();
            for j in jobs {
                j.settle(None);
            }
            assert!(matches!(r.await.unwrap(), Err(GateError::Conflict(_))));
            store.close().await;
            if let Some((admin, schema)) = schema {
                entente_test_support::danger::admin_execute(
                    &admin,
                    &format!("DROP SCHEMA {schema} CASCADE"),
                )
                .await
                .unwrap();
            }
        }
    }

    /// A command that says its digests come from its effect, and whose effect records none.
    struct Forgetful;

    impl GateCommand for Forgetful {
        type Output = ();
        type Facts = ();

        fn action(&self) -> Action {
            Action::CaseOpen
        }

        fn subjects(&self) -> Vec<Subject> {
            vec![Subject::new(entente_core::SubjectKind::Case, "F")]
        }

        fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
            Ok(PayloadDigests::FromEffect)
        }

        fn validate(&self) -> Result<(), GateError> {
            Ok(())
        }

        crate::gate::decided_by_role!();

        async fn apply(self, _: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
            Ok(())
        }
    }

    /// A permitted command that promised digests from its effect and recorded none is an
    /// internal fault: its whole batch is rolled back, nothing is recorded, the other jobs of
    /// the batch are told so.
    #[tokio::test]
    async fn an_effect_that_records_no_digest_rolls_the_batch_back() {
        let dir = tempfile::tempdir().unwrap();
        for (store, schema) in stores(dir.path()).await {
            let party: PartyCode = "NL".parse().unwrap();
            let key = SigningKey::from_bytes(&[7u8; 32]);
            let origin = ledger::origin_for(&party, &key.verifying_key());
            let engine = Arc::new(Engine::compile(Vec::new()).unwrap());
            let mut writer = Writer::new(store.clone(), key, party, origin, engine);
            let eva = Actor::User { name: "eva".into(), role: Role::Investigator };
            let now = Timestamp::now();
            let (j0, r0) = job(&eva, open("A"), now);
            let (j1, r1) = job(&eva, Forgetful, now);
            let mut jobs = vec![j0, j1];
            let e = writer.commit_batch(&mut jobs).await.unwrap_err();
            assert!(matches!(e, GateError::Internal(_)), "{e}");
            let text = e.to_string();
            for j in jobs {
                j.settle(Some(&text));
            }
            assert!(matches!(r0.await.unwrap(), Err(GateError::Store(_))));
            assert!(matches!(r1.await.unwrap(), Err(GateError::Store(_))));
            assert_eq!(store.ledger_head().await.unwrap().0, 0);
            assert_eq!(store.case_count().await.unwrap(), 0);
            store.close().await;
            if let Some((admin, schema)) = schema {
                entente_test_support::danger::admin_execute(
                    &admin,
                    &format!("DROP SCHEMA {schema} CASCADE"),
                )
                .await
                .unwrap();
            }
        }
    }
}
