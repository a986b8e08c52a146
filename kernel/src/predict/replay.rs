//! Workload replay: runs a trace's requests as the console would (prepare, run on a chunk
//! thread, think), once with predictions acted on and once without, from the same cold start
//! (empty cache, the model as the image seeded it), and measures task-start latency (from the
//! request to the task's first instruction), prediction accuracy and the cache.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use atoll_kcore::stats::Distribution;
use atoll_predict::trace::{self, Step};
use spin::Mutex;

use crate::chunks::{self, Loaded};
use crate::pae;

/// Traces sent over the console (`trace add`), by name; image traces are looked up first.
static SENT: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// Most traces the console may add.
pub const MAX_SENT: usize = 32;

/// Why a replay could not run.
#[derive(Debug)]
pub enum ReplayError {
    /// No trace of that name.
    NoTrace(String),
    /// The trace text is malformed.
    Trace(trace::TraceError),
    /// A step could not be prepared (unknown task, bad arguments, ...).
    Step(usize, String),
    /// Too many traces were added.
    Full,
}

impl core::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoTrace(n) => write!(f, "no trace named `{n}` (see `traces`)"),
            Self::Trace(e) => write!(f, "{e}"),
            Self::Step(i, m) => write!(f, "step {}: {m}", i + 1),
            Self::Full => write!(f, "at most {MAX_SENT} traces can be added"),
        }
    }
}

/// Adds (or replaces) a console trace after checking it parses.
pub fn add(name: &str, text: &str) -> Result<usize, ReplayError> {
    let steps = trace::parse(text).map_err(ReplayError::Trace)?;
    let mut sent = SENT.lock();
    if !sent.contains_key(name) && sent.len() >= MAX_SENT {
        return Err(ReplayError::Full);
    }
    sent.insert(name.into(), text.into());
    Ok(steps.len())
}

/// Every trace: name, where it came from (`image` or `console`), and its text.
pub fn list() -> Vec<(String, &'static str, String)> {
    let mut out = Vec::new();
    if let Loaded::Ready { image, .. } = chunks::loaded() {
        for (n, b) in &image.workload().traces {
            out.push(((*n).to_string(), "image", (*b).to_string()));
        }
    }
    for (n, b) in SENT.lock().iter() {
        if !out.iter().any(|(m, _, _)| m == n) {
            out.push((n.clone(), "console", b.clone()));
        }
    }
    out
}

fn text_of(name: &str) -> Option<String> {
    list().into_iter().find(|(n, _, _)| n == name).map(|t| t.2)
}

/// One step's outcome.
#[derive(Debug, Clone)]
pub struct StepResult {
    /// Results as the console prints them, or `trap: ...`.
    pub outcome: String,
    /// Cycles from the request to the task's first instruction.
    pub start_cycles: u64,
    /// Whether every chunk it needed was resident.
    pub hit: bool,
}

/// One pass over the trace.
#[derive(Debug, Clone)]
pub struct Pass {
    /// Whether predictions were acted on.
    pub predict: bool,
    /// Per step.
    pub steps: Vec<StepResult>,
    /// Start latency in cycles.
    pub start: Distribution,
    /// Start latency of requests whose chunks were all resident.
    pub start_hits: Distribution,
    /// Start latency of requests that had to assemble.
    pub start_misses: Distribution,
    /// Prediction accuracy over this pass.
    pub accuracy: super::Accuracy,
    /// The cache after the pass.
    pub cache: pae::cache::Snapshot,
    /// The worker's figures over the pass.
    pub worker: super::WorkerFigures,
}

/// Runs `name` once per mode in `modes` (`true` = predictions acted on).
pub fn replay(name: &str, modes: &[bool]) -> Result<Vec<Pass>, ReplayError> {
    let text = text_of(name).ok_or_else(|| ReplayError::NoTrace(name.into()))?;
    let steps = trace::parse(&text).map_err(ReplayError::Trace)?;
    let was_acting = super::current().2.acting;
    let mut passes = Vec::new();
    for &predict in modes {
        let pass = run_pass(&steps, predict);
        match pass {
            Ok(p) => passes.push(p),
            Err(e) => {
                super::set_acting(was_acting);
                return Err(e);
            }
        }
    }
    super::set_acting(was_acting);
    Ok(passes)
}

fn wait_for_worker() {
    while !super::worker_idle() {
        crate::sched::sleep_us(500);
    }
}

fn run_pass(steps: &[Step], predict: bool) -> Result<Pass, ReplayError> {
    super::set_acting(false);
    wait_for_worker();
    pae::cache::clear();
    super::reset_model();
    super::worker::reset_figures();
    super::set_acting(predict);
    let mut results = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let t0 = crate::arch::cpu::rdtsc();
        super::on_request(&step.task);
        let prepared = pae::prepare(&step.task).map_err(|e| ReplayError::Step(i, e.to_string()))?;
        let (_, misses) = prepared.cache_use();
        let values = prepared
            .parse_args(&step.args)
            .map_err(|e| ReplayError::Step(i, e.to_string()))?;
        let done = pae::run_on_thread(prepared, values, None)
            .map_err(|e| ReplayError::Step(i, alloc::format!("chunk thread: {e}")))?;
        let start_cycles = done.entered_tsc.saturating_sub(t0);
        let (outcome, ok) = match &done.result {
            Ok(v) => (pae::format_results(v), true),
            Err(e) => (alloc::format!("trap: {e}"), false),
        };
        super::on_finished(&step.task, done.run_cycles, ok);
        results.push(StepResult {
            outcome,
            start_cycles,
            hit: misses == 0,
        });
        if step.think_us > 0 {
            crate::sched::sleep_us(step.think_us);
        }
    }
    wait_for_worker();
    let all: Vec<u64> = results.iter().map(|r| r.start_cycles).collect();
    let hits: Vec<u64> = results
        .iter()
        .filter(|r| r.hit)
        .map(|r| r.start_cycles)
        .collect();
    let misses: Vec<u64> = results
        .iter()
        .filter(|r| !r.hit)
        .map(|r| r.start_cycles)
        .collect();
    Ok(Pass {
        predict,
        start: Distribution::of(&mut all.clone()),
        start_hits: Distribution::of(&mut hits.clone()),
        start_misses: Distribution::of(&mut misses.clone()),
        steps: results,
        accuracy: super::accuracy(),
        cache: pae::cache::snapshot(),
        worker: super::worker_figures(),
    })
}
