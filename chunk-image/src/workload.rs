//! The workload section (format version 3): settings of the kernel's predictive assembly
//! engine and the workload traces shipped with the image (`replay NAME` on the console).
//!
//! Layout (little-endian; a *text* is `length u32` then that many UTF-8 bytes):
//! `cache_limit u64` (bytes, 0 = the kernel's default), `policy u8` (0 = default, 1 = LRU,
//! 2 = LFU), `order u8` (Markov order, 0 = default), `high u16` and `low u16` (confidence
//! thresholds in permille, 0 = default), then `count u32` and per trace `name text, body text`.
//! Trace bodies are checked by `chunkc build` (the kernel parses them again when it replays);
//! the image checks only that names are unique words. The section must be consumed exactly.

use alloc::string::String;
use alloc::vec::Vec;

use crate::bytes::{Cursor, PutLe, to_u32};
use crate::error::FormatError;
use crate::program::{put_blob, text};

/// Settings of the predictive assembly engine (0 = the kernel's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineSettings {
    /// Chunk cache bound in bytes.
    pub cache_limit: u64,
    /// 1 = LRU, 2 = LFU.
    pub policy: u8,
    /// Order of the next-task model.
    pub order: u8,
    /// Confidence (permille) above which predicted chunks are pre-assembled.
    pub high_permille: u16,
    /// Confidence (permille) above which predicted chunks are fetched and validated.
    pub low_permille: u16,
}

/// A named trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Name (a word: letters, digits, `_`, `-`).
    pub name: String,
    /// The trace text.
    pub body: String,
}

/// The section's contents.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Workload {
    /// Engine settings.
    pub settings: EngineSettings,
    /// Traces.
    pub traces: Vec<Trace>,
}

/// The section as read from an image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkloadView<'a> {
    /// Engine settings.
    pub settings: EngineSettings,
    /// Traces: name and body.
    pub traces: Vec<(&'a str, &'a str)>,
}

impl WorkloadView<'_> {
    /// An owned copy.
    pub fn to_workload(&self) -> Workload {
        Workload {
            settings: self.settings,
            traces: self
                .traces
                .iter()
                .map(|(n, b)| Trace {
                    name: (*n).into(),
                    body: (*b).into(),
                })
                .collect(),
        }
    }
}

/// Whether `name` can name a trace: 1-64 letters, digits, `_` or `-`.
pub fn is_trace_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_names<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), FormatError> {
    let mut seen: Vec<&str> = Vec::new();
    for name in names {
        if !is_trace_name(name) {
            return Err(FormatError::BadWorkload(alloc::format!(
                "trace name `{name}` is not a word"
            )));
        }
        if seen.contains(&name) {
            return Err(FormatError::BadWorkload(alloc::format!(
                "two traces named `{name}`"
            )));
        }
        seen.push(name);
    }
    Ok(())
}

/// Encodes the section.
pub fn encode(w: &Workload) -> Result<Vec<u8>, FormatError> {
    check_names(w.traces.iter().map(|t| t.name.as_str()))?;
    if w.settings.policy > 2 {
        return Err(FormatError::BadWorkload("unknown cache policy".into()));
    }
    let mut out = Vec::new();
    out.put_u64(w.settings.cache_limit);
    out.push(w.settings.policy);
    out.push(w.settings.order);
    out.extend_from_slice(&w.settings.high_permille.to_le_bytes());
    out.extend_from_slice(&w.settings.low_permille.to_le_bytes());
    out.put_u32(to_u32(w.traces.len(), "traces")?);
    for t in &w.traces {
        put_blob(&mut out, t.name.as_bytes(), "trace name")?;
        put_blob(&mut out, t.body.as_bytes(), "trace body")?;
    }
    Ok(out)
}

/// Decodes the section.
pub fn decode(bytes: &[u8]) -> Result<WorkloadView<'_>, FormatError> {
    let mut cur = Cursor::new(bytes, "workload");
    let cache_limit = cur.u64()?;
    let policy = cur.u8()?;
    let order = cur.u8()?;
    let high_permille = cur.u16()?;
    let low_permille = cur.u16()?;
    if policy > 2 {
        return Err(FormatError::BadWorkload("unknown cache policy".into()));
    }
    if high_permille > 1000 || low_permille > 1000 {
        return Err(FormatError::BadWorkload(
            "a confidence threshold above 1000 permille".into(),
        ));
    }
    let count = cur.count(8)?;
    let mut traces = Vec::with_capacity(count);
    for _ in 0..count {
        let name = text(&mut cur, "trace name")?;
        let body = text(&mut cur, "trace body")?;
        traces.push((name, body));
    }
    if cur.remaining() != 0 {
        return Err(FormatError::BadWorkload("trailing bytes".into()));
    }
    check_names(traces.iter().map(|t| t.0))?;
    Ok(WorkloadView {
        settings: EngineSettings {
            cache_limit,
            policy,
            order,
            high_permille,
            low_permille,
        },
        traces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Workload {
        Workload {
            settings: EngineSettings {
                cache_limit: 65536,
                policy: 2,
                order: 2,
                high_permille: 600,
                low_permille: 300,
            },
            traces: alloc::vec![
                Trace {
                    name: "regular".into(),
                    body: "3*[a.b 1 ; c.d]".into()
                },
                Trace {
                    name: "other-1".into(),
                    body: String::new()
                },
            ],
        }
    }

    #[test]
    fn round_trip() {
        let w = sample();
        let bytes = encode(&w).unwrap();
        assert_eq!(decode(&bytes).unwrap().to_workload(), w);
    }

    #[test]
    fn every_truncation_and_bad_field_is_an_error() {
        let bytes = encode(&sample()).unwrap();
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode(&extra).is_err());
        let mut bad = bytes.clone();
        bad[8] = 3;
        assert!(decode(&bad).is_err());
        let mut w = sample();
        w.traces[1].name = "regular".into();
        assert!(encode(&w).is_err());
        w.traces[1].name = "has space".into();
        assert!(encode(&w).is_err());
    }
}
