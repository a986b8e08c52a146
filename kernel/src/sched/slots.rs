//! The fixed thread-slot table: what other cores (and the NMI path) may read about a thread
//! without taking the scheduler lock. Slot `i` here is slot `i` in the scheduler.
//!
//! It also holds each thread's context while the thread is off its core: the saved trap frame
//! (on the thread's own stack, lent through an `arch::context::LentFrame`) and the FPU area.
//! Both are reached by address, which is why this module may use `unsafe`; the rest of `sched`
//! keeps two rules that make it sound:
//! - a frame is parked only by the switch path (the outgoing thread's frame, on its own stack)
//!   or by `spawn` (the first frame, on the new stack), and a stack is freed only after its
//!   slot's frame was taken back (`retire`, in `reap`);
//! - a thread runs on one core at a time, and its FPU area is released only once the thread is
//!   dead and off every core (`retire` again).

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use crate::arch::context::LentFrame;
use crate::arch::fpu::FxSaveArea;
use crate::arch::trap::TrapFrame;

/// The most threads at once.
pub const MAX_THREADS: usize = 128;

/// Lock-free facts about one thread.
#[derive(Debug)]
pub struct ThreadSlot {
    /// The thread's id (0: slot unused).
    pub id: AtomicU64,
    /// Its saved `TrapFrame` while it is off its core.
    frame: LentFrame,
    /// Nonzero while some core runs on this thread's stack (cleared by the trap exit path
    /// once the core has left the stack).
    pub on_cpu: AtomicU64,
    /// TSC cycles it has run.
    pub cpu_cycles: AtomicU64,
    /// A counter the thread may bump (the `spawn counter` test threads do).
    pub counter: AtomicU64,
    /// Lowest address of the thread's stack (0: not known, e.g. the boot thread's).
    pub stack_bottom: AtomicU64,
    /// One past its highest address. Both are stored before `id` is published.
    pub stack_top: AtomicU64,
    /// Set while the thread is inside a call into generated code (from entering the
    /// trampoline to returning from it, host functions and libcalls it calls included): only
    /// then can its stack hold return addresses into code islands.
    pub in_generated: AtomicBool,
    /// The thread's FPU/SSE area when it runs SSE code (null: it does not). Owned by the slot
    /// (made from a `Box`); the switch path saves into it when the thread leaves a core and
    /// restores from it when the thread enters one, without locks.
    fpu: AtomicPtr<FxSaveArea>,
}

impl ThreadSlot {
    const fn new() -> Self {
        Self {
            id: AtomicU64::new(0),
            frame: LentFrame::new(),
            on_cpu: AtomicU64::new(0),
            cpu_cycles: AtomicU64::new(0),
            counter: AtomicU64::new(0),
            stack_bottom: AtomicU64::new(0),
            stack_top: AtomicU64::new(0),
            in_generated: AtomicBool::new(false),
            fpu: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// The thread's stack `[bottom, top)`, if known. Read after `id` (acquire) to get the
    /// bounds of the thread that id names.
    pub fn stack_bounds(&self) -> Option<(u64, u64)> {
        let (bottom, top) = (
            self.stack_bottom.load(Ordering::Relaxed),
            self.stack_top.load(Ordering::Relaxed),
        );
        (bottom != 0 && top > bottom).then_some((bottom, top))
    }

    /// Runs `f` on the thread's saved context, if the thread is off its core with a context
    /// saved (and no one else is looking at it). While `f` runs, no core can resume the thread.
    pub fn with_saved_frame<R>(&self, f: impl FnOnce(&mut TrapFrame) -> R) -> Option<R> {
        if self.on_cpu.load(Ordering::Acquire) != 0 {
            return None;
        }
        self.frame.borrow(f)
    }

    /// Parks the thread's context: `frame` is where it resumes. Called by the switch path for
    /// the thread leaving its core, and by `spawn` for a new thread's first frame; `frame` lies
    /// on the thread's own stack (see the module rules).
    pub(super) fn park_frame(&self, frame: *mut TrapFrame) {
        // SAFETY: the frame is on this thread's stack, which is freed only after `retire`
        // takes the frame back, and nothing but borrowers touches it until a core resumes the
        // thread through `unpark_frame`.
        unsafe { self.frame.lend(frame) };
    }

    /// Takes the parked context back to resume it (or to discard it: a thread killed off its
    /// core); null if none is parked.
    pub(super) fn unpark_frame(&self) -> *mut TrapFrame {
        self.frame.take_back()
    }

    /// Whether the thread has an FPU area.
    pub(super) fn has_fpu(&self) -> bool {
        !self.fpu.load(Ordering::Acquire).is_null()
    }

    /// Gives the thread its FPU area (it has none yet).
    pub(super) fn install_fpu(&self, area: Box<FxSaveArea>) {
        let old = self.fpu.swap(Box::into_raw(area), Ordering::AcqRel);
        debug_assert!(old.is_null(), "a thread's FPU area is installed once");
    }

    /// Saves this core's FPU/SSE registers into the thread's area, if it has one. Called on the
    /// core the thread is leaving.
    pub(super) fn save_fpu(&self) {
        let area = self.fpu.load(Ordering::Acquire);
        // SAFETY: a non-null area came from `Box::into_raw` in `install_fpu` and is freed only
        // by `retire`, once the thread is dead and off every core; only the core running the
        // thread touches it, so this is the only reference.
        if let Some(area) = unsafe { area.as_mut() } {
            area.save();
        }
    }

    /// Loads this core's FPU/SSE registers from the thread's area, if it has one. Called on
    /// the core the thread is entering.
    pub(super) fn restore_fpu(&self) {
        let area = self.fpu.load(Ordering::Acquire);
        // SAFETY: as for `save_fpu`.
        if let Some(area) = unsafe { area.as_ref() } {
            area.restore();
        }
    }

    /// Withdraws a dead thread's context before its stack is freed: takes the frame back and
    /// frees the FPU area. The thread must be dead and off every core.
    pub(super) fn retire(&self) {
        self.frame.take_back();
        let area = self.fpu.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !area.is_null() {
            // SAFETY: `area` came from `Box::into_raw` in `install_fpu`; the swap made this the
            // only owner, and the dead thread, off every core, no longer uses it.
            drop(unsafe { Box::from_raw(area) });
        }
    }
}

/// Every slot.
pub static SLOTS: [ThreadSlot; MAX_THREADS] = [const { ThreadSlot::new() }; MAX_THREADS];
