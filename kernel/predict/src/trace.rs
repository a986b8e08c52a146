//! Workload traces: which task runs next, with which arguments, after how much think time.
//!
//! A trace is text. Steps are separated by newlines or `;`; a step is
//! `CHUNK.EXPORT [ARGS...] [think=MICROSECONDS]` (arguments are words the console would take;
//! think time is the pause before the next request, default 0). `N*[ STEPS ]` repeats steps N
//! times and nests. `#` starts a comment to the end of its line. For example:
//!
//! ```text
//! # parse, checksum, compress, 30 times
//! 30*[ json.json_generate_and_count 40 think=3000 ; crc32.crc32_bench 1024 think=3000 ;
//!      lz.lz_roundtrip 1024 think=3000 ]
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// `chunk.export`.
    pub task: String,
    /// Arguments as console words.
    pub args: Vec<String>,
    /// Pause after the request before the next one, in microseconds.
    pub think_us: u64,
}

/// Why a trace could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceError {
    /// A word that is not a task, an argument or a known option where it stands.
    Unexpected(String),
    /// `[` without `]` or `]` without `[`.
    Unbalanced,
    /// A step's think time is not a number.
    BadThink(String),
    /// More steps than [`MAX_STEPS`] after expanding repeats.
    TooLong,
    /// No steps at all.
    Empty,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unexpected(w) => write!(f, "unexpected `{w}` in trace"),
            Self::Unbalanced => write!(f, "unbalanced `[`/`]` in trace"),
            Self::BadThink(w) => write!(f, "bad think time `{w}`"),
            Self::TooLong => write!(f, "trace has more than {MAX_STEPS} steps"),
            Self::Empty => write!(f, "trace has no steps"),
        }
    }
}

/// The most steps a trace may expand to.
pub const MAX_STEPS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    Sep,
    Open(u64),
    Close,
}

fn tokens(text: &str) -> Result<Vec<Token<'_>>, TraceError> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        for piece in line.split_whitespace() {
            let mut rest = piece;
            while !rest.is_empty() {
                if let Some(r) = rest.strip_prefix(';') {
                    out.push(Token::Sep);
                    rest = r;
                } else if let Some(r) = rest.strip_prefix(']') {
                    out.push(Token::Close);
                    rest = r;
                } else if let Some((n, r)) = rest.split_once("*[")
                    && !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
                {
                    let n = n
                        .parse::<u64>()
                        .map_err(|_| TraceError::Unexpected(n.into()))?;
                    out.push(Token::Open(n));
                    rest = r;
                } else {
                    let end = rest.find([';', ']']).unwrap_or(rest.len());
                    out.push(Token::Word(&rest[..end]));
                    rest = &rest[end..];
                }
            }
        }
        out.push(Token::Sep);
    }
    Ok(out)
}

fn is_task(w: &str) -> bool {
    matches!(w.split_once('.'), Some((c, e)) if !c.is_empty() && !e.is_empty()
        && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
}

fn steps(tokens: &[Token<'_>], pos: &mut usize, nested: bool) -> Result<Vec<Step>, TraceError> {
    let mut out: Vec<Step> = Vec::new();
    let mut current: Option<Step> = None;
    let flush = |current: &mut Option<Step>, out: &mut Vec<Step>| {
        if let Some(s) = current.take() {
            out.push(s);
        }
    };
    while *pos < tokens.len() {
        let t = &tokens[*pos];
        *pos += 1;
        match t {
            Token::Sep => flush(&mut current, &mut out),
            Token::Close => {
                if !nested {
                    return Err(TraceError::Unbalanced);
                }
                flush(&mut current, &mut out);
                return Ok(out);
            }
            Token::Open(n) => {
                if current.is_some() {
                    return Err(TraceError::Unexpected(alloc::format!("{n}*[")));
                }
                let body = steps(tokens, pos, true)?;
                if body.len().saturating_mul(*n as usize) + out.len() > MAX_STEPS {
                    return Err(TraceError::TooLong);
                }
                for _ in 0..*n {
                    out.extend(body.iter().cloned());
                }
            }
            Token::Word(w) => match current.as_mut() {
                None if is_task(w) => {
                    current = Some(Step {
                        task: (*w).into(),
                        args: Vec::new(),
                        think_us: 0,
                    });
                }
                None => return Err(TraceError::Unexpected((*w).into())),
                Some(step) => {
                    if let Some(v) = w.strip_prefix("think=") {
                        step.think_us = v.parse().map_err(|_| TraceError::BadThink(v.into()))?;
                    } else {
                        step.args.push((*w).into());
                    }
                }
            },
        }
        if out.len() > MAX_STEPS {
            return Err(TraceError::TooLong);
        }
    }
    if nested {
        return Err(TraceError::Unbalanced);
    }
    flush(&mut current, &mut out);
    Ok(out)
}

/// Reads a trace.
pub fn parse(text: &str) -> Result<Vec<Step>, TraceError> {
    let tokens = tokens(text)?;
    let mut pos = 0;
    let out = steps(&tokens, &mut pos, false)?;
    if out.is_empty() {
        return Err(TraceError::Empty);
    }
    if out.len() > MAX_STEPS {
        return Err(TraceError::TooLong);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_arguments_and_think_time() {
        let t = parse("a.x 1 2 think=30\nb.y; c.z -5 # comment\n").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].task, "a.x");
        assert_eq!(t[0].args, ["1", "2"]);
        assert_eq!(t[0].think_us, 30);
        assert_eq!((t[1].task.as_str(), t[1].args.len()), ("b.y", 0));
        assert_eq!(t[2].args, ["-5"]);
    }

    #[test]
    fn repeats_expand_and_nest() {
        let t = parse("2*[ a.x ; 3*[b.y 1] ]; c.z").unwrap();
        let names: Vec<&str> = t.iter().map(|s| s.task.as_str()).collect();
        assert_eq!(
            names,
            [
                "a.x", "b.y", "b.y", "b.y", "a.x", "b.y", "b.y", "b.y", "c.z"
            ]
        );
        let t = parse("3*[a.x]").unwrap();
        assert_eq!(t.len(), 3);
        // Over several lines.
        let t = parse("2*[\n a.x 1\n b.y 2\n]\n").unwrap();
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn bad_traces_are_refused() {
        assert_eq!(parse(""), Err(TraceError::Empty));
        assert_eq!(parse("# only\n"), Err(TraceError::Empty));
        assert_eq!(parse("2*[a.x"), Err(TraceError::Unbalanced));
        assert_eq!(parse("a.x]"), Err(TraceError::Unbalanced));
        assert_eq!(
            parse("nodot 1"),
            Err(TraceError::Unexpected("nodot".into()))
        );
        assert_eq!(parse("a.x think=z"), Err(TraceError::BadThink("z".into())));
        assert_eq!(parse("1000*[1000*[a.x]]"), Err(TraceError::TooLong));
        assert_eq!(
            parse("99999999999999999999*[a.x]"),
            Err(TraceError::Unexpected("99999999999999999999".into()))
        );
    }
}
