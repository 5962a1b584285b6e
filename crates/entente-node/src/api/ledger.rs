//! The ledger: public C2SP tlog-tiles endpoints (checkpoint, verifier key, cosigned checkpoint,
//! tiles), the entries for oversight roles, and inclusion and consistency proofs.

use super::ProblemDetails;
use crate::server::{ApiResult, AppState, Problem, authenticated, json, through_gate};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use entente_core::ledger::{self, TileRef};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(checkpoint))
        .routes(routes!(verifier_key))
        .routes(routes!(cosigned_checkpoint))
        .routes(routes!(tile))
        .routes(routes!(ledger_entries))
        .routes(routes!(inclusion_proof))
        .routes(routes!(consistency_proof))
}

/// A range of ledger entries, `from` included, `to` excluded.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Range {
    /// The first entry.
    from: u64,
    /// The entry after the last.
    to: u64,
}

/// Ledger entries, as recorded (RFC 8785 canonical JSON).
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct LedgerEntries {
    /// The entries, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub(crate) entries: Vec<Value>,
    /// The ledger entry that recorded this reading.
    pub(crate) access_ledger_index: u64,
}

/// Which entry to prove, in which tree.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct InclusionQuery {
    /// The entry's index.
    index: u64,
    /// A tree size at which a checkpoint was published (default: the latest).
    size: Option<u64>,
}

/// An RFC 6962 inclusion proof (hashes in base64) with the checkpoint it is against.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct InclusionProof {
    /// The entry's index.
    pub(crate) index: u64,
    /// The tree size proven against.
    pub(crate) tree_size: u64,
    /// The entry's leaf hash (base64).
    pub(crate) leaf_hash: Option<String>,
    /// The proof's hashes (base64), leaf to root.
    pub(crate) proof: Vec<String>,
    /// The signed checkpoint of `tree_size`.
    pub(crate) checkpoint: String,
}

/// Which trees to prove consistent.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ConsistencyQuery {
    /// The older tree size.
    old: u64,
    /// The newer tree size, at which a checkpoint was published (default: the latest).
    size: Option<u64>,
}

/// An RFC 6962 consistency proof (hashes in base64) with the newer checkpoint.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct ConsistencyProof {
    /// The older tree size.
    pub(crate) old_size: u64,
    /// The newer tree size.
    pub(crate) tree_size: u64,
    /// The proof's hashes (base64).
    pub(crate) proof: Vec<String>,
    /// The signed checkpoint of `tree_size`.
    pub(crate) checkpoint: String,
}

#[utoipa::path(get, path = "/ledger/checkpoint", tag = "ledger",
    summary = "Latest signed checkpoint (C2SP tlog-checkpoint in a signed note)",
    responses((status = 200, description = "signed note", content_type = "text/plain", body = String),
        (status = 404, response = ProblemDetails)))]
async fn checkpoint(State(state): State<AppState>) -> ApiResult {
    match state.node.store.ledger_head().await? {
        (_, Some(note)) => {
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
        }
        (_, None) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "the ledger has no checkpoint yet",
        )),
    }
}

#[utoipa::path(get, path = "/ledger/key", tag = "ledger",
    summary = "The ledger's C2SP signed-note verifier key (pin it out of band)",
    responses((status = 200, description = "verifier key", content_type = "text/plain", body = String)))]
async fn verifier_key(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", state.node.verifier_key()),
    )
        .into_response()
}

/// The latest checkpoint partners have cosigned, with their cosignatures (C2SP
/// tlog-cosignature), for auditors who require a witness threshold.
#[utoipa::path(get, path = "/ledger/cosigned-checkpoint", tag = "ledger",
    summary = "The latest checkpoint partners have cosigned, with their cosignatures (C2SP tlog-cosignature)",
    responses((status = 200, description = "signed note with cosignatures", content_type = "text/plain", body = String),
        (status = 404, response = ProblemDetails)))]
async fn cosigned_checkpoint(State(state): State<AppState>) -> ApiResult {
    let path = state.node.data_dir.join(crate::witness::COSIGNED_FILE);
    match std::fs::read(&path) {
        Ok(note) => {
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
        }
        Err(_) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "no partner has cosigned a checkpoint of this ledger yet",
        )),
    }
}

#[utoipa::path(get, path = "/ledger/tile/{*path}", tag = "ledger",
    summary = "C2SP tlog-tiles hash tile or entry bundle",
    params(("path" = String, Path, description = "the tile's path: `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`")),
    responses((status = 200, description = "tile bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, response = ProblemDetails)))]
async fn tile(State(state): State<AppState>, Path(path): Path<String>) -> ApiResult {
    let tile = ledger::parse_tile_path(&path)
        .map_err(|e| Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", e))?;
    let bytes = state.node.store.tile(tile).await?;
    let full = match tile {
        TileRef::Hashes { width, .. } | TileRef::Entries { width, .. } => {
            width == ledger::TILE_WIDTH
        }
    };
    // Full tiles never change; partial ones are superseded as the log grows.
    let cache = if full { "public, max-age=31536000, immutable" } else { "no-cache" };
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream"), (header::CACHE_CONTROL, cache)],
        bytes,
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/ledger/entries", tag = "ledger",
    summary = "Ledger entries from..to (oversight roles; the access is recorded)",
    security(("bearer" = [])), params(Range),
    responses((status = 200, description = "entries", body = LedgerEntries),
        (status = 400, response = ProblemDetails), (status = 401, response = ProblemDetails),
        (status = 403, response = ProblemDetails), (status = 422, response = ProblemDetails)))]
async fn ledger_entries(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<Range>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let actor = authenticated(&state.node, &headers).await?;
    let Query(range) =
        q.map_err(|e| Problem::bad_request(format!("{e}; expected ?from=N&to=M")))?;
    let read = entente_store::ledger_reads::ReadLedger { from: range.from, to: range.to };
    let (index, entries) = through_gate(&state, actor, read).await?;
    let entries = entries
        .iter()
        .map(|(_, bytes)| serde_json::from_slice(bytes).unwrap_or(Value::Null))
        .collect();
    json(StatusCode::OK, &LedgerEntries { entries, access_ledger_index: index })
}

async fn head_size(state: &AppState, size: Option<u64>) -> Result<(u64, Vec<u8>), Problem> {
    let (head, note) = state.node.store.ledger_head().await?;
    let note = note.ok_or_else(|| {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", "the ledger is empty")
    })?;
    match size {
        None => Ok((head, note)),
        Some(s) if s <= head => {
            let cps = state.node.store.checkpoints().await?;
            cps.into_iter().find(|(cs, _)| *cs == s).ok_or_else(|| {
                Problem::bad_request(format!(
                    "no checkpoint was published at size {s}; omit size to use the latest ({head})"
                ))
            })
        }
        Some(s) => Err(Problem::bad_request(format!("size {s} exceeds the ledger size {head}"))),
    }
}

fn b64_list(hashes: &[ledger::Hash]) -> Vec<String> {
    hashes.iter().map(|h| BASE64_STANDARD.encode(h.0)).collect()
}

#[utoipa::path(get, path = "/api/v1/ledger/proof/inclusion", tag = "ledger",
    summary = "Inclusion proof of an entry", params(InclusionQuery),
    responses((status = 200, description = "proof", body = InclusionProof),
        (status = 400, response = ProblemDetails), (status = 404, response = ProblemDetails)))]
async fn inclusion_proof(
    State(state): State<AppState>,
    q: Result<Query<InclusionQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) =
        q.map_err(|e| Problem::bad_request(format!("{e}; expected ?index=N[&size=M]")))?;
    let (size, note) = head_size(&state, q.size).await?;
    if q.index >= size {
        return Err(Problem::bad_request(format!(
            "index {} is not below the tree size {size}",
            q.index
        )));
    }
    let proof = state.node.store.inclusion_proof(size, q.index).await?;
    let entry = state.node.store.entries(q.index, q.index + 1).await?;
    let leaf = entry.first().map(|(_, e)| BASE64_STANDARD.encode(ledger::record_hash(e).0));
    json(
        StatusCode::OK,
        &InclusionProof {
            index: q.index,
            tree_size: size,
            leaf_hash: leaf,
            proof: b64_list(&proof),
            checkpoint: String::from_utf8_lossy(&note).into_owned(),
        },
    )
}

#[utoipa::path(get, path = "/api/v1/ledger/proof/consistency", tag = "ledger",
    summary = "Consistency proof between two tree sizes", params(ConsistencyQuery),
    responses((status = 200, description = "proof", body = ConsistencyProof),
        (status = 400, response = ProblemDetails), (status = 404, response = ProblemDetails)))]
async fn consistency_proof(
    State(state): State<AppState>,
    q: Result<Query<ConsistencyQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| Problem::bad_request(format!("{e}; expected ?old=N[&size=M]")))?;
    let (size, note) = head_size(&state, q.size).await?;
    if q.old == 0 || q.old > size {
        return Err(Problem::bad_request(format!(
            "old size {} must be between 1 and {size}",
            q.old
        )));
    }
    let proof = state.node.store.consistency_proof(size, q.old).await?;
    json(
        StatusCode::OK,
        &ConsistencyProof {
            old_size: q.old,
            tree_size: size,
            proof: b64_list(&proof),
            checkpoint: String::from_utf8_lossy(&note).into_owned(),
        },
    )
}
