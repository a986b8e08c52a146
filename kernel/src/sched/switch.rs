//! The switch path: the timer, yield and reschedule vectors all end here. The outgoing
//! thread's context is the trap frame its entry stub just pushed; the incoming thread's is the
//! frame it left behind (or the synthetic one `spawn` built).

use core::sync::atomic::{AtomicU64, Ordering};

use atoll_kcore::sched::ThreadState;

use super::SCHED;
use super::slots::SLOTS;
use crate::arch::apic;
use crate::arch::trap::{Resume, TrapFrame};
use crate::arch::{cpu, percpu};
use crate::smp::{MAX_CORES, ipi};

/// TSC when each core's current thread was switched in.
static SWITCH_IN_TSC: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

/// Starts CPU-time accounting on `core`.
pub fn start_accounting(core: usize) {
    SWITCH_IN_TSC[core].store(cpu::rdtsc(), Ordering::Relaxed);
}

/// Cycles the current thread on `core` has run since it was switched in.
pub fn running_cycles(core: usize) -> u64 {
    cpu::rdtsc().saturating_sub(SWITCH_IN_TSC[core].load(Ordering::Relaxed))
}

/// The timer: wake sleepers, charge the slice, maybe switch.
pub fn on_timer(frame: &mut TrapFrame) -> Resume {
    apic::eoi();
    let core = percpu::core_id() as usize;
    let now = cpu::rdtsc();
    let Some(sched) = SCHED.get() else {
        return Resume::same(frame);
    };
    if frame.interrupts_were_enabled() {
        crate::island::sample_tick(core, frame.rip, now);
    }
    let (resched, kicks) = sched.lock().tick(core, now);
    for c in kicks.others(core) {
        ipi::send_reschedule(c);
    }
    if resched {
        switch(frame, core)
    } else {
        Resume::same(frame)
    }
}

/// A voluntary yield (`int`) or a reschedule IPI.
pub fn on_yield(frame: &mut TrapFrame) -> Resume {
    let core = percpu::core_id() as usize;
    switch(frame, core)
}

/// The reschedule IPI.
pub fn on_reschedule(frame: &mut TrapFrame) -> Resume {
    apic::eoi();
    on_yield(frame)
}

/// Picks the next thread on `core` and returns its frame.
pub fn switch(frame: &mut TrapFrame, core: usize) -> Resume {
    let Some(sched) = SCHED.get() else {
        return Resume::same(frame);
    };
    let (prev, prev_dead, next, kicks) = {
        let mut s = sched.lock();
        let prev = s.current(core);
        let (next, kicks) = s.schedule(core);
        let dead = prev.and_then(|p| s.info(p)).map(|t| t.state) == Some(ThreadState::Dead);
        (prev, dead, next, kicks)
    };
    for c in kicks.others(core) {
        ipi::send_reschedule(c);
    }
    let now = cpu::rdtsc();
    let since = SWITCH_IN_TSC[core].swap(now, Ordering::Relaxed);
    if let Some(p) = prev {
        SLOTS[p]
            .cpu_cycles
            .fetch_add(now.saturating_sub(since), Ordering::Relaxed);
    }
    if prev == Some(next) {
        return Resume::same(frame);
    }
    // The incoming thread may still be leaving another core's stack: wait for that core's
    // trap exit to clear the flag (a few instructions).
    while SLOTS[next].on_cpu.load(Ordering::Acquire) != 0 {
        core::hint::spin_loop();
    }
    SLOTS[next].on_cpu.store(1, Ordering::Relaxed);
    swap_fpu_state(if prev_dead { None } else { prev }, next);
    percpu::set_current_thread(next);
    let release = match prev {
        Some(p) => {
            // A dead thread's context is never resumed: park none.
            if !prev_dead {
                SLOTS[p].park_frame(frame);
            }
            &SLOTS[p].on_cpu as *const AtomicU64
        }
        None => core::ptr::null(),
    };
    Resume {
        frame: SLOTS[next].unpark_frame(),
        release,
    }
}

/// Moves SSE state between threads that have it: saves the outgoing thread's registers, loads
/// the incoming thread's. Kernel code never touches SSE registers, so threads without an area
/// need nothing.
fn swap_fpu_state(prev: Option<usize>, next: usize) {
    if let Some(p) = prev {
        SLOTS[p].save_fpu();
    }
    SLOTS[next].restore_fpu();
}
