//! Per-core data, reached through the GS base.
//!
//! Each core's [`CoreLocal`] is allocated once and never freed; GS base points at it for the
//! life of the kernel (atoll runs only in ring 0, so GS is never swapped).

use alloc::boxed::Box;
use core::arch::asm;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use x86_64::registers::model_specific::GsBase;

/// What every core keeps about itself.
#[repr(C)]
#[derive(Debug)]
pub struct CoreLocal {
    /// Points at this struct, so `gs:[0]` yields its address.
    self_ptr: *const CoreLocal,
    /// The kernel's dense core number (0 = the boot core).
    pub core_id: u32,
    /// The local APIC id.
    pub apic_id: u32,
    /// The scheduler slot of the thread running here.
    current_thread: AtomicUsize,
}

/// How many cores have set up their `CoreLocal`.
static CORES_SET_UP: AtomicU32 = AtomicU32::new(0);

/// Sets up this core's per-core data and points GS base at it. Call once per core.
pub fn init(core_id: u32, apic_id: u32) {
    let local = Box::leak(Box::new(CoreLocal {
        self_ptr: core::ptr::null(),
        core_id,
        apic_id,
        current_thread: AtomicUsize::new(0),
    }));
    local.self_ptr = local as *const CoreLocal;
    // `local` is leaked, so it lives forever; GS base is only ever this pointer.
    GsBase::write(x86_64::VirtAddr::from_ptr(local as *const CoreLocal));
    CORES_SET_UP.fetch_add(1, Ordering::Release);
}

/// This core's data, if `init` has run here.
pub fn try_current() -> Option<&'static CoreLocal> {
    if CORES_SET_UP.load(Ordering::Acquire) == 0 || GsBase::read().is_null() {
        return None;
    }
    let ptr: *const CoreLocal;
    // SAFETY: GS base points at a leaked `CoreLocal` whose first field is its own address.
    unsafe { asm!("mov {}, gs:[0]", out(reg) ptr, options(nostack, readonly, preserves_flags)) };
    // SAFETY: the pointer came from `Box::leak` in `init` and is never freed.
    Some(unsafe { &*ptr })
}

/// This core's id; 0 before per-core data is set up (only the boot core runs then).
pub fn core_id() -> u32 {
    try_current().map_or(0, |c| c.core_id)
}

/// Records the thread now running on this core.
pub fn set_current_thread(slot: usize) {
    if let Some(c) = try_current() {
        c.current_thread.store(slot, Ordering::Relaxed);
    }
}

/// The scheduler slot of the thread running on this core.
pub fn current_thread() -> usize {
    try_current().map_or(0, |c| c.current_thread.load(Ordering::Relaxed))
}
