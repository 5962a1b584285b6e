//! Transparency and oversight reports (`docs/transparency.md`): exact statistics for the
//! auditor and the data-protection officer, and the differentially private public report.

use super::ProblemDetails;
use crate::reports::{self, ReportsError};
use crate::server::{
    ApiResult, AppState, Problem, authenticated, body_of, json, parse_json, settle,
};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use entente_report::stats::{Citation, Table};
use entente_report::{Period, Ratio, Statistics};
use entente_store::GateError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(report_stats)).routes(routes!(report_publish))
}

/// A 422 for the caller's mistake (the same problem as the gate's `Invalid`).
fn invalid(detail: String) -> Problem {
    GateError::Invalid(detail).into()
}

fn problem(e: ReportsError) -> Problem {
    match e {
        ReportsError::Report(e) => invalid(e.to_string()),
        ReportsError::Gate(e) => e.into(),
    }
}

/// Which period: `period` (a half-year such as `2026-H2`, or a year) or `from` and `to`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsQuery {
    /// A half-year (`2026-H2`) or a calendar year (`2026`).
    period: Option<String>,
    /// Start of the period (RFC 3339), with `to`.
    from: Option<String>,
    /// End of the period, exclusive (RFC 3339), with `from`.
    to: Option<String>,
    /// A row id (`requests-issued.2`): answer with the ledger entries that row counts.
    explain: Option<String>,
    /// Only what concerns this partner party (`DE`).
    partner: Option<String>,
}

fn period_of(q: &StatsQuery) -> Result<Period, Problem> {
    let instant = |name: &str, v: &str| {
        v.parse::<jiff::Timestamp>().map_err(|e| {
            invalid(format!(
                "{name} `{v}`: {e}; expected an RFC 3339 instant such as 2026-07-01T00:00:00Z"
            ))
        })
    };
    match (&q.period, &q.from, &q.to) {
        (Some(p), None, None) => Period::parse(p).map_err(|e| invalid(e.to_string())),
        (None, Some(f), Some(t)) => Period::between(instant("from", f)?, instant("to", t)?)
            .map_err(|e| invalid(e.to_string())),
        _ => Err(invalid("give period (e.g. 2026-H2), or both from and to".to_owned())),
    }
}

/// A legal source of a table or row, with its verification status (V1, V2, P, U).
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct CitationView {
    /// The provision.
    text: String,
    /// Verification status.
    status: String,
    /// Where the text was read.
    source: String,
}

impl CitationView {
    fn new(c: &Citation) -> Self {
        CitationView {
            text: c.text.clone(),
            status: c.status.to_owned(),
            source: c.source.to_owned(),
        }
    }
}

/// A row of statistics.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct StatsRowView {
    /// `TABLE.N`, what `explain` takes.
    id: String,
    /// Values in the table's column order: text, counts, seconds (durations; `null` when
    /// nothing was measured), or `{"not_available": why}`.
    #[schema(value_type = Vec<Object>)]
    cells: Vec<serde_json::Value>,
    /// The row's own legal source.
    #[serde(skip_serializing_if = "Option::is_none")]
    citation: Option<CitationView>,
    /// How many ledger entries the row counts.
    entries: u64,
}

/// A table of statistics.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct StatsTableView {
    /// Stable id.
    id: String,
    /// Title.
    title: String,
    /// How it is counted.
    note: String,
    /// Its legal source.
    #[serde(skip_serializing_if = "Option::is_none")]
    citation: Option<CitationView>,
    /// Column names.
    columns: Vec<String>,
    /// Rows.
    rows: Vec<StatsRowView>,
}

impl StatsTableView {
    fn new(t: &Table) -> Self {
        StatsTableView {
            id: t.id.to_owned(),
            title: t.title.to_owned(),
            note: t.note.clone(),
            citation: t.citation.as_ref().map(CitationView::new),
            columns: t.columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: t
                .rows
                .iter()
                .map(|r| StatsRowView {
                    id: r.id.clone(),
                    cells: r
                        .cells
                        .iter()
                        .map(|c| serde_json::to_value(c).unwrap_or_default())
                        .collect(),
                    citation: r.citation.as_ref().map(CitationView::new),
                    entries: r.entries as u64,
                })
                .collect(),
        }
    }
}

/// Exact statistics of a period (the reading is recorded).
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct StatisticsView {
    /// `entente-statistics/1`.
    format: String,
    /// The node's party.
    #[schema(schema_with = super::party)]
    node: String,
    /// The period's label.
    period: String,
    /// First instant of the period (RFC 3339).
    from: String,
    /// First instant after it.
    to: String,
    /// Counted up to this instant.
    as_of: String,
    /// The ledger size the facts were read at.
    watermark: u64,
    /// The partner the statistics are restricted to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::party)]
    partner: Option<String>,
    /// The tables.
    tables: Vec<StatsTableView>,
    /// The ledger entry that recorded this reading.
    access_ledger_index: u64,
}

impl StatisticsView {
    fn new(s: &Statistics, access_ledger_index: u64) -> Self {
        StatisticsView {
            format: s.format.to_owned(),
            node: s.node.to_string(),
            period: s.period.label.clone(),
            from: s.period.from.to_string(),
            to: s.period.to.to_string(),
            as_of: s.as_of.to_string(),
            watermark: s.watermark,
            partner: s.partner.as_ref().map(|p| p.to_string()),
            tables: s.tables.iter().map(StatsTableView::new).collect(),
            access_ledger_index,
        }
    }
}

/// The ledger entries one row counts.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct StatsRowExplained {
    /// The row.
    row: String,
    /// Its table.
    table: String,
    /// Its values.
    #[schema(value_type = Vec<Object>)]
    cells: Vec<serde_json::Value>,
    /// The ledger indexes it counts.
    ledger: Vec<u64>,
    /// The ledger entry that recorded this reading.
    access_ledger_index: u64,
}

/// Exact statistics of a period, computed from the ledger and the store.
#[utoipa::path(get, path = "/api/v1/reports/stats", tag = "reports",
    summary = "Exact statistics of a period: requests issued and received (by partner, kind, legal basis, emergency; outcomes; time to answer), data flows and denials by rule, onward-transfer consents, incident notifications on time or late, complaints, deconfliction counts, evidence packages, and Regulation (EU) 2023/1543 Art 28; each row traceable to its ledger entries (explain=ROW); the reading is recorded; auditor, DPO",
    security(("bearer" = [])), params(StatsQuery),
    responses((status = 200, description = "the statistics, or with explain the entries of one row", body = StatisticsView),
        (status = 400, response = ProblemDetails), (status = 401, response = ProblemDetails), (status = 403, response = ProblemDetails),
        (status = 404, response = ProblemDetails), (status = 422, response = ProblemDetails)))]
async fn report_stats(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let authenticated = actor.is_authenticated();
    let Query(q) = q.map_err(|e| {
        Problem::bad_request(format!(
            "{e}; expected ?period=2026-H2 or ?from=…&to=…, and optionally explain=ROW"
        ))
    })?;
    let period = period_of(&q)?;
    let partner = q
        .partner
        .as_deref()
        .map(|p| p.parse::<entente_core::PartyCode>().map_err(|e| invalid(format!("partner: {e}"))))
        .transpose()?;
    let v =
        reports::statistics(&state.node, actor, &period, partner.as_ref(), jiff::Timestamp::now())
            .await
            .map_err(problem)?;
    let (index, stats) = settle(&state, v, authenticated)?;
    if let Some(row) = &q.explain {
        let Some((table, r)) = stats.explain(row) else {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                format!(
                    "row {row} is not in these statistics (rows are named TABLE.N, e.g. requests-issued.1)"
                ),
            ));
        };
        return json(
            StatusCode::OK,
            &StatsRowExplained {
                row: r.id.clone(),
                table: table.id.to_owned(),
                cells: r
                    .cells
                    .iter()
                    .map(|c| serde_json::to_value(c).unwrap_or_default())
                    .collect(),
                ledger: r.ledger.clone(),
                access_ledger_index: index,
            },
        );
    }
    json(StatusCode::OK, &StatisticsView::new(&stats, index))
}

/// A publication of the public report.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPublication {
    /// The half-year (`2026-H2`) or calendar year.
    period: String,
    /// ε of a new release (default: the node's `[reports] epsilon`), e.g. `1/2` or `0.25`.
    #[serde(default)]
    epsilon: Option<String>,
    /// Draw a new release even if the period has one (spends its ε).
    #[serde(default)]
    new_release: bool,
}

/// A release of the public report.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct Publication {
    /// The period.
    period: String,
    /// Release number within the period.
    release: u32,
    /// Whether this is the stored release again (no budget spent).
    reissued: bool,
    /// `sha256:<hex>` of `file`, as the ledger records it.
    digest: String,
    /// The ledger entry that recorded the release (named in the file).
    ledger_index: u64,
    /// The ledger entry that recorded this publication.
    access_ledger_index: u64,
    /// The published file, exactly (RFC 8785 canonical JSON): what `entente report verify`
    /// checks.
    file: String,
}

/// Publish the differentially private public report of a period.
#[utoipa::path(post, path = "/api/v1/reports/publications", tag = "reports",
    summary = "Publish the public report of a period: counts per partner country with discrete Laplace noise (privacy unit: the case, contributions bounded), post-processed to consistent non-negative integers; the stored release again (200), or a new release within the period's privacy budget (201; a budget exceeded is a recorded 403); DPO",
    security(("bearer" = [])), request_body = NewPublication,
    responses((status = 200, description = "the stored release", body = Publication),
        (status = 201, description = "a new release", body = Publication), super::UploadProblems))]
async fn report_publish(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let authenticated = actor.is_authenticated();
    let body = body_of(body)?;
    let req: NewPublication = parse_json(&headers, &body)?;
    let period = Period::parse(&req.period).map_err(|e| invalid(e.to_string()))?;
    let epsilon = req
        .epsilon
        .as_deref()
        .map(Ratio::parse)
        .transpose()
        .map_err(|m| invalid(format!("epsilon {m}")))?;
    let v = reports::publish(
        &state.node,
        actor,
        &period,
        epsilon,
        req.new_release,
        jiff::Timestamp::now(),
    )
    .await
    .map_err(problem)?;
    let (index, p) = settle(&state, v, authenticated)?;
    let status = if p.reissued { StatusCode::OK } else { StatusCode::CREATED };
    json(
        status,
        &Publication {
            period: p.report.period.clone(),
            release: p.report.release,
            reissued: p.reissued,
            digest: p.digest.clone(),
            ledger_index: p.report.ledger_index,
            access_ledger_index: index,
            file: String::from_utf8_lossy(&p.bytes).into_owned(),
        },
    )
}
