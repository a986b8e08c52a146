//! Controlling other threads (suspend, resume, migrate, kill), reading a suspended thread's
//! saved context, and the views `threads` and `cpus` print.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use atoll_kcore::sched::{SchedError, ThreadState};

use super::slots::SLOTS;
use super::{ThreadError, current_slot, cycles_of, kick, sleep_us, slot_of, with};
use crate::arch::trap::TrapFrame;
use crate::time;

/// Polls until thread `slot` reaches `state` or `timeout_us` passes.
fn wait_for_state(
    slot: usize,
    id: u64,
    state: ThreadState,
    timeout_us: u64,
) -> Result<(), ThreadError> {
    let end = time::uptime_us() + timeout_us;
    loop {
        let now = with(|s| s.info(slot).map(|t| t.state))?;
        if now == Some(state) {
            return Ok(());
        }
        if time::uptime_us() > end {
            return Err(ThreadError::Timeout(id));
        }
        sleep_us(1000);
    }
}

/// Suspends thread `id` and waits until it is off its core (its context then sits in its
/// saved trap frame).
pub fn suspend(id: u64) -> Result<(), ThreadError> {
    let slot = slot_of(id)?;
    let me = current_slot();
    kick(with(|s| s.suspend(slot, Some(me)))??);
    wait_for_state(slot, id, ThreadState::Suspended, 1_000_000)
}

/// Resumes a suspended thread.
pub fn resume(id: u64) -> Result<(), ThreadError> {
    let slot = slot_of(id)?;
    kick(with(|s| s.resume(slot))??);
    Ok(())
}

/// Moves thread `id` to `core`.
pub fn migrate(id: u64, core: usize) -> Result<(), ThreadError> {
    let slot = slot_of(id)?;
    kick(with(|s| s.migrate(slot, core))??);
    Ok(())
}

/// Ends thread `id`.
pub fn kill(id: u64) -> Result<(), ThreadError> {
    let slot = slot_of(id)?;
    let me = current_slot();
    kick(with(|s| {
        let kicks = s.kill(slot, Some(me))?;
        if s.info(slot).map(|t| t.state) == Some(ThreadState::Dead) {
            // Killed off-core: its saved context will never run again.
            SLOTS[slot].unpark_frame();
        }
        Ok::<_, SchedError>(kicks)
    })??);
    wait_for_state(slot, id, ThreadState::Dead, 1_000_000)
}

/// One thread, as `threads` prints it.
#[derive(Debug, Clone)]
pub struct ThreadView {
    /// Thread id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// The core it belongs to.
    pub core: usize,
    /// Its state.
    pub state: ThreadState,
    /// TSC cycles it has run.
    pub cpu_cycles: u64,
    /// Its counter.
    pub counter: u64,
}

/// Every thread.
pub fn list() -> Vec<ThreadView> {
    with(|s| {
        s.threads()
            .map(|(slot, t)| ThreadView {
                id: t.id,
                name: t.name.clone(),
                core: t.core,
                state: t.state,
                cpu_cycles: cycles_of(s, slot),
                counter: SLOTS[slot].counter.load(Ordering::Relaxed),
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Per-core figures for `cpus`: the current thread's id and name, and the run-queue length.
pub fn core_view(core: usize) -> Option<(u64, String, usize)> {
    with(|s| {
        let cur = s.current(core)?;
        let t = s.info(cur)?;
        Some((t.id, t.name.clone(), s.queue_len(core)))
    })
    .ok()
    .flatten()
}

/// TSC cycles `core`'s idle thread has run.
pub fn idle_cycles(core: usize) -> u64 {
    with(|s| {
        s.threads()
            .find(|(_, t)| t.idle && t.core == core)
            .map_or(0, |(slot, _)| cycles_of(s, slot))
    })
    .unwrap_or(0)
}

/// Reads (and lets `edit` rewrite) the saved context of suspended thread `id`. The scheduler lock
/// is held throughout, so the thread cannot be resumed meanwhile.
pub fn with_suspended_frame<R>(
    id: u64,
    edit: impl FnOnce(&mut TrapFrame) -> R,
) -> Result<R, ThreadError> {
    let slot = slot_of(id)?;
    with(|s| {
        let t = s.info(slot).ok_or(SchedError::NoSuchThread(id))?;
        if t.state != ThreadState::Suspended {
            return Err(SchedError::NotSuspended(id));
        }
        // The scheduler lock keeps the thread suspended until `edit` returns.
        SLOTS[slot]
            .with_saved_frame(edit)
            .ok_or(SchedError::NotSuspended(id))
    })?
    .map_err(ThreadError::from)
}
