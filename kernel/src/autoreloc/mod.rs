//! The predictive relocation engine (issue 13): a background kernel thread watches every
//! island and core once per window ([`monitor`]), keeps a seasonal memory of a phased
//! workload and the co-execution of islands, measures the outcome of each move it made a
//! window ago and trains an online model on it, and moves islands whose predicted benefit
//! passes the threshold, through the stop-the-world relocation of `island::reloc`. The pure
//! logic (features, model, error, decisions, environment selection) is crate
//! `atoll-relocmodel`; the protocol is `docs/relocation-engine.md`.
//!
//! Monitoring runs from the first `autoreloc`, `model`, `engine-log` or `phased` command on;
//! moves happen only while the engine is on (`autoreloc on`, or `phased --engine on` for the
//! run).

mod engine;
pub mod log;
mod monitor;
pub mod phased;

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use atoll_relocmodel::regroup::Regroup;
use spin::Mutex;

pub use engine::{CONSOLE_CORE, ERROR_WINDOW_MOVES, Engine};

use crate::island::{regroup, reloc};
use crate::sched::{self, ThreadError};

/// Length of a window.
pub const WINDOW_US: u64 = 10_000;

static ENGINE: Mutex<Option<Engine>> = Mutex::new(None);
static ENABLED: AtomicBool = AtomicBool::new(false);
/// The engine thread's id (0: not started).
static THREAD: AtomicU64 = AtomicU64::new(0);
static STARTING: AtomicBool = AtomicBool::new(false);
/// The workload's phase: `count << 32 | index`, or `u64::MAX` when none is announced.
static PHASE: AtomicU64 = AtomicU64::new(u64::MAX);

/// Runs `f` on the engine's state.
pub fn with<R>(f: impl FnOnce(&mut Engine) -> R) -> R {
    let mut g = ENGINE.lock();
    f(g.get_or_insert_with(Engine::default))
}

/// Starts the engine thread (on the console's core) unless it runs.
pub fn ensure_started() -> Result<(), ThreadError> {
    if THREAD.load(Ordering::Acquire) != 0 || STARTING.swap(true, Ordering::AcqRel) {
        return Ok(());
    }
    let r = sched::spawn_thread("autoreloc", Some(CONSOLE_CORE as usize), main, 0);
    match r {
        Ok(id) => {
            THREAD.store(id, Ordering::Release);
            Ok(())
        }
        Err(e) => {
            STARTING.store(false, Ordering::Release);
            Err(e)
        }
    }
}

/// Whether the engine thread runs.
pub fn started() -> bool {
    THREAD.load(Ordering::Acquire) != 0
}

/// Lets the engine move islands, or stops it (monitoring goes on).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Release);
}

/// Whether the engine may move islands.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// A workload announces that phase `index` of `count` begins.
pub fn set_phase(index: u32, count: u32) {
    PHASE.store(u64::from(count) << 32 | u64::from(index), Ordering::Release);
}

/// The workload ended: no phase.
pub fn clear_phase() {
    PHASE.store(u64::MAX, Ordering::Release);
}

fn phase() -> Option<(u32, u32)> {
    let v = PHASE.load(Ordering::Acquire);
    (v != u64::MAX).then_some(((v & 0xffff_ffff) as u32, (v >> 32) as u32))
}

fn main(_: u64) {
    loop {
        sched::sleep_us(WINDOW_US);
        let planned = with(|e| e.step(phase(), enabled()));
        for p in planned {
            // Outside the engine's lock: a move stops the world and may take a while.
            let result = reloc::relocate(p.island, p.target);
            let result: Result<&reloc::MoveReport, String> = match &result {
                Ok(r) => Ok(r),
                Err(e) => Err(alloc::format!("{e}")),
            };
            with(|e| e.record(&p, result));
        }
        if let Some(g) = with(|e| e.take_regroup()) {
            let result = match g.action {
                Regroup::Merge {
                    into,
                    absorbed,
                    reason,
                } => regroup::merge(into, absorbed, Some(merge_page(reason))),
                Regroup::Split { island, at, .. } => {
                    let (head, tail) = g.split_targets();
                    regroup::split(island, at, head, tail)
                }
            };
            let result: Result<&regroup::RegroupReport, String> = match &result {
                Ok(r) => Ok(r),
                Err(e) => Err(alloc::format!("{e}")),
            };
            with(|e| e.record_regroup(&g, result));
        }
    }
}

/// The page a merge's islands all want.
fn merge_page(reason: atoll_relocmodel::regroup::RegroupReason) -> atoll_island::PageSize {
    match reason {
        atoll_relocmodel::regroup::RegroupReason::RunTogether { hot: true, .. } => {
            atoll_island::PageSize::Size2M
        }
        _ => atoll_island::PageSize::Size4K,
    }
}

/// The log entries after sequence number `after`.
pub fn log_since(after: u64) -> Vec<log::Entry> {
    with(|e| e.log.iter().filter(|x| x.seq > after).cloned().collect())
}

/// The last log sequence number.
pub fn log_seq() -> u64 {
    with(|e| e.log.last_seq())
}
