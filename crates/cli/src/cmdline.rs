//! Option parsing with the rules of Apache commons-cli 1.5's `DefaultParser`, which every
//! zkCli command uses: options may stand anywhere among the arguments, `-se` is `-s -e`,
//! `-t5000` is `-t 5000`, a token that looks like a known option is never taken as an
//! option's value, `--` ends option parsing, and the errors carry commons-cli's texts
//! (zkCli prints them as `org.apache.commons.cli.<Exception>: <message>`).
//!
//! Owns: [`OptionsSpec`] (a command's options, static data) and [`parse`]. zkCli's options
//! have short names only (some longer than one letter, like reconfig's `-members`), so the
//! long-option branches of commons-cli reduce to "unrecognized option".

/// One option: its name (without the dash), whether it takes a value, its description (only
/// used in the text of a missing required option group).
#[derive(Debug, Clone, Copy)]
pub struct OptSpec {
    pub name: &'static str,
    pub has_arg: bool,
    pub desc: &'static str,
}

/// A mutually exclusive group of options (commons-cli `OptionGroup`).
#[derive(Debug, Clone, Copy)]
pub struct GroupSpec {
    pub members: &'static [&'static str],
    pub required: bool,
}

/// Every option of one command.
#[derive(Debug, Clone, Copy)]
pub struct OptionsSpec {
    pub opts: &'static [OptSpec],
    pub group: Option<GroupSpec>,
}

impl OptionsSpec {
    pub const NONE: OptionsSpec = OptionsSpec {
        opts: &[],
        group: None,
    };

    fn get(&self, name: &str) -> Option<&OptSpec> {
        self.opts.iter().find(|o| o.name == name)
    }

    /// `Options.hasShortOption` (strips leading hyphens first).
    fn has_short(&self, name: &str) -> bool {
        self.get(strip_leading_hyphens(name)).is_some()
    }
}

/// A parse failure, as the commons-cli exception zkCli would print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Unrecognized(String),
    MissingArgument(String),
    AlreadySelected { option: String, selected: String },
    MissingOption(String),
}

impl ParseError {
    /// `exception.toString()`: the class name, `: `, the message.
    pub fn java_text(&self) -> String {
        match self {
            ParseError::Unrecognized(token) => format!(
                "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: {token}"
            ),
            ParseError::MissingArgument(name) => format!(
                "org.apache.commons.cli.MissingArgumentException: Missing argument for option: {name}"
            ),
            ParseError::AlreadySelected { option, selected } => format!(
                "org.apache.commons.cli.AlreadySelectedException: The option '{option}' was \
                 specified but an option from this group has already been selected: '{selected}'"
            ),
            ParseError::MissingOption(group) => format!(
                "org.apache.commons.cli.MissingOptionException: Missing required option: {group}"
            ),
        }
    }
}

/// The result of a parse: plain arguments (the command name first) and each occurrence of
/// an option with its values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandLine {
    pub args: Vec<String>,
    occurrences: Vec<(&'static str, Vec<String>)>,
}

impl CommandLine {
    pub fn has(&self, name: &str) -> bool {
        self.occurrences.iter().any(|(n, _)| *n == name)
    }

    /// The first value given to `name` (`CommandLine.getOptionValue`).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.occurrences
            .iter()
            .filter(|(n, _)| *n == name)
            .flat_map(|(_, v)| v.iter())
            .map(String::as_str)
            .next()
    }
}

fn strip_leading_hyphens(s: &str) -> &str {
    s.strip_prefix("--")
        .or_else(|| s.strip_prefix('-'))
        .unwrap_or(s)
}

/// `Util.stripLeadingAndTrailingQuotes`.
fn strip_quotes(s: &str) -> String {
    if s.len() > 1 && s.starts_with('"') && s.ends_with('"') && !s[1..s.len() - 1].contains('"') {
        s[1..s.len() - 1].to_owned()
    } else {
        s.to_owned()
    }
}

struct Parser<'a> {
    spec: &'a OptionsSpec,
    cmd: CommandLine,
    /// Index into `cmd.occurrences` of the option waiting for its value.
    current: Option<usize>,
    skip_parsing: bool,
    selected: Option<&'static str>,
}

impl Parser<'_> {
    fn accepts_arg(&self, idx: usize) -> bool {
        let (name, values) = &self.cmd.occurrences[idx];
        self.spec.get(name).is_some_and(|o| o.has_arg) && values.is_empty()
    }

    fn check_required_args(&self) -> Result<(), ParseError> {
        match self.current {
            Some(i) if self.accepts_arg(i) => Err(ParseError::MissingArgument(
                self.cmd.occurrences[i].0.to_owned(),
            )),
            _ => Ok(()),
        }
    }

    fn is_short_option(&self, token: &str) -> bool {
        if !token.starts_with('-') || token.chars().count() == 1 {
            return false;
        }
        let body = &token[1..];
        let name = body.split('=').next().unwrap_or(body);
        if self.spec.has_short(name) {
            return true;
        }
        name.chars()
            .next()
            .is_some_and(|c| self.spec.has_short(c.encode_utf8(&mut [0; 4])))
    }

    /// `!isOption(token) || isNegativeNumber(token)`; no zkCli option name parses as a
    /// number, so only the first part matters.
    fn is_argument(&self, token: &str) -> bool {
        !self.is_short_option(token)
    }

    fn handle_option(&mut self, opt: &'static OptSpec) -> Result<(), ParseError> {
        self.check_required_args()?;
        if let Some(group) = self.spec.group {
            if group.members.contains(&opt.name) {
                match self.selected {
                    Some(sel) if sel != opt.name => {
                        return Err(ParseError::AlreadySelected {
                            option: opt.name.to_owned(),
                            selected: sel.to_owned(),
                        })
                    }
                    _ => self.selected = Some(opt.name),
                }
            }
        }
        self.cmd.occurrences.push((opt.name, Vec::new()));
        self.current = if opt.has_arg {
            Some(self.cmd.occurrences.len() - 1)
        } else {
            None
        };
        Ok(())
    }

    fn unknown(&mut self, token: &str) -> Result<(), ParseError> {
        if token.starts_with('-') && token.chars().count() > 1 {
            return Err(ParseError::Unrecognized(token.to_owned()));
        }
        self.cmd.args.push(token.to_owned());
        Ok(())
    }

    fn add_value(&mut self, value: String) {
        if let Some(i) = self.current {
            self.cmd.occurrences[i].1.push(value);
        }
    }

    fn lookup(&self, name: &str) -> Option<&'static OptSpec> {
        // `spec.opts` is 'static data; re-borrow through the slice to keep the lifetime.
        let opts: &'static [OptSpec] = self.spec.opts;
        opts.iter().find(|o| o.name == name)
    }

    fn concatenated(&mut self, token: &str) -> Result<(), ParseError> {
        let chars: Vec<(usize, char)> = token.char_indices().collect();
        for (pos, &(byte_at, c)) in chars.iter().enumerate().skip(1) {
            let Some(opt) = self.lookup(c.encode_utf8(&mut [0; 4])) else {
                return self.unknown(token);
            };
            self.handle_option(opt)?;
            if self.current.is_some() && pos + 1 != chars.len() {
                let rest = token[byte_at + c.len_utf8()..].to_owned();
                self.add_value(rest);
                break;
            }
        }
        Ok(())
    }

    fn short_or_long(&mut self, token: &str) -> Result<(), ParseError> {
        let t = strip_leading_hyphens(token);
        if t.chars().count() == 1 {
            return match self.lookup(t) {
                Some(opt) => self.handle_option(opt),
                None => self.unknown(token),
            };
        }
        match t.find('=') {
            None => match self.lookup(t) {
                Some(opt) => self.handle_option(opt),
                None => self.concatenated(token),
            },
            Some(eq) => {
                let (name, value) = (&t[..eq], &t[eq + 1..]);
                if name.chars().count() == 1 {
                    match self.lookup(name) {
                        Some(opt) if opt.has_arg => {
                            self.handle_option(opt)?;
                            self.add_value(value.to_owned());
                            self.current = None;
                            Ok(())
                        }
                        _ => self.unknown(token),
                    }
                } else {
                    self.unknown(token)
                }
            }
        }
    }

    fn token(&mut self, token: &str) -> Result<(), ParseError> {
        if self.skip_parsing {
            self.cmd.args.push(token.to_owned());
        } else if token == "--" {
            self.skip_parsing = true;
        } else if self
            .current
            .is_some_and(|i| self.accepts_arg(i) && self.is_argument(token))
        {
            self.add_value(strip_quotes(token));
        } else if token.starts_with("--") {
            self.unknown(token)?;
        } else if token.starts_with('-') && token != "-" {
            self.short_or_long(token)?;
        } else {
            self.unknown(token)?;
        }
        if self.current.is_some_and(|i| !self.accepts_arg(i)) {
            self.current = None;
        }
        Ok(())
    }
}

/// Parses `tokens` (the command name first) against `spec`.
pub fn parse(spec: &OptionsSpec, tokens: &[String]) -> Result<CommandLine, ParseError> {
    let mut p = Parser {
        spec,
        cmd: CommandLine::default(),
        current: None,
        skip_parsing: false,
        selected: None,
    };
    for t in tokens {
        p.token(t)?;
    }
    p.check_required_args()?;
    if let Some(group) = spec.group {
        if group.required && p.selected.is_none() {
            let names: Vec<String> = group
                .members
                .iter()
                .filter_map(|m| spec.get(m))
                .map(|o| format!("-{} {}", o.name, o.desc))
                .collect();
            return Err(ParseError::MissingOption(format!("[{}]", names.join(", "))));
        }
    }
    Ok(p.cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: OptionsSpec = OptionsSpec {
        opts: &[
            OptSpec {
                name: "e",
                has_arg: false,
                desc: "ephemeral",
            },
            OptSpec {
                name: "s",
                has_arg: false,
                desc: "sequential",
            },
            OptSpec {
                name: "t",
                has_arg: true,
                desc: "ttl",
            },
        ],
        group: None,
    };

    const QUOTA: OptionsSpec = OptionsSpec {
        opts: &[
            OptSpec {
                name: "n",
                has_arg: true,
                desc: "num soft quota",
            },
            OptSpec {
                name: "b",
                has_arg: true,
                desc: "bytes soft quota",
            },
        ],
        group: Some(GroupSpec {
            members: &["n", "b"],
            required: true,
        }),
    };

    fn p(spec: &OptionsSpec, line: &str) -> Result<CommandLine, ParseError> {
        let tokens: Vec<String> = line.split(' ').map(str::to_owned).collect();
        parse(spec, &tokens)
    }

    #[test]
    fn options_anywhere_and_concatenated() {
        let c = p(&CREATE, "create /a -s data -e").unwrap();
        assert_eq!(c.args, ["create", "/a", "data"]);
        assert!(c.has("s") && c.has("e") && !c.has("t"));
        let c = p(&CREATE, "create -se /a").unwrap();
        assert!(c.has("s") && c.has("e"));
        let c = p(&CREATE, "create -t5000 /a").unwrap();
        assert_eq!(c.value("t"), Some("5000"));
        let c = p(&CREATE, "create -t 7 -t 8 /a").unwrap();
        assert_eq!(c.value("t"), Some("7"));
        let c = p(&CREATE, "create -t=9 /a").unwrap();
        assert_eq!(c.value("t"), Some("9"));
        let c = p(&CREATE, "create -t -1 /a").unwrap();
        assert_eq!(c.value("t"), Some("-1"));
        let c = p(&CREATE, "create -- -s /a").unwrap();
        assert_eq!(c.args, ["create", "-s", "/a"]);
        assert!(!c.has("s"));
        let c = p(&CREATE, "create - /a").unwrap();
        assert_eq!(c.args, ["create", "-", "/a"]);
    }

    #[test]
    fn errors_carry_commons_cli_texts() {
        assert_eq!(
            p(&CREATE, "create -x /a").unwrap_err().java_text(),
            "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: -x"
        );
        assert_eq!(
            p(&CREATE, "create /a -1").unwrap_err(),
            ParseError::Unrecognized("-1".into())
        );
        assert_eq!(
            p(&CREATE, "create -sx /a").unwrap_err(),
            ParseError::Unrecognized("-sx".into())
        );
        assert_eq!(
            p(&CREATE, "create /a -t").unwrap_err().java_text(),
            "org.apache.commons.cli.MissingArgumentException: Missing argument for option: t"
        );
        assert_eq!(
            p(&CREATE, "create -t -s /a").unwrap_err(),
            ParseError::MissingArgument("t".into())
        );
        assert_eq!(
            p(&CREATE, "create --t 5").unwrap_err(),
            ParseError::Unrecognized("--t".into())
        );
        assert_eq!(
            p(&QUOTA, "setquota -n 2 -b 3 /q").unwrap_err().java_text(),
            "org.apache.commons.cli.AlreadySelectedException: The option 'b' was specified but \
             an option from this group has already been selected: 'n'"
        );
        assert_eq!(
            p(&QUOTA, "setquota /q").unwrap_err().java_text(),
            "org.apache.commons.cli.MissingOptionException: Missing required option: \
             [-n num soft quota, -b bytes soft quota]"
        );
        assert!(p(&QUOTA, "setquota -n 2 -n 3 /q").is_ok());
    }
}
