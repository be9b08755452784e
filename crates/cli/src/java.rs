//! The Java behaviours zkCli's output depends on, re-implemented from their documented
//! semantics: how `ZooKeeperMain` splits a command line into words, `Integer.parseInt` /
//! `Long.parseLong` / `Integer.decode` and their error texts, and `java.util.Date.toString()`.
//! (`PathUtils.validatePath` is the client's: `corral_client::connect_string::check_path`.)
//!
//! Owns: pure functions only; no I/O except reading the system time zone once (cached).
//! Invariant: every function here is total (never panics) on arbitrary input, since its
//! input is whatever the user typed or the server sent.

use std::sync::OnceLock;

/// Java's `\s`: space, tab, newline, vertical tab, form feed, carriage return.
fn is_java_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r')
}

/// Splits a command line the way zkCli does: the words are the successive matches of
/// `\s*([^"']\S*|"[^"]*"|'[^']*')\s*`, and a word wrapped in matching quotes loses them.
/// An unterminated quote is skipped (`create /a "b` gives `create`, `/a`, `b`), and a line
/// of blanks is one word made of a blank (zkCli then reports an unknown command).
pub fn tokenize(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < chars.len() {
        let found = (pos..chars.len()).find_map(|start| match_word_at(&chars, start));
        let Some((word_start, word_end, end)) = found else {
            break;
        };
        let word: String = chars[word_start..word_end].iter().collect();
        out.push(strip_matching_quotes(word));
        if end <= pos {
            break; // cannot happen (a word has at least one char); guards the loop
        }
        pos = end;
    }
    out
}

/// One attempt of the word pattern anchored at `start`: `(word start, word end, match end)`.
fn match_word_at(chars: &[char], start: usize) -> Option<(usize, usize, usize)> {
    let mut blank_end = start;
    while blank_end < chars.len() && is_java_space(chars[blank_end]) {
        blank_end += 1;
    }
    // `\s*` is greedy and gives back one char at a time when the group cannot match.
    for word_start in (start..=blank_end).rev() {
        if let Some(word_end) = match_word_group(chars, word_start) {
            let mut end = word_end;
            while end < chars.len() && is_java_space(chars[end]) {
                end += 1;
            }
            return Some((word_start, word_end, end));
        }
    }
    None
}

fn match_word_group(chars: &[char], at: usize) -> Option<usize> {
    let c = *chars.get(at)?;
    if c == '"' || c == '\'' {
        let close = chars[at + 1..].iter().position(|&d| d == c)?;
        return Some(at + 1 + close + 1);
    }
    let mut end = at + 1;
    while end < chars.len() && !is_java_space(chars[end]) {
        end += 1;
    }
    Some(end)
}

/// `^(['"])(.*)(\1)$` → the middle part (Java's `.` does not match line terminators).
fn strip_matching_quotes(word: String) -> String {
    let chars: Vec<char> = word.chars().collect();
    if chars.len() >= 2 {
        let (first, last) = (chars[0], chars[chars.len() - 1]);
        let middle = &chars[1..chars.len() - 1];
        let terminator = |c: &char| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}');
        if (first == '"' || first == '\'') && last == first && !middle.iter().any(terminator) {
            return middle.iter().collect();
        }
    }
    word
}

/// A Java exception zkCli does not catch: the JVM prints `Exception in thread "main" ` and
/// this text, then exits with status 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncaught(pub String);

impl Uncaught {
    pub fn number_format(input: &str, radix: u32) -> Uncaught {
        let suffix = if radix == 10 {
            String::new()
        } else {
            format!(" under radix {radix}")
        };
        Uncaught(format!(
            "java.lang.NumberFormatException: For input string: \"{input}\"{suffix}"
        ))
    }

    pub fn illegal_argument(msg: &str) -> Uncaught {
        Uncaught(format!("java.lang.IllegalArgumentException: {msg}"))
    }

    /// The line the JVM prints to stderr.
    pub fn line(&self) -> String {
        format!("Exception in thread \"main\" {}", self.0)
    }
}

/// `Long.parseLong(s, radix)` with the bounds of `min..=max`; `None` on any format error.
fn parse_signed(s: &str, radix: u32, min: i64, max: i64) -> Option<i64> {
    let (negative, digits) = match s.chars().next()? {
        '-' => (true, &s[1..]),
        '+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulate negatively so that the most negative value parses.
    let mut acc: i128 = 0;
    for c in digits.chars() {
        let d = c.to_digit(radix)? as i128;
        acc = acc * radix as i128 - d;
        if acc < -(1i128 << 64) {
            return None; // far out of range; stop before i128 could overflow
        }
    }
    let value = if negative { acc } else { -acc };
    if value < min as i128 || value > max as i128 {
        return None;
    }
    Some(value as i64)
}

/// `Integer.parseInt(s)`.
pub fn parse_int(s: &str) -> Result<i32, Uncaught> {
    parse_signed(s, 10, i32::MIN as i64, i32::MAX as i64)
        .map(|v| v as i32)
        .ok_or_else(|| Uncaught::number_format(s, 10))
}

/// `Long.parseLong(s)`.
pub fn parse_long(s: &str) -> Result<i64, Uncaught> {
    parse_signed(s, 10, i64::MIN, i64::MAX).ok_or_else(|| Uncaught::number_format(s, 10))
}

/// `Long.parseLong(s, 16)`.
pub fn parse_long_hex(s: &str) -> Option<i64> {
    parse_signed(s, 16, i64::MIN, i64::MAX)
}

/// `Integer.decode(s)`: decimal, `0x`/`0X`/`#` hex or leading-`0` octal, optional sign.
pub fn decode_int(s: &str) -> Result<i32, Uncaught> {
    if s.is_empty() {
        return Err(Uncaught(
            "java.lang.NumberFormatException: Zero length string".into(),
        ));
    }
    let (negative, mut rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let mut radix = 10;
    if rest.starts_with("0x") || rest.starts_with("0X") {
        rest = &rest[2..];
        radix = 16;
    } else if let Some(r) = rest.strip_prefix('#') {
        rest = r;
        radix = 16;
    } else if rest.starts_with('0') && rest.len() > 1 {
        rest = &rest[1..];
        radix = 8;
    }
    if rest.starts_with('-') || rest.starts_with('+') {
        return Err(Uncaught(
            "java.lang.NumberFormatException: Sign character in wrong position".into(),
        ));
    }
    let constant = if negative {
        format!("-{rest}")
    } else {
        rest.to_owned()
    };
    parse_signed(&constant, radix, i32::MIN as i64, i32::MAX as i64)
        .map(|v| v as i32)
        .ok_or_else(|| Uncaught::number_format(&constant, radix))
}

fn system_zone() -> &'static jiff::tz::TimeZone {
    static ZONE: OnceLock<jiff::tz::TimeZone> = OnceLock::new();
    ZONE.get_or_init(jiff::tz::TimeZone::system)
}

/// `new java.util.Date(ms).toString()` in the system time zone, e.g.
/// `Sun Nov 22 00:00:00 UTC 2026` (`EEE MMM dd HH:mm:ss zzz yyyy`).
pub fn date_to_string(ms: i64) -> String {
    date_in_zone(ms, system_zone())
}

/// [`date_to_string`] in a given zone (tests).
pub fn date_in_zone(ms: i64, zone: &jiff::tz::TimeZone) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => {
            let zoned = ts.to_zoned(zone.clone());
            zoned.strftime("%a %b %d %H:%M:%S %Z %Y").to_string()
        }
        // Beyond year 9999: jiff's range ends; print the raw value rather than fail.
        Err(_) => format!("{ms}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(line: &str) -> Vec<String> {
        tokenize(line)
    }

    #[test]
    fn tokenize_like_zookeeper_main() {
        assert_eq!(t("ls /"), ["ls", "/"]);
        assert_eq!(t("   ls    /   "), ["ls", "/"]);
        assert_eq!(
            t("create /a \"hello world\""),
            ["create", "/a", "hello world"]
        );
        assert_eq!(t("create /a 'x y'"), ["create", "/a", "x y"]);
        assert_eq!(t("create /a \"\""), ["create", "/a", ""]);
        // an unterminated quote is skipped
        assert_eq!(t("create /a \"ab"), ["create", "/a", "ab"]);
        // quotes inside a word stay
        assert_eq!(t("create /a x\"y\""), ["create", "/a", "x\"y\""]);
        assert_eq!(t("create /a \"x\"y"), ["create", "/a", "x", "y"]);
        // blanks only: one word made of a blank
        assert_eq!(t(" "), [" "]);
        assert_eq!(t("\""), Vec::<String>::new());
        assert_eq!(t(" \"ab"), [" \"ab"]);
        assert_eq!(t("a\tb"), ["a", "b"]);
    }

    #[test]
    fn java_integers() {
        assert_eq!(parse_int("5"), Ok(5));
        assert_eq!(parse_int("-1"), Ok(-1));
        assert_eq!(parse_int("+7"), Ok(7));
        assert_eq!(parse_int("-2147483648"), Ok(i32::MIN));
        assert_eq!(
            parse_int("2147483648").unwrap_err().0,
            "java.lang.NumberFormatException: For input string: \"2147483648\""
        );
        assert!(parse_int("").is_err());
        assert!(parse_int("-").is_err());
        assert!(parse_int("1.5").is_err());
        assert_eq!(parse_long("-9223372036854775808"), Ok(i64::MIN));
        assert!(parse_long("9223372036854775808").is_err());
        assert_eq!(decode_int("0x10"), Ok(16));
        assert_eq!(decode_int("#10"), Ok(16));
        assert_eq!(decode_int("010"), Ok(8));
        assert_eq!(decode_int("0"), Ok(0));
        assert_eq!(decode_int("-3"), Ok(-3));
        assert_eq!(
            decode_int("0xzz").unwrap_err().0,
            "java.lang.NumberFormatException: For input string: \"zz\" under radix 16"
        );
        assert_eq!(
            decode_int("abc").unwrap_err().line(),
            "Exception in thread \"main\" java.lang.NumberFormatException: For input string: \"abc\""
        );
        assert_eq!(parse_long_hex("ff"), Some(255));
    }

    #[test]
    fn java_dates() {
        let utc = jiff::tz::TimeZone::UTC;
        assert_eq!(date_in_zone(0, &utc), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(
            date_in_zone(1_795_305_600_000, &utc),
            "Sun Nov 22 00:00:00 UTC 2026"
        );
        assert_eq!(date_in_zone(-1, &utc), "Wed Dec 31 23:59:59 UTC 1969");
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(
            date_in_zone(1_783_000_000_000, &berlin),
            "Thu Jul 02 15:46:40 CEST 2026"
        );
    }
}
