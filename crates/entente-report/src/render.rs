//! Reports as people read them: self-contained HTML (no script, no font, nothing fetched)
//! with SVG charts beside the numbers, and CSV for machines.

use crate::public::{PublicReport, share_text};
use crate::stats::{Cell, Statistics, Table};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const PALETTE: [&str; 8] =
    ["#1f5fa8", "#b8550b", "#2e7d32", "#8e24aa", "#00838f", "#ad1457", "#5d4037", "#455a64"];

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a;line-height:1.45}\
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:.6rem 0}th,td{border:1px solid #bbb;padding:.25rem .55rem;text-align:left;vertical-align:top}\
th{background:#eef2f7}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.pair{display:flex;flex-wrap:wrap;gap:2rem;align-items:flex-start}.note{color:#444;font-size:.92rem}\
.cite{font-size:.85rem;color:#333}code{background:#f3f3f3;padding:0 .2rem}svg text{font-size:12px;fill:#1a1a1a}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>\n",
        esc(title)
    )
}

/// A Sankey-style diagram of flows `(from, to, count)`: origins left, destinations right,
/// each band as wide as its count.
pub fn sankey(id: &str, title: &str, flows: &[(String, String, u64)]) -> String {
    let flows: Vec<&(String, String, u64)> = flows.iter().filter(|f| f.2 > 0).collect();
    let total: u64 = flows.iter().map(|f| f.2).sum();
    let (w, h, pad) = (560.0_f64, 320.0_f64, 24.0_f64);
    let mut svg = format!(
        "<svg id=\"{id}\" role=\"img\" aria-labelledby=\"{id}-t\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\"><title id=\"{id}-t\">{}</title>",
        esc(title)
    );
    if total == 0 {
        svg.push_str("<text x=\"20\" y=\"40\">nothing to show in this period</text></svg>");
        return svg;
    }
    let mut left: BTreeMap<&str, u64> = BTreeMap::new();
    let mut right: BTreeMap<&str, u64> = BTreeMap::new();
    for (a, b, n) in flows.iter().copied() {
        *left.entry(a).or_default() += n;
        *right.entry(b).or_default() += n;
    }
    let gap = 10.0;
    let usable = |k: usize| h - 2.0 * pad - gap * (k.saturating_sub(1)) as f64;
    let scale = usable(left.len()).min(usable(right.len())) / total as f64;
    let place = |m: &BTreeMap<&str, u64>| {
        let mut y = pad;
        let mut out = BTreeMap::new();
        for (k, v) in m {
            out.insert(k.to_string(), y);
            y += *v as f64 * scale + gap;
        }
        out
    };
    let (ly, ry) = (place(&left), place(&right));
    let (x0, x1) = (110.0, w - 110.0);
    let colour: BTreeMap<&str, &str> =
        left.keys().enumerate().map(|(i, k)| (*k, PALETTE[i % PALETTE.len()])).collect();
    let mut lcur = ly.clone();
    let mut rcur = ry.clone();
    for (a, b, n) in flows.iter().copied() {
        let t = *n as f64 * scale;
        let (Some(y0), Some(y1)) = (lcur.get_mut(a.as_str()), rcur.get_mut(b.as_str())) else {
            continue;
        };
        let xm = (x0 + x1) / 2.0;
        let _ = write!(
            svg,
            "<path d=\"M{x0},{a0:.1} C{xm},{a0:.1} {xm},{b0:.1} {x1},{b0:.1} L{x1},{b1:.1} C{xm},{b1:.1} {xm},{a1:.1} {x0},{a1:.1} Z\" fill=\"{c}\" fill-opacity=\"0.45\"><title>{} to {}: {n}</title></path>",
            esc(a),
            esc(b),
            a0 = *y0,
            a1 = *y0 + t,
            b0 = *y1,
            b1 = *y1 + t,
            c = colour.get(a.as_str()).copied().unwrap_or("#777"),
        );
        *y0 += t;
        *y1 += t;
    }
    for (side, m, pos, x) in [(0, &left, &ly, x0), (1, &right, &ry, x1)] {
        for (k, v) in m {
            let y = pos.get(*k).copied().unwrap_or(pad);
            let hgt = (*v as f64 * scale).max(1.0);
            let (rx, tx, anchor) =
                if side == 0 { (x - 8.0, x - 12.0, "end") } else { (x, x + 12.0, "start") };
            let _ = write!(
                svg,
                "<rect x=\"{rx}\" y=\"{y:.1}\" width=\"8\" height=\"{hgt:.1}\" fill=\"#333\"/><text x=\"{tx}\" y=\"{:.1}\" text-anchor=\"{anchor}\" dominant-baseline=\"middle\">{} ({v})</text>",
                y + hgt / 2.0,
                esc(k)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Grouped vertical bars: `labels` along the axis, one bar per series, with optional ± error
/// half-widths drawn as whiskers.
pub fn bars(
    id: &str,
    title: &str,
    labels: &[String],
    series: &[(&str, Vec<u64>)],
    whisker: Option<u64>,
) -> String {
    let (h, pad, bw) = (260.0_f64, 34.0_f64, 18.0_f64);
    let groups = labels.len().max(1);
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
    let per = (series.len().max(1) as f64 * bw + 16.0).max(longest * 6.8 + 12.0);
    let w = (pad * 2.0 + groups as f64 * per).max(320.0);
    let top = series
        .iter()
        .flat_map(|(_, v)| v.iter().map(|x| x + whisker.unwrap_or(0)))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let y = |v: f64| h - pad - v / top * (h - 2.0 * pad);
    let mut svg = format!(
        "<svg id=\"{id}\" role=\"img\" aria-labelledby=\"{id}-t\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\"><title id=\"{id}-t\">{}</title>\
         <line x1=\"{pad}\" y1=\"{b}\" x2=\"{e}\" y2=\"{b}\" stroke=\"#333\"/><text x=\"4\" y=\"{t}\">{top}</text><text x=\"4\" y=\"{b}\">0</text>",
        esc(title),
        b = h - pad,
        e = w - pad / 2.0,
        t = pad,
        top = top as u64,
    );
    for (g, label) in labels.iter().enumerate() {
        let gx = pad + g as f64 * per + 8.0;
        for (s, (name, values)) in series.iter().enumerate() {
            let v = values.get(g).copied().unwrap_or(0) as f64;
            let x = gx + s as f64 * bw;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{}\" height=\"{:.1}\" fill=\"{}\"><title>{}, {}: {}</title></rect>",
                y(v),
                bw - 2.0,
                (h - pad - y(v)).max(0.0),
                PALETTE[s % PALETTE.len()],
                esc(label),
                esc(name),
                v as u64
            );
            if let Some(wk) = whisker {
                let cx = x + (bw - 2.0) / 2.0;
                let (lo, hi) = (y((v - wk as f64).max(0.0)), y(v + wk as f64));
                let _ = write!(
                    svg,
                    "<line x1=\"{cx:.1}\" y1=\"{lo:.1}\" x2=\"{cx:.1}\" y2=\"{hi:.1}\" stroke=\"#000\"/><line x1=\"{:.1}\" y1=\"{hi:.1}\" x2=\"{:.1}\" y2=\"{hi:.1}\" stroke=\"#000\"/>",
                    cx - 4.0,
                    cx + 4.0
                );
            }
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            gx + series.len() as f64 * bw / 2.0,
            h - pad + 16.0,
            esc(label)
        );
    }
    let mut lx = pad;
    for (s, (name, _)) in series.iter().enumerate() {
        let _ = write!(
            svg,
            "<rect x=\"{lx}\" y=\"6\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"15\">{}</text>",
            PALETTE[s % PALETTE.len()],
            lx + 14.0,
            esc(name)
        );
        lx += 24.0 + name.len() as f64 * 7.0;
    }
    svg.push_str("</svg>");
    svg
}

fn html_table(t: &Table) -> String {
    let mut s = String::from("<table><thead><tr><th scope=\"col\">row</th>");
    for c in &t.columns {
        let _ = write!(s, "<th scope=\"col\">{}</th>", esc(c));
    }
    s.push_str("</tr></thead><tbody>");
    if t.rows.is_empty() {
        let _ = write!(
            s,
            "<tr><td colspan=\"{}\">nothing in this period</td></tr>",
            t.columns.len() + 1
        );
    }
    for r in &t.rows {
        let _ = write!(s, "<tr><td><code>{}</code></td>", esc(&r.id));
        for c in &r.cells {
            let class = if matches!(c, Cell::Text(_)) { "" } else { " class=\"n\"" };
            let text = match c {
                Cell::NotAvailable { not_available } => format!("n/a: {not_available}"),
                other => other.render(),
            };
            let _ = write!(s, "<td{class}>{}</td>", esc(&text));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

fn text(c: Option<&Cell>) -> String {
    c.map(Cell::render).unwrap_or_default()
}

fn count(c: Option<&Cell>) -> u64 {
    match c {
        Some(Cell::Count(n)) => *n,
        _ => 0,
    }
}

/// The exact statistics as one self-contained HTML page: every table, and beside them the
/// flows between parties (Sankey-style), the distribution of time to answer and requests
/// over time.
pub fn statistics_html(s: &Statistics) -> String {
    let node = s.node.to_string();
    let table = |id: &str| s.tables.iter().find(|t| t.id == id);
    let mut flows: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (id, out) in [("requests-issued", true), ("requests-received", false)] {
        for r in table(id).map(|t| t.rows.as_slice()).unwrap_or_default() {
            let p = text(r.cells.first());
            let k = if out { (node.clone(), format!("{p} ")) } else { (p, format!("{node} ")) };
            *flows.entry(k).or_default() += count(r.cells.get(4));
        }
    }
    for r in table("data-flows").map(|t| t.rows.as_slice()).unwrap_or_default() {
        let p = text(r.cells.get(1));
        let k = if text(r.cells.first()) == "sent" {
            (node.clone(), format!("{p} "))
        } else {
            (p, format!("{node} "))
        };
        *flows.entry(k).or_default() += count(r.cells.get(5));
    }
    let flows: Vec<(String, String, u64)> =
        flows.into_iter().map(|((a, b), n)| (a, b, n)).collect();
    let mut hist = vec![vec![0u64; crate::stats::BINS.len()]; 2];
    for r in table("time-to-answer-distribution").map(|t| t.rows.as_slice()).unwrap_or_default() {
        let d = usize::from(text(r.cells.first()) == "received");
        if let Some(i) = crate::stats::BINS.iter().position(|b| *b == text(r.cells.get(1))) {
            hist[d][i] = count(r.cells.get(2));
        }
    }
    let mut months: BTreeMap<String, [u64; 2]> = BTreeMap::new();
    for r in table("requests-by-month").map(|t| t.rows.as_slice()).unwrap_or_default() {
        let d = usize::from(text(r.cells.get(1)) == "received");
        months.entry(text(r.cells.first())).or_default()[d] += count(r.cells.get(2));
    }
    let labels: Vec<String> = months.keys().cloned().collect();
    let mut body = format!(
        "<h1>Statistics of {} for {}</h1><p>From {} to {}, counted as of {}, at ledger size {}. Every figure is counted from the node's ledger and store; the row id names the ledger entries behind each (<code>entente report stats --explain ROW</code>).</p>",
        esc(&node),
        esc(&s.period.label),
        s.period.from,
        s.period.to,
        format_args!("{:.0}", s.as_of),
        s.watermark
    );
    let _ = write!(
        body,
        "<h2>Charts</h2><div class=\"pair\"><figure>{}<figcaption>Requests and data flows between parties (left: from, right: to)</figcaption></figure><figure>{}<figcaption>Time to answer</figcaption></figure><figure>{}<figcaption>Requests over time</figcaption></figure></div>",
        sankey("flows", "Requests and data flows between parties", &flows),
        bars(
            "time-to-answer",
            "Time to answer, requests answered",
            &crate::stats::BINS.iter().map(|b| (*b).to_owned()).collect::<Vec<_>>(),
            &[("issued", hist[0].clone()), ("received", hist[1].clone())],
            None
        ),
        bars(
            "over-time",
            "Requests per month",
            &labels,
            &[
                ("issued", months.values().map(|v| v[0]).collect()),
                ("received", months.values().map(|v| v[1]).collect())
            ],
            None
        ),
    );
    for t in &s.tables {
        let _ = write!(
            body,
            "<h2 id=\"{}\">{}</h2><p class=\"note\">{}</p>",
            esc(t.id),
            esc(t.title),
            esc(&t.note)
        );
        if let Some(c) = &t.citation {
            let _ = write!(
                body,
                "<p class=\"cite\">{} — status {} — {}</p>",
                esc(&c.text),
                c.status,
                esc(c.source)
            );
        }
        body.push_str(&html_table(t));
    }
    page(&format!("Statistics of {node} for {}", s.period.label), &body)
}

/// The public report as CSV: one line per row and the totals.
pub fn public_csv(r: &PublicReport) -> String {
    let mut out = String::from(
        "period,partner,direction,requests,selectors,answered_with_data,refused,answered_share,refused_share,noise_95\n",
    );
    for row in r.rows.iter().chain(&r.totals) {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{}",
            r.period,
            row.partner,
            row.direction,
            row.requests,
            row.selectors.map(|s| s.to_string()).unwrap_or_default(),
            row.answered_with_data,
            row.refused,
            share_text(row.answered_per_mille()),
            share_text(row.refused_per_mille()),
            r.mechanism.noise_95
        );
    }
    out
}

/// The public report as one self-contained HTML page, the noise stated beside every figure.
pub fn public_html(r: &PublicReport, digest: &str) -> String {
    let m = &r.mechanism;
    let pm = format!(" <span class=\"note\">± {}</span>", m.noise_95);
    let mut body = format!(
        "<h1>Transparency report of {} for {}</h1>\
         <p>Requests exchanged with each partner country from {} to {} (counted as of {}), in the form large providers publish. \
         Every count carries random noise so that no case can be singled out: <strong>discrete Laplace noise of scale {} (ε = {} for this release)</strong>; \
         95% of the noise added to a figure is within ± {}. Figures are then made consistent (no negative count; answered and refused never exceed requests), \
         and totals are sums of the published rows. Privacy unit: the case, with at most {} requests and {} deconfliction selectors counted per case.</p>",
        esc(&r.node),
        esc(&r.period),
        r.from,
        r.to,
        format_args!("{:.0}", r.as_of),
        m.scale,
        m.epsilon,
        m.noise_95,
        m.bounds.requests_per_case,
        m.bounds.selectors_per_case
    );
    let _ = write!(
        body,
        "<p>Budget for {}: ε {} per period, {} spent with this release (release {}), {} left. \
         This file is recorded at ledger index {} of {}'s ledger with SHA-256 of its JSON form <code>{}</code>; check it with <code>entente report verify</code>.</p>",
        esc(&r.period),
        r.budget.per_period,
        r.budget.spent,
        r.release,
        esc(&r.budget.remaining),
        r.ledger_index,
        esc(&r.node),
        esc(digest)
    );
    let partners: Vec<String> =
        r.rows.iter().filter(|x| x.direction == "received").map(|x| x.partner.clone()).collect();
    let series = |dir: &str| {
        r.rows.iter().filter(|x| x.direction == dir).map(|x| x.requests).collect::<Vec<_>>()
    };
    let mut flows: Vec<(String, String, u64)> = Vec::new();
    for row in &r.rows {
        if row.direction == "received" {
            flows.push((row.partner.clone(), format!("{} ", r.node), row.requests));
        } else {
            flows.push((r.node.clone(), format!("{} ", row.partner), row.requests));
        }
    }
    let _ = write!(
        body,
        "<h2>Requests per partner</h2><div class=\"pair\"><table><thead><tr><th scope=\"col\">partner</th><th scope=\"col\">direction</th><th scope=\"col\">requests</th><th scope=\"col\">selectors specified</th><th scope=\"col\">answered with some data</th><th scope=\"col\">refused</th></tr></thead><tbody>"
    );
    for row in r.rows.iter().chain(&r.totals) {
        let sel = row.selectors.map_or_else(|| "–".to_owned(), |s| format!("{s}{pm}"));
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}{pm}</td><td class=\"n\">{sel}</td><td class=\"n\">{} ({})</td><td class=\"n\">{} ({})</td></tr>",
            esc(&row.partner),
            esc(&row.direction),
            row.requests,
            row.answered_with_data,
            share_text(row.answered_per_mille()),
            row.refused,
            share_text(row.refused_per_mille()),
        );
    }
    let _ = write!(
        body,
        "</tbody></table><figure>{}<figcaption>Requests per partner (whiskers: ± the 95% noise)</figcaption></figure><figure>{}<figcaption>Requests between {} and its partners (noisy counts)</figcaption></figure></div>",
        bars(
            "requests",
            "Requests per partner",
            &partners,
            &[("received", series("received")), ("issued", series("issued"))],
            Some(m.noise_95)
        ),
        sankey("flows", "Requests between parties", &flows),
        esc(&r.node)
    );
    body.push_str("<p class=\"note\">Shares are computed from the published (noisy) figures. Selectors specified: selectors in deconfliction (private set intersection) queries this node asked; a node answering a query learns only its padded size.</p>");
    page(&format!("Transparency report of {} for {}", r.node, r.period), &body)
}
