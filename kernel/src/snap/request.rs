//! A request with snapshots on or off: its predicted path, the selector's layers restored
//! copy-on-write into a page-backed memory (on) or the whole path run first (off), then its
//! export; the figures both ways.

use alloc::string::String;
use alloc::vec::Vec;

use atoll_pae::runtime::InvokeError;
use atoll_snapshot::SnapId;
use atoll_snapshot::instance::restore;
use atoll_snapshot::library::{LibraryError, Selection};
use chunk_image::Value;

use super::paged::{MemoryHandle, PagedError, PagedMemory};
use super::{
    Page, PathSource, SnapError, check_chunk, predicted_path, record_reach, segment_call,
    shared_state, split, with,
};
use crate::arch::cpu;
use crate::pae::{self, Prepared};

/// What restoring put in place.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// Layers restored, in order.
    pub layers: Vec<SnapId>,
    /// Path segments they cover (a prefix).
    pub covered: usize,
    /// Pages mapped shared.
    pub pages_shared: u64,
    /// TSC cycles the restore took (composition, mapping, globals, table).
    pub cycles: u64,
}

/// Restores `selection` into `prepared`'s own instance, whose memory is `handle`.
pub(super) fn restore_into(
    prepared: &mut Prepared,
    handle: MemoryHandle,
    selection: &Selection,
) -> Result<Restored, SnapError> {
    let start = cpu::rdtsc();
    let mut pages: Vec<(u32, Page)> = Vec::new();
    with(|s| {
        let composite = s
            .library
            .composite(selection)
            .ok_or_else(|| SnapError::State("the selected snapshots do not compose".into()))?;
        restore(
            prepared.main_instance().ok_or_else(shared_state)?,
            &composite,
            |_, index, _, page: &Page| {
                pages.push((index, page.clone()));
                Ok::<(), PagedError>(())
            },
        )?;
        s.restores += 1;
        Ok::<(), SnapError>(())
    })?;
    handle.share(&pages)?;
    Ok(Restored {
        layers: selection.layers.clone(),
        covered: selection.covered,
        pages_shared: pages.len() as u64,
        cycles: cpu::rdtsc() - start,
    })
}

/// The selection restoring layer `id` with its ancestors.
pub(super) fn chain_of(id: SnapId) -> Result<Selection, SnapError> {
    with(|s| {
        let mut layers = Vec::new();
        let mut at = Some(id);
        while let Some(i) = at {
            let l = s
                .library
                .get(i)
                .ok_or(SnapError::Library(LibraryError::NotFound(i)))?;
            layers.push(i);
            at = l.parent;
        }
        layers.reverse();
        Ok(Selection {
            covered: layers.len(),
            layers,
        })
    })
}

/// A request run with snapshots on or off.
#[derive(Debug)]
pub struct RunReport {
    /// The request's results (or trap).
    pub result: Result<Vec<Value>, InvokeError>,
    /// Snapshots on.
    pub snapshots: bool,
    /// The predicted path.
    pub path: Vec<String>,
    /// Where the path came from.
    pub source: PathSource,
    /// What was restored (snapshots on).
    pub restored: Restored,
    /// Segments of the path run (not covered by snapshots).
    pub ran_segments: usize,
    /// TSC cycles running those segments took.
    pub path_cycles: u64,
    /// TSC cycles of the request's own export.
    pub request_cycles: u64,
    /// TSC cycles from the request to its result (prepare, restore or path, export).
    pub total_cycles: u64,
    /// Pages this instance copied on write, and pages it still shared at the end.
    pub pages_copied: u64,
    /// Pages still shared when the request ended.
    pub pages_still_shared: u64,
    /// Core and thread of the chunk thread.
    pub core: u32,
    /// Chunk thread id.
    pub thread: u64,
}

/// Prepares `task` (restored from snapshots when `snapshots`, else with its path to run) and
/// starts it on a chunk thread without waiting.
pub fn start(
    task: &str,
    words: &[String],
    snapshots: bool,
    core: Option<usize>,
    client: Option<&str>,
) -> Result<pae::Started, SnapError> {
    let (prepared, args, _, _, _) = prepare_request(task, words, snapshots, client)?;
    Ok(pae::start_on_thread(prepared, args, core)?)
}

type PreparedRequest = (
    Prepared,
    Vec<u64>,
    Option<MemoryHandle>,
    Restored,
    (Vec<String>, PathSource),
);

/// `path` for a request of `client` (if any): the shared selection's layers, and when they
/// cover the whole path, the client's session after them (its layers and segments).
fn select(path: &[String], client: Option<&str>) -> (Selection, Vec<String>) {
    let names: Vec<&str> = path.iter().map(String::as_str).collect();
    with(|s| {
        let mut selection = s.library.select_for(&names, client);
        let mut session = Vec::new();
        if let Some(c) = client
            && selection.covered == path.len()
        {
            for id in s.library.session(&selection.layers, c) {
                if let Some(l) = s.library.get(id) {
                    session.push(l.segment.clone());
                    selection.layers.push(id);
                    selection.covered += 1;
                }
            }
        }
        (selection, session)
    })
}

/// The request's instances, restored (or not) and with the rest of its path to run.
fn prepare_request(
    task: &str,
    words: &[String],
    snapshots: bool,
    client: Option<&str>,
) -> Result<PreparedRequest, SnapError> {
    let (chunk, _) = split(task)?;
    // A chunk with providers has no path to restore or run: the request runs as it is.
    let own_state = check_chunk(chunk).is_ok();
    let (mut path, source) = if own_state {
        predicted_path(task)?
    } else {
        (Vec::new(), PathSource::Providers)
    };
    let snapshots = snapshots && own_state;
    // The client's session extends the path, both ways (off: its segments run).
    let (selection, session) = select(&path, client.filter(|_| own_state));
    path.extend(session);
    crate::predict::on_request(task);
    let (mut prepared, handle, restored) = if snapshots {
        let memory = PagedMemory::new()?;
        let handle = memory.handle();
        let mut prepared = pae::prepare_with_memory(task, alloc::boxed::Box::new(memory))?;
        let restored = restore_into(&mut prepared, handle, &selection)?;
        (prepared, Some(handle), restored)
    } else {
        (pae::prepare(task)?, None, Restored::default())
    };
    let args = prepared.parse_args(words)?;
    let calls = path[restored.covered..]
        .iter()
        .map(|s| segment_call(s))
        .collect::<Result<Vec<_>, _>>()?;
    prepared.set_path(calls);
    Ok((prepared, args, handle, restored, (path, source)))
}

/// Runs `task` with `words` as arguments: with snapshots on, restored from the snapshots its
/// predicted path selects (the rest of the path runs); off, after running the whole path.
pub fn run(
    task: &str,
    words: &[String],
    snapshots: bool,
    core: Option<usize>,
    client: Option<&str>,
) -> Result<RunReport, SnapError> {
    let start = cpu::rdtsc();
    let (prepared, args, handle, restored, (path, source)) =
        prepare_request(task, words, snapshots, client)?;
    let rest = &path[restored.covered..];
    let (outcome, back) = pae::run_keeping(prepared, args, core)?;
    let total_cycles = cpu::rdtsc() - start;
    let mut prepared =
        back.ok_or_else(|| SnapError::State("the chunk thread kept the task".into()))?;
    crate::predict::on_finished(task, outcome.run_cycles, outcome.result.is_ok());
    record_reach(task, &mut prepared);
    super::after_request();
    if !rest.is_empty() {
        with(|s| s.path_runs += 1);
    }
    let path_cycles = prepared.path_cycles();
    let (pages_copied, pages_still_shared) = handle.map_or((0, 0), |h| h.figures());
    drop(prepared);
    Ok(RunReport {
        result: outcome.result,
        snapshots,
        ran_segments: rest.len(),
        path,
        source,
        restored,
        path_cycles,
        request_cycles: outcome.run_cycles.saturating_sub(path_cycles),
        total_cycles,
        pages_copied,
        pages_still_shared,
        core: outcome.core,
        thread: outcome.thread,
    })
}
