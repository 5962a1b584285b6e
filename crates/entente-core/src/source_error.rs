//! Problems at a position in a named source text, written `file:line:column: field: message`.
//!
//! Every file format Entente reads from TOML (the lexicon, agreements, gap scenarios,
//! incident regimes and facts) reports each problem with the file, the 1-based line and
//! column (in characters) where it starts, the field it concerns, what was found and what is
//! expected. This module is the one implementation of that: the position of a byte offset, a
//! TOML syntax or shape error turned into a positioned problem naming the key of the line it
//! points into, and [`SourceChecker`], the trait a format's validator implements to collect them.

use crate::lexicon::edit_distance;
use serde::de::DeserializeOwned;
use std::fmt;
use std::ops::Range;
use toml::Spanned;

/// One problem in a source text, with its position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {field}: {message}")]
pub struct SourceError {
    /// The file, as named by the caller.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// The field, e.g. `request.deadline`, or `toml` when a syntax error names none.
    pub field: String,
    /// What was found and what is expected.
    pub message: String,
}

/// Writes every problem found in a format's data (at least one) under one heading:
/// `invalid <what> (<n> problem[s])`, then each problem on its own indented line.
///
/// # Errors
/// Only those of the formatter.
pub fn write_problems(
    f: &mut fmt::Formatter<'_>,
    what: &str,
    problems: &[SourceError],
) -> fmt::Result {
    let n = problems.len();
    write!(f, "invalid {what} ({n} problem{})", if n == 1 { "" } else { "s" })?;
    for e in problems {
        write!(f, "\n  {e}")?;
    }
    Ok(())
}

/// The hint ` (did you mean a or b?)` naming `near`, or nothing when `near` is empty.
pub fn did_you_mean<S: AsRef<str>>(near: &[S]) -> String {
    if near.is_empty() {
        String::new()
    } else {
        let near: Vec<&str> = near.iter().map(AsRef::as_ref).collect();
        format!(" (did you mean {}?)", near.join(" or "))
    }
}

/// The message for `given`, which is none of `names`, the accepted names of a closed set of
/// `what` (e.g. `data category`): what was found, the names near it (the one it is once
/// lowercased with `_` and spaces written `-`, or those within two edits of that), and every
/// accepted name.
pub fn unknown_name(given: &str, names: &[&str], what: &str) -> String {
    let lower = given.trim().to_ascii_lowercase().replace(['_', ' '], "-");
    let near: Vec<&str> =
        names.iter().copied().filter(|n| *n == lower || edit_distance(&lower, n) <= 2).collect();
    format!("found `{given}`{}; expected a {what}: {}", did_you_mean(&near), names.join(", "))
}

/// Which keys a TOML error's line may name as the field of the problem (otherwise `toml`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldNames {
    /// The table of a `[table]` or `[[table]]` header line.
    pub table_headers: bool,
    /// Keys holding `-` (besides letters, digits, `_` and `.`).
    pub hyphens: bool,
}

/// A source text and the name it is reported under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceText<'a> {
    /// The file, as named by the caller (used in messages only).
    pub file: &'a str,
    /// Its text.
    pub text: &'a str,
}

impl<'a> SourceText<'a> {
    /// The text `text`, reported as `file`.
    pub fn new(file: &'a str, text: &'a str) -> Self {
        SourceText { file, text }
    }

    /// The 1-based line and column (in characters) of byte `offset`; an offset past the end
    /// is the end, one inside a character counts that character.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |nl| nl + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (line, column)
    }

    /// The problem `message` about `field`, at the start of `span`.
    pub fn error(&self, span: Range<usize>, field: &str, message: String) -> SourceError {
        let (line, column) = self.position(span.start);
        SourceError { file: self.file.to_owned(), line, column, field: field.to_owned(), message }
    }

    /// The text parsed as TOML into `T`.
    ///
    /// # Errors
    /// The TOML syntax or shape error (unknown or missing field, wrong type), as
    /// [`SourceText::toml_error`] positions and names it.
    pub fn parse_toml<T: DeserializeOwned>(&self, names: FieldNames) -> Result<T, SourceError> {
        toml::from_str::<T>(self.text).map_err(|e| self.toml_error(&e, names))
    }

    /// A TOML error as a positioned problem: at the start of its span (or of the text), the
    /// field the key of the line it points into (per `names`), or `toml`, the message
    /// trimmed.
    pub fn toml_error(&self, e: &toml::de::Error, names: FieldNames) -> SourceError {
        let span = e.span().unwrap_or(0..0);
        let field = self.field_at(span.start, names);
        self.error(span, &field, e.message().trim().to_owned())
    }

    /// The key of a `key = value` line holding byte `offset` (or, per `names`, the table of a
    /// header line), if it is a plain dotted key; otherwise `toml`.
    fn field_at(&self, offset: usize, names: FieldNames) -> String {
        let (line, _) = self.position(offset);
        let src = self.text.lines().nth(line.saturating_sub(1)).unwrap_or("");
        let key = src.split_once('=').map(|(k, _)| k.trim().to_owned()).or_else(|| {
            let t = src.trim();
            (names.table_headers && t.starts_with('['))
                .then(|| t.trim_matches(|c| c == '[' || c == ']').to_owned())
        });
        key.filter(|k| {
            !k.is_empty()
                && k.chars().all(|c| {
                    c.is_ascii_alphanumeric() || c == '_' || c == '.' || (names.hyphens && c == '-')
                })
        })
        .unwrap_or_else(|| "toml".to_owned())
    }
}

/// The validator of one source text, collecting every problem found (not just the first).
pub trait SourceChecker {
    /// Which keys a TOML error may name as its field.
    const FIELD_NAMES: FieldNames;

    /// The text being checked.
    fn source(&self) -> SourceText<'_>;
    /// Records a problem.
    fn push(&mut self, error: SourceError);

    /// The 1-based line and column of byte `offset` of the text.
    fn position(&self, offset: usize) -> (usize, usize) {
        self.source().position(offset)
    }

    /// Records the problem `message` about `field`, at the start of `span`.
    fn error(&mut self, span: Range<usize>, field: &str, message: String) {
        let e = self.source().error(span, field, message);
        self.push(e);
    }

    /// The value of `all` whose name (per `name`) is `raw`, or `None` with the problem
    /// recorded as [`unknown_name`] writes it.
    fn one_of<T: Copy>(
        &mut self,
        raw: &Spanned<String>,
        field: &str,
        all: &[T],
        name: fn(T) -> &'static str,
        what: &str,
    ) -> Option<T> {
        let given = raw.get_ref().as_str();
        if let Some(v) = all.iter().copied().find(|v| name(*v) == given) {
            return Some(v);
        }
        let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
        self.error(raw.span(), field, unknown_name(given, &names, what));
        None
    }

    /// The text parsed as TOML into `T`, or `None` with the problem recorded.
    fn parse<T: DeserializeOwned>(&mut self) -> Option<T> {
        match self.source().parse_toml(Self::FIELD_NAMES) {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(e);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    const KEYS: FieldNames = FieldNames { table_headers: false, hyphens: false };
    const ALL: FieldNames = FieldNames { table_headers: true, hyphens: true };

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only the shape is checked")]
    struct Shape {
        name: String,
        #[serde(default)]
        table: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only the shape is checked")]
    struct Inner {
        n: u32,
    }

    fn toml_err(text: &str, names: FieldNames) -> SourceError {
        SourceText::new("f.toml", text).parse_toml::<Shape>(names).unwrap_err()
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let s = SourceText::new("f", "ab\nçé = 1\n");
        assert_eq!(s.position(0), (1, 1));
        assert_eq!(s.position(2), (1, 3));
        assert_eq!(s.position(3), (2, 1));
        // `ç` and `é` are two bytes each: byte 7 is the third character of line 2.
        assert_eq!(s.position(7), (2, 3));
        // Inside a character: the text before it is not a string, so the whole text counts.
        assert_eq!(s.position(4), (3, 1));
        // Past the end: the end.
        assert_eq!(s.position(1000), (3, 1));
        assert_eq!(SourceText::new("f", "").position(5), (1, 1));
    }

    #[test]
    fn an_error_is_written_file_line_column_field_message() {
        let e = SourceText::new("data/x.toml", "a = 1\nb = 2\n").error(
            6..7,
            "b",
            "found 2; expected 1".to_owned(),
        );
        assert_eq!(e.to_string(), "data/x.toml:2:1: b: found 2; expected 1");
        assert_eq!((e.line, e.column), (2, 1));
    }

    #[test]
    fn a_shape_error_names_the_key_of_its_line() {
        let e = toml_err("name = 1\n", KEYS);
        assert_eq!(e.to_string(), "f.toml:1:8: name: invalid type: integer `1`, expected a string");
    }

    #[test]
    fn a_missing_field_is_reported_at_the_start_under_toml() {
        let e = toml_err("", KEYS);
        assert_eq!(e.to_string(), "f.toml:1:1: toml: missing field `name`");
    }

    #[test]
    fn an_unknown_key_with_a_hyphen_is_named_only_when_hyphens_are_allowed() {
        let text = "name = \"x\"\nodd-key = 1\n";
        assert_eq!(toml_err(text, KEYS).field, "toml");
        let e = toml_err(text, ALL);
        assert_eq!(e.field, "odd-key");
        assert_eq!((e.line, e.column), (2, 1));
        assert!(e.message.starts_with("unknown field `odd-key`"), "{}", e.message);
    }

    #[test]
    fn a_table_header_is_named_only_when_headers_are_allowed() {
        let text = "name = \"x\"\n[table]\n";
        assert_eq!(toml_err(text, KEYS).field, "toml");
        let e = toml_err(text, ALL);
        assert_eq!(e.field, "table");
        assert_eq!(e.line, 2);
        assert_eq!(e.message, "missing field `n`");
    }

    #[test]
    fn a_key_that_is_not_plain_is_not_named() {
        let e = toml_err("\"name\" = 1\n", ALL);
        assert_eq!(e.field, "toml");
        assert_eq!(e.line, 1);
    }

    #[test]
    fn a_syntax_error_names_its_line_key() {
        let e = toml_err("name = \"x\n", ALL);
        assert_eq!((e.field.as_str(), e.line), ("name", 1));
        assert!(!e.message.is_empty());
        assert_eq!(e.message, e.message.trim());
    }

    struct Problems(Vec<SourceError>);

    impl fmt::Display for Problems {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_problems(f, "test data", &self.0)
        }
    }

    #[test]
    fn problems_are_listed_under_one_heading() {
        let s = SourceText::new("f.toml", "a = 1\nb = 2\n");
        let one = Problems(vec![s.error(0..1, "a", "found 1".to_owned())]);
        assert_eq!(one.to_string(), "invalid test data (1 problem)\n  f.toml:1:1: a: found 1");
        let two = Problems(vec![
            s.error(0..1, "a", "found 1".to_owned()),
            s.error(6..7, "b", "found 2".to_owned()),
        ]);
        assert_eq!(
            two.to_string(),
            "invalid test data (2 problems)\n  f.toml:1:1: a: found 1\n  f.toml:2:1: b: found 2"
        );
    }

    #[test]
    fn did_you_mean_names_the_near_names() {
        assert_eq!(did_you_mean::<&str>(&[]), "");
        assert_eq!(did_you_mean(&["a"]), " (did you mean a?)");
        assert_eq!(did_you_mean(&["a".to_owned(), "b".to_owned()]), " (did you mean a or b?)");
    }

    #[test]
    fn unknown_names_are_explained() {
        let names = ["subscriber", "traffic", "threat-intel"];
        assert_eq!(
            unknown_name("Threat_Intel", &names, "data category"),
            "found `Threat_Intel` (did you mean threat-intel?); expected a data category: subscriber, traffic, threat-intel"
        );
        assert_eq!(
            unknown_name("trafic", &names, "data category"),
            "found `trafic` (did you mean traffic?); expected a data category: subscriber, traffic, threat-intel"
        );
        assert_eq!(
            unknown_name("weather", &names, "data category"),
            "found `weather`; expected a data category: subscriber, traffic, threat-intel"
        );
    }

    struct Collect<'a> {
        file: &'a str,
        text: &'a str,
        errors: Vec<SourceError>,
    }

    impl SourceChecker for Collect<'_> {
        const FIELD_NAMES: FieldNames = KEYS;
        fn source(&self) -> SourceText<'_> {
            SourceText::new(self.file, self.text)
        }
        fn push(&mut self, error: SourceError) {
            self.errors.push(error);
        }
    }

    #[derive(Deserialize)]
    struct OneName {
        v: Spanned<String>,
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Colour {
        Red,
        DarkBlue,
    }

    fn colour(c: Colour) -> &'static str {
        match c {
            Colour::Red => "red",
            Colour::DarkBlue => "dark-blue",
        }
    }

    #[test]
    fn one_of_finds_the_value_or_records_why_not() {
        let all = [Colour::Red, Colour::DarkBlue];
        let text = "v = \"dark_blue\"\n";
        let raw = toml::from_str::<OneName>(text).unwrap().v;
        let mut c = Collect { file: "f.toml", text, errors: Vec::new() };
        assert_eq!(c.one_of(&raw, "v", &all, colour, "colour"), None);
        assert_eq!(
            c.errors[0].to_string(),
            "f.toml:1:5: v: found `dark_blue` (did you mean dark-blue?); expected a colour: red, dark-blue"
        );
        let ok = toml::from_str::<OneName>("v = \"dark-blue\"").unwrap().v;
        assert_eq!(c.one_of(&ok, "v", &all, colour, "colour"), Some(Colour::DarkBlue));
        assert_eq!(c.errors.len(), 1);
    }

    #[test]
    fn a_checker_collects_every_problem() {
        let mut c = Collect { file: "f.toml", text: "name = 1\n", errors: Vec::new() };
        assert!(c.parse::<Shape>().is_none());
        c.error(0..4, "name", "found 1; expected a name".to_owned());
        assert_eq!(c.position(7), (1, 8));
        let all: Vec<String> = c.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            all,
            [
                "f.toml:1:8: name: invalid type: integer `1`, expected a string",
                "f.toml:1:1: name: found 1; expected a name",
            ]
        );
        let mut ok = Collect { file: "f.toml", text: "name = \"x\"\n", errors: Vec::new() };
        assert!(ok.parse::<Shape>().is_some());
        assert!(ok.errors.is_empty());
    }
}
