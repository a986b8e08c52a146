//! Running WASI command modules on the host with the same preview1 subset as the kernel
//! (`atoll-wasi`): with wasmi, the reference interpreter ([`reference`]), or with atoll's own
//! code generator executing natively ([`native`], x86-64 hosts). Both engines share one
//! [`Setup`] (arguments, environment, preopened read-only trees, standard input, where output
//! goes) and report how the program ended the same way, so their output can be compared byte
//! for byte.

#[cfg(target_arch = "x86_64")]
pub mod native;
pub mod reference;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use atoll_wasi::{System, Tree, WasiCtx};

use crate::chunkc::ChunkcError;

/// Largest host directory `--dir` snapshots (file bytes in total).
pub const MAX_DIR_BYTES: usize = 256 << 20;

/// Where a program's standard output and error go.
#[derive(Debug, Clone)]
pub enum Output {
    /// Straight to this process's stdout and stderr.
    Inherit,
    /// Into buffers returned with the outcome.
    Capture,
}

/// Where standard input comes from.
#[derive(Debug, Clone)]
pub enum Input {
    /// These bytes, then end of file.
    Bytes(Arc<[u8]>),
    /// This process's stdin.
    Inherit,
}

/// Everything a program starts with.
#[derive(Debug, Clone)]
pub struct Setup {
    /// `argv`, program name first.
    pub args: Vec<String>,
    /// `KEY=VALUE` pairs.
    pub env: Vec<String>,
    /// Preopened read-only directories: guest name and tree.
    pub preopens: Vec<(String, Arc<Tree>)>,
    /// Standard input.
    pub stdin: Input,
    /// Standard output and error.
    pub output: Output,
}

impl Setup {
    /// Captured output, empty stdin, no environment or directories.
    pub fn captured(args: Vec<String>) -> Self {
        Self {
            args,
            env: Vec::new(),
            preopens: Vec::new(),
            stdin: Input::Bytes(Arc::from(&[][..])),
            output: Output::Capture,
        }
    }
}

/// How a program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// `_start` returned (code 0) or `proc_exit` was called.
    Exit(u32),
    /// It trapped, with the engine's message.
    Trap(String),
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// How it ended.
    pub ended: Ended,
    /// Captured standard output (empty with [`Output::Inherit`]).
    pub stdout: Vec<u8>,
    /// Captured standard error.
    pub stderr: Vec<u8>,
}

impl RunOutput {
    /// The process exit status `chunkc` uses: the program's code (low 8 bits), 134 for a trap.
    pub fn status(&self) -> u8 {
        match self.ended {
            Ended::Exit(code) => code as u8,
            Ended::Trap(_) => 134,
        }
    }
}

#[derive(Debug, Default)]
struct Captured {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Output shared by the running program and the runner.
type SharedCaptured = Arc<Mutex<Captured>>;

/// The host's side of WASI: real clocks, the OS's randomness, output inherited or captured.
struct HostSystem {
    start: Instant,
    captured: Option<SharedCaptured>,
}

impl System for HostSystem {
    fn monotonic_ns(&mut self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
    fn realtime_ns(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
    fn resolution_ns(&mut self) -> u64 {
        1
    }
    fn random(&mut self, buf: &mut [u8]) {
        let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(buf));
        if filled.is_err() {
            // No OS randomness: a time-seeded xorshift, stated as such.
            let mut x = self.realtime_ns() | 1;
            for b in buf {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
        }
    }
    fn write(&mut self, fd: u32, bytes: &[u8]) {
        match &self.captured {
            Some(c) => {
                let mut c = c.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if fd == 1 {
                    &mut c.stdout
                } else {
                    &mut c.stderr
                }
                .extend_from_slice(bytes);
            }
            None if fd == 1 => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(bytes).and_then(|()| out.flush());
            }
            None => {
                let _ = std::io::stderr().write_all(bytes);
            }
        }
    }
    fn read_stdin(&mut self, buf: &mut [u8]) -> usize {
        std::io::stdin().read(buf).unwrap_or(0)
    }
    fn sleep_ns(&mut self, ns: u64) {
        std::thread::sleep(std::time::Duration::from_nanos(ns));
    }
}

/// A WASI context for `setup`, and the capture buffers when output is captured.
fn context(setup: &Setup) -> Result<(WasiCtx, Option<SharedCaptured>), ChunkcError> {
    let captured = matches!(setup.output, Output::Capture).then(Arc::default);
    let sys = HostSystem {
        start: Instant::now(),
        captured: captured.clone(),
    };
    let mut ctx = WasiCtx::new(setup.args.clone(), setup.env.clone(), Box::new(sys));
    match &setup.stdin {
        Input::Bytes(b) => ctx.set_stdin_bytes(b.clone()),
        Input::Inherit => ctx.set_stdin_system(),
    }
    for (name, tree) in &setup.preopens {
        ctx.preopen(name, tree.clone())
            .map_err(|e| ChunkcError::Run(format!("preopening `{name}`: {e:?}")))?;
    }
    Ok((ctx, captured))
}

fn finish(ended: Ended, captured: Option<SharedCaptured>) -> RunOutput {
    let c = captured
        .map(|c| std::mem::take(&mut *c.lock().unwrap_or_else(std::sync::PoisonError::into_inner)))
        .unwrap_or_default();
    RunOutput {
        ended,
        stdout: c.stdout,
        stderr: c.stderr,
    }
}

/// Snapshots host directory `dir` (regular files and directories; symbolic links are
/// followed only when they stay inside it) into a read-only tree.
pub fn load_dir(dir: &Path) -> Result<Tree, ChunkcError> {
    let mut tree = Tree::new();
    let mut total = 0usize;
    let root = std::fs::canonicalize(dir).map_err(|e| ChunkcError::io(dir, e))?;
    let mut stack = vec![(root.clone(), String::new())];
    while let Some((path, rel)) = stack.pop() {
        let entries = std::fs::read_dir(&path).map_err(|e| ChunkcError::io(&path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ChunkcError::io(&path, e))?;
            let Some(name) = entry.file_name().to_str().map(String::from) else {
                continue;
            };
            let full = entry.path();
            let Ok(real) = std::fs::canonicalize(&full) else {
                continue;
            };
            if !real.starts_with(&root) {
                continue;
            }
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let bad =
                |e: atoll_wasi::TreeError| ChunkcError::Run(format!("{}: {e}", dir.display()));
            if real.is_dir() {
                tree.add_dir(&child).map_err(bad)?;
                stack.push((real, child));
            } else if real.is_file() {
                let data = std::fs::read(&real).map_err(|e| ChunkcError::io(&real, e))?;
                total += data.len();
                if total > MAX_DIR_BYTES {
                    return Err(ChunkcError::Run(format!(
                        "{} holds more than {} MiB of files",
                        dir.display(),
                        MAX_DIR_BYTES >> 20
                    )));
                }
                tree.add_file(&child, Arc::from(data)).map_err(bad)?;
            }
        }
    }
    Ok(tree)
}

/// A tree of `files` (relative path, contents), e.g. a program's files from an image.
pub fn tree_of<'a>(files: impl Iterator<Item = (&'a str, &'a [u8])>) -> Result<Tree, ChunkcError> {
    let mut tree = Tree::new();
    for (path, data) in files {
        tree.add_file(path, Arc::from(data))
            .map_err(|e| ChunkcError::Run(e.to_string()))?;
    }
    Ok(tree)
}
