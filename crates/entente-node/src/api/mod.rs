//! The API's routes, one module per capability, each with its own request and response types.
//!
//! A handler is registered with its OpenAPI operation (`#[utoipa::path]` and utoipa-axum's
//! `routes!`), so a route cannot be served without being in `/openapi.json`, and the document's
//! schemas are those of the types the handlers read and write. Responses are views built from the
//! store's records by explicit conversions (`From<&CaseRecord> for CaseView`, …): a field added to
//! a record does not reach the API unless a view says so.
//!
//! - [`node`] — `/healthz`, `/metrics`, `/openapi.json`, `/api/v1/whoami`;
//! - [`ledger`] — the public tlog-tiles endpoints (`/ledger/…`) and `/api/v1/ledger/…`;
//! - [`cases`] — cases, their members and status;
//! - [`requests`] — cross-border requests and the alerts on their legal clocks;
//! - [`flows`] — data items, shares and consents;
//! - [`evidence`] — the streamed evidence upload;
//! - [`privilege`] — privilege screening: flag an item, the filter team's review;
//! - [`incidents`] — incident notifications sent and received;
//! - [`redress`] — complaints;
//! - [`intel`] — the TAXII 2.1 routes (served by [`crate::taxii`], a standard's wire format),
//!   described in the document.

use crate::server::AppState;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ArrayBuilder, Object, ObjectBuilder, Ref, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{OpenApi, ToResponse, ToSchema};
use utoipa_axum::router::OpenApiRouter;

pub(crate) mod cases;
pub(crate) mod evidence;
pub(crate) mod flows;
pub(crate) mod incidents;
pub(crate) mod intel;
pub(crate) mod ledger;
pub(crate) mod node;
pub(crate) mod privilege;
pub(crate) mod psi;
pub(crate) mod redress;
pub(crate) mod reports;
pub(crate) mod requests;

/// An RFC 9457 problem, as every error of the API is written (`application/problem+json`).
#[derive(Serialize, ToSchema)]
#[schema(as = Problem)]
pub(crate) struct ProblemBody {
    /// `urn:entente:problem:<slug>`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// A short, fixed summary of the problem type.
    pub(crate) title: String,
    /// The HTTP status.
    pub(crate) status: u16,
    /// What went wrong in this occurrence.
    pub(crate) detail: String,
    /// The ledger entry that recorded a refusal (403; a 401 is recorded in aggregate, per
    /// source and time window, without an index).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ledger_index: Option<u64>,
    /// The rules that decided a refusal (`default-deny`, `agreement#rule`, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub(crate) rules: Vec<String>,
}

/// The response of every refusal and error: RFC 9457 problem details (a [`ProblemBody`]).
pub(crate) struct ProblemDetails;

impl<'r> ToResponse<'r> for ProblemDetails {
    fn response() -> (&'r str, RefOr<Response>) {
        let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
        let response = ResponseBuilder::new()
            .description("RFC 9457 problem details")
            .content("application/problem+json", content)
            .build();
        ("ProblemDetails", RefOr::T(response))
    }
}

/// `(status, problem details)` for each of `statuses`, in order.
fn problems(statuses: &[u16]) -> std::collections::BTreeMap<String, RefOr<Response>> {
    statuses
        .iter()
        .map(|s| (s.to_string(), RefOr::Ref(Ref::from_response_name("ProblemDetails"))))
        .collect()
}

/// The problems of a write to a resource named in its path: a malformed body (400), no or a
/// bad token (401), denied by the gate, with the rules that denied it (403), no such resource
/// (404), a conflict with its state (409), not JSON (415), values the gate found invalid (422).
pub(crate) struct WriteProblems;

impl utoipa::IntoResponses for WriteProblems {
    fn responses() -> std::collections::BTreeMap<String, RefOr<Response>> {
        problems(&[400, 401, 403, 404, 409, 415, 422])
    }
}

/// The problems of a recorded read of a resource named in its path: 401, 403, 404, and 422
/// for a malformed id.
pub(crate) struct ReadProblems;

impl utoipa::IntoResponses for ReadProblems {
    fn responses() -> std::collections::BTreeMap<String, RefOr<Response>> {
        problems(&[401, 403, 404, 422])
    }
}

/// The problems of a write whose body may be large: 400, 401, 403, too large (413), 415, 422.
pub(crate) struct UploadProblems;

impl utoipa::IntoResponses for UploadProblems {
    fn responses() -> std::collections::BTreeMap<String, RefOr<Response>> {
        problems(&[400, 401, 403, 413, 415, 422])
    }
}

/// The document's frame: its metadata, the bearer scheme and the shared components.

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Entente node API",
        description = "Every action goes through the node's gate and is recorded in its ledger; refusals (401, 403) carry the ledger index of their record."
    ),
    components(schemas(ProblemBody), responses(ProblemDetails)),
    modifiers(&Bearer)
)]
struct ApiDoc;

/// Adds the `bearer` security scheme (tokens are `Authorization: Bearer <token>`).
struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every API route with its OpenAPI operation; the TAXII routes are merged by
/// [`crate::server::router`], the document completed by [`document`].
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(node::routes())
        .merge(ledger::routes())
        .merge(cases::routes())
        .merge(requests::routes())
        .merge(flows::routes())
        .merge(evidence::routes())
        .merge(privilege::routes())
        .merge(incidents::routes())
        .merge(psi::routes())
        .merge(redress::routes())
        .merge(reports::routes())
}

/// The document as served: the routes' operations, the TAXII routes, and axum's catch-all
/// parameters (`{*path}`) written as OpenAPI path parameters (`{path}`).
pub(crate) fn document(mut doc: utoipa::openapi::OpenApi) -> Value {
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    intel::describe(&mut doc);
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths.into_iter().map(|(path, item)| (openapi_path(&path), item)).collect();
    match serde_json::to_value(&doc) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "the OpenAPI document does not serialize");
            Value::Null
        }
    }
}

/// An axum route path as an OpenAPI path template: `{*rest}` becomes `{rest}`.
pub(crate) fn openapi_path(axum_path: &str) -> String {
    axum_path.replace("{*", "{")
}

/// A string schema whose values are a closed vocabulary (the names serde reads and writes).
fn vocabulary(description: &str, names: impl IntoIterator<Item = &'static str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(names))
        .build()
}

/// `DataCategory`, as its names.
pub(crate) fn data_category() -> Object {
    vocabulary(
        "a category of data",
        entente_core::domain::DataCategory::ALL.iter().map(|c| c.as_str()),
    )
}

/// `Purpose`, as its names.
pub(crate) fn purpose() -> Object {
    vocabulary("a purpose", entente_core::domain::Purpose::ALL.iter().map(|p| p.as_str()))
}

/// A list of `Purpose`s.
pub(crate) fn purposes() -> utoipa::openapi::schema::Array {
    ArrayBuilder::new().items(purpose()).build()
}

/// `RequestKind`, as its names.
pub(crate) fn request_kind() -> Object {
    vocabulary(
        "a kind of cross-border request",
        entente_core::domain::RequestKind::ALL.iter().map(|k| k.as_str()),
    )
}

/// `OnwardTransfer`, as its names.
pub(crate) fn onward_transfer() -> Object {
    vocabulary(
        "the onward-transfer rule",
        entente_core::domain::OnwardTransfer::ALL.iter().map(|o| o.as_str()),
    )
}

/// `Role`, as its names.
pub(crate) fn role() -> Object {
    vocabulary("a user's role", entente_core::Role::ALL.iter().map(|r| r.as_str()))
}

/// A party code: ISO 3166-1 alpha-2 or EU.
pub(crate) fn party() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("a party code: ISO 3166-1 alpha-2 or EU"))
        .build()
}

#[cfg(test)]
mod tests;
