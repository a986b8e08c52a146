//! Monitoring: once per window, what every island and every core did since the last window.
//! Islands: calls and block counts (the generated block counters, running instances
//! included), sampled cycles (timer ticks that interrupted it, per core), and the core its
//! threads are on. Cores: load (the share of the window their idle thread did not run) and
//! how many threads they hold. The cost is one pass over the islands and one over the threads
//! per window, on the engine's thread; the timer tick only adds one atomic per sample.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use atoll_relocmodel::fixed::{ONE, ratio};
use atoll_relocmodel::outcome::WindowRate;

use crate::arch::cpu;
use crate::island::observe::{self, TRACK_CORES};
use crate::{sched, smp, time};

/// One island over one window.
#[derive(Debug, Clone)]
pub struct IslandWindow {
    /// Island id.
    pub id: u32,
    /// `chunk.export` of the task entering through it, or `chunk` for other islands.
    pub label: String,
    /// Tasks enter through it (its threads follow it to another core).
    pub entry: bool,
    /// Calls in the window.
    pub calls: u64,
    /// Block executions in the window.
    pub blocks: u64,
    /// Sampled cycles in the window.
    pub cycles: u64,
    /// Home core.
    pub home: Option<u32>,
    /// The core most of its threads are on (entry islands), else where most of its samples
    /// fell this window, else its home core.
    pub run_core: Option<u32>,
    /// Threads of tasks entering through it.
    pub threads: u32,
    /// In the 2 MiB page.
    pub large_page: bool,
    /// NUMA node of its environment.
    pub node: Option<u32>,
    /// Its module.
    pub module: u32,
    /// Code bytes.
    pub bytes: u32,
    /// Its functions in code order, with their calls in the window.
    pub parts: Vec<(u32, u64)>,
    /// Islands it calls directly.
    pub calls_islands: Vec<u32>,
}

/// One core over one window.
#[derive(Debug, Clone, Copy)]
pub struct CoreWindow {
    /// Core number.
    pub core: u32,
    /// Busy share of the window, Q16.
    pub load: i64,
    /// Threads of tasks on it at the end of the window.
    pub task_threads: u32,
}

/// One window.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Its number (from 1).
    pub index: u64,
    /// TSC at its end.
    pub tsc: u64,
    /// Its length in TSC ticks.
    pub elapsed: u64,
    /// TSC ticks per second.
    pub hz: u64,
    /// Every island that ran or has an environment of its own.
    pub islands: Vec<IslandWindow>,
    /// Every online core.
    pub cores: Vec<CoreWindow>,
}

impl Window {
    /// Island `id`'s rate over the window (all zero if it is not listed).
    pub fn rate(&self, id: u32) -> WindowRate {
        let w = self.islands.iter().find(|i| i.id == id);
        WindowRate {
            calls: w.map_or(0, |i| i.calls),
            cycles: w.map_or(0, |i| i.cycles),
            elapsed_ticks: self.elapsed,
            ticks_per_second: self.hz,
        }
    }

    /// Island `id` in this window.
    pub fn island(&self, id: u32) -> Option<&IslandWindow> {
        self.islands.iter().find(|i| i.id == id)
    }
}

#[derive(Debug, Clone, Default)]
struct Prev {
    calls: u64,
    blocks: u64,
    cycles: u64,
    per_core: [u64; TRACK_CORES],
    funcs: Vec<(u32, u64)>,
}

/// The sampler's memory of the previous window.
#[derive(Debug, Default)]
pub struct Monitor {
    prev: BTreeMap<u32, Prev>,
    prev_idle: [u64; TRACK_CORES],
    prev_tsc: u64,
    index: u64,
}

impl Monitor {
    /// Island `id` changed shape (merged or split): its next window starts from its figures
    /// then, not from what it counted before.
    pub fn forget(&mut self, id: u32) {
        self.prev.remove(&id);
    }

    /// Closes the current window and returns it.
    pub fn sample(&mut self) -> Window {
        let now = cpu::rdtsc();
        let elapsed = now.saturating_sub(self.prev_tsc).max(1);
        let first = self.prev_tsc == 0;
        self.prev_tsc = now;
        self.index += 1;
        // Task threads per `chunk.export`, per core.
        let mut tasks: BTreeMap<String, [u32; TRACK_CORES]> = BTreeMap::new();
        let mut per_core_tasks = [0u32; TRACK_CORES];
        for t in sched::list() {
            let Some(task) = t.name.strip_prefix("task ") else {
                continue;
            };
            if t.core < TRACK_CORES {
                tasks.entry(task.into()).or_default()[t.core] += 1;
                per_core_tasks[t.core] += 1;
            }
        }
        let mut islands = Vec::new();
        for s in observe::snapshot() {
            let per_core = observe::core_cycles(s.id);
            let now = Prev {
                calls: s.calls,
                blocks: s.blocks,
                cycles: s.sampled_cycles,
                per_core,
                funcs: s.funcs.clone(),
            };
            let p = self.prev.insert(s.id, now.clone());
            let p = if first { None } else { p };
            let p = p.unwrap_or(now);
            let calls = s.calls.saturating_sub(p.calls);
            let parts = s
                .funcs
                .iter()
                .map(|&(f, c)| {
                    let before = p.funcs.iter().find(|x| x.0 == f).map_or(c, |x| x.1);
                    (f, c.saturating_sub(before))
                })
                .collect();
            let entry = !s.exports.is_empty();
            if calls == 0 && !entry && s.core.is_none() && !s.large_page {
                continue;
            }
            let label = match s.exports.first() {
                Some(e) => alloc::format!("{}.{e}", s.chunk),
                None => s.chunk.clone(),
            };
            let counts = s
                .exports
                .iter()
                .filter_map(|e| tasks.get(&alloc::format!("{}.{e}", s.chunk)))
                .fold([0u32; TRACK_CORES], |mut acc, c| {
                    for (a, n) in acc.iter_mut().zip(c) {
                        *a += n;
                    }
                    acc
                });
            let threads: u32 = counts.iter().sum();
            let by_threads = (threads > 0).then(|| argmax(&counts.map(u64::from)));
            let sampled: [u64; TRACK_CORES] =
                core::array::from_fn(|c| per_core[c].saturating_sub(p.per_core[c]));
            let by_samples = (sampled.iter().any(|&c| c > 0)).then(|| argmax(&sampled));
            islands.push(IslandWindow {
                id: s.id,
                label,
                entry,
                calls,
                blocks: s.blocks.saturating_sub(p.blocks),
                cycles: s.sampled_cycles.saturating_sub(p.cycles),
                home: s.core,
                run_core: by_threads.or(by_samples).or(s.core),
                threads,
                large_page: s.large_page,
                node: s.node,
                module: s.module,
                bytes: s.bytes,
                parts,
                calls_islands: s.calls_islands,
            });
        }
        let mut cores = Vec::new();
        for c in smp::online_cores().filter(|&c| c < TRACK_CORES) {
            let idle = sched::idle_cycles(c);
            let idle_delta = idle.saturating_sub(self.prev_idle[c]);
            self.prev_idle[c] = idle;
            let busy = elapsed.saturating_sub(idle_delta);
            cores.push(CoreWindow {
                core: c as u32,
                load: if first {
                    0
                } else {
                    ratio(busy, elapsed).min(ONE)
                },
                task_threads: per_core_tasks[c],
            });
        }
        Window {
            index: self.index,
            tsc: now,
            elapsed,
            hz: time::tsc_hz(),
            islands,
            cores,
        }
    }
}

fn argmax(v: &[u64; TRACK_CORES]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}
