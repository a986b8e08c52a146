//! Memories, tables and globals as objects that several instances can share: one instance
//! defines it, others import it, and every write or growth is seen by all of them.
//!
//! Generated code reads a memory through each instance's copy of its [`MemoryDef`] (refreshed
//! after calls that may have run another instance), a table through its [`TableDef`], and a
//! global through a pointer to its cell, so the objects below keep those records at fixed
//! addresses (inside the `Arc` allocation) for as long as any instance holds them.
//!
//! Sharing contract: instances that share an object run on one thread at a time (WebAssembly
//! 2.0 has no threads), and an instance whose memory, table, globals or functions another
//! instance imports (or whose funcrefs it may hold) outlives it.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::any::Any;
use core::cell::UnsafeCell;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use super::{LinearMemory, PAGE_BYTES};
use crate::module::{Limits, Ty};
use crate::vmctx::{MemoryDef, TableDef};

/// Interior mutability for a shared object, behind one narrow accessor.
struct Cell<T>(UnsafeCell<T>);

impl<T> Cell<T> {
    fn new(v: T) -> Self {
        Self(UnsafeCell::new(v))
    }

    /// Runs `f` on the contents.
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: per the module's sharing contract only one thread touches a shared object at
        // a time, and no accessor below calls back into code that could reach the same object
        // while `f` runs (they are leaf operations on plain data), so this `&mut` is unique.
        f(unsafe { &mut *self.0.get() })
    }

    fn as_ptr(&self) -> *mut T {
        self.0.get()
    }
}

struct MemoryState {
    bytes: Box<dyn LinearMemory>,
    max_pages: u64,
    def: MemoryDef,
}

/// A linear memory (shared by reference counting).
#[derive(Clone)]
pub struct Memory(Arc<Cell<MemoryState>>);

impl fmt::Debug for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memory")
            .field("pages", &self.pages())
            .field("max_pages", &self.max_pages())
            .finish()
    }
}

impl Memory {
    /// A memory of `limits` (pages) in `bytes`, grown to its minimum; `None` when that fails.
    pub fn new(mut bytes: Box<dyn LinearMemory>, limits: Limits) -> Option<Self> {
        let max_pages = limits.max.unwrap_or(65536).min(65536);
        if !bytes.grow_to(limits.min as usize * PAGE_BYTES) {
            return None;
        }
        let def = MemoryDef {
            base: bytes.as_mut_ptr(),
            size_bytes: bytes.size_bytes() as u64,
        };
        // An atomic count although the contents are not Sync: the kernel moves instance
        // groups between cores (never running two of them at once), so clones and drops may
        // happen on different cores.
        #[allow(clippy::arc_with_non_send_sync)]
        Some(Self(Arc::new(Cell::new(MemoryState {
            bytes,
            max_pages,
            def,
        }))))
    }

    /// Current size in pages.
    pub fn pages(&self) -> u64 {
        self.0.with(|m| m.def.size_bytes / PAGE_BYTES as u64)
    }

    /// Whether its bytes are a guard-page reservation (`LinearMemory::guard_reserved`).
    pub fn guard_reserved(&self) -> bool {
        self.0.with(|m| m.bytes.guard_reserved())
    }

    /// The maximum it may grow to, in pages.
    pub fn max_pages(&self) -> u64 {
        self.0.with(|m| m.max_pages)
    }

    /// The record generated code reads.
    pub(crate) fn def(&self) -> *const MemoryDef {
        // SAFETY: only the address of a field is taken, nothing is read.
        unsafe { &raw const (*self.0.as_ptr()).def }
    }

    /// Grows by `delta` pages; the old size in pages, or `None` (nothing changed).
    pub fn grow(&self, delta: u64) -> Option<u64> {
        self.0.with(|m| {
            let old = m.def.size_bytes / PAGE_BYTES as u64;
            let new = old.checked_add(delta)?;
            if new > m.max_pages || !m.bytes.grow_to(new as usize * PAGE_BYTES) {
                return None;
            }
            m.def.base = m.bytes.as_mut_ptr();
            m.def.size_bytes = m.bytes.size_bytes() as u64;
            Some(old)
        })
    }

    /// Copies bytes from `at` into `out`; `false` (nothing copied) when out of bounds.
    pub fn read(&self, at: u64, out: &mut [u8]) -> bool {
        self.0.with(|m| {
            let Some(r) = range(at, out.len() as u64, m.bytes.size_bytes()) else {
                return false;
            };
            let len = m.bytes.size_bytes();
            let base = m.bytes.as_mut_ptr();
            if len == 0 {
                return true;
            }
            // SAFETY: the LinearMemory owns `len` initialized bytes at `base`; `r` is within
            // them and `out` is a separate buffer.
            let bytes = unsafe { core::slice::from_raw_parts(base, len) };
            out.copy_from_slice(&bytes[r]);
            true
        })
    }

    /// Whether `self` and `other` are the same memory.
    pub fn same(&self, other: &Memory) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

struct TableState {
    ty: Ty,
    max: Option<u64>,
    elems: Vec<u64>,
    def: TableDef,
    /// Instances kept alive because entries may point at their funcrefs although nobody else
    /// holds them (an instantiation that failed after writing its element segments).
    retained: Vec<Box<dyn Any>>,
}

impl TableState {
    fn sync(&mut self) {
        self.def.base = self.elems.as_mut_ptr();
        self.def.len = self.elems.len() as u64;
    }
}

/// A table of references (shared by reference counting). Entries are 0 (null), the address of
/// a [`FuncRef`](crate::vmctx::FuncRef), or an externref's host value.
#[derive(Clone)]
pub struct Table(Arc<Cell<TableState>>);

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("ty", &self.ty())
            .field("len", &self.len())
            .finish()
    }
}

/// The most entries a table may have (indices and sizes are i32).
const TABLE_MAX_ENTRIES: u64 = 10_000_000;

impl Table {
    /// A table of `ty` with `limits`, every entry `init`; `None` when it is too large.
    pub fn new(ty: Ty, limits: Limits, init: u64) -> Option<Self> {
        if limits.min > TABLE_MAX_ENTRIES {
            return None;
        }
        let mut state = TableState {
            ty,
            max: limits.max,
            elems: vec![init; limits.min as usize],
            def: TableDef {
                base: core::ptr::null_mut(),
                len: 0,
            },
            retained: Vec::new(),
        };
        state.sync();
        // Atomic count: see `Memory::new`.
        #[allow(clippy::arc_with_non_send_sync)]
        Some(Self(Arc::new(Cell::new(state))))
    }

    /// Element type.
    pub fn ty(&self) -> Ty {
        self.0.with(|t| t.ty)
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.0.with(|t| t.elems.len() as u64)
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Declared maximum.
    pub fn max(&self) -> Option<u64> {
        self.0.with(|t| t.max)
    }

    pub(crate) fn def(&self) -> *mut TableDef {
        // SAFETY: only the address of a field is taken, nothing is read.
        unsafe { &raw mut (*self.0.as_ptr()).def }
    }

    /// Keeps `owner` alive as long as the table (its funcrefs may be in the table).
    pub(crate) fn retain(&self, owner: Box<dyn Any>) {
        self.0.with(|t| t.retained.push(owner));
    }

    /// Entry `i`, if in bounds.
    pub fn get(&self, i: u64) -> Option<u64> {
        self.0.with(|t| t.elems.get(i as usize).copied())
    }

    /// Grows by `delta` entries of `init`; the old length, or `None` (nothing changed).
    pub fn grow(&self, delta: u64, init: u64) -> Option<u64> {
        self.0.with(|t| {
            let old = t.elems.len() as u64;
            let new = old.checked_add(delta)?;
            if new > t.max.unwrap_or(u64::from(u32::MAX)).min(TABLE_MAX_ENTRIES) {
                return None;
            }
            t.elems.try_reserve(delta as usize).ok()?;
            t.elems.resize(new as usize, init);
            t.sync();
            Some(old)
        })
    }

    /// Sets `n` entries from `at` to `v`; `false` (nothing written) when out of bounds.
    pub fn fill(&self, at: u64, v: u64, n: u64) -> bool {
        self.0.with(|t| {
            let Some(r) = range(at, n, t.elems.len()) else {
                return false;
            };
            t.elems[r].fill(v);
            true
        })
    }

    /// Writes `values` from `at`; `false` (nothing written) when out of bounds.
    pub fn write(&self, at: u64, values: &[u64]) -> bool {
        self.0.with(|t| {
            let Some(r) = range(at, values.len() as u64, t.elems.len()) else {
                return false;
            };
            t.elems[r].copy_from_slice(values);
            true
        })
    }

    /// Entries `at..at + n`, if in bounds.
    pub fn read(&self, at: u64, n: u64) -> Option<Vec<u64>> {
        self.0
            .with(|t| range(at, n, t.elems.len()).map(|r| t.elems[r].to_vec()))
    }
}

fn range(at: u64, n: u64, len: usize) -> Option<core::ops::Range<usize>> {
    let end = at.checked_add(n)?;
    (end <= len as u64).then_some(at as usize..end as usize)
}

/// A global: its type, mutability and cell (8 bytes, 16 for v128; shared by reference
/// counting).
#[derive(Debug, Clone)]
pub struct Global(Arc<GlobalState>);

#[derive(Debug)]
struct GlobalState {
    ty: Ty,
    mutable: bool,
    cell: [AtomicU64; 2],
}

impl Global {
    /// A global holding `bits`.
    pub fn new(ty: Ty, mutable: bool, bits: u64) -> Self {
        Self::new_v128(ty, mutable, u128::from(bits))
    }

    /// A global holding 128 bits (a v128; others use the low 64).
    pub fn new_v128(ty: Ty, mutable: bool, bits: u128) -> Self {
        Self(Arc::new(GlobalState {
            ty,
            mutable,
            cell: [
                AtomicU64::new(bits as u64),
                AtomicU64::new((bits >> 64) as u64),
            ],
        }))
    }

    /// Type.
    pub fn ty(&self) -> Ty {
        self.0.ty
    }

    /// Mutability.
    pub fn mutable(&self) -> bool {
        self.0.mutable
    }

    /// Current value (raw bits).
    pub fn get(&self) -> u64 {
        self.0.cell[0].load(Ordering::Relaxed)
    }

    /// Current value of a v128 global (low half first in the cell).
    pub fn get_v128(&self) -> u128 {
        u128::from(self.get()) | u128::from(self.0.cell[1].load(Ordering::Relaxed)) << 64
    }

    /// The cell generated code reads and writes.
    pub(crate) fn cell(&self) -> *mut u64 {
        self.0.cell[0].as_ptr()
    }
}
