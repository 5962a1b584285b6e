//! Partner nodes: pinning and unpinning a partner (its TLS certificate and the Ed25519 key
//! inside it), the partner's signed acknowledgements of what this node sent, envelopes
//! refused before their content was decided, and a witness's alarm about a partner's ledger.

use crate::gate::{
    DecideCx, EffectCx, GateCommand, GateError, PayloadDigests, Ruling, decided_by_role,
    digest_json,
};
use crate::store::to_i64;
use entente_core::digest::Sha256;
use entente_core::{Action, Actor, Decision, PartyCode, Subject, SubjectKind};
use entente_wire::{AckItem, AckStatus};
use jiff::Timestamp;

/// Pin a partner node: its TLS certificate and the Ed25519 key inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddPeer {
    /// The partner's party.
    pub party: PartyCode,
    /// Base URL of its federation endpoint (`https://…`).
    pub url: String,
    /// Its certificate (PEM).
    pub cert_pem: String,
    /// SHA-256 of the certificate's DER, hex.
    pub cert_sha256: String,
    /// Its Ed25519 public key, hex.
    pub signing_key: String,
    /// Its node's age recipient (`age1…`): evidence packages for it are encrypted to it.
    pub age_recipient: Option<String>,
}

/// What a peer entry records (`peer`), also rebuilt from a row by `ledger verify --state`.
pub(crate) fn payload(
    party: &str,
    url: &str,
    cert_sha256: &str,
    signing_key: &str,
    age_recipient: Option<&str>,
) -> serde_json::Value {
    let mut peer = serde_json::json!({"party": party, "url": url, "cert_sha256": cert_sha256, "signing_key": signing_key});
    if let Some(r) = age_recipient {
        peer["age_recipient"] = serde_json::json!(r);
    }
    peer
}

impl GateCommand for AddPeer {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::PeerAdd
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Peer, self.party.as_str())]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([(
            "peer",
            payload(
                self.party.as_str(),
                &self.url,
                &self.cert_sha256,
                &self.signing_key,
                self.age_recipient.as_deref(),
            ),
        )])
    }

    fn validate(&self) -> Result<(), GateError> {
        if let Some(r) = &self.age_recipient
            && (!r.starts_with("age1") || r.len() > 100)
        {
            return Err(GateError::Invalid(format!(
                "age recipient `{r}`: expected an age X25519 recipient (age1…)"
            )));
        }
        let url = &self.url;
        if !url.starts_with("https://") || url.len() > 2048 {
            return Err(GateError::Invalid(format!(
                "peer url `{url}` must be an https:// URL (node-to-node traffic is mutual TLS)"
            )));
        }
        let hex64 = |v: &str| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex64(&self.cert_sha256) || !hex64(&self.signing_key) {
            return Err(GateError::Invalid(
                "peer certificate digest and signing key must be 64 hex digits".into(),
            ));
        }
        Ok(())
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        let party = &self.party;
        if party == cx.party {
            return Err(GateError::Invalid(format!(
                "{party} is this node's own party; a peer is a partner node"
            )));
        }
        let exists: Option<String> =
            sqlx::query_scalar("SELECT party FROM peers WHERE party = $1 OR cert_sha256 = $2")
                .bind(party.as_str())
                .bind(&self.cert_sha256)
                .fetch_optional(&mut **cx.tx)
                .await?;
        if let Some(p) = exists {
            return Err(GateError::Conflict(format!(
                "peer {p} is already pinned (with this party or this certificate); remove it first to pin another certificate"
            )));
        }
        sqlx::query(
            "INSERT INTO peers (party, url, cert_pem, cert_sha256, signing_key, added_at, ledger_index, age_recipient) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(party.as_str())
        .bind(&self.url)
        .bind(&self.cert_pem)
        .bind(&self.cert_sha256)
        .bind(&self.signing_key)
        .bind(cx.now_text())
        .bind(to_i64(cx.index)?)
        .bind(self.age_recipient.clone())
        .execute(&mut **cx.tx)
        .await?;
        Ok(())
    }
}

/// Remove a partner's pin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemovePeer {
    /// The partner's party.
    pub party: PartyCode,
}

impl GateCommand for RemovePeer {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::PeerRemove
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Peer, self.party.as_str())]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::SubjectsOnly)
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        let n = sqlx::query("DELETE FROM peers WHERE party = $1")
            .bind(self.party.as_str())
            .execute(&mut **cx.tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(GateError::NotFound(format!("peer {}", self.party)));
        }
        Ok(())
    }
}

/// Record a partner's signed acknowledgement of envelopes this node sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordAcks {
    /// The acknowledging partner.
    pub peer: PartyCode,
    /// `sha256:<hex>` of the signed acknowledgement.
    pub ack_sha256: String,
    /// Its items.
    pub items: Vec<AckItem>,
}

impl GateCommand for RecordAcks {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::EnvelopeAck
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Peer, self.peer.as_str())]
    }

    /// The acknowledgement's digest; with a `resequence` item, also the numbers moved (the
    /// outbox's first renumbered message and the partner's next number), so that the entry
    /// shows the renumbering an auditor would otherwise find only in the acknowledgement.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        match self.send_again() {
            Some((status, seq, next)) => PayloadDigests::canonical([
                ("ack", serde_json::Value::String(self.ack_sha256.clone())),
                (status.as_str(), serde_json::json!({ "from": seq, "to": next })),
            ]),
            None => Ok(PayloadDigests::given([("ack", self.ack_sha256.clone())])),
        }
    }

    fn validate(&self) -> Result<(), GateError> {
        if self.items.is_empty() {
            return Err(GateError::Invalid(
                "an acknowledgement answers at least one envelope".into(),
            ));
        }
        entente_wire::envelope::check_send_again(&self.items).map_err(GateError::Invalid)
    }

    decided_by_role!();

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        // A `resequence` or `resend` item (the last) is not delivered: its message is
        // numbered or sent again.
        let marked = self.items.len() - usize::from(self.send_again().is_some());
        let (now, items) = (cx.now_text(), &self.items[..marked]);
        // Consecutive items with one status and consecutive ledger indexes (the common case:
        // a batch applied in one transaction) are marked with one statement.
        let mut i = 0;
        while i < items.len() {
            let first = &items[i];
            let mut j = i + 1;
            while j < items.len()
                && items[j].status == first.status
                && items[j].seq == first.seq + (j - i) as u64
                && items[j].ledger_index == first.ledger_index + (j - i) as u64
            {
                j += 1;
            }
            let last = &items[j - 1];
            sqlx::query(
                "UPDATE outbox SET delivered_at = $1, ack_status = $2, ack_index = $3 + (seq - $5), last_error = NULL \
                 WHERE recipient = $4 AND seq >= $5 AND seq <= $6 AND delivered_at IS NULL",
            )
            .bind(&now)
            .bind(first.status.as_str())
            .bind(to_i64(first.ledger_index)?)
            .bind(self.peer.as_str())
            .bind(to_i64(first.seq)?)
            .bind(to_i64(last.seq)?)
            .execute(&mut **cx.tx)
            .await?;
            i = j;
        }
        match self.send_again() {
            Some((AckStatus::Resequence, seq, next)) => renumber(cx, &self.peer, seq, next).await?,
            Some((_, seq, next)) => resend(cx, &self.peer, next, seq).await?,
            None => {}
        }
        Ok(())
    }
}

impl RecordAcks {
    /// What the last item asks, if it asks to number or send again: (status, its number,
    /// the partner's next).
    fn send_again(&self) -> Option<(AckStatus, u64, u64)> {
        self.items
            .last()
            .filter(|i| i.status.asks_again())
            .and_then(|i| i.next_seq.map(|n| (i.status, i.seq, n)))
    }
}

/// Marks the delivered messages to `peer` numbered `from` up to `until` (excluded)
/// undelivered, so that the deliverer sends them again in order: the partner lost them (it
/// was restored from an older backup) and expects `from` next. Every one of them must still
/// be in the outbox.
async fn resend(
    cx: &mut EffectCx<'_>,
    peer: &PartyCode,
    from: u64,
    until: u64,
) -> Result<(), GateError> {
    let (from, until) = (to_i64(from)?, to_i64(until)?);
    let marked = sqlx::query(
        "UPDATE outbox SET delivered_at = NULL, ack_status = NULL, ack_index = NULL \
         WHERE recipient = $1 AND seq >= $2 AND seq < $3 AND delivered_at IS NOT NULL",
    )
    .bind(peer.as_str())
    .bind(from)
    .bind(until)
    .execute(&mut **cx.tx)
    .await?
    .rows_affected();
    if i64::try_from(marked).ok() != Some(until - from) {
        return Err(GateError::Conflict(format!(
            "{peer} asks for the messages from {from} again, but only {marked} of the {} before {until} are delivered messages in the outbox",
            until - from
        )));
    }
    tracing::warn!(%peer, from, until, "the partner expects earlier messages (restored from an older backup?): sending them again");
    Ok(())
}

/// Moves the undelivered messages to `peer` numbered `from` and above to `next` and above,
/// in the same order: the partner applied other messages under those numbers (this node was
/// restored from an older backup), and never applies two under one number. Delivery is in
/// sequence order, so every message from `from` on is undelivered.
async fn renumber(
    cx: &mut EffectCx<'_>,
    peer: &PartyCode,
    from: u64,
    next: u64,
) -> Result<(), GateError> {
    let (from, shift) = (to_i64(from)?, to_i64(next - from)?);
    let delivered: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE recipient = $1 AND seq >= $2 AND delivered_at IS NOT NULL",
    )
    .bind(peer.as_str())
    .bind(from)
    .fetch_one(&mut **cx.tx)
    .await?;
    if delivered > 0 {
        return Err(GateError::Conflict(format!(
            "{peer} asks to number the messages from {from} again, but {delivered} of them were delivered"
        )));
    }
    // Through negative numbers, so that no two rows share a number at any point (the pair
    // (recipient, seq) is unique, and PostgreSQL checks it row by row).
    let moved = sqlx::query(
        "UPDATE outbox SET seq = -(seq + $3) \
         WHERE recipient = $1 AND seq >= $2 AND delivered_at IS NULL",
    )
    .bind(peer.as_str())
    .bind(from)
    .bind(shift)
    .execute(&mut **cx.tx)
    .await?
    .rows_affected();
    sqlx::query("UPDATE outbox SET seq = -seq WHERE recipient = $1 AND seq < 0")
        .bind(peer.as_str())
        .execute(&mut **cx.tx)
        .await?;
    tracing::warn!(%peer, from, next = from + shift, moved, "the partner had applied other messages under these sequence numbers (restored from an older backup?): pending messages numbered again");
    Ok(())
}

/// Record an envelope refused before its content was decided (always a deny).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectEnvelope {
    /// The claimed or pinned sender, when known.
    pub from: Option<PartyCode>,
    /// SHA-256 (hex) of the TLS client certificate, when one was presented.
    pub cert_sha256: Option<String>,
    /// The check that failed (`federation#signature`, …).
    pub rule: String,
    /// What was wrong, for the sender and the auditor.
    pub reason: String,
    /// `sha256:<hex>` of the body received.
    pub body_sha256: String,
}

impl GateCommand for RejectEnvelope {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::EnvelopeReject
    }

    fn subjects(&self) -> Vec<Subject> {
        match (&self.from, &self.cert_sha256) {
            (Some(p), _) => vec![Subject::new(SubjectKind::Peer, p.as_str())],
            (None, Some(c)) => vec![Subject::new(SubjectKind::Certificate, c)],
            (None, None) => vec![Subject::new(SubjectKind::Peer, "unidentified")],
        }
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        Ok(PayloadDigests::given([("body", self.body_sha256.clone())]))
    }

    /// A refused envelope is recorded whoever sent it (an unauthenticated caller too); the
    /// decision recorded is the refusal itself.
    fn role(
        &self,
        _subjects: &[Subject],
        _actor: &Actor,
        _party: &PartyCode,
        _now: Timestamp,
    ) -> Decision {
        Decision::permit("federation#record-refusal", "refusals are recorded", Vec::new())
    }

    async fn load(&self, _cx: &mut EffectCx<'_>) -> Result<(), GateError> {
        Ok(())
    }

    fn decide(&self, _cx: &DecideCx<'_>, _facts: &()) -> Ruling {
        Ruling::of(Decision::deny(&self.rule, self.reason.clone()))
    }

    async fn apply(self, _cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        Err(GateError::Internal("a refused envelope has no effect to apply".into()))
    }
}

/// Record that a partner's ledger showed inconsistent checkpoints to this node's witness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessAlarm {
    /// The partner whose ledger it is.
    pub log: PartyCode,
    /// `sha256:<hex>` of the last good checkpoint note seen.
    pub seen: String,
    /// `sha256:<hex>` of the checkpoint note that contradicts it.
    pub shown: String,
    /// What shows the contradiction.
    pub detail: String,
}

impl GateCommand for WitnessAlarm {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::WitnessAlarm
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Ledger, self.log.as_str())]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        let detail = digest_json(&serde_json::json!(self.detail))?;
        Ok(PayloadDigests::given([
            ("seen", self.seen.clone()),
            ("shown", self.shown.clone()),
            ("detail", detail),
        ]))
    }

    decided_by_role!();

    /// The alarm is the ledger entry itself; the evidence stays with the witness.
    async fn apply(self, _cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        Ok(())
    }
}

/// Where refused calls came from, as the ledger may name it: never an address, never text
/// the caller chose.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefusalSource {
    /// A network address, by its keyed hash ([`crate::Gate::source`]; an IPv6 address by its
    /// /64).
    Address(Sha256),
    /// A pinned partner (its refused batches).
    Peer(PartyCode),
    /// The sources of a window beyond the number the node keeps apart, together.
    Others,
}

/// The key of the keyed hashes of refused callers' addresses, derived from the node secret.
pub(crate) fn source_key(secret: &[u8; 32]) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(b"entente refusal source v1\0");
    h.update(secret);
    h.finalize().into()
}

impl RefusalSource {
    /// HMAC-SHA-256 under `key` of the address (4 bytes for IPv4, an IPv4-mapped IPv6
    /// address as IPv4, the first 8 bytes of any other IPv6 address: one /64 is one source).
    pub(crate) fn of_address(key: &[u8; 32], addr: std::net::IpAddr) -> RefusalSource {
        use hmac::Mac as _;
        let bytes: Vec<u8> = match addr.to_canonical() {
            std::net::IpAddr::V4(v4) => [&[4u8][..], &v4.octets()].concat(),
            std::net::IpAddr::V6(v6) => [&[6u8][..], &v6.octets()[..8]].concat(),
        };
        // HMAC takes a key of any length.
        let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => return RefusalSource::Others,
        };
        mac.update(&bytes);
        RefusalSource::Address(Sha256::from_bytes(mac.finalize().into_bytes().into()))
    }

    /// The subject of its entry.
    pub fn subject(&self) -> Subject {
        match self {
            RefusalSource::Address(d) => Subject::digest(SubjectKind::Source, d),
            RefusalSource::Peer(p) => Subject::new(SubjectKind::Peer, p.as_str()),
            RefusalSource::Others => Subject::new(SubjectKind::Source, "others"),
        }
    }
}

/// How many calls one rule refused on one route in a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusalCount {
    /// The rule that refused (`authn.required`, `federation#unpinned`, …): the node's own.
    pub rule: String,
    /// The route, as the node's router names it (`GET /api/v1/cases/{id}`): its template,
    /// never the path the caller sent.
    pub route: String,
    /// How many.
    pub count: u64,
}

/// Whether `s` may name a rule in a refusal count: the node's rule ids only.
pub fn is_rule_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".#_-".contains(&b))
}

/// Whether `s` may name a route in a refusal count: a method and a route template of the
/// node's routers (`{id}` where the caller's text was).
pub fn is_route_name(s: &str) -> bool {
    let Some((method, path)) = s.split_once(' ') else {
        return false;
    };
    (1..=10).contains(&method.len())
        && method.bytes().all(|b| b.is_ascii_uppercase())
        && (1..=120).contains(&path.len())
        && path.starts_with('/')
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/{}_.*-".contains(&b))
}

/// Most counts named in an entry's reason (all are in its digest).
const REASON_COUNTS: usize = 16;

/// Record, in one entry, the refusals of one source in one time window: the calls that no
/// authenticator admitted (the gate answers those with [`GateError::Unauthenticated`] and
/// records nothing) and the federation batches refused before any envelope was decided. The
/// node records it (the operator's role rule), counts per rule and route template in the
/// reason, their digest in the payload, the source as a keyed hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRefusals {
    /// Where the calls came from.
    pub source: RefusalSource,
    /// Start of the window.
    pub from: Timestamp,
    /// End of the window.
    pub until: Timestamp,
    /// The counts (at least one).
    pub counts: Vec<RefusalCount>,
}

impl RecordRefusals {
    fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.count).sum()
    }

    fn canonical(&self) -> serde_json::Value {
        let counts: Vec<serde_json::Value> = self
            .counts
            .iter()
            .map(|c| serde_json::json!({"rule": c.rule, "route": c.route, "count": c.count}))
            .collect();
        serde_json::json!({
            "source": self.source.subject().to_string(),
            "from": format!("{:.6}", self.from),
            "until": format!("{:.6}", self.until),
            "counts": counts,
        })
    }
}

impl GateCommand for RecordRefusals {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::RefusalsRecord
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![self.source.subject()]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([("refusals", self.canonical())])
    }

    fn validate(&self) -> Result<(), GateError> {
        if self.counts.is_empty() || self.until <= self.from {
            return Err(GateError::Invalid(
                "a refusal record holds at least one count over a window that ends after it starts"
                    .into(),
            ));
        }
        for c in &self.counts {
            if !is_rule_name(&c.rule) || !is_route_name(&c.route) {
                return Err(GateError::Invalid(
                    "a refusal count names one of the node's rules and route templates".into(),
                ));
            }
        }
        Ok(())
    }

    async fn load(&self, _cx: &mut EffectCx<'_>) -> Result<(), GateError> {
        Ok(())
    }

    /// The entry records the refusals themselves: a deny, by the rules that refused.
    fn decide(&self, _cx: &DecideCx<'_>, _facts: &()) -> Ruling {
        let mut rules: Vec<String> = self.counts.iter().map(|c| c.rule.clone()).collect();
        rules.sort();
        rules.dedup();
        let mut named: Vec<String> = self
            .counts
            .iter()
            .take(REASON_COUNTS)
            .map(|c| format!("{} {} on {}", c.count, c.rule, c.route))
            .collect();
        if self.counts.len() > REASON_COUNTS {
            named
                .push(format!("{} more counts (in the digest)", self.counts.len() - REASON_COUNTS));
        }
        let reason = format!(
            "{} calls refused from {} between {:.0} and {:.0}: {}",
            self.total(),
            self.source.subject(),
            self.from,
            self.until,
            named.join(", ")
        );
        Ruling::of(Decision { rules, ..Decision::deny("refusals", reason) })
    }

    async fn apply(self, _cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        Ok(())
    }
}
