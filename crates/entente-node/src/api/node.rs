//! The node itself: liveness, metrics, this document, and who the caller is.

use crate::server::{ApiResult, AppState, actor, json};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use entente_core::Actor;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
        .routes(routes!(whoami))
}

/// The node is up: its party and the size of its ledger.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    pub(crate) status: String,
    /// The node's party.
    #[schema(schema_with = super::party)]
    pub(crate) party: String,
    /// Entries in the ledger.
    pub(crate) ledger_size: u64,
}

/// Who acts, as the node's ledger records it.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum ActorView {
    /// Whoever holds the node's data directory.
    Operator,
    /// An authenticated user of this node.
    User {
        /// The user's name.
        name: String,
        /// The user's role.
        #[schema(schema_with = super::role)]
        role: String,
    },
    /// A caller that presented no valid credential.
    Anonymous,
    /// The operator acting at the command line for one of the node's users.
    OperatorFor {
        /// The user's name.
        name: String,
        /// The user's role.
        #[schema(schema_with = super::role)]
        role: String,
    },
    /// A partner node, authenticated by its pinned key.
    Peer {
        /// The partner's party.
        #[schema(schema_with = super::party)]
        party: String,
    },
}

impl From<&Actor> for ActorView {
    fn from(a: &Actor) -> Self {
        match a {
            Actor::Operator => ActorView::Operator,
            Actor::User { name, role } => {
                ActorView::User { name: name.clone(), role: role.as_str().to_owned() }
            }
            Actor::Anonymous => ActorView::Anonymous,
            Actor::OperatorFor { name, role } => {
                ActorView::OperatorFor { name: name.clone(), role: role.as_str().to_owned() }
            }
            Actor::Peer { party } => ActorView::Peer { party: party.to_string() },
        }
    }
}

/// The caller as the node sees it.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct WhoAmI {
    /// The caller.
    pub(crate) actor: ActorView,
    /// The node's party.
    #[schema(schema_with = super::party)]
    pub(crate) party: String,
}

#[utoipa::path(get, path = "/healthz", tag = "node", summary = "Liveness and ledger size",
    responses((status = 200, description = "healthy", body = Health)))]
async fn healthz(State(state): State<AppState>) -> ApiResult {
    let (size, _) = state.node.store.ledger_head().await?;
    json(
        StatusCode::OK,
        &Health {
            status: "ok".to_owned(),
            party: state.node.config.party.to_string(),
            ledger_size: size,
        },
    )
}

#[utoipa::path(get, path = "/metrics", tag = "node", summary = "Prometheus metrics",
    responses((status = 200, description = "text exposition format", content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> ApiResult {
    let (size, _) = state.node.store.ledger_head().await?;
    let overdue =
        match state.node.store.overdue_clocks(state.node.gate.engine(), Timestamp::now()).await {
            Ok(n) => n.to_string(),
            Err(e) => {
                tracing::error!(error = %e, "cannot count overdue requests");
                "NaN".to_owned()
            }
        };
    let m = &state.metrics;
    let mut text = format!(
        "# HELP entente_ledger_entries Entries in the node's ledger.\n\
         # TYPE entente_ledger_entries gauge\n\
         entente_ledger_entries {size}\n\
         # HELP entente_requests_overdue_clocks Legal clocks of open requests past their due instant.\n\
         # TYPE entente_requests_overdue_clocks gauge\n\
         entente_requests_overdue_clocks {overdue}\n\
         # HELP entente_gate_decisions_total Gate decisions taken through the API.\n\
         # TYPE entente_gate_decisions_total counter\n\
         entente_gate_decisions_total{{outcome=\"permit\"}} {}\n\
         entente_gate_decisions_total{{outcome=\"deny\"}} {}\n\
         # HELP entente_http_responses_total HTTP responses by status class.\n\
         # TYPE entente_http_responses_total counter\n\
         entente_http_responses_total{{class=\"2xx\"}} {}\n\
         entente_http_responses_total{{class=\"4xx\"}} {}\n\
         entente_http_responses_total{{class=\"5xx\"}} {}\n",
        m.permits.load(Ordering::Relaxed),
        m.denies.load(Ordering::Relaxed),
        m.responses_2xx.load(Ordering::Relaxed),
        m.responses_4xx.load(Ordering::Relaxed),
        m.responses_5xx.load(Ordering::Relaxed),
    );
    text.push_str(&state.node.handshakes.prometheus());
    // The operator's view (`entente status`) as gauges.
    match crate::status::status(&state.node).await {
        Ok(s) => text.push_str(&crate::status::prometheus(&s)),
        Err(e) => tracing::error!(error = %e, "cannot read the node's status"),
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

#[utoipa::path(get, path = "/openapi.json", tag = "node", summary = "This document",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object)))]
async fn openapi(State(state): State<AppState>) -> Response {
    axum::Json(&*state.openapi).into_response()
}

#[utoipa::path(get, path = "/api/v1/whoami", tag = "node", summary = "The caller as the node sees it (anonymous without a valid token)",
    security((), ("bearer" = [])),
    responses((status = 200, description = "actor", body = WhoAmI)))]
async fn whoami(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    let actor = actor(&state.node, &headers).await?;
    json(
        StatusCode::OK,
        &WhoAmI { actor: actor.actor().into(), party: state.node.config.party.to_string() },
    )
}
