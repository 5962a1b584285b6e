//! A TAXII 2.1 client: every object of a collection pulled (all pages), objects pushed in
//! envelopes — to any TAXII 2.1 server (medallion, another Entente node, a partner's
//! platform) over a plain client, or to a pinned partner over mutual TLS as this node
//! ([`PeerTaxii`]), where what is pushed is only what the gate released to that partner.

use crate::Node;
use crate::federation::TlsIdentity;
use entente_core::{Decision, PartyCode};
use entente_intel::stix;
use entente_store::{GateError, Principal, StoreError, Verdict};
use jiff::Timestamp;
use std::sync::Arc;
use std::time::Duration;

/// The TAXII 2.1 media type.
pub const TAXII: &str = "application/taxii+json;version=2.1";

/// What went wrong talking to a TAXII server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaxiiClientError {
    /// The partner named is not pinned on this node.
    #[error("{0} is not a pinned partner of this node (entente peer add)")]
    NotPinned(PartyCode),
    /// The server answered with an error status.
    #[error("the TAXII server answered {status}: {detail}")]
    Server {
        /// The status.
        status: reqwest::StatusCode,
        /// Its TAXII error message (title and description), or the body.
        detail: String,
    },
    /// The server refused objects of a push.
    #[error("the server refused {failures} objects: {detail}")]
    Refused {
        /// How many.
        failures: u64,
        /// The server's `failures`.
        detail: String,
    },
    /// The server's answer is not a TAXII envelope.
    #[error("{0}")]
    Malformed(String),
    /// The request failed.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// The node's TLS identity or the partner's pin cannot be used.
    #[error("{0}")]
    Tls(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The gate refused the release (invalid, not found) or failed.
    #[error(transparent)]
    Gate(#[from] GateError),
    /// The gate denied the release.
    #[error("{}", .0.reason)]
    Denied(Decision),
}

fn authorize(req: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token.map(|t| (t, t.split_once(':'))) {
        Some((_, Some((user, password)))) => req.basic_auth(user, Some(password)),
        Some((token, None)) => req.bearer_auth(token),
        None => req,
    }
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn root(url: &str) -> String {
    if url.ends_with('/') { url.to_owned() } else { format!("{url}/") }
}

/// The error a TAXII server answered.
async fn taxii_error(resp: reqwest::Response) -> TaxiiClientError {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            Some(format!(
                "{}: {}",
                v.get("title")?.as_str()?,
                v.get("description").and_then(|d| d.as_str()).unwrap_or("")
            ))
        })
        .unwrap_or(body);
    TaxiiClientError::Server { status, detail }
}

/// Pulls every object of `collection` (all pages of `limit`) from the API root `url`, each as
/// its original text. `token` is a bearer token, or `user:password` for Basic.
///
/// # Errors
/// The request fails, the server answers an error or something that is not an envelope.
pub async fn pull(
    client: &reqwest::Client,
    url: &str,
    collection: &str,
    token: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, TaxiiClientError> {
    let base = format!("{}collections/{collection}/objects/", root(url));
    let mut raws = Vec::new();
    let mut next: Option<String> = None;
    let mut added_after: Option<String> = None;
    loop {
        let mut url = format!("{base}?limit={limit}");
        if let Some(n) = &next {
            url.push_str(&format!("&next={}", encode(n)));
        } else if let Some(a) = &added_after {
            url.push_str(&format!("&added_after={}", encode(a)));
        }
        let req = client.get(&url).header("Accept", TAXII);
        let resp = authorize(req, token).send().await?;
        if !resp.status().is_success() {
            return Err(taxii_error(resp).await);
        }
        let last_added = resp
            .headers()
            .get("X-TAXII-Date-Added-Last")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await?;
        let top: std::collections::HashMap<String, &serde_json::value::RawValue> =
            serde_json::from_str(&text).map_err(|e| {
                TaxiiClientError::Malformed(format!("the server's envelope is not JSON: {e}"))
            })?;
        let objects: Vec<&serde_json::value::RawValue> = match top.get("objects") {
            Some(o) => serde_json::from_str(o.get()).map_err(|e| {
                TaxiiClientError::Malformed(format!("the server's envelope: objects: {e}"))
            })?,
            None => Vec::new(),
        };
        let n = objects.len();
        raws.extend(objects.iter().map(|o| o.get().to_owned()));
        let more = top.get("more").is_some_and(|m| m.get() == "true");
        next = top.get("next").and_then(|n| serde_json::from_str::<String>(n.get()).ok());
        if !more || n == 0 && next.is_none() {
            break;
        }
        if next.is_none() {
            // Servers without `next` page by date_added (TAXII 2.1 §3.4).
            match last_added {
                Some(a) if added_after.as_deref() != Some(a.as_str()) => added_after = Some(a),
                _ => break,
            }
        }
    }
    Ok(raws)
}

/// Pushes `objects` to `collection` in envelopes of `per` objects; returns (objects stored,
/// objects sent).
///
/// # Errors
/// The request fails, the server answers an error or refuses an object.
pub async fn push(
    client: &reqwest::Client,
    url: &str,
    collection: &str,
    token: Option<&str>,
    objects: &[stix::StixObject],
    per: usize,
) -> Result<(u64, usize), TaxiiClientError> {
    let base = format!("{}collections/{collection}/objects/", root(url));
    let mut ok = 0u64;
    for chunk in objects.chunks(per) {
        let refs: Vec<&str> = chunk.iter().map(|o| o.raw.as_str()).collect();
        let body = stix::write_objects("", &refs);
        let req =
            client.post(&base).header("Accept", TAXII).header("Content-Type", TAXII).body(body);
        let resp = authorize(req, token).send().await?;
        if !resp.status().is_success() {
            return Err(taxii_error(resp).await);
        }
        let status: serde_json::Value = resp.json().await?;
        let failures = status.get("failure_count").and_then(serde_json::Value::as_u64).unwrap_or(0);
        if failures > 0 {
            return Err(TaxiiClientError::Refused {
                failures,
                detail: status["failures"].to_string(),
            });
        }
        ok += status.get("success_count").and_then(serde_json::Value::as_u64).unwrap_or(0);
    }
    Ok((ok, objects.len()))
}

/// The TAXII server of a pinned partner, on its federation listener, called over mutual TLS
/// as this node (its certificate presented, only the partner's pinned one accepted). It can
/// pull, and push only what the gate released to the partner.
#[derive(Debug)]
pub struct PeerTaxii {
    party: PartyCode,
    client: reqwest::Client,
}

impl PeerTaxii {
    /// A client towards the pinned partner `party`; `timeout` bounds each request.
    ///
    /// # Errors
    /// `party` is not pinned; the node's TLS identity or the pin cannot be used.
    pub async fn connect(
        node: &Node,
        party: &PartyCode,
        timeout: Option<Duration>,
    ) -> Result<PeerTaxii, TaxiiClientError> {
        let pinned = node
            .store
            .peer(party)
            .await?
            .ok_or_else(|| TaxiiClientError::NotPinned(party.clone()))?;
        let tls =
            TlsIdentity::load(&node.data_dir).map_err(|e| TaxiiClientError::Tls(e.to_string()))?;
        let config = tls
            .client_config(&pinned.cert_pem)
            .map_err(|e| TaxiiClientError::Tls(e.to_string()))?;
        let mut builder = reqwest::Client::builder().tls_backend_preconfigured(config);
        if let Some(t) = timeout {
            builder = builder.timeout(t);
        }
        Ok(PeerTaxii { party: party.clone(), client: builder.build()? })
    }

    /// Pulls every object of `collection` from the partner's API root `url` ([`pull`]).
    ///
    /// # Errors
    /// As [`pull`].
    pub async fn pull(
        &self,
        url: &str,
        collection: &str,
        token: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, TaxiiClientError> {
        pull(&self.client, url, collection, token, limit).await
    }

    /// Releases `objects` to the partner through the gate (`intel.push`: each decided under
    /// TLP 2.0 for the partner, recorded before anything leaves) as `actor`, then pushes what
    /// was released ([`push`]); returns (objects stored, objects sent, objects withheld).
    ///
    /// # Errors
    /// The release is refused or denied; as [`push`].
    #[expect(clippy::too_many_arguments, reason = "the push's arguments and the release's")]
    pub async fn push_released(
        &self,
        node: &Node,
        actor: Principal,
        url: &str,
        collection: &str,
        token: Option<&str>,
        objects: Vec<stix::StixObject>,
        per: usize,
    ) -> Result<(u64, usize, usize), TaxiiClientError> {
        let release = entente_store::intel::IntelRelease {
            to: self.party.clone(),
            collection: collection.to_owned(),
            objects: Arc::new(objects),
        };
        let released = match node.gate.submit(actor, release, Timestamp::now()).await? {
            Verdict::Permitted { output, .. } => output,
            Verdict::Denied { decision, .. } => return Err(TaxiiClientError::Denied(decision)),
        };
        let (ok, total) =
            push(&self.client, url, collection, token, &released.objects, per).await?;
        Ok((ok, total, released.withheld))
    }
}
