//! The snapshot generator: runs a segment in a scratch instance on a chunk thread and keeps
//! what it changed as a layer; the background generator thread for `snap refresh`.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use atoll_pae::runtime::InvokeError;
use atoll_snapshot::SnapId;
use atoll_snapshot::instance::{before, capture};
use atoll_snapshot::layer::Layer;
use spin::Mutex;

use super::paged::{PagedError, PagedMemory, SnapFrame};
use super::request::{chain_of, restore_into};
use super::{SnapError, check_chunk, segment_parts, shared_state, split, weights, with};
use crate::arch::cpu;
use crate::pae;
use crate::sched::ThreadError;

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

/// Runs `segment` (`chunk.export`, with argument words for a client's segment) in a scratch
/// instance (restored from `parent` and its chain, if given) on a chunk thread on `core` (or
/// the least-loaded core) and keeps what it changed as a snapshot, in `client`'s library or
/// the shared one.
pub fn take(
    segment_text: &str,
    parent: Option<SnapId>,
    core: Option<usize>,
    client: Option<&str>,
) -> Result<Taken, SnapError> {
    let (segment, words) = segment_parts(segment_text);
    let (chunk, _) = split(segment)?;
    check_chunk(chunk)?;
    if !words.is_empty() && client.is_none() {
        // Shared segments are what paths name: exports without arguments.
        return Err(SnapError::Segment(segment_text.into()));
    }
    if let (Some(p), Some(c)) = (parent, client) {
        let visible = with(|s| {
            s.library
                .get(p)
                .is_some_and(|l| l.client.is_none() || l.client.as_deref() == Some(c))
        });
        if !visible {
            return Err(SnapError::State(alloc::format!(
                "snapshot {p} belongs to another client"
            )));
        }
    }
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
    let Ok(args) = prepared.parse_args(&words) else {
        return Err(SnapError::Segment(segment_text.into()));
    };
    let pre = before(prepared.main_instance().ok_or_else(shared_state)?);
    let (outcome, back) = pae::run_keeping(prepared, args, core)?;
    match outcome.result {
        Ok(_) => {}
        Err(InvokeError::Trap(t)) => return Err(SnapError::Trap(t.message().into())),
        Err(e) => return Err(SnapError::Trap(alloc::format!("{e}"))),
    }
    let mut prepared =
        back.ok_or_else(|| SnapError::State("the chunk thread kept the task".into()))?;
    let start = cpu::rdtsc();
    let id = with(|s| s.library.reserve_id());
    let mut layer = Layer::new(
        id,
        segment_text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        parent,
        0,
    );
    layer.client = client.map(String::from);
    capture(
        prepared.main_instance().ok_or_else(shared_state)?,
        &pre,
        &mut layer,
        |_, bytes| {
            SnapFrame::with_bytes(bytes)
                .map(Arc::new)
                .ok_or(PagedError::OutOfFrames)
        },
    )?;
    let capture_cycles = cpu::rdtsc() - start;
    layer.run_cycles = outcome.run_cycles;
    layer.weight_permille = weights().get(segment).copied().unwrap_or(0);
    let taken = Taken {
        id,
        segment: layer.segment.clone(),
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

/// Segments waiting for the background generator, and whether its thread is running (both
/// changed together under the lock, so a segment queued as the thread is leaving is not lost).
static PENDING: Mutex<(Vec<String>, bool)> = Mutex::new((Vec::new(), false));

/// Queues `segments` (those not queued yet) and starts the generator thread on the
/// least-loaded core unless it is running; it takes them one by one (each segment runs on a
/// chunk thread of the least-loaded core). Returns the thread started, if one was.
pub fn generate_in_background(segments: Vec<String>) -> Result<Option<usize>, ThreadError> {
    let start = {
        let mut p = PENDING.lock();
        for seg in segments {
            if !p.0.contains(&seg) {
                p.0.push(seg);
            }
        }
        let start = !p.1 && !p.0.is_empty();
        if start {
            p.1 = true;
        }
        start
    };
    if !start {
        return Ok(None);
    }
    crate::sched::spawn("snapshot generator", None, refresh_worker, 0)
        .map(Some)
        .inspect_err(|_| PENDING.lock().1 = false)
}

/// The generator thread: takes every pending segment that has no shared snapshot yet.
pub fn refresh_worker(_: u64) {
    loop {
        let next = {
            let mut p = PENDING.lock();
            let next = p.0.pop();
            if next.is_none() {
                p.1 = false;
            }
            next
        };
        let Some(segment) = next else {
            return;
        };
        let have = with(|s| {
            s.library
                .iter()
                .any(|l| l.segment == segment && l.parent.is_none() && l.client.is_none())
        });
        if have {
            continue;
        }
        match take(&segment, None, None, None) {
            Ok(t) => log::info!("snapshot {} of {} taken in the background", t.id, t.segment),
            Err(e) => log::warn!("snapshot of {segment}: {e}"),
        }
    }
}
