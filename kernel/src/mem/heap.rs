//! The kernel heap: a linked-list allocator over a run of physical memory reached through the
//! direct map. Its lock is taken with interrupts off, so a thread preempted by the timer never
//! holds it and an interrupt handler on the same core can never spin on it forever.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use linked_list_allocator::Heap;
use spin::Mutex;

struct KernelHeap(Mutex<Heap>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(Mutex::new(Heap::empty()));

// SAFETY: `Heap` hands out disjoint, correctly aligned blocks from memory it owns; the mutex
// serializes every use.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        crate::arch::cpu::without_interrupts(|| {
            self.0
                .lock()
                .allocate_first_fit(layout)
                .map_or(core::ptr::null_mut(), |p| p.as_ptr())
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            crate::arch::cpu::without_interrupts(|| {
                // SAFETY: the caller passes a block this allocator returned with `layout`.
                unsafe { self.0.lock().deallocate(p, layout) }
            });
        }
    }
}

/// Heap figures in bytes.
#[derive(Debug, Clone, Copy)]
pub struct HeapStats {
    /// Bytes the heap manages.
    pub total_bytes: usize,
    /// Bytes allocated now.
    pub used_bytes: usize,
}

/// Hands `len` bytes at `start` (a direct-map address) to the allocator.
///
/// # Safety
/// The range must be unused RAM that nothing else will ever touch; call once.
pub unsafe fn init(start: u64, len: usize) {
    // SAFETY: forwarded to the caller.
    unsafe { HEAP.0.lock().init(start as *mut u8, len) };
}

/// Runs `f` with the heap lock held (and interrupts off). Only for `fault heap-locked`, which
/// proves a fault report raised inside comes out: the report must not allocate.
pub fn with_lock_held<R>(f: impl FnOnce() -> R) -> R {
    crate::arch::cpu::without_interrupts(|| {
        let _held = HEAP.0.lock();
        f()
    })
}

/// Current figures.
pub fn stats() -> HeapStats {
    crate::arch::cpu::without_interrupts(|| {
        let heap = HEAP.0.lock();
        HeapStats {
            total_bytes: heap.size(),
            used_bytes: heap.used(),
        }
    })
}
