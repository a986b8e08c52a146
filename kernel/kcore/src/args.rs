//! Console command lines: splitting into words and reading flags.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Why a command line or its arguments were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// A quote was opened and never closed.
    UnclosedQuote,
    /// A flag the command does not know.
    UnknownFlag(String),
    /// More positional arguments than the command takes.
    UnexpectedArgument(String),
    /// A required positional argument is missing.
    Missing(&'static str),
    /// An argument could not be read as the kind of value it names.
    Invalid { what: &'static str, value: String },
    /// A flag that needs a value came last.
    FlagNeedsValue(String),
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::UnclosedQuote => write!(f, "unclosed quote"),
            ArgError::UnknownFlag(x) => write!(f, "unknown flag `{x}`"),
            ArgError::UnexpectedArgument(x) => write!(f, "unexpected argument `{x}`"),
            ArgError::Missing(what) => write!(f, "missing {what}"),
            ArgError::Invalid { what, value } => write!(f, "`{value}` is not a valid {what}"),
            ArgError::FlagNeedsValue(x) => write!(f, "flag `{x}` needs a value"),
        }
    }
}

/// Splits a line into words: whitespace separates, double quotes group.
pub fn split_words(line: &str) -> Result<Vec<String>, ArgError> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(core::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err(ArgError::UnclosedQuote);
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

/// The arguments of one command, consumed as the command reads them; `finish` refuses leftovers.
#[derive(Debug)]
pub struct Args {
    words: Vec<String>,
    used: Vec<bool>,
}

impl Args {
    /// Arguments from words (the command name already removed).
    pub fn new(words: Vec<String>) -> Self {
        let used = alloc::vec![false; words.len()];
        Self { words, used }
    }

    /// Takes a boolean flag such as `--json`; true when present.
    pub fn flag(&mut self, name: &str) -> bool {
        let mut found = false;
        for (w, used) in self.words.iter().zip(self.used.iter_mut()) {
            if !*used && w == name {
                *used = true;
                found = true;
            }
        }
        found
    }

    /// Takes a flag with a value (`--count 10` or `--count=10`), parsed as a number.
    pub fn flag_u64(&mut self, name: &str) -> Result<Option<u64>, ArgError> {
        let mut i = 0;
        while i < self.words.len() {
            if !self.used[i] {
                if self.words[i] == name {
                    self.used[i] = true;
                    let Some(v) = self.words.get(i + 1) else {
                        return Err(ArgError::FlagNeedsValue(String::from(name)));
                    };
                    self.used[i + 1] = true;
                    return parse_u64(v, "number").map(Some);
                }
                if let Some(v) = self.words[i]
                    .strip_prefix(name)
                    .and_then(|r| r.strip_prefix('='))
                {
                    self.used[i] = true;
                    return parse_u64(v, "number").map(Some);
                }
            }
            i += 1;
        }
        Ok(None)
    }

    /// Takes a flag with a text value (`--cores 1,2` or `--cores=1,2`).
    pub fn flag_str(&mut self, name: &str) -> Result<Option<String>, ArgError> {
        for i in 0..self.words.len() {
            if self.used[i] {
                continue;
            }
            if self.words[i] == name {
                self.used[i] = true;
                let Some(v) = self.words.get(i + 1) else {
                    return Err(ArgError::FlagNeedsValue(String::from(name)));
                };
                self.used[i + 1] = true;
                return Ok(Some(v.clone()));
            }
            if let Some(v) = self.words[i]
                .strip_prefix(name)
                .and_then(|r| r.strip_prefix('='))
            {
                self.used[i] = true;
                return Ok(Some(String::from(v)));
            }
        }
        Ok(None)
    }

    /// Takes the next unused positional word (not starting with `--`).
    pub fn positional(&mut self) -> Option<String> {
        for (w, used) in self.words.iter().zip(self.used.iter_mut()) {
            if !*used && !w.starts_with("--") {
                *used = true;
                return Some(w.clone());
            }
        }
        None
    }

    /// Takes a required positional word.
    pub fn required(&mut self, what: &'static str) -> Result<String, ArgError> {
        self.positional().ok_or(ArgError::Missing(what))
    }

    /// Takes every word no one took yet, in order (flags included): a program's own arguments.
    pub fn rest(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for (w, used) in self.words.iter().zip(self.used.iter_mut()) {
            if !*used {
                *used = true;
                out.push(w.clone());
            }
        }
        out
    }

    /// Fails on any word no one took.
    pub fn finish(&mut self) -> Result<(), ArgError> {
        for (w, used) in self.words.iter().zip(&self.used) {
            if !used {
                return Err(if w.starts_with("--") {
                    ArgError::UnknownFlag(w.clone())
                } else {
                    ArgError::UnexpectedArgument(w.clone())
                });
            }
        }
        Ok(())
    }
}

/// Splits a shell-style input redirection off a program's arguments: `< FILE` or `<FILE`
/// anywhere in `words` names standard input; at most one is allowed.
pub fn split_redirect(words: Vec<String>) -> Result<(Vec<String>, Option<String>), ArgError> {
    let mut args = Vec::new();
    let mut input = None;
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        let file = if w == "<" {
            Some(it.next().ok_or(ArgError::Missing("file after `<`"))?)
        } else {
            w.strip_prefix('<').map(String::from)
        };
        match file {
            Some(_) if input.is_some() => {
                return Err(ArgError::UnexpectedArgument(String::from("<")));
            }
            Some(f) if f.is_empty() => return Err(ArgError::Missing("file after `<`")),
            Some(f) => input = Some(f),
            None => args.push(w),
        }
    }
    Ok((args, input))
}

/// Parses a decimal or `0x` hexadecimal unsigned number.
pub fn parse_u64(s: &str, what: &'static str) -> Result<u64, ArgError> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => s.replace('_', "").parse::<u64>(),
    };
    parsed.map_err(|_| ArgError::Invalid {
        what,
        value: String::from(s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_flags_take_their_value_in_either_form() {
        let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let mut a = Args::new(words("fib.fib_rec --cores 1,2 30 --json"));
        assert_eq!(a.flag_str("--cores").unwrap().as_deref(), Some("1,2"));
        assert!(a.flag("--json"));
        assert_eq!(a.positional().as_deref(), Some("fib.fib_rec"));
        assert_eq!(a.positional().as_deref(), Some("30"));
        a.finish().unwrap();
        let mut b = Args::new(words("--cores=3"));
        assert_eq!(b.flag_str("--cores").unwrap().as_deref(), Some("3"));
        assert_eq!(b.flag_str("--cores").unwrap(), None);
        let mut c = Args::new(words("x --cores"));
        assert!(matches!(
            c.flag_str("--cores"),
            Err(ArgError::FlagNeedsValue(_))
        ));
    }

    fn words(s: &str) -> Vec<String> {
        split_words(s).unwrap()
    }

    #[test]
    fn splits_and_quotes() {
        assert_eq!(words("  a  b\tc "), ["a", "b", "c"]);
        assert_eq!(words(r#"run "x y" z"#), ["run", "x y", "z"]);
        assert_eq!(words(r#""""#), [""]);
        assert_eq!(split_words("\"open"), Err(ArgError::UnclosedQuote));
        assert!(words("").is_empty());
    }

    #[test]
    fn flags_and_positionals() {
        let mut a = Args::new(words("--json 5 --count 3 x"));
        assert!(a.flag("--json"));
        assert_eq!(a.flag_u64("--count"), Ok(Some(3)));
        assert_eq!(a.positional().as_deref(), Some("5"));
        assert_eq!(a.required("name"), Ok(String::from("x")));
        assert_eq!(a.finish(), Ok(()));
    }

    #[test]
    fn leftovers_are_errors() {
        let mut a = Args::new(words("--bogus"));
        assert!(!a.flag("--json"));
        assert_eq!(
            a.finish(),
            Err(ArgError::UnknownFlag(String::from("--bogus")))
        );
        let mut a = Args::new(words("extra"));
        assert_eq!(
            a.finish(),
            Err(ArgError::UnexpectedArgument(String::from("extra")))
        );
    }

    #[test]
    fn flag_values() {
        let mut a = Args::new(words("--count=0x10"));
        assert_eq!(a.flag_u64("--count"), Ok(Some(16)));
        let mut a = Args::new(words("--count"));
        assert!(matches!(
            a.flag_u64("--count"),
            Err(ArgError::FlagNeedsValue(_))
        ));
        let mut a = Args::new(words("--count ten"));
        assert!(matches!(
            a.flag_u64("--count"),
            Err(ArgError::Invalid { .. })
        ));
        let mut a = Args::new(Vec::new());
        assert_eq!(a.required("core"), Err(ArgError::Missing("core")));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("1_000", "n"), Ok(1000));
        assert_eq!(parse_u64("0xdead_beef", "n"), Ok(0xdead_beef));
        assert!(parse_u64("-1", "n").is_err());
        assert!(parse_u64("", "n").is_err());
    }

    #[test]
    fn rest_and_redirects() {
        let w = |v: &[&str]| v.iter().map(|s| String::from(*s)).collect::<Vec<_>>();
        let mut a = Args::new(w(&["lzc", "--json", "-n", "--max-depth", "2"]));
        assert!(a.flag("--json"));
        assert_eq!(a.required("chunk").unwrap(), "lzc");
        assert_eq!(a.rest(), w(&["-n", "--max-depth", "2"]));
        assert!(a.finish().is_ok());
        assert_eq!(
            split_redirect(w(&["a", "<", "in.txt", "b"])).unwrap(),
            (w(&["a", "b"]), Some(String::from("in.txt")))
        );
        assert_eq!(
            split_redirect(w(&["<in.txt"])).unwrap(),
            (Vec::new(), Some(String::from("in.txt")))
        );
        assert_eq!(split_redirect(w(&["x"])).unwrap(), (w(&["x"]), None));
        assert!(split_redirect(w(&["<"])).is_err());
        assert!(split_redirect(w(&["<a", "<b"])).is_err());
    }
}
