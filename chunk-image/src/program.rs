//! The programs section (format version 2): for a command chunk (a WASI program), the default
//! arguments it runs with and the read-only files shipped with it.
//!
//! Layout (little-endian; a *blob* is `length u32` then that many bytes, a *text* is a UTF-8
//! blob): `count u32`, then per program: `chunk text`, `args: count u32, text...`,
//! `files: count u32, (path text, contents blob)...`, and in version 3 `env: count u32,
//! text...` (`KEY=VALUE`). The section is self-contained (it does not use the string table)
//! and covered by the tables checksum.

use alloc::string::String;
use alloc::vec::Vec;

use crate::bytes::{Cursor, PutLe, to_u32};
use crate::error::FormatError;

/// A program's run settings, as given to the writer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Program {
    /// The chunk it belongs to.
    pub chunk: String,
    /// Default arguments (after `argv[0]`, which is the chunk name).
    pub args: Vec<String>,
    /// Read-only files: relative `/`-separated path and contents.
    pub files: Vec<(String, Vec<u8>)>,
    /// Default environment, `KEY=VALUE` (version 3).
    pub env: Vec<String>,
}

/// A program as read from an image (borrowing from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramView<'a> {
    /// The chunk it belongs to.
    pub chunk: &'a str,
    /// Default arguments.
    pub args: Vec<&'a str>,
    /// Read-only files.
    pub files: Vec<(&'a str, &'a [u8])>,
    /// Default environment, `KEY=VALUE` (empty before version 3).
    pub env: Vec<&'a str>,
}

impl ProgramView<'_> {
    /// An owned copy.
    pub fn to_program(&self) -> Program {
        Program {
            chunk: self.chunk.into(),
            args: self.args.iter().map(|a| String::from(*a)).collect(),
            files: self
                .files
                .iter()
                .map(|(p, d)| (String::from(*p), d.to_vec()))
                .collect(),
            env: self.env.iter().map(|e| String::from(*e)).collect(),
        }
    }
}

/// Checks an environment entry: `KEY=VALUE` with a non-empty key and no NUL.
fn env_entry(chunk: &str, kv: &str) -> Result<(), FormatError> {
    if kv.split_once('=').is_some_and(|(k, _)| !k.is_empty()) && !kv.contains('\0') {
        return Ok(());
    }
    Err(FormatError::BadProgram(alloc::format!(
        "chunk `{chunk}`: environment entry `{kv}` is not KEY=VALUE"
    )))
}

/// Whether `path` is a plain relative path: non-empty components, none `.` or `..`.
pub fn plain_path(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

pub(crate) fn put_blob(out: &mut Vec<u8>, b: &[u8], what: &'static str) -> Result<(), FormatError> {
    out.put_u32(to_u32(b.len(), what)?);
    out.extend_from_slice(b);
    Ok(())
}

/// The lowest major version that holds `programs`: 1 without any, 3 when one has an
/// environment, else 2.
pub fn major_for(programs: &[Program]) -> u16 {
    if programs.is_empty() {
        1
    } else if programs.iter().any(|p| !p.env.is_empty()) {
        3
    } else {
        2
    }
}

/// Encodes `programs` for an image of version `major` (2 or 3; checked with [`check`] first).
pub fn encode(programs: &[Program], major: u16) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::new();
    out.put_u32(to_u32(programs.len(), "programs")?);
    for p in programs {
        put_blob(&mut out, p.chunk.as_bytes(), "program chunk")?;
        out.put_u32(to_u32(p.args.len(), "program args")?);
        for a in &p.args {
            put_blob(&mut out, a.as_bytes(), "program arg")?;
        }
        out.put_u32(to_u32(p.files.len(), "program files")?);
        for (path, data) in &p.files {
            put_blob(&mut out, path.as_bytes(), "program file path")?;
            put_blob(&mut out, data, "program file")?;
        }
        if major >= 3 {
            out.put_u32(to_u32(p.env.len(), "program env")?);
            for kv in &p.env {
                env_entry(&p.chunk, kv)?;
                put_blob(&mut out, kv.as_bytes(), "program env")?;
            }
        }
    }
    Ok(out)
}

pub(crate) fn blob<'a>(cur: &mut Cursor<'a>) -> Result<&'a [u8], FormatError> {
    let len = cur.u32()? as usize;
    cur.bytes(len)
}

pub(crate) fn text<'a>(cur: &mut Cursor<'a>, what: &'static str) -> Result<&'a str, FormatError> {
    core::str::from_utf8(blob(cur)?).map_err(|_| FormatError::BadString(what))
}

/// Decodes the section of a version-`major` image (which must be consumed exactly).
pub fn decode(bytes: &[u8], major: u16) -> Result<Vec<ProgramView<'_>>, FormatError> {
    let mut cur = Cursor::new(bytes, "programs");
    let count = cur.count(12)?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let chunk = text(&mut cur, "program chunk")?;
        let nargs = cur.count(4)?;
        let mut args = Vec::with_capacity(nargs);
        for _ in 0..nargs {
            args.push(text(&mut cur, "program arg")?);
        }
        let nfiles = cur.count(8)?;
        let mut files = Vec::with_capacity(nfiles);
        for _ in 0..nfiles {
            let path = text(&mut cur, "program file path")?;
            files.push((path, blob(&mut cur)?));
        }
        let mut env = Vec::new();
        if major >= 3 {
            for _ in 0..cur.count(4)? {
                let kv = text(&mut cur, "program env")?;
                env_entry(chunk, kv)?;
                env.push(kv);
            }
        }
        out.push(ProgramView {
            chunk,
            args,
            files,
            env,
        });
    }
    if cur.remaining() != 0 {
        return Err(FormatError::BadProgram("trailing bytes".into()));
    }
    Ok(out)
}

/// Image-level rules: each program's chunk exists, has at most one program, and its file paths
/// are plain, unique, and no path is both a file and a directory.
pub fn check<'p>(
    programs: impl Iterator<Item = (&'p str, Vec<&'p str>)>,
    chunk_exists: impl Fn(&str) -> bool,
) -> Result<(), FormatError> {
    let mut seen: Vec<&str> = Vec::new();
    for (chunk, paths) in programs {
        if !chunk_exists(chunk) {
            return Err(FormatError::BadProgram(alloc::format!(
                "program for unknown chunk `{chunk}`"
            )));
        }
        if seen.contains(&chunk) {
            return Err(FormatError::BadProgram(alloc::format!(
                "two programs for chunk `{chunk}`"
            )));
        }
        seen.push(chunk);
        let mut set = alloc::collections::BTreeSet::new();
        for path in &paths {
            if !plain_path(path) {
                return Err(FormatError::BadProgram(alloc::format!(
                    "chunk `{chunk}`: file path `{path}` is not a plain relative path"
                )));
            }
            if !set.insert(*path) {
                return Err(FormatError::BadProgram(alloc::format!(
                    "chunk `{chunk}`: file path `{path}` is given twice"
                )));
            }
        }
        for path in &paths {
            let ancestor = path
                .match_indices('/')
                .find(|&(i, _)| set.contains(&path[..i]));
            if let Some((i, _)) = ancestor {
                return Err(FormatError::BadProgram(alloc::format!(
                    "chunk `{chunk}`: `{}` is both a file and a directory",
                    &path[..i]
                )));
            }
        }
    }
    Ok(())
}
