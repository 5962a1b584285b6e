//! The operator's view of a node (`entente status`, and the same figures as gauges on
//! `/metrics`): version, database, blob store, ledger, witnesses, outbox backlog, fetches in
//! flight, the last backup, sweep and scrub. Counts and identifiers only.

use crate::identity::Node;
use crate::identity::NodeError;
use entente_store::Backend;
use entente_store::maintenance::{KIND_BACKUP, KIND_SCRUB, KIND_SWEEP, MaintenanceEvent};
use serde::Serialize;

/// The node's status. Field order and names are stable (`--json`).
#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    /// Entente's version.
    pub version: String,
    /// The node's party.
    pub party: String,
    /// The authority's name.
    pub name: String,
    /// The database.
    pub database: DatabaseStatus,
    /// The blob store.
    pub blob_store: BlobStoreStatus,
    /// The ledger.
    pub ledger: LedgerStatus,
    /// Partners witnessing this node's ledger, and their last cosignature.
    pub witnesses: Vec<WitnessStatus>,
    /// Messages to each partner.
    pub outbox: Vec<OutboxStatus>,
    /// Packages partners offered that have not arrived yet.
    pub fetches_in_flight: u64,
    /// The last backup recorded.
    pub last_backup: Option<EventStatus>,
    /// The last sweep recorded.
    pub last_sweep: Option<EventStatus>,
    /// The last scrub of the evidence blobs recorded.
    pub last_scrub: Option<EventStatus>,
    /// Why the ledger is on hold (a witness's checkpoint it does not extend), if it is.
    pub hold: Option<HoldStatus>,
}

/// A hold of the ledger (`crate::hold`).
#[derive(Clone, Debug, Serialize)]
pub struct HoldStatus {
    /// The witness that showed the checkpoint.
    pub witness: String,
    /// The checkpoint's tree size.
    pub size: u64,
    /// What the ledger says against it.
    pub reason: String,
    /// When the node found out.
    pub at: String,
}

/// The database.
#[derive(Clone, Debug, Serialize)]
pub struct DatabaseStatus {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Its URL without credentials.
    pub url: String,
}

/// The blob store.
#[derive(Clone, Debug, Serialize)]
pub struct BlobStoreStatus {
    /// `local` or `s3`.
    pub kind: String,
    /// The directory (as configured) or `bucket/prefix`.
    pub location: String,
}

/// The ledger.
#[derive(Clone, Debug, Serialize)]
pub struct LedgerStatus {
    /// Entries.
    pub size: u64,
    /// Size covered by the latest signed checkpoint.
    pub checkpoint_size: u64,
    /// Root hash of that checkpoint (base64).
    pub checkpoint_root: Option<String>,
}

/// One partner as a witness of this ledger.
#[derive(Clone, Debug, Serialize)]
pub struct WitnessStatus {
    /// The partner.
    pub party: String,
    /// Its witness name.
    pub witness: String,
    /// Size of the checkpoint it last cosigned (as kept in `cosigned.note`), if any.
    pub cosigned_size: Option<u64>,
    /// When it cosigned (RFC 3339), if it did.
    pub cosigned_at: Option<String>,
}

/// Messages to one partner.
#[derive(Clone, Debug, Serialize)]
pub struct OutboxStatus {
    /// The partner.
    pub partner: String,
    /// Waiting to be delivered.
    pub pending: u64,
    /// Acknowledged.
    pub delivered: u64,
    /// Acknowledged as refused.
    pub refused: u64,
}

/// A recorded maintenance event.
#[derive(Clone, Debug, Serialize)]
pub struct EventStatus {
    /// Its ledger entry.
    pub ledger_index: u64,
    /// When.
    pub at: entente_core::Stamp,
    /// Counts, sizes and digests.
    pub detail: serde_json::Value,
}

impl From<MaintenanceEvent> for EventStatus {
    fn from(e: MaintenanceEvent) -> Self {
        EventStatus { ledger_index: e.ledger_index, at: e.at, detail: e.detail }
    }
}

/// The size a checkpoint note names (its second line).
fn note_size(note: &[u8]) -> Option<u64> {
    std::str::from_utf8(note).ok()?.lines().nth(1)?.trim().parse().ok()
}

/// Reads the node's status.
///
/// # Errors
/// Database errors.
pub async fn status(node: &Node) -> Result<NodeStatus, NodeError> {
    let store = &node.store;
    let (size, note) = store.ledger_head().await?;
    let (checkpoint_size, checkpoint_root) = match note.as_deref() {
        Some(n) => match entente_core::ledger::verify_checkpoint(n, &node.verifier_key()) {
            Ok(cp) => (cp.size, Some(cp.root.to_string())),
            Err(_) => (note_size(n).unwrap_or(0), None),
        },
        None => (0, None),
    };
    let cosigned = std::fs::read(node.data_dir.join(crate::witness::COSIGNED_FILE)).ok();
    let mut witnesses = Vec::new();
    for peer in store.peers().await? {
        let name = entente_core::witness::witness_name(&peer.party);
        let time = match (&cosigned, crate::federation::peer_key(&peer)) {
            (Some(n), Ok(key)) => entente_core::witness::verify_cosignature(n, &name, &key).ok(),
            _ => None,
        };
        witnesses.push(WitnessStatus {
            party: peer.party.to_string(),
            witness: name,
            cosigned_size: time.and(cosigned.as_deref().and_then(note_size)),
            cosigned_at: time
                .and_then(|t| i64::try_from(t).ok())
                .and_then(|t| jiff::Timestamp::from_second(t).ok())
                .map(|t| t.to_string()),
        });
    }
    let outbox = store
        .outbox_summary()
        .await?
        .into_iter()
        .map(|o| OutboxStatus {
            partner: o.recipient,
            pending: o.pending,
            delivered: o.delivered,
            refused: o.refused,
        })
        .collect();
    let fetches_in_flight = store.packages_in(true).await?.len() as u64;
    let blob_store = match &node.config.evidence.store {
        None => BlobStoreStatus {
            kind: "local".into(),
            location: node.config.blob_dir.display().to_string(),
        },
        Some(s) => {
            BlobStoreStatus { kind: "s3".into(), location: format!("{}/{}", s.bucket, s.prefix) }
        }
    };
    Ok(NodeStatus {
        version: env!("CARGO_PKG_VERSION").into(),
        party: node.config.party.to_string(),
        name: node.config.name.clone(),
        database: DatabaseStatus {
            backend: match store.backend() {
                Backend::Sqlite => "sqlite".into(),
                Backend::Postgres => "postgres".into(),
            },
            url: store.url().to_owned(),
        },
        blob_store,
        ledger: LedgerStatus { size, checkpoint_size, checkpoint_root },
        witnesses,
        outbox,
        fetches_in_flight,
        last_backup: store.last_maintenance(KIND_BACKUP).await?.map(Into::into),
        last_sweep: store.last_maintenance(KIND_SWEEP).await?.map(Into::into),
        last_scrub: store.last_maintenance(KIND_SCRUB).await?.map(Into::into),
        hold: match crate::hold::read_hold(&node.data_dir) {
            Ok(h) => h.map(|h| HoldStatus {
                witness: h.witness.to_string(),
                size: h.size,
                reason: h.reason,
                at: h.at,
            }),
            Err(e) => Some(HoldStatus {
                witness: String::new(),
                size: 0,
                reason: format!("{e}; the ledger stays on hold until `entente ledger release`"),
                at: String::new(),
            }),
        },
    })
}

/// The status as Prometheus gauges (text exposition format), appended to `/metrics`.
pub fn prometheus(s: &NodeStatus) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let label = |k: &str, v: &str| format!("{{{k}=\"{}\"}}", v.replace(['\\', '"', '\n'], "_"));
    gauge(
        "entente_info",
        "Entente version, database backend and blob store of this node (value 1).",
        &[(
            format!(
                "{{version=\"{}\",database=\"{}\",blob_store=\"{}\"}}",
                s.version, s.database.backend, s.blob_store.kind
            ),
            1.0,
        )],
    );
    gauge(
        "entente_ledger_checkpoint_size",
        "Entries covered by the latest signed checkpoint.",
        &[(String::new(), s.ledger.checkpoint_size as f64)],
    );
    let w: Vec<(String, f64)> = s
        .witnesses
        .iter()
        .map(|w| (label("witness", &w.party), w.cosigned_size.unwrap_or(0) as f64))
        .collect();
    gauge(
        "entente_witness_cosigned_size",
        "Size of this ledger's checkpoint each partner last cosigned (0: none).",
        &w,
    );
    let w: Vec<(String, f64)> = s
        .witnesses
        .iter()
        .map(|w| {
            let t = w
                .cosigned_at
                .as_deref()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map_or(0.0, |t| t.as_second() as f64);
            (label("witness", &w.party), t)
        })
        .collect();
    gauge(
        "entente_witness_cosigned_timestamp_seconds",
        "When each partner last cosigned this ledger (Unix time; 0: never).",
        &w,
    );
    let o: Vec<(String, f64)> =
        s.outbox.iter().map(|o| (label("partner", &o.partner), o.pending as f64)).collect();
    gauge("entente_outbox_pending", "Messages waiting for delivery, per partner.", &o);
    gauge(
        "entente_fetches_in_flight",
        "Packages offered by partners that have not arrived yet.",
        &[(String::new(), s.fetches_in_flight as f64)],
    );
    let at =
        |e: &Option<EventStatus>| e.as_ref().map_or(0.0, |e| e.at.timestamp().as_second() as f64);
    gauge(
        "entente_last_backup_timestamp_seconds",
        "When the last backup was recorded (Unix time; 0: never).",
        &[(String::new(), at(&s.last_backup))],
    );
    gauge(
        "entente_last_sweep_timestamp_seconds",
        "When the last sweep that removed crash leftovers was recorded (Unix time; 0: never).",
        &[(String::new(), at(&s.last_sweep))],
    );
    gauge(
        "entente_ledger_held",
        "1 while the ledger is on hold (a witness holds a checkpoint it does not extend), else 0.",
        &[(String::new(), if s.hold.is_some() { 1.0 } else { 0.0 })],
    );
    gauge(
        "entente_last_scrub_timestamp_seconds",
        "When the last scrub of the evidence blobs was recorded (Unix time; 0: never).",
        &[(String::new(), at(&s.last_scrub))],
    );
    let damaged = s
        .last_scrub
        .as_ref()
        .and_then(|e| e.detail.get("damaged").and_then(serde_json::Value::as_u64))
        .unwrap_or(0);
    gauge(
        "entente_last_scrub_damaged_blobs",
        "Evidence blobs the last scrub found missing, undecryptable or hashing to other content.",
        &[(String::new(), damaged as f64)],
    );
    out
}
