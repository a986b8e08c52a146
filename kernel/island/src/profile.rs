//! What an island does: calls and block counts (from the generated block counters), sampled
//! cycles (an interrupted RIP attributed to the island containing it), rates over the last
//! window, dependencies (from call sites) and the relocation priority.
//!
//! Feeding (`feed_counters`, `record_sample`, `close_window`) never allocates, so the kernel may
//! call it from a timer tick.

use alloc::vec::Vec;

use atoll_pae::{CallTarget, Libcall};

use crate::island::{IslandId, IslandSet, ModuleId};

/// Counts and rates of one island.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Profile {
    /// Calls of its functions (sum of their entry counters), cumulative.
    pub calls: u64,
    /// Executions of its blocks (sum of its counters), cumulative.
    pub block_count: u64,
    /// Cycles attributed to it by sampling, cumulative.
    pub sampled_cycles: u64,
    /// Samples that landed in it.
    pub samples: u64,
    /// Calls per second over the last closed window.
    pub calls_per_second: u64,
    /// Sampled cycles per second over the last closed window.
    pub cycles_per_second: u64,
    /// Moves committed during the last closed window.
    pub moves_last_window: u32,
    window_calls: u64,
    window_cycles: u64,
    moves_in_window: u32,
}

impl Profile {
    /// Sampled cycles per call, when it was called at all.
    pub fn cycles_per_call(&self) -> Option<u64> {
        self.sampled_cycles.checked_div(self.calls)
    }

    /// Relocation priority: sampled cycles per second over the last window, divided by one
    /// plus the moves it made in that window. Hot islands come first; an island that just
    /// moved is damped so that two environments cannot ping-pong it. 0 when it did not run.
    pub fn priority(&self) -> u64 {
        self.cycles_per_second / (1 + u64::from(self.moves_last_window))
    }

    /// Takes in the figures of an island merged into this one (its calls and blocks come
    /// back from the counters of the functions it brought, so they are added too, keeping the
    /// window's rates continuous).
    pub(crate) fn absorb(&mut self, other: &Profile) {
        self.calls = self.calls.wrapping_add(other.calls);
        self.block_count = self.block_count.wrapping_add(other.block_count);
        self.sampled_cycles = self.sampled_cycles.wrapping_add(other.sampled_cycles);
        self.samples += other.samples;
        self.calls_per_second += other.calls_per_second;
        self.cycles_per_second += other.cycles_per_second;
        self.window_calls = self.window_calls.wrapping_add(other.window_calls);
        self.window_cycles = self.window_cycles.wrapping_add(other.window_cycles);
    }

    /// The figures of a part split off this island: samples name the island, not the
    /// function, so the sampled cycles stay with the part that keeps the id and the new one
    /// counts from the split; calls and blocks are the counters' to set (the next feed, after
    /// which both parts restart their rate window).
    pub(crate) fn split_off(&self) -> Profile {
        Profile {
            moves_last_window: self.moves_last_window,
            moves_in_window: self.moves_in_window,
            ..Profile::default()
        }
    }

    /// Starts the rate window over from the figures as they are now (after a split, once the
    /// counters gave each part its calls).
    pub fn restart_window(&mut self) {
        self.window_calls = self.calls;
        self.window_cycles = self.sampled_cycles;
    }

    pub(crate) fn note_move(&mut self) {
        self.moves_in_window = self.moves_in_window.saturating_add(1);
    }
}

/// What an island depends on, from its call sites.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dependencies {
    /// Islands it calls directly (ascending, without itself).
    pub calls: Vec<IslandId>,
    /// Islands that call it directly (ascending, without itself).
    pub called_by: Vec<IslandId>,
    /// Bit `n` set: it calls runtime helper `Libcall` number `n`.
    pub libcalls: u64,
    /// Imported functions it calls (their thunks are islands too; these are the thunks'
    /// imports when the island holds thunks).
    pub imports: Vec<u32>,
    /// It makes `call_indirect` calls (targets known only at run time).
    pub indirect_calls: bool,
}

impl Dependencies {
    /// Whether it calls helper `l`.
    pub fn uses_libcall(&self, l: Libcall) -> bool {
        self.libcalls & (1 << (l as u32)) != 0
    }
}

impl IslandSet {
    /// Recomputes the dependencies of every island of `module` from its call sites.
    pub(crate) fn rebuild_dependencies(&mut self, module: ModuleId) {
        // Retired islands (a merge may leave one with its old layout) call nothing.
        let ids: Vec<IslandId> = self
            .islands
            .iter()
            .filter(|i| i.module == module && !i.retired)
            .map(|i| i.id)
            .collect();
        for &id in &ids {
            let mut deps = Dependencies::default();
            for f in &self.islands[id.0 as usize].layout.funcs {
                for c in &f.calls {
                    match c.target {
                        CallTarget::Func(j) | CallTarget::Cell(j) => {
                            if let Some(callee) = self.island_of(module, j)
                                && callee != id
                                && !deps.calls.contains(&callee)
                            {
                                deps.calls.push(callee);
                            }
                        }
                        CallTarget::Indirect(_) => deps.indirect_calls = true,
                        CallTarget::Libcall(l) => deps.libcalls |= 1 << (l as u32),
                        CallTarget::Import(n) | CallTarget::ImportWasm(n) => {
                            if !deps.imports.contains(&n) {
                                deps.imports.push(n);
                            }
                        }
                    }
                }
            }
            deps.calls.sort_unstable();
            deps.imports.sort_unstable();
            self.islands[id.0 as usize].deps = deps;
        }
        for &id in &ids {
            let mut called_by: Vec<IslandId> = ids
                .iter()
                .copied()
                .filter(|&c| self.islands[c.0 as usize].deps.calls.contains(&id))
                .collect();
            called_by.sort_unstable();
            self.islands[id.0 as usize].deps.called_by = called_by;
        }
    }

    /// Sets calls and block counts of `module`'s islands from its block counters (cumulative
    /// values, one per `CompiledModule::counter_slots` entry, summed over its instances). The
    /// first counter of each function sits in its prologue, so it counts the calls.
    pub fn feed_counters(&mut self, module: ModuleId, counters: &[u64]) {
        for island in self.islands.iter_mut().filter(|i| i.module == module) {
            let (mut calls, mut blocks) = (0u64, 0u64);
            for f in &island.layout.funcs {
                let slots = f.counter_slots.start as usize..f.counter_slots.end as usize;
                if let Some(cs) = counters.get(slots) {
                    calls = calls.wrapping_add(cs.first().copied().unwrap_or(0));
                    blocks = cs.iter().fold(blocks, |a, &c| a.wrapping_add(c));
                }
            }
            island.profile.calls = calls;
            island.profile.block_count = blocks;
        }
    }

    /// Attributes `cycles` to the island containing the interrupted `rip` (binary search, no
    /// allocation). Returns it, or `None` when `rip` is not in an island.
    pub fn record_sample(&mut self, rip: u64, cycles: u64) -> Option<IslandId> {
        let id = self.island_at(rip)?;
        let p = &mut self.islands[id.0 as usize].profile;
        p.sampled_cycles = p.sampled_cycles.wrapping_add(cycles);
        p.samples += 1;
        Some(id)
    }

    /// Closes the current measurement window, `elapsed_ticks` long on a clock of
    /// `ticks_per_second`: computes every island's rates and starts the next window.
    pub fn close_window(&mut self, elapsed_ticks: u64, ticks_per_second: u64) {
        let per_second = |delta: u64| {
            if elapsed_ticks == 0 {
                return 0;
            }
            let v = u128::from(delta) * u128::from(ticks_per_second) / u128::from(elapsed_ticks);
            u64::try_from(v).unwrap_or(u64::MAX)
        };
        for island in &mut self.islands {
            let p = &mut island.profile;
            p.calls_per_second = per_second(p.calls.saturating_sub(p.window_calls));
            p.cycles_per_second = per_second(p.sampled_cycles.wrapping_sub(p.window_cycles));
            p.moves_last_window = p.moves_in_window;
            p.window_calls = p.calls;
            p.window_cycles = p.sampled_cycles;
            p.moves_in_window = 0;
        }
    }

    /// Island ids by descending priority (ties: lower id first).
    pub fn by_priority(&self) -> Vec<IslandId> {
        let mut ids: Vec<IslandId> = self.live_islands().map(|i| i.id).collect();
        ids.sort_by_key(|&id| {
            (
                core::cmp::Reverse(self.islands[id.0 as usize].profile.priority()),
                id,
            )
        });
        ids
    }
}
