//! The incoming check: what a central authority sees on a request it receives — the
//! dual-criminality result with both sides' provisions, the agreement and article that
//! ground the request, the grounds for refusal that may apply, and the clocks to answer.

use crate::agreement::{Agreement, Citation, RefusalGround};
use crate::request::Request;
use entente_core::lexicon::{DualCriminality, Lexicon};
use jiff::Timestamp;
use serde::Serialize;

/// Dual criminality of one of the requesting party's provisions at the requested party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProvisionCheck {
    /// The provision as the request names it.
    pub provision: String,
    /// The check, or why it could not run (unknown provision, no lexicon profile).
    pub result: Result<DualCriminality, String>,
}

/// One clock as the receiving authority needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClockLine {
    /// Deadline or period, with its duration.
    pub clock: String,
    /// Due instant, UTC.
    pub due_utc: String,
    /// Due instant in the clock's time zone.
    pub due_local: String,
    /// Running, met, missed or stopped.
    pub status: String,
    /// Whether its legal basis is unverified.
    pub unverified: bool,
}

/// Everything the requested party's central authority needs to decide.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IncomingCheck {
    /// The agreement and the article of the request kind.
    pub legal_basis: Citation,
    /// The agreement's id and title.
    pub agreement: String,
    /// Whether the agreement requires dual criminality, and at which threshold (months).
    pub dual_criminality_required: Option<u32>,
    /// One check per provision of the requesting party.
    pub dual_criminality: Vec<ProvisionCheck>,
    /// The grounds on which the requested party may refuse, from the agreement.
    pub refusal_grounds: Vec<RefusalGround>,
    /// The clocks to answer.
    pub clocks: Vec<ClockLine>,
}

/// Builds the incoming check of `request` under `agreement` for the requesting party's
/// `provisions`, at `now`.
pub fn incoming_check(
    request: &Request,
    provisions: &[String],
    agreement: &Agreement,
    lexicon: &Lexicon,
    now: Timestamp,
) -> IncomingCheck {
    let threshold = agreement.dual_criminality_months;
    let dual_criminality = provisions
        .iter()
        .map(|p| ProvisionCheck {
            provision: p.clone(),
            result: lexicon
                .check_dual_criminality(request.from.as_str(), p, request.to.as_str(), threshold)
                .map_err(|e| e.to_string()),
        })
        .collect();
    IncomingCheck {
        legal_basis: request.rule.basis.clone(),
        agreement: format!("{} ({})", agreement.id, agreement.title),
        dual_criminality_required: threshold,
        dual_criminality,
        refusal_grounds: agreement.refusal_grounds.clone(),
        clocks: request
            .clocks
            .iter()
            .map(|c| ClockLine {
                clock: format!("{} {}", c.kind.name(), c.duration.text),
                due_utc: c.due.to_string(),
                due_local: c.due_local().to_string(),
                status: c.status(now).to_string(),
                unverified: c.unverified(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agreement::{RequestKind, builtin_agreements};
    use crate::request::RequestEvent;
    use entente_core::lexicon::Verdict;

    #[test]
    fn epoc_from_nl_to_de() {
        let lexicon = Lexicon::builtin().unwrap();
        let agreements = builtin_agreements(&lexicon).unwrap();
        let eu = agreements.iter().find(|a| a.id == "eu-2023-1543").unwrap();
        let now: Timestamp = "2026-09-01T08:00:00Z".parse().unwrap();
        let mut r = Request::new(
            RequestKind::Production,
            eu,
            "NL".parse().unwrap(),
            "DE".parse().unwrap(),
            false,
            now,
        )
        .unwrap();
        r.apply(RequestEvent::Submit, now, eu).unwrap();
        r.apply(RequestEvent::Receive, now, eu).unwrap();
        let check = incoming_check(&r, &["Sr 138ab".into(), "Sr 999".into()], eu, &lexicon, now);
        assert!(check.legal_basis.citation.contains("2023/1543"), "{:?}", check.legal_basis);
        assert!(!check.refusal_grounds.is_empty());
        assert_eq!(check.clocks.len(), 1);
        assert_eq!(check.clocks[0].status, "running");
        match &check.dual_criminality[0].result {
            Ok(dc) => assert_ne!(dc.verdict, Verdict::NotSatisfied, "{dc:?}"),
            Err(e) => panic!("{e}"),
        }
        assert!(check.dual_criminality[1].result.is_err());
    }
}
