//! The STIX 2.1 patterning language (STIX 2.1 §9), checked for syntax.
//!
//! The grammar, from the loosest binding to the tightest:
//!
//! ```text
//! pattern      := obs-or ("FOLLOWEDBY" obs-or)*
//! obs-or       := obs-and ("OR" obs-and)*
//! obs-and      := obs-qual ("AND" obs-qual)*
//! obs-qual     := obs (WITHIN n SECONDS | REPEATS n TIMES | START t'…' STOP t'…')*
//! obs          := "[" cmp-or "]" | "(" pattern ")"
//! cmp-or       := cmp-and ("OR" cmp-and)*
//! cmp-and      := test ("AND" test)*
//! test         := "(" cmp-or ")" | "EXISTS" path
//!               | path ["NOT"] (op literal | "IN" "(" literal ("," literal)* ")"
//!                               | "LIKE" string | "MATCHES" string
//!                               | "ISSUBSET" string | "ISSUPERSET" string)
//! path         := object-type ":" component ("." component | "[" (int | "*") "]")*
//! ```
//!
//! Literals: `'string'` (with `\'` and `\\`), integers, floats, `true`, `false`,
//! `t'2020-01-01T00:00:00Z'`, `h'0a1b'`, `b'base64'`.

use std::fmt;

/// A syntax error in a pattern: where (character offset) and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternError {
    /// Character offset in the pattern (0-based).
    pub offset: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for PatternError {}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LBracket,
    RBracket,
    LParen,
    RParen,
    Colon,
    Dot,
    Comma,
    Star,
    Op(&'static str),
    Word(String),
    Int,
    Float,
    Str,
    Timestamp,
    Hex,
    Binary,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::LBracket => "`[`".into(),
        Tok::RBracket => "`]`".into(),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Colon => "`:`".into(),
        Tok::Dot => "`.`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Star => "`*`".into(),
        Tok::Op(o) => format!("`{o}`"),
        Tok::Word(w) => format!("`{w}`"),
        Tok::Int => "an integer".into(),
        Tok::Float => "a number".into(),
        Tok::Str => "a string".into(),
        Tok::Timestamp => "a timestamp".into(),
        Tok::Hex => "a hex literal".into(),
        Tok::Binary => "a binary literal".into(),
    }
}

fn err(offset: usize, message: impl Into<String>) -> PatternError {
    PatternError { offset, message: message.into() }
}

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, PatternError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let single = match c {
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            ':' => Some(Tok::Colon),
            '.' if !chars.get(i + 1).is_some_and(char::is_ascii_digit) => Some(Tok::Dot),
            ',' => Some(Tok::Comma),
            '*' => Some(Tok::Star),
            _ => None,
        };
        if let Some(t) = single {
            out.push((start, t));
            i += 1;
            continue;
        }
        match c {
            '=' => {
                out.push((start, Tok::Op("=")));
                i += 1;
            }
            '!' | '<' | '>' => {
                let two = chars.get(i + 1) == Some(&'=');
                let op = match (c, two) {
                    ('!', true) => "!=",
                    ('<', true) => "<=",
                    ('>', true) => ">=",
                    ('<', false) => "<",
                    ('>', false) => ">",
                    _ => return Err(err(start, "`!` must be followed by `=`")),
                };
                out.push((start, Tok::Op(op)));
                i += if two { 2 } else { 1 };
            }
            '\'' => {
                i = string_end(&chars, i)?;
                out.push((start, Tok::Str));
            }
            't' | 'h' | 'b' if chars.get(i + 1) == Some(&'\'') => {
                let end = string_end(&chars, i + 1)?;
                let body: String = chars[i + 2..end - 1].iter().collect();
                let tok = match c {
                    't' => {
                        check_timestamp(&body).map_err(|m| err(start, m))?;
                        Tok::Timestamp
                    }
                    'h' => {
                        if !body.len().is_multiple_of(2)
                            || !body.chars().all(|x| x.is_ascii_hexdigit())
                        {
                            return Err(err(
                                start,
                                "hex literal: expected an even number of hex digits",
                            ));
                        }
                        Tok::Hex
                    }
                    _ => {
                        if !body.len().is_multiple_of(4)
                            || !body.chars().all(|x| {
                                x.is_ascii_alphanumeric() || x == '+' || x == '/' || x == '='
                            })
                        {
                            return Err(err(start, "binary literal: expected base64"));
                        }
                        Tok::Binary
                    }
                };
                out.push((start, tok));
                i = end;
            }
            '-' | '+' | '0'..='9' | '.' => {
                let mut j = i + 1;
                let mut float = c == '.';
                while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                    float |= chars[j] == '.';
                    j += 1;
                }
                let text: String = chars[i..j].iter().collect();
                let ok =
                    if float { text.parse::<f64>().is_ok() } else { text.parse::<i64>().is_ok() };
                if !ok {
                    return Err(err(start, format!("`{text}` is not a number")));
                }
                out.push((start, if float { Tok::Float } else { Tok::Int }));
                i = j;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].is_ascii_alphanumeric() || chars[j] == '_' || chars[j] == '-')
                {
                    j += 1;
                }
                out.push((start, Tok::Word(chars[i..j].iter().collect())));
                i = j;
            }
            other => return Err(err(start, format!("unexpected character `{other}`"))),
        }
    }
    Ok(out)
}

/// Index one past the closing quote of the string starting at `open` (a `'`).
fn string_end(chars: &[char], open: usize) -> Result<usize, PatternError> {
    let mut j = open + 1;
    while j < chars.len() {
        match chars[j] {
            '\\' => match chars.get(j + 1) {
                Some('\'' | '\\') => j += 2,
                _ => return Err(err(j, "in a string only `\\'` and `\\\\` are escapes")),
            },
            '\'' => return Ok(j + 1),
            _ => j += 1,
        }
    }
    Err(err(open, "string not closed: expected a closing `'`"))
}

fn check_timestamp(s: &str) -> Result<(), String> {
    crate::stix::check_timestamp(s)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(o, _)| *o)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }

    fn expect(&mut self, t: &Tok, what: &str) -> Result<(), PatternError> {
        if self.peek() == Some(t) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn expect_word(&mut self, w: &str) -> Result<(), PatternError> {
        if self.is_word(w) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{w}`")))
        }
    }

    fn unexpected(&self, what: &str) -> PatternError {
        match self.peek() {
            Some(t) => err(self.offset(), format!("expected {what}, found {}", describe(t))),
            None => err(self.end, format!("expected {what}, found the end of the pattern")),
        }
    }

    fn pattern(&mut self) -> Result<(), PatternError> {
        self.obs_or()?;
        while self.is_word("FOLLOWEDBY") {
            self.pos += 1;
            self.obs_or()?;
        }
        Ok(())
    }

    fn obs_or(&mut self) -> Result<(), PatternError> {
        self.obs_and()?;
        while self.is_word("OR") {
            self.pos += 1;
            self.obs_and()?;
        }
        Ok(())
    }

    fn obs_and(&mut self) -> Result<(), PatternError> {
        self.obs_qual()?;
        while self.is_word("AND") {
            self.pos += 1;
            self.obs_qual()?;
        }
        Ok(())
    }

    fn obs_qual(&mut self) -> Result<(), PatternError> {
        self.obs()?;
        loop {
            if self.is_word("WITHIN") {
                self.pos += 1;
                match self.peek() {
                    Some(Tok::Int | Tok::Float) => self.pos += 1,
                    _ => return Err(self.unexpected("a number of seconds after WITHIN")),
                }
                self.expect_word("SECONDS")?;
            } else if self.is_word("REPEATS") {
                self.pos += 1;
                self.expect(&Tok::Int, "an integer after REPEATS")?;
                self.expect_word("TIMES")?;
            } else if self.is_word("START") {
                self.pos += 1;
                self.expect(&Tok::Timestamp, "a timestamp t'…' after START")?;
                self.expect_word("STOP")?;
                self.expect(&Tok::Timestamp, "a timestamp t'…' after STOP")?;
            } else {
                return Ok(());
            }
        }
    }

    fn obs(&mut self) -> Result<(), PatternError> {
        match self.peek() {
            Some(Tok::LBracket) => {
                self.pos += 1;
                self.cmp_or()?;
                self.expect(&Tok::RBracket, "`]` closing the observation expression")
            }
            Some(Tok::LParen) => {
                self.pos += 1;
                self.pattern()?;
                self.expect(&Tok::RParen, "`)`")
            }
            _ => Err(self.unexpected("an observation expression `[…]`")),
        }
    }

    fn cmp_or(&mut self) -> Result<(), PatternError> {
        self.cmp_and()?;
        while self.is_word("OR") {
            self.pos += 1;
            self.cmp_and()?;
        }
        Ok(())
    }

    fn cmp_and(&mut self) -> Result<(), PatternError> {
        self.test()?;
        while self.is_word("AND") {
            self.pos += 1;
            self.test()?;
        }
        Ok(())
    }

    fn test(&mut self) -> Result<(), PatternError> {
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            self.cmp_or()?;
            return self.expect(&Tok::RParen, "`)`");
        }
        if self.is_word("EXISTS") {
            self.pos += 1;
            return self.path();
        }
        self.path()?;
        if self.is_word("NOT") {
            self.pos += 1;
        }
        match self.peek().cloned() {
            Some(Tok::Op(_)) => {
                self.pos += 1;
                self.literal()
            }
            Some(Tok::Word(w)) if w == "IN" => {
                self.pos += 1;
                self.expect(&Tok::LParen, "`(` after IN")?;
                self.literal()?;
                while self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                    self.literal()?;
                }
                self.expect(&Tok::RParen, "`)` closing the IN list")
            }
            Some(Tok::Word(w))
                if matches!(w.as_str(), "LIKE" | "MATCHES" | "ISSUBSET" | "ISSUPERSET") =>
            {
                self.pos += 1;
                self.expect(&Tok::Str, &format!("a string after {w}"))
            }
            _ => Err(self.unexpected(
                "a comparison operator (=, !=, <, <=, >, >=, IN, LIKE, MATCHES, ISSUBSET, ISSUPERSET)",
            )),
        }
    }

    fn literal(&mut self) -> Result<(), PatternError> {
        match self.peek() {
            Some(Tok::Str | Tok::Int | Tok::Float | Tok::Timestamp | Tok::Hex | Tok::Binary) => {
                self.pos += 1;
                Ok(())
            }
            Some(Tok::Word(w)) if w == "true" || w == "false" => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(self.unexpected("a literal (string, number, boolean, t'…', h'…', b'…')")),
        }
    }

    fn path(&mut self) -> Result<(), PatternError> {
        let at = self.offset();
        match self.peek() {
            Some(Tok::Word(w)) => {
                if !w.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
                    return Err(err(
                        at,
                        format!("object type `{w}`: expected lowercase a-z, 0-9 and `-`"),
                    ));
                }
                self.pos += 1;
            }
            _ => return Err(self.unexpected("an object path such as `ipv4-addr:value`")),
        }
        self.expect(&Tok::Colon, "`:` after the object type")?;
        self.component()?;
        loop {
            match self.peek() {
                Some(Tok::Dot) => {
                    self.pos += 1;
                    self.component()?;
                }
                Some(Tok::LBracket) => {
                    self.pos += 1;
                    match self.peek() {
                        Some(Tok::Int | Tok::Star) => self.pos += 1,
                        _ => return Err(self.unexpected("a list index or `*`")),
                    }
                    self.expect(&Tok::RBracket, "`]` closing the list index")?;
                }
                _ => return Ok(()),
            }
        }
    }

    fn component(&mut self) -> Result<(), PatternError> {
        match self.peek() {
            Some(Tok::Word(_) | Tok::Str) => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(self.unexpected("a property name")),
        }
    }
}

/// Checks `pattern` against the STIX patterning grammar.
///
/// # Errors
/// The first syntax error, with its character offset and what was expected there.
pub fn check(pattern: &str) -> Result<(), PatternError> {
    let toks = lex(pattern)?;
    let end = pattern.chars().count();
    let mut p = Parser { toks, pos: 0, end };
    p.pattern()?;
    if p.pos < p.toks.len() {
        return Err(p.unexpected("the end of the pattern or FOLLOWEDBY/AND/OR"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_patterns() {
        for p in [
            "[ipv4-addr:value = '198.51.100.1']",
            "[file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f']",
            "[domain-name:value = 'lantern.example' OR domain-name:value = 'x.example']",
            "[email-message:from_ref.value MATCHES '.+\\\\@example\\\\.com$' AND email-message:subject LIKE 'inv%']",
            "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_port IN (80, 443)] WITHIN 300 SECONDS",
            "([file:name = 'a.exe'] FOLLOWEDBY [process:pid > 4]) REPEATS 5 TIMES",
            "[x-custom:items[*].name NOT = 'a'] START t'2020-01-01T00:00:00Z' STOP t'2021-01-01T00:00:00.5Z'",
            "[file:content_ref.payload_bin = b'aGVsbG8=' AND file:magic = h'cafe']",
            "[ipv4-addr:value ISSUBSET '198.51.100.0/24']",
            "[x509-certificate:is_self_signed = true]",
            "[(file:size >= 1.5 OR file:size < -2) AND EXISTS file:name]",
        ] {
            check(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        }
    }

    #[test]
    fn invalid_patterns_say_where_and_what() {
        for (p, at, needle) in [
            ("", 0, "observation expression"),
            ("[ipv4-addr:value = '1.2.3.4'", 28, "`]`"),
            ("[ipv4-addr:value == '1.2.3.4']", 18, "literal"),
            ("[ipv4-addr value = '1']", 11, "`:`"),
            ("[IPV4:value = '1']", 1, "lowercase"),
            ("[file:name = 'a]", 13, "not closed"),
            ("[file:name = 'a'] WITHIN SECONDS", 25, "number of seconds"),
            ("[file:name = 'a'] [file:name = 'b']", 18, "end of the pattern"),
            ("[file:created > t'yesterday']", 16, "timestamp"),
            ("[file:name LIKE 5]", 16, "string after LIKE"),
            ("[file:magic = h'abc']", 14, "hex"),
        ] {
            let e = check(p).expect_err(p);
            assert_eq!(e.offset, at, "{p}: {e}");
            assert!(e.message.contains(needle), "{p}: {e}");
        }
    }

    proptest::proptest! {
        /// Any input gives an answer (no panic), and quoting any value keeps a pattern valid.
        #[test]
        fn never_panics(s in ".{0,80}") {
            let _ = check(&s);
            let quoted = s.replace('\\', "\\\\").replace('\'', "\\'");
            let p = format!("[url:value = '{quoted}']");
            proptest::prop_assert!(check(&p).is_ok(), "{}", p);
        }
    }
}
