//! The memory the relocation engine touches: fresh code pages for a relocated island, writes
//! into code that is mapped read-execute (through the direct map, RW), and reads and writes of a
//! stopped thread's stack.
//!
//! This module may use `unsafe` (it is in the list in `main.rs`): it dereferences addresses of
//! code pages and thread stacks. Each operation first checks the address against what it was
//! handed (a region's pages, a stack's bounds, a translation made before the pause), then does
//! one narrow read or write.

use alloc::vec::Vec;

use atoll_island::StackMemory;
use atoll_kcore::addr::{PageSize, PhysAddr, SIZE_4K, VirtAddr};
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

    /// Writes `code` at the region's start and maps it read-execute.
    pub fn install(&mut self, code: &[u8]) -> Result<(), VmError> {
        let pages = (code.len() as u64).div_ceil(SIZE_4K).max(1);
        if pages > self.reserved_pages || !self.frames.is_empty() {
            return Err(VmError::OutOfVirtualSpace);
        }
        for (i, chunk) in code.chunks(SIZE_4K as usize).enumerate() {
            let pa = frames::alloc(PageSize::Size4K).ok_or(VmError::OutOfFrames)?;
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
