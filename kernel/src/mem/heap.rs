//! The kernel heap: a linked-list allocator over a run of physical memory reached through the
//! direct map. Its lock is taken with interrupts off, so a thread preempted by the timer never
//! holds it and an interrupt handler on the same core can never spin on it forever.
//!
//! The module may use `unsafe`: `GlobalAlloc` is an unsafe trait, and handing the allocator its
//! memory vouches that nothing else uses that memory.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use atoll_kcore::addr::{PhysAddr, SIZE_2M};
use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use linked_list_allocator::Heap;
use spin::{Mutex, Once};

use super::{LOW_MEMORY_END, MemInitError};
use crate::arch::physmem;

/// Heap size bounds.
const HEAP_MIN_BYTES: u64 = 4 * 1024 * 1024;
const HEAP_MAX_BYTES: u64 = 64 * 1024 * 1024;

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

/// The heap's physical range, once placed.
static PLACED: Once<(PhysAddr, u64)> = Once::new();

/// Places the heap in a quarter of the largest usable region of the memory map (2 MiB-aligned,
/// 4–64 MiB) and hands it to the allocator through the direct map. Returns its physical range,
/// which `mem::init` reserves in the frame allocator. Runs once; later calls return the same
/// range.
pub fn init(regions: &MemoryRegions) -> Result<(PhysAddr, u64), MemInitError> {
    let largest = regions
        .iter()
        .filter(|r| r.kind == MemoryRegionKind::Usable)
        .max_by_key(|r| r.end - r.start)
        .ok_or(MemInitError::NoRoomForHeap)?;
    let start = largest.start.max(LOW_MEMORY_END).next_multiple_of(SIZE_2M);
    let room = largest.end.saturating_sub(start);
    let bytes = (room / 4).clamp(HEAP_MIN_BYTES, HEAP_MAX_BYTES) & !(SIZE_2M - 1);
    if room < bytes || bytes < HEAP_MIN_BYTES {
        return Err(MemInitError::NoRoomForHeap);
    }
    Ok(*PLACED.call_once(|| {
        let phys = PhysAddr(start);
        let virt = physmem::to_virt(phys).0 as *mut u8;
        // SAFETY: the range lies inside a usable region of the memory map, which nothing uses
        // before the frame allocator exists; `mem::init` reserves it there before any frame is
        // handed out. `PLACED` makes this happen once.
        unsafe { HEAP.0.lock().init(virt, bytes as usize) };
        (phys, bytes)
    }))
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
