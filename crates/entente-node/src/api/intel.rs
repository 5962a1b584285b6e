//! Threat intelligence: the TAXII 2.1 routes in the document.
//!
//! They are served by [`crate::taxii`] with the TAXII media types and error messages the TAXII
//! 2.1 specification defines (a standard's wire format, described by that specification), so
//! the document lists each route with its statuses only. [`ROUTES`] is checked against the
//! routes `taxii.rs` registers by a test (`api::tests`).

use serde_json::json;
use utoipa::openapi::path::PathItem;

/// The query parameters of a read of objects (TAXII 2.1 §3.4 and §5.3–5.8).
const READ: &[&str] = &[
    "added_after",
    "limit",
    "next",
    "match[id]",
    "match[type]",
    "match[version]",
    "match[spec_version]",
];
/// Those of one object or its versions (the id is in the path).
const ONE: &[&str] = &["added_after", "limit", "next", "match[version]", "match[spec_version]"];

/// One method of a route: the method, its summary, its query parameters (keys of
/// [`query_parameter`]).
pub(crate) type Method = (&'static str, &'static str, &'static [&'static str]);

/// Every TAXII route: its path, its methods with their summaries and query parameters.
pub(crate) const ROUTES: &[(&str, &[Method])] = &[
    ("/taxii2/", &[("get", "TAXII 2.1 discovery", &[])]),
    ("/taxii2/api/", &[("get", "TAXII 2.1 API root", &[])]),
    (
        "/taxii2/api/status/{id}/",
        &[(
            "get",
            "Status of an import: only whoever made the import may read it (404 to everyone else); its objects a page at a time (limit, next)",
            &["status_limit", "status_next"],
        )],
    ),
    ("/taxii2/api/collections/", &[("get", "Collections", &[])]),
    ("/taxii2/api/collections/{id}/", &[("get", "A collection", &[])]),
    (
        "/taxii2/api/collections/{id}/manifest/",
        &[("get", "Manifest (each object decided under TLP 2.0; the page is recorded)", READ)],
    ),
    (
        "/taxii2/api/collections/{id}/objects/",
        &[
            (
                "get",
                "Objects: added_after, limit, next (stateless, HMAC-bound to the query), match[id|type|version|spec_version]; each object decided under TLP 2.0; one ledger entry per page",
                READ,
            ),
            (
                "post",
                "Add objects (an envelope, all or nothing): 202 with the status resource; 409, 413, 415, 422 as TAXII error messages",
                &[],
            ),
        ],
    ),
    (
        "/taxii2/api/collections/{id}/objects/{object_id}/",
        &[("get", "An object (decided under TLP 2.0; recorded)", ONE)],
    ),
    (
        "/taxii2/api/collections/{id}/objects/{object_id}/versions/",
        &[("get", "Versions of an object (decided under TLP 2.0; recorded)", ONE)],
    ),
];

/// A query parameter's OpenAPI description, by its key in [`ROUTES`].
fn query_parameter(key: &str) -> serde_json::Value {
    let string = json!({"type": "string"});
    let (name, description, schema) = match key {
        "added_after" => (
            key,
            "Only objects added after this time (an RFC 3339 timestamp)",
            json!({"type": "string", "format": "date-time"}),
        ),
        "limit" => (
            key,
            "Most objects on the page (1 or more; at most 1,000 are served)",
            json!({"type": "integer", "minimum": 1}),
        ),
        "next" => {
            (key, "The `next` value of the previous page (opaque, bound to the query)", string)
        }
        "match[id]" => (key, "STIX identifiers, comma-separated", string),
        "match[type]" => (key, "STIX object types, comma-separated", string),
        "match[version]" => (
            key,
            "`last` (the default), `first`, `all` or timestamps of `modified`, comma-separated",
            string,
        ),
        "match[spec_version]" => (key, "`2.1` or `2.0`, comma-separated", string),
        "status_limit" => (
            "limit",
            "Most objects of the status listed on the page (default 1,000, at most 10,000)",
            json!({"type": "integer", "minimum": 1}),
        ),
        "status_next" => (
            "next",
            "The position the previous page gave as `next`",
            json!({"type": "string", "pattern": "^[0-9]+$"}),
        ),
        _ => (key, "", string),
    };
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

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
        for (method, summary, query) in *methods {
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
            let mut all = params.clone();
            all.extend(query.iter().map(|k| query_parameter(k)));
            if !all.is_empty() {
                op["parameters"] = json!(all);
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
