//! `entente framework`: agreement files (treaties, protocols, regulations, bilateral MLA
//! treaties, MOUs, JIT agreements; the format is `docs/agreements.md`).
//!
//! Exit codes: 0 when every file is valid (for `gaps` and `explain`: when the analysis ran,
//! whatever it found); 2 when a file is missing, unreadable or invalid (each problem printed
//! as `file:line:col: field: message`) or an argument is bad; 1 if the shipped data does not
//! validate.

use clap::Subcommand;
use entente_console::{Exit, Failure, fail};
use entente_core::lexicon::{Lexicon, VerificationStatus};
use entente_core::{Obligation, Outcome, PartyCode};
use entente_policy::agreement::{
    Agreement, DataCategory, Purpose, RequestKind, builtin_agreements, parse_agreements,
};
use entente_policy::engine::{Engine, Flow, first_miss};
use entente_policy::gaps::{self, FlowReport, GapReport};
use std::io::Write as _;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub(crate) enum FrameworkCmd {
    /// Validate agreement files; print each problem as file:line:col: field: message
    Validate {
        /// Agreement files (TOML, see docs/agreements.md)
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the agreements shipped with Entente (data/agreements/)
    List,
    /// Conclude an agreement from a template (`template = true`): the template's terms with
    /// the parties' id, title and dates, validated, written to a new file
    ///
    /// A template is never in force; what the parties sign is. Put the result in
    /// DATA_DIR/agreements/ of each party's node. Exit 0 when written; 2 on a bad argument, a
    /// template that is not one, an existing output file or a result that does not validate.
    Conclude {
        /// The template: the id of a shipped agreement (e.g. jit-nl-de-template) or a file
        template: String,
        /// The concluded agreement's id
        #[arg(long)]
        id: String,
        /// Its title
        #[arg(long)]
        title: String,
        /// The day of signature, YYYY-MM-DD: the first day in force
        #[arg(long)]
        signed: String,
        /// The last day in force, YYYY-MM-DD (the end of a team's mandate)
        #[arg(long)]
        until: Option<String>,
        /// The file to write (must not exist)
        #[arg(long)]
        out: PathBuf,
    },
    /// Gap analysis: check every flow of a scenario (docs/scenarios.md) against the agreements
    ///
    /// Each flow comes out lawful (agreement, rule, deadline), lawful with warnings, or
    /// blocked (no agreement in force, dual criminality fails, category, purpose or offence
    /// not covered, request kind not provided, retention conflict, onward transfer needs
    /// consent or is forbidden). Exit 0 when the analysis ran, even if flows are blocked
    /// (a block is a finding); exit 2 on a bad scenario or agreement file.
    Gaps {
        /// The scenario file (TOML, see docs/scenarios.md)
        #[arg(long)]
        scenario: PathBuf,
        /// Use every *.toml agreement file in this directory instead of the shipped agreements
        #[arg(long)]
        agreements: Option<PathBuf>,
        /// Print the analysis as JSON
        #[arg(long)]
        json: bool,
    },
    /// Explain the decision on one data flow: permit or deny, and why
    ///
    /// The "actor, action, resource" map to: actor = the sending party (--from),
    /// action = the flow to --to for --purpose (answering --request-kind), resource = the
    /// datum (--category, originated by --originator, received under --origin-agreement).
    /// Prints the decision, the agreement and rule, the obligations and the conditions that
    /// would travel with the datum, or for a deny the reasons agreement by agreement.
    /// Exit 0 for a permit or a deny (the explanation is the result); 2 on bad arguments.
    Explain {
        /// The sending party, which holds the datum (actor)
        #[arg(long)]
        from: String,
        /// The receiving party
        #[arg(long)]
        to: String,
        /// The datum's category: subscriber, traffic, content, threat-intel,
        /// personal-data-of-third-parties, case-information
        #[arg(long)]
        category: String,
        /// The purpose: criminal-investigation, prosecution, incident-response,
        /// threat-intelligence, joint-investigation
        #[arg(long)]
        purpose: String,
        /// The party that originated the datum (default: --from)
        #[arg(long)]
        originator: Option<String>,
        /// The agreement the datum was received under (for an onward transfer)
        #[arg(long)]
        origin_agreement: Option<String>,
        /// The originator has consented to this onward transfer
        #[arg(long)]
        consent: bool,
        /// Offence concept of the case (repeatable; default: illegal-access)
        #[arg(long = "concept")]
        concepts: Vec<String>,
        /// The request kind answered: preservation, production, subscriber-data, traffic-data,
        /// emergency-disclosure, mla, jit-invitation
        #[arg(long)]
        request_kind: Option<String>,
        /// Urgent request: show the emergency deadline
        #[arg(long)]
        urgent: bool,
        /// The day of the flow, YYYY-MM-DD (decided at noon UTC; default: now)
        #[arg(long)]
        date: Option<String>,
        /// Use every *.toml agreement file in this directory instead of the shipped agreements
        #[arg(long)]
        agreements: Option<PathBuf>,
        /// Print the decision as JSON
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(cmd: FrameworkCmd) -> Result<(), Failure> {
    let lexicon = Lexicon::builtin().map_err(|e| fail(Exit::Failed, e))?;
    match cmd {
        FrameworkCmd::Validate { files } => validate(&lexicon, &files),
        FrameworkCmd::List => {
            let all = builtin_agreements(&lexicon).map_err(|e| fail(Exit::Failed, e))?;
            print(&list(&all))
        }
        FrameworkCmd::Conclude { template, id, title, signed, until, out } => {
            conclude_cmd(&lexicon, &template, &id, &title, &signed, until.as_deref(), &out)
        }
        FrameworkCmd::Gaps { scenario, agreements, json } => {
            gaps_cmd(&lexicon, &scenario, agreements.as_deref(), json)
        }
        FrameworkCmd::Explain {
            from,
            to,
            category,
            purpose,
            originator,
            origin_agreement,
            consent,
            concepts,
            request_kind,
            urgent,
            date,
            agreements,
            json,
        } => {
            let args = ExplainArgs {
                from,
                to,
                category,
                purpose,
                originator,
                origin_agreement,
                consent,
                concepts,
                request_kind,
                urgent,
                date,
                json,
            };
            explain(&lexicon, &args, agreements.as_deref())
        }
    }
}

fn conclude_cmd(
    lexicon: &Lexicon,
    template: &str,
    id: &str,
    title: &str,
    signed: &str,
    until: Option<&str>,
    out: &Path,
) -> Result<(), Failure> {
    let day = |flag: &str, v: &str| {
        v.parse::<jiff::civil::Date>().ok().filter(|_| v.len() == 10).ok_or_else(|| {
            fail(Exit::BadInput, format!("{flag} {v}: expected a day as YYYY-MM-DD"))
        })
    };
    let signed = day("--signed", signed)?;
    let until = until.map(|u| day("--until", u)).transpose()?;
    if until.is_some_and(|u| u < signed) {
        return Err(fail(Exit::BadInput, "--until: the last day in force is before --signed"));
    }
    let (file, text) = match entente_policy::agreement::builtin_files()
        .iter()
        .find(|(f, _)| Path::new(f).file_stem().and_then(|s| s.to_str()) == Some(template))
    {
        Some((f, t)) => ((*f).to_owned(), (*t).to_owned()),
        None => {
            let text = std::fs::read_to_string(template).map_err(|e| {
                fail(
                    Exit::BadInput,
                    format!(
                        "{template}: neither a shipped agreement (entente framework list) nor a readable file: {e}"
                    ),
                )
            })?;
            (template.to_owned(), text)
        }
    };
    let conclusion = entente_policy::agreement::Conclusion { id, title, signed, until };
    let concluded = entente_policy::agreement::conclude(&file, &text, lexicon, &conclusion)
        .map_err(|e| fail(Exit::BadInput, e))?;
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).open(out).map_err(|e| {
            fail(
                Exit::BadInput,
                format!("{}: cannot create the agreement file: {e}", out.display()),
            )
        })?;
    f.write_all(concluded.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| fail(Exit::Failed, format!("{}: {e}", out.display())))?;
    print(&format!(
        "concluded {id} from {file}: in force from {signed}{}; written to {}",
        until.map(|u| format!(" until {u}")).unwrap_or_default(),
        out.display()
    ))
}

/// The agreements to decide with: the shipped ones, or every `*.toml` in `dir` (validated;
/// problems printed as `framework validate` prints them, exit 2).
fn load_agreements(lexicon: &Lexicon, dir: Option<&Path>) -> Result<Vec<Agreement>, Failure> {
    let Some(dir) = dir else {
        return builtin_agreements(lexicon).map_err(|e| fail(Exit::Failed, e));
    };
    let entries = std::fs::read_dir(dir).map_err(|e| {
        fail(
            Exit::BadInput,
            format!("{}: cannot read the agreements directory: {e}", dir.display()),
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(fail(
            Exit::BadInput,
            format!("{}: no *.toml agreement file in the directory", dir.display()),
        ));
    }
    let mut texts: Vec<(String, String)> = Vec::new();
    let mut problems = Vec::new();
    for f in &files {
        let name = f.display().to_string();
        match std::fs::read_to_string(f) {
            Ok(t) => texts.push((name, t)),
            Err(e) => problems.push(format!("{name}: cannot read the file: {e}")),
        }
    }
    let pairs: Vec<(&str, &str)> = texts.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    match parse_agreements(&pairs, lexicon) {
        Ok(all) if problems.is_empty() => Ok(all),
        Ok(_) => report(problems, files.len()).map(|()| Vec::new()),
        Err(errors) => {
            problems.extend(errors.0.iter().map(ToString::to_string));
            report(problems, files.len()).map(|()| Vec::new())
        }
    }
}

fn compile(agreements: Vec<Agreement>) -> Result<Engine, Failure> {
    Engine::compile(agreements)
        .map_err(|e| fail(Exit::BadInput, format!("the agreements cannot be compiled: {e}")))
}

fn gaps_cmd(
    lexicon: &Lexicon,
    scenario: &Path,
    agreements: Option<&Path>,
    json: bool,
) -> Result<(), Failure> {
    let agreements = load_agreements(lexicon, agreements)?;
    let name = scenario.display().to_string();
    let text = std::fs::read_to_string(scenario)
        .map_err(|e| fail(Exit::BadInput, format!("{name}: cannot read the scenario: {e}")))?;
    let parsed = gaps::parse_scenario(&name, &text, lexicon, &agreements);
    let scenario = match parsed {
        Ok(s) => s,
        Err(errors) => {
            let mut stderr = std::io::stderr().lock();
            for e in &errors.0 {
                let _ = writeln!(stderr, "{e}");
            }
            let n = errors.0.len();
            return Err(fail(
                Exit::BadInput,
                format!("{n} problem{} in the scenario {name}", if n == 1 { "" } else { "s" }),
            ));
        }
    };
    let engine = compile(agreements)?;
    let report = gaps::analyze(&scenario, &engine, lexicon);
    if json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| fail(Exit::Failed, format!("cannot encode the report: {e}")))?;
        return print(&text);
    }
    print(&gaps_text(&report))
}

fn flow_label(f: &FlowReport) -> String {
    let mut s = format!("{} → {} {}", f.from, f.to, f.category);
    let mut extra = Vec::new();
    if let Some(k) = f.request_kind {
        extra.push(if f.urgent { format!("{k}, urgent") } else { k.to_string() });
    }
    if f.originator != f.from && f.originator != f.to {
        extra.push(format!(
            "from {}{}",
            f.originator,
            if f.consent { " with consent" } else { " no consent" }
        ));
    }
    if !extra.is_empty() {
        s.push_str(&format!(" ({})", extra.join("; ")));
    }
    s
}

fn gaps_text(r: &GapReport) -> String {
    let mut out = vec![
        format!("scenario {}: {}", r.scenario, r.title),
        format!(
            "date {} (decided at noon UTC); requesting {}; offences {}",
            r.date,
            r.requesting,
            if r.offences.is_empty() {
                "none".to_owned()
            } else {
                r.offences
                    .iter()
                    .map(|o| format!("{} {} [{}]", o.party, o.citation, o.concepts.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        ),
        format!("agreements: {}", r.agreements.join(", ")),
        String::new(),
    ];
    let headers = ["#", "flow", "purpose", "verdict", "agreement#rule", "deadline"];
    let rows: Vec<Vec<String>> = r
        .flows
        .iter()
        .map(|f| {
            vec![
                f.index.to_string(),
                flow_label(f),
                f.purpose.to_string(),
                if f.verdict == gaps::FlowVerdict::Blocked {
                    format!(
                        "blocked: {}",
                        f.blocked_by.iter().map(|b| b.as_str()).collect::<Vec<_>>().join(", ")
                    )
                } else {
                    f.verdict.to_string()
                },
                if f.rules.is_empty() || f.rules == ["default-deny"] {
                    "-".to_owned()
                } else {
                    f.rules.join(" + ")
                },
                f.deadline.as_ref().map_or_else(|| "-".to_owned(), gaps::Deadline::short),
            ]
        })
        .collect();
    out.extend(table(&headers, &rows));
    out.push(String::new());
    for f in &r.flows {
        if f.reasons.is_empty() && f.warnings.is_empty() {
            continue;
        }
        out.push(format!("{}. {} — {}", f.index, flow_label(f), f.verdict));
        for reason in &f.reasons {
            out.push(format!("     {reason}"));
        }
        for w in &f.warnings {
            out.push(format!("     warning: {w}"));
        }
    }
    out.push(String::new());
    out.push(r.summary.to_string());
    out.join("\n")
}

/// Arguments of `framework explain`.
struct ExplainArgs {
    from: String,
    to: String,
    category: String,
    purpose: String,
    originator: Option<String>,
    origin_agreement: Option<String>,
    consent: bool,
    concepts: Vec<String>,
    request_kind: Option<String>,
    urgent: bool,
    date: Option<String>,
    json: bool,
}

fn party(flag: &str, v: &str) -> Result<PartyCode, Failure> {
    v.parse::<PartyCode>().map_err(|e| fail(Exit::BadInput, format!("--{flag}: found `{v}`: {e}")))
}

fn named<T: Copy>(
    flag: &str,
    v: &str,
    all: &[T],
    as_str: fn(T) -> &'static str,
) -> Result<T, Failure> {
    all.iter().copied().find(|x| as_str(*x) == v).ok_or_else(|| {
        fail(
            Exit::BadInput,
            format!(
                "--{flag}: found `{v}`; expected one of: {}",
                all.iter().map(|x| as_str(*x)).collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

fn obligation_text(o: &Obligation) -> String {
    match o {
        Obligation::RetainUntil { until } => format!("retain until {until}, then destroy"),
        Obligation::Minimize { field, transform } => {
            format!("minimize field `{field}`: {transform}")
        }
        Obligation::NoOnwardTransferWithoutConsent { of } => {
            format!("no onward transfer without the consent of {of}")
        }
        Obligation::NoCommercialUse => "no commercial use".to_owned(),
        Obligation::Notify { party } => format!("notify {party}"),
    }
}

fn explain(lexicon: &Lexicon, args: &ExplainArgs, dir: Option<&Path>) -> Result<(), Failure> {
    let from = party("from", &args.from)?;
    let to = party("to", &args.to)?;
    let originator = match &args.originator {
        Some(o) => party("originator", o)?,
        None => from.clone(),
    };
    let category = named("category", &args.category, DataCategory::ALL, DataCategory::as_str)?;
    let purpose = named("purpose", &args.purpose, Purpose::ALL, Purpose::as_str)?;
    let request_kind = match &args.request_kind {
        Some(k) => Some(named("request-kind", k, RequestKind::ALL, RequestKind::as_str)?),
        None => None,
    };
    let concepts: Vec<String> = if args.concepts.is_empty() {
        vec!["illegal-access".to_owned()]
    } else {
        args.concepts.clone()
    };
    for c in &concepts {
        lexicon.concept(c).map_err(|e| fail(Exit::BadInput, format!("--concept: {e}")))?;
    }
    let at = match &args.date {
        Some(d) => d
            .parse::<jiff::civil::Date>()
            .and_then(|d| d.at(12, 0, 0, 0).to_zoned(jiff::tz::TimeZone::UTC))
            .map(|z| z.timestamp())
            .map_err(|e| {
                fail(Exit::BadInput, format!("--date: found `{d}`: {e}; expected YYYY-MM-DD"))
            })?,
        None => jiff::Timestamp::now(),
    };
    let agreements = load_agreements(lexicon, dir)?;
    if let Some(o) = &args.origin_agreement
        && !agreements.iter().any(|a| &a.id == o)
    {
        return Err(fail(
            Exit::BadInput,
            format!(
                "--origin-agreement: found `{o}`; expected the id of a loaded agreement: {}",
                agreements.iter().map(|a| a.id.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let engine = compile(agreements)?;
    let consents: Vec<PartyCode> = if args.consent { vec![originator.clone()] } else { Vec::new() };
    let flow = Flow {
        from: &from,
        to: &to,
        originator: &originator,
        origin_agreement: args.origin_agreement.as_deref(),
        category,
        purpose,
        concepts: &concepts,
        request_kind,
        consents: &consents,
    };
    let d = engine.decide_flow(&flow, at);
    let day = at.to_zoned(jiff::tz::TimeZone::UTC).date();
    let per_agreement: Vec<(String, String)> = engine
        .agreements()
        .iter()
        .map(|a| (a.id.clone(), first_miss(a, &flow, day).unwrap_or("covers the flow").to_owned()))
        .collect();
    let grounding = d.agreement.as_deref().and_then(|id| engine.agreement(id));
    let deadline = match (grounding, request_kind) {
        (Some(a), Some(k)) => gaps::deadline(a, k, args.urgent, at, &to),
        _ => None,
    };
    let permit = d.decision.outcome == Outcome::Permit;
    if args.json {
        let value = serde_json::json!({
            "flow": {
                "from": from, "to": to, "originator": originator,
                "origin_agreement": args.origin_agreement, "category": category,
                "purpose": purpose, "concepts": concepts, "request_kind": request_kind,
                "consents": consents, "at": at.to_string(),
            },
            "decision": d.decision,
            "agreement": d.agreement,
            "conditions": d.conditions,
            "deadline": deadline,
            "agreements": per_agreement.iter().map(|(id, m)| serde_json::json!({"id": id, "first_miss": m})).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&value)
            .map_err(|e| fail(Exit::Failed, format!("cannot encode the decision: {e}")))?;
        return print(&text);
    }
    let mut out = vec![
        format!(
            "flow: {from} → {to}, {category} (originated by {originator}{}), purpose {purpose}, offences [{}]{}, at {at}",
            args.origin_agreement
                .as_deref()
                .map(|o| format!(", received under {o}"))
                .unwrap_or_default(),
            concepts.join(", "),
            request_kind.map(|k| format!(", answering a {k} request")).unwrap_or_default(),
        ),
        format!("decision: {}", if permit { "PERMIT" } else { "DENY" }),
        format!("rule: {}", d.decision.rules.join(" + ")),
        format!("reason: {}", d.decision.reason),
    ];
    if !d.decision.unverified_basis.is_empty() {
        out.push("UNVERIFIED legal basis (status U: check before relying on it):".to_owned());
        out.extend(d.decision.unverified_basis.iter().map(|c| format!("  - {c}")));
    }
    if permit {
        if let Some(a) = grounding {
            out.push(format!("agreement: {} ({}, {})", a.id, a.title, a.kind));
        }
        if let Some(dl) = &deadline {
            out.push(format!("deadline: {} — {}", dl.short(), dl.citation));
            if let Some(r) = &dl.rule {
                out.push(format!("deadline rule: {r}"));
            }
            if let Some(n) = &dl.note {
                out.push(format!("deadline note: {n}"));
            }
        }
        out.push("obligations:".to_owned());
        if d.decision.obligations.is_empty() {
            out.push("  (none)".to_owned());
        }
        out.extend(d.decision.obligations.iter().map(|o| format!("  - {}", obligation_text(o))));
        if let Some(c) = &d.conditions {
            out.push("conditions that travel with the datum:".to_owned());
            out.push(format!("  originator {}, agreement {}", c.originator, c.agreement));
            out.push(format!(
                "  purposes: {}",
                c.purposes.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
            ));
            out.push(format!(
                "  retain until: {}",
                c.retain_until.as_deref().unwrap_or("no limit")
            ));
            out.push(format!("  onward transfer: {}", c.onward_transfer));
            out.push(format!("  commercial use prohibited: {}", c.commercial_use_prohibited));
            if !c.conditions.is_empty() {
                out.push(format!("  clauses: {}", c.conditions.join(", ")));
            }
        }
    }
    out.push(
        if permit {
            "agreement by agreement (the most specific instrument that covers the flow grounds it):"
        } else {
            "agreement by agreement:"
        }
        .to_owned(),
    );
    {
        for (id, miss) in &per_agreement {
            let forbids: Vec<&String> = d
                .decision
                .rules
                .iter()
                .filter(|r| r.starts_with(&format!("{id}#")) && !r.ends_with("#flow"))
                .collect();
            let tail = if forbids.is_empty() {
                String::new()
            } else {
                format!(
                    "; forbidden by {}",
                    forbids.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                )
            };
            out.push(format!("  {id}: {miss}{tail}"));
        }
    }
    print(&out.join("\n"))
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (cell, w) in cells.iter().zip(&widths) {
            l.push_str(cell);
            l.push_str(&" ".repeat(w.saturating_sub(cell.chars().count()) + 2));
        }
        l.trim_end().to_owned()
    };
    let mut out = vec![
        line(&headers.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()),
        line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>()),
    ];
    out.extend(rows.iter().map(|r| line(r)));
    out
}

fn validate(lexicon: &Lexicon, files: &[PathBuf]) -> Result<(), Failure> {
    let mut texts: Vec<(String, String)> = Vec::new();
    let mut unreadable = Vec::new();
    for f in files {
        let name = f.display().to_string();
        match std::fs::read_to_string(f) {
            Ok(t) => texts.push((name, t)),
            Err(e) => unreadable.push(format!("{name}: cannot read the file: {e}")),
        }
    }
    let pairs: Vec<(&str, &str)> = texts.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let result = parse_agreements(&pairs, lexicon);
    let mut problems = unreadable;
    match result {
        Ok(all) if problems.is_empty() => {
            let lines: Vec<String> = all.iter().map(summary).collect();
            print(&lines.join("\n"))
        }
        Ok(_) => report(problems, files.len()),
        Err(errors) => {
            problems.extend(errors.0.iter().map(ToString::to_string));
            report(problems, files.len())
        }
    }
}

fn report(problems: Vec<String>, files: usize) -> Result<(), Failure> {
    let mut stderr = std::io::stderr().lock();
    for p in &problems {
        // Nothing more useful to do if stderr is gone; the exit code still says it.
        let _ = writeln!(stderr, "{p}");
    }
    let n = problems.len();
    Err(fail(
        Exit::BadInput,
        format!(
            "{n} problem{} in {files} agreement file{}",
            if n == 1 { "" } else { "s" },
            if files == 1 { "" } else { "s" }
        ),
    ))
}

fn parties(a: &Agreement) -> String {
    a.parties.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" ")
}

fn in_force(a: &Agreement) -> String {
    if a.template {
        return "template (never)".to_owned();
    }
    if !a.ratifications.is_empty() {
        let parties: Vec<String> = a
            .ratifications
            .iter()
            .map(|r| match r.in_force {
                Some(d) => format!("for {} from {d}", r.party),
                None => format!("not for {}", r.party),
            })
            .collect();
        return parties.join(", ");
    }
    match a.in_force_until {
        Some(u) => format!("{} to {u}", a.in_force_from),
        None => format!("from {}", a.in_force_from),
    }
}

fn categories(a: &Agreement) -> String {
    a.categories.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
}

/// Citations (legal basis, requests, grounds, conditions) whose status is U.
fn unverified(a: &Agreement) -> usize {
    a.legal_basis
        .iter()
        .chain(a.requests.iter().map(|r| &r.basis))
        .chain(a.refusal_grounds.iter().map(|g| &g.basis))
        .chain(a.travelling_conditions.iter().map(|c| &c.basis))
        .chain(a.ratifications.iter().map(|r| &r.basis))
        .chain(a.residency.iter().map(|r| &r.basis))
        .filter(|c| c.status == VerificationStatus::U)
        .count()
}

fn summary(a: &Agreement) -> String {
    format!(
        "ok {}: {}; parties {}; in force {}; categories {}; {} unverified citation{}",
        a.id,
        a.kind,
        parties(a),
        in_force(a),
        categories(a),
        unverified(a),
        if unverified(a) == 1 { "" } else { "s" }
    )
}

fn list(all: &[Agreement]) -> String {
    let headers = ["id", "kind", "parties", "in force", "requests", "U", "categories"];
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|a| {
            vec![
                a.id.clone(),
                a.kind.to_string(),
                parties(a),
                in_force(a),
                a.requests.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>().join(", "),
                unverified(a).to_string(),
                categories(a),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (cell, w) in cells.iter().zip(&widths) {
            l.push_str(cell);
            l.push_str(&" ".repeat(w.saturating_sub(cell.chars().count()) + 2));
        }
        l.trim_end().to_owned()
    };
    let mut out = vec![
        line(&headers.map(str::to_owned)),
        line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>()),
    ];
    out.extend(rows.iter().map(|r| line(r)));
    out.push(String::new());
    out.push("U: citations with status U (unverified; see docs/agreements.md)".to_owned());
    out.join("\n")
}

fn print(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{}", text.trim_end()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(fail(Exit::Failed, format!("cannot write to standard output: {e}"))),
    }
}
