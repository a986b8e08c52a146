//! What the predictive relocation engine (`crate::autoreloc`) reads of the islands: a cheap
//! snapshot of every live island's counters and environment, the cycles each core's timer
//! samples attributed to each island (kept by the tick in a fixed table of atomics: no lock,
//! no allocation), and which island a task enters through.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use atoll_island::{IslandId, PageSize};
use atoll_pae::module::ExternalKind;

use super::{feed_live, module_counters, with};

/// Islands whose per-core samples are kept (ids at or above are not tracked per core).
pub const TRACK_ISLANDS: usize = 1024;
/// Cores whose samples are kept per island.
pub const TRACK_CORES: usize = 8;

static CORE_CYCLES: [[AtomicU64; TRACK_CORES]; TRACK_ISLANDS] =
    [const { [const { AtomicU64::new(0) }; TRACK_CORES] }; TRACK_ISLANDS];

/// The tick on `core` attributed `cycles` to island `id` (called from the timer interrupt:
/// one relaxed atomic add).
pub fn note_core_sample(core: usize, id: IslandId, cycles: u64) {
    if let Some(row) = CORE_CYCLES.get(id.0 as usize)
        && let Some(cell) = row.get(core)
    {
        cell.fetch_add(cycles, Ordering::Relaxed);
    }
}

/// Sampled cycles of island `id` on each tracked core, cumulative.
pub fn core_cycles(id: u32) -> [u64; TRACK_CORES] {
    let mut out = [0; TRACK_CORES];
    if let Some(row) = CORE_CYCLES.get(id as usize) {
        for (o, c) in out.iter_mut().zip(row) {
            *o = c.load(Ordering::Relaxed);
        }
    }
    out
}

/// One island's counters and environment now.
#[derive(Debug, Clone)]
pub struct IslandSample {
    /// Island id.
    pub id: u32,
    /// Its chunk.
    pub chunk: String,
    /// Exports it holds (tasks enter through it), empty if none.
    pub exports: Vec<String>,
    /// Calls, cumulative (finished tasks and running instances).
    pub calls: u64,
    /// Block executions, cumulative.
    pub blocks: u64,
    /// Sampled cycles, cumulative.
    pub sampled_cycles: u64,
    /// Home core.
    pub core: Option<u32>,
    /// Its environment records a 2 MiB page.
    pub large_page: bool,
    /// Its environment's NUMA node.
    pub node: Option<u32>,
    /// Its module.
    pub module: u32,
    /// Code bytes.
    pub bytes: u32,
    /// Its functions in code order, with their calls (cumulative, from their entry counters).
    pub funcs: Vec<(u32, u64)>,
    /// Islands it calls directly.
    pub calls_islands: Vec<u32>,
}

/// Every live island now (running instances' counters included).
pub fn snapshot() -> Vec<IslandSample> {
    with(|k| {
        feed_live(k);
        let counters: Vec<Vec<u64>> = (0..k.modules.len())
            .map(|m| {
                if k.modules[m].assembled.is_some() {
                    module_counters(k, m)
                } else {
                    Vec::new()
                }
            })
            .collect();
        k.set
            .live_islands()
            .filter_map(|i| {
                let m = &k.modules[i.module.0 as usize];
                let assembled = m.assembled.as_ref()?;
                let exports = assembled
                    .module
                    .desc
                    .exports
                    .iter()
                    .filter(|e| {
                        e.kind == ExternalKind::Func && i.func_indices().any(|f| f == e.index)
                    })
                    .map(|e| e.name.clone())
                    .collect();
                Some(IslandSample {
                    id: i.id.0,
                    chunk: m.chunk.clone(),
                    exports,
                    calls: i.profile.calls,
                    blocks: i.profile.block_count,
                    sampled_cycles: i.profile.sampled_cycles,
                    core: i.env.core,
                    large_page: i.env.page_size == PageSize::Size2M,
                    node: i.env.numa_node,
                    module: i.module.0,
                    bytes: i.layout.len,
                    funcs: i
                        .layout
                        .funcs
                        .iter()
                        .map(|f| {
                            let calls = counters[i.module.0 as usize]
                                .get(f.counter_slots.start as usize)
                                .filter(|_| !f.counter_slots.is_empty())
                                .copied()
                                .unwrap_or(0);
                            (f.index, calls)
                        })
                        .collect(),
                    calls_islands: i.deps.calls.iter().map(|d| d.0).collect(),
                })
            })
            .collect()
    })
}

/// The island task `chunk.export` enters through, with its home core.
pub fn entry_of(chunk: &str, export: &str) -> Option<(u32, Option<u32>)> {
    with(|k| {
        let (mi, m) = k
            .modules
            .iter()
            .enumerate()
            .find(|(_, m)| m.assembled.is_some() && m.chunk == chunk)?;
        let e = m
            .assembled
            .as_ref()?
            .module
            .desc
            .exports
            .iter()
            .find(|e| e.kind == ExternalKind::Func && e.name == export)?;
        let id = k
            .set
            .island_of(atoll_island::ModuleId(mi as u32), e.index)?;
        let island = k.set.island(id)?;
        Some((id.0, island.env.core))
    })
}
