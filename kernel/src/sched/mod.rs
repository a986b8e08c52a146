//! Kernel threads: guarded stacks, per-core run queues, preemption by the APIC timer, sleep,
//! block/wake, join, yield, suspend/resume, migrate and kill.
//!
//! Policy lives in `atoll_kcore::sched::Scheduler` (host-tested) behind one lock taken with
//! interrupts off; contexts are trap frames (see `switch`). What other cores and the NMI path
//! read without the lock is in the fixed slot table (`slots`).

mod control;
// May use `unsafe` (it says why; the list is in `main.rs`).
#[allow(unsafe_code)]
pub mod slots;
mod switch;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::Ordering;

use atoll_kcore::sched::{Kicks, SchedError, Scheduler, ThreadState};
use spin::{Mutex, Once};

pub use control::{
    core_view, idle_cycles, kill, list, migrate, resume, suspend, with_suspended_frame,
};
pub use slots::{MAX_THREADS, SLOTS};

use crate::arch::context::{self, FrameError};
use crate::arch::fpu::{self, FxSaveArea};
use crate::arch::trap::{TrapFrame, set_switch_handler};
use crate::arch::vectors::Vector;
use crate::arch::{apic, cpu, percpu};
use crate::mem::stack::{self, KernelStack};
use crate::mem::vm::VmError;
use crate::smp::{self, ipi};
use crate::time;

/// Bytes of each thread's stack (plus a guard page).
const THREAD_STACK_BYTES: u64 = 64 * 1024;
/// Timer interrupts per second on every core.
pub const TICK_HZ: u64 = 100;
/// Ticks a thread runs before others on its core get a turn.
const SLICE_TICKS: u32 = 2;

static SCHED: Once<Mutex<Scheduler>> = Once::new();

/// What the kernel keeps per thread beyond the policy and the slot table: its stack.
#[derive(Debug, Default)]
struct Extra {
    stack: Option<KernelStack>,
}

static EXTRAS: Mutex<Vec<Extra>> = Mutex::new(Vec::new());

/// Why a thread operation failed.
#[derive(Debug, Clone, Copy)]
pub enum ThreadError {
    /// The scheduler refused.
    Sched(SchedError),
    /// No stack could be made.
    Vm(VmError),
    /// The scheduler is not running yet.
    NotStarted,
    /// The thread did not stop within the deadline.
    Timeout(u64),
    /// The new thread's first frame did not fit its stack.
    Frame(FrameError),
}

impl From<SchedError> for ThreadError {
    fn from(e: SchedError) -> Self {
        ThreadError::Sched(e)
    }
}

impl From<VmError> for ThreadError {
    fn from(e: VmError) -> Self {
        ThreadError::Vm(e)
    }
}

impl fmt::Display for ThreadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadError::Sched(e) => write!(f, "{e}"),
            ThreadError::Vm(e) => write!(f, "thread stack: {e}"),
            ThreadError::NotStarted => write!(f, "the scheduler is not running"),
            ThreadError::Timeout(id) => write!(f, "thread {id} did not stop in time"),
            ThreadError::Frame(e) => write!(f, "thread stack: {e:?}"),
        }
    }
}

fn with<R>(f: impl FnOnce(&mut Scheduler) -> R) -> Result<R, ThreadError> {
    let s = SCHED.get().ok_or(ThreadError::NotStarted)?;
    Ok(cpu::without_interrupts(|| f(&mut s.lock())))
}

fn this_core() -> usize {
    percpu::core_id() as usize
}

fn kick(kicks: Kicks) {
    for c in kicks.others(this_core()) {
        ipi::send_reschedule(c);
    }
}

/// Starts scheduling on the boot core: the running context becomes thread `name` (the shell),
/// an idle thread is made, the switch vectors are installed and the timer starts.
pub fn init_boot_core(name: &str, cores: usize) -> Result<(), ThreadError> {
    EXTRAS.lock().resize_with(MAX_THREADS, Extra::default);
    SCHED.call_once(|| Mutex::new(Scheduler::new(cores, MAX_THREADS, SLICE_TICKS)));
    set_switch_handler(Vector::Timer as u8, switch::on_timer);
    set_switch_handler(Vector::Yield as u8, switch::on_yield);
    set_switch_handler(Vector::Reschedule as u8, switch::on_reschedule);
    let slot = with(|s| s.adopt_current(0, name, false))??;
    publish(slot, 1);
    percpu::set_current_thread(slot);
    spawn_on("idle0", 0, true, THREAD_STACK_BYTES, idle_entry, 0)?;
    switch::start_accounting(0);
    smp::mark_online(0);
    apic::start_periodic_timer(TICK_HZ, Vector::Timer as u8);
    Ok(())
}

/// Finishes an AP's start: its boot context becomes its idle thread, it goes online, and it
/// idles (taking timer and IPI interrupts) forever.
pub fn start_ap_core(core: usize) -> ! {
    let name = alloc::format!("idle{core}");
    match with(|s| s.adopt_current(core, &name, true)) {
        Ok(Ok(slot)) => {
            publish(slot, 1);
            percpu::set_current_thread(slot);
            switch::start_accounting(core);
            smp::mark_online(core);
            apic::start_periodic_timer(TICK_HZ, Vector::Timer as u8);
        }
        _ => cpu::halt_forever(),
    }
    idle_loop()
}

/// Cycles `slot` has run, including its current stint if it is on a core now.
fn cycles_of(s: &Scheduler, slot: usize) -> u64 {
    let done = SLOTS[slot].cpu_cycles.load(Ordering::Relaxed);
    let running = (0..s.cores()).find(|c| s.current(*c) == Some(slot));
    done + running.map_or(0, switch::running_cycles)
}

fn publish(slot: usize, on_cpu: u64) {
    let id = with(|s| s.info(slot).map_or(0, |t| t.id)).unwrap_or(0);
    let t = &SLOTS[slot];
    t.cpu_cycles.store(0, Ordering::Relaxed);
    t.counter.store(0, Ordering::Relaxed);
    t.on_cpu.store(on_cpu, Ordering::Relaxed);
    t.id.store(id, Ordering::Release);
}

fn idle_loop() -> ! {
    loop {
        cpu::enable_interrupts();
        cpu::halt();
    }
}

fn idle_entry(_: u64) {
    idle_loop()
}

/// Frees dead threads that no core runs on. Each slot is unpublished, its context withdrawn
/// (frame taken back, SSE area freed), its stack taken and the slot released in one critical
/// section under the scheduler lock, so a concurrent `spawn` can never be handed a slot that is
/// still being cleared, and two reapers can never both clear the same slot (the second would
/// clear a fresh thread's). Stacks are unmapped after the lock is dropped; a stop-the-world
/// callback never finds a frame on a stack being unmapped, as the frame was withdrawn first.
pub fn reap() {
    let stacks = with(|s| {
        let dead: Vec<usize> = s
            .threads()
            .filter(|(slot, t)| {
                t.state == ThreadState::Dead && SLOTS[*slot].on_cpu.load(Ordering::Acquire) == 0
            })
            .map(|(slot, _)| slot)
            .collect();
        let mut extras = EXTRAS.lock();
        let mut stacks = Vec::with_capacity(dead.len());
        for slot in dead {
            if !s.reap(slot) {
                continue;
            }
            SLOTS[slot].id.store(0, Ordering::Release);
            SLOTS[slot].retire();
            stacks.extend(extras[slot].stack.take());
        }
        stacks
    })
    .unwrap_or_default();
    for st in stacks {
        if let Err(e) = stack::free(st) {
            log::warn!("freeing a thread stack: {e}");
        }
    }
}

/// Starts a kernel thread running `entry(arg)` on `core` (or the least-loaded core).
/// Returns its slot.
pub fn spawn(
    name: &str,
    core: Option<usize>,
    entry: fn(u64),
    arg: u64,
) -> Result<usize, ThreadError> {
    let core = match core {
        Some(c) => c,
        None => with(|s| s.least_loaded_core())?,
    };
    spawn_on(name, core, false, THREAD_STACK_BYTES, entry, arg)
}

/// Like [`spawn_thread`], with a stack of `stack_bytes` (plus a guard page); returns the id.
pub fn spawn_with_stack(
    name: &str,
    core: Option<usize>,
    stack_bytes: u64,
    entry: fn(u64),
    arg: u64,
) -> Result<u64, ThreadError> {
    let core = match core {
        Some(c) => c,
        None => with(|s| s.least_loaded_core())?,
    };
    let slot = spawn_on(name, core, false, stack_bytes, entry, arg)?;
    Ok(SLOTS[slot].id.load(Ordering::Acquire))
}

fn spawn_on(
    name: &str,
    core: usize,
    idle: bool,
    stack_bytes: u64,
    entry: fn(u64),
    arg: u64,
) -> Result<usize, ThreadError> {
    if !idle && !with(|s| s.is_online(core))? {
        return Err(SchedError::BadCore(core).into());
    }
    if with(|s| s.threads().count())? + 4 >= MAX_THREADS {
        reap();
    }
    let (st, frame) = stack::alloc_with(stack_bytes, |memory| {
        context::new_thread_frame(memory, entry, arg, exit)
    })?;
    let frame = match frame {
        Ok(frame) => frame,
        Err(e) => {
            let _ = stack::free(st);
            return Err(ThreadError::Frame(e));
        }
    };
    let name = String::from(name);
    let mut stack_to_give = Some(st);
    let result = with(|s| {
        // Queued, given its stack and published before the lock is released, so no core can
        // pick the thread before its context is in place and no reaper can see a live slot
        // without its stack.
        let slot = s.spawn(&name, core, idle)?;
        let id = s.info(slot).map_or(0, |t| t.id);
        let t = &SLOTS[slot];
        if let Some(st) = &stack_to_give {
            t.stack_bottom.store(st.bottom, Ordering::Relaxed);
            t.stack_top.store(st.top, Ordering::Relaxed);
            t.in_generated.store(false, Ordering::Relaxed);
        }
        EXTRAS.lock()[slot].stack = stack_to_give.take();
        t.retire();
        t.park_frame(frame);
        t.on_cpu.store(0, Ordering::Release);
        t.cpu_cycles.store(0, Ordering::Relaxed);
        t.counter.store(0, Ordering::Relaxed);
        t.id.store(id, Ordering::Release);
        Ok::<usize, SchedError>(slot)
    })?;
    match result {
        Ok(slot) => {
            if !idle {
                kick(Kicks(1 << core.min(63)));
            }
            Ok(slot)
        }
        Err(e) => {
            if let Some(st) = stack_to_give {
                let _ = stack::free(st);
            }
            Err(e.into())
        }
    }
}

/// Gives the current thread its own SSE state (clean: round to nearest, exceptions masked),
/// saved and restored whenever it leaves or enters a core. Call before running generated code.
pub fn use_fpu() {
    let slot = current_slot();
    if SLOTS[slot].has_fpu() {
        fpu::reset_state();
        return;
    }
    // Interrupts off from the reset to the install: a switch in between would save someone
    // else's registers into the area (this thread has none yet, so nothing saves ours).
    cpu::without_interrupts(|| SLOTS[slot].install_fpu(Box::new(FxSaveArea::clean())));
}

/// Gives up the rest of this thread's slice.
pub fn yield_now() {
    crate::arch::vectors::raise_yield();
}

/// The current thread ends.
pub fn exit() -> ! {
    let core = this_core();
    if let Ok(k) = with(|s| s.exit_current(core)) {
        kick(k);
    }
    loop {
        yield_now();
    }
}

/// The online core with the fewest runnable threads.
pub fn least_loaded_core() -> usize {
    with(|s| s.least_loaded_core()).unwrap_or(0)
}

/// Whether threads other than the running one wait for `core`.
pub fn others_runnable(core: usize) -> bool {
    with(|s| s.queued_on(core) > 0).unwrap_or(false)
}

/// Sleeps at least `us` microseconds.
pub fn sleep_us(us: u64) {
    let core = this_core();
    let until = cpu::rdtsc() + time::us_to_cycles(us);
    if with(|s| s.sleep_current(core, until)).is_ok() {
        yield_now();
    }
}

/// Blocks the current thread unless `ready()` holds (checked under the scheduler lock, so a
/// `wake` after the check is never lost). Returns after a `wake`.
pub fn block_unless(ready: impl Fn() -> bool) {
    let core = this_core();
    let blocked = with(|s| {
        if ready() {
            false
        } else {
            s.block_current(core);
            true
        }
    });
    if matches!(blocked, Ok(true)) {
        yield_now();
    }
}

/// Wakes thread `id` if it is blocked or sleeping.
pub fn wake_thread(id: u64) -> Result<(), ThreadError> {
    let slot = slot_of(id)?;
    kick(with(|s| s.wake(slot))?);
    Ok(())
}

/// Spawns `entry(arg)` as a thread; returns its id.
pub fn spawn_thread(
    name: &str,
    core: Option<usize>,
    entry: fn(u64),
    arg: u64,
) -> Result<u64, ThreadError> {
    let slot = spawn(name, core, entry, arg)?;
    Ok(SLOTS[slot].id.load(Ordering::Acquire))
}

/// Wakes `slot` from interrupt context; returns whether this core should reschedule.
pub fn wake_from_irq(slot: usize) -> bool {
    let core = this_core();
    match with(|s| s.wake(slot)) {
        Ok(k) => {
            kick(k);
            k.0 & (1 << core.min(63)) != 0
        }
        Err(_) => false,
    }
}

/// Switches from interrupt context (a handler that woke a thread on this core).
pub fn switch_from_irq(frame: &mut TrapFrame) -> crate::arch::trap::Resume {
    switch::switch(frame, this_core())
}

/// The current thread's slot.
pub fn current_slot() -> usize {
    percpu::current_thread()
}

/// Marks whether the current thread is inside a call into generated code
/// (`ThreadSlot::in_generated`; the relocation pause reads it).
pub fn set_in_generated(inside: bool) {
    if let Some(slot) = SLOTS.get(current_slot()) {
        slot.in_generated.store(inside, Ordering::SeqCst);
    }
}

/// The scheduler slot of thread `id`.
pub fn slot_of(id: u64) -> Result<usize, ThreadError> {
    Ok(with(|s| s.slot_of(id))??)
}

/// Waits for thread `id` to end (at once if it has ended, even if it was reaped since).
pub fn join(id: u64) -> Result<(), ThreadError> {
    let core = this_core();
    while with(|s| s.join_current_id(core, id))?? {
        yield_now();
    }
    Ok(())
}
