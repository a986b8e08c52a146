//! The pre-assembly worker: a kernel thread, started on the highest-numbered core (the shell
//! runs on core 0), that assembles predicted chunks into the chunk cache, or only fetches and
//! validates them, ahead of the request.
//!
//! Budget: one chunk at a time. Before each job, if other threads wait for the worker's core,
//! it moves to the least loaded core when that is another one, and then yields its core for up
//! to [`DEFER_MS`] milliseconds while other threads still wait for it, so a running task is
//! delayed by at most one chunk's assembly (or validation) at a time and never by a queue of
//! them. A request whose chunk the worker is assembling waits for that assembly in the
//! cache (no second assembly of the same chunk).

use alloc::collections::VecDeque;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use spin::Mutex;

use crate::chunks::{self, Loaded};
use crate::pae::{self, cache};
use crate::sched::{self, ThreadError};

/// How long the worker yields to busy tasks before a job, at most.
pub const DEFER_MS: u64 = 20;

/// What the worker is asked to do with a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Assemble it into the cache.
    Assemble,
    /// Check its content hash and validate the module (a lower-confidence prediction).
    Validate,
}

/// What the worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerFigures {
    /// Chunks it assembled into the cache.
    pub assembled: u64,
    /// Assembly jobs that found the chunk already resident or being assembled.
    pub already: u64,
    /// Chunks it fetched and validated.
    pub validated: u64,
    /// Jobs that failed (validation refused the chunk, or assembly failed).
    pub failed: u64,
    /// Milliseconds it yielded to busy tasks.
    pub deferred_ms: u64,
    /// TSC cycles it spent working.
    pub busy_cycles: u64,
    /// Jobs dropped because the queue was full.
    pub dropped: u64,
    /// Times it moved to a less loaded core.
    pub moved: u64,
}

const QUEUE_MAX: usize = 64;

static QUEUE: Mutex<VecDeque<(Job, String)>> = Mutex::new(VecDeque::new());
static PENDING: AtomicUsize = AtomicUsize::new(0);
/// 1 while a job runs.
static WORKING: AtomicUsize = AtomicUsize::new(0);
static WORKER: AtomicU64 = AtomicU64::new(0);
static FIGURES: Mutex<WorkerFigures> = Mutex::new(WorkerFigures {
    assembled: 0,
    already: 0,
    validated: 0,
    failed: 0,
    deferred_ms: 0,
    busy_cycles: 0,
    dropped: 0,
    moved: 0,
});

/// Starts the worker on the highest-numbered online core; returns that core.
pub fn start() -> Result<usize, ThreadError> {
    let core = crate::smp::online_cores().max().unwrap_or(0);
    let id = sched::spawn_thread("pae-worker", Some(core), main, 0)?;
    WORKER.store(id, Ordering::Release);
    Ok(core)
}

/// Queues `job` for `chunk` (once: a job already queued is not repeated).
pub fn enqueue(job: Job, chunk: &str) {
    if job == Job::Assemble && cache::resident_or_pending(chunk) {
        return;
    }
    {
        let mut q = QUEUE.lock();
        if q.iter().any(|(j, c)| *j == job && c == chunk) {
            return;
        }
        if q.len() >= QUEUE_MAX {
            FIGURES.lock().dropped += 1;
            return;
        }
        q.push_back((job, chunk.into()));
        PENDING.fetch_add(1, Ordering::AcqRel);
    }
    let id = WORKER.load(Ordering::Acquire);
    if id != 0 {
        let _ = sched::wake_thread(id);
    }
}

/// Whether the worker has nothing queued and nothing running.
pub fn idle() -> bool {
    PENDING.load(Ordering::Acquire) == 0 && WORKING.load(Ordering::Acquire) == 0
}

/// The worker's figures.
pub fn figures() -> WorkerFigures {
    *FIGURES.lock()
}

/// Clears the worker's figures.
pub fn reset_figures() {
    *FIGURES.lock() = WorkerFigures::default();
}

fn main(_: u64) {
    sched::use_fpu();
    loop {
        sched::block_unless(|| PENDING.load(Ordering::Acquire) > 0);
        loop {
            WORKING.store(1, Ordering::Release);
            let Some((job, chunk)) = QUEUE.lock().pop_front() else {
                WORKING.store(0, Ordering::Release);
                break;
            };
            PENDING.fetch_sub(1, Ordering::AcqRel);
            let mut core = crate::arch::percpu::core_id() as usize;
            if sched::others_runnable(core) {
                let idle = sched::least_loaded_core();
                if idle != core && sched::migrate(WORKER.load(Ordering::Acquire), idle).is_ok() {
                    sched::yield_now();
                    FIGURES.lock().moved += 1;
                    core = crate::arch::percpu::core_id() as usize;
                }
            }
            let mut deferred = 0;
            while deferred < DEFER_MS && sched::others_runnable(core) {
                sched::sleep_us(1000);
                deferred += 1;
            }
            let start = crate::arch::cpu::rdtsc();
            let outcome = run(job, &chunk);
            let busy = crate::arch::cpu::rdtsc() - start;
            let mut f = FIGURES.lock();
            f.deferred_ms += deferred;
            f.busy_cycles += busy;
            match outcome {
                Ok(Done::Assembled) => f.assembled += 1,
                Ok(Done::Already) => f.already += 1,
                Ok(Done::Validated) => f.validated += 1,
                Err(()) => f.failed += 1,
            }
            drop(f);
            WORKING.store(0, Ordering::Release);
        }
    }
}

enum Done {
    Assembled,
    Already,
    Validated,
}

fn run(job: Job, chunk: &str) -> Result<Done, ()> {
    match job {
        Job::Assemble => match pae::preassemble(chunk) {
            Ok(cache::Obtained::Assembled) => Ok(Done::Assembled),
            Ok(cache::Obtained::Uncached(_)) => Err(()),
            Ok(_) => Ok(Done::Already),
            Err(e) => {
                log::warn!("pre-assembling {chunk}: {e}");
                Err(())
            }
        },
        Job::Validate => {
            let Loaded::Ready { image, .. } = chunks::loaded() else {
                return Err(());
            };
            let view = image.chunk(chunk).ok_or(())?;
            if chunk_image::checksum::content_hash(view.module) != view.content_hash {
                log::error!("chunk {chunk}: content hash mismatch");
                return Err(());
            }
            view.validate().map_err(|e| {
                log::warn!("chunk {chunk}: {e}");
            })?;
            Ok(Done::Validated)
        }
    }
}
