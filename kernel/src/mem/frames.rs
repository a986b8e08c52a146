//! The global frame allocator: `atoll_kcore::frames::FrameAllocator` behind a lock.

use atoll_kcore::addr::{PageSize, PhysAddr, PhysRange};
use atoll_kcore::frames::{FrameAllocator, FrameError, FrameStats};
use atoll_kcore::paging::TableFrames;
use spin::{Mutex, Once};

static FRAMES: Once<Mutex<FrameAllocator>> = Once::new();

/// Installs the allocator built from the memory map.
pub fn install(alloc: FrameAllocator) {
    FRAMES.call_once(|| Mutex::new(alloc));
}

fn with<R>(f: impl FnOnce(&mut FrameAllocator) -> R) -> R {
    let frames = FRAMES.get().expect("frame allocator used before mem::init");
    crate::arch::cpu::without_interrupts(|| f(&mut frames.lock()))
}

/// Allocates a frame of `size`.
pub fn alloc(size: PageSize) -> Option<PhysAddr> {
    with(|a| a.alloc(size))
}

/// Allocates a frame of `size` lying wholly inside one of `ranges`.
pub fn alloc_in(size: PageSize, ranges: &[PhysRange]) -> Option<PhysAddr> {
    with(|a| a.alloc_in(size, ranges))
}

/// Free 4 KiB frames inside `ranges`.
pub fn free_in(ranges: &[PhysRange]) -> u64 {
    with(|a| a.free_in(ranges))
}

/// One past the highest physical address the allocator tracks.
pub fn limit() -> PhysAddr {
    with(|a| a.limit())
}

/// Frees a frame of `size`.
pub fn free(addr: PhysAddr, size: PageSize) -> Result<(), FrameError> {
    with(|a| a.free(addr, size))
}

/// Frame counts.
pub fn stats() -> FrameStats {
    with(|a| a.stats())
}

/// Frames for new page tables, from the global allocator.
#[derive(Debug)]
pub struct GlobalTableFrames;

impl TableFrames for GlobalTableFrames {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        alloc(PageSize::Size4K)
    }
}
