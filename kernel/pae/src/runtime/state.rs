//! Reading and writing an instance's state from outside, for snapshots (`atoll-snapshot`):
//! the globals and tables it defines itself, its linear memory's size, and which passive
//! segments it dropped. Table entries are given instance-independently ([`RefValue`]), since
//! a funcref is the address of this instance's own record.

use alloc::vec::Vec;
use core::ops::Range;

use super::Instance;
use crate::module::{ImportKind, Ty};

/// A table entry as seen from outside the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefValue {
    /// Null.
    Null,
    /// A function of this instance, by index (imports first).
    Func(u32),
    /// Anything else: another instance's function, or an externref.
    Other(u64),
}

/// Why a state write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// No such global, or it is immutable, imported or a v128.
    Global(u32),
    /// No such table or entry, or the table is imported.
    Table(u32, u32),
    /// A function index past the module's functions.
    Func(u32),
    /// No such segment.
    Segment(u32),
    /// The memory could not grow to the size asked.
    Grow(u64),
}

impl core::fmt::Display for StateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Global(g) => write!(f, "global {g} cannot be set from a snapshot"),
            Self::Table(t, i) => write!(f, "table {t} entry {i} cannot be set from a snapshot"),
            Self::Func(i) => write!(f, "no function {i}"),
            Self::Segment(s) => write!(f, "no segment {s}"),
            Self::Grow(p) => write!(f, "the memory cannot grow to {p} pages"),
        }
    }
}

impl Instance {
    fn imported(&self, kind: fn(&ImportKind) -> bool) -> u32 {
        self.module
            .desc
            .imports
            .iter()
            .filter(|i| kind(&i.kind))
            .count() as u32
    }

    /// The globals this instance defines (imported ones, shared with their owner, come first).
    pub fn own_globals(&self) -> Range<u32> {
        self.imported(|k| matches!(k, ImportKind::Global(..)))..self.globals.len() as u32
    }

    /// The tables this instance defines.
    pub fn own_tables(&self) -> Range<u32> {
        self.imported(|k| matches!(k, ImportKind::Table(..)))..self.tables.len() as u32
    }

    /// Whether the linear memory (if any) is this instance's own, not imported.
    pub fn owns_memory(&self) -> bool {
        self.imported(|k| matches!(k, ImportKind::Memory(..))) == 0
    }

    /// Whether global `index` is one a snapshot records: defined here, mutable, not a v128.
    pub fn global_is_state(&self, index: u32) -> bool {
        self.own_globals().contains(&index)
            && self.globals[index as usize].mutable()
            && self.globals[index as usize].ty() != Ty::V128
    }

    /// Sets global `index` (see [`Instance::global_is_state`]) to `bits`.
    pub fn set_global(&mut self, index: u32, bits: u64) -> Result<(), StateError> {
        if !self.global_is_state(index) {
            return Err(StateError::Global(index));
        }
        // SAFETY: the cell is the global's own 8-byte cell (alive as long as the global), and
        // no generated code runs while `self` is borrowed mutably.
        unsafe { self.globals[index as usize].cell().write(bits) };
        Ok(())
    }

    /// Entry `at` of table `table`.
    pub fn table_entry(&self, table: u32, at: u32) -> Option<RefValue> {
        let bits = self.tables.get(table as usize)?.get(u64::from(at))?;
        if bits == 0 {
            return Some(RefValue::Null);
        }
        let base = self.func_refs.as_ptr() as u64;
        let size = core::mem::size_of::<crate::vmctx::FuncRef>() as u64;
        let end = base + size * self.func_refs.len() as u64;
        if (base..end).contains(&bits) && (bits - base).is_multiple_of(size) {
            return Some(RefValue::Func(((bits - base) / size) as u32));
        }
        Some(RefValue::Other(bits))
    }

    /// Sets entry `at` of table `table` (one this instance defines) to null or one of its
    /// own functions.
    pub fn set_table_entry(&mut self, table: u32, at: u32, v: RefValue) -> Result<(), StateError> {
        if !self.own_tables().contains(&table) {
            return Err(StateError::Table(table, at));
        }
        let bits = match v {
            RefValue::Null => 0,
            RefValue::Func(f) if (f as usize) < self.func_refs.len() => self.func_ref_bits(f),
            RefValue::Func(f) => return Err(StateError::Func(f)),
            RefValue::Other(_) => return Err(StateError::Table(table, at)),
        };
        if !self.tables[table as usize].write(u64::from(at), &[bits]) {
            return Err(StateError::Table(table, at));
        }
        Ok(())
    }

    /// The data segments and element segments this instance has dropped (an element segment
    /// with no entries counts as dropped: dropping it again changes nothing).
    pub fn dropped_segments(&self) -> (Vec<u32>, Vec<u32>) {
        let data = (0..self.dropped_data.len() as u32)
            .filter(|&i| self.dropped_data[i as usize])
            .collect();
        let elems = (0..self.elems.len() as u32)
            .filter(|&i| self.elems[i as usize].is_empty())
            .collect();
        (data, elems)
    }

    /// Drops the given data and element segments.
    pub fn drop_segments(&mut self, data: &[u32], elems: &[u32]) -> Result<(), StateError> {
        for &d in data {
            if d as usize >= self.dropped_data.len() {
                return Err(StateError::Segment(d));
            }
            self.drop_data(d);
        }
        for &e in elems {
            if e as usize >= self.elems.len() {
                return Err(StateError::Segment(e));
            }
            self.drop_elem(e);
        }
        Ok(())
    }

    /// Grows the linear memory to at least `pages` wasm pages.
    pub fn grow_memory_to(&mut self, pages: u64) -> Result<(), StateError> {
        let Some(memory) = self.memory.as_ref() else {
            return if pages == 0 {
                Ok(())
            } else {
                Err(StateError::Grow(pages))
            };
        };
        let now = memory.pages();
        if pages > now {
            let delta = u32::try_from(pages - now).map_err(|_| StateError::Grow(pages))?;
            self.grow_memory(delta).ok_or(StateError::Grow(pages))?;
        }
        Ok(())
    }

    /// Size of the linear memory in wasm pages (0 without one).
    pub fn memory_pages(&self) -> u64 {
        self.memory.as_ref().map_or(0, super::Memory::pages)
    }
}
