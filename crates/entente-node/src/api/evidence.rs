//! Evidence through the API: `POST /api/v1/cases/{id}/evidence`, a streamed upload.
//!
//! The raw request body is the item's content (any media type; `Content-Type` is recorded as
//! its media type). It is streamed into the blob store as it arrives — hashed (SHA-256) and
//! encrypted on the way, never held in memory whole — and the `acquired` custody event is
//! recorded through the gate with the caller as actor, as `entente evidence add` does. The
//! item's metadata comes in the query string (`description` required; `id`, `file_name`,
//! `source`, `collected_at`, `category`, `reason`, `legal_basis`). The caller may state the
//! digest it expects, as RFC 9530 `Repr-Digest: sha-256=:<base64>:` (or `Content-Digest`, the
//! same for an unencoded body) or `sha256=<hex>` in the query: on a mismatch the answer is 422
//! and nothing is stored.
//!
//! Refusals before the body is read: a malformed query or digest (400), a body declared larger
//! than `[evidence] max_upload_bytes` (413), a caller whose role may not add evidence (401/403,
//! recorded by the gate like every refusal), an unknown case (404). A body that grows past the
//! limit (413), that breaks off (the connection dropped, a short body) or whose digest differs
//! leaves nothing in the blob store and nothing in the ledger.

use super::ProblemDetails;
use crate::server::{AppState, Problem, authenticated};
use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use entente_core::policy::{DecisionRequest, decide};
use entente_core::{Action, Subject, SubjectKind};
use entente_evidence::blob;
use entente_evidence::custody::CustodyEvent;
use entente_policy::agreement::DataCategory;
use entente_store::Principal;
use entente_store::{EvidenceRecord, NewEvidence, Verdict};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::io::{self, Read};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The route, with its own (streaming, configured) body limit instead of the API's default.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upload)).layer(DefaultBodyLimit::disable())
}

/// The item's metadata, in the query string.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UploadQuery {
    /// What the content is.
    description: String,
    /// The item's id (default: `<CASE>-<first 12 hex digits of its SHA-256>`).
    id: Option<String>,
    /// The original file name.
    file_name: Option<String>,
    /// Where it came from.
    source: Option<String>,
    /// When it was collected (RFC 3339).
    collected_at: Option<String>,
    /// Its category (default: content).
    #[param(schema_with = super::data_category)]
    category: Option<DataCategory>,
    /// Why it is acquired.
    reason: Option<String>,
    /// The legal basis: a request or agreement id.
    legal_basis: Option<String>,
    /// The expected SHA-256, 64 hex digits.
    sha256: Option<String>,
}

/// One custody event of an item.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = CustodyEvent)]
pub(crate) struct CustodyEventView {
    /// The item's id.
    pub(crate) item: String,
    /// Position in the item's chain, from 0.
    pub(crate) seq: u64,
    /// What happened (`acquired`, `sealed`, `accessed`, …).
    pub(crate) event: String,
    /// The party whose node recorded it (and whose ledger proves it).
    #[schema(schema_with = super::party)]
    pub(crate) party: String,
    /// Who did it (user and role, or the operator).
    pub(crate) actor: String,
    /// When (RFC 3339, UTC, microseconds).
    pub(crate) at: String,
    /// Why.
    pub(crate) reason: String,
    /// The legal basis: a request or agreement id.
    pub(crate) legal_basis: Option<String>,
    /// Where (the node, or the place of collection).
    pub(crate) location: Option<String>,
    /// The tool and its version.
    pub(crate) tool: String,
    /// SHA-256 of the item's content, hex.
    pub(crate) sha256: String,
    /// The digest (`sha256:…`) of the previous event, none for the first.
    pub(crate) prev: Option<String>,
}

impl From<&CustodyEvent> for CustodyEventView {
    fn from(e: &CustodyEvent) -> Self {
        CustodyEventView {
            item: e.item.clone(),
            seq: e.seq,
            event: e.event.as_str().to_owned(),
            party: e.party.to_string(),
            actor: e.actor.clone(),
            at: e.at.clone(),
            reason: e.reason.clone(),
            legal_basis: e.legal_basis.clone(),
            location: e.location.clone(),
            tool: e.tool.clone(),
            sha256: e.sha256.clone(),
            prev: e.prev.clone(),
        }
    }
}

/// An evidence item added.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct EvidenceAdded {
    /// The item's id.
    pub(crate) id: String,
    /// Its case.
    pub(crate) case_id: String,
    /// SHA-256 of its content, hex.
    pub(crate) sha256: String,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// Its media type (the request's `Content-Type`).
    pub(crate) media_type: String,
    /// True when the same content was already stored (no second blob).
    pub(crate) deduplicated: bool,
    /// Its custody chain.
    pub(crate) custody: Vec<CustodyEventView>,
    /// The ledger entry that recorded the acquisition.
    pub(crate) ledger_index: u64,
}

impl EvidenceAdded {
    fn new(r: &EvidenceRecord, ledger_index: u64) -> Self {
        EvidenceAdded {
            id: r.id.clone(),
            case_id: r.case_id.clone(),
            sha256: r.sha256.clone(),
            size: r.size,
            media_type: r.media_type.clone(),
            deduplicated: r.deduplicated,
            custody: r.chain.iter().map(|e| (&e.event).into()).collect(),
            ledger_index,
        }
    }
}

/// The SHA-256 the caller expects, from `Repr-Digest`/`Content-Digest` (RFC 9530) or the
/// `sha256` query parameter; they must agree when several are given.
fn expected_digest(headers: &HeaderMap, query: Option<&str>) -> Result<Option<String>, Problem> {
    let mut found: Vec<(String, String)> = Vec::new();
    for name in ["repr-digest", "content-digest"] {
        for value in headers.get_all(name) {
            let text = value.to_str().map_err(|_| {
                Problem::bad_request(format!("{name}: not ASCII; expected sha-256=:<base64>:"))
            })?;
            let mut sha = None;
            let mut others = Vec::new();
            for member in text.split(',') {
                let (algo, v) = member.trim().split_once('=').ok_or_else(|| {
                    Problem::bad_request(format!(
                        "{name}: `{}` is not `algorithm=:<base64>:` (RFC 9530)",
                        member.trim()
                    ))
                })?;
                let algo = algo.trim().to_ascii_lowercase();
                if algo != "sha-256" {
                    others.push(algo);
                    continue;
                }
                let b64 = v.trim().strip_prefix(':').and_then(|v| v.strip_suffix(':')).ok_or_else(
                    || {
                        Problem::bad_request(format!(
                            "{name}: sha-256 value must be a byte sequence `:<base64>:` (RFC 9530)"
                        ))
                    },
                )?;
                let bytes = BASE64_STANDARD.decode(b64).ok().filter(|b| b.len() == 32).ok_or_else(
                    || {
                        Problem::bad_request(format!(
                            "{name}: sha-256 value is not the base64 of 32 bytes"
                        ))
                    },
                )?;
                sha = Some(hex::encode(bytes));
            }
            match sha {
                Some(s) => found.push((name.to_owned(), s)),
                None => {
                    return Err(Problem::bad_request(format!(
                        "{name}: only sha-256 is supported (got {}); send sha-256=:<base64>:",
                        others.join(", ")
                    )));
                }
            }
        }
    }
    if let Some(q) = query {
        let q = q.trim().to_ascii_lowercase();
        if q.contains(':') || q.parse::<entente_core::digest::Sha256>().is_err() {
            return Err(Problem::bad_request("sha256: expected 64 hex digits"));
        }
        found.push(("the sha256 parameter".to_owned(), q));
    }
    if let Some((first, rest)) = found.split_first()
        && let Some((other, _)) = rest.iter().find(|(_, s)| *s != first.1)
    {
        return Err(Problem::bad_request(format!(
            "{} and {other} state different SHA-256 digests",
            first.0
        )));
    }
    Ok(found.into_iter().next().map(|(_, s)| s))
}

/// Reads the body frames the handler passes on (blocking, on the ingest thread).
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

async fn next_data(body: &mut Body) -> Option<Result<Bytes, axum::Error>> {
    loop {
        match std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_frame(cx)).await {
            None => return None,
            Some(Err(e)) => return Some(Err(e)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Some(Ok(data));
                }
                // Trailers carry no content.
            }
        }
    }
}

fn too_large(max: u64) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too-large",
        "The content is too large",
        format!(
            "the body exceeds this node's max_upload_bytes of {max} bytes ([evidence] in entente.toml); nothing was stored"
        ),
    )
}

async fn submit<C: entente_store::GateCommand>(
    state: &AppState,
    actor: Principal,
    command: C,
) -> Result<Verdict<C::Output>, Problem> {
    Ok(state.node.gate.submit(actor, command, Timestamp::now()).await?)
}

#[utoipa::path(post, path = "/api/v1/cases/{id}/evidence", tag = "evidence",
    summary = "Add an evidence item to a case: the raw body is its content, streamed into the encrypted blob store (SHA-256 computed while it is stored, never held in memory whole); custody event `acquired` with the caller as actor. An expected digest (Repr-Digest or Content-Digest `sha-256=:<base64>:`, RFC 9530, or the sha256 parameter) that differs: 422 and nothing stored; a body over the node's max_upload_bytes: 413; a body that breaks off: nothing stored",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the case's id"), UploadQuery,
        ("Repr-Digest" = Option<String>, Header, description = "sha-256=:<base64>: (RFC 9530)"),
        ("Content-Digest" = Option<String>, Header, description = "sha-256=:<base64>: (RFC 9530), for an unencoded body")),
    request_body(description = "the item's content, any media type (recorded as its media type)",
        content(("application/octet-stream"), ("*/*"))),
    responses((status = 201, description = "the item: id, sha256, size, custody chain, ledger index", body = EvidenceAdded,
            headers(("Repr-Digest" = String, description = "sha-256=:<base64>: of the content (RFC 9530)"))),
        (status = 400, response = ProblemDetails), (status = 401, response = ProblemDetails),
        (status = 403, response = ProblemDetails), (status = 404, response = ProblemDetails),
        (status = 409, response = ProblemDetails), (status = 413, response = ProblemDetails),
        (status = 422, response = ProblemDetails)))]
async fn upload(
    State(state): State<AppState>,
    Path(case): Path<String>,
    headers: HeaderMap,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    mut body: Body,
) -> Result<Response, Problem> {
    let actor = authenticated(&state.node, &headers).await?;
    let Query(q) = query.map_err(|e| {
        Problem::bad_request(format!(
            "{}; the metadata goes in the query string: description (required), id, file_name, source, collected_at (RFC 3339), category, reason, legal_basis, sha256",
            e.body_text()
        ))
    })?;
    let expected = expected_digest(&headers, q.sha256.as_deref())?;
    let max = state.node.config.evidence.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let case_id: entente_core::CaseId = crate::server::parse_id(case.clone())?;
    let given_id: Option<entente_core::ItemId> =
        q.id.clone().map(crate::server::parse_id).transpose()?;
    let item = |sha256: String, size: u64, blob: entente_evidence::BlobRef| {
        let id = match &given_id {
            Some(id) => id.clone(),
            None => crate::server::parse_id(format!("{case}-{}", &sha256[..12]))?,
        };
        Ok::<_, Problem>(NewEvidence {
            id,
            case_id: case_id.clone(),
            sha256,
            size,
            category: q.category.unwrap_or(DataCategory::Content),
            media_type: media_type.clone(),
            description: q.description.clone(),
            file_name: q.file_name.clone(),
            source: q.source.clone(),
            collected_at: q.collected_at.clone(),
            location: Some(format!("Entente node {} (HTTP API upload)", state.node.config.party)),
            tool: format!("{} (HTTP upload, streaming SHA-256, age)", entente_store::TOOL),
            blob,
            reason: q.reason.clone().unwrap_or_else(|| "acquired for the case".to_owned()),
            legal_basis: q.legal_basis.clone(),
        })
    };
    // The role rule first, so that a caller who may not add evidence is refused before any of
    // the body is read. The refusal is recorded by the gate, which decides this command by the
    // same rule (and records only ids for a deny): the content named is the one stated by the
    // caller, or the empty content, as nothing of the body was read.
    let role = decide(
        &DecisionRequest {
            actor: actor.actor(),
            action: Action::EvidenceAdd,
            subject: &Subject::new(SubjectKind::Case, &case),
            node_party: &state.node.config.party,
            purpose: None,
            agreements: &[],
        },
        Timestamp::now(),
    );
    if !role.is_permit() {
        let sha = expected
            .clone()
            .unwrap_or_else(|| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"")));
        let unread = entente_evidence::BlobRef { name: String::new(), wrapped_key: String::new() };
        let command = entente_store::evidence::AddEvidence { item: item(sha, 0, unread)? };
        let actor_kind = actor.clone();
        return Err(match submit(&state, actor, command).await? {
            Verdict::Denied { index, decision } => {
                Problem::denied(index, &decision, actor_kind.is_authenticated())
            }
            Verdict::Permitted { .. } => {
                tracing::error!("the gate permitted an upload the role rule refused");
                Problem::internal("the node could not complete the action")
            }
        });
    }
    if !state.node.store.case_exists(&case).await? {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("case `{case}` not found"),
        ));
    }
    let Some(vault) = state.vault.clone() else {
        return Err(Problem::internal("the node's evidence store is not available"));
    };

    // Stream the body into the blob store: the ingest thread reads what this task passes on.
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(8);
    let v2 = vault.clone();
    let ingest = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader { rx, current: Bytes::new() };
        blob::ingest(&*v2.store, &v2.master, &mut reader, &mut |_| {})
    });
    let mut received = 0u64;
    let mut refused = None;
    while let Some(frame) = next_data(&mut body).await {
        match frame {
            Ok(data) => {
                received += data.len() as u64;
                if received > max {
                    refused = Some(too_large(max));
                    let _ = tx.send(Err(io::Error::other("over the limit"))).await;
                    break;
                }
                if tx.send(Ok(data)).await.is_err() {
                    // The ingest stopped: its error is reported below.
                    break;
                }
            }
            Err(e) => {
                refused = Some(Problem::bad_request(format!(
                    "the body could not be read to its end ({e}); nothing was stored"
                )));
                let _ = tx.send(Err(io::Error::other("the body broke off"))).await;
                break;
            }
        }
    }
    drop(tx);
    let got = ingest.await.map_err(|e| {
        tracing::error!(error = %e, "the ingest task failed");
        Problem::internal("the content could not be stored; nothing was changed")
    })?;
    if let Some(p) = refused {
        if let Ok(g) = &got {
            let _ = vault.store.delete(&g.blob.name);
        }
        return Err(p);
    }
    let got = got.map_err(|e| {
        tracing::error!(error = %e, "evidence upload: the content could not be stored");
        Problem::internal("the content could not be stored; nothing was changed")
    })?;
    if let Some(want) = &expected
        && *want != got.sha256
    {
        let _ = vault.store.delete(&got.blob.name);
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "digest-mismatch",
            "The content does not match its digest",
            format!(
                "the body ({} bytes) has SHA-256 {}, the request states {want}; nothing was stored",
                got.size, got.sha256
            ),
        ));
    }
    let item = match item(got.sha256.clone(), got.size, got.blob.clone()) {
        Ok(item) => item,
        Err(p) => {
            let _ = vault.store.delete(&got.blob.name);
            return Err(p);
        }
    };
    let command = entente_store::evidence::AddEvidence { item };
    let verdict = submit(&state, actor.clone(), command).await;
    let keep = matches!(&verdict, Ok(Verdict::Permitted { output: r, .. }) if !r.deduplicated);
    if !keep {
        let _ = vault.store.delete(&got.blob.name);
    }
    match verdict? {
        Verdict::Permitted { index, output: r, .. } => {
            let mut resp =
                (StatusCode::CREATED, axum::Json(EvidenceAdded::new(&r, index))).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!(
                "sha-256=:{}:",
                BASE64_STANDARD.encode(hex::decode(&r.sha256).unwrap_or_default())
            )) {
                resp.headers_mut().insert("repr-digest", v);
            }
            Ok(resp)
        }
        Verdict::Denied { index, decision } => {
            Err(Problem::denied(index, &decision, actor.is_authenticated()))
        }
    }
}
