//! `snap verify TASK`: the kernel-side differential check. One instance runs the task's
//! predicted path (heap memory, every segment run); another is restored from the snapshots the
//! selector picks for it (page-backed, copy-on-write) and runs the segments they do not cover.
//! Their memories are compared byte for byte (the restored one read through its shared
//! mappings), and their globals, tables and dropped segments too.

use alloc::string::String;
use alloc::vec::Vec;

use atoll_pae::runtime::Instance;

use super::paged::PagedMemory;
use super::request::restore_into;
use super::{SnapError, check_chunk, predicted_path, segment_call, shared_state, split, with};
use crate::pae::{self, Prepared};

/// What `verify` compared.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The path.
    pub path: Vec<String>,
    /// Layers restored.
    pub layers: Vec<u32>,
    /// Bytes of linear memory compared.
    pub bytes: u64,
    /// Globals compared.
    pub globals: u64,
    /// Table entries compared.
    pub table_entries: u64,
    /// The first difference, if any.
    pub difference: Option<String>,
}

type State = (Vec<u8>, Vec<u64>, Vec<String>, (Vec<u32>, Vec<u32>));

fn state(inst: &mut Instance) -> State {
    let globals = inst.own_globals().map(|g| inst.global(g)).collect();
    let mut table = Vec::new();
    for t in inst.own_tables() {
        let mut i = 0;
        while let Some(v) = inst.table_entry(t, i) {
            table.push(alloc::format!("{t}:{i}:{v:?}"));
            i += 1;
        }
    }
    let dropped = inst.dropped_segments();
    (inst.memory().to_vec(), globals, table, dropped)
}

/// Runs `prepared`'s path segments (its own export is the path's last segment) on a chunk
/// thread and hands it back.
fn run_path(prepared: Prepared) -> Result<Prepared, SnapError> {
    let (outcome, back) = pae::run_keeping(prepared, Vec::new(), None)?;
    if let Err(e) = outcome.result {
        return Err(SnapError::Trap(alloc::format!("{e}")));
    }
    back.ok_or_else(|| SnapError::State("the chunk thread kept the task".into()))
}

/// Checks `task`'s path as the module says.
pub fn verify(task: &str) -> Result<Verified, SnapError> {
    let (chunk, _) = split(task)?;
    check_chunk(chunk)?;
    let (path, _) = predicted_path(task)?;
    let Some(last) = path.last() else {
        return Err(SnapError::State(alloc::format!(
            "`{task}` has no path to verify"
        )));
    };
    // The instance that ran the path: the last segment as its task, the others before it.
    let mut ran = pae::prepare(last)?;
    let funcs = |segs: &[String]| -> Result<Vec<(u32, Vec<u64>)>, SnapError> {
        segs.iter().map(|s| segment_call(s)).collect()
    };
    ran.set_path(funcs(&path[..path.len() - 1])?);
    let mut ran = run_path(ran)?;
    // The restored instance.
    let memory = PagedMemory::new()?;
    let handle = memory.handle();
    let mut restored = pae::prepare_with_memory(last, alloc::boxed::Box::new(memory))?;
    let names: Vec<&str> = path.iter().map(String::as_str).collect();
    let selection = with(|s| s.library.select(&names));
    let r = restore_into(&mut restored, handle, &selection)?;
    if r.covered < path.len() {
        restored.set_path(funcs(&path[r.covered..path.len() - 1])?);
        restored = run_path(restored)?;
    }
    let a = state(ran.main_instance().ok_or_else(shared_state)?);
    let b = state(restored.main_instance().ok_or_else(shared_state)?);
    let difference = if a.0.len() != b.0.len() {
        Some(alloc::format!(
            "memory sizes {} and {}",
            a.0.len(),
            b.0.len()
        ))
    } else if let Some(at) = a.0.iter().zip(&b.0).position(|(x, y)| x != y) {
        Some(alloc::format!(
            "memory byte {at}: {:#04x} ran, {:#04x} restored",
            a.0[at],
            b.0[at]
        ))
    } else if a.1 != b.1 {
        Some("globals differ".into())
    } else if a.2 != b.2 {
        Some("tables differ".into())
    } else if a.3 != b.3 {
        Some("dropped segments differ".into())
    } else {
        None
    };
    Ok(Verified {
        path: path.clone(),
        layers: r.layers,
        bytes: a.0.len() as u64,
        globals: a.1.len() as u64,
        table_entries: a.2.len() as u64,
        difference,
    })
}
