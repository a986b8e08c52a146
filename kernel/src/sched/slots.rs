//! The fixed thread-slot table: what other cores (and the NMI path) may read about a thread
//! without taking the scheduler lock. Slot `i` here is slot `i` in the scheduler.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::trap::TrapFrame;

/// The most threads at once.
pub const MAX_THREADS: usize = 128;

/// Lock-free facts about one thread.
#[derive(Debug)]
pub struct ThreadSlot {
    /// The thread's id (0: slot unused).
    pub id: AtomicU64,
    /// Its saved `TrapFrame` while it is off its core (0 while never saved).
    pub frame: AtomicU64,
    /// Nonzero while some core runs on this thread's stack (cleared by the trap exit path
    /// once the core has left the stack).
    pub on_cpu: AtomicU64,
    /// TSC cycles it has run.
    pub cpu_cycles: AtomicU64,
    /// A counter the thread may bump (the `spawn counter` test threads do).
    pub counter: AtomicU64,
    /// Address of the thread's `FxSaveArea` when it runs SSE code (0: it does not). The
    /// switch path saves into it when the thread leaves a core and restores from it when the
    /// thread enters one; it is read there without locks.
    pub fx: AtomicU64,
}

impl ThreadSlot {
    const fn new() -> Self {
        Self {
            id: AtomicU64::new(0),
            frame: AtomicU64::new(0),
            on_cpu: AtomicU64::new(0),
            cpu_cycles: AtomicU64::new(0),
            counter: AtomicU64::new(0),
            fx: AtomicU64::new(0),
        }
    }

    /// The saved context, if the thread is off its core.
    pub fn saved_frame(&self) -> *mut TrapFrame {
        if self.on_cpu.load(Ordering::Acquire) != 0 {
            return core::ptr::null_mut();
        }
        self.frame.load(Ordering::Acquire) as *mut TrapFrame
    }
}

/// Every slot.
pub static SLOTS: [ThreadSlot; MAX_THREADS] = [const { ThreadSlot::new() }; MAX_THREADS];

/// A thread's FPU/SSE state (`fxsave` layout: 512 bytes, 16-byte aligned). The kernel is
/// soft-float, so only threads that run generated code have one.
#[repr(C, align(16))]
#[derive(Debug)]
pub struct FxSaveArea(pub [u8; 512]);
