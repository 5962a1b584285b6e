//! The web interface: server-rendered HTML under `/ui/…` (docs/ui.md).
//!
//! Every page that shows case or personal data is one command through the gate, the same
//! command the JSON API runs for that resource, so a page view is one ledger entry, recorded
//! like an API read; what a role may see is decided by the gate, and a refusal is shown with
//! the index of the entry that recorded it. Templates (askama, compile-time checked) are in
//! `crates/entente-node/templates/`, their words in [`text`], the one stylesheet embedded in
//! the binary (rust-embed). Pages work without JavaScript; the interface serves none.
//!
//! Sign-in is with the user's API token ([`session`]); every POST form carries the session's
//! CSRF token.

pub(crate) mod draft;
pub(crate) mod pages;
pub(crate) mod session;
pub(crate) mod text;

use crate::server::AppState;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use entente_core::{Actor, Role};
use entente_store::{GateCommand, GateError, Principal, Verdict};
use jiff::Timestamp;
use pages::{CaseNewPage, CasePage, Chrome, HomePage, MessagePage, SignInPage};
use session::{Session, Sessions};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use text::{EN, Text};

/// The interface's assets (one stylesheet), embedded in the binary.
#[derive(rust_embed::RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// The interface's routes; `crate::server::router` merges them.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(home))
        .route("/ui/sign-in", get(sign_in_form).post(sign_in))
        .route("/ui/sign-out", post(sign_out))
        .route("/ui/cases/new", get(case_new))
        .route("/ui/cases", get(case_list).post(case_open))
        .route("/ui/cases/{id}", get(case_page))
        .route("/ui/cases/{id}/requests/new", get(draft::request_new))
        .route("/ui/cases/{id}/requests", post(draft::request_draft))
        .route("/ui/requests/{id}", get(request_page))
        .route("/ui/requests/{id}/events", post(request_event))
        .route("/ui/search", get(search))
        .route("/ui/assets/{file}", get(asset))
        .layer(Extension(Arc::new(Sessions::default())))
        .layer(axum::middleware::from_fn(security_headers))
}

/// The words of this request's language (English only, for now).
fn words() -> &'static Text {
    &EN
}

/// Headers every interface response carries: no caching of pages that may hold case data, no
/// framing, scripts and styles from the node only.
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let asset = req.uri().path().starts_with("/ui/assets/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // `same-origin`, not `no-referrer`: URLs (which carry case and request ids) never leave for
    // another site, while the browser still sends this node's `Origin` on its own form posts
    // (under `no-referrer` Chromium sends `Origin: null`, and the CSRF guard refuses it).
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A rendered page with `status`.
fn html(status: StatusCode, page: &impl askama::Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page does not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

/// A page of one message (a refusal, an error).
fn message(
    status: StatusCode,
    chrome: Chrome,
    title: &str,
    detail: &str,
    ledger_index: Option<u64>,
    rules: Vec<String>,
) -> Response {
    let page = MessagePage {
        t: words(),
        chrome,
        title: title.to_owned(),
        detail: detail.to_owned(),
        ledger_index,
        rules,
    };
    html(status, &page)
}

/// Whether the browser reached the node over TLS: the API serves HTTPS itself (`[api] tls`),
/// or a TLS-terminating proxy says so. The cookie is then `Secure`.
fn over_tls(state: &AppState, headers: &HeaderMap) -> bool {
    state.node.config.api.tls
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn party(state: &AppState) -> String {
    state.node.config.party.to_string()
}

/// A signed-in request: its session and the principal the store's authenticator made from the
/// session's token for this very request.
struct Signed {
    session: Session,
    principal: Principal,
    name: String,
    role: Role,
}

impl Signed {
    fn chrome(&self, state: &AppState, notice: Option<String>) -> Chrome {
        Chrome {
            party: party(state),
            who: Some(format!("{} ({})", self.name, self.role.as_str())),
            csrf: self.session.csrf.clone(),
            can_open_case: matches!(self.role, Role::Investigator | Role::CentralAuthority),
            can_draft_request: matches!(self.role, Role::Investigator | Role::CentralAuthority),
            can_list_cases: matches!(
                self.role,
                Role::Investigator | Role::CentralAuthority | Role::Dpo
            ),
            notice,
        }
    }
}

/// The page that answers a request without a live session: to sign-in.
fn to_sign_in(state: &AppState, expired: bool, headers: &HeaderMap) -> Response {
    let to = if expired { "/ui/sign-in?ended=1" } else { "/ui/sign-in" };
    let mut resp = Redirect::to(to).into_response();
    if expired
        && let Ok(v) = HeaderValue::from_str(&session::clear_cookie(over_tls(state, headers)))
    {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// The session and principal of a request, or the redirect to sign-in.
async fn signed_in(
    state: &AppState,
    sessions: &Sessions,
    headers: &HeaderMap,
) -> Result<Signed, Response> {
    let Some(id) = session::cookie_of(headers) else {
        return Err(to_sign_in(state, false, headers));
    };
    let Some(session) = sessions.get(&id, Instant::now()) else {
        return Err(to_sign_in(state, true, headers));
    };
    let principal = match state.node.store.authenticate_token(&session.token).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "the session's token could not be checked");
            let chrome = Chrome::anonymous(party(state));
            let t = words();
            return Err(message(
                StatusCode::INTERNAL_SERVER_ERROR,
                chrome,
                t.error_title,
                t.error_detail,
                None,
                Vec::new(),
            ));
        }
    };
    let Actor::User { name, role } = principal.actor().clone() else {
        // The token was revoked since sign-in: the session ends with it.
        sessions.remove(&id);
        return Err(to_sign_in(state, true, headers));
    };
    Ok(Signed { session, principal, name, role })
}

/// A POST form's guard: a live session and its CSRF token; a form posted from another origin
/// (its `Origin` header not this host) is refused like a wrong token. Nothing is changed when
/// it fails.
async fn signed_form(
    state: &AppState,
    sessions: &Sessions,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Signed, Response> {
    let signed = signed_in(state, sessions, headers).await?;
    let same_origin = match (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        (None, _) => true,
        (Some(o), Some(h)) => {
            let (o, h) = (o.to_str().unwrap_or(""), h.to_str().unwrap_or("-"));
            o.split_once("://").is_some_and(|(_, rest)| rest == h)
        }
        (Some(_), None) => false,
    };
    if !same_origin || !session::csrf_ok(&signed.session, form.get("csrf").map(String::as_str)) {
        tracing::warn!(user = %signed.name, "a web form was refused: missing or wrong CSRF token");
        let t = words();
        return Err(message(
            StatusCode::FORBIDDEN,
            signed.chrome(state, None),
            t.csrf_refused,
            t.nothing_changed,
            None,
            Vec::new(),
        ));
    }
    Ok(signed)
}

/// What the gate answered, when it did not permit.
enum Refusal {
    Denied { index: u64, rules: Vec<String>, reason: String },
    Failed(GateError),
}

/// Runs `command` through the gate for the signed-in user (the API's path: same commands,
/// same counters).
async fn through_gate<C: GateCommand>(
    state: &AppState,
    signed: &Signed,
    command: C,
) -> Result<(u64, C::Output), Refusal> {
    let verdict = state.node.gate.submit(signed.principal.clone(), command, Timestamp::now()).await;
    match verdict {
        Ok(Verdict::Permitted { index, output, .. }) => {
            state.metrics.permits.fetch_add(1, Ordering::Relaxed);
            Ok((index, output))
        }
        Ok(Verdict::Denied { index, decision }) => {
            state.metrics.denies.fetch_add(1, Ordering::Relaxed);
            Err(Refusal::Denied { index, rules: decision.rules, reason: decision.reason })
        }
        Err(e) => Err(Refusal::Failed(e)),
    }
}

/// The page for a refusal or failure of the gate.
fn refusal_page(state: &AppState, signed: &Signed, refusal: Refusal) -> Response {
    let t = words();
    let chrome = signed.chrome(state, None);
    match refusal {
        Refusal::Denied { index, rules, reason } => {
            message(StatusCode::FORBIDDEN, chrome, t.denied_title, &reason, Some(index), rules)
        }
        Refusal::Failed(GateError::NotFound(what)) => message(
            StatusCode::NOT_FOUND,
            chrome,
            t.not_found_title,
            &format!("{what} not found"),
            None,
            Vec::new(),
        ),
        Refusal::Failed(GateError::Invalid(d) | GateError::Conflict(d)) => {
            message(StatusCode::UNPROCESSABLE_ENTITY, chrome, t.error_title, &d, None, Vec::new())
        }
        Refusal::Failed(e) => {
            tracing::error!(error = %e, "gate failure (web interface)");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                chrome,
                t.error_title,
                t.error_detail,
                None,
                Vec::new(),
            )
        }
    }
}

/// An id from the path, or the page that says why it is not one (nothing is decided).
fn parse_id<T>(state: &AppState, signed: &Signed, id: String) -> Result<T, Box<Response>>
where
    T: TryFrom<String>,
    T::Error: std::fmt::Display,
{
    T::try_from(id).map_err(|e| {
        Box::new(refusal_page(state, signed, Refusal::Failed(GateError::Invalid(e.to_string()))))
    })
}

async fn asset(Path(file): Path<String>) -> Response {
    let Some(f) = Assets::get(&file) else { return StatusCode::NOT_FOUND.into_response() };
    let ct = if file.ends_with(".css") { "text/css; charset=utf-8" } else { "text/plain" };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ct)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        f.data.into_owned(),
    )
        .into_response()
}

async fn sign_in_form(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let t = words();
    let mut chrome = Chrome::anonymous(party(&state));
    chrome.notice = if q.contains_key("out") {
        Some(t.signed_out.to_owned())
    } else if q.contains_key("ended") {
        Some(t.session_expired.to_owned())
    } else {
        None
    };
    html(StatusCode::OK, &SignInPage { t, chrome, error: None })
}

async fn sign_in(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let t = words();
    let token = form.get("token").map(String::as_str).unwrap_or("");
    let principal = match state.node.store.authenticate_token(token).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "a sign-in could not be checked");
            return message(
                StatusCode::INTERNAL_SERVER_ERROR,
                Chrome::anonymous(party(&state)),
                t.error_title,
                t.error_detail,
                None,
                Vec::new(),
            );
        }
    };
    let session = match principal.actor() {
        Actor::User { .. } => sessions.create(token.trim(), Instant::now()),
        _ => None,
    };
    let Some(session) = session.filter(|_| principal.is_authenticated()) else {
        // Nothing of what was typed is recorded: the refusal is counted for the caller's
        // source and recorded in aggregate, like the API's 401s.
        let page = SignInPage {
            t,
            chrome: Chrome::anonymous(party(&state)),
            error: Some(t.sign_in_failed.to_owned()),
        };
        let mut resp = html(StatusCode::UNAUTHORIZED, &page);
        resp.extensions_mut().insert(crate::refusals::Unrecorded("authn.required".to_owned()));
        return resp;
    };
    if let Some(old) = session::cookie_of(&headers) {
        sessions.remove(&old);
    }
    let mut resp = Redirect::to("/ui/").into_response();
    if let Ok(v) =
        HeaderValue::from_str(&session::set_cookie(&session.id, over_tls(&state, &headers)))
    {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn sign_out(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let signed = match signed_form(&state, &sessions, &headers, &form).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    sessions.remove(&signed.session.id);
    let mut resp = Redirect::to("/ui/sign-in?out=1").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(over_tls(&state, &headers))) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn home(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
) -> Response {
    let signed = match signed_in(&state, &sessions, &headers).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let t = words();
    let intro = match signed.role {
        Role::Investigator => t.home_intro_investigator,
        Role::CentralAuthority => t.home_intro_central_authority,
        Role::Csirt => t.home_intro_csirt,
        Role::Dpo => t.home_intro_dpo,
        Role::Auditor => t.home_intro_auditor,
        Role::Admin => t.home_intro_admin,
        Role::FilterTeam => t.home_intro_filter_team,
    };
    // The roles whose work starts from the open requests get them on their home page, read
    // through the gate (one `alerts.read` entry per view); the others get no section.
    let wants_requests = matches!(
        signed.role,
        Role::Investigator | Role::CentralAuthority | Role::Dpo | Role::Admin
    );
    let requests = if wants_requests {
        match through_gate(&state, &signed, entente_store::requests::ReadAlerts).await {
            Ok((index, requests)) => {
                Some(pages::RequestList::new(&requests, index, Timestamp::now()))
            }
            Err(r) => return refusal_page(&state, &signed, r),
        }
    } else {
        None
    };
    let ledger = if matches!(signed.role, Role::Dpo | Role::Auditor | Role::Admin) {
        match state.node.store.ledger_head().await {
            Ok((size, note)) => {
                let cosigned =
                    std::fs::read(state.node.data_dir.join(crate::witness::COSIGNED_FILE)).ok();
                Some(pages::LedgerHealth::new(size, note.as_deref(), cosigned.as_deref()))
            }
            Err(e) => {
                tracing::error!(error = %e, "the ledger head could not be read");
                None
            }
        }
    } else {
        None
    };
    let page = HomePage {
        t,
        chrome: signed.chrome(&state, None),
        heading: format!("{} · {}", t.home, signed.role.as_str()),
        intro: intro.to_owned(),
        requests,
        ledger,
    };
    html(StatusCode::OK, &page)
}

async fn case_new(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
) -> Response {
    let signed = match signed_in(&state, &sessions, &headers).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    html(StatusCode::OK, &CaseNewPage::empty(words(), signed.chrome(&state, None)))
}

async fn case_open(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let signed = match signed_form(&state, &sessions, &headers, &form).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let t = words();
    let field = |k: &str| form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let mut page = CaseNewPage::empty(t, signed.chrome(&state, None));
    (page.id, page.title, page.concepts) = (field("id"), field("title"), field("concepts"));
    let command = pages::validate_case(&mut page);
    let Some(command) = command else {
        page.form_error = Some(t.form_has_errors.to_owned());
        return html(StatusCode::UNPROCESSABLE_ENTITY, &page);
    };
    let id = command.id.to_string();
    match through_gate(&state, &signed, command).await {
        Ok((index, ())) => Redirect::to(&format!("/ui/cases/{id}?opened={index}")).into_response(),
        Err(Refusal::Failed(GateError::Conflict(_))) => {
            page.id_error = Some(t.err_case_exists.to_owned());
            page.form_error = Some(t.form_has_errors.to_owned());
            html(StatusCode::CONFLICT, &page)
        }
        Err(Refusal::Failed(GateError::Invalid(d))) => {
            page.form_error = Some(d);
            html(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(r) => refusal_page(&state, &signed, r),
    }
}

async fn case_list(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let signed = match signed_in(&state, &sessions, &headers).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let t = words();
    let after = match q.get("after").filter(|a| !a.is_empty()) {
        Some(a) => match parse_id::<entente_core::CaseId>(&state, &signed, a.clone()) {
            Ok(c) => Some(c),
            Err(resp) => return *resp,
        },
        None => None,
    };
    let later = after.is_some();
    let list = match entente_store::cases::ListCases::new(after, crate::api::cases::DEFAULT_PAGE) {
        Ok(l) => l,
        Err(e) => return refusal_page(&state, &signed, Refusal::Failed(e)),
    };

    match through_gate(&state, &signed, list).await {
        Ok((index, listing)) => {
            let page = pages::CaseListPage::new(
                t,
                signed.chrome(&state, None),
                &listing,
                later,
                index,
                Timestamp::now(),
            );
            html(StatusCode::OK, &page)
        }
        Err(r) => refusal_page(&state, &signed, r),
    }
}

async fn case_page(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let signed = match signed_in(&state, &sessions, &headers).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let t = words();
    let case_id = match parse_id::<entente_core::CaseId>(&state, &signed, id) {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let read = entente_store::cases::ReadCaseStatus { case_id };
    match through_gate(&state, &signed, read).await {
        Ok((index, status)) => {
            // The notice of a case just opened (the entry is the one the form's redirect named;
            // only digits are shown).
            let notice = q
                .get("opened")
                .filter(|v| !v.is_empty() && v.len() < 20 && v.bytes().all(|b| b.is_ascii_digit()))
                .map(|i| format!("{} {i}.", t.case_opened));
            let page =
                CasePage::new(t, signed.chrome(&state, notice), &status, index, Timestamp::now());
            html(StatusCode::OK, &page)
        }
        Err(r) => refusal_page(&state, &signed, r),
    }
}

async fn request_page(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let signed = match signed_in(&state, &sessions, &headers).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let t = words();
    let request_id = match parse_id::<entente_core::ids::RequestId>(&state, &signed, id.clone()) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let read = entente_store::requests::ReadRequest { id: request_id };
    let (index, r) = match through_gate(&state, &signed, read).await {
        Ok(v) => v,
        Err(refusal) => return refusal_page(&state, &signed, refusal),
    };
    let now = Timestamp::now();
    let agreement = state.node.gate.engine().agreement(&r.agreement);
    let provisions = match state.node.store.request_provisions(&id).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "the request's provisions could not be read");
            Vec::new()
        }
    };
    let check = match (&state.lexicon, agreement) {
        (Some(lexicon), Some(a)) => {
            Some(entente_policy::incoming::incoming_check(&r, &provisions, a, lexicon, now))
        }
        _ => None,
    };
    // The notice of an event just recorded or of the draft just made (only digits are shown).
    let entry = |k: &str| {
        q.get(k)
            .filter(|v| !v.is_empty() && v.len() < 20 && v.bytes().all(|b| b.is_ascii_digit()))
            .cloned()
    };
    let notice = entry("done")
        .map(|i| format!("{} {i}.", t.event_recorded))
        .or_else(|| entry("drafted").map(|i| format!("{} {i}.", t.request_drafted)));
    let page = pages::RequestPage::new(
        t,
        signed.chrome(&state, notice),
        &r,
        check.as_ref(),
        agreement,
        &state.node.config.party,
        index,
        now,
    );
    html(StatusCode::OK, &page)
}

async fn request_event(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let signed = match signed_form(&state, &sessions, &headers, &form).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let request_id = match parse_id::<entente_core::ids::RequestId>(&state, &signed, id.clone()) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let mut grounds: Vec<String> = form
        .iter()
        .filter(|(k, v)| k.starts_with("ground-") && v.as_str() == "1")
        .map(|(k, _)| k.trim_start_matches("ground-").to_owned())
        .collect();
    grounds.sort_unstable();
    let name = form.get("event").map(String::as_str).unwrap_or("");
    let Some(event) = entente_policy::request::RequestEvent::from_name(name, grounds) else {
        return refusal_page(
            &state,
            &signed,
            Refusal::Failed(GateError::Invalid(format!("`{name}` is not a request event"))),
        );
    };
    let command = entente_store::requests::TransitionRequest { id: request_id, event };
    match through_gate(&state, &signed, command).await {
        Ok((index, _)) => Redirect::to(&format!("/ui/requests/{id}?done={index}")).into_response(),
        Err(r) => refusal_page(&state, &signed, r),
    }
}

async fn search(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let signed = match signed_in(&state, &sessions, &headers).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let query = q.get("q").map(|v| v.trim().to_owned()).unwrap_or_default();
    match entente_core::CaseId::try_from(query) {
        Ok(id) => Redirect::to(&format!("/ui/cases/{id}")).into_response(),
        Err(e) => refusal_page(&state, &signed, Refusal::Failed(GateError::Invalid(e.to_string()))),
    }
}

#[cfg(test)]
mod tests;
