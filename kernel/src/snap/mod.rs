//! Predictive snapshots in the kernel (issue 14; `docs/snapshots.md`): the library of layers
//! (pages in frames of their own), the generator (runs a segment in a scratch instance on a
//! chunk thread and captures what it changed), the selector and the layered copy-on-write
//! restore, and the analyzer fed from the block counters of every snapshot-aware run.
//!
//! The pure logic is `atoll-snapshot`; copy-on-write memory is [`paged`].

#[allow(unsafe_code)]
pub mod paged;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use atoll_pae::runtime::InvokeError;
use atoll_snapshot::analyzer::{Analyzer, RefreshPlan, RefreshPolicy, plan_refresh};
use atoll_snapshot::instance::{SnapError as CaptureError, before, capture, restore};
use atoll_snapshot::layer::Layer;
use atoll_snapshot::library::{Library, LibraryError, Selection};
use atoll_snapshot::{SnapId, is_init_export};
use chunk_image::Value;
use spin::Mutex;

use crate::arch::cpu;
use crate::chunks::{self, Loaded};
use crate::pae::{self, PaeError, Prepared};
use crate::sched::ThreadError;
use paged::{MemoryHandle, PagedError, PagedMemory, SnapFrame};

/// A snapshot page: a frame shared by the library and every instance restored from it.
pub type Page = Arc<SnapFrame>;

/// Why a snapshot operation failed.
#[derive(Debug)]
pub enum SnapError {
    /// Preparing the task failed.
    Pae(PaeError),
    /// The segment is not `CHUNK.EXPORT` of an export without parameters.
    Segment(String),
    /// The chunk imports from other chunks: their state is not the instance's own.
    Providers(String),
    /// The segment or the request trapped.
    Trap(String),
    /// The chunk thread could not run.
    Thread(ThreadError),
    /// Capturing or restoring the state failed.
    State(String),
    /// The library refused.
    Library(LibraryError),
    /// The paged memory failed.
    Paged(PagedError),
}

impl fmt::Display for SnapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pae(e) => write!(f, "{e}"),
            Self::Segment(s) => write!(
                f,
                "`{s}` is not a segment (CHUNK.EXPORT of an export without parameters)"
            ),
            Self::Providers(c) => write!(
                f,
                "chunk `{c}` imports from other chunks; snapshots cover chunks without providers"
            ),
            Self::Trap(t) => write!(f, "trap: {t}"),
            Self::Thread(e) => write!(f, "chunk thread: {e}"),
            Self::State(e) => write!(f, "{e}"),
            Self::Library(e) => write!(f, "{e}"),
            Self::Paged(e) => write!(f, "{e}"),
        }
    }
}

impl From<PaeError> for SnapError {
    fn from(e: PaeError) -> Self {
        Self::Pae(e)
    }
}

impl From<ThreadError> for SnapError {
    fn from(e: ThreadError) -> Self {
        Self::Thread(e)
    }
}

impl From<PagedError> for SnapError {
    fn from(e: PagedError) -> Self {
        Self::Paged(e)
    }
}

impl<E: fmt::Display> From<CaptureError<E>> for SnapError {
    fn from(e: CaptureError<E>) -> Self {
        Self::State(alloc::format!("{e}"))
    }
}

#[derive(Debug, Default)]
struct State {
    library: Library<Page>,
    analyzer: Analyzer,
    takes: u64,
    restores: u64,
    path_runs: u64,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut s = STATE.lock();
    f(s.get_or_insert_with(State::default))
}

/// The exception hook: memory probes first, then copy-on-write faults of paged memories.
pub fn exception_hook(frame: &mut crate::arch::trap::TrapFrame) -> bool {
    if crate::arch::probe::fixup(frame) {
        return true;
    }
    frame.vector == crate::arch::idt::Exception::PageFault as u64
        && paged::on_page_fault(cpu::cr2(), frame.error_code)
}

fn split(segment: &str) -> Result<(&str, &str), SnapError> {
    segment
        .split_once('.')
        .filter(|(c, e)| !c.is_empty() && !e.is_empty())
        .ok_or_else(|| SnapError::Segment(segment.into()))
}

/// The chunk's init exports as segments, in export order.
pub fn init_segments(chunk: &str) -> Result<Vec<String>, SnapError> {
    let Loaded::Ready { image, .. } = chunks::loaded() else {
        return Err(PaeError::NoImage.into());
    };
    let view = image
        .chunk(chunk)
        .ok_or_else(|| PaeError::NoChunk(chunk.into()))?;
    Ok(view
        .manifest
        .exports
        .iter()
        .filter(|e| is_init_export(&e.name, e.sig.params.len()))
        .map(|e| alloc::format!("{chunk}.{}", e.name))
        .collect())
}

fn check_chunk(chunk: &str) -> Result<(), SnapError> {
    if pae::dependency_order(chunk)?.len() > 1 {
        return Err(SnapError::Providers(chunk.into()));
    }
    Ok(())
}

/// Where a task's predicted path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathSource {
    /// The block counters of its recorded runs.
    Profile,
    /// No run recorded yet: the init exports its export can call (static call graph).
    CallGraph,
}

impl PathSource {
    /// Name for the console.
    pub fn name(self) -> &'static str {
        match self {
            Self::Profile => "profile",
            Self::CallGraph => "call-graph",
        }
    }
}

/// The init exports `task`'s export can reach in the call graph.
fn static_path(task: &str, order: &[String]) -> Result<Vec<String>, SnapError> {
    let (chunk, export) = split(task)?;
    let Loaded::Ready { image, .. } = chunks::loaded() else {
        return Err(PaeError::NoImage.into());
    };
    let view = image
        .chunk(chunk)
        .ok_or_else(|| PaeError::NoChunk(chunk.into()))?;
    let (desc, graph) = atoll_pae::reach::analyze(view.module)
        .map_err(|e| SnapError::Pae(PaeError::Compile(chunk.into(), e)))?;
    let f = desc
        .export_func(export)
        .ok_or_else(|| PaeError::NoExport(task.into()))?;
    let reached = graph.reachable(&desc, &[f]);
    Ok(order
        .iter()
        .filter(|s| s.as_str() != task)
        .filter(|s| {
            let name = s.split_once('.').map_or("", |p| p.1);
            desc.export_func(name)
                .is_some_and(|g| reached.get(g as usize).copied().unwrap_or(false))
        })
        .cloned()
        .collect())
}

/// `task`'s predicted path of segments, and where it came from.
pub fn predicted_path(task: &str) -> Result<(Vec<String>, PathSource), SnapError> {
    let (chunk, _) = split(task)?;
    let order = init_segments(chunk)?;
    let learned = with(|s| {
        (s.analyzer.runs(task) > 0).then(|| {
            s.analyzer
                .path(task, &order)
                .into_iter()
                .filter(|seg| seg != task)
                .collect::<Vec<_>>()
        })
    });
    match learned {
        Some(p) => Ok((p, PathSource::Profile)),
        None => Ok((static_path(task, &order)?, PathSource::CallGraph)),
    }
}

/// Records which init segments a finished run reached (their entry block counters moved).
fn record_reach(task: &str, prepared: &mut Prepared) {
    let Ok((chunk, _)) = split(task) else {
        return;
    };
    let Ok(order) = init_segments(chunk) else {
        return;
    };
    let inst = prepared.main_instance();
    let module = inst.module().clone();
    let counters = inst.counters();
    let reached: Vec<&str> = order
        .iter()
        .filter(|seg| {
            let name = seg.split_once('.').map_or("", |p| p.1);
            module.desc.export_func(name).is_some_and(|f| {
                let slots = &module.funcs[f as usize].counter_slots;
                !slots.is_empty() && counters.get(slots.start as usize).is_some_and(|&c| c > 0)
            })
        })
        .map(String::as_str)
        .collect();
    with(|s| s.analyzer.record(task, &reached));
}

/// Every segment's weight (permille) from the profiler's task counts.
fn weights() -> alloc::collections::BTreeMap<String, u32> {
    let freq: Vec<(String, u64)> = crate::predict::with_profiler(|p| {
        p.tasks()
            .map(|(t, st)| (String::from(t), st.seeded + st.runs))
            .collect()
    });
    with(|s| s.analyzer.weights(&freq))
}

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
fn restore_into(
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
            prepared.main_instance(),
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
fn chain_of(id: SnapId) -> Result<Selection, SnapError> {
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

/// What `take` produced.
#[derive(Debug, Clone)]
pub struct Taken {
    /// The new snapshot.
    pub id: SnapId,
    /// Its segment.
    pub segment: String,
    /// The layer it is built on.
    pub parent: Option<SnapId>,
    /// Pages captured.
    pub pages: u64,
    /// Bytes held.
    pub bytes: u64,
    /// TSC cycles the segment ran.
    pub run_cycles: u64,
    /// TSC cycles the capture took (diff and copies).
    pub capture_cycles: u64,
    /// The core the segment ran on.
    pub core: u32,
}

/// Runs `segment` in a scratch instance (restored from `parent` and its chain, if given) on a
/// chunk thread on `core` (or the least-loaded core) and keeps what it changed as a snapshot.
pub fn take(
    segment: &str,
    parent: Option<SnapId>,
    core: Option<usize>,
) -> Result<Taken, SnapError> {
    let (chunk, _) = split(segment)?;
    check_chunk(chunk)?;
    let mut prepared = match parent {
        Some(p) => {
            let selection = chain_of(p)?;
            let memory = PagedMemory::new()?;
            let handle = memory.handle();
            let mut prepared = pae::prepare_with_memory(segment, alloc::boxed::Box::new(memory))?;
            restore_into(&mut prepared, handle, &selection)?;
            prepared
        }
        None => pae::prepare(segment)?,
    };
    if prepared.parse_args(&[]).is_err() {
        return Err(SnapError::Segment(segment.into()));
    }
    let pre = before(prepared.main_instance());
    let (outcome, back) = pae::run_keeping(prepared, Vec::new(), core)?;
    match outcome.result {
        Ok(_) => {}
        Err(InvokeError::Trap(t)) => return Err(SnapError::Trap(t.message().into())),
        Err(e) => return Err(SnapError::Trap(alloc::format!("{e}"))),
    }
    let mut prepared =
        back.ok_or_else(|| SnapError::State("the chunk thread kept the task".into()))?;
    let start = cpu::rdtsc();
    let id = with(|s| s.library.reserve_id());
    let mut layer = Layer::new(id, segment.into(), parent, 0);
    capture(prepared.main_instance(), &pre, &mut layer, |_, bytes| {
        SnapFrame::with_bytes(bytes)
            .map(Arc::new)
            .ok_or(PagedError::OutOfFrames)
    })?;
    let capture_cycles = cpu::rdtsc() - start;
    layer.run_cycles = outcome.run_cycles;
    layer.weight_permille = weights().get(segment).copied().unwrap_or(0);
    let taken = Taken {
        id,
        segment: segment.into(),
        parent,
        pages: layer.pages.len() as u64,
        bytes: layer.size_bytes(),
        run_cycles: outcome.run_cycles,
        capture_cycles,
        core: outcome.core,
    };
    with(|s| {
        s.takes += 1;
        s.library.insert(layer)
    })
    .map_err(SnapError::Library)?;
    drop(prepared);
    Ok(taken)
}

/// Drops snapshot `id` and everything built on it; returns the ids dropped. Instances
/// restored from them keep their pages until they end.
pub fn drop_snapshot(id: SnapId) -> Result<Vec<SnapId>, SnapError> {
    let gone = with(|s| s.library.remove(id)).map_err(SnapError::Library)?;
    Ok(gone.iter().map(|l| l.id).collect())
}

/// One snapshot, for `snap list`.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Id.
    pub id: SnapId,
    /// Segment.
    pub segment: String,
    /// Built on.
    pub parent: Option<SnapId>,
    /// Pages.
    pub pages: u64,
    /// Bytes.
    pub bytes: u64,
    /// Weight (permille).
    pub weight_permille: u32,
    /// Cycles the segment ran when captured.
    pub run_cycles: u64,
    /// FNV-1a 64 over its pages (index and contents): never changes while it lives.
    pub checksum: u64,
    /// Changed globals and table entries.
    pub globals: u64,
    /// Changed table entries.
    pub table_entries: u64,
    /// Wasm pages of memory afterwards.
    pub memory_pages: u64,
}

/// Every snapshot (weights refreshed from the analyzer first).
pub fn list() -> Vec<Listed> {
    let w = weights();
    with(|s| {
        for (seg, weight) in &w {
            s.library.set_weight(seg, *weight);
        }
        s.library
            .iter()
            .map(|l| Listed {
                id: l.id,
                segment: l.segment.clone(),
                parent: l.parent,
                pages: l.pages.len() as u64,
                bytes: l.size_bytes(),
                weight_permille: l.weight_permille,
                run_cycles: l.run_cycles,
                checksum: l.pages.iter().fold(0xcbf2_9ce4_8422_2325, |h, (i, p)| {
                    paged::fnv(p.bytes(), paged::fnv(&i.to_le_bytes(), h))
                }),
                globals: l.globals.len() as u64,
                table_entries: l.table.len() as u64,
                memory_pages: l.memory_pages,
            })
            .collect()
    })
}

/// Library-wide figures.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Snapshots kept.
    pub snapshots: u64,
    /// Bytes they hold.
    pub bytes: u64,
    /// Snapshots taken since boot.
    pub takes: u64,
    /// Restores since boot.
    pub restores: u64,
    /// Requests that ran (part of) their path instead.
    pub path_runs: u64,
    /// Pages copied on write since boot.
    pub pages_copied: u64,
    /// Pages mapped shared since boot.
    pub pages_shared: u64,
    /// Segment weights (permille).
    pub weights: Vec<(String, u32)>,
    /// Per task: runs recorded and predicted path.
    pub paths: Vec<(String, u64, Vec<String>)>,
}

/// Current figures.
pub fn stats() -> Stats {
    let w = weights();
    let (copied, shared) = paged::totals();
    let tasks = with(|s| s.analyzer.tasks());
    let paths = tasks
        .into_iter()
        .map(|(t, runs)| {
            let path = predicted_path(&t).map(|p| p.0).unwrap_or_default();
            (t, runs, path)
        })
        .collect();
    with(|s| Stats {
        snapshots: s.library.len() as u64,
        bytes: s.library.size_bytes(),
        takes: s.takes,
        restores: s.restores,
        path_runs: s.path_runs,
        pages_copied: copied,
        pages_shared: shared,
        weights: w.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        paths,
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
) -> Result<pae::Started, SnapError> {
    let (prepared, args, _, _, _) = prepare_request(task, words, snapshots)?;
    Ok(pae::start_on_thread(prepared, args, core)?)
}

type PreparedRequest = (
    Prepared,
    Vec<u64>,
    Option<MemoryHandle>,
    Restored,
    (Vec<String>, PathSource),
);

/// The request's instances, restored (or not) and with the rest of its path to run.
fn prepare_request(
    task: &str,
    words: &[String],
    snapshots: bool,
) -> Result<PreparedRequest, SnapError> {
    let (chunk, _) = split(task)?;
    check_chunk(chunk)?;
    let (path, source) = predicted_path(task)?;
    crate::predict::on_request(task);
    let (mut prepared, handle, restored) = if snapshots {
        let memory = PagedMemory::new()?;
        let handle = memory.handle();
        let mut prepared = pae::prepare_with_memory(task, alloc::boxed::Box::new(memory))?;
        let names: Vec<&str> = path.iter().map(String::as_str).collect();
        let selection = with(|s| s.library.select(&names));
        let restored = restore_into(&mut prepared, handle, &selection)?;
        (prepared, Some(handle), restored)
    } else {
        (pae::prepare(task)?, None, Restored::default())
    };
    let args = prepared.parse_args(words)?;
    let module = prepared.main_instance().module().clone();
    let funcs: Vec<u32> = path[restored.covered..]
        .iter()
        .filter_map(|s| {
            s.split_once('.')
                .and_then(|(_, e)| module.desc.export_func(e))
        })
        .collect();
    prepared.set_path(funcs);
    Ok((prepared, args, handle, restored, (path, source)))
}

/// Runs `task` with `words` as arguments: with snapshots on, restored from the snapshots its
/// predicted path selects (the rest of the path runs); off, after running the whole path.
pub fn run(
    task: &str,
    words: &[String],
    snapshots: bool,
    core: Option<usize>,
) -> Result<RunReport, SnapError> {
    let start = cpu::rdtsc();
    let (prepared, args, handle, restored, (path, source)) =
        prepare_request(task, words, snapshots)?;
    let rest = &path[restored.covered..];
    let (outcome, back) = pae::run_keeping(prepared, args, core)?;
    let total_cycles = cpu::rdtsc() - start;
    let mut prepared =
        back.ok_or_else(|| SnapError::State("the chunk thread kept the task".into()))?;
    crate::predict::on_finished(task, outcome.run_cycles, outcome.result.is_ok());
    record_reach(task, &mut prepared);
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

/// Plans a refresh under `policy` with the current weights, drops what it says, and returns
/// the plan (the segments to take are taken by [`refresh_worker`] in the background).
pub fn refresh(policy: RefreshPolicy) -> RefreshPlan {
    let w = weights();
    let plan = with(|s| plan_refresh(&mut s.library, &w, policy));
    for &id in &plan.drop {
        let _ = drop_snapshot(id);
    }
    plan
}

/// Segments waiting for the background generator.
static PENDING: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Queues `segments` and starts a generator thread on the least-loaded core, which takes
/// them one by one (each segment runs on a chunk thread of the least-loaded core).
pub fn generate_in_background(segments: Vec<String>) -> Result<Option<usize>, ThreadError> {
    if segments.is_empty() {
        return Ok(None);
    }
    PENDING.lock().extend(segments);
    crate::sched::spawn("snapshot generator", None, refresh_worker, 0).map(Some)
}

/// The generator thread: takes every pending segment.
pub fn refresh_worker(_: u64) {
    loop {
        let next = PENDING.lock().pop();
        let Some(segment) = next else {
            return;
        };
        match take(&segment, None, None) {
            Ok(t) => log::info!("snapshot {} of {} taken in the background", t.id, t.segment),
            Err(e) => log::warn!("snapshot of {segment}: {e}"),
        }
    }
}
