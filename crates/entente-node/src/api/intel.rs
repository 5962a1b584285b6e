//! Threat intelligence: the TAXII 2.1 routes in the document.
//!
//! They are served by [`crate::taxii`] with the TAXII media types and error messages the TAXII
//! 2.1 specification defines (a standard's wire format, described by that specification), so
//! the document lists each route with its statuses only. [`ROUTES`] is checked against the
//! routes `taxii.rs` registers by a test (`api::tests`).

use serde_json::json;
use utoipa::openapi::path::PathItem;

/// Every TAXII route: its path, its methods with their summaries.
pub(crate) const ROUTES: &[(&str, &[(&str, &str)])] = &[
    ("/taxii2/", &[("get", "TAXII 2.1 discovery")]),
    ("/taxii2/api/", &[("get", "TAXII 2.1 API root")]),
    ("/taxii2/api/status/{id}/", &[("get", "Status of an import")]),
    ("/taxii2/api/collections/", &[("get", "Collections")]),
    ("/taxii2/api/collections/{id}/", &[("get", "A collection")]),
    (
        "/taxii2/api/collections/{id}/manifest/",
        &[("get", "Manifest (each object decided under TLP 2.0; the page is recorded)")],
    ),
    (
        "/taxii2/api/collections/{id}/objects/",
        &[
            (
                "get",
                "Objects: added_after, limit, next (stateless, HMAC-bound to the query), match[id|type|version|spec_version]; each object decided under TLP 2.0; one ledger entry per page",
            ),
            (
                "post",
                "Add objects (an envelope, all or nothing): 202 with the status resource; 409, 413, 415, 422 as TAXII error messages",
            ),
        ],
    ),
    (
        "/taxii2/api/collections/{id}/objects/{object_id}/",
        &[("get", "An object (decided under TLP 2.0; recorded)")],
    ),
    (
        "/taxii2/api/collections/{id}/objects/{object_id}/versions/",
        &[("get", "Versions of an object (decided under TLP 2.0; recorded)")],
    ),
];

/// Adds the TAXII routes to `doc`.
pub(crate) fn describe(doc: &mut utoipa::openapi::OpenApi) {
    let error = json!({"description": "TAXII error message", "content": {"application/taxii+json;version=2.1": {}}});
    for (path, methods) in ROUTES {
        let params: Vec<_> = ["id", "object_id"]
            .iter()
            .filter(|p| path.contains(&format!("{{{p}}}")))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut item = serde_json::Map::new();
        for (method, summary) in *methods {
            let mut responses = json!({
                "200": {"description": "TAXII resource", "content": {"application/taxii+json;version=2.1": {}}},
            });
            if *method == "post" {
                responses["202"] = json!({"description": "status resource", "content": {"application/taxii+json;version=2.1": {}}});
            }
            for status in ["400", "401", "403", "404", "406", "409", "413", "415", "422"] {
                responses[status] = error.clone();
            }
            let mut op = json!({
                "tags": ["intel"], "summary": summary, "security": [{"bearer": []}],
                "responses": responses,
            });
            if !params.is_empty() {
                op["parameters"] = json!(params);
            }
            item.insert((*method).to_owned(), op);
        }
        match serde_json::from_value::<PathItem>(serde_json::Value::Object(item)) {
            Ok(item) => {
                doc.paths.paths.insert((*path).to_owned(), item);
            }
            Err(e) => tracing::error!(error = %e, path, "a TAXII route cannot be described"),
        }
    }
}
