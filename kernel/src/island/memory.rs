//! The memory the relocation engine touches: fresh code pages for a relocated island (4 KiB
//! pages of its own, or a slot in a shared 2 MiB page), writes into code that is mapped
//! read-execute (through the direct map, RW), and reads and writes of a stopped thread's stack.
//!
//! This module may use `unsafe` (it is in the list in `main.rs`): it dereferences addresses of
//! code pages and thread stacks. Each operation first checks the address against what it was
//! handed (a region's pages, a stack's bounds, a translation made before the pause), then does
//! one narrow read or write.

use alloc::vec::Vec;

use atoll_island::StackMemory;
use atoll_kcore::addr::{PageSize, PhysAddr, SIZE_2M, SIZE_4K, VirtAddr};
use atoll_kcore::paging::Protection;

use crate::arch::physmem;
use crate::mem::frames;
use crate::mem::vm::{self, VmError};

/// Code pages of the relocation engine's own: reserved virtual space, then frames written
/// through the direct map and mapped read-execute (never writable through this mapping).
#[derive(Debug)]
pub struct CodeRegion {
    base: u64,
    reserved_pages: u64,
    /// Frames mapped at `base`, `base + 4 KiB`, ...
    frames: Vec<PhysAddr>,
}

impl CodeRegion {
    /// Reserves room for up to `max_bytes` of code (nothing mapped yet).
    pub fn reserve(max_bytes: u64) -> Result<Self, VmError> {
        let reserved_pages = max_bytes.div_ceil(SIZE_4K).max(1);
        let base = vm::reserve(reserved_pages * SIZE_4K, SIZE_4K)?;
        Ok(Self {
            base: base.0,
            reserved_pages,
            frames: Vec::new(),
        })
    }

    /// The first address.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Bytes of the frames mapped.
    pub fn bytes(&self) -> u64 {
        self.frames.len() as u64 * SIZE_4K
    }

    /// Writes `code` at the region's start and maps it read-execute, in frames from
    /// `alloc_frame` (the whole machine's, or one NUMA node's).
    pub fn install(
        &mut self,
        code: &[u8],
        alloc_frame: impl Fn(PageSize) -> Option<PhysAddr>,
    ) -> Result<(), VmError> {
        let pages = (code.len() as u64).div_ceil(SIZE_4K).max(1);
        if pages > self.reserved_pages || !self.frames.is_empty() {
            return Err(VmError::OutOfVirtualSpace);
        }
        for (i, chunk) in code.chunks(SIZE_4K as usize).enumerate() {
            let pa = alloc_frame(PageSize::Size4K).ok_or(VmError::OutOfFrames)?;
            let dst = physmem::to_virt(pa).0 as *mut u8;
            // SAFETY: `pa` is a frame just allocated for us alone; the direct map covers it
            // read-write; `chunk` is at most one page. The rest of the page becomes `int3`.
            unsafe {
                core::ptr::write_bytes(dst, 0xCC, SIZE_4K as usize);
                core::ptr::copy_nonoverlapping(chunk.as_ptr(), dst, chunk.len());
            }
            let va = VirtAddr(self.base + i as u64 * SIZE_4K);
            if let Err(e) = vm::map(va, pa, PageSize::Size4K, Protection::READ_EXEC) {
                let _ = frames::free(pa, PageSize::Size4K);
                return Err(e);
            }
            self.frames.push(pa);
        }
        Ok(())
    }

    /// Unmaps the pages and frees their frames (the virtual range is never handed out again,
    /// so a stale jump there faults as not present).
    pub fn free(self) {
        let _ = vm::unmap_free_4k_range(VirtAddr(self.base), self.frames.len() as u64);
    }

    /// Unmaps the pages (a stale jump there faults as not present, as after [`Self::free`])
    /// but keeps their frames and what they hold, so a later move back to this place writes
    /// only the bytes that differ ([`KeptRegion::restore`]).
    pub fn keep(self) -> KeptRegion {
        let mut frames = Vec::with_capacity(self.frames.len());
        for (i, &pa) in self.frames.iter().enumerate() {
            match vm::unmap(VirtAddr(self.base + i as u64 * SIZE_4K), PageSize::Size4K) {
                Ok(_) => frames.push(pa),
                // Not mapped (cannot happen for an installed region): nothing to keep there.
                Err(_) => break,
            }
        }
        KeptRegion {
            base: self.base,
            reserved_pages: self.reserved_pages,
            frames,
        }
    }
}

/// The frames of a copy an island left, unmapped, with their content: its previous copy at
/// that place, kept (bounded) for a move back.
#[derive(Debug)]
pub struct KeptRegion {
    base: u64,
    reserved_pages: u64,
    frames: Vec<PhysAddr>,
}

impl KeptRegion {
    /// The first address of the place.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Room reserved there, in bytes.
    pub fn reserved_bytes(&self) -> u64 {
        self.reserved_pages * SIZE_4K
    }

    /// Makes the place hold `code` (encoded for [`Self::base`]) and maps it read-execute
    /// again. When the code needs as many pages as were kept, only the bytes that differ from
    /// the old copy are written (the rest of the last page is `int3`, as at a fresh install);
    /// otherwise the old frames are freed and the code is installed in fresh ones. Returns the
    /// region and the bytes written.
    pub fn restore(
        self,
        code: &[u8],
        alloc_frame: impl Fn(PageSize) -> Option<PhysAddr>,
    ) -> Result<(CodeRegion, u64), VmError> {
        let pages = (code.len() as u64).div_ceil(SIZE_4K).max(1);
        let mut region = CodeRegion {
            base: self.base,
            reserved_pages: self.reserved_pages,
            frames: Vec::new(),
        };
        if pages != self.frames.len() as u64 {
            self.free();
            if let Err(e) = region.install(code, alloc_frame) {
                region.free();
                return Err(e);
            }
            return Ok((region, code.len() as u64));
        }
        let mut written = 0u64;
        for (i, &pa) in self.frames.iter().enumerate() {
            let page = physmem::to_virt(pa).0 as *mut u8;
            for j in 0..SIZE_4K as usize {
                let want = code.get(i * SIZE_4K as usize + j).copied().unwrap_or(0xCC);
                // SAFETY: `pa` is a frame this region owns (kept since its pages were unmapped,
                // mapped nowhere else); the direct map covers it read-write; `j` is inside the
                // page.
                unsafe {
                    let p = page.add(j);
                    if p.read_volatile() != want {
                        p.write_volatile(want);
                        written += 1;
                    }
                }
            }
        }
        for (i, &pa) in self.frames.iter().enumerate() {
            let va = VirtAddr(self.base + i as u64 * SIZE_4K);
            if let Err(e) = vm::map(va, pa, PageSize::Size4K, Protection::READ_EXEC) {
                // Undo the pages mapped so far and give every frame back.
                let _ = vm::unmap_free_4k_range(VirtAddr(self.base), i as u64);
                for &rest in &self.frames[i..] {
                    let _ = frames::free(rest, PageSize::Size4K);
                }
                return Err(e);
            }
        }
        region.frames = self.frames;
        Ok((region, written))
    }

    /// Gives the frames back (the pages are unmapped already).
    pub fn free(self) {
        for pa in self.frames {
            let _ = frames::free(pa, PageSize::Size4K);
        }
    }
}

/// One 2 MiB page of code, mapped read-execute with a single 2 MiB entry, into which islands
/// are packed one after the other (each slot starts on a 64-byte line). Written only through
/// the direct map; a slot an island left is filled with `int3` and never handed out again.
#[derive(Debug)]
pub struct LargePage {
    base: u64,
    phys: PhysAddr,
    /// Offset of the first free byte.
    next: u64,
    /// Islands living in it.
    live: u32,
}

/// Slots in a [`LargePage`] start on this boundary.
const SLOT_ALIGN: u64 = 64;

impl LargePage {
    /// A fresh 2 MiB frame from `alloc_frame`, all `int3`, mapped read-execute at a 2 MiB
    /// aligned address with one page-directory entry.
    pub fn new(alloc_frame: impl Fn(PageSize) -> Option<PhysAddr>) -> Result<Self, VmError> {
        let phys = alloc_frame(PageSize::Size2M).ok_or(VmError::OutOfFrames)?;
        let dst = physmem::to_virt(phys).0 as *mut u8;
        // SAFETY: `phys` is a 2 MiB frame just allocated for us alone and the direct map covers
        // it read-write; nothing else can see it yet.
        unsafe { core::ptr::write_bytes(dst, 0xCC, SIZE_2M as usize) };
        let mapped = vm::reserve(SIZE_2M, SIZE_2M)
            .and_then(|va| vm::map(va, phys, PageSize::Size2M, Protection::READ_EXEC).map(|()| va));
        match mapped {
            Ok(va) => Ok(Self {
                base: va.0,
                phys,
                next: 0,
                live: 0,
            }),
            Err(e) => {
                let _ = frames::free(phys, PageSize::Size2M);
                Err(e)
            }
        }
    }

    /// Where the next slot would start, if `max_bytes` fit there.
    pub fn next_slot(&self, max_bytes: u64) -> Option<u64> {
        (self.next + max_bytes <= SIZE_2M).then_some(self.base + self.next)
    }

    /// Whether `addr` lies in this page.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr - self.base < SIZE_2M
    }

    /// Islands living in it.
    pub fn live(&self) -> u32 {
        self.live
    }

    /// Writes `code` at `addr`, which must be [`LargePage::next_slot`]; the slot is taken.
    pub fn install(&mut self, addr: u64, code: &[u8]) -> bool {
        let len = code.len() as u64;
        if addr != self.base + self.next || self.next + len > SIZE_2M {
            return false;
        }
        let dst = physmem::to_virt(PhysAddr(self.phys.0 + self.next)).0 as *mut u8;
        // SAFETY: the slot lies inside our 2 MiB frame (checked above), is still `int3` and
        // not reachable by any thread (it is handed out only now); the direct map is writable.
        unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), dst, code.len()) };
        self.next = (self.next + len.max(1)).next_multiple_of(SLOT_ALIGN);
        self.live += 1;
        true
    }

    /// An island left `len` bytes at `addr`: they become `int3` (nothing refers to them any
    /// more; a missed reference traps and the report names the island).
    pub fn vacate(&mut self, addr: u64, len: u64) {
        if !self.contains(addr) || addr - self.base + len > SIZE_2M {
            return;
        }
        let dst = physmem::to_virt(PhysAddr(self.phys.0 + (addr - self.base))).0 as *mut u8;
        // SAFETY: inside our frame (checked), through the writable direct map; nothing refers
        // to these bytes any more and every core serialized after the move.
        unsafe { core::ptr::write_bytes(dst, 0xCC, len as usize) };
        self.live = self.live.saturating_sub(1);
    }

    /// Unmaps the page (one shootdown) and frees its frame; its virtual range is never reused.
    pub fn free(self) {
        let _ = vm::unmap_free(VirtAddr(self.base), PageSize::Size2M);
    }
}

/// Visits every code address the instance at `addr` holds by value (imports bound to other
/// instances' functions; funcrefs read relocation cells instead), with the world stopped: `f` gets each value
/// and returns the value to store (or `None` to leave it).
pub fn retarget_instance(addr: usize, f: &mut dyn FnMut(u64) -> Option<u64>) {
    let mut visit = |slot: *mut usize| {
        // SAFETY: `slot` is one of the instance's code-address slots, handed out by
        // `visit_code_pointers` for this call only; aligned and live.
        let now = unsafe { slot.read() } as u64;
        if let Some(new) = f(now) {
            // SAFETY: as above; the world is stopped and the value is a code address.
            unsafe { slot.write(new as usize) };
        }
    };
    // SAFETY: `addr` is a registered instance (alive until it is unregistered under the islands
    // lock, which the relocation engine holds); the world is stopped, and no thread is inside
    // a runtime helper (a thread in foreign code called from generated code makes the round a
    // retry before this runs), so nothing else touches its tables or imports now.
    unsafe {
        atoll_pae::runtime::Instance::visit_code_pointers(
            addr as *mut atoll_pae::runtime::Instance,
            &mut visit,
        );
    }
}

/// Counter `i` of a running instance's block counters at `addr` (registered with
/// `begin_counters`), read while its generated code may be incrementing it.
pub fn read_counter(addr: usize, i: usize) -> u64 {
    let p = (addr as *const u64).wrapping_add(i);
    // SAFETY: `addr` is the start of a live instance's counter vector with more than `i`
    // entries: the caller holds the islands lock, and the instance is unregistered under that
    // lock before it is dropped. The counter is an aligned u64 that generated code updates with
    // single stores, so an atomic load sees either the old or the new value.
    unsafe {
        core::sync::atomic::AtomicU64::from_ptr(p.cast_mut())
            .load(core::sync::atomic::Ordering::Relaxed)
    }
}

/// Copies `len` bytes of code at `addr` (mapped, readable: every page is checked first).
pub fn read_code(addr: u64, len: usize) -> Option<Vec<u8>> {
    let alias = CodeAlias::new(addr, len)?;
    let mut out = alloc::vec![0u8; len];
    for (i, b) in out.iter_mut().enumerate() {
        *b = alias.read(i)?;
    }
    Some(out)
}

/// A writable view, through the direct map, of `len` bytes of code at `addr` that is mapped
/// read-execute: the translations are made when it is built (before the pause), so reading and
/// writing through it later walks no page table and allocates nothing.
#[derive(Debug)]
pub struct CodeAlias {
    addr: u64,
    len: usize,
    /// Direct-map address of the first byte of each page the range touches.
    pages: Vec<u64>,
}

impl CodeAlias {
    /// `None` if some page of the range is not mapped.
    pub fn new(addr: u64, len: usize) -> Option<Self> {
        let first = addr - addr % SIZE_4K;
        let end = addr.checked_add(len as u64)?;
        let mut pages = Vec::new();
        let mut page = first;
        while page < end.max(addr + 1) {
            let t = physmem::translate(VirtAddr(page))?;
            pages.push(physmem::to_virt(t.phys).0);
            page += SIZE_4K;
        }
        Some(Self { addr, len, pages })
    }

    /// The first address of the range.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    fn byte_ptr(&self, i: usize) -> Option<*mut u8> {
        if i >= self.len {
            return None;
        }
        let va = self.addr + i as u64;
        let page = ((va - (self.addr - self.addr % SIZE_4K)) / SIZE_4K) as usize;
        Some((self.pages.get(page)? + va % SIZE_4K) as *mut u8)
    }

    /// Byte `i` of the range.
    pub fn read(&self, i: usize) -> Option<u8> {
        let p = self.byte_ptr(i)?;
        // SAFETY: `p` is the direct-map address of a byte of a frame that was mapped when the
        // alias was made and stays mapped while its code is registered (code pages are freed
        // only through `CodeRegion::free`, after the alias is gone).
        Some(unsafe { p.read_volatile() })
    }

    /// Writes `bytes` at offset `at` of the range; `false` (nothing written) if it does not
    /// fit.
    pub fn write(&self, at: usize, bytes: &[u8]) -> bool {
        if at.checked_add(bytes.len()).is_none_or(|end| end > self.len) {
            return false;
        }
        for (i, &b) in bytes.iter().enumerate() {
            let Some(p) = self.byte_ptr(at + i) else {
                return false;
            };
            // SAFETY: as for `read`; the direct map is writable, and the caller writes code
            // only while no thread can execute these bytes' old values (world stopped, or
            // code nothing refers to any more), then serializes every core.
            unsafe { p.write_volatile(b) };
        }
        true
    }
}

/// A stopped thread's stack, `[bottom, top)`: every read and write is checked to lie inside.
#[derive(Debug, Clone, Copy)]
pub struct ThreadStack {
    /// Lowest address.
    pub bottom: u64,
    /// One past the highest.
    pub top: u64,
}

impl ThreadStack {
    fn inside(&self, addr: u64) -> bool {
        addr >= self.bottom
            && addr.checked_add(8).is_some_and(|e| e <= self.top)
            && addr.is_multiple_of(8)
    }

    /// Stores `value` at `addr` (a return-address slot found by the walk); `false` outside
    /// the stack.
    pub fn write_u64(&self, addr: u64, value: u64) -> bool {
        if !self.inside(addr) {
            return false;
        }
        // SAFETY: the address lies in the thread's stack (mapped read-write for as long as the
        // thread's slot is live, which the caller checked with the world stopped) and is
        // aligned; the thread is stopped, so nothing else touches the slot now.
        unsafe { (addr as *mut u64).write_volatile(value) };
        true
    }
}

impl StackMemory for ThreadStack {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        if !self.inside(addr) {
            return None;
        }
        // SAFETY: as for `write_u64`: inside the live, mapped stack of a stopped thread.
        Some(unsafe { (addr as *const u64).read_volatile() })
    }
}

/// Jumps into `addr`, code an island has left (filled with `int3`, or unmapped), for the
/// `relocate --probe-old` debug command: the first instruction fetched there traps, and the
/// fault report names the island and halts the core. `super::probe_old` checks that `addr` is
/// such code (vacated by an island, inside no island or anchor now) before it calls this.
pub(super) fn execute_stale(addr: u64) -> ! {
    // SAFETY: `addr` is the start of a range an island left (checked by the caller): every
    // byte there is `int3` or unmapped, so the call traps at its first instruction and the
    // fault handler halts this core; no code runs there and nothing returns.
    let stale = unsafe { core::mem::transmute::<usize, extern "C" fn() -> !>(addr as usize) };
    stale()
}
