//! Memory: the heap, the frame allocator and the kernel's virtual-memory API, set up from the
//! bootloader's memory map.

pub mod frames;
pub mod numa;
// The three below may use `unsafe` (each says why; the list is in `main.rs`).
#[allow(unsafe_code)]
pub mod heap;
#[allow(unsafe_code)]
pub mod stack;
pub mod vm;
#[allow(unsafe_code)]
pub mod vm_selftest;

use atoll_kcore::addr::PhysAddr;
use atoll_kcore::frames::FrameAllocator;
use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use core::sync::atomic::{AtomicU64, Ordering};

/// Below this, physical memory is kept out of the general pool (real-mode trampolines, BIOS
/// data).
const LOW_MEMORY_END: u64 = 0x10_0000;

/// Why memory could not be set up.
#[derive(Debug, Clone, Copy)]
pub enum MemInitError {
    /// No usable region is big enough for the minimum heap.
    NoRoomForHeap,
}

/// Sets up the heap and the frame allocator from the memory map. Returns the heap's physical
/// range. The heap comes first (the frame allocator's bitmap lives in it); its range is
/// reserved in the frame allocator before any frame is handed out.
pub fn init(regions: &MemoryRegions) -> Result<(PhysAddr, u64), MemInitError> {
    let usable = || {
        regions
            .iter()
            .filter(|r| r.kind == MemoryRegionKind::Usable)
    };
    let (heap_phys, heap_bytes) = heap::init(regions)?;

    let limit = usable().map(|r| r.end).max().unwrap_or(0);
    let mut alloc = FrameAllocator::new(PhysAddr(limit));
    for r in usable() {
        alloc.add_usable(PhysAddr(r.start), PhysAddr(r.end));
    }
    alloc.reserve(PhysAddr(0), PhysAddr(LOW_MEMORY_END));
    alloc.reserve(heap_phys, PhysAddr(heap_phys.0 + heap_bytes));
    frames::install(alloc);
    let low = find_low_page(regions);
    LOW_PAGE.store(low.unwrap_or(u64::MAX), Ordering::Relaxed);
    MAP_SUMMARY.call_once(|| MapSummary::of(regions));
    Ok((heap_phys, heap_bytes))
}

/// The bootloader's memory map in brief, for `hwinfo` (bug reports).
#[derive(Debug, Clone, Copy, Default)]
pub struct MapSummary {
    /// Regions in the map.
    pub regions: u64,
    /// Bytes of usable RAM, in how many regions.
    pub usable_bytes: u64,
    /// Usable regions.
    pub usable_regions: u64,
    /// Bytes the bootloader used (page tables, kernel, boot info, ramdisk).
    pub bootloader_bytes: u64,
    /// Bytes the firmware reserved (or typed in a way the bootloader passes on as unknown).
    pub firmware_bytes: u64,
    /// The end of the highest region.
    pub top: u64,
}

impl MapSummary {
    fn of(regions: &MemoryRegions) -> Self {
        let mut s = MapSummary::default();
        for r in regions.iter() {
            let bytes = r.end.saturating_sub(r.start);
            s.regions += 1;
            s.top = s.top.max(r.end);
            match r.kind {
                MemoryRegionKind::Usable => {
                    s.usable_bytes += bytes;
                    s.usable_regions += 1;
                }
                MemoryRegionKind::Bootloader => s.bootloader_bytes += bytes,
                _ => s.firmware_bytes += bytes,
            }
        }
        s
    }
}

static MAP_SUMMARY: spin::Once<MapSummary> = spin::Once::new();

/// The memory map summary recorded at boot.
pub fn map_summary() -> MapSummary {
    MAP_SUMMARY.get().copied().unwrap_or_default()
}

/// A usable page below 1 MiB kept for the AP trampoline (`u64::MAX`: none).
static LOW_PAGE: AtomicU64 = AtomicU64::new(u64::MAX);

/// The preferred trampoline page, if the memory map marks it usable.
const PREFERRED_LOW_PAGE: u64 = 0x8000;

fn find_low_page(regions: &MemoryRegions) -> Option<u64> {
    let usable = |page: u64| {
        regions.iter().any(|r| {
            r.kind == MemoryRegionKind::Usable && r.start <= page && page + 0x1000 <= r.end
        })
    };
    core::iter::once(PREFERRED_LOW_PAGE)
        .chain((1..0x9f).map(|p| p * 0x1000))
        .find(|p| usable(*p))
}

/// The page below 1 MiB that the memory map says is usable RAM, for the AP trampoline (frames
/// below 1 MiB never enter the allocator, so nothing else uses it).
pub fn trampoline_page() -> Option<PhysAddr> {
    let p = LOW_PAGE.load(Ordering::Relaxed);
    (p != u64::MAX).then_some(PhysAddr(p))
}
