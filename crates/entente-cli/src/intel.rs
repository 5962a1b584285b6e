//! `entente intel`: threat intelligence. Collections and imports on the node's own data
//! directory through the gate (as the operator), export of a collection as a STIX bundle, and
//! a TAXII 2.1 client (`pull`, `push`) for any TAXII 2.1 server: medallion, another Entente
//! node, a partner's platform.

use clap::Subcommand;
use entente_console::{Exit, Failure, fail};
use entente_core::PartyCode;
use entente_intel::stix;
use entente_node::Node;
use entente_node::taxii_client::{self, PeerTaxii};
use entente_store::{GateCommand, GateError, IntelQuery, IntelView, Verdict};
use jiff::Timestamp;
use std::path::PathBuf;
use std::sync::Arc;

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
            let raws = match peer_taxii(peer.as_deref(), data_dir.as_deref()).await? {
                Some((_, taxii)) => taxii.pull(&url, &collection, token.as_deref(), limit).await?,
                None => {
                    let client = reqwest::Client::new();
                    taxii_client::pull(&client, &url, &collection, token.as_deref(), limit).await?
                }
            };
            eprintln!("pulled {} objects", raws.len());
            write_bundle(&raws, out.as_ref())
        }
        IntelCmd::Push { url, collection, file, token, peer, data_dir, per_envelope } => {
            let peer = peer_taxii(peer.as_deref(), data_dir.as_deref()).await?;
            let text = read(&file)?;
            let bundle = stix::parse_bundle(&text).map_err(|e| {
                fail(Exit::BadInput, format!("{}: not pushed (nothing was): {e}", file.display()))
            })?;
            let token = token.as_deref();
            let per = per_envelope.max(1);
            let (ok, total, withheld) = match peer {
                // As this node, to a partner: what leaves is decided under TLP 2.0 for that
                // partner and recorded by the gate before anything is sent.
                Some((node, taxii)) => {
                    let operator = node.operator();
                    taxii
                        .push_released(
                            &node,
                            operator,
                            &url,
                            &collection,
                            token,
                            bundle.objects,
                            per,
                        )
                        .await?
                }
                None => {
                    let client = reqwest::Client::new();
                    let (ok, total) =
                        taxii_client::push(&client, &url, &collection, token, &bundle.objects, per)
                            .await?;
                    (ok, total, 0)
                }
            };
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

/// With `--peer` (and `--data-dir`): the pinned partner's TAXII server, called over mutual
/// TLS as this node (its certificate presented, only the partner's pinned one accepted).
async fn peer_taxii(
    peer: Option<&str>,
    data_dir: Option<&std::path::Path>,
) -> Result<Option<(Node, PeerTaxii)>, Failure> {
    let (Some(peer), Some(dir)) = (peer, data_dir) else { return Ok(None) };
    let party: PartyCode =
        peer.parse().map_err(|e| fail(Exit::BadInput, format!("--peer: {e}")))?;
    let node = Node::open(dir).await?;
    let taxii = PeerTaxii::connect(&node, &party, None).await?;
    Ok(Some((node, taxii)))
}
