//! Selectors as investigators type them, normalised so the same selector matches however it
//! is written.
//!
//! A selector is a kind and a canonical text. Its OPRF input is `kind || 0x00 || canonical`
//! ([`Selector::oprf_input`]): the kind's name, a zero byte, the canonical text in UTF-8, so
//! an IP address and a domain never collide. The canonical forms:
//!
//! | kind | written as | canonical |
//! |---|---|---|
//! | `ip` | IPv4 or IPv6, optionally in `[]` | `IpAddr`'s display (RFC 5952 for IPv6); IPv4-mapped IPv6 as IPv4 |
//! | `email` | `local@domain` | local part as written (plus-addressing stripped under [`EmailRules::strip_plus`]), domain as `domain` |
//! | `domain` | a DNS name, Unicode or ASCII | UTS #46 / IDNA to ASCII (lower case, punycode), no trailing dot |
//! | `url` | an absolute URL with a host | WHATWG URL serialisation (scheme and host lower case, IDNA host, default port removed), fragment dropped, host without trailing dot |
//! | `phone` | `+` or `00`, country code, number; spaces, `-`, `.`, `()` and a `(0)` trunk prefix allowed | E.164: `+` and 7 to 15 digits |
//! | `btc` | base58check P2PKH/P2SH (mainnet, testnet) or bech32/bech32m segwit (`bc`, `tb`) | base58 as encoded, bech32 lower case; checksums verified |
//! | `eth` | `0x` and 40 hex digits | lower case; an EIP-55 checksum verified when the digits are of mixed case |
//! | `md5`, `sha1`, `sha256` | hex digits (kind `hash` picks by length: 32, 40, 64) | lower case hex |
//! | `account` | `provider:id` | provider lower case, id as written |
//!
//! A line is `kind:value` or, where the kind is unambiguous, just the value
//! ([`parse_line`]); a selector file has one a line, blank lines and `#` comments (a `#` at the
//! start of a line or after a space), and its problems are reported `file:line:column`
//! ([`parse_file`]).

mod wallet;

#[cfg(test)]
mod tests;

use entente_core::source_error::{SourceError, SourceText};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;

/// The kind of a selector; its name is the first part of the OPRF input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SelectorKind {
    /// An IPv4 or IPv6 address.
    Ip,
    /// An email address.
    Email,
    /// A DNS domain name.
    Domain,
    /// An absolute URL.
    Url,
    /// A phone number in E.164.
    Phone,
    /// A Bitcoin address (base58check or segwit).
    Bitcoin,
    /// An Ethereum address.
    Ethereum,
    /// An MD5 file hash.
    Md5,
    /// A SHA-1 file hash.
    Sha1,
    /// A SHA-256 file hash.
    Sha256,
    /// An account identifier at a provider.
    Account,
}

impl SelectorKind {
    /// Every kind.
    pub const ALL: [SelectorKind; 11] = [
        SelectorKind::Ip,
        SelectorKind::Email,
        SelectorKind::Domain,
        SelectorKind::Url,
        SelectorKind::Phone,
        SelectorKind::Bitcoin,
        SelectorKind::Ethereum,
        SelectorKind::Md5,
        SelectorKind::Sha1,
        SelectorKind::Sha256,
        SelectorKind::Account,
    ];

    /// The kind's name, as written before the `:` of a line and hashed into the OPRF input.
    pub fn name(self) -> &'static str {
        match self {
            SelectorKind::Ip => "ip",
            SelectorKind::Email => "email",
            SelectorKind::Domain => "domain",
            SelectorKind::Url => "url",
            SelectorKind::Phone => "phone",
            SelectorKind::Bitcoin => "btc",
            SelectorKind::Ethereum => "eth",
            SelectorKind::Md5 => "md5",
            SelectorKind::Sha1 => "sha1",
            SelectorKind::Sha256 => "sha256",
            SelectorKind::Account => "account",
        }
    }

    /// What a value of this kind looks like, for messages.
    fn expected(self) -> &'static str {
        match self {
            SelectorKind::Ip => "an IPv4 or IPv6 address (e.g. 192.0.2.1 or 2001:db8::1)",
            SelectorKind::Email => "an email address local@domain",
            SelectorKind::Domain => "a domain name (e.g. example.org)",
            SelectorKind::Url => "an absolute URL with a host (e.g. https://example.org/path)",
            SelectorKind::Phone => {
                "a phone number with + or 00 and its country code (e.g. +31 20 123 4567)"
            }
            SelectorKind::Bitcoin => {
                "a Bitcoin address (base58check 1… or 3…, or segwit bc1…/tb1…)"
            }
            SelectorKind::Ethereum => "an Ethereum address (0x and 40 hex digits)",
            SelectorKind::Md5 => "an MD5 hash (32 hex digits)",
            SelectorKind::Sha1 => "a SHA-1 hash (40 hex digits)",
            SelectorKind::Sha256 => "a SHA-256 hash (64 hex digits)",
            SelectorKind::Account => "an account provider:id (e.g. telegram:12345)",
        }
    }
}

impl fmt::Display for SelectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The names accepted before the `:` of a line: every kind's name, `hash` (a file hash of
/// any of the three lengths) and `wallet` (a Bitcoin or Ethereum address).
const LINE_KINDS: &str =
    "ip, email, domain, url, phone, btc, eth, md5, sha1, sha256, hash, wallet, account";

/// How email addresses are normalised. Both sides of a query must use the same rules, or the
/// same address written two ways will not match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailRules {
    /// Strip plus-addressing: `alice+shop@example.org` becomes `alice@example.org`.
    pub strip_plus: bool,
}

/// A normalised selector: a kind and its canonical text.
///
// INVARIANT: `canonical` is the canonical form of a value of `kind`: parsing it again as
// `kind` (with any rules) gives it back unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selector {
    kind: SelectorKind,
    canonical: String,
}

impl Selector {
    /// The selector's kind.
    pub fn kind(&self) -> SelectorKind {
        self.kind
    }

    /// The selector's canonical text.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The bytes the OPRF is evaluated on: `kind || 0x00 || canonical`.
    pub fn oprf_input(&self) -> Vec<u8> {
        let kind = self.kind.name().as_bytes();
        let mut v = Vec::with_capacity(kind.len() + 1 + self.canonical.len());
        v.extend_from_slice(kind);
        v.push(0);
        v.extend_from_slice(self.canonical.as_bytes());
        v
    }
}

/// `kind:canonical`, which [`parse_line`] reads back as the same selector.
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.name(), self.canonical)
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_line(&text, EmailRules::default()).map_err(serde::de::Error::custom)
    }
}

/// A value that is not a selector of the kind given or detected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct SelectorError {
    /// Byte offset in the text parsed where the problem starts.
    pub offset: usize,
    /// 1-based column (in characters) of `offset`.
    pub column: usize,
    /// What was found and what is expected.
    pub message: String,
}

/// A problem at byte `offset` of a value, before it is placed in its text.
#[derive(Debug)]
struct Problem {
    offset: usize,
    message: String,
}

impl Problem {
    fn at(offset: usize, message: impl Into<String>) -> Self {
        Problem { offset, message: message.into() }
    }

    /// `found `value`; expected <what a value of kind looks like>` at the start.
    fn expected(kind: SelectorKind, value: &str, why: &str) -> Self {
        let why = if why.is_empty() { String::new() } else { format!(" ({why})") };
        Problem::at(0, format!("found `{value}`{why}; expected {}", kind.expected()))
    }

    fn shifted(self, by: usize) -> Self {
        Problem { offset: self.offset + by, message: self.message }
    }

    fn in_text(self, text: &str) -> SelectorError {
        let offset = self.offset.min(text.len());
        let column = text.get(..offset).map_or(1, |s| s.chars().count() + 1);
        SelectorError { offset, column, message: self.message }
    }
}

/// Parses `text` as a selector of `kind`, normalised.
///
/// # Errors
/// The value is not of that kind: the error says where, what was found and what is expected.
pub fn parse(kind: SelectorKind, text: &str, rules: EmailRules) -> Result<Selector, SelectorError> {
    let (lead, value) = trim_with_offset(text);
    parse_value(kind, value, rules).map_err(|p| p.shifted(lead).in_text(text))
}

/// Parses one line, `kind:value` or a value whose kind is unambiguous, normalised.
///
/// The kind names are those of [`SelectorKind::name`] plus `hash` (MD5, SHA-1 or SHA-256 by
/// length) and `wallet` (Bitcoin or Ethereum). Without a known kind, the value is taken as: an
/// IP address if it parses as one; a URL if it has `://`; a phone number if it starts with
/// `+`; an email address if it has `@`; an Ethereum address if `0x` and hex; a file hash if
/// 32, 40 or 64 hex digits; a Bitcoin address if it has a valid checksum; a domain if it has
/// a dot. Anything else must name its kind.
///
/// # Errors
/// An unknown or undetectable kind, or a value that is not of its kind.
pub fn parse_line(line: &str, rules: EmailRules) -> Result<Selector, SelectorError> {
    parse_line_inner(line, rules).map_err(|p| p.in_text(line))
}

fn parse_line_inner(line: &str, rules: EmailRules) -> Result<Selector, Problem> {
    let (lead, text) = trim_with_offset(line);
    if text.is_empty() {
        return Err(Problem::at(lead, "found an empty line; expected a selector"));
    }
    if let Some((name, rest)) = text.split_once(':') {
        let (inner, value) = trim_with_offset(rest);
        let at = lead + name.len() + 1 + inner;
        let named = |kind| parse_value(kind, value, rules).map_err(|p: Problem| p.shifted(at));
        match name.trim().to_ascii_lowercase().as_str() {
            "hash" => return parse_hash(value).map_err(|p| p.shifted(at)),
            "wallet" => return parse_wallet(value).map_err(|p| p.shifted(at)),
            n => {
                if let Some(kind) = SelectorKind::ALL.into_iter().find(|k| k.name() == n) {
                    return named(kind);
                }
            }
        }
    }
    detect(text, rules).map_err(|p| p.shifted(lead))
}

/// Parses a selector file: one selector a line, blank lines and `#` comments skipped.
///
/// # Errors
/// Every line that is not a selector, each at its `file:line:column` (field `selector`).
pub fn parse_file(
    file: &str,
    text: &str,
    rules: EmailRules,
) -> Result<Vec<Selector>, SelectorFileError> {
    let source = SourceText::new(file, text);
    let mut selectors = Vec::new();
    let mut problems = Vec::new();
    let mut start = 0;
    for raw in text.split_inclusive('\n') {
        let line_start = start;
        start += raw.len();
        let line = strip_comment(raw.trim_end_matches(['\n', '\r']));
        if line.trim().is_empty() {
            continue;
        }
        match parse_line_inner(line, rules) {
            Ok(s) => selectors.push(s),
            Err(p) => {
                let at = line_start + p.offset.min(line.len());
                problems.push(source.error(at..at, "selector", p.message));
            }
        }
    }
    if problems.is_empty() { Ok(selectors) } else { Err(SelectorFileError { problems }) }
}

/// The problems of a selector file, each with its position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct SelectorFileError {
    /// Every problem found, in order.
    pub problems: Vec<SourceError>,
}

impl fmt::Display for SelectorFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        entente_core::source_error::write_problems(f, "selector file", &self.problems)
    }
}

/// The line up to a comment: a `#` at its start or after whitespace (so `user#1234` and URL
/// fragments stay).
fn strip_comment(line: &str) -> &str {
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_space {
            return line.get(..i).unwrap_or(line);
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// `text` trimmed, with the byte offset of the trimmed part.
fn trim_with_offset(text: &str) -> (usize, &str) {
    let start = text.len() - text.trim_start().len();
    (start, text.trim())
}

fn selector(kind: SelectorKind, canonical: String) -> Selector {
    Selector { kind, canonical }
}

/// `value` (trimmed) as `kind`.
fn parse_value(kind: SelectorKind, value: &str, rules: EmailRules) -> Result<Selector, Problem> {
    if value.is_empty() {
        return Err(Problem::at(0, format!("found nothing; expected {}", kind.expected())));
    }
    match kind {
        SelectorKind::Ip => parse_ip(value),
        SelectorKind::Email => parse_email(value, rules),
        SelectorKind::Domain => parse_domain(value).map(|d| selector(SelectorKind::Domain, d)),
        SelectorKind::Url => parse_url(value),
        SelectorKind::Phone => parse_phone(value),
        SelectorKind::Bitcoin => wallet::bitcoin(value).map(|a| selector(kind, a)),
        SelectorKind::Ethereum => wallet::ethereum(value).map(|a| selector(kind, a)),
        SelectorKind::Md5 | SelectorKind::Sha1 | SelectorKind::Sha256 => {
            let s = parse_hash(value)?;
            if s.kind == kind {
                Ok(s)
            } else {
                Err(Problem::expected(kind, value, &format!("{} hex digits", value.len())))
            }
        }
        SelectorKind::Account => parse_account(value),
    }
}

/// The kind of an unprefixed value, where it is unambiguous.
fn detect(value: &str, rules: EmailRules) -> Result<Selector, Problem> {
    if let Ok(s) = parse_ip(value) {
        return Ok(s);
    }
    if value.contains("://") {
        return parse_url(value);
    }
    if value.starts_with('+') {
        return parse_phone(value);
    }
    if value.contains('@') {
        return parse_email(value, rules);
    }
    if value.len() > 2 && value.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x")) {
        return wallet::ethereum(value).map(|a| selector(SelectorKind::Ethereum, a));
    }
    if matches!(value.len(), 32 | 40 | 64) && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return parse_hash(value);
    }
    if let Ok(a) = wallet::bitcoin(value) {
        return Ok(selector(SelectorKind::Bitcoin, a));
    }
    if value.contains('.') && !value.contains(char::is_whitespace) {
        return parse_domain(value).map(|d| selector(SelectorKind::Domain, d));
    }
    Err(Problem::at(
        0,
        format!(
            "cannot tell the kind of `{value}`; write it as kind:value with kind one of {LINE_KINDS}"
        ),
    ))
}

fn parse_ip(value: &str) -> Result<Selector, Problem> {
    let bare = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(value);
    let ip: IpAddr = bare.parse().map_err(|_| Problem::expected(SelectorKind::Ip, value, ""))?;
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    };
    Ok(selector(SelectorKind::Ip, ip.to_string()))
}

/// `value` as a DNS name: UTS #46 to ASCII, no trailing dot, labels of 1-63 letters, digits,
/// `-` or `_`, at most 253 characters, and not an IP address.
fn parse_domain(value: &str) -> Result<String, Problem> {
    let kind = SelectorKind::Domain;
    if let Some(i) = value.find(|c: char| c.is_whitespace() || "/:@?#[]\\".contains(c)) {
        return Err(Problem::at(i, format!("found `{value}`; expected {}", kind.expected())));
    }
    if value.parse::<IpAddr>().is_ok() {
        return Err(Problem::expected(kind, value, "an IP address: write it as ip:"));
    }
    let ascii = idna::domain_to_ascii(value)
        .map_err(|_| Problem::expected(kind, value, "not a valid internationalised name"))?;
    let ascii = ascii.strip_suffix('.').unwrap_or(&ascii);
    // An address with a trailing dot is still an address: as a domain its canonical text
    // would not parse back as one.
    if ascii.parse::<IpAddr>().is_ok() {
        return Err(Problem::expected(kind, value, "an IP address: write it as ip:"));
    }
    if ascii.is_empty() || ascii.len() > 253 {
        return Err(Problem::expected(kind, value, "1 to 253 characters"));
    }
    for label in ascii.split('.') {
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if label.is_empty() || label.len() > 63 || !ok_chars {
            return Err(Problem::expected(kind, value, &format!("label `{label}`")));
        }
    }
    Ok(ascii.to_owned())
}

fn parse_email(value: &str, rules: EmailRules) -> Result<Selector, Problem> {
    let kind = SelectorKind::Email;
    let Some((local, domain)) = value.rsplit_once('@') else {
        return Err(Problem::expected(kind, value, "no @"));
    };
    if local.is_empty() || local.len() > 64 {
        return Err(Problem::expected(kind, value, "a local part of 1 to 64 characters"));
    }
    if let Some(i) = local.find(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(Problem::at(i, format!("found `{value}`; expected {}", kind.expected())));
    }
    let domain = parse_domain(domain).map_err(|p| p.shifted(local.len() + 1))?;
    let quoted = local.starts_with('"');
    let local = match local.split_once('+') {
        Some((base, _)) if rules.strip_plus && !quoted && !base.is_empty() => base,
        _ => local,
    };
    Ok(selector(kind, format!("{local}@{domain}")))
}

fn parse_url(value: &str) -> Result<Selector, Problem> {
    let kind = SelectorKind::Url;
    let mut url =
        url::Url::parse(value).map_err(|e| Problem::expected(kind, value, &e.to_string()))?;
    let Some(host) = url.host_str().map(str::to_owned) else {
        return Err(Problem::expected(kind, value, "no host"));
    };
    // One trailing dot is the root (dropped, as for domains); an empty label anywhere else
    // (`a..b`, `a..`) names no host, and writing it back would not read back the same.
    let labels = host.strip_suffix('.').unwrap_or(&host);
    if labels.is_empty()
        || labels.starts_with('.')
        || labels.ends_with('.')
        || labels.contains("..")
    {
        return Err(Problem::expected(kind, value, "a host with an empty label"));
    }
    if let Some(trimmed) = host.strip_suffix('.').filter(|h| !h.is_empty()) {
        url.set_host(Some(trimmed)).map_err(|e| Problem::expected(kind, value, &e.to_string()))?;
    }
    url.set_fragment(None);
    Ok(selector(kind, url.to_string()))
}

/// E.164: `+` or `00`, then 7 to 15 digits starting with 1-9; spaces, `-`, `.`, `(`, `)`
/// and one `(0)` trunk prefix are dropped. No country is guessed.
fn parse_phone(value: &str) -> Result<Selector, Problem> {
    let kind = SelectorKind::Phone;
    let (skip, rest) = if let Some(r) = value.strip_prefix('+') {
        (1, r)
    } else if let Some(r) = value.strip_prefix("00") {
        (2, r)
    } else {
        return Err(Problem::expected(
            kind,
            value,
            "no country code: write it with + or 00 and the country code; the country is not guessed",
        ));
    };
    let mut digits = String::with_capacity(15);
    let mut trunk_dropped = false;
    let mut i = 0;
    let bytes = rest.as_bytes();
    while let Some(&b) = bytes.get(i) {
        if !trunk_dropped && rest.get(i..).is_some_and(|r| r.starts_with("(0)")) {
            trunk_dropped = true;
            i += 3;
            continue;
        }
        match b {
            b'0'..=b'9' => digits.push(char::from(b)),
            b' ' | b'-' | b'.' | b'(' | b')' | b'/' => {}
            _ => {
                return Err(Problem::at(
                    skip + i,
                    format!(
                        "found `{value}` (a character other than a digit or separator); expected {}",
                        kind.expected()
                    ),
                ));
            }
        }
        i += 1;
    }
    if digits.starts_with('0') {
        return Err(Problem::expected(kind, value, "a country code cannot start with 0"));
    }
    if !(7..=15).contains(&digits.len()) {
        return Err(Problem::expected(
            kind,
            value,
            &format!("{} digits; E.164 has 7 to 15", digits.len()),
        ));
    }
    Ok(selector(kind, format!("+{digits}")))
}

/// A file hash by its length: 32 hex digits MD5, 40 SHA-1, 64 SHA-256.
fn parse_hash(value: &str) -> Result<Selector, Problem> {
    if let Some(i) = value.find(|c: char| !c.is_ascii_hexdigit()) {
        return Err(Problem::at(
            i,
            format!(
                "found `{value}` (not hex); expected a file hash: MD5, SHA-1 or SHA-256 in hex"
            ),
        ));
    }
    let kind = match value.len() {
        32 => SelectorKind::Md5,
        40 => SelectorKind::Sha1,
        64 => SelectorKind::Sha256,
        n => {
            return Err(Problem::at(
                0,
                format!(
                    "found {n} hex digits; expected a file hash of 32 (MD5), 40 (SHA-1) or 64 (SHA-256)"
                ),
            ));
        }
    };
    Ok(selector(kind, value.to_ascii_lowercase()))
}

fn parse_wallet(value: &str) -> Result<Selector, Problem> {
    if value.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x")) {
        wallet::ethereum(value).map(|a| selector(SelectorKind::Ethereum, a))
    } else {
        wallet::bitcoin(value).map(|a| selector(SelectorKind::Bitcoin, a))
    }
}

fn parse_account(value: &str) -> Result<Selector, Problem> {
    let kind = SelectorKind::Account;
    let Some((provider, id)) = value.split_once(':') else {
        return Err(Problem::expected(kind, value, "no provider"));
    };
    let provider = provider.trim().to_ascii_lowercase();
    let ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b);
    if provider.is_empty() || !provider.bytes().all(ok) {
        return Err(Problem::expected(
            kind,
            value,
            "a provider of letters, digits, `.`, `_` or `-`",
        ));
    }
    let (lead, id) = trim_with_offset(id);
    if id.is_empty() {
        return Err(Problem::expected(kind, value, "no id"));
    }
    if let Some(i) = id.find(char::is_control) {
        let at = value.find(':').map_or(0, |c| c + 1) + lead + i;
        return Err(Problem::at(
            at,
            format!("found a control character; expected {}", kind.expected()),
        ));
    }
    Ok(selector(kind, format!("{provider}:{id}")))
}
