//! Who shares a case: adding a partner under a JIT agreement, removing it, a case's status
//! across borders, and the lead's updates that a member's node applies to its mirror.

use super::{
    CaseStatus, UpdateFacts, check_visible, decide_update, digest, load_case, load_mirror,
    load_update_facts, members, not_found, send_updates, timeline,
};
use crate::gate::{
    DecideCx, EffectCx, GateCommand, GateError, PayloadDigests, Ruling, decided_by_role,
};
use crate::store::to_i64;
use entente_core::{Action, Actor, CaseId, PartyCode, Subject, SubjectKind, ids};
use entente_policy::agreement::AgreementKind;
use entente_wire::CaseUpdateMessage;
use jiff::tz::TimeZone;
use sqlx::Row;

/// Add a party to a case under a JIT agreement in force that binds this party and it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCaseMember {
    /// Case id.
    pub case_id: CaseId,
    /// The party joining the case.
    pub party: PartyCode,
    /// The JIT agreement it joins under.
    pub agreement: String,
}

/// What a member entry records (`member`), also rebuilt from a row by `ledger verify --state`.
pub(crate) fn payload(case_id: &str, party: &str, agreement: Option<&str>) -> serde_json::Value {
    serde_json::json!({"case_id": case_id, "party": party, "agreement": agreement})
}

impl GateCommand for AddCaseMember {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::CaseMemberAdd
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Case, &self.case_id),
            Subject::new(SubjectKind::Party, self.party.as_str()),
        ]
    }

    /// The membership; the effect adds the digests of the updates sent to the members.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([(
            "member",
            payload(self.case_id.as_str(), self.party.as_str(), Some(&self.agreement)),
        )])
    }

    fn validate(&self) -> Result<(), GateError> {
        ids::check_identifier("agreement id", &self.agreement).map_err(GateError::Invalid)
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        let AddCaseMember { case_id, party: member, agreement } = self;
        let case_id = String::from(case_id);
        let (party, now, index) = (cx.party, cx.now, cx.index);
        load_case(cx.tx, &case_id).await?;
        let a = cx
            .engine
            .agreement(&agreement)
            .ok_or_else(|| GateError::Invalid(format!("agreement `{agreement}` is not loaded")))?;
        if a.kind != AgreementKind::Jit {
            return Err(GateError::Invalid(format!(
                "agreement `{agreement}` is not a JIT agreement (it is a {})",
                a.kind.as_str()
            )));
        }
        let date = now.to_zoned(TimeZone::UTC).date();
        if a.template {
            return Err(GateError::Invalid(format!(
                "agreement `{agreement}` is a template, in force only once the parties conclude it (entente framework conclude)"
            )));
        }
        if !a.in_force_on(date) {
            return Err(GateError::Invalid(format!(
                "agreement `{agreement}` is not in force on {date} (from {})",
                a.in_force_from
            )));
        }
        if !a.binds(party, &member) {
            return Err(GateError::Invalid(format!(
                "agreement `{agreement}` does not bind {party} and {member}"
            )));
        }
        if !a.in_force_between(party, &member, date) {
            return Err(GateError::Invalid(format!(
                "agreement `{agreement}` is not in force for both {party} and {member} on {date}: not for {}",
                a.not_in_force_for([party, &member], date).join(", ")
            )));
        }
        let existing: Option<String> =
            sqlx::query_scalar("SELECT role FROM case_members WHERE case_id = $1 AND party = $2")
                .bind(&case_id)
                .bind(member.as_str())
                .fetch_optional(&mut **cx.tx)
                .await?;
        if let Some(role) = existing {
            return Err(GateError::Conflict(format!(
                "{member} is already a member of case `{case_id}` ({role})"
            )));
        }
        sqlx::query(
            "INSERT INTO case_members (case_id, party, role, agreement, added_at, ledger_index) \
             VALUES ($1, $2, 'member', $3, $4, $5)",
        )
        .bind(&case_id)
        .bind(member.as_str())
        .bind(&agreement)
        .bind(format!("{now:.6}"))
        .bind(to_i64(index)?)
        .execute(&mut **cx.tx)
        .await?;
        let change = format!("member-added {member}");
        let sent =
            send_updates(cx.tx, cx.engine, party, &case_id, &change, None, now, index).await?;
        cx.record_digests(sent);
        Ok(())
    }
}

/// Remove a partner party from a case this party leads (it leaves the JIT); the other
/// members and the party removed receive the case update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoveCaseMember {
    /// Case id.
    pub case_id: CaseId,
    /// The party leaving the case.
    pub party: PartyCode,
}

impl GateCommand for RemoveCaseMember {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::CaseMemberRemove
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Case, &self.case_id),
            Subject::new(SubjectKind::Party, self.party.as_str()),
        ]
    }

    /// The membership ended; the effect adds the digests of the updates sent.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([(
            "member",
            serde_json::json!({"case_id": self.case_id, "party": self.party}),
        )])
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        let RemoveCaseMember { case_id, party: member } = self;
        let case_id = String::from(case_id);
        let (party, now, index) = (cx.party, cx.now, cx.index);
        load_case(cx.tx, &case_id).await?;
        let row = sqlx::query(
            "SELECT role, agreement FROM case_members WHERE case_id = $1 AND party = $2",
        )
        .bind(&case_id)
        .bind(member.as_str())
        .fetch_optional(&mut **cx.tx)
        .await?;
        let Some(row) = row else {
            return Err(GateError::NotFound(format!("{member} as a member of case `{case_id}`")));
        };
        let role: String = row.try_get(0)?;
        let agreement: Option<String> = row.try_get(1)?;
        let Some(agreement) = agreement.filter(|_| role != "lead") else {
            return Err(GateError::Conflict(format!(
                "{member} leads case `{case_id}`; the lead does not leave its own case"
            )));
        };
        sqlx::query("DELETE FROM case_members WHERE case_id = $1 AND party = $2")
            .bind(&case_id)
            .bind(member.as_str())
            .execute(&mut **cx.tx)
            .await?;
        let change = format!("member-removed {member}");
        let leaving = Some((&member, agreement.as_str()));
        let sent =
            send_updates(cx.tx, cx.engine, party, &case_id, &change, leaving, now, index).await?;
        cx.record_digests(sent);
        Ok(())
    }
}

/// Read a case's status: the case, its members and its timeline. A peer sees it only if its
/// party is a member; otherwise the case is not found, as if it did not exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadCaseStatus {
    /// Case id.
    pub case_id: CaseId,
}

impl GateCommand for ReadCaseStatus {
    type Output = CaseStatus;
    type Facts = ();

    fn action(&self) -> Action {
        Action::CaseStatus
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Case, &self.case_id)]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::SubjectsOnly)
    }

    decided_by_role!();

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        _: (),
        _: &Ruling,
    ) -> Result<CaseStatus, GateError> {
        let id = self.case_id.as_str();
        // A peer outside the case gets the not-found error here: the gate records nothing for
        // a command whose effect fails, so its question leaves no trace either.
        check_visible(cx.tx, cx.actor, id).await?;
        let case = match load_case(cx.tx, id).await {
            Err(GateError::NotFound(_)) if !matches!(cx.actor, Actor::Peer { .. }) => {
                // A partner-led case this party is a member of: its mirror.
                let Some((case, members, mirror)) = load_mirror(cx.tx, id).await? else {
                    return Err(not_found(id));
                };
                let timeline = timeline(cx.tx, cx.backend, id, cx.batch_entries).await?;
                let requests = requests_of_case(cx, id, Some(&mirror.lead)).await?;
                return Ok(CaseStatus { case, members, timeline, mirror: Some(mirror), requests });
            }
            other => other?,
        };
        let members = members(cx.tx, id).await?;
        let timeline = timeline(cx.tx, cx.backend, id, cx.batch_entries).await?;
        let requests = requests_of_case(cx, id, None).await?;
        Ok(CaseStatus { case, members, timeline, mirror: None, requests })
    }
}

/// The requests this node holds for case `id`, rebuilt with their clocks: those this party made
/// for it, and for a partner-led case (`lead`) those the lead sent here for it. A request
/// received from another party carries that party's case id, which may equal an unrelated case
/// of this node's: it is not listed. None for a peer (a partner sees its own side of a request,
/// never this node's list).
async fn requests_of_case(
    cx: &mut EffectCx<'_>,
    id: &str,
    lead: Option<&str>,
) -> Result<Vec<entente_policy::request::Request>, GateError> {
    if matches!(cx.actor, Actor::Peer { .. }) {
        return Ok(Vec::new());
    }
    let own = cx.party.as_str().to_owned();
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM requests WHERE case_id = $1 AND (requesting = $2 OR requesting = $3) ORDER BY id",
    )
    .bind(id)
    .bind(&own)
    .bind(lead.unwrap_or(&own))
    .fetch_all(&mut **cx.tx)
    .await?;
    let mut out = Vec::with_capacity(ids.len());
    for rid in ids {
        out.push(crate::requests::load(cx.tx, cx.engine, &rid).await?);
    }
    Ok(out)
}

/// Apply a case update from the lead of a partner-led case this party is a member of
/// (delivered in an envelope): this node's mirror of the case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveCaseUpdate {
    /// The update as the lead sent it.
    pub(crate) message: CaseUpdateMessage,
}

impl GateCommand for ReceiveCaseUpdate {
    type Output = ();
    type Facts = UpdateFacts;

    fn action(&self) -> Action {
        Action::CaseUpdate
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![
            Subject::new(SubjectKind::Case, &self.message.case_id),
            Subject::new(SubjectKind::Party, self.message.lead.as_str()),
        ]
    }

    /// The update applied (a denied update records only its envelope's digest).
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::FromEffect)
    }

    fn validate(&self) -> Result<(), GateError> {
        self.message.validate().map_err(GateError::Invalid)
    }

    async fn load(&self, cx: &mut EffectCx<'_>) -> Result<UpdateFacts, GateError> {
        load_update_facts(cx.tx, &self.message.case_id).await
    }

    fn decide(&self, cx: &DecideCx<'_>, facts: &UpdateFacts) -> Ruling {
        Ruling::of(decide_update(
            cx.engine,
            cx.party,
            cx.actor,
            &self.message,
            facts,
            cx.role,
            cx.now,
        ))
    }

    async fn apply(
        self,
        cx: &mut EffectCx<'_>,
        _: UpdateFacts,
        _: &Ruling,
    ) -> Result<(), GateError> {
        let message = self.message;
        let update = digest(&message)?;
        let members = serde_json::to_string(&message.members).map_err(GateError::encoding)?;
        let concepts = serde_json::to_string(&message.concepts).map_err(GateError::encoding)?;
        let conditions = serde_json::to_string(&message.conditions).map_err(GateError::encoding)?;
        let now_text = cx.now_text();
        let still_member = message.members.iter().any(|m| m.party == cx.party.as_str());
        let first =
            sqlx::query("SELECT first_at, first_index FROM case_mirrors WHERE case_id = $1")
                .bind(&message.case_id)
                .fetch_optional(&mut **cx.tx)
                .await?;
        let (first_at, first_index): (String, i64) = match first {
            Some(r) => (r.try_get(0)?, r.try_get(1)?),
            None => (now_text.clone(), to_i64(cx.index)?),
        };
        sqlx::query("DELETE FROM case_mirrors WHERE case_id = $1")
            .bind(&message.case_id)
            .execute(&mut **cx.tx)
            .await?;
        // A member removed by the lead keeps no mirror: data about the case no longer flow to
        // or from it as a member.
        if still_member {
            sqlx::query(
                "INSERT INTO case_mirrors (case_id, lead, concepts, members, conditions, change, lead_index, \
                 first_at, first_index, updated_at, ledger_index) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&message.case_id)
            .bind(message.lead.as_str())
            .bind(concepts)
            .bind(members)
            .bind(conditions)
            .bind(&message.change)
            .bind(to_i64(message.ledger_index)?)
            .bind(first_at)
            .bind(first_index)
            .bind(&now_text)
            .bind(to_i64(cx.index)?)
            .execute(&mut **cx.tx)
            .await?;
        }
        cx.record_digests(vec![("update".into(), update)]);
        Ok(())
    }
}
