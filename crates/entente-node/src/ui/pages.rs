//! The pages' templates (`crates/entente-node/templates/`) and the views they show, built from
//! what the gate returned. A view holds what the gate let through and nothing else: no
//! template filters by role.

use super::text::Text;
use askama::Template;
use entente_core::{CaseId, Stamp};
use entente_policy::request::{ClockStatus, Request};
use entente_store::cases::{CaseListing, CaseStatus};
use jiff::{SignedDuration, Timestamp};

/// What every page's frame shows.
#[derive(Debug)]
pub(crate) struct Chrome {
    /// This node's party.
    pub(crate) party: String,
    /// `name (role)` when signed in.
    pub(crate) who: Option<String>,
    /// The session's CSRF token (empty when signed out).
    pub(crate) csrf: String,
    /// Whether the navigation offers "open a case" (the gate still decides the opening).
    pub(crate) can_open_case: bool,
    /// Whether the navigation offers the case listing (the gate still decides the read).
    pub(crate) can_list_cases: bool,
    /// Whether case pages offer "draft a request" (the gate still decides the draft).
    pub(crate) can_draft_request: bool,
    /// A status message, announced by screen readers (`aria-live`).
    pub(crate) notice: Option<String>,
}

impl Chrome {
    /// The frame of a page shown signed out.
    pub(crate) fn anonymous(party: String) -> Chrome {
        Chrome {
            party,
            who: None,
            csrf: String::new(),
            can_open_case: false,
            can_list_cases: false,
            can_draft_request: false,
            notice: None,
        }
    }
}

#[derive(Template)]
#[template(path = "sign_in.html")]
pub(crate) struct SignInPage {
    pub(crate) t: &'static Text,
    pub(crate) chrome: Chrome,
    pub(crate) error: Option<String>,
}

#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage {
    pub(crate) t: &'static Text,
    pub(crate) chrome: Chrome,
    pub(crate) title: String,
    pub(crate) detail: String,
    pub(crate) ledger_index: Option<u64>,
    pub(crate) rules: Vec<String>,
}

/// One legal clock of an open request.
#[derive(Debug)]
pub(crate) struct ClockRow {
    pub(crate) request: String,
    pub(crate) kind: String,
    pub(crate) parties: String,
    pub(crate) state: String,
    pub(crate) clock: String,
    pub(crate) due: String,
    pub(crate) remaining: String,
    pub(crate) overdue: bool,
    pub(crate) rule: String,
    pub(crate) unverified: bool,
}

/// The open requests, one row per clock (a request without a running clock gets one row).
#[derive(Debug)]
pub(crate) struct RequestList {
    pub(crate) rows: Vec<ClockRow>,
    /// The entry that recorded the read.
    pub(crate) ledger_index: u64,
}

impl RequestList {
    pub(crate) fn new(requests: &[Request], ledger_index: u64, now: Timestamp) -> RequestList {
        let mut rows = Vec::new();
        for r in requests {
            let base = || ClockRow {
                request: r.id.clone(),
                kind: r.kind.as_str().to_owned(),
                parties: format!("{} → {}", r.from, r.to),
                state: r.state.to_string(),
                clock: "—".to_owned(),
                due: String::new(),
                remaining: String::new(),
                overdue: false,
                rule: String::new(),
                unverified: false,
            };
            if r.clocks.is_empty() {
                rows.push(base());
            }
            for c in &r.clocks {
                rows.push(ClockRow {
                    clock: format!("{} ({})", c.kind.name(), c.duration.text),
                    due: c.due.to_string(),
                    remaining: duration_words(c.remaining(now)),
                    overdue: c.status(now) == ClockStatus::Missed,
                    rule: c.basis.citation.clone(),
                    unverified: c.unverified(),
                    ..base()
                });
            }
        }
        RequestList { rows, ledger_index }
    }
}

/// A duration in days, hours and minutes (`3 d 4 h 5 min`; negative: overdue by as much).
pub(crate) fn duration_words(d: SignedDuration) -> String {
    let secs = d.as_secs().unsigned_abs();
    let (days, hours, mins) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    let text = if days > 0 {
        format!("{days} d {hours} h {mins} min")
    } else if hours > 0 {
        format!("{hours} h {mins} min")
    } else {
        format!("{mins} min")
    };
    if d.is_negative() { format!("−{text}") } else { text }
}

/// The ledger's health as its public endpoints show it (no case or personal data: read
/// without the gate, like `/ledger/checkpoint`).
#[derive(Debug)]
pub(crate) struct LedgerHealth {
    /// Entries in the ledger.
    pub(crate) size: u64,
    /// The latest signed checkpoint's body (origin, size, root hash), if there is one.
    pub(crate) checkpoint: Option<String>,
    /// The partners (witnesses) that cosigned the latest cosigned checkpoint, and its size.
    pub(crate) witnesses: Vec<String>,
    pub(crate) cosigned_size: Option<u64>,
}

impl LedgerHealth {
    /// From the store's head and the cosigned checkpoint file (a signed note: body, blank line,
    /// one `— name signature` line per signer, the node's own first).
    pub(crate) fn new(size: u64, note: Option<&[u8]>, cosigned: Option<&[u8]>) -> LedgerHealth {
        let body = |n: &[u8]| {
            let text = String::from_utf8_lossy(n).into_owned();
            text.split("\n\n").next().unwrap_or_default().to_owned()
        };
        let (mut witnesses, mut cosigned_size) = (Vec::new(), None);
        if let Some(c) = cosigned {
            let text = String::from_utf8_lossy(c);
            cosigned_size = text.lines().nth(1).and_then(|l| l.trim().parse().ok());
            witnesses = text
                .lines()
                .filter_map(|l| l.strip_prefix("\u{2014} "))
                .filter_map(|l| l.split_whitespace().next())
                .skip(1)
                .map(str::to_owned)
                .collect();
        }
        LedgerHealth { size, checkpoint: note.map(body), witnesses, cosigned_size }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
pub(crate) struct HomePage {
    pub(crate) t: &'static Text,
    pub(crate) chrome: Chrome,
    pub(crate) heading: String,
    pub(crate) intro: String,
    pub(crate) requests: Option<RequestList>,
    pub(crate) ledger: Option<LedgerHealth>,
}

#[derive(Template)]
#[template(path = "case_new.html")]
pub(crate) struct CaseNewPage {
    pub(crate) t: &'static Text,
    pub(crate) chrome: Chrome,
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) concepts: String,
    pub(crate) form_error: Option<String>,
    pub(crate) id_error: Option<String>,
    pub(crate) title_error: Option<String>,
    pub(crate) concepts_error: Option<String>,
}

impl CaseNewPage {
    pub(crate) fn empty(t: &'static Text, chrome: Chrome) -> CaseNewPage {
        CaseNewPage {
            t,
            chrome,
            id: String::new(),
            title: String::new(),
            concepts: String::new(),
            form_error: None,
            id_error: None,
            title_error: None,
            concepts_error: None,
        }
    }
}

/// The form's fields checked as the gate will check them, each problem set next to its field;
/// the command when there is none.
pub(crate) fn validate_case(page: &mut CaseNewPage) -> Option<entente_store::cases::OpenCase> {
    let id = CaseId::try_from(page.id.clone()).map_err(|e| page.id_error = Some(e.to_string()));
    let title_len = page.title.chars().count();
    if title_len == 0 || page.title.len() > 500 {
        page.title_error = Some(page.t.err_title_length.to_owned());
    }
    let concepts: Vec<String> = page
        .concepts
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    for c in &concepts {
        if let Err(e) = entente_core::ids::check_identifier("offence concept", c) {
            page.concepts_error = Some(e);
            break;
        }
    }
    let id = id.ok()?;
    if page.title_error.is_some() || page.concepts_error.is_some() {
        return None;
    }
    Some(entente_store::cases::OpenCase { id, title: page.title.clone(), concepts })
}

/// An instant as a page shows it: to the minute in UTC for people (`2026-12-04 03:28 UTC`),
/// in full for machines (`machine()`, for `<time datetime>`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct When(pub(crate) Stamp);

impl When {
    /// The full instant (RFC 3339, microseconds).
    pub(crate) fn machine(&self) -> String {
        self.0.to_string()
    }
}

impl std::fmt::Display for When {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.timestamp().strftime("%Y-%m-%d %H:%M UTC"))
    }
}

/// A case of the listing, as shown.
#[derive(Debug)]
pub(crate) struct CaseListRow {
    pub(crate) id: String,
    pub(crate) title: Option<String>,
    pub(crate) lead: String,
    pub(crate) led_here: bool,
    pub(crate) members: String,
    pub(crate) opened_at: When,
    pub(crate) open_requests: u64,
    pub(crate) overdue_requests: u64,
    pub(crate) next_due: Option<When>,
    pub(crate) next_due_request: String,
    /// The rule that set the next deadline, with its verification status.
    pub(crate) next_due_rule: String,
    pub(crate) remaining: String,
}

#[derive(Template)]
#[template(path = "case_list.html")]
pub(crate) struct CaseListPage {
    pub(crate) t: &'static Text,
    pub(crate) chrome: Chrome,
    pub(crate) rows: Vec<CaseListRow>,
    /// The link to the next page, if there is one.
    pub(crate) next: Option<String>,
    /// Whether this is a later page (a link back to the first).
    pub(crate) later: bool,
    /// The entry that recorded this view.
    pub(crate) access_index: u64,
}

impl CaseListPage {
    pub(crate) fn new(
        t: &'static Text,
        chrome: Chrome,
        l: &CaseListing,
        later: bool,
        access_index: u64,
        now: Timestamp,
    ) -> CaseListPage {
        let rows = l
            .cases
            .iter()
            .map(|c| CaseListRow {
                id: c.id.clone(),
                title: c.title.clone(),
                lead: c.lead.clone(),
                led_here: c.led_here,
                members: c.members.join(", "),
                opened_at: When(c.opened_at),
                open_requests: c.open_requests,
                overdue_requests: c.overdue_requests,
                next_due: c.next_due.as_ref().map(|n| When(n.due)),
                next_due_request: c
                    .next_due
                    .as_ref()
                    .map(|n| n.request.clone())
                    .unwrap_or_default(),
                next_due_rule: c
                    .next_due
                    .as_ref()
                    .map(|n| format!("{} ({})", n.rule, n.status))
                    .unwrap_or_default(),
                remaining: c
                    .next_due
                    .as_ref()
                    .map(|n| duration_words(n.due.timestamp().duration_since(now)))
                    .unwrap_or_default(),
            })
            .collect();
        // Case ids are identifiers (letters, digits, '.', '_', '-'): safe in a query string.
        let next = l.next_after.as_ref().map(|a| format!("/ui/cases?after={a}"));
        CaseListPage { t, chrome, rows, next, later, access_index }
    }
}

/// A member of a case, as shown.

#[derive(Debug)]
pub(crate) struct MemberRow {
    pub(crate) party: String,
    pub(crate) role: String,
    pub(crate) agreement: Option<String>,
    pub(crate) added_at: When,
}

/// A ledger entry on a case, as shown.
#[derive(Debug)]
pub(crate) struct TimelineRow {
    pub(crate) index: u64,
    pub(crate) time: String,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) decision: String,
}

/// A case, as shown.
#[derive(Debug)]
pub(crate) struct CaseView {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) concepts: Vec<String>,
    pub(crate) opened_by: String,
    pub(crate) opened_at: When,
}

#[derive(Template)]
#[template(path = "case.html")]
pub(crate) struct CasePage {
    pub(crate) t: &'static Text,
    pub(crate) chrome: Chrome,
    pub(crate) case: CaseView,
    pub(crate) members: Vec<MemberRow>,
    pub(crate) timeline: Vec<TimelineRow>,
    pub(crate) mirror: Option<String>,
    /// The case's requests, one row per legal clock (read in the same command as the case).
    pub(crate) requests: Option<RequestList>,
    /// The entry that recorded this view.
    pub(crate) access_index: u64,
}

impl CasePage {
    pub(crate) fn new(
        t: &'static Text,
        chrome: Chrome,
        s: &CaseStatus,
        access_index: u64,
        now: Timestamp,
    ) -> CasePage {
        CasePage {
            t,
            chrome,
            requests: Some(RequestList::new(&s.requests, access_index, now)),
            case: CaseView {
                id: s.case.id.clone(),
                title: s.case.title.clone(),
                concepts: s.case.concepts.clone(),
                opened_by: s.case.opened_by.clone(),
                opened_at: When(s.case.opened_at),
            },
            members: s
                .members
                .iter()
                .map(|m| MemberRow {
                    party: m.party.clone(),
                    role: m.role.clone(),
                    agreement: m.agreement.clone(),
                    added_at: When(m.added_at),
                })
                .collect(),
            timeline: s
                .timeline
                .iter()
                .map(|e| TimelineRow {
                    index: e.index,
                    time: e.time.clone(),
                    actor: e.actor.clone(),
                    action: e.action.clone(),
                    decision: e.decision.clone(),
                })
                .collect(),
            mirror: s.mirror.as_ref().map(|m| {
                format!(
                    "{} (entry {} of the lead: {}, {})",
                    m.lead, m.lead_index, m.change, m.updated_at
                )
            }),
            access_index,
        }
    }
}

/// One dual-criminality check, as shown.
#[derive(Debug)]
pub(crate) struct DcRow {
    pub(crate) provision: String,
    pub(crate) verdict: String,
    pub(crate) reason: String,
    pub(crate) open_facts: Vec<String>,
}

/// One issuing condition of an e-Evidence order, as shown.
#[derive(Debug)]
pub(crate) struct ConditionRow {
    pub(crate) category: String,
    pub(crate) outcome: String,
    pub(crate) reason: String,
}

/// One refusal ground the agreement lists.
#[derive(Debug)]
pub(crate) struct GroundRow {
    pub(crate) id: String,
    pub(crate) text: String,
    pub(crate) basis: String,
}

/// A request, as its central authority works on it: state, clocks, the incoming check, and
/// the events this node may record now (the gate decides each).
#[derive(Template)]
#[template(path = "request.html")]
pub(crate) struct RequestPage {
    pub(crate) t: &'static Text,
    pub(crate) chrome: Chrome,
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) parties: String,
    pub(crate) agreement: String,
    pub(crate) legal_basis: String,
    pub(crate) state: String,
    pub(crate) clocks: Vec<ClockRow>,
    pub(crate) history: Vec<(String, String)>,
    pub(crate) dc_required: bool,
    pub(crate) dc_basis: String,
    pub(crate) dc: Vec<DcRow>,
    pub(crate) conditions: Vec<ConditionRow>,
    pub(crate) grounds: Vec<GroundRow>,
    pub(crate) unverified: Vec<String>,
    pub(crate) events: Vec<&'static str>,
    /// The entry that recorded this view.
    pub(crate) access_index: u64,
}

impl RequestPage {
    #[expect(clippy::too_many_arguments, reason = "the page's sources, each once")]
    pub(crate) fn new(
        t: &'static Text,
        chrome: Chrome,
        r: &Request,
        check: Option<&entente_policy::incoming::IncomingCheck>,
        agreement: Option<&entente_policy::agreement::Agreement>,
        party: &entente_core::PartyCode,
        access_index: u64,
        now: Timestamp,
    ) -> RequestPage {
        let clocks = RequestList::new(std::slice::from_ref(r), access_index, now).rows;
        let dc = check
            .map(|c| {
                c.dual_criminality
                    .iter()
                    .map(|p| match &p.result {
                        Ok(d) => DcRow {
                            provision: p.provision.clone(),
                            verdict: d.verdict.as_str().to_owned(),
                            reason: d.reason.clone(),
                            open_facts: d.open_facts.clone(),
                        },
                        Err(e) => DcRow {
                            provision: p.provision.clone(),
                            verdict: "—".to_owned(),
                            reason: e.clone(),
                            open_facts: Vec::new(),
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        let conditions = check
            .map(|c| {
                c.order_conditions
                    .iter()
                    .map(|o| ConditionRow {
                        category: o.category.as_str().to_owned(),
                        outcome: o.outcome.to_owned(),
                        reason: o.reason.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let grounds = check
            .map(|c| {
                c.refusal_grounds
                    .iter()
                    .map(|g| GroundRow {
                        id: g.id.clone(),
                        text: g.text.clone(),
                        basis: format!("{} [{}]", g.basis.citation, g.basis.status),
                    })
                    .collect()
            })
            .unwrap_or_default();
        RequestPage {
            t,
            chrome,
            id: r.id.clone(),
            kind: r.kind.as_str().to_owned(),
            parties: format!("{} → {}", r.from, r.to),
            agreement: agreement.map_or(r.agreement.clone(), |a| format!("{} ({})", a.id, a.title)),
            legal_basis: format!("{} [{}]", r.rule.basis.citation, r.rule.basis.status),
            state: r.state.to_string(),
            clocks,
            history: r
                .history
                .iter()
                .map(|(e, at)| (e.name().to_owned(), at.to_string()))
                .collect(),
            dc_required: check.is_some_and(|c| c.dual_criminality_requirement.required),
            dc_basis: check
                .map(|c| c.dual_criminality_requirement.basis.clone())
                .unwrap_or_default(),
            dc,
            conditions,
            grounds,
            unverified: agreement.map(|a| a.unverified_basis(&r.from, &r.to)).unwrap_or_default(),
            events: r.events_open_to(party),
            access_index,
        }
    }
}
