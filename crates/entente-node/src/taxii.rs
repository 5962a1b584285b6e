//! TAXII 2.1 server (OASIS TAXII 2.1 CS01) over the node's gate.
//!
//! - `GET /taxii2/` discovery, `GET /taxii2/api/` the API root, `GET /taxii2/api/status/{id}/`;
//! - `GET /taxii2/api/collections/`, `…/{id}/`, `…/{id}/manifest/`, `…/{id}/objects/` (GET
//!   and POST), `…/{id}/objects/{object_id}/`, `…/{id}/objects/{object_id}/versions/`.
//!
//! Media type `application/taxii+json;version=2.1` (406 for an `Accept` without it, 415 for a
//! POST in another type), errors in the TAXII error message format, 413 above
//! [`MAX_CONTENT_LENGTH`]. Callers authenticate with the node's users' tokens:
//! `Authorization: Bearer <token>` or HTTP Basic with the user name and the token as password.
//!
//! Every read of objects, manifest entries or versions is one gate action (`intel.read`): each
//! object is decided under TLP 2.0 for the caller and one ledger entry records the page.
//! Every POST is one gate action (`intel.import`), all or nothing, with its status resource.
//!
//! Pagination is stateless: `next` is the position of the last object examined,
//! `(date_added, seq)`, with an HMAC-SHA256 (key derived from the node key) over the position
//! and the query it belongs to. It survives restarts and works across several server
//! processes on one database; a token that was altered, forged, or belongs to another query
//! is refused with 400. Positions follow commit order, so a page never skips an object
//! committed after the previous page was served.

use crate::identity::Node;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::prelude::{BASE64_STANDARD, BASE64_URL_SAFE_NO_PAD};
use entente_core::policy::{DecisionRequest, decide};
use entente_core::{Action, Actor, Role, Subject, SubjectKind};
use entente_intel::stix;
use entente_store::Principal;
use entente_store::{
    GateCommand, GateError, IntelPage, IntelQuery, IntelView, MAX_PAGE, StoreError, Verdict,
};
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;

/// The TAXII 2.1 media type.
pub const TAXII_MEDIA_TYPE: &str = "application/taxii+json;version=2.1";
/// The STIX 2.1 media type.
pub const STIX_MEDIA_TYPE: &str = "application/stix+json;version=2.1";
/// Largest request body (envelope) accepted, advertised as the API root's
/// `max_content_length`.
pub const MAX_CONTENT_LENGTH: usize = 16 << 20;
/// Page size when the client gives no `limit`.
pub const DEFAULT_PAGE: usize = 100;

#[derive(Clone)]
struct TaxiiState {
    node: Node,
    cursor_key: Arc<[u8; 32]>,
    /// Served on the federation listener: callers are partner nodes, identified by the
    /// pinned certificate of their mutual-TLS connection (see [`PEER_HEADER`]).
    peers: bool,
}

/// Request header through which the federation listener hands the TAXII routes the party of
/// the pinned certificate on the connection. It is removed from every incoming request there
/// and honoured nowhere else.
pub const PEER_HEADER: &str = "x-entente-verified-peer";

/// A TAXII error message (TAXII 2.1 §3.6.1).
#[derive(Debug)]
pub struct TaxiiError {
    status: StatusCode,
    title: &'static str,
    description: String,
    details: Option<Box<Value>>,
    /// The rule of a refusal the gate did not record (an unauthenticated caller's): counted
    /// by the listener for the caller's source.
    unrecorded: Option<String>,
}

impl TaxiiError {
    fn new(status: StatusCode, title: &'static str, description: impl Into<String>) -> Self {
        Self { status, title, description: description.into(), details: None, unrecorded: None }
    }

    fn bad(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Bad request", description)
    }
}

impl From<GateError> for TaxiiError {
    fn from(e: GateError) -> Self {
        match e {
            GateError::Invalid(d) => TaxiiError::bad(d),
            GateError::Conflict(d) => TaxiiError::new(StatusCode::CONFLICT, "Conflict", d),
            GateError::NotFound(d) => {
                TaxiiError::new(StatusCode::NOT_FOUND, "Not found", format!("{d} not found"))
            }
            GateError::Unauthenticated(decision) => {
                let mut e = TaxiiError::new(
                    StatusCode::UNAUTHORIZED,
                    "Authentication required",
                    decision.reason.clone(),
                );
                e.details = Some(Box::new(json!({"rules": decision.rules})));
                e.unrecorded = decision.rules.first().cloned();
                e
            }
            GateError::Held(d) => TaxiiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The ledger is on hold until the node's operator decides",
                d,
            ),
            other => {
                tracing::error!(error = %other, "gate failure");
                TaxiiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal error",
                    "the node could not complete the action; nothing was changed",
                )
            }
        }
    }
}

impl From<StoreError> for TaxiiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(d) => {
                TaxiiError::new(StatusCode::NOT_FOUND, "Not found", format!("{d} not found"))
            }
            other => {
                tracing::error!(error = %other, "store failure");
                TaxiiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal error",
                    "the node could not read its store",
                )
            }
        }
    }
}

impl IntoResponse for TaxiiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "title": self.title,
            "description": self.description,
            "http_status": self.status.as_u16().to_string(),
        });
        if let Some(d) = self.details {
            body["details"] = *d;
        }
        let mut resp = (self.status, body.to_string()).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(TAXII_MEDIA_TYPE));
        if let Some(rule) = self.unrecorded {
            resp.extensions_mut().insert(crate::refusals::Unrecorded(rule));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer, Basic realm=\"entente\""),
            );
        }
        resp
    }
}

type TaxiiResult = Result<Response, TaxiiError>;

/// A TAXII error message (TAXII 2.1 §3.6.1) for an error the framework answered.
pub(crate) fn error_response(
    status: StatusCode,
    title: &'static str,
    description: String,
) -> Response {
    TaxiiError::new(status, title, description).into_response()
}

/// The TAXII routes, for merging into the node's router.
pub fn router<S: Clone + Send + Sync + 'static>(node: Node) -> Router<S> {
    routes(node, false)
}

/// The TAXII routes for partner nodes, served on the federation listener (mutual TLS): the
/// caller is the peer whose pinned certificate the listener verified.
pub fn router_for_peers<S: Clone + Send + Sync + 'static>(node: Node) -> Router<S> {
    routes(node, true)
}

fn routes<S: Clone + Send + Sync + 'static>(node: Node, peers: bool) -> Router<S> {
    let cursor_key = {
        let mut h = Sha256::new();
        h.update(b"entente taxii cursor v1\0");
        h.update(node.key.to_bytes());
        Arc::new(<[u8; 32]>::from(h.finalize()))
    };
    let state = TaxiiState { node, cursor_key, peers };
    Router::new()
        .route("/taxii2/", get(discovery))
        .route("/taxii2/api/", get(api_root))
        .route("/taxii2/api/status/{id}/", get(status))
        .route("/taxii2/api/collections/", get(collections))
        .route("/taxii2/api/collections/{id}/", get(collection))
        .route("/taxii2/api/collections/{id}/manifest/", get(manifest))
        .route("/taxii2/api/collections/{id}/objects/", get(get_objects).post(add_objects))
        .route("/taxii2/api/collections/{id}/objects/{object_id}/", get(get_object))
        .route("/taxii2/api/collections/{id}/objects/{object_id}/versions/", get(versions))
        .with_state(state)
}

fn taxii_json(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(TAXII_MEDIA_TYPE));
    resp
}

/// 406 unless `Accept` is absent or admits the TAXII 2.1 media type.
fn check_accept(headers: &HeaderMap) -> Result<(), TaxiiError> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let ok = accept.split(',').any(|part| {
        let p: String =
            part.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
        let base = p.split(';').next().unwrap_or_default();
        let version = p.split(';').find_map(|x| x.strip_prefix("version="));
        match base {
            "*/*" | "application/*" => true,
            "application/taxii+json" => version.is_none_or(|v| v == "2.1"),
            _ => false,
        }
    });
    if ok {
        Ok(())
    } else {
        Err(TaxiiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "Not acceptable",
            format!(
                "this server answers in {TAXII_MEDIA_TYPE}; the request accepts only `{accept}`"
            ),
        ))
    }
}

/// Who is calling: on the federation listener the partner pinned with the connection's
/// certificate; on the API listener a user by bearer token or by Basic (user name, token);
/// else anonymous.
async fn actor(state: &TaxiiState, headers: &HeaderMap) -> Result<Principal, TaxiiError> {
    if state.peers {
        let cert = headers.get(PEER_HEADER).and_then(|v| v.to_str().ok());
        return Ok(match cert {
            Some(cert) => state
                .node
                .store
                .peer_by_certificate(cert)
                .await?
                .unwrap_or_else(Principal::anonymous),
            None => Principal::anonymous(),
        });
    }
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Ok(Principal::anonymous());
    };
    if let Some(t) = value.strip_prefix("Bearer ") {
        return Ok(state.node.store.authenticate_token(t).await?);
    }
    if let Some(b) = value.strip_prefix("Basic ") {
        let decoded = BASE64_STANDARD.decode(b.trim()).ok().and_then(|d| String::from_utf8(d).ok());
        if let Some((u, t)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
            return Ok(state.node.store.authenticate_user(u, t).await?);
        }
    }
    Ok(Principal::anonymous())
}

/// Every TAXII endpoint needs an authenticated caller: a user, or on the federation port a
/// pinned partner. Metadata endpoints then disclose nothing but collection names (no ledger
/// entry); reads and imports go on to the gate.
async fn authenticated(state: &TaxiiState, headers: &HeaderMap) -> Result<Principal, TaxiiError> {
    // Who first: an anonymous caller learns nothing of what its headers or query got wrong,
    // and its refusal is counted in aggregate like the gate's.
    let who = actor(state, headers).await?;
    if !who.is_authenticated() {
        return Err(GateError::Unauthenticated(entente_core::Decision::deny(
            "authn.required",
            "give a token of a user of this node: `Authorization: Bearer <token>` or Basic with the user name and the token",
        ))
        .into());
    }
    check_accept(headers)?;
    Ok(who)
}

async fn through_gate<C: GateCommand>(
    state: &TaxiiState,
    actor: Principal,
    command: C,
) -> Result<(u64, C::Output), TaxiiError> {
    let authenticated = actor.is_authenticated();
    match state.node.gate.submit(actor, command, Timestamp::now()).await? {
        Verdict::Permitted { index, output, .. } => Ok((index, output)),
        Verdict::Denied { index, decision } => {
            let (status, title) = if authenticated {
                (StatusCode::FORBIDDEN, "Forbidden")
            } else {
                (StatusCode::UNAUTHORIZED, "Authentication required")
            };
            let mut e = TaxiiError::new(status, title, decision.reason.clone());
            e.details = Some(Box::new(json!({"ledger_index": index, "rules": decision.rules})));
            Err(e)
        }
    }
}

/// The origin the caller reached: `https` on the federation port, when the API serves TLS
/// (`[api] tls`) or a TLS-terminating proxy says so; `http` otherwise.
fn base_url(state: &TaxiiState, headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let tls = state.peers || state.node.config.api.tls || forwarded;
    format!("{}://{host}", if tls { "https" } else { "http" })
}

async fn discovery(State(state): State<TaxiiState>, headers: HeaderMap) -> TaxiiResult {
    authenticated(&state, &headers).await?;
    let root = format!("{}/taxii2/api/", base_url(&state, &headers));
    let body = json!({
        "title": format!("Entente node {}", state.node.config.party),
        "description": "Threat intelligence under TLP 2.0 and the agreements in force; every page served is recorded in the node's ledger.",
        "default": root,
        "api_roots": [root],
    });
    Ok(taxii_json(StatusCode::OK, body.to_string()))
}

async fn api_root(State(state): State<TaxiiState>, headers: HeaderMap) -> TaxiiResult {
    authenticated(&state, &headers).await?;
    let body = json!({
        "title": format!("Entente {} threat intelligence", state.node.config.party),
        "versions": [TAXII_MEDIA_TYPE],
        "max_content_length": MAX_CONTENT_LENGTH,
    });
    Ok(taxii_json(StatusCode::OK, body.to_string()))
}

fn may(actor: &Actor, action: Action, state: &TaxiiState, id: &str) -> bool {
    decide(
        &DecisionRequest {
            actor,
            action,
            subject: &Subject::new(SubjectKind::Collection, id),
            node_party: &state.node.config.party,
            purpose: None,
            agreements: &[],
        },
        Timestamp::now(),
    )
    .is_permit()
}

fn collection_json(c: &entente_store::IntelCollection, actor: &Actor, state: &TaxiiState) -> Value {
    json!({
        "id": c.id,
        "title": c.title,
        "description": c.description,
        "can_read": may(actor, Action::IntelRead, state, &c.id),
        "can_write": may(actor, Action::IntelImport, state, &c.id),
        "media_types": [STIX_MEDIA_TYPE],
    })
}

async fn collections(State(state): State<TaxiiState>, headers: HeaderMap) -> TaxiiResult {
    let actor = authenticated(&state, &headers).await?;
    let list = state.node.store.intel_collections().await?;
    let items: Vec<Value> =
        list.iter().map(|c| collection_json(c, actor.actor(), &state)).collect();
    let body = if items.is_empty() { json!({}) } else { json!({"collections": items}) };
    Ok(taxii_json(StatusCode::OK, body.to_string()))
}

async fn collection(
    State(state): State<TaxiiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> TaxiiResult {
    let actor = authenticated(&state, &headers).await?;
    let c = state.node.store.intel_collection(&id).await?;
    Ok(taxii_json(StatusCode::OK, collection_json(&c, actor.actor(), &state).to_string()))
}

/// A status resource: readable only by whoever made its import (its list of object ids is
/// theirs; a RED object's id is no one else's business), to everyone else as if it did not
/// exist. The objects come a page at a time (`limit`, default 1,000, at most 10,000; `next`,
/// the position the previous page gave), the counts always whole.
async fn status(
    State(state): State<TaxiiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> TaxiiResult {
    let actor = authenticated(&state, &headers).await?;
    let (mut first, mut limit) = (0, entente_store::intel::STATUS_PAGE);
    for (k, v) in &params {
        let n = || {
            v.parse::<u64>().map_err(|_| {
                TaxiiError::bad(format!("{k}: `{v}` is not a whole number of objects"))
            })
        };
        match k.as_str() {
            "next" => first = n()?,
            "limit" => {
                limit = n()?;
                if limit == 0 {
                    return Err(TaxiiError::bad("limit: give at least 1"));
                }
            }
            _ => {
                return Err(TaxiiError::bad(format!(
                    "`{k}` is not a parameter of a status resource (limit, next)"
                )));
            }
        }
    }
    let gone = || {
        TaxiiError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("no status `{id}` that this caller may read"),
        )
    };
    let s = match state.node.store.intel_status(&id, first, limit).await {
        Ok(s) => s,
        Err(StoreError::NotFound(_)) => return Err(gone()),
        Err(e) => return Err(e.into()),
    };
    let own = s.requested_by.as_deref()
        == Some(entente_store::intel::requester_of(actor.actor()).as_str());
    // A status kept before its requester was recorded: the node's administrators only.
    let legacy =
        s.requested_by.is_none() && matches!(actor.actor(), Actor::User { role: Role::Admin, .. });
    if !own && !legacy {
        return Err(gone());
    }
    Ok(taxii_json(StatusCode::OK, status_json(&s).to_string()))
}

/// The TAXII 2.1 status resource, with `next` (the position of the following page) when
/// its objects do not all fit on this one.
fn status_json(s: &entente_store::IntelStatus) -> Value {
    let mut body = json!({
        "id": s.id,
        "status": s.status,
        "request_timestamp": s.request_timestamp,
        "total_count": s.total_count,
        "success_count": s.success_count,
        "failure_count": s.failure_count,
        "pending_count": s.pending_count,
        "successes": s.successes,
        "failures": s.failures,
        "pendings": [],
    });
    if let (Some(next), Some(map)) = (s.next, body.as_object_mut()) {
        map.insert("next".into(), json!(next.to_string()));
    }
    body
}

/// The query parameters of a read, and the fingerprint a cursor is bound to.
fn parse_query(
    params: &[(String, String)],
    collection: &str,
    view: IntelView,
    object_id: Option<&str>,
) -> Result<(IntelQuery, Option<String>, String), TaxiiError> {
    let mut q = IntelQuery { limit: DEFAULT_PAGE, ..IntelQuery::default() };
    let mut next = None;
    let split = |v: &str| -> Vec<String> {
        v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    };
    for (k, v) in params {
        match k.as_str() {
            "added_after" => {
                stix::check_timestamp(v)
                    .map_err(|m| TaxiiError::bad(format!("added_after: {m}")))?;
                // date_added is stored with six fractional digits.
                let t: Timestamp =
                    v.parse().map_err(|e| TaxiiError::bad(format!("added_after: {e}")))?;
                q.added_after = Some(format!("{t:.6}"));
            }
            "limit" => {
                let n: usize = v.parse().map_err(|_| {
                    TaxiiError::bad(format!("limit: expected a positive integer, found `{v}`"))
                })?;
                if n == 0 {
                    return Err(TaxiiError::bad("limit: expected a positive integer, found 0"));
                }
                q.limit = n.min(MAX_PAGE);
            }
            "next" => next = Some(v.clone()),
            "match[id]" => {
                for id in split(v) {
                    if !stix::is_identifier(&id, None) {
                        return Err(TaxiiError::bad(format!(
                            "match[id]: `{id}` is not a STIX identifier `<type>--<UUID>`"
                        )));
                    }
                    q.ids.push(id);
                }
            }
            "match[type]" => q.types.extend(split(v)),
            "match[version]" => {
                for ver in split(v) {
                    if !matches!(ver.as_str(), "last" | "first" | "all")
                        && stix::check_timestamp(&ver).is_err()
                    {
                        return Err(TaxiiError::bad(format!(
                            "match[version]: expected `last`, `first`, `all` or a timestamp, found `{ver}`"
                        )));
                    }
                    q.versions.push(ver);
                }
            }
            "match[spec_version]" => {
                for sv in split(v) {
                    if sv != "2.1" && sv != "2.0" {
                        return Err(TaxiiError::bad(format!(
                            "match[spec_version]: expected `2.1` (or `2.0`), found `{sv}`"
                        )));
                    }
                    q.spec_versions.push(sv);
                }
            }
            _ => {}
        }
    }
    if let Some(id) = object_id {
        if !stix::is_identifier(id, None) {
            return Err(TaxiiError::new(
                StatusCode::NOT_FOUND,
                "Not found",
                format!("`{id}` is not a STIX identifier"),
            ));
        }
        q.ids = vec![id.to_owned()];
    }
    for l in [&mut q.ids, &mut q.types, &mut q.versions, &mut q.spec_versions] {
        l.sort();
        l.dedup();
    }
    let fingerprint = format!(
        "{collection}\n{}\n{}\n{}\n{}\n{}\n{}",
        match view {
            IntelView::Objects => "objects",
            IntelView::Manifest => "manifest",
            IntelView::Versions => "versions",
        },
        q.added_after.as_deref().unwrap_or(""),
        q.ids.join(","),
        q.types.join(","),
        q.versions.join(","),
        q.spec_versions.join(","),
    );
    Ok((q, next, fingerprint))
}

fn mac(
    key: &[u8; 32],
    fingerprint: &str,
    date_added: &str,
    seq: i64,
) -> Result<Vec<u8>, TaxiiError> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| {
        TaxiiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", "cursor key")
    })?;
    m.update(fingerprint.as_bytes());
    m.update(b"\0");
    m.update(date_added.as_bytes());
    m.update(b"\0");
    m.update(seq.to_string().as_bytes());
    Ok(m.finalize().into_bytes()[..16].to_vec())
}

fn encode_cursor(
    key: &[u8; 32],
    fingerprint: &str,
    pos: &(String, i64),
) -> Result<String, TaxiiError> {
    let tag = mac(key, fingerprint, &pos.0, pos.1)?;
    Ok(BASE64_URL_SAFE_NO_PAD.encode(format!("{}|{}|{}", pos.0, pos.1, hex::encode(tag))))
}

fn decode_cursor(
    key: &[u8; 32],
    fingerprint: &str,
    token: &str,
) -> Result<(String, i64), TaxiiError> {
    let refused = || {
        TaxiiError::bad(
            "next: this token was not issued by this server for this query (altered, forged, or from another query); start again without `next`",
        )
    };
    let text = BASE64_URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(refused)?;
    let mut parts = text.splitn(3, '|');
    let (Some(d), Some(s), Some(t)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(refused());
    };
    let seq: i64 = s.parse().map_err(|_| refused())?;
    let given = hex::decode(t).map_err(|_| refused())?;
    if given.len() != 16 {
        return Err(refused());
    }
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| refused())?;
    m.update(fingerprint.as_bytes());
    m.update(b"\0");
    m.update(d.as_bytes());
    m.update(b"\0");
    m.update(seq.to_string().as_bytes());
    // Constant-time comparison of the 16-byte tag.
    m.verify_truncated_left(&given).map_err(|_| refused())?;
    Ok((d.to_owned(), seq))
}

/// Runs one page read through the gate.
async fn read_page(
    state: &TaxiiState,
    headers: &HeaderMap,
    params: &[(String, String)],
    collection: &str,
    view: IntelView,
    object_id: Option<&str>,
) -> Result<(IntelPage, Option<String>), TaxiiError> {
    let actor = authenticated(state, headers).await?;
    let (mut query, next, fingerprint) = parse_query(params, collection, view, object_id)?;
    if let Some(token) = &next {
        query.after = Some(decode_cursor(&state.cursor_key, &fingerprint, token)?);
    }
    let command =
        entente_store::intel::IntelRead { collection: collection.to_owned(), view, query };
    let (_, page) = through_gate(state, actor, command).await?;
    let next = match (&page.more, &page.last) {
        (true, Some(pos)) => Some(encode_cursor(&state.cursor_key, &fingerprint, pos)?),
        _ => None,
    };
    Ok((page, next))
}

fn page_head(more: bool, next: Option<&str>) -> String {
    match next {
        Some(n) => format!("\"more\":{more},\"next\":\"{n}\","),
        None => format!("\"more\":{more},"),
    }
}

fn with_date_headers(mut resp: Response, page: &IntelPage) -> Response {
    let first = page.rows.iter().map(|r| r.date_added.as_str()).min();
    let last = page.rows.iter().map(|r| r.date_added.as_str()).max();
    for (name, v) in [("x-taxii-date-added-first", first), ("x-taxii-date-added-last", last)] {
        if let Some(v) = v.and_then(|v| HeaderValue::from_str(v).ok()) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

async fn get_objects(
    State(state): State<TaxiiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> TaxiiResult {
    let (page, next) = read_page(&state, &headers, &params, &id, IntelView::Objects, None).await?;
    let raws: Vec<&str> = page.rows.iter().map(|r| r.raw.as_str()).collect();
    let body = stix::write_objects(&page_head(page.more, next.as_deref()), &raws);
    Ok(with_date_headers(taxii_json(StatusCode::OK, body), &page))
}

async fn get_object(
    State(state): State<TaxiiState>,
    headers: HeaderMap,
    Path((id, object_id)): Path<(String, String)>,
    Query(params): Query<Vec<(String, String)>>,
) -> TaxiiResult {
    let (page, next) =
        read_page(&state, &headers, &params, &id, IntelView::Objects, Some(&object_id)).await?;
    if page.rows.is_empty() && next.is_none() {
        // Withheld and absent look the same: the caller learns nothing of what it may not see.
        return Err(TaxiiError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("object `{object_id}` not found in collection `{id}`"),
        ));
    }
    let raws: Vec<&str> = page.rows.iter().map(|r| r.raw.as_str()).collect();
    let body = stix::write_objects(&page_head(page.more, next.as_deref()), &raws);
    Ok(with_date_headers(taxii_json(StatusCode::OK, body), &page))
}

async fn manifest(
    State(state): State<TaxiiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> TaxiiResult {
    let (page, next) = read_page(&state, &headers, &params, &id, IntelView::Manifest, None).await?;
    let entries: Vec<Value> = page
        .rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "date_added": r.date_added,
                "version": r.version.clone().unwrap_or_else(|| r.date_added.clone()),
                "media_type": STIX_MEDIA_TYPE,
            })
        })
        .collect();
    let mut body = json!({"more": page.more, "objects": entries});
    if let Some(n) = next {
        body["next"] = json!(n);
    }
    Ok(with_date_headers(taxii_json(StatusCode::OK, body.to_string()), &page))
}

async fn versions(
    State(state): State<TaxiiState>,
    headers: HeaderMap,
    Path((id, object_id)): Path<(String, String)>,
    Query(params): Query<Vec<(String, String)>>,
) -> TaxiiResult {
    let (page, next) =
        read_page(&state, &headers, &params, &id, IntelView::Versions, Some(&object_id)).await?;
    if page.rows.is_empty() && next.is_none() {
        return Err(TaxiiError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("object `{object_id}` not found in collection `{id}`"),
        ));
    }
    let versions: Vec<String> = page
        .rows
        .iter()
        .map(|r| r.version.clone().unwrap_or_else(|| r.date_added.clone()))
        .collect();
    let mut body = json!({"more": page.more, "versions": versions});
    if let Some(n) = next {
        body["next"] = json!(n);
    }
    Ok(with_date_headers(taxii_json(StatusCode::OK, body.to_string()), &page))
}

fn random_uuid() -> Result<String, TaxiiError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|_| {
        TaxiiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", "no system randomness")
    })?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]))
}

async fn add_objects(
    State(state): State<TaxiiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> TaxiiResult {
    let actor = actor(&state, &headers).await?;
    // The role rule first: a caller who may not import is refused before its headers are
    // checked or any of the body is read, parsed or validated (nothing costly, and nothing
    // learnt, for a caller the gate has not admitted). The gate records the refusal of the
    // same command with no objects.
    if !may(actor.actor(), Action::IntelImport, &state, &id) {
        let command = entente_store::intel::IntelImport {
            collection: id,
            objects: Arc::new(Vec::new()),
            originator: None,
            status_id: random_uuid()?,
        };
        through_gate(&state, actor, command).await?;
        tracing::error!("the gate permitted an import the role rule refused");
        return Err(TaxiiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            "the node could not complete the action",
        ));
    }
    check_accept(&headers)?;
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ct_norm: String =
        ct.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    if ct_norm != TAXII_MEDIA_TYPE {
        return Err(TaxiiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            format!("expected Content-Type: {TAXII_MEDIA_TYPE}, got `{ct}`"),
        ));
    }
    let too_large = || {
        TaxiiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request entity too large",
            format!(
                "the envelope exceeds the API root's max_content_length of {MAX_CONTENT_LENGTH} bytes; send it in several envelopes (nothing was imported)"
            ),
        )
    };
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_CONTENT_LENGTH)
    {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, MAX_CONTENT_LENGTH).await.map_err(|_| too_large())?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| TaxiiError::bad(format!("the envelope is not UTF-8: {e}")))?;
    let objects = stix::parse_envelope(text).map_err(|e| {
        let problems: Vec<Value> = e
            .problems
            .iter()
            .map(|p| {
                json!({"index": p.index, "id": p.id, "property": p.property, "message": p.message, "text": p.to_string()})
            })
            .collect();
        let status = if e.problems.iter().all(|p| p.index.is_none()) {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let mut err = TaxiiError::new(
            status,
            "Invalid envelope",
            format!("{e} (nothing was imported)"),
        );
        err.details = Some(Box::new(json!({"problems": problems, "more": e.more})));
        err
    })?;
    let status_id = random_uuid()?;
    let command = entente_store::intel::IntelImport {
        collection: id,
        objects: Arc::new(objects),
        originator: None,
        status_id,
    };
    let (_, s) = through_gate(&state, actor, command).await?;
    Ok(taxii_json(StatusCode::ACCEPTED, status_json(&s).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_bound_to_key_query_and_position() {
        let key = [9u8; 32];
        let pos = ("2026-11-29T12:00:00.000000Z".to_owned(), 42);
        let t = encode_cursor(&key, "q1", &pos).unwrap();
        assert_eq!(decode_cursor(&key, "q1", &t).unwrap(), pos);
        assert!(decode_cursor(&key, "q2", &t).is_err());
        assert!(decode_cursor(&[8u8; 32], "q1", &t).is_err());
        let forged = BASE64_URL_SAFE_NO_PAD.encode("2026-11-29T12:00:00.000000Z|41|00");
        assert!(decode_cursor(&key, "q1", &forged).is_err());
        assert!(decode_cursor(&key, "q1", "!!").is_err());
    }

    #[test]
    fn accept_header() {
        let mut h = HeaderMap::new();
        assert!(check_accept(&h).is_ok());
        h.insert(header::ACCEPT, HeaderValue::from_static("application/taxii+json;version=2.1"));
        assert!(check_accept(&h).is_ok());
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert_eq!(check_accept(&h).unwrap_err().status, StatusCode::NOT_ACCEPTABLE);
        h.insert(header::ACCEPT, HeaderValue::from_static("application/taxii+json;version=2.0"));
        assert!(check_accept(&h).is_err());
    }
}
