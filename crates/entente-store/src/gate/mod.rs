//! The gate: decide → apply → record, in one database transaction.
//!
//! Architecture invariant: this module is the only code that writes to the database after
//! migrations. [`Store`] exposes reads only; the effects of commands run inside the gate's
//! transaction, and the only way to run them is [`Gate::submit`], which always decides first
//! and always appends the ledger entry (for a deny too) in the same transaction as the effect.
//!
//! A command is a type owned by its capability that implements [`GateCommand`]: its action,
//! subjects and payload digests (required, no default), the facts it loads, a pure
//! [`GateCommand::decide`], and [`GateCommand::apply`]. `submit` is generic and returns the
//! command's own output type.
//!
//! Appends are group-committed: a single writer task per process takes the jobs waiting in
//! its queue (of any command type), runs them in one transaction and acknowledges each only
//! after the commit. The first statement of every transaction updates the ledger head row,
//! which serialises writers across processes on both backends.

mod writer;

pub use writer::BatchPlan;
pub(crate) use writer::{BoxFuture, Deferred, MAX_PARAMS, Tx, multi_row_insert, placeholders};

use crate::federation::VerifiedEnvelope;
use crate::principal::Principal;
use crate::store::{Backend, Store, StoreError};
use ed25519_dalek::SigningKey;
use entente_core::canonical::canonical_digest;
use entente_core::ledger;
use entente_core::policy::{DecisionRequest, decide};
use entente_core::{Action, Actor, Decision, PartyCode, Subject, SubjectKind};
use entente_policy::engine::{Conditions, Engine};
use entente_wire::AckItem;
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// A command's payload digests, for its ledger entry (digests of what the action carries,
/// never the data itself). Every command says which it records: there is no default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadDigests {
    /// These digests, known before the effect.
    Of(BTreeMap<String, String>),
    /// The command carries nothing beyond its subjects (a read by id, a removal).
    SubjectsOnly,
    /// The effect computes them (for example the digest of a minimized datum); a permitted
    /// command of this kind that recorded none is an internal fault, and its batch is rolled
    /// back.
    FromEffect,
}

impl PayloadDigests {
    /// Digests of named values, each the SHA-256 of its RFC 8785 canonical JSON.
    ///
    /// # Errors
    /// A value that cannot be canonicalised (an internal fault).
    pub fn canonical<const N: usize>(
        values: [(&str, serde_json::Value); N],
    ) -> Result<PayloadDigests, GateError> {
        let mut out = BTreeMap::new();
        for (k, v) in values {
            out.insert(k.to_owned(), digest_json(&v)?);
        }
        Ok(PayloadDigests::Of(out))
    }

    /// Digests given as they are (`sha256:<hex>` strings computed elsewhere).
    pub fn given<const N: usize>(values: [(&str, String); N]) -> PayloadDigests {
        PayloadDigests::Of(values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }
}

/// `sha256:<hex>` of a value's RFC 8785 canonical JSON.
pub(crate) fn digest_json(v: &serde_json::Value) -> Result<String, GateError> {
    canonical_digest(v).map_err(GateError::encoding)
}

/// What a command's decision produced: the decision, and the conditions that travel with
/// the data when the agreements in force ground the action.
#[derive(Clone, Debug)]
pub struct Ruling {
    /// Permit or deny, with rules, obligations and reason.
    pub decision: Decision,
    /// The conditions that travel (purpose, retention, onward transfer…), for a flow.
    pub conditions: Option<Conditions>,
}

impl Ruling {
    /// A ruling that is just this decision.
    pub fn of(decision: Decision) -> Ruling {
        Ruling { decision, conditions: None }
    }
}

/// What a pure decision sees: who asks, the node, the agreements, the time and the role
/// decision already taken. No database, no clock, no I/O.
#[derive(Debug)]
pub struct DecideCx<'a> {
    /// The node's party.
    pub party: &'a PartyCode,
    /// The agreements in force.
    pub engine: &'a Engine,
    /// Who asks.
    pub actor: &'a Actor,
    /// The gate's time for this command.
    pub now: Timestamp,
    /// The role decision (always a permit here: a role deny is final before facts load).
    pub role: &'a Decision,
    /// Whether the command came in an envelope from a partner.
    pub inbound: bool,
}

/// The open transaction and what the gate knows while a command loads its facts or applies
/// its effect. Only the gate's writer makes one, and it is the only handle through which a
/// command runs SQL: code outside the store can neither build one nor reach its transaction.
///
/// ```compile_fail
/// // Outside the store, an `EffectCx` cannot be built (its fields are the gate's own) ...
/// fn forge<'a>(tx: &'a mut sqlx::Transaction<'static, sqlx::Any>) -> entente_store::gate::EffectCx<'a> {
///     entente_store::gate::EffectCx { tx }
/// }
/// ```
///
/// ```compile_fail
/// // ... nor its transaction taken from one a command is given.
/// async fn sneak(cx: &mut entente_store::gate::EffectCx<'_>) {
///     let _ = sqlx::query("DELETE FROM ledger_entries").execute(&mut **cx.tx).await;
/// }
/// ```
pub struct EffectCx<'a> {
    pub(crate) tx: &'a mut sqlx::Transaction<'static, sqlx::Any>,
    pub(crate) backend: Backend,
    pub(crate) party: &'a PartyCode,
    pub(crate) engine: &'a Engine,
    pub(crate) secret: &'a [u8; 32],
    pub(crate) actor: &'a Actor,
    pub(crate) now: Timestamp,
    /// The ledger index this command's entry will have.
    pub(crate) index: u64,
    /// Entries recorded earlier in this transaction, `(index, canonical bytes)`.
    pub(crate) batch_entries: &'a [(u64, Vec<u8>)],
    pub(crate) deferred: &'a mut writer::Deferreds,
    /// Digests the effect computed, added to the payload digests of the entry.
    pub(crate) digests: Vec<(String, String)>,
}

impl std::fmt::Debug for EffectCx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EffectCx").field("index", &self.index).field("now", &self.now).finish()
    }
}

impl EffectCx<'_> {
    /// `now` as the store writes it (RFC 3339, microseconds).
    pub(crate) fn now_text(&self) -> String {
        entente_core::Stamp::new(self.now).to_string()
    }

    /// Adds digests the effect computed to the entry's payload digests.
    pub(crate) fn record_digests(&mut self, digests: Vec<(String, String)>) {
        self.digests.extend(digests);
    }

    /// The batch state of type `S` that this command's [`GateCommand::plan`] made.
    pub(crate) fn deferred<S: Deferred>(&mut self) -> Result<&mut S, GateError> {
        self.deferred.get::<S>().ok_or_else(|| {
            GateError::Internal("a batch state was used that the batch did not plan".into())
        })
    }
}

/// `load` and `decide` of a command that the role policy alone decides: it loads no facts,
/// and its decision is the role decision.
macro_rules! decided_by_role {
    () => {
        async fn load(
            &self,
            _cx: &mut $crate::gate::EffectCx<'_>,
        ) -> Result<(), $crate::gate::GateError> {
            Ok(())
        }

        fn decide(&self, cx: &$crate::gate::DecideCx<'_>, _facts: &()) -> $crate::gate::Ruling {
            $crate::gate::Ruling::of(cx.role.clone())
        }
    };
}
pub(crate) use decided_by_role;

/// The node's role policy for `action` on the first of `subjects` (`entente_core::policy`).
pub(crate) fn role_decision(
    action: Action,
    subjects: &[Subject],
    actor: &Actor,
    party: &PartyCode,
    now: Timestamp,
) -> Decision {
    let subject = subjects
        .first()
        .cloned()
        .unwrap_or_else(|| Subject::new(SubjectKind::Node, party.as_str()));
    decide(
        &DecisionRequest {
            actor,
            action,
            subject: &subject,
            node_party: party,
            purpose: None,
            agreements: &[],
        },
        now,
    )
}

/// A command of the gate. Implemented by one type per action, in the module of its
/// capability; [`Gate::submit`] runs it as decide → apply → record.
///
/// The gate first takes the role decision ([`GateCommand::role`]); on a permit it loads the
/// command's facts in the transaction, decides purely over them, and on a permit applies the
/// effect. The ledger entry is appended either way.
pub trait GateCommand: Send + Sync + Sized + 'static {
    /// Whether the command may run while the ledger is on hold ([`Gate::hold`]): only the
    /// operator's decision that ends a hold.
    const WHILE_HELD: bool = false;
    /// What a permitted command returns to its caller.
    type Output: Send + 'static;
    /// What the command reads before its decision.
    type Facts: Send;

    /// The action recorded.
    fn action(&self) -> Action;

    /// The subjects recorded (the first is the one the role decision is about).
    fn subjects(&self) -> Vec<Subject>;

    /// The payload digests recorded. Required: a command says what it records.
    ///
    /// # Errors
    /// A payload that cannot be encoded (an internal fault).
    fn payload_digests(&self) -> Result<PayloadDigests, GateError>;

    /// Checks the command's own data before anything is decided. Fields that are typed
    /// (ids, party codes, categories) were parsed at the edge and need no check here; a
    /// command overrides this only for what its types cannot say (a title's length, a
    /// limit).
    ///
    /// # Errors
    /// [`GateError::Invalid`], saying which field is wrong and what would be right.
    fn validate(&self) -> Result<(), GateError> {
        Ok(())
    }

    /// The role decision: who may ask for this action on `subjects` (this command's, built
    /// once by the gate). By default the node's role policy (`entente_core::policy`).
    fn role(
        &self,
        subjects: &[Subject],
        actor: &Actor,
        party: &PartyCode,
        now: Timestamp,
    ) -> Decision {
        role_decision(self.action(), subjects, actor, party, now)
    }

    /// Reads what the decision needs, in the gate's transaction (only after a role permit).
    fn load(
        &self,
        cx: &mut EffectCx<'_>,
    ) -> impl Future<Output = Result<Self::Facts, GateError>> + Send;

    /// Decides over the facts. Pure: no database, no clock, no I/O.
    fn decide(&self, cx: &DecideCx<'_>, facts: &Self::Facts) -> Ruling;

    /// Applies the effect of a permitted command. Checks that can fail on the request
    /// (conflict, not found) run before any write, so an error other than a store error
    /// leaves the transaction as it was.
    fn apply(
        self,
        cx: &mut EffectCx<'_>,
        facts: Self::Facts,
        ruling: &Ruling,
    ) -> impl Future<Output = Result<Self::Output, GateError>> + Send;

    /// An effect of a deny, for the few commands whose refusal changes state (a package
    /// whose bytes differ from its offer closes the offer). `facts` is `None` when the role
    /// decision denied. By default nothing.
    fn on_deny(
        &self,
        cx: &mut EffectCx<'_>,
        facts: Option<&Self::Facts>,
        decision: &Decision,
    ) -> impl Future<Output = Result<(), GateError>> + Send {
        let _ = (cx, facts, decision);
        async { Ok(()) }
    }

    /// Optional batch hook for commands that come in bulk: called for every job of a batch
    /// before any runs, to plan a [`Deferred`] state that checks in bulk first and writes in
    /// bulk before a command of another type runs. By default nothing.
    fn plan(&self, plan: &mut BatchPlan) {
        let _ = plan;
    }
}

/// The gate's answer to a command that was decided and recorded.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict<O> {
    /// Permitted, applied and recorded at ledger index `index`.
    Permitted {
        /// Ledger index of the entry.
        index: u64,
        /// The decision, with its obligations.
        decision: Decision,
        /// What the effect produced.
        output: O,
    },
    /// Denied; nothing applied; the denial is recorded at `index`.
    Denied {
        /// Ledger index of the entry.
        index: u64,
        /// The decision, with its reason.
        decision: Decision,
    },
}

impl<O> Verdict<O> {
    /// The ledger index of the entry that recorded the decision, permit or deny.
    pub fn index(&self) -> u64 {
        match self {
            Verdict::Permitted { index, .. } | Verdict::Denied { index, .. } => *index,
        }
    }
}

/// Errors of the gate. A deny is not an error (see [`Verdict::Denied`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// The command's data is malformed; nothing was decided or recorded.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The effect conflicts with the current state (for example a case id already in use);
    /// nothing was changed or recorded.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The command names something that does not exist; nothing was changed or recorded.
    #[error("{0} not found")]
    NotFound(String),
    /// The database failed; the whole transaction was rolled back.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value could not be encoded for the ledger (an internal fault); the batch was rolled
    /// back.
    #[error("encoding failed: {0}")]
    Encoding(String),
    /// The gate broke one of its own invariants (an internal fault); the batch was rolled
    /// back.
    #[error("internal fault: {0}")]
    Internal(String),
    /// The gate's writer has stopped.
    #[error("the gate is shut down")]
    Closed,
    /// A caller that no authenticator admitted (an anonymous principal): refused by the role
    /// policy before anything is read, and not recorded one by one — no entry holds what an
    /// unauthenticated caller chose. The edge that took the call counts it for its source
    /// and records the counts in aggregate ([`crate::peers::RecordRefusals`]).
    #[error("unauthenticated: {}", .0.reason)]
    Unauthenticated(Decision),
    /// The ledger is on hold: a witness holds a checkpoint of this ledger that the ledger
    /// does not extend (entries lost in a restore, or a rewritten history). Nothing is
    /// appended, so that the log does not fork behind the partners' backs, until the operator
    /// decides ([`crate::maintenance::ReleaseHold`]).
    #[error("the ledger is on hold: {0}")]
    Held(String),
    /// An envelope applied before: its stored outcome, to acknowledge again. Nothing was
    /// applied or recorded this time.
    #[error("envelope {} was applied before (ledger entry {})", .0.id, .0.ledger_index)]
    Replayed(AckItem),
    /// An envelope this node cannot take under its number, and what the sender should do:
    /// [`AckStatus::Resequence`](entente_wire::envelope::AckStatus) — the number was applied
    /// with another payload (the sender restored from an older backup; the refusal is
    /// recorded, the item's ledger entry) — or `Resend` — this node expects an earlier number
    /// (it was restored itself; not recorded, counted for the partner). The item, with the
    /// number expected next, ends the acknowledgement; the envelopes after it in the same
    /// batch are not admitted ([`GateError::Conflict`]).
    #[error("envelope {} cannot be taken under sequence number {}: the sender is asked to {} from {:?}", .0.id, .0.seq, .0.status.as_str(), .0.next_seq)]
    SendAgain(AckItem),
}

impl GateError {
    /// An internal fault: a value of the store's own that could not be encoded.
    pub(crate) fn encoding(e: impl std::fmt::Display) -> GateError {
        GateError::Encoding(e.to_string())
    }

    /// Whether this error ends the whole batch (its transaction is rolled back) rather than
    /// only the command that met it.
    pub(crate) fn is_fatal(&self) -> bool {
        matches!(
            self,
            GateError::Store(_)
                | GateError::Closed
                | GateError::Encoding(_)
                | GateError::Internal(_)
        )
    }
}

impl From<sqlx::Error> for GateError {
    fn from(e: sqlx::Error) -> Self {
        GateError::Store(StoreError::Db(e))
    }
}

/// The gate of a node. Cheap to clone; all clones feed one writer task.
#[derive(Clone, Debug)]
pub struct Gate {
    jobs: mpsc::Sender<Box<dyn writer::Job>>,
    engine: Arc<Engine>,
    party: PartyCode,
    origin: String,
    /// The key of the keyed hashes of refused callers' addresses, derived from the node
    /// secret.
    source_key: Arc<[u8; 32]>,
    /// Why the ledger is on hold, if it is (shared by every clone).
    hold: Arc<std::sync::RwLock<Option<String>>>,
}

impl Gate {
    /// Starts the gate's writer over `store`, signing checkpoints with `key` for `party` and
    /// deciding data flows with `engine` (the agreements in force).
    /// Must be called inside a tokio runtime.
    pub fn start(store: Store, key: SigningKey, party: PartyCode, engine: Arc<Engine>) -> Gate {
        let origin = ledger::origin_for(&party, &key.verifying_key());
        let (jobs, rx) = mpsc::channel(8192);
        let source_key = Arc::new(crate::peers::source_key(&writer::pseudonym_secret(&key)));
        let writer = writer::Writer::new(store, key, party.clone(), origin.clone(), engine.clone());
        tokio::spawn(writer.run(rx));
        Gate { jobs, engine, party, origin, source_key, hold: Arc::default() }
    }

    /// Puts the ledger on hold: from now on every command is refused with
    /// [`GateError::Held`] (nothing decided, nothing recorded), except the operator's
    /// [`crate::maintenance::ReleaseHold`]. The node does this when a witness shows it a
    /// checkpoint of its own ledger that the ledger does not extend.
    pub fn hold(&self, reason: impl Into<String>) {
        let mut h = self.hold.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *h = Some(reason.into());
    }

    /// Ends a hold (after a permitted [`crate::maintenance::ReleaseHold`], or when the
    /// ledger was restored to one that extends the witnesses' view).
    pub fn release_hold(&self) {
        let mut h = self.hold.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *h = None;
    }

    /// Why the ledger is on hold, if it is.
    pub fn held(&self) -> Option<String> {
        self.hold.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn check_hold<C: GateCommand>(&self) -> Result<(), GateError> {
        match self.held() {
            Some(reason) if !C::WHILE_HELD => Err(GateError::Held(reason)),
            _ => Ok(()),
        }
    }

    /// The source a refused call came from, as the ledger may name it: a keyed hash of its
    /// network address (an IPv6 address by its /64), under a key derived from the node
    /// secret. The address itself is personal data and never recorded.
    pub fn source(&self, addr: std::net::IpAddr) -> crate::peers::RefusalSource {
        crate::peers::RefusalSource::of_address(&self.source_key, addr)
    }

    /// The role decision for a command of an unauthenticated caller: always a refusal,
    /// decided before anything is read, and never recorded on its own.
    fn unauthenticated<C: GateCommand>(
        &self,
        who: &Principal,
        command: &C,
        now: Timestamp,
    ) -> GateError {
        let subjects = command.subjects();
        let role = command.role(&subjects, who.actor(), &self.party, now);
        let decision = if role.is_permit() {
            Decision::deny(
                "authn.required",
                format!("{} needs an authenticated caller", command.action()),
            )
        } else {
            role
        };
        GateError::Unauthenticated(decision)
    }

    /// The agreements this gate decides flows with.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The party this gate acts for.
    pub fn party(&self) -> &PartyCode {
        &self.party
    }

    /// The ledger origin (C2SP key name).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Decides, applies and records `command` asked by `actor` at `now`. Returns once the
    /// transaction holding the effect and the ledger entry has committed.
    ///
    /// # Errors
    /// Invalid data, conflicts and unknown subjects (nothing recorded), database failures
    /// (nothing committed).
    pub async fn submit<C: GateCommand>(
        &self,
        who: impl Into<Principal>,
        command: C,
        now: Timestamp,
    ) -> Result<Verdict<C::Output>, GateError> {
        let who = who.into();
        if !who.is_authenticated() {
            return Err(self.unauthenticated(&who, &command, now));
        }
        self.check_hold::<C>()?;
        command.validate()?;
        let (job, rx) = writer::Typed::new(who.actor().clone(), command, now);
        self.jobs.send(Box::new(job)).await.map_err(|_| GateError::Closed)?;
        rx.await.map_err(|_| GateError::Closed)?
    }

    /// Submits `commands` in order, as one actor at one time, and waits for all of them.
    /// They reach the writer in this order and are committed in as few transactions as the
    /// writer batches.
    pub async fn submit_many<C: GateCommand>(
        &self,
        who: impl Into<Principal>,
        commands: Vec<C>,
        now: Timestamp,
    ) -> Vec<Result<Verdict<C::Output>, GateError>> {
        let who = who.into();
        let actor = who.actor().clone();
        let mut waits = Vec::with_capacity(commands.len());
        for command in commands {
            if !who.is_authenticated() {
                waits.push(Err(self.unauthenticated(&who, &command, now)));
                continue;
            }
            if let Err(e) = self.check_hold::<C>().and_then(|()| command.validate()) {
                waits.push(Err(e));
                continue;
            }
            let (job, rx) = writer::Typed::new(actor.clone(), command, now);
            if self.jobs.send(Box::new(job)).await.is_err() {
                waits.push(Err(GateError::Closed));
                continue;
            }
            waits.push(Ok(rx));
        }
        collect(waits).await
    }

    /// Applies envelopes from a partner whose signature the node layer verified against the
    /// pin, in the order given (the sender's order): each is admitted exactly once and in
    /// sequence, then its content goes through the decision it needs. `peer` is the partner
    /// the connection's pinned certificate authenticated ([`crate::Store::peer_by_certificate`]);
    /// an envelope naming another sender is refused. This is the only way a partner's
    /// message (`Receive*`) reaches the gate: those commands cannot be built outside it.
    pub async fn receive_many(
        &self,
        peer: impl Into<Principal>,
        envelopes: Vec<VerifiedEnvelope>,
        now: Timestamp,
    ) -> Vec<Result<Verdict<()>, GateError>> {
        let actor = peer.into().actor().clone();
        let mut waits = Vec::with_capacity(envelopes.len());
        // Set by the writer when an envelope of this batch reuses a sequence number: the
        // envelopes after it are not admitted, so that nothing is applied out of the
        // sender's order while it numbers them again.
        let broken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        for envelope in envelopes {
            let sender = match &actor {
                Actor::Peer { party } if party == envelope.from() => Ok(()),
                other => Err(GateError::Invalid(format!(
                    "envelope {} names {} as its sender, but the connection is {other}'s",
                    envelope.id(),
                    envelope.from()
                ))),
            };
            let held = match self.held() {
                Some(reason) => Err(GateError::Held(reason)),
                None => Ok(()),
            };
            if let Err(e) =
                held.and(sender).and_then(|()| writer::validate_envelope(&envelope.inner))
            {
                waits.push(Err(e));
                continue;
            }
            let (job, rx) = writer::InboundJob::new(actor.clone(), envelope, now, broken.clone());
            if self.jobs.send(Box::new(job)).await.is_err() {
                waits.push(Err(GateError::Closed));
                continue;
            }
            waits.push(Ok(rx));
        }
        collect(waits).await
    }
}

type Reply<O> = oneshot::Receiver<Result<Verdict<O>, GateError>>;

async fn collect<O>(waits: Vec<Result<Reply<O>, GateError>>) -> Vec<Result<Verdict<O>, GateError>> {
    let mut out = Vec::with_capacity(waits.len());
    for w in waits {
        out.push(match w {
            Ok(rx) => rx.await.unwrap_or(Err(GateError::Closed)),
            Err(e) => Err(e),
        });
    }
    out
}
