//! Predictive snapshots in the kernel (issue 14; `docs/snapshots.md`): the library of layers
//! (pages in frames of their own), the generator (runs a segment in a scratch instance on a
//! chunk thread and captures what it changed), the selector and the layered copy-on-write
//! restore, and the analyzer fed from the block counters of every snapshot-aware run.
//!
//! The pure logic is `atoll-snapshot`; copy-on-write memory is [`paged`].

mod generate;
#[allow(unsafe_code)]
pub mod paged;
pub mod replay;
mod request;
pub mod verify;

pub use generate::{generate_in_background, take};
pub use request::{RunReport, run, start};

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use atoll_snapshot::analyzer::{Analyzer, RefreshPlan, RefreshPolicy, plan_refresh};
use atoll_snapshot::instance::SnapError as CaptureError;
use atoll_snapshot::library::{Library, LibraryError};
use atoll_snapshot::{SnapId, is_init_export};
use spin::Mutex;

use crate::arch::cpu;
use crate::chunks::{self, Loaded};
use crate::pae::{self, PaeError, Prepared};
use crate::sched::ThreadError;
use paged::{PagedError, SnapFrame};

/// A snapshot page: a frame shared by the library and every instance restored from it.
pub type Page = Arc<SnapFrame>;

/// Why a snapshot operation failed.
#[derive(Debug)]
pub enum SnapError {
    /// Preparing the task failed.
    Pae(PaeError),
    /// The segment is not `CHUNK.EXPORT` of an export without parameters.
    Segment(String),
    /// The chunk imports from other chunks or is in a linked group: its state is not its own.
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
    /// A workload trace could not be replayed.
    Trace(String),
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
                "chunk `{c}` imports from other chunks or shares state with them; snapshots \
                 cover chunks whose state is their own"
            ),
            Self::Trap(t) => write!(f, "trap: {t}"),
            Self::Thread(e) => write!(f, "chunk thread: {e}"),
            Self::State(e) => write!(f, "{e}"),
            Self::Library(e) => write!(f, "{e}"),
            Self::Paged(e) => write!(f, "{e}"),
            Self::Trace(e) => write!(f, "{e}"),
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

/// The exception hook: memory probes first, then demand paging and copy-on-write faults of
/// paged memories, then out-of-bounds accesses of guard-page code (`crate::guard`).
pub fn exception_hook(frame: &mut crate::arch::trap::TrapFrame) -> bool {
    if crate::arch::probe::fixup(frame) {
        return true;
    }
    if frame.vector != crate::arch::idt::Exception::PageFault as u64 {
        return false;
    }
    match paged::on_page_fault(cpu::cr2(), frame.error_code) {
        paged::Fault::Handled => true,
        fault => crate::guard::on_fault(frame, fault),
    }
}

fn split(segment: &str) -> Result<(&str, &str), SnapError> {
    segment
        .split_once('.')
        .filter(|(c, e)| !c.is_empty() && !e.is_empty())
        .ok_or_else(|| SnapError::Segment(segment.into()))
}

/// A segment's task (`chunk.export`) and argument words (`chunk.export ARG...`).
fn segment_parts(segment: &str) -> (&str, Vec<String>) {
    let mut words = segment.split_whitespace();
    let task = words.next().unwrap_or("");
    (task, words.map(String::from).collect())
}

/// The export a segment calls and its raw arguments, checked against the export's signature.
fn segment_call(segment: &str) -> Result<(u32, Vec<u64>), SnapError> {
    let (task, words) = segment_parts(segment);
    let (chunk, export) = split(task)?;
    let Loaded::Ready { image, .. } = chunks::loaded() else {
        return Err(PaeError::NoImage.into());
    };
    let view = image
        .chunk(chunk)
        .ok_or_else(|| PaeError::NoChunk(chunk.into()))?;
    let sig = &view
        .manifest
        .exports
        .iter()
        .find(|e| e.name == export)
        .ok_or_else(|| PaeError::NoExport(task.into()))?
        .sig;
    if sig.params.len() != words.len() {
        return Err(SnapError::Segment(segment.into()));
    }
    let args = words
        .iter()
        .zip(&sig.params)
        .map(|(w, ty)| chunk_image::Value::parse(w, *ty).map(chunk_image::Value::to_bits))
        .collect::<Option<Vec<u64>>>()
        .ok_or_else(|| SnapError::Segment(segment.into()))?;
    let (desc, _) = atoll_pae::reach::analyze(view.module)
        .map_err(|e| SnapError::Pae(PaeError::Compile(chunk.into(), e)))?;
    let f = desc
        .export_func(export)
        .ok_or_else(|| PaeError::NoExport(task.into()))?;
    Ok((f, args))
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

/// The error for a task whose instance is a linked group's (`check_chunk` keeps them out).
pub(crate) fn shared_state() -> SnapError {
    SnapError::State("the task runs in a linked group's instances".into())
}

fn check_chunk(chunk: &str) -> Result<(), SnapError> {
    // A chunk of a linked group shares its state with the group (its instance is the group's).
    if pae::dependency_order(chunk)?.len() > 1 || pae::group::of(chunk)?.is_some() {
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
    /// The chunk imports from other chunks: no path (its state is not its own).
    Providers,
}

impl PathSource {
    /// Name for the console.
    pub fn name(self) -> &'static str {
        match self {
            Self::Profile => "profile",
            Self::CallGraph => "call-graph",
            Self::Providers => "providers",
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
    let Some(inst) = prepared.main_instance() else {
        return;
    };
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
    /// The client whose library holds it (`None`: shared).
    pub client: Option<String>,
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
                client: l.client.clone(),
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

/// Automatic refresh: the policy, and every how many snapshot-aware requests it runs.
static AUTO: Mutex<Option<(RefreshPolicy, u64)>> = Mutex::new(None);
static AUTO_COUNT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Turns automatic refresh on (every `every` snapshot-aware requests, with `policy`) or off.
pub fn set_auto(auto: Option<(RefreshPolicy, u64)>) {
    *AUTO.lock() = auto.map(|(p, every)| (p, every.max(1)));
    AUTO_COUNT.store(0, core::sync::atomic::Ordering::Relaxed);
}

/// The automatic refresh setting.
pub fn auto() -> Option<(RefreshPolicy, u64)> {
    *AUTO.lock()
}

/// After a snapshot-aware request: refreshes when automatic refresh is due (the segments to
/// take go to the background generator).
fn after_request() {
    let Some((policy, every)) = auto() else {
        return;
    };
    let n = AUTO_COUNT.fetch_add(1, core::sync::atomic::Ordering::Relaxed) + 1;
    if n.is_multiple_of(every) {
        let plan = refresh(policy);
        if let Err(e) = generate_in_background(plan.take) {
            log::warn!("automatic refresh: no generator thread: {e}");
        }
    }
}

/// Plans a refresh under `policy` with the current weights, drops what it says, and returns
/// the plan (the segments to take are for [`generate_in_background`]).
pub fn refresh(policy: RefreshPolicy) -> RefreshPlan {
    let w = weights();
    let plan = with(|s| plan_refresh(&mut s.library, &w, policy));
    for &id in &plan.drop {
        let _ = drop_snapshot(id);
    }
    plan
}
