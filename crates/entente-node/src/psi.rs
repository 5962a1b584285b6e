//! Deconfliction as a capability of the node (`docs/psi.md`): key rotation with the costly
//! preparation outside the gate's writer ([`rotate`]), the rotation schedule of the
//! agreements ([`due_rotations`], [`Rotator`] in `entente serve`), and the current epoch sent
//! to partners pinned after it was made ([`send_pending`]).
//!
//! A rotation decides the role rule and the agreement first, purely and cheaply
//! ([`entente_store::psi::rotation_decision`]); only then does it read the holdings (a store
//! read, with the ledger size as watermark) and PRF them on blocking threads; one gate command
//! then records the epoch and decides again in its transaction. Every other write of the node
//! goes on while the set is prepared.

use crate::Node;
use entente_core::PartyCode;
use entente_policy::engine::Engine;
use entente_store::psi::{
    CurrentEpoch, RotatePsiKey, RotationReport, SendPsiKey, check_rotation, rotation_decision,
};
use entente_store::{GateError, Principal, Verdict};
use jiff::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Threads a rotation prepares its set on: all cores but one (kept for the server), at least
/// one.
pub fn preparing_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

/// Rotates the node's deconfliction key for `agreement` as `who` at `now`, labelling every
/// holding with `contact`: decided first (role rule, agreement; a refusal is recorded and
/// returned as [`Verdict::Denied`] before anything is read), then the holdings read and
/// prepared outside the gate on [`preparing_threads`] (`progress(done, total)` in distinct
/// selectors), then the epoch recorded by one gate command, which decides again.
///
/// # Errors
/// A malformed agreement id or contact (nothing recorded), database failures, a preparing
/// thread that failed.
pub async fn rotate(
    node: &Node,
    who: Principal,
    agreement: &str,
    contact: &str,
    now: Timestamp,
    mut progress: impl FnMut(u64, u64) + Send + 'static,
) -> Result<Verdict<RotationReport>, GateError> {
    let progress = move |done, total| {
        progress(done, total);
        true
    };
    rotate_until(node, who, agreement, contact, now, progress).await
}

/// [`rotate`], stopped (with [`GateError::Closed`], nothing recorded) when `progress`
/// returns `false`.
async fn rotate_until(
    node: &Node,
    who: Principal,
    agreement: &str,
    contact: &str,
    now: Timestamp,
    mut progress: impl FnMut(u64, u64) -> bool + Send + 'static,
) -> Result<Verdict<RotationReport>, GateError> {
    check_rotation(agreement, contact)?;
    let gate = &node.gate;
    let decision = rotation_decision(gate.engine(), gate.party(), who.actor(), agreement, now);
    let section = gate.engine().agreement(agreement).and_then(|a| a.deconfliction.as_ref());
    let Some(section) = section.filter(|_| decision.is_permit()) else {
        // Recorded by the gate, which decides it by the same rules.
        return gate.submit(who, RotatePsiKey::unprepared(agreement, contact), now).await;
    };
    let holdings = node.store.psi_holdings(agreement, section, contact).await?;
    let threads = preparing_threads();
    let prepared = tokio::task::spawn_blocking(move || holdings.prepare(threads, &mut progress))
        .await
        .map_err(|e| GateError::Internal(format!("preparing the set stopped: {e}")))??;
    gate.submit(who, RotatePsiKey::new(prepared), now).await
}

/// Sends the current epoch of every deconfliction agreement to each party of it that is pinned
/// and was not sent it (pinned after the rotation), as the operator, through the gate
/// (`psi.key.send`). Returns what was sent or refused, per agreement and party.
///
/// # Errors
/// Database failures while finding who is owed a key.
pub async fn send_pending(
    node: &Node,
    now: Timestamp,
) -> Result<Vec<(String, PartyCode, Result<Verdict<String>, GateError>)>, GateError> {
    let unsent = node.store.psi_unsent(node.gate.engine(), node.gate.party(), now).await?;
    let mut out = Vec::with_capacity(unsent.len());
    for (agreement, to) in unsent {
        let command = SendPsiKey { agreement: agreement.clone(), to: to.clone() };
        let result = node.gate.submit(node.operator(), command, now).await;
        out.push((agreement, to, result));
    }
    Ok(out)
}

/// An agreement whose key is due for rotation, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// The agreement.
    pub agreement: String,
    /// When its current epoch was rotated to (none: it has no epoch yet).
    pub since: Option<Timestamp>,
}

/// Which deconfliction agreements are due for a rotation at `now`: those in force whose
/// `[deconfliction]` names `party` and that have no current epoch (`current`) or one rotated
/// at least `key_rotation` ago. Pure.
pub fn due_rotations(
    engine: &Engine,
    party: &PartyCode,
    current: &[CurrentEpoch],
    now: Timestamp,
) -> Vec<Due> {
    let utc = jiff::tz::TimeZone::UTC;
    let day = now.to_zoned(utc.clone()).date();
    engine
        .agreements()
        .iter()
        .filter_map(|a| {
            let d = a.deconfliction.as_ref()?;
            if !a.in_force_for(party, day) || !d.parties.contains(party) {
                return None;
            }
            let Some(epoch) = current.iter().find(|c| c.agreement == a.id) else {
                return Some(Due { agreement: a.id.clone(), since: None });
            };
            let next = epoch.rotated_at.to_zoned(utc.clone()).checked_add(d.key_rotation.span);
            // A rotation period that overflows the calendar is never due.
            let due = next.is_ok_and(|next| next.timestamp() <= now);
            due.then(|| Due { agreement: a.id.clone(), since: Some(epoch.rotated_at) })
        })
        .collect()
}

/// The rotation schedule in `entente serve`: every `[psi] check_secs`, the agreements due
/// ([`due_rotations`]) are rotated as the operator with the `[psi] contact`, and the current
/// epochs are sent to partners pinned since ([`send_pending`]). One agreement at a time; the
/// loop ends when the server stops (also while a set is being prepared: nothing is recorded
/// then).
#[derive(Debug)]
pub struct Rotator {
    node: Node,
    contact: Option<String>,
    interval: Duration,
    /// Set when the server stops: a set being prepared stops at its next round.
    stop: Arc<AtomicBool>,
}

impl Rotator {
    /// The schedule of `node`, from its `[psi]` configuration. Without a usable contact
    /// there is no scheduled rotation (a warning says so when it runs); pending keys are still
    /// sent.
    pub fn new(node: Node) -> Rotator {
        let contact = node.config.psi.contact.clone();
        let interval = Duration::from_secs(u64::from(node.config.psi.check_secs.max(1)));
        Rotator { node, contact, interval, stop: Arc::default() }
    }

    /// Runs the schedule until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let party = self.node.config.party.clone();
        let contact = match &self.contact {
            Some(c) => match check_rotation("agreement", c) {
                Ok(()) => Some(c.clone()),
                Err(e) => {
                    tracing::warn!(%party, error = %e, "[psi] contact in entente.toml cannot be used: deconfliction keys are not rotated on schedule");
                    None
                }
            },
            None => {
                let named =
                    self.node.gate.engine().agreements().iter().any(|a| {
                        a.deconfliction.as_ref().is_some_and(|d| d.parties.contains(&party))
                    });
                if named {
                    tracing::warn!(%party, "no [psi] contact in entente.toml: deconfliction keys are not rotated on schedule (rotate with `entente psi rotate`)");
                }
                None
            }
        };
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = self.tick(contact.as_deref()) => {}
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    /// One check: the rotations due, then the keys owed to partners pinned since.
    async fn tick(&self, contact: Option<&str>) {
        let node = &self.node;
        if let Some(contact) = contact {
            match node.store.psi_current_epochs().await {
                Ok(current) => {
                    let due = due_rotations(
                        node.gate.engine(),
                        node.gate.party(),
                        &current,
                        Timestamp::now(),
                    );
                    for d in due {
                        let stop = self.stop.clone();
                        let result = rotate_until(
                            node,
                            node.operator(),
                            &d.agreement,
                            contact,
                            Timestamp::now(),
                            move |_, _| !stop.load(Ordering::Relaxed),
                        )
                        .await;
                        match result {
                            Ok(Verdict::Permitted { index, output: r, .. }) => tracing::info!(
                                agreement = %r.agreement, epoch = %r.epoch, set_size = r.set_size,
                                ledger_index = index, "deconfliction key rotated on schedule"
                            ),
                            Ok(Verdict::Denied { index, decision }) => tracing::warn!(
                                agreement = %d.agreement, ledger_index = index, reason = %decision.reason,
                                "scheduled deconfliction key rotation denied"
                            ),
                            Err(e) => tracing::warn!(
                                agreement = %d.agreement, error = %e,
                                "scheduled deconfliction key rotation failed"
                            ),
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the deconfliction key epochs"),
            }
        }
        match send_pending(node, Timestamp::now()).await {
            Ok(sent) => {
                for (agreement, to, result) in sent {
                    match result {
                        Ok(Verdict::Permitted { index, output: epoch, .. }) => tracing::info!(
                            %agreement, %to, %epoch, ledger_index = index,
                            "deconfliction key sent to a partner pinned since the rotation"
                        ),
                        Ok(Verdict::Denied { index, decision }) => tracing::warn!(
                            %agreement, %to, ledger_index = index, reason = %decision.reason,
                            "sending the deconfliction key denied"
                        ),
                        Err(e) => {
                            tracing::warn!(%agreement, %to, error = %e, "sending the deconfliction key failed")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot find the partners owed a deconfliction key")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(key_rotation: &str, parties: &str, in_force_from: &str) -> Engine {
        let text = format!(
            r#"
id = "psi-due"
title = "Deconfliction (test fixture)"
kind = "mou"
parties = ["NL", "DE", "US"]
in_force_from = "{in_force_from}"
offences = "any"
categories = ["case-information"]
purposes = ["deconfliction"]
onward_transfer = "forbidden"
commercial_use_prohibited = true

[deconfliction]
parties = {parties}
purpose = "deconfliction"
selectors = ["ip"]
mode = "labelled"
max_selectors = 8
max_queries = 2
per = "P30D"
key_rotation = "{key_rotation}"
email_plus_addressing = "keep"

[[legal_basis]]
citation = "Test fixture"
status = "U"
"#
        );
        let lexicon = entente_core::lexicon::Lexicon::builtin().unwrap();
        let agreements =
            entente_policy::agreement::parse_agreements(&[("due.toml", text.as_str())], &lexicon)
                .unwrap();
        Engine::compile(agreements).unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn epoch(rotated_at: &str) -> CurrentEpoch {
        CurrentEpoch { agreement: "psi-due".into(), epoch: "e".into(), rotated_at: at(rotated_at) }
    }

    #[test]
    fn due_without_an_epoch_and_once_key_rotation_has_passed() {
        let de: PartyCode = "DE".parse().unwrap();
        let e = engine("P30D", r#"["NL", "DE"]"#, "2026-01-01");
        let now = at("2026-04-01T08:00:00Z");
        assert_eq!(
            due_rotations(&e, &de, &[], now),
            [Due { agreement: "psi-due".into(), since: None }]
        );
        // 30 days to the second: due; a second less: not yet.
        let exactly = epoch("2026-03-02T08:00:00Z");
        assert_eq!(due_rotations(&e, &de, std::slice::from_ref(&exactly), now).len(), 1);
        let recent = epoch("2026-03-02T08:00:01Z");
        assert!(due_rotations(&e, &de, &[recent], now).is_empty());
        // Calendar arithmetic: a month from the 31st of January.
        let monthly = engine("P1M", r#"["NL", "DE"]"#, "2026-01-01");
        let jan = epoch("2026-01-31T00:00:00Z");
        assert!(
            due_rotations(&monthly, &de, std::slice::from_ref(&jan), at("2026-02-27T23:59:59Z"))
                .is_empty()
        );
        assert_eq!(due_rotations(&monthly, &de, &[jan], at("2026-02-28T00:00:00Z")).len(), 1);
    }

    #[test]
    fn never_due_for_a_party_not_named_or_an_agreement_not_in_force() {
        let e = engine("P30D", r#"["NL", "DE"]"#, "2026-01-01");
        let us: PartyCode = "US".parse().unwrap();
        assert!(due_rotations(&e, &us, &[], at("2026-04-01T08:00:00Z")).is_empty());
        let later = engine("P30D", r#"["NL", "DE"]"#, "2027-01-01");
        let de: PartyCode = "DE".parse().unwrap();
        assert!(due_rotations(&later, &de, &[], at("2026-04-01T08:00:00Z")).is_empty());
        // Another agreement's epoch does not count for this one.
        let other = CurrentEpoch { agreement: "other".into(), ..epoch("2026-03-31T00:00:00Z") };
        assert_eq!(due_rotations(&e, &de, &[other], at("2026-04-01T08:00:00Z")).len(), 1);
    }
}
