//! Running a prepared task on a chunk thread of its own (its own stack and SSE state) and
//! waiting for it.
//!
//! The task's instances travel to the chunk thread and back through a job the two threads
//! share; only one of them uses the instances at a time.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use atoll_pae::TrapCode;
use atoll_pae::runtime::InvokeError;
use chunk_image::Value;
use spin::Mutex;

use super::Prepared;
use crate::arch::{cpu, percpu};
use crate::sched::{self, ThreadError};

/// Smallest stack a chunk thread gets, whatever its manifest says.
const MIN_TASK_STACK_BYTES: u64 = 64 * 1024;
/// Stack kept back from generated code for the kernel frames around it (thread start, the
/// entry trampoline, host functions, nested interrupt frames).
const KERNEL_STACK_RESERVE_BYTES: u64 = 48 * 1024;

/// How a task ended, and where it ran.
#[derive(Debug)]
pub struct TaskOutcome {
    /// Results, or the trap that ended it (or a call that did not fit the export).
    pub result: Result<Vec<Value>, InvokeError>,
    /// The core the chunk thread ran on.
    pub core: u32,
    /// The chunk thread's id.
    pub thread: u64,
    /// TSC cycles from entering generated code to leaving it.
    pub run_cycles: u64,
    /// TSC when the chunk thread called into generated code (the task's first instruction).
    pub entered_tsc: u64,
    /// The code a WASI command passed to `proc_exit` (it ends the task as a host trap).
    pub wasi_exit: Option<u32>,
}

/// What the chunk thread runs: the prepared task and its arguments.
struct Work {
    prepared: Prepared,
    args: Vec<u64>,
    budget_bytes: usize,
}

// SAFETY: `Prepared` is not `Send` only because its instances hold raw pointers (the VM
// context, linear memory, code) into memory they own. The job hands the whole task over: the
// spawning thread stops using it when it posts the job and uses it again only after the chunk
// thread handed it back, so no two threads ever use the instances at once.
unsafe impl Send for Work {}

/// What the chunk thread reports.
struct Ran {
    result: Result<Vec<Value>, InvokeError>,
    core: u32,
    run_cycles: u64,
    entered_tsc: u64,
    wasi_exit: Option<u32>,
}

/// One task, shared by the spawning thread and its chunk thread.
struct Job {
    /// The work: taken by the chunk thread, put back when it is done (so the spawning thread
    /// drops the instances, as it made them).
    work: Mutex<Option<Work>>,
    ran: Mutex<Option<Ran>>,
    /// Set last by the chunk thread.
    done: AtomicBool,
}

/// Jobs posted for chunk threads that have not started yet, by ticket (the thread's argument).
static POSTED: Mutex<BTreeMap<u64, Arc<Job>>> = Mutex::new(BTreeMap::new());
static NEXT_TICKET: AtomicU64 = AtomicU64::new(1);

fn chunk_thread(ticket: u64) {
    let Some(job) = POSTED.lock().remove(&ticket) else {
        return;
    };
    let Some(mut work) = job.work.lock().take() else {
        return;
    };
    sched::use_fpu();
    let core = percpu::core_id();
    // The instances' counters are read live by `islands` while the task runs.
    let live: Vec<Option<u64>> = work
        .prepared
        .counters()
        .map(|(chunk, counters)| crate::island::begin_counters(chunk, counters))
        .collect();
    // A task of a linked group waits here (not counted as running) while another task of
    // the group runs.
    let group = work.prepared.group();
    let mut held = group.as_ref().map(|g| {
        let state = g.enter();
        g.note_task();
        state
    });
    let start = cpu::rdtsc();
    sched::set_in_generated(true);
    let result = work
        .prepared
        .invoke(&work.args, work.budget_bytes, held.as_deref_mut());
    sched::set_in_generated(false);
    let run_cycles = cpu::rdtsc() - start;
    drop(held);
    for (i, (chunk, counters)) in work.prepared.counters().enumerate() {
        crate::island::end_counters(live.get(i).copied().flatten(), chunk, counters);
    }
    let wasi_exit = work.prepared.wasi_exit_code();
    *job.ran.lock() = Some(Ran {
        result,
        core,
        run_cycles,
        entered_tsc: start,
        wasi_exit,
    });
    *job.work.lock() = Some(work);
    job.done.store(true, Ordering::Release);
}

/// Runs a prepared task on a new chunk thread (on `core`, or the least-loaded core) with its
/// own stack and SSE state, and waits for it.
pub fn run_on_thread(
    prepared: Prepared,
    args: Vec<u64>,
    core: Option<usize>,
) -> Result<TaskOutcome, ThreadError> {
    start_on_thread(prepared, args, core)?.wait()
}

/// Like [`run_on_thread`], and hands the prepared task back (its instances as the run left
/// them), or `None` if the chunk thread did not finish with it.
pub fn run_keeping(
    prepared: Prepared,
    args: Vec<u64>,
    core: Option<usize>,
) -> Result<(TaskOutcome, Option<Prepared>), ThreadError> {
    let started = start_on_thread(prepared, args, core)?;
    let job = started.job.clone();
    let outcome = started.wait()?;
    let prepared = job.work.lock().take().map(|w| w.prepared);
    Ok((outcome, prepared))
}

/// A task running on its chunk thread.
pub struct Started {
    job: Arc<Job>,
    thread: u64,
}

impl core::fmt::Debug for Started {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Started")
            .field("thread", &self.thread)
            .finish_non_exhaustive()
    }
}

impl Started {
    /// The chunk thread's id.
    pub fn thread(&self) -> u64 {
        self.thread
    }

    /// Whether the task has finished (then [`Started::wait`] returns at once).
    pub fn is_done(&self) -> bool {
        self.job.done.load(Ordering::Acquire)
    }

    /// Waits for the task and returns how it ended.
    pub fn wait(self) -> Result<TaskOutcome, ThreadError> {
        let (job, thread) = (self.job, self.thread);
        let joined = sched::join(thread);
        if !job.done.load(Ordering::Acquire) {
            // The thread may still run (or was killed mid-task, its share of the job lost with
            // its stack): the job stays with it.
            return Err(joined.err().unwrap_or(ThreadError::Timeout(thread)));
        }
        let ran = job.ran.lock().take();
        Ok(match ran {
            Some(ran) => TaskOutcome {
                result: ran.result,
                core: ran.core,
                thread,
                run_cycles: ran.run_cycles,
                entered_tsc: ran.entered_tsc,
                wasi_exit: ran.wasi_exit,
            },
            None => TaskOutcome {
                result: Err(InvokeError::Trap(TrapCode::HostError)),
                core: 0,
                thread,
                run_cycles: 0,
                entered_tsc: 0,
                wasi_exit: None,
            },
        })
    }
}

/// Starts a prepared task on a new chunk thread (on `core`, or the least-loaded core) with its
/// own stack and SSE state, without waiting for it.
pub fn start_on_thread(
    prepared: Prepared,
    args: Vec<u64>,
    core: Option<usize>,
) -> Result<Started, ThreadError> {
    let stack_bytes = prepared.stack_bytes.max(MIN_TASK_STACK_BYTES) + KERNEL_STACK_RESERVE_BYTES;
    let name = alloc::format!("task {}", prepared.task);
    let job = Arc::new(Job {
        work: Mutex::new(Some(Work {
            prepared,
            args,
            budget_bytes: (stack_bytes - KERNEL_STACK_RESERVE_BYTES) as usize,
        })),
        ran: Mutex::new(None),
        done: AtomicBool::new(false),
    });
    let ticket = NEXT_TICKET.fetch_add(1, Ordering::Relaxed);
    POSTED.lock().insert(ticket, job.clone());
    let thread = match sched::spawn_with_stack(&name, core, stack_bytes, chunk_thread, ticket) {
        Ok(thread) => thread,
        Err(e) => {
            POSTED.lock().remove(&ticket);
            return Err(e);
        }
    };
    Ok(Started { job, thread })
}
