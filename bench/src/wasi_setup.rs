//! What a WASI program run starts with in the benchmark (the same for every engine): its
//! arguments, its files from the image preopened read-only as `.`, standard input bytes, a
//! deterministic random generator, standard output captured, standard error dropped (the
//! programs print timings there).

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use atoll_wasi::{System, Tree, WasiCtx};

/// One program run's inputs.
#[derive(Clone)]
pub struct Setup {
    /// `argv`, program name first.
    pub args: Vec<String>,
    /// The program's files.
    pub tree: Arc<Tree>,
    /// Standard input.
    pub stdin: Arc<[u8]>,
}

struct BenchSystem {
    start: Instant,
    stdout: Arc<Mutex<Vec<u8>>>,
    seed: u64,
}

impl System for BenchSystem {
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
        for b in buf {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            *b = self.seed as u8;
        }
    }
    fn write(&mut self, fd: u32, bytes: &[u8]) {
        if fd == 1 {
            self.stdout
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(bytes);
        }
    }
    fn sleep_ns(&mut self, ns: u64) {
        std::thread::sleep(std::time::Duration::from_nanos(ns));
    }
}

impl Setup {
    /// A fresh context for one run, and where its standard output lands.
    pub fn context(&self) -> (WasiCtx, Arc<Mutex<Vec<u8>>>) {
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let sys = BenchSystem {
            start: Instant::now(),
            stdout: stdout.clone(),
            seed: 0x9E37_79B9_7F4A_7C15,
        };
        let mut ctx = WasiCtx::new(self.args.clone(), Vec::new(), Box::new(sys));
        ctx.set_stdin_bytes(self.stdin.clone());
        // A fresh context has descriptors 0..=2; the preopen is 3 and cannot fail.
        let _ = ctx.preopen(".", self.tree.clone());
        (ctx, stdout)
    }
}

/// How one run ended and what it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// The exit code (0 when `_start` returned).
    pub exit: u32,
    /// Standard output.
    pub stdout: Vec<u8>,
}

/// Takes the captured output.
pub fn take(stdout: &Arc<Mutex<Vec<u8>>>) -> Vec<u8> {
    std::mem::take(
        &mut *stdout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}
