//! A reader for the `java.util.Properties` text format, which is what `zoo.cfg` (and a
//! dynamic config file) is written in.
//!
//! Owns: splitting text into logical lines and those into `(key, value)` pairs exactly as
//! `Properties.load` does. Knows nothing about ZooKeeper keys.
//!
//! Grammar (from the `Properties.load(Reader)` contract):
//!
//! ```text
//! natural line   = chars up to "\n", "\r" or "\r\n"
//! leading ws     = " " | "\t" | "\f"        skipped at the start of every natural line
//! blank line     = only ws                   ignored (outside a continuation)
//! comment        = first non-ws char of a logical line is "#" or "!"; the whole natural
//!                  line is ignored, and a trailing "\" does NOT continue a comment
//! continuation   = a natural line ending in an odd number of "\": the last "\" is
//!                  dropped, the next natural line (leading ws skipped) is appended; an
//!                  odd "\" at end of input is dropped too
//! key            = chars up to the first unescaped "=", ":" or ws
//! separator      = ws* [("=" | ":") ws*]    (only one "=" or ":" is eaten)
//! value          = the rest of the logical line, trailing ws KEPT
//! escapes        = "\t" "\n" "\r" "\f", "\uXXXX" (exactly four hex digits, else an
//!                  error), "\" + any other char = that char
//! ```
//!
//! Invariants: never panics on any input; entries come back in file order, duplicates
//! included (the caller decides that the last one wins, as `Properties` does).

use std::fmt;

/// One `key=value` pair, unescaped, with the 1-based line number of the natural line where
/// its logical line starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// The only thing that can be malformed in the properties syntax: a `\u` escape not followed
/// by four hex digits (`Properties.load` throws "Malformed \uxxxx encoding.").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedEscape {
    pub line: usize,
}

impl fmt::Display for MalformedEscape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed \\uxxxx escape on line {}", self.line)
    }
}

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\u{c}'
}

/// Splits `text` into natural lines, each with its 1-based number. "\r\n" counts as one
/// terminator, a lone "\r" as one too.
fn natural_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    let mut number = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                out.push((number, &text[start..i]));
                number += 1;
                i += 1;
                start = i;
            }
            b'\r' => {
                out.push((number, &text[start..i]));
                number += 1;
                i += 1;
                if i < bytes.len() && bytes[i] == b'\n' {
                    i += 1;
                }
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        out.push((number, &text[start..]));
    }
    out
}

/// True when `s` ends in an odd number of backslashes.
fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Joins natural lines into logical lines (comments and blank lines dropped, continuations
/// applied); each comes with the number of its first natural line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (number, raw) in natural_lines(text) {
        let trimmed = raw.trim_start_matches(is_ws);
        let (start_line, mut buf) = match current.take() {
            Some(open) => open,
            None => {
                if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
                    continue;
                }
                (number, String::new())
            }
        };
        if ends_with_odd_backslashes(trimmed) {
            buf.push_str(&trimmed[..trimmed.len() - 1]);
            current = Some((start_line, buf));
        } else {
            buf.push_str(trimmed);
            out.push((start_line, buf));
        }
    }
    if let Some(open) = current {
        out.push(open);
    }
    out
}

/// Splits a logical line into its raw (still escaped) key and value.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut preceding_backslash = false;
    let mut key_end = line.len();
    let mut value_start = line.len();
    let mut has_separator = false;
    for (i, c) in line.char_indices() {
        if !preceding_backslash && (c == '=' || c == ':') {
            key_end = i;
            value_start = i + 1;
            has_separator = true;
            break;
        }
        if !preceding_backslash && is_ws(c) {
            key_end = i;
            value_start = i + c.len_utf8();
            break;
        }
        preceding_backslash = c == '\\' && !preceding_backslash;
    }
    let mut rest = &line[value_start..];
    while let Some(c) = rest.chars().next() {
        if is_ws(c) {
            rest = &rest[c.len_utf8()..];
        } else if !has_separator && (c == '=' || c == ':') {
            has_separator = true;
            rest = &rest[1..];
        } else {
            break;
        }
    }
    (&line[..key_end], rest)
}

/// Resolves the escapes of a key or value.
fn unescape(raw: &str, line: usize) -> Result<String, MalformedEscape> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => {} // a lone trailing backslash: nothing to escape
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let mut code: u32 = 0;
                for _ in 0..4 {
                    let digit = chars
                        .next()
                        .and_then(|d| d.to_digit(16))
                        .ok_or(MalformedEscape { line })?;
                    code = code * 16 + digit;
                }
                // Java strings are UTF-16; a lone surrogate has no `char`, so it becomes
                // U+FFFD (Java would keep it and mangle it on output anyway).
                out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
            }
            Some(other) => out.push(other),
        }
    }
    Ok(out)
}

/// Parses properties text into entries in file order.
pub fn parse(text: &str) -> Result<Vec<Entry>, MalformedEscape> {
    let mut entries = Vec::new();
    for (line, logical) in logical_lines(text) {
        let (raw_key, raw_value) = split_key_value(&logical);
        entries.push(Entry {
            key: unescape(raw_key, line)?,
            value: unescape(raw_value, line)?,
            line,
        });
    }
    Ok(entries)
}

/// Decodes file bytes. `Properties.load(InputStream)` reads ISO-8859-1; corral reads UTF-8
/// when the bytes are valid UTF-8 (so non-ASCII paths survive) and falls back to
/// ISO-8859-1 otherwise, which is a total mapping and so cannot fail. A UTF-8 byte-order
/// mark is dropped.
pub fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// `String.trim()` as Java does it: strips every char <= U+0020 at both ends (ZooKeeper
/// trims each key and value this way).
pub fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect()
    }

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn separators() {
        assert_eq!(
            pairs("a=1\nb:2\nc 3\nd = 4\ne : 5\nf\t6\ng  =  7\n"),
            vec![
                p("a", "1"),
                p("b", "2"),
                p("c", "3"),
                p("d", "4"),
                p("e", "5"),
                p("f", "6"),
                p("g", "7")
            ]
        );
    }

    #[test]
    fn only_one_separator_is_eaten() {
        assert_eq!(
            pairs("a==1\nb = :2\nc:=3"),
            vec![p("a", "=1"), p("b", ":2"), p("c", "=3")]
        );
    }

    #[test]
    fn key_without_value() {
        assert_eq!(
            pairs("lonely\nempty=\n"),
            vec![p("lonely", ""), p("empty", "")]
        );
    }

    #[test]
    fn comments_and_blank_lines() {
        let text = "# comment\n! bang comment\n   # indented comment\n\n   \t\nkey=value # not a comment\n";
        assert_eq!(pairs(text), vec![p("key", "value # not a comment")]);
    }

    #[test]
    fn trailing_whitespace_is_kept_leading_is_not() {
        assert_eq!(pairs("   key = value  \t\n"), vec![p("key", "value  \t")]);
    }

    #[test]
    fn line_continuations() {
        let text = "servers=a,\\\n    b,\\\n\t c\nnext=1\n";
        assert_eq!(pairs(text), vec![p("servers", "a,b,c"), p("next", "1")]);
    }

    #[test]
    fn continuation_does_not_make_next_line_a_comment() {
        assert_eq!(pairs("a=1\\\n#2\n"), vec![p("a", "1#2")]);
    }

    #[test]
    fn comment_with_trailing_backslash_does_not_continue() {
        assert_eq!(pairs("# comment \\\na=1\n"), vec![p("a", "1")]);
    }

    #[test]
    fn even_backslashes_do_not_continue() {
        assert_eq!(pairs("a=x\\\\\nb=2\n"), vec![p("a", "x\\"), p("b", "2")]);
    }

    #[test]
    fn continuation_into_blank_line_ends_the_line() {
        assert_eq!(pairs("a=1\\\n\nb=2"), vec![p("a", "1"), p("b", "2")]);
    }

    #[test]
    fn backslash_at_end_of_input_is_dropped() {
        assert_eq!(pairs("a=1\\"), vec![p("a", "1")]);
    }

    #[test]
    fn crlf_and_cr_line_ends() {
        assert_eq!(
            pairs("a=1\r\nb=2\rc=3"),
            vec![p("a", "1"), p("b", "2"), p("c", "3")]
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(
            pairs("k\\=ey\\ x=v\\ta\\nl\\u0041\\u00e9\\q\\\\"),
            vec![p("k=ey x", "v\ta\nlAéq\\")]
        );
        assert_eq!(pairs("a\\:b:c"), vec![p("a:b", "c")]);
    }

    #[test]
    fn malformed_unicode_escape_is_an_error_with_line() {
        assert_eq!(
            parse("ok=1\nbad=\\u12G4\n"),
            Err(MalformedEscape { line: 2 })
        );
        assert_eq!(parse("bad=\\u12"), Err(MalformedEscape { line: 1 }));
    }

    #[test]
    fn line_numbers_point_at_the_first_natural_line() {
        let entries = parse("\n# c\na=1\\\n  2\nb=3\n").unwrap();
        assert_eq!(entries[0].line, 3);
        assert_eq!(entries[1].line, 5);
    }

    #[test]
    fn decode_falls_back_to_latin1_and_drops_bom() {
        assert_eq!(decode(b"\xEF\xBB\xBFa=1"), "a=1");
        assert_eq!(decode("dataDir=/tmp/é".as_bytes()), "dataDir=/tmp/é");
        assert_eq!(decode(b"a=\xE9"), "a=é");
    }

    #[test]
    fn java_trim_strips_control_chars() {
        assert_eq!(java_trim("\u{1} a b\r\n"), "a b");
    }

    #[test]
    fn never_panics_on_odd_input() {
        for text in [
            "", "\\", "=", ":", " ", "\\u", "é=\\", "\r\r\n\n", "a\\", "\\\n\\\n", "#\\", "x=\u{0}",
        ] {
            let _ = parse(text);
        }
    }
}
