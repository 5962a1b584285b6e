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

use crate::identity::Node;
use crate::server::{Problem, actor};
use crate::vault::Vault;
use axum::Router;
use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use entente_core::policy::{DecisionRequest, decide};
use entente_core::{Action, Subject};
use entente_evidence::blob;
use entente_policy::agreement::DataCategory;
use entente_store::Principal;
use entente_store::{NewEvidence, Verdict};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::json;
use std::io::{self, Read};

/// The upload route.
pub(crate) const PATH: &str = "/api/v1/cases/{id}/evidence";

#[derive(Clone)]
struct UploadState {
    node: Node,
    vault: Option<Vault>,
}

/// The route, with its own (streaming, configured) body limit instead of the API's default.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(node: Node) -> Router<S> {
    let vault = match node.vault() {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(error = %e, "the evidence store cannot be opened; uploads answer 500");
            None
        }
    };
    Router::new()
        .route(PATH, post(upload))
        .layer(DefaultBodyLimit::disable())
        .with_state(UploadState { node, vault })
}

/// The item's metadata, in the query string.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    description: String,
    id: Option<String>,
    file_name: Option<String>,
    source: Option<String>,
    collected_at: Option<String>,
    category: Option<DataCategory>,
    reason: Option<String>,
    legal_basis: Option<String>,
    sha256: Option<String>,
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
        if q.len() != 64 || !q.bytes().all(|b| b.is_ascii_hexdigit()) {
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
    state: &UploadState,
    actor: Principal,
    command: C,
) -> Result<Verdict<C::Output>, Problem> {
    Ok(state.node.gate.submit(actor, command, Timestamp::now()).await?)
}

async fn upload(
    State(state): State<UploadState>,
    Path(case): Path<String>,
    headers: HeaderMap,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    mut body: Body,
) -> Result<Response, Problem> {
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
    let actor = actor(&state.node, &headers).await?;
    let item = |sha256: String, size: u64, blob: entente_evidence::BlobRef| NewEvidence {
        id: q.id.clone().unwrap_or_else(|| format!("{case}-{}", &sha256[..12])),
        case_id: case.clone(),
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
    };
    // The role rule first, so that a caller who may not add evidence is refused before any of
    // the body is read. The refusal is recorded by the gate, which decides this command by the
    // same rule (and records only ids for a deny): the content named is the one stated by the
    // caller, or the empty content, as nothing of the body was read.
    let role = decide(
        &DecisionRequest {
            actor: actor.actor(),
            action: Action::EvidenceAdd,
            subject: &Subject::new("case", &case),
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
        let command = entente_store::evidence::AddEvidence { item: (item(sha, 0, unread)) };
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
    let command = entente_store::evidence::AddEvidence {
        item: (item(got.sha256.clone(), got.size, got.blob.clone())),
    };
    let verdict = submit(&state, actor.clone(), command).await;
    let keep = matches!(&verdict, Ok(Verdict::Permitted { output: r, .. }) if !r.deduplicated);
    if !keep {
        let _ = vault.store.delete(&got.blob.name);
    }
    match verdict? {
        Verdict::Permitted { index, output: r, .. } => {
            let mut resp = (
                StatusCode::CREATED,
                axum::Json(json!({
                    "id": r.id, "case_id": r.case_id, "sha256": r.sha256, "size": r.size,
                    "media_type": r.media_type, "deduplicated": r.deduplicated,
                    "custody": r.chain.iter().map(|e| &e.event).collect::<Vec<_>>(),
                    "ledger_index": index,
                })),
            )
                .into_response();
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
