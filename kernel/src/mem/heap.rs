//! The kernel heap: a linked-list allocator over a run of physical memory reached through the
//! direct map.

use linked_list_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

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
    unsafe { HEAP.lock().init(start as *mut u8, len) };
}

/// Current figures.
pub fn stats() -> HeapStats {
    crate::arch::cpu::without_interrupts(|| {
        let heap = HEAP.lock();
        HeapStats {
            total_bytes: heap.size(),
            used_bytes: heap.used(),
        }
    })
}
