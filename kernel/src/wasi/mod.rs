//! WASI programs in the kernel: the [`System`] behind the shared `atoll-wasi` subset (clocks
//! from the TSC and the CMOS RTC, RDRAND or a seeded generator, output captured per task), and
//! the context a command chunk starts with (its arguments, its read-only files preopened as
//! `.`, standard input from one of those files).
//!
//! - `clock_time_get(MONOTONIC)`: nanoseconds since kernel entry, from the calibrated TSC.
//! - `clock_time_get(REALTIME)`: the RTC's UTC time read once at first use, advanced by the TSC.
//! - `random_get`: RDRAND when CPUID offers it; otherwise (e.g. QEMU's default `qemu64` CPU) a
//!   splitmix64 generator seeded from the TSC, which is not cryptographic. [`random_source`]
//!   says which.
//! - `fd_write` to stdout/stderr: captured (up to [`CAPTURE_MAX_BYTES`] each) and shown by the
//!   console when the task ends (or, for a background run, by `output ID`).
//! - `poll_oneoff` clock waits: the scheduler's `sleep_us` (the chunk thread sleeps; its core
//!   runs others or halts).
//! - `environ_get`: the chunk's default environment from the image, then `run --env K=V`.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use atoll_wasi::{System, Tree, TreeError, WasiCtx};
use spin::{Mutex, Once};

use crate::arch::{cpu, rtc};
use crate::chunks::{self, Loaded};
use crate::time;

/// Most bytes kept per stream per task; the rest is counted and dropped.
pub const CAPTURE_MAX_BYTES: usize = 1 << 20;

/// A task's captured output.
#[derive(Debug, Default)]
pub struct Capture {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// Bytes dropped past [`CAPTURE_MAX_BYTES`].
    pub dropped_bytes: u64,
}

/// Output shared by the running task and the console.
pub type SharedCapture = Arc<Mutex<Capture>>;

/// Why a command could not be set up.
#[derive(Debug)]
pub enum WasiError {
    /// No valid chunk image.
    NoImage,
    /// No chunk of that name.
    NoChunk(String),
    /// The chunk exports no `_start`.
    NotCommand(String),
    /// The file named for standard input is not among the program's files.
    NoFile(String),
    /// The image's files do not form a tree.
    Tree(TreeError),
    /// An environment entry is not `KEY=VALUE`.
    Env(String),
}

impl fmt::Display for WasiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoImage => f.write_str("no valid chunk image is loaded"),
            Self::NoChunk(c) => write!(f, "no chunk named `{c}`"),
            Self::NotCommand(c) => write!(
                f,
                "chunk `{c}` is not a command (no `_start`); run an export with `run {c}.EXPORT`"
            ),
            Self::NoFile(p) => write!(f, "no file `{p}` among the program's files"),
            Self::Tree(e) => write!(f, "program files: {e}"),
            Self::Env(e) => write!(f, "environment: {e}"),
        }
    }
}

/// Where `random_get` gets its bytes.
pub fn random_source() -> &'static str {
    if cpu::has_rdrand() {
        "rdrand"
    } else {
        "splitmix64 seeded from the TSC"
    }
}

fn ns_since_entry() -> u64 {
    let cycles = cpu::rdtsc().saturating_sub(time::entry_tsc());
    (u128::from(cycles) * 1_000_000_000 / u128::from(time::tsc_hz().max(1))) as u64
}

/// Nanoseconds since 1970 at kernel entry (from the RTC, read once); 0 if the RTC is unusable.
fn epoch_at_entry_ns() -> u64 {
    static EPOCH: Once<u64> = Once::new();
    *EPOCH.call_once(|| {
        let since_entry = ns_since_entry();
        rtc::now()
            .and_then(|t| t.unix_seconds())
            .map_or(0, |s| (s * 1_000_000_000).saturating_sub(since_entry))
    })
}

struct KernelSystem {
    capture: SharedCapture,
    seed: u64,
}

impl KernelSystem {
    fn splitmix(&mut self) -> u64 {
        self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl System for KernelSystem {
    fn monotonic_ns(&mut self) -> u64 {
        ns_since_entry()
    }
    fn realtime_ns(&mut self) -> u64 {
        epoch_at_entry_ns() + ns_since_entry()
    }
    fn resolution_ns(&mut self) -> u64 {
        (1_000_000_000 / time::tsc_hz().max(1)).max(1)
    }
    fn random(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = cpu::rdrand64().unwrap_or_else(|| self.splitmix());
            chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
        }
    }
    fn write(&mut self, fd: u32, bytes: &[u8]) {
        let mut c = self.capture.lock();
        let stream = if fd == 1 {
            &mut c.stdout
        } else {
            &mut c.stderr
        };
        let room = CAPTURE_MAX_BYTES.saturating_sub(stream.len());
        let keep = bytes.len().min(room);
        stream.extend_from_slice(&bytes[..keep]);
        c.dropped_bytes += (bytes.len() - keep) as u64;
    }
    fn yield_now(&mut self) {
        crate::sched::yield_now();
    }
    fn sleep_ns(&mut self, ns: u64) {
        // The scheduler sleeps in whole microseconds: round up so the wait is never short.
        crate::sched::sleep_us(ns.div_ceil(1000));
    }
}

/// Standard input of a command.
#[derive(Debug)]
pub enum Stdin<'a> {
    /// Nothing (end of file at once).
    Empty,
    /// One of the program's files.
    File(&'a str),
}

/// The WASI context `run CHUNK [ARGS...] [< FILE]` gives a command chunk: `argv[0]` is the
/// chunk name, then `args` (or the image's default arguments when `None`); the environment is
/// the image's default for the chunk with `env` (`KEY=VALUE`) on top; the program's files are
/// preopened read-only as `.`; standard input is `stdin`.
pub fn command_context(
    chunk: &str,
    args: Option<Vec<String>>,
    env: &[String],
    stdin: Stdin<'_>,
) -> Result<(WasiCtx, SharedCapture), WasiError> {
    let Loaded::Ready { image, .. } = chunks::loaded() else {
        return Err(WasiError::NoImage);
    };
    let view = image
        .chunk(chunk)
        .ok_or_else(|| WasiError::NoChunk(chunk.into()))?;
    if !view.manifest.exports.iter().any(|e| e.name == "_start") {
        return Err(WasiError::NotCommand(chunk.into()));
    }
    let program = image.program(chunk);
    let mut argv = alloc::vec![String::from(chunk)];
    match args {
        Some(a) => argv.extend(a),
        None => argv.extend(
            program
                .iter()
                .flat_map(|p| p.args.iter().map(|a| String::from(*a))),
        ),
    }
    let mut tree = Tree::new();
    for (path, data) in program.iter().flat_map(|p| p.files.iter()) {
        tree.add_file(path, Arc::from(*data))
            .map_err(WasiError::Tree)?;
    }
    let input: Arc<[u8]> = match stdin {
        Stdin::Empty => Arc::from(&[][..]),
        Stdin::File(path) => program
            .and_then(|p| p.files.iter().find(|(f, _)| *f == path))
            .map(|(_, d)| Arc::from(*d))
            .ok_or_else(|| WasiError::NoFile(path.into()))?,
    };
    let env = atoll_wasi::env::merge(
        program.iter().flat_map(|p| p.env.iter().copied()),
        env.iter().map(String::as_str),
    )
    .map_err(WasiError::Env)?;
    let capture = SharedCapture::default();
    let sys = KernelSystem {
        capture: capture.clone(),
        seed: cpu::rdtsc(),
    };
    let mut ctx = WasiCtx::new(argv, env, alloc::boxed::Box::new(sys));
    ctx.set_stdin_bytes(input);
    // A fresh context has descriptors 0..=2 only; the first preopen is 3.
    let _ = ctx.preopen(".", Arc::new(tree));
    Ok((ctx, capture))
}
