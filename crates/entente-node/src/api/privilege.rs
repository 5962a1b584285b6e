//! Privilege screening through the API: flag an evidence item as possibly privileged, and
//! the filter team's review (`entente_store::evidence::{FlagPrivilege, ReviewPrivilege}`).
//! Until a filter team releases a flagged item (or names its redacted copy), no export or
//! package carries it.

use crate::server::{ApiResult, AppState, authenticated, json, parse_id, parse_json, through_gate};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use entente_store::evidence::{FlagPrivilege, ReviewOutcome, ReviewPrivilege};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(flag)).routes(routes!(review))
}

/// Why the item may be privileged.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Flag {
    /// Why (1 to 2,000 characters; recorded as a digest), e.g. "mail from counsel".
    reason: String,
}

/// What the filter team decides.
#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Outcome {
    /// Not privileged: the item may leave.
    Release,
    /// Privileged: the item never leaves.
    Withhold,
    /// Privileged parts removed into `redacted_item`, which leaves instead.
    Redact,
}

/// A filter team's review.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Review {
    /// The decision.
    outcome: Outcome,
    /// For `redact`: the redacted item (another item of the same case, already taken in).
    redacted_item: Option<String>,
    /// Why (1 to 2,000 characters; recorded as a digest).
    reason: String,
}

/// Where the item stands after the step.
#[derive(Serialize, ToSchema)]
pub(crate) struct PrivilegeView {
    /// The item.
    item: String,
    /// `flagged`, `released`, `withheld` or `redacted`.
    status: &'static str,
    /// For `redacted`: the item that leaves instead.
    redacted_item: Option<String>,
    /// The ledger entry of the step.
    ledger_index: u64,
}

#[utoipa::path(post, path = "/api/v1/evidence/{id}/privilege", tag = "evidence",
    summary = "Flag an evidence item as possibly privileged: from now on it cannot be exported or packaged until a filter team reviews it (the reason is recorded as a digest)",
    security(("bearer" = [])), params(("id" = String, Path, description = "the item's id")),
    request_body = Flag,
    responses((status = 201, description = "flagged", body = PrivilegeView), super::WriteProblems))]
async fn flag(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let req: Flag = parse_json(&headers, &body)?;
    let command = FlagPrivilege { id: parse_id(id.clone())?, reason: req.reason };
    let (index, ()) = through_gate(&state, actor, command).await?;
    json(
        StatusCode::CREATED,
        &PrivilegeView { item: id, status: "flagged", redacted_item: None, ledger_index: index },
    )
}

#[utoipa::path(post, path = "/api/v1/evidence/{id}/privilege/review", tag = "evidence",
    summary = "A filter team's review of a flagged item (the filter-team role only): release it, withhold it, or name its redacted copy, which leaves instead (once; again: 409)",
    security(("bearer" = [])), params(("id" = String, Path, description = "the item's id")),
    request_body = Review,
    responses((status = 200, description = "reviewed", body = PrivilegeView), super::WriteProblems))]
async fn review(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let req: Review = parse_json(&headers, &body)?;
    let (outcome, status) = match (req.outcome, req.redacted_item) {
        (Outcome::Release, None) => (ReviewOutcome::Release, "released"),
        (Outcome::Withhold, None) => (ReviewOutcome::Withhold, "withheld"),
        (Outcome::Redact, Some(r)) => (ReviewOutcome::Redact { item: parse_id(r)? }, "redacted"),
        (Outcome::Redact, None) => {
            return Err(entente_store::GateError::Invalid(
                "redacted_item: required with the outcome `redact`".into(),
            )
            .into());
        }
        (_, Some(_)) => {
            return Err(entente_store::GateError::Invalid(
                "redacted_item: only with the outcome `redact`".into(),
            )
            .into());
        }
    };
    let redacted_item = match &outcome {
        ReviewOutcome::Redact { item } => Some(item.to_string()),
        _ => None,
    };
    let command = ReviewPrivilege { id: parse_id(id.clone())?, outcome, reason: req.reason };
    let (index, ()) = through_gate(&state, actor, command).await?;
    json(StatusCode::OK, &PrivilegeView { item: id, status, redacted_item, ledger_index: index })
}
