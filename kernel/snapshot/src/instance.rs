//! Capturing a layer from an instance of atoll's code generator and restoring a composite
//! into one (feature `instance`). The page contents are the embedder's: it turns a captured
//! page's bytes into its page type (a frame in the kernel) and puts a composite's pages into
//! the restored instance's memory (mapped copy-on-write in the kernel, copied on the host).

use alloc::vec::Vec;
use core::fmt;

use atoll_pae::runtime::{Instance, RefValue, StateError};

use crate::PAGE_BYTES;
use crate::SnapId;
use crate::diff::dirty_pages;
use crate::layer::{Composite, Layer, TableValue};

/// An instance's state before a segment runs, to diff against afterwards.
#[derive(Debug, Clone)]
pub struct Before {
    memory: Vec<u8>,
    globals: Vec<(u32, u64)>,
    table: Vec<((u32, u32), RefValue)>,
    dropped: (Vec<u32>, Vec<u32>),
}

/// Why a layer could not be captured or restored.
#[derive(Debug)]
pub enum SnapError<E> {
    /// The instance imports its memory: its state is not its own.
    ImportedMemory,
    /// A table entry refers to another instance's function or holds an externref.
    ForeignTableEntry(u32, u32),
    /// The instance refused a write.
    State(StateError),
    /// The embedder's page operation failed.
    Page(E),
}

impl<E: fmt::Display> fmt::Display for SnapError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ImportedMemory => write!(f, "the chunk imports its memory"),
            Self::ForeignTableEntry(t, i) => write!(
                f,
                "table {t} entry {i} holds another instance's function or an externref"
            ),
            Self::State(e) => write!(f, "{e}"),
            Self::Page(e) => write!(f, "{e}"),
        }
    }
}

impl<E> From<StateError> for SnapError<E> {
    fn from(e: StateError) -> Self {
        Self::State(e)
    }
}

fn table_state(inst: &Instance) -> Vec<((u32, u32), RefValue)> {
    let mut out = Vec::new();
    for t in inst.own_tables() {
        let mut i = 0;
        while let Some(v) = inst.table_entry(t, i) {
            out.push(((t, i), v));
            i += 1;
        }
    }
    out
}

/// Records `inst`'s state before a segment runs.
pub fn before(inst: &mut Instance) -> Before {
    let globals = inst
        .own_globals()
        .filter(|&g| inst.global_is_state(g))
        .map(|g| (g, inst.global(g)))
        .collect();
    Before {
        memory: inst.memory().to_vec(),
        globals,
        table: table_state(inst),
        dropped: inst.dropped_segments(),
    }
}

/// Fills `layer` with what changed in `inst` since `before`: dirty pages (each turned into the
/// embedder's page by `page(index, bytes)`), globals, table entries, dropped segments, memory
/// size.
pub fn capture<P, E>(
    inst: &mut Instance,
    before: &Before,
    layer: &mut Layer<P>,
    mut page: impl FnMut(u32, &[u8]) -> Result<P, E>,
) -> Result<(), SnapError<E>> {
    if !inst.owns_memory() {
        return Err(SnapError::ImportedMemory);
    }
    layer.memory_pages = inst.memory_pages();
    for ((t, i), v) in table_state(inst) {
        let old = before
            .table
            .iter()
            .find(|(at, _)| *at == (t, i))
            .map(|e| e.1);
        if old == Some(v) {
            continue;
        }
        let value = match v {
            RefValue::Null => TableValue::Null,
            RefValue::Func(f) => TableValue::Func(f),
            RefValue::Other(_) => return Err(SnapError::ForeignTableEntry(t, i)),
        };
        layer.table.insert((t, i), value);
    }
    for &(g, old) in &before.globals {
        let now = inst.global(g);
        if now != old {
            layer.globals.insert(g, now);
        }
    }
    let (data, elems) = inst.dropped_segments();
    layer
        .dropped_data
        .extend(data.into_iter().filter(|d| !before.dropped.0.contains(d)));
    layer
        .dropped_elems
        .extend(elems.into_iter().filter(|e| !before.dropped.1.contains(e)));
    let memory = inst.memory();
    for index in dirty_pages(&before.memory, memory) {
        let start = index as usize * PAGE_BYTES;
        let end = (start + PAGE_BYTES).min(memory.len());
        let p = page(index, &memory[start..end]).map_err(SnapError::Page)?;
        layer.pages.insert(index, p);
    }
    Ok(())
}

/// Applies `composite` onto `inst`, a freshly instantiated instance of the same module: grows
/// its memory, has `put_page(inst, index, layer, page)` put every page in place, then sets globals
/// and table entries and drops segments.
pub fn restore<P, E>(
    inst: &mut Instance,
    composite: &Composite<'_, P>,
    mut put_page: impl FnMut(&mut Instance, u32, SnapId, &P) -> Result<(), E>,
) -> Result<(), SnapError<E>> {
    if !inst.owns_memory() {
        return Err(SnapError::ImportedMemory);
    }
    inst.grow_memory_to(composite.memory_pages)?;
    for (&index, &(layer, page)) in &composite.pages {
        put_page(inst, index, layer, page).map_err(SnapError::Page)?;
    }
    for (&g, &bits) in &composite.globals {
        inst.set_global(g, bits)?;
    }
    for (&(t, i), &v) in &composite.table {
        let v = match v {
            TableValue::Null => RefValue::Null,
            TableValue::Func(f) => RefValue::Func(f),
        };
        inst.set_table_entry(t, i, v)?;
    }
    let data: Vec<u32> = composite.dropped_data.iter().copied().collect();
    let elems: Vec<u32> = composite.dropped_elems.iter().copied().collect();
    inst.drop_segments(&data, &elems)?;
    Ok(())
}

/// The host's `put_page`: copies `bytes` into page `index` of `inst`'s memory.
pub fn copy_page(inst: &mut Instance, index: u32, bytes: &[u8]) -> Result<(), StateError> {
    let memory = inst.memory();
    let start = index as usize * PAGE_BYTES;
    let end = start + bytes.len();
    let Some(dst) = memory.get_mut(start..end) else {
        return Err(StateError::Grow(end as u64));
    };
    dst.copy_from_slice(bytes);
    Ok(())
}
