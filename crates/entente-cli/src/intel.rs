//! `entente intel`: threat intelligence. Collections and imports on the node's own data
//! directory through the gate (as the operator), export of a collection as a STIX bundle, and
//! a TAXII 2.1 client (`pull`, `push`) for any TAXII 2.1 server: medallion, another Entente
//! node, a partner's platform.

use crate::{Exit, Failure, fail};
use clap::Subcommand;
use entente_core::PartyCode;
use entente_intel::stix;
use entente_node::Node;
use entente_store::{GateCommand, GateError, IntelQuery, IntelView, Verdict};
use jiff::Timestamp;
use std::path::PathBuf;
use std::sync::Arc;

/// The TAXII 2.1 media type.
const TAXII: &str = "application/taxii+json;version=2.1";

#[derive(Subcommand)]
pub(crate) enum IntelCmd {
    /// Create a TAXII collection on this node
    Collection {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Collection id (a UUID; random if not given)
        #[arg(long)]
        id: Option<String>,
        /// Title
        #[arg(long)]
        title: String,
        /// Description
        #[arg(long, default_value = "")]
        description: String,
        /// Partner parties it is shared with (TLP:AMBER audience), comma-separated
        #[arg(long, value_delimiter = ',')]
        parties: Vec<String>,
    },
    /// Import a STIX 2.1 bundle into a collection: all or nothing
    Import {
        /// The bundle (JSON file)
        file: PathBuf,
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Collection id
        #[arg(long)]
        collection: String,
    },
    /// Export a collection (what the operator may see) as a STIX 2.1 bundle
    Export {
        /// The node's data directory
        #[arg(long)]
        data_dir: PathBuf,
        /// Collection id
        #[arg(long)]
        collection: String,
        /// Output file (default: standard output)
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Pull every object of a collection from a TAXII 2.1 server into a STIX bundle
    Pull {
        /// The API root URL (e.g. http://127.0.0.1:7400/taxii2/api/)
        url: String,
        /// Collection id
        collection: String,
        /// Bearer token (or user:password for Basic)
        #[arg(long, env = "ENTENTE_TAXII_TOKEN", required_unless_present = "peer")]
        token: Option<String>,
        /// The pinned partner (party code, e.g. DE) whose TAXII server the URL names on its
        /// federation listener (e.g. https://127.0.0.1:7411/taxii2/api/): called over mutual
        /// TLS as this node
        #[arg(long, requires = "data_dir")]
        peer: Option<String>,
        /// This node's data directory (with --peer)
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Page size asked for
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Output file (default: standard output)
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Push a STIX 2.1 bundle to a collection of a TAXII 2.1 server, in envelopes
    Push {
        /// The API root URL
        url: String,
        /// Collection id
        collection: String,
        /// The bundle (JSON file)
        file: PathBuf,
        /// Bearer token (or user:password for Basic)
        #[arg(long, env = "ENTENTE_TAXII_TOKEN", required_unless_present = "peer")]
        token: Option<String>,
        /// The pinned partner (party code, e.g. DE) whose TAXII server the URL names on its
        /// federation listener (e.g. https://127.0.0.1:7411/taxii2/api/): called over mutual
        /// TLS as this node
        #[arg(long, requires = "data_dir")]
        peer: Option<String>,
        /// This node's data directory (with --peer)
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Objects per envelope
        #[arg(long, default_value_t = 100)]
        per_envelope: usize,
    },
}

pub(crate) async fn run(cmd: IntelCmd) -> Result<(), Failure> {
    match cmd {
        IntelCmd::Collection { data_dir, id, title, description, parties } => {
            let node = Node::open(&data_dir).await?;
            let id = match id {
                Some(id) => id,
                None => random_uuid()?,
            };
            let parties = parties
                .iter()
                .map(|p| {
                    p.parse::<PartyCode>()
                        .map_err(|e| fail(Exit::BadInput, format!("--parties: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let c = entente_store::intel::IntelCollectionCreate {
                id: id.clone(),
                title,
                description,
                parties,
            };
            submit(&node, c).await?;
            println!("{id}");
            Ok(())
        }
        IntelCmd::Import { file, data_dir, collection } => {
            let text = read(&file)?;
            let bundle = stix::parse_bundle(&text).map_err(|e| {
                fail(Exit::BadInput, format!("{}: not imported (nothing was): {e}", file.display()))
            })?;
            let node = Node::open(&data_dir).await?;
            let n = bundle.objects.len();
            let c = entente_store::intel::IntelImport {
                collection,
                objects: Arc::new(bundle.objects),
                originator: None,
                status_id: random_uuid()?,
            };
            let s = submit(&node, c).await?;
            println!(
                "imported {} objects ({} stored, status {} {})",
                n, s.success_count, s.id, s.status
            );
            Ok(())
        }
        IntelCmd::Export { data_dir, collection, out } => {
            let node = Node::open(&data_dir).await?;
            let mut raws = Vec::new();
            let mut after = None;
            loop {
                let c = entente_store::intel::IntelRead {
                    collection: collection.clone(),
                    view: IntelView::Objects,
                    query: IntelQuery {
                        limit: entente_store::MAX_PAGE,
                        after: after.clone(),
                        ..IntelQuery::default()
                    },
                };
                let page = submit(&node, c).await?;
                raws.extend(page.rows.into_iter().map(|r| r.raw));
                after = page.last;
                if !page.more {
                    break;
                }
            }
            write_bundle(&raws, out.as_ref())
        }
        IntelCmd::Pull { url, collection, token, peer, data_dir, limit, out } => {
            let client = client_for(peer.as_deref(), data_dir.as_deref()).await?;
            let raws = pull(&client, &url, &collection, token.as_deref(), limit).await?;
            eprintln!("pulled {} objects", raws.len());
            write_bundle(&raws, out.as_ref())
        }
        IntelCmd::Push { url, collection, file, token, peer, data_dir, per_envelope } => {
            let client = client_for(peer.as_deref(), data_dir.as_deref()).await?;
            let text = read(&file)?;
            let bundle = stix::parse_bundle(&text).map_err(|e| {
                fail(Exit::BadInput, format!("{}: not pushed (nothing was): {e}", file.display()))
            })?;
            // As this node, to a partner: what leaves is decided under TLP 2.0 for that partner
            // and recorded by the gate before anything is sent.
            let (objects, withheld) = match (peer.as_deref(), data_dir.as_deref()) {
                (Some(peer), Some(dir)) => {
                    let to: PartyCode =
                        peer.parse().map_err(|e| fail(Exit::BadInput, format!("--peer: {e}")))?;
                    let node = Node::open(dir).await?;
                    let release = entente_store::intel::IntelRelease {
                        to,
                        collection: collection.clone(),
                        objects: Arc::new(bundle.objects),
                    };
                    let r = submit(&node, release).await?;
                    (r.objects, r.withheld)
                }
                _ => (bundle.objects, 0),
            };
            let (ok, total) =
                push(&client, &url, &collection, token.as_deref(), &objects, per_envelope.max(1))
                    .await?;
            println!(
                "pushed {total} objects: {ok} stored by the server; {withheld} withheld under TLP for the partner"
            );
            Ok(())
        }
    }
}

fn read(file: &PathBuf) -> Result<String, Failure> {
    std::fs::read_to_string(file)
        .map_err(|e| fail(Exit::BadInput, format!("{}: {e}", file.display())))
}

async fn submit<C: GateCommand>(node: &Node, c: C) -> Result<C::Output, Failure> {
    match node.gate.submit(node.operator(), c, Timestamp::now()).await {
        Ok(Verdict::Permitted { output, .. }) => Ok(output),
        Ok(Verdict::Denied { decision, .. }) => Err(fail(Exit::Denied, decision.reason)),
        Err(e @ (GateError::Invalid(_) | GateError::NotFound(_) | GateError::Conflict(_))) => {
            Err(fail(Exit::BadInput, e))
        }
        Err(e) => Err(e.into()),
    }
}

fn write_bundle(raws: &[String], out: Option<&PathBuf>) -> Result<(), Failure> {
    let refs: Vec<&str> = raws.iter().map(String::as_str).collect();
    let head = format!("\"type\":\"bundle\",\"id\":\"bundle--{}\",", random_uuid()?);
    let text = stix::write_objects(&head, &refs);
    match out {
        Some(p) => {
            std::fs::write(p, text).map_err(|e| fail(Exit::Failed, format!("{}: {e}", p.display())))
        }
        None => {
            println!("{text}");
            Ok(())
        }
    }
}

/// A random UUID (version 4).
pub(crate) fn random_uuid() -> Result<String, Failure> {
    let h = entente_node::identity::random_hex(16)?;
    let mut b = hex::decode(&h)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]))
}

fn authorize(req: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token.map(|t| (t, t.split_once(':'))) {
        Some((_, Some((user, password)))) => req.basic_auth(user, Some(password)),
        Some((token, None)) => req.bearer_auth(token),
        None => req,
    }
}

/// A plain HTTP client, or, with `--peer`, a mutual-TLS client presenting this node's
/// certificate and accepting only the partner's pinned one.
async fn client_for(
    peer: Option<&str>,
    data_dir: Option<&std::path::Path>,
) -> Result<reqwest::Client, Failure> {
    let (Some(peer), Some(dir)) = (peer, data_dir) else { return Ok(reqwest::Client::new()) };
    let party: entente_core::PartyCode =
        peer.parse().map_err(|e| fail(Exit::BadInput, format!("--peer: {e}")))?;
    let node = Node::open(dir).await?;
    let pinned = node.store.peer(&party).await?.ok_or_else(|| {
        fail(
            Exit::BadInput,
            format!("{party} is not a pinned partner of this node (entente peer add)"),
        )
    })?;
    let tls =
        entente_node::federation::TlsIdentity::load(dir).map_err(|e| fail(Exit::Failed, e))?;
    let config = tls.client_config(&pinned.cert_pem).map_err(|e| fail(Exit::Failed, e))?;
    Ok(reqwest::Client::builder().tls_backend_preconfigured(config).build()?)
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

/// The error a TAXII server answered, as a message.
async fn taxii_error(resp: reqwest::Response) -> Failure {
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
    let code = if status.is_client_error() { Exit::BadInput } else { Exit::Failed };
    fail(code, format!("the TAXII server answered {status}: {detail}"))
}

/// Pulls every object of `collection` (all pages), each as its original text.
pub(crate) async fn pull(
    client: &reqwest::Client,
    url: &str,
    collection: &str,
    token: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, Failure> {
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
                fail(Exit::Failed, format!("the server's envelope is not JSON: {e}"))
            })?;
        let objects: Vec<&serde_json::value::RawValue> = match top.get("objects") {
            Some(o) => serde_json::from_str(o.get())
                .map_err(|e| fail(Exit::Failed, format!("the server's envelope: objects: {e}")))?,
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

/// Pushes `objects` in envelopes of `per` objects; returns (objects stored, objects sent).
pub(crate) async fn push(
    client: &reqwest::Client,
    url: &str,
    collection: &str,
    token: Option<&str>,
    objects: &[stix::StixObject],
    per: usize,
) -> Result<(u64, usize), Failure> {
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
            return Err(fail(
                Exit::Failed,
                format!("the server refused {failures} objects: {}", status["failures"]),
            ));
        }
        ok += status.get("success_count").and_then(serde_json::Value::as_u64).unwrap_or(0);
    }
    Ok((ok, objects.len()))
}
