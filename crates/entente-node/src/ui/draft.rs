//! Drafting a cross-border request from a case's page: the form offers only the legal bases
//! that could ground a request today (an agreement in force between this party and the
//! requested one, not a template, providing that kind), and this party's provisions from the
//! lexicon; the draft goes through the gate as `request.create`, exactly like
//! `POST /api/v1/requests`. The request's page then offers `submit`.

use super::pages::Chrome;
use super::text::Text;
use super::{Refusal, html, parse_id, refusal_page, signed_form, signed_in, through_gate, words};
use crate::server::AppState;
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use entente_core::lexicon::VerificationStatus;
use entente_core::{CaseId, PartyCode, RequestId};
use entente_policy::agreement::{Agreement, RequestKind};
use entente_store::GateError;
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::Arc;

use super::session::Sessions;

/// One legal basis the form offers: an agreement, a kind of request it provides, the party.
pub(crate) struct BasisOption {
    /// The form value: `agreement/kind/party`.
    pub(crate) value: String,
    pub(crate) agreement: String,
    pub(crate) kind: String,
    /// The rule's period or deadline as the agreement writes it (`P10D`), or empty.
    pub(crate) period: String,
    /// The rule's citation.
    pub(crate) basis: String,
    /// Its verification status (`V1`, `V2`, `P`, `U`).
    pub(crate) status: &'static str,
    /// The rule's citation or the instrument's standing rests on an unverified fact.
    pub(crate) unverified: bool,
    pub(crate) checked: bool,
}

/// The bases offered for one requested party.
pub(crate) struct PartyGroup {
    pub(crate) party: String,
    pub(crate) options: Vec<BasisOption>,
}

/// One of this party's provisions (lexicon), offered as a checkbox.
pub(crate) struct ProvisionOption {
    pub(crate) citation: String,
    pub(crate) description: String,
    /// The provision's verification status.
    pub(crate) status: &'static str,
    pub(crate) unverified: bool,
    pub(crate) checked: bool,
}

#[derive(askama::Template)]
#[template(path = "request_new.html")]
pub(crate) struct RequestNewPage {
    pub(crate) t: &'static Text,
    pub(crate) chrome: Chrome,
    pub(crate) case_id: String,
    pub(crate) id: String,
    pub(crate) emergency: bool,
    pub(crate) groups: Vec<PartyGroup>,
    pub(crate) provisions: Vec<ProvisionOption>,
    pub(crate) form_error: Option<String>,
    pub(crate) id_error: Option<String>,
    pub(crate) basis_error: Option<String>,
}

/// The bases that could ground a request from `own` on `now`'s date (UTC), grouped by the
/// requested party in code order; `chosen` is checked.
pub(crate) fn basis_groups(
    agreements: &[Agreement],
    own: &PartyCode,
    now: Timestamp,
    chosen: &str,
) -> Vec<PartyGroup> {
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let mut groups: Vec<PartyGroup> = Vec::new();
    let mut parties: Vec<&PartyCode> =
        agreements.iter().flat_map(|a| a.parties.iter()).filter(|p| *p != own).collect();
    parties.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    parties.dedup();
    for to in parties {
        let mut options = Vec::new();
        for a in agreements {
            // Binding both, in force for each on its own date; never a template.
            if !a.in_force_between(own, to, today) {
                continue;
            }
            let standing_unverified = !a.unverified_basis(own, to).is_empty();
            for rule in &a.requests {
                let value = format!("{}/{}/{}", a.id, rule.kind, to);
                let period = rule
                    .deadline
                    .as_ref()
                    .or(rule.period.as_ref())
                    .map(|d| d.text.clone())
                    .unwrap_or_default();
                options.push(BasisOption {
                    checked: value == chosen,
                    value,
                    agreement: a.id.clone(),
                    kind: rule.kind.to_string(),
                    period,
                    basis: rule.basis.citation.clone(),
                    status: rule.basis.status.as_str(),
                    unverified: standing_unverified || rule.basis.status == VerificationStatus::U,
                });
            }
        }
        if !options.is_empty() {
            groups.push(PartyGroup { party: to.to_string(), options });
        }
    }
    groups
}

/// A basis value of the form, read back: the agreement, the kind and the requested party, each
/// one the form could have offered (the gate checks the legal basis again).
pub(crate) fn parse_basis(value: &str) -> Result<(String, RequestKind, PartyCode), String> {
    let mut parts = value.split('/');
    let (Some(agreement), Some(kind), Some(to), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("choose one of the legal bases listed".to_owned());
    };
    let kind = RequestKind::ALL
        .iter()
        .copied()
        .find(|k| k.as_str() == kind)
        .ok_or_else(|| format!("`{kind}` is not a kind of request"))?;
    let to: PartyCode = to.parse().map_err(|e| format!("requested party: {e}"))?;
    entente_core::ids::check_identifier("agreement id", agreement)?;
    Ok((agreement.to_owned(), kind, to))
}

/// This party's provisions in the lexicon, in its order; those whose index is in `checked`
/// are checked.
fn provision_options(state: &AppState, checked: &[usize]) -> Vec<ProvisionOption> {
    let Some(lexicon) = state.lexicon.as_ref() else { return Vec::new() };
    let Ok(j) = lexicon.jurisdiction(state.node.config.party.as_str()) else { return Vec::new() };
    j.provisions
        .iter()
        .enumerate()
        .map(|(i, p)| ProvisionOption {
            citation: p.citation.clone(),
            description: p.description.clone(),
            status: p.status.as_str(),
            unverified: p.has_unverified_fact(),
            checked: checked.contains(&i),
        })
        .collect()
}

fn empty_page(
    state: &AppState,
    chrome: Chrome,
    case_id: String,
    chosen: &str,
    checked: &[usize],
) -> RequestNewPage {
    RequestNewPage {
        t: words(),
        chrome,
        groups: basis_groups(
            state.node.gate.engine().agreements(),
            &state.node.config.party,
            Timestamp::now(),
            chosen,
        ),
        provisions: provision_options(state, checked),
        case_id,
        id: String::new(),
        emergency: false,
        form_error: None,
        id_error: None,
        basis_error: None,
    }
}

pub(crate) async fn request_new(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Path(case): Path<String>,
) -> Response {
    let signed = match signed_in(&state, &sessions, &headers).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let case_id = match parse_id::<CaseId>(&state, &signed, case) {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let page = empty_page(&state, signed.chrome(&state, None), case_id.to_string(), "", &[]);
    html(StatusCode::OK, &page)
}

pub(crate) async fn request_draft(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Path(case): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let signed = match signed_form(&state, &sessions, &headers, &form).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let case_id = match parse_id::<CaseId>(&state, &signed, case) {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let t = words();
    let chosen = form.get("basis").map(|v| v.trim().to_owned()).unwrap_or_default();
    // Indices beyond the lexicon's provisions match none of them.
    let checked: Vec<usize> = form
        .iter()
        .filter(|(_, v)| v.as_str() == "1")
        .filter_map(|(k, _)| k.strip_prefix("provision-")?.parse::<usize>().ok())
        .collect();
    let mut page =
        empty_page(&state, signed.chrome(&state, None), case_id.to_string(), &chosen, &checked);
    page.id = form.get("id").map(|v| v.trim().to_owned()).unwrap_or_default();
    page.emergency = form.get("emergency").is_some_and(|v| v == "1");
    let id = RequestId::try_from(page.id.clone()).map_err(|e| page.id_error = Some(e.to_string()));
    let basis = if chosen.is_empty() {
        page.basis_error = Some(t.err_basis_missing.to_owned());
        None
    } else {
        parse_basis(&chosen).map_err(|e| page.basis_error = Some(e)).ok()
    };
    let (Ok(id), Some((agreement, kind, to))) = (id, basis) else {
        page.form_error = Some(t.form_has_errors.to_owned());
        return html(StatusCode::UNPROCESSABLE_ENTITY, &page);
    };
    let provisions: Vec<String> =
        page.provisions.iter().filter(|p| p.checked).map(|p| p.citation.clone()).collect();
    let command = entente_store::requests::CreateRequest {
        id: id.clone(),
        case_id,
        kind,
        agreement,
        to,
        emergency: page.emergency,
        provisions,
    };
    match through_gate(&state, &signed, command).await {
        Ok((index, _)) => {
            Redirect::to(&format!("/ui/requests/{id}?drafted={index}")).into_response()
        }
        Err(Refusal::Failed(GateError::Conflict(_))) => {
            page.id_error = Some(t.err_request_exists.to_owned());
            page.form_error = Some(t.form_has_errors.to_owned());
            html(StatusCode::CONFLICT, &page)
        }
        Err(Refusal::Failed(GateError::Invalid(d))) => {
            // The legal basis as the gate checked it (in force, parties bound, kind provided).
            page.basis_error = Some(d);
            page.form_error = Some(t.form_has_errors.to_owned());
            html(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(Refusal::Failed(GateError::NotFound(what))) => {
            page.form_error = Some(format!("{what} not found"));
            html(StatusCode::NOT_FOUND, &page)
        }
        Err(r) => refusal_page(&state, &signed, r),
    }
}
