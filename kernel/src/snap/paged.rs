//! Page-backed linear memory with copy-on-write snapshot pages.
//!
//! A [`PagedMemory`] is a reserved range of the kernel's virtual region
//! (`GUARD_RESERVE_BYTES`, 8 GiB + 64 KiB, recycled through a pool) whose 4 KiB pages are
//! mapped one by one. Nothing past its size is ever mapped, so it is also the guard-page
//! memory of code compiled without bounds checks (`docs/guard-pages.md`): [`on_page_fault`]
//! reports an access past the size as [`Fault::OutOfBounds`] for `crate::guard` to turn into
//! the wasm trap. A page is *absent* (inside the
//! memory's size but not mapped yet), *private* (a frame of its own, read-write) or *shared*
//! (a snapshot's frame, mapped read-only, the snapshot kept alive by the `Arc`). [`on_page_fault`]
//! handles both faults these make (a memory made with [`PagedMemory::eager`] maps its pages
//! when it grows instead, so only the second kind and out-of-bounds accesses fault there):
//! - a read or write of an absent page maps a zeroed private frame there (demand paging: growth
//!   maps nothing, and a restore maps snapshot pages where nothing was mapped, which needs no
//!   TLB shootdown);
//! - a write to a shared page copies the frame into a private one and maps that read-write in
//!   place (with a TLB shootdown, as the instance's thread may have run on another core) and
//!   counts the copy. The snapshot frame never changes.
//!
//! Growth checks that enough frames are free for the new size (plus a margin), so running out
//! at a fault is unlikely; if it happens the fault is not handled and the kernel reports it.
//!
//! The registry of regions is the one structure the fault path shares with the rest: it is
//! locked with interrupts off and never across a page-table change or a shootdown (another
//! core spinning on it with interrupts off could not acknowledge the IPI).
//!
//! Unsafe here: zeroing and copying frames through the direct map.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use atoll_kcore::addr::{PageSize, PhysAddr, SIZE_4K, VirtAddr};
use atoll_kcore::paging::Protection;
use atoll_pae::runtime::LinearMemory;
use spin::Mutex;

use crate::arch::{cpu, physmem};
use crate::mem::{frames, vm};

/// The largest size of a paged memory: 65,536 wasm pages (what a 32-bit memory can address).
pub const MAX_BYTES: u64 = 1 << 32;
/// Virtual space each paged memory reserves: enough that no access of code compiled for
/// guard pages leaves it.
pub const RESERVE_BYTES: u64 = atoll_pae::runtime::GUARD_RESERVE_BYTES;

/// A snapshot's page: one frame, freed when the last holder (the library, a restored
/// instance) lets go.
#[derive(Debug)]
pub struct SnapFrame {
    pa: PhysAddr,
}

impl SnapFrame {
    /// A new frame holding `bytes` (at most 4 KiB; the rest zero).
    pub fn with_bytes(bytes: &[u8]) -> Option<Self> {
        let pa = frames::alloc(PageSize::Size4K)?;
        let dst = fresh_frame_bytes(pa);
        dst[..bytes.len()].copy_from_slice(bytes);
        dst[bytes.len()..].fill(0);
        Some(Self { pa })
    }

    /// The frame's contents.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the frame was filled once in `with_bytes`, before it was shared, and is only
        // ever mapped read-only since, so no one writes it; `self` keeps it allocated for as
        // long as the returned slice (which borrows `self`) lives.
        unsafe {
            core::slice::from_raw_parts(physmem::to_virt(self.pa).0 as *const u8, SIZE_4K as usize)
        }
    }
}

/// Folds `bytes` into an FNV-1a 64 hash.
pub fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Drop for SnapFrame {
    fn drop(&mut self) {
        let _ = frames::free(self.pa, PageSize::Size4K);
    }
}

/// A frame nobody else can reach yet (just allocated, not mapped anywhere), to fill.
fn fresh_frame_bytes(pa: PhysAddr) -> &'static mut [u8] {
    // SAFETY: `pa` is a 4 KiB frame just taken from the frame allocator by the caller and not
    // yet mapped or handed to anyone, reached through the direct map (which maps all physical
    // memory read-write): this is the only reference to it until the caller maps or shares it.
    unsafe { core::slice::from_raw_parts_mut(physmem::to_virt(pa).0 as *mut u8, SIZE_4K as usize) }
}

#[derive(Debug)]
enum Page {
    Absent,
    Private(PhysAddr),
    Shared(Arc<SnapFrame>),
}

/// Frames kept free beyond a growth's own pages.
const GROW_MARGIN_FRAMES: u64 = 4096;

#[derive(Debug)]
struct Region {
    pages: Vec<Page>,
    copies: u64,
}

/// Live regions by base address.
static REGIONS: Mutex<BTreeMap<u64, Region>> = Mutex::new(BTreeMap::new());
/// Released reservations, reused before reserving more.
static POOL: Mutex<Vec<u64>> = Mutex::new(Vec::new());
/// Pages copied on write since boot, and pages mapped shared by restores.
static COPIED: AtomicU64 = AtomicU64::new(0);
static SHARED: AtomicU64 = AtomicU64::new(0);

fn regions<R>(f: impl FnOnce(&mut BTreeMap<u64, Region>) -> R) -> R {
    cpu::without_interrupts(|| f(&mut REGIONS.lock()))
}

/// Pages copied on write and pages mapped shared, since boot.
pub fn totals() -> (u64, u64) {
    (
        COPIED.load(Ordering::Relaxed),
        SHARED.load(Ordering::Relaxed),
    )
}

/// A linear memory of mapped pages (see the module).
#[derive(Debug)]
pub struct PagedMemory {
    base: u64,
    /// Growth maps zeroed frames at once instead of leaving pages absent (see
    /// [`PagedMemory::eager`]).
    eager: bool,
}

/// Why a paged memory operation failed.
#[derive(Debug, Clone, Copy)]
pub enum PagedError {
    /// Mapping failed.
    Vm(vm::VmError),
    /// No frame was free.
    OutOfFrames,
    /// A page index past the memory's size.
    OutOfRange(u32),
}

impl core::fmt::Display for PagedError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Vm(e) => write!(f, "{e}"),
            Self::OutOfFrames => write!(f, "out of physical frames"),
            Self::OutOfRange(p) => write!(f, "page {p} is past the memory's end"),
        }
    }
}

impl PagedMemory {
    /// An empty memory (no pages yet) with its virtual range reserved.
    pub fn new() -> Result<Self, PagedError> {
        if cpu::without_interrupts(|| POOL.lock().is_empty()) {
            flush_deferred();
        }
        let base = match cpu::without_interrupts(|| POOL.lock().pop()) {
            Some(b) => b,
            None => {
                vm::reserve_far(RESERVE_BYTES, SIZE_4K)
                    .map_err(PagedError::Vm)?
                    .0
            }
        };
        regions(|r| {
            r.insert(
                base,
                Region {
                    pages: Vec::new(),
                    copies: 0,
                },
            )
        });
        Ok(Self { base, eager: false })
    }

    /// Like [`PagedMemory::new`], but growth maps every new page at once (zeroed, read-write):
    /// the linear memory of guard-page code (`crate::guard`), so in-bounds accesses of
    /// generated code never fault (no thread sits in a page-fault handler in generated code,
    /// which would hold up a relocation round) and the only faults it takes are out of bounds.
    pub fn eager() -> Result<Self, PagedError> {
        let mut memory = Self::new()?;
        memory.eager = true;
        Ok(memory)
    }

    /// Maps zeroed private frames at pages `from..to` (absent until now); all or nothing.
    fn map_fresh(&self, from: u64, to: u64) -> Result<Vec<PhysAddr>, PagedError> {
        let mut mapped: Vec<(VirtAddr, PhysAddr)> = Vec::with_capacity((to - from) as usize);
        let mut failed = None;
        for i in from..to {
            let Some(pa) = frames::alloc(PageSize::Size4K) else {
                failed = Some(PagedError::OutOfFrames);
                break;
            };
            fresh_frame_bytes(pa).fill(0);
            let va = VirtAddr(self.base + i * SIZE_4K);
            if let Err(e) = vm::map(va, pa, PageSize::Size4K, Protection::READ_WRITE) {
                let _ = frames::free(pa, PageSize::Size4K);
                failed = Some(PagedError::Vm(e));
                break;
            }
            mapped.push((va, pa));
        }
        let Some(e) = failed else {
            return Ok(mapped.into_iter().map(|(_, pa)| pa).collect());
        };
        let vas: Vec<VirtAddr> = mapped.iter().map(|m| m.0).collect();
        if vm::unmap_4k_list(&vas).is_ok() {
            for (_, pa) in mapped {
                let _ = frames::free(pa, PageSize::Size4K);
            }
        }
        Err(e)
    }

    /// The handle restores use (the region's base address).
    pub fn handle(&self) -> MemoryHandle {
        MemoryHandle(self.base)
    }
}

/// Names a live paged memory (valid while its `PagedMemory` is).
#[derive(Debug, Clone, Copy)]
pub struct MemoryHandle(u64);

impl MemoryHandle {
    /// Maps the snapshot frames `pages` (index, frame) read-only in place of what is there:
    /// an absent page is just mapped; a mapped one (written by instantiation) is replaced with
    /// one shootdown for all of them, and its frame freed.
    pub fn share(&self, pages: &[(u32, Arc<SnapFrame>)]) -> Result<(), PagedError> {
        let base = self.0;
        let va = |i: u32| VirtAddr(base + u64::from(i) * SIZE_4K);
        // Which pages are absent (mapped fresh) and which replace a mapping.
        let absent: Option<Vec<bool>> = regions(|r| {
            let g = r.get(&base)?;
            Some(
                pages
                    .iter()
                    .map(|(i, _)| matches!(g.pages.get(*i as usize), Some(Page::Absent)))
                    .collect(),
            )
        });
        let absent = absent.ok_or(PagedError::OutOfRange(0))?;
        let len = regions(|r| r.get(&base).map_or(0, |g| g.pages.len()));
        if let Some((i, _)) = pages.iter().find(|(i, _)| *i as usize >= len) {
            return Err(PagedError::OutOfRange(*i));
        }
        let mut replace = Vec::new();
        for ((i, f), fresh) in pages.iter().zip(&absent) {
            if *fresh {
                vm::map(va(*i), f.pa, PageSize::Size4K, Protection::READ)
                    .map_err(PagedError::Vm)?;
            } else {
                replace.push((va(*i), f.pa));
            }
        }
        let old = if replace.is_empty() {
            Vec::new()
        } else {
            vm::remap_4k(&replace, Protection::READ).map_err(PagedError::Vm)?
        };
        let mut to_free = Vec::new();
        regions(|r| {
            if let Some(g) = r.get_mut(&base) {
                for (i, f) in pages {
                    let was =
                        core::mem::replace(&mut g.pages[*i as usize], Page::Shared(f.clone()));
                    if let Page::Private(pa) = was {
                        to_free.push(pa);
                    }
                }
            }
        });
        // Only frames that were private are ours to free (the remap returned them too).
        let _ = old;
        for pa in to_free {
            let _ = frames::free(pa, PageSize::Size4K);
        }
        SHARED.fetch_add(pages.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Pages this memory copied on write, and pages it still shares.
    pub fn figures(&self) -> (u64, u64) {
        regions(|r| {
            r.get(&self.0).map_or((0, 0), |g| {
                let shared = g
                    .pages
                    .iter()
                    .filter(|p| matches!(p, Page::Shared(_)))
                    .count();
                (g.copies, shared as u64)
            })
        })
    }
}

impl LinearMemory for PagedMemory {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.base as *mut u8
    }

    fn size_bytes(&self) -> usize {
        regions(|r| r.get(&self.base).map_or(0, |g| g.pages.len())) * SIZE_4K as usize
    }

    fn grow_to(&mut self, new_size_bytes: usize) -> bool {
        let want = (new_size_bytes as u64).div_ceil(SIZE_4K);
        if want * SIZE_4K > MAX_BYTES {
            return false;
        }
        let now = self.size_bytes() as u64 / SIZE_4K;
        let needed = want.saturating_sub(now);
        if frames::stats().free < needed + GROW_MARGIN_FRAMES {
            flush_deferred();
            if frames::stats().free < needed + GROW_MARGIN_FRAMES {
                return false;
            }
        }
        if self.eager && needed > 0 {
            let Ok(fresh) = self.map_fresh(now, want) else {
                return false;
            };
            return regions(|r| {
                r.get_mut(&self.base).is_some_and(|g| {
                    g.pages.extend(fresh.into_iter().map(Page::Private));
                    true
                })
            });
        }
        regions(|r| {
            r.get_mut(&self.base).is_some_and(|g| {
                g.pages.resize_with(want.max(now) as usize, || Page::Absent);
                true
            })
        })
    }

    fn guard_reserved(&self) -> bool {
        // Its base never moves, RESERVE_BYTES are reserved, nothing past its size is mapped,
        // and `crate::guard` turns a fault there in generated code into the trap.
        true
    }
}

impl Drop for PagedMemory {
    fn drop(&mut self) {
        let Some(region) = regions(|r| r.remove(&self.base)) else {
            return;
        };
        let mapped: Vec<VirtAddr> = region
            .pages
            .iter()
            .enumerate()
            .filter(|(_, p)| !matches!(p, Page::Absent))
            .map(|(i, _)| VirtAddr(self.base + i as u64 * SIZE_4K))
            .collect();
        let unmapped = if self.eager {
            vm::unmap_4k_list_local(&mapped)
        } else {
            vm::unmap_4k_list(&mapped)
        };
        if unmapped.is_err() {
            // Some page would still be reachable: keep its frames and the range.
            core::mem::forget(region);
            return;
        }
        let private: Vec<PhysAddr> = region
            .pages
            .into_iter()
            .filter_map(|p| match p {
                Page::Private(pa) => Some(pa),
                _ => None,
            })
            .collect();
        if self.eager {
            // Other cores may still cache translations of these pages: the frames and the
            // range wait for one shootdown shared by several dropped memories.
            let full = cpu::without_interrupts(|| {
                let mut d = DEFERRED.lock();
                d.push((self.base, private));
                d.len() >= DEFERRED_MEMORIES
            });
            if full {
                flush_deferred();
            }
            return;
        }
        for pa in private {
            let _ = frames::free(pa, PageSize::Size4K);
        }
        cpu::without_interrupts(|| POOL.lock().push(self.base));
    }
}

/// Eager memories dropped since the last shootdown: their unmapped frames and ranges, freed
/// and reused only after every core has flushed its TLB ([`flush_deferred`]). Until then a
/// stale translation on another core can only reach frames nobody else has (no live instance
/// uses the range, and the frames are not handed out).
static DEFERRED: Mutex<Vec<(u64, Vec<PhysAddr>)>> = Mutex::new(Vec::new());
/// How many dropped memories share one shootdown (a task's memory is dropped when it ends:
/// one round of IPIs per task otherwise).
const DEFERRED_MEMORIES: usize = 16;

/// Flushes every core's TLB once, then frees the deferred memories' frames and pools their
/// ranges.
fn flush_deferred() {
    let batch = cpu::without_interrupts(|| core::mem::take(&mut *DEFERRED.lock()));
    if batch.is_empty() {
        return;
    }
    vm::shootdown_region();
    for (base, frames_of) in batch {
        for pa in frames_of {
            let _ = frames::free(pa, PageSize::Size4K);
        }
        cpu::without_interrupts(|| POOL.lock().push(base));
    }
}

/// What the fault path found at an address.
enum Found {
    Absent,
    Private,
    Shared(Arc<SnapFrame>),
}

/// What [`on_page_fault`] made of a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Not in a paged memory (or not a data access): someone else's fault.
    NotOurs,
    /// Handled (a page mapped or copied): retry the access.
    Handled,
    /// A data access past the size of the paged memory at `base`, inside its reservation: an
    /// out-of-bounds access (of guard-page code if it came from generated code).
    OutOfBounds {
        /// The memory's base.
        base: u64,
    },
    /// Inside the memory but it could not be handled (no frame, mapping failed).
    Failed,
}

/// The page-fault path of paged memories: demand paging of absent pages and copy-on-write of
/// shared ones, and out-of-bounds accesses told apart.
pub fn on_page_fault(addr: u64, error_code: u64) -> Fault {
    let write_to_ro = crate::arch::idt::is_write_to_read_only(error_code);
    if !write_to_ro && !crate::arch::idt::is_data_access_to_absent(error_code) {
        return Fault::NotOurs;
    }
    let page_va = addr & !(SIZE_4K - 1);
    // Find the page (lock held only for the lookup).
    let found = regions(|r| {
        let (&base, region) = r.range(..=addr).next_back()?;
        if addr - base >= RESERVE_BYTES {
            return None;
        }
        let index = usize::try_from((addr - base) / SIZE_4K).ok()?;
        let found = match region.pages.get(index) {
            None => return Some(Err(base)),
            Some(Page::Absent) => Found::Absent,
            Some(Page::Private(_)) => Found::Private,
            Some(Page::Shared(f)) => Found::Shared(f.clone()),
        };
        Some(Ok((base, index, found)))
    });
    let (base, index, found) = match found {
        None => return Fault::NotOurs,
        Some(Err(base)) => return Fault::OutOfBounds { base },
        Some(Ok(f)) => f,
    };
    let Some(pa) = frames::alloc(PageSize::Size4K) else {
        return Fault::Failed;
    };
    let mapped = match (&found, write_to_ro) {
        (Found::Absent, false) => {
            fresh_frame_bytes(pa).fill(0);
            vm::map(
                VirtAddr(page_va),
                pa,
                PageSize::Size4K,
                Protection::READ_WRITE,
            )
            .is_ok()
        }
        (Found::Shared(frame), true) => {
            fresh_frame_bytes(pa).copy_from_slice(frame.bytes());
            vm::remap_4k(&[(VirtAddr(page_va), pa)], Protection::READ_WRITE).is_ok()
        }
        _ => {
            // Already handled (a stale translation on this core): retry the access.
            let _ = frames::free(pa, PageSize::Size4K);
            cpu::invlpg(page_va);
            return Fault::Handled;
        }
    };
    if !mapped {
        let _ = frames::free(pa, PageSize::Size4K);
        return Fault::Failed;
    }
    let copied = matches!(found, Found::Shared(_));
    regions(|r| {
        if let Some(g) = r.get_mut(&base) {
            g.pages[index] = Page::Private(pa);
            if copied {
                g.copies += 1;
            }
        }
    });
    if copied {
        COPIED.fetch_add(1, Ordering::Relaxed);
    }
    Fault::Handled
}
