//! The kernel's virtual-memory API: map, unmap and re-protect 4 KiB and 2 MiB pages in a
//! region of the address space the kernel owns (a run of up to [`MAX_SLOTS`] free PML4 slots of
//! 512 GiB each: guard-page linear memories reserve 8 GiB apiece), with W^X always
//! enforced (by `atoll_kcore::paging`) and the TLB flushed after every change: locally under the
//! lock, then on every other online core by a shootdown IPI once the lock is released (a core
//! spinning on this lock with interrupts off could not acknowledge it otherwise).

use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use atoll_kcore::addr::{PageSize, PhysAddr, SIZE_4K, VirtAddr};
use atoll_kcore::frames::FrameError;
use atoll_kcore::paging::{MapError, Mapper, Protection, Translation};
use spin::{Mutex, Once};

use super::frames::{self, GlobalTableFrames};
use crate::arch::cpu;
use crate::arch::physmem::DirectMap;

/// Why a virtual-memory operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmError {
    /// The page tables refused the change.
    Map(MapError),
    /// No physical frame was free.
    OutOfFrames,
    /// The kernel's virtual region is used up.
    OutOfVirtualSpace,
    /// The address is outside the kernel's virtual region.
    OutsideRegion(VirtAddr),
    /// No free top-level slot was found for the kernel's region.
    NoFreeSlot,
    /// The frame allocator refused to free a frame.
    Frame(FrameError),
}

impl From<MapError> for VmError {
    fn from(e: MapError) -> Self {
        VmError::Map(e)
    }
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmError::Map(e) => write!(f, "{e}"),
            VmError::OutOfFrames => write!(f, "out of physical frames"),
            VmError::OutOfVirtualSpace => write!(f, "kernel virtual region exhausted"),
            VmError::OutsideRegion(v) => write!(f, "{:#x} is outside the kernel's region", v.0),
            VmError::NoFreeSlot => write!(f, "no free PML4 slot for the kernel region"),
            VmError::Frame(e) => write!(f, "{e}"),
        }
    }
}

/// Figures for `vm`.
#[derive(Debug, Clone, Copy, Default)]
pub struct VmStats {
    /// Start of the kernel's region.
    pub region_base: u64,
    /// Bytes of virtual space handed out so far.
    pub reserved_bytes: u64,
    /// 4 KiB pages mapped now.
    pub pages_4k: u64,
    /// 2 MiB pages mapped now.
    pub pages_2m: u64,
}

#[derive(Debug)]
struct Vm {
    base: u64,
    end: u64,
    /// Next free address of ordinary reservations (growing up from `base`: code, stacks and
    /// mappings stay close together, within `rel32` reach of each other).
    next: u64,
    /// Lowest address of the large reservations made by [`reserve_far`] (growing down from
    /// `end`).
    far: u64,
    stats: VmStats,
}

static VM: Once<Mutex<Vm>> = Once::new();

/// Bytes one PML4 entry covers.
const SLOT_BYTES: u64 = 1 << 39;
/// The most consecutive PML4 slots the region claims.
pub const MAX_SLOTS: u64 = 8;

/// The region's bounds, readable without the lock (the fault path reads them).
static REGION_START: AtomicU64 = AtomicU64::new(0);
static REGION_END: AtomicU64 = AtomicU64::new(0);

fn root() -> PhysAddr {
    cpu::page_table_root()
}

/// Claims the longest run (up to [`MAX_SLOTS`]) of free PML4 slots in the upper half, highest
/// first, for the kernel's region.
pub fn init() -> Result<u64, VmError> {
    let mem = DirectMap;
    let pml4 = root();
    let free = |i: u64| atoll_kcore::paging::PhysMem::read(&mem, PhysAddr(pml4.0 + 8 * i)) == 0;
    let (slot, slots) = (1..=MAX_SLOTS)
        .rev()
        .find_map(|n| {
            (256..=511 - n)
                .rev()
                .find(|&s| (s..s + n).all(free))
                .map(|s| (s, n))
        })
        .ok_or(VmError::NoFreeSlot)?;
    let base = 0xffff_0000_0000_0000 | (slot * SLOT_BYTES);
    REGION_START.store(base, Ordering::Relaxed);
    REGION_END.store(base + slots * SLOT_BYTES, Ordering::Relaxed);
    VM.call_once(|| {
        Mutex::new(Vm {
            base,
            end: base + slots * SLOT_BYTES,
            next: base,
            far: base + slots * SLOT_BYTES,
            stats: VmStats {
                region_base: base,
                ..VmStats::default()
            },
        })
    });
    Ok(base)
}

fn with<R>(f: impl FnOnce(&mut Vm) -> R) -> R {
    let vm = VM.get().expect("vm used before vm::init");
    cpu::without_interrupts(|| f(&mut vm.lock()))
}

/// Drops `va`'s translation here and, after the VM lock is released, on every other online
/// core (a TLB shootdown with acknowledgement).
fn flush_local(va: VirtAddr) {
    cpu::invlpg(va.0);
}

fn shootdown(va: VirtAddr) {
    crate::smp::ipi::shootdown(va.0);
}

/// Reserves `bytes` of virtual space aligned to `align` (a power of two) in the kernel region.
pub fn reserve(bytes: u64, align: u64) -> Result<VirtAddr, VmError> {
    with(|vm| {
        let start = vm.next.next_multiple_of(align);
        let end = start.checked_add(bytes).ok_or(VmError::OutOfVirtualSpace)?;
        if end > vm.far {
            return Err(VmError::OutOfVirtualSpace);
        }
        vm.next = end;
        vm.stats.reserved_bytes = (vm.next - vm.base) + (vm.end - vm.far);
        Ok(VirtAddr(start))
    })
}

/// Reserves `bytes` (a multiple of 4 KiB) of virtual space aligned to `align` (a power of two)
/// at the far end of the kernel region, for large reservations (guard-page linear memories,
/// 8 GiB each), so they never push later code out of `rel32` reach of earlier code (a moved
/// island must still reach its module's trap stubs and callees).
pub fn reserve_far(bytes: u64, align: u64) -> Result<VirtAddr, VmError> {
    with(|vm| {
        let start = vm
            .far
            .checked_sub(bytes)
            .ok_or(VmError::OutOfVirtualSpace)?
            & !(align - 1);
        if start < vm.next {
            return Err(VmError::OutOfVirtualSpace);
        }
        vm.far = start;
        vm.stats.reserved_bytes = (vm.next - vm.base) + (vm.end - vm.far);
        Ok(VirtAddr(start))
    })
}

fn check_region(vm: &Vm, va: VirtAddr, size: PageSize) -> Result<(), VmError> {
    if va.0 < vm.base || va.0.saturating_add(size.bytes()) > vm.end {
        return Err(VmError::OutsideRegion(va));
    }
    Ok(())
}

fn count(stats: &mut VmStats, size: PageSize, delta: i64) {
    let field = match size {
        PageSize::Size4K => &mut stats.pages_4k,
        PageSize::Size2M => &mut stats.pages_2m,
    };
    *field = field.saturating_add_signed(delta);
}

/// Maps the page of `size` at `va` to `pa` with `prot`.
pub fn map(va: VirtAddr, pa: PhysAddr, size: PageSize, prot: Protection) -> Result<(), VmError> {
    with(|vm| {
        check_region(vm, va, size)?;
        let mut mem = DirectMap;
        Mapper::new(&mut mem, root()).map(va, pa, size, prot, &mut GlobalTableFrames)?;
        count(&mut vm.stats, size, 1);
        // A page that was not present is never cached in any TLB: no shootdown.
        flush_local(va);
        Ok(())
    })
}

/// Maps `bytes` of device registers at physical `pa` (page aligned) uncached, read-write,
/// never executable. Returns the virtual address of `pa`.
pub fn map_device(pa: PhysAddr, bytes: u64) -> Result<VirtAddr, VmError> {
    let first = pa.0 - pa.0 % SIZE_4K;
    let pages = (pa.0 + bytes - first).div_ceil(SIZE_4K);
    let va = reserve(pages * SIZE_4K, SIZE_4K)?;
    with(|vm| {
        let mut mem = DirectMap;
        for i in 0..pages {
            let page = VirtAddr(va.0 + i * SIZE_4K);
            Mapper::new(&mut mem, root()).map_device(
                page,
                PhysAddr(first + i * SIZE_4K),
                &mut GlobalTableFrames,
            )?;
            count(&mut vm.stats, PageSize::Size4K, 1);
            flush_local(page);
        }
        Ok(VirtAddr(va.0 + (pa.0 - first)))
    })
}

/// Maps the low page `pa` (below 1 MiB) at the identical virtual address, read and execute,
/// for the AP trampoline's switch to paging. Undo with [`unmap_identity`].
pub fn map_identity(pa: PhysAddr) -> Result<(), VmError> {
    with(|_| {
        let mut mem = DirectMap;
        Mapper::new(&mut mem, root()).map(
            VirtAddr(pa.0),
            pa,
            PageSize::Size4K,
            Protection::READ_EXEC,
            &mut GlobalTableFrames,
        )?;
        flush_local(VirtAddr(pa.0));
        Ok(())
    })
}

/// Removes the identity mapping made by [`map_identity`].
pub fn unmap_identity(pa: PhysAddr) -> Result<(), VmError> {
    with(|_| {
        let mut mem = DirectMap;
        Mapper::new(&mut mem, root()).unmap(VirtAddr(pa.0), PageSize::Size4K)?;
        flush_local(VirtAddr(pa.0));
        Ok::<(), VmError>(())
    })?;
    shootdown(VirtAddr(pa.0));
    Ok(())
}

/// Unmaps the page of `size` at `va`; returns its frame (the caller decides whether to free it).
pub fn unmap(va: VirtAddr, size: PageSize) -> Result<PhysAddr, VmError> {
    with(|vm| {
        check_region(vm, va, size)?;
        let mut mem = DirectMap;
        let pa = Mapper::new(&mut mem, root()).unmap(va, size)?;
        count(&mut vm.stats, size, -1);
        flush_local(va);
        Ok(pa)
    })
    .inspect(|_| shootdown(va))
}

/// Changes the rights of the page of `size` at `va`.
pub fn protect(va: VirtAddr, size: PageSize, prot: Protection) -> Result<(), VmError> {
    with(|vm| {
        check_region(vm, va, size)?;
        let mut mem = DirectMap;
        Mapper::new(&mut mem, root()).protect(va, size, prot)?;
        flush_local(va);
        Ok(())
    })
    .inspect(|()| shootdown(va))
}

/// Whether `rip` lies in generated code: an executable page of the kernel's region (the only
/// executable pages there are chunk code, lazily assembled functions and moved islands, all
/// written by the code generator). Takes no lock: the fault path asks.
pub fn is_generated_code(rip: u64) -> bool {
    let (start, end) = (
        REGION_START.load(Ordering::Relaxed),
        REGION_END.load(Ordering::Relaxed),
    );
    (start..end).contains(&rip) && translate(VirtAddr(rip)).is_some_and(|t| t.protection.exec)
}

/// Where `va` leads in the current address space.
pub fn translate(va: VirtAddr) -> Option<Translation> {
    let mut mem = DirectMap;
    Mapper::new(&mut mem, root()).translate(va)
}

/// Allocates a frame of `size`, reserves virtual space for it and maps it with `prot`.
pub fn map_new(size: PageSize, prot: Protection) -> Result<(VirtAddr, PhysAddr), VmError> {
    let pa = frames::alloc(size).ok_or(VmError::OutOfFrames)?;
    let result =
        reserve(size.bytes(), size.bytes()).and_then(|va| map(va, pa, size, prot).map(|()| va));
    match result {
        Ok(va) => Ok((va, pa)),
        Err(e) => {
            let _ = frames::free(pa, size);
            Err(e)
        }
    }
}

/// Unmaps a page made by `map_new` and frees its frame.
pub fn unmap_free(va: VirtAddr, size: PageSize) -> Result<(), VmError> {
    let pa = unmap(va, size)?;
    frames::free(pa, size).map_err(VmError::Frame)
}

/// Unmaps `pages` consecutive 4 KiB pages from `va` and frees their frames, with one TLB
/// shootdown for the whole range (a thread stack is 16 pages: one round of IPIs, not 16). The
/// frames are freed only after every core has dropped its translations, so no stale entry can
/// reach a frame that was handed out again. Stops at the first page that fails to unmap and
/// reports it; the pages before it are unmapped and freed.
pub fn unmap_free_4k_range(va: VirtAddr, pages: u64) -> Result<(), VmError> {
    let mut unmapped: Vec<PhysAddr> = Vec::with_capacity(pages as usize);
    let result = with(|vm| {
        for i in 0..pages {
            let page = VirtAddr(va.0 + i * PageSize::Size4K.bytes());
            check_region(vm, page, PageSize::Size4K)?;
            let mut mem = DirectMap;
            unmapped.push(Mapper::new(&mut mem, root()).unmap(page, PageSize::Size4K)?);
            count(&mut vm.stats, PageSize::Size4K, -1);
            flush_local(page);
        }
        Ok(())
    });
    crate::smp::ipi::shootdown_range(va.0, unmapped.len() as u64);
    for pa in unmapped {
        frames::free(pa, PageSize::Size4K).map_err(VmError::Frame)?;
    }
    result
}

/// Points each 4 KiB page `va` of `pages` at its new frame with `prot` (unmapping the old
/// one), under one lock and with one shootdown over the pages' span; returns the old frames
/// (the caller frees or keeps them), once no core can reach them any more.
pub fn remap_4k(
    pages: &[(VirtAddr, PhysAddr)],
    prot: Protection,
) -> Result<Vec<PhysAddr>, VmError> {
    let mut old = Vec::with_capacity(pages.len());
    let result = with(|vm| {
        for &(va, pa) in pages {
            check_region(vm, va, PageSize::Size4K)?;
            let mut mem = DirectMap;
            let mut mapper = Mapper::new(&mut mem, root());
            old.push(mapper.unmap(va, PageSize::Size4K)?);
            mapper.map(va, pa, PageSize::Size4K, prot, &mut GlobalTableFrames)?;
            flush_local(va);
        }
        Ok(())
    });
    shootdown_span(pages.iter().map(|p| p.0.0));
    result.map(|()| old)
}

/// Unmaps the 4 KiB pages `pages` with one shootdown over their span, and returns their
/// frames (the caller decides which to free), once no core can reach them any more.
pub fn unmap_4k_list(pages: &[VirtAddr]) -> Result<Vec<PhysAddr>, VmError> {
    // Shot down even on an error: the pages before the failing one are unmapped.
    let result = unmap_4k_list_local(pages);
    shootdown_span(pages.iter().map(|p| p.0));
    result
}

/// Like [`unmap_4k_list`] without the shootdown: only this core's TLB is flushed. The caller
/// must neither free the frames nor reuse the range before [`shootdown_region`] has run.
pub fn unmap_4k_list_local(pages: &[VirtAddr]) -> Result<Vec<PhysAddr>, VmError> {
    let mut unmapped: Vec<PhysAddr> = Vec::with_capacity(pages.len());
    with(|vm| {
        for &page in pages {
            check_region(vm, page, PageSize::Size4K)?;
            let mut mem = DirectMap;
            unmapped.push(Mapper::new(&mut mem, root()).unmap(page, PageSize::Size4K)?);
            count(&mut vm.stats, PageSize::Size4K, -1);
            flush_local(page);
        }
        Ok(())
    })
    .map(|()| unmapped)
}

/// Flushes the whole TLB of every other online core (one round of IPIs): after it, no core
/// holds a translation of a page unmapped before it.
pub fn shootdown_region() {
    crate::smp::ipi::shootdown_range(REGION_START.load(Ordering::Relaxed), u64::MAX);
}

/// One TLB shootdown over the span of the 4 KiB pages at `addrs` (none if it is empty).
fn shootdown_span(addrs: impl Iterator<Item = u64> + Clone) {
    if let (Some(lo), Some(hi)) = (addrs.clone().min(), addrs.max()) {
        crate::smp::ipi::shootdown_range(lo, (hi - lo) / SIZE_4K + 1);
    }
}

/// Current figures.
pub fn stats() -> VmStats {
    with(|vm| vm.stats)
}
