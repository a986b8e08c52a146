//! The engine's state and one step of its loop: close a window, remember what ran in which
//! phase and with what, measure the moves made a window ago and train the model on them,
//! score every candidate move, decide. The moves themselves are made by the caller outside the
//! engine's lock (through `island::reloc`, the stop-the-world protocol), then recorded.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use atoll_relocmodel::decide::{Choice, ChoiceKind, Decider, Policy};
use atoll_relocmodel::error::ErrorTracker;
use atoll_relocmodel::features::Features;
use atoll_relocmodel::fixed::{ONE, ratio};
use atoll_relocmodel::model::Model;
use atoll_relocmodel::outcome::{WindowRate, measure};
use atoll_relocmodel::phase::{CoExec, PhaseMemory, heat_fraction};
use atoll_relocmodel::regroup::{Regroup, RegroupObs, RegroupPolicy, RegroupReason, Regrouper};
use atoll_relocmodel::select::{Candidate, Context, CoreObs, IslandObs, TargetKind, candidates};

use super::log::{Action, Entry, Fate, Log};
use super::monitor::{Monitor, Window};
use crate::island::place::Target;
use crate::island::regroup::RegroupReport;
use crate::island::reloc::MoveReport;

/// Windows a move's measurement waits for its island to run again before it is dropped.
pub const MAX_WAIT_WINDOWS: u32 = 40;
/// Windows in which the island ran that a measurement sums (the window after the move and
/// the next ones), so a few calls more or less do not swing the rate.
pub const MEASURE_WINDOWS: u32 = 3;
/// Moves per window of the prediction-error series.
pub const ERROR_WINDOW_MOVES: u32 = 4;
/// The console's core: never a target.
pub const CONSOLE_CORE: u32 = 0;

/// A move awaiting its measurement.
#[derive(Debug, Clone)]
struct Pending {
    island: u32,
    seq: u64,
    features: Features,
    predicted: i64,
    before: WindowRate,
    /// The island's remembered heat in each phase when it moved.
    seasonal: Vec<Option<u64>>,
    moved_window: u64,
    waited: u32,
    /// Phase when it moved.
    phase: Option<u32>,
    /// What the island did in the windows after the move in which it ran.
    after: WindowRate,
    after_windows: u32,
    /// Phase of the first window summed into `after`.
    after_phase: Option<u32>,
}

/// Counters for `autoreloc status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// Windows closed.
    pub windows: u64,
    /// Candidates scored.
    pub candidates: u64,
    /// Decisions made (moves tried).
    pub decisions: u64,
    /// Moves completed.
    pub moves: u64,
    /// Moves that failed.
    pub failures: u64,
    /// Moves measured (and trained on).
    pub measured: u64,
    /// Moves whose island did not run again in time.
    pub unmeasured: u64,
    /// Completed moves by kind: core, 2 MiB, 4 KiB, node.
    pub core_moves: u64,
    /// Into the 2 MiB page.
    pub to_large: u64,
    /// Back to 4 KiB pages.
    pub to_small: u64,
    /// To a node's memory.
    pub node_moves: u64,
    /// Completed moves of islands idle in the window before, hot in the next phase.
    pub ahead_of_phase: u64,
    /// Code bytes of the moved copies.
    pub bytes: u64,
    /// Bytes written for them (a reused kept copy needs only the bytes that differ).
    pub bytes_written: u64,
    /// Merges made.
    pub merges: u64,
    /// Splits made.
    pub splits: u64,
    /// Merges and splits that failed.
    pub regroup_failures: u64,
}

/// The engine.
#[derive(Debug)]
pub struct Engine {
    /// The model.
    pub model: Model,
    /// The decision rules.
    pub decider: Decider,
    /// Prediction error.
    pub errors: ErrorTracker,
    /// Heat per phase.
    pub phases: PhaseMemory,
    /// Co-execution of entry islands.
    pub coexec: CoExec,
    /// The decision log.
    pub log: Log,
    /// Counters.
    pub counters: Counters,
    monitor: Monitor,
    pending: Vec<Pending>,
    heat_prev: BTreeMap<u32, i64>,
    history: BTreeMap<u32, (i64, i64)>,
    /// Current phase and windows spent in it.
    phase_now: Option<(u32, u32)>,
    /// The last window, for `status`.
    pub last: Window,
    /// Relocation priority of each island with a candidate in the last window: its best
    /// candidate's predicted benefit (Q16).
    pub priority: BTreeMap<u32, i64>,
    /// The merge and split rules.
    pub regrouper: Regrouper,
    regroup: Option<PlannedRegroup>,
}

impl Default for Engine {
    fn default() -> Self {
        Self {
            model: Model::placement_prior(),
            // Explore every 6 windows (60 ms) after the warm-up: with one move per phase worth
            // making, the model would otherwise see few outcomes.
            decider: Decider::new(Policy {
                explore_every: 6,
                ..Policy::default()
            }),
            errors: ErrorTracker::new(ERROR_WINDOW_MOVES),
            phases: PhaseMemory::default(),
            coexec: CoExec::default(),
            log: Log::default(),
            counters: Counters::default(),
            monitor: Monitor::default(),
            pending: Vec::new(),
            heat_prev: BTreeMap::new(),
            history: BTreeMap::new(),
            phase_now: None,
            last: Window::default(),
            priority: BTreeMap::new(),
            regrouper: Regrouper::new(RegroupPolicy::default()),
            regroup: None,
        }
    }
}

/// A merge or split the engine decided, for the caller to make.
#[derive(Debug, Clone, Copy)]
pub struct PlannedRegroup {
    /// Log sequence number.
    pub seq: u64,
    /// What to do.
    pub action: Regroup,
}

impl PlannedRegroup {
    /// Where the parts of a split go: the hot part to the 2 MiB page, the cold one to 4 KiB
    /// pages (head, tail).
    pub fn split_targets(&self) -> (Target, Target) {
        match self.action {
            Regroup::Split {
                reason: RegroupReason::HotAndCold { head_hot: true, .. },
                ..
            } => (Target::Large, Target::Small),
            _ => (Target::Small, Target::Large),
        }
    }
}

/// A move the engine decided, for the caller to make.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// Log sequence number.
    pub seq: u64,
    /// The island.
    pub island: u32,
    /// The target.
    pub target: Target,
}

fn target_of(t: TargetKind) -> Target {
    match t {
        TargetKind::Core(n) => Target::Core(n),
        TargetKind::Large => Target::Large,
        TargetKind::Small => Target::Small,
        TargetKind::Node(n) => Target::Node(n),
    }
}

fn env_text(home: Option<u32>, run: Option<u32>, large: bool) -> String {
    let page = if large { "2M" } else { "4K" };
    match (home, run) {
        (Some(h), _) => alloc::format!("core {h} {page}"),
        (None, Some(r)) => alloc::format!("running on core {r} {page}"),
        (None, None) => String::from(page),
    }
}

impl Engine {
    /// One window. `phase` is the workload's announced phase (index, count); `decide` says
    /// whether the engine may move islands (monitoring, phase memory and measurements go on
    /// when it may not). Returns the moves to make.
    pub fn step(&mut self, phase: Option<(u32, u32)>, decide: bool) -> Vec<Planned> {
        let w = self.monitor.sample();
        self.counters.windows += 1;
        self.track_phase(phase, &w);
        let active: Vec<u32> = w
            .islands
            .iter()
            .filter(|i| i.entry && i.calls >= atoll_relocmodel::outcome::MIN_ACTIVE_CALLS)
            .map(|i| i.id)
            .collect();
        self.coexec.record_window(&active);
        self.measure_pending(&w);
        let mut planned = Vec::new();
        let cands = self.candidates(&w);
        self.counters.candidates += cands.len() as u64;
        // Each island's relocation priority: its best candidate's predicted benefit.
        self.priority.clear();
        for c in &cands {
            let p = self.model.predict(&c.features);
            let e = self.priority.entry(c.island).or_insert(p);
            *e = (*e).max(p);
        }
        self.decider.refill(crate::time::cycles_to_us(w.elapsed));
        if decide {
            for c in self.decider.decide(&cands, &self.model) {
                planned.push(self.plan(&w, &c));
            }
        }
        // Merge and split: islands awaiting a measurement, or moving now, keep their shape.
        let obs: Vec<RegroupObs> = w
            .islands
            .iter()
            .map(|i| RegroupObs {
                id: i.id,
                module: i.module,
                bytes: i.bytes,
                parts: i.parts.clone(),
                calls_islands: i.calls_islands.clone(),
                busy: self.pending.iter().any(|p| p.island == i.id)
                    || planned.iter().any(|p| p.island == i.id),
            })
            .collect();
        if let Some(r) = self.regrouper.window(&obs)
            && decide
        {
            self.plan_regroup(&w, r);
        }
        self.heat_prev = self.heats(&w);
        self.last = w;
        planned
    }

    fn track_phase(&mut self, phase: Option<(u32, u32)>, w: &Window) {
        match (phase, self.phase_now) {
            (Some((idx, n)), now) => {
                self.phases.set_phases(n);
                match now {
                    Some((prev, windows)) if prev == idx => {
                        self.phase_now = Some((idx, windows + 1));
                    }
                    Some((prev, windows)) => {
                        self.phases.end_phase(prev, windows);
                        self.phase_now = Some((idx, 1));
                    }
                    None => self.phase_now = Some((idx, 1)),
                }
                for i in w.islands.iter().filter(|i| i.entry) {
                    let rate = w.rate(i.id);
                    if rate.active() {
                        self.phases.observe(idx, i.id, rate.calls_per_second());
                    }
                }
            }
            (None, _) => self.phase_now = None,
        }
    }

    /// Heat of every listed island: entries against the hottest entry, others against the
    /// hottest other island (Q16).
    fn heats(&self, w: &Window) -> BTreeMap<u32, i64> {
        let max_of = |entry: bool| {
            w.islands
                .iter()
                .filter(|i| i.entry == entry)
                .map(|i| i.calls)
                .max()
                .unwrap_or(0)
        };
        let (me, mo) = (max_of(true), max_of(false));
        w.islands
            .iter()
            .map(|i| {
                let max = if i.entry { me } else { mo };
                (i.id, heat_fraction(i.calls, max))
            })
            .collect()
    }

    fn measure_pending(&mut self, w: &Window) {
        let phase = self.phase_now.map(|(p, _)| p);
        let mut i = 0;
        while i < self.pending.len() {
            let p = &mut self.pending[i];
            if w.index <= p.moved_window {
                i += 1;
                continue;
            }
            let rate = w.rate(p.island);
            // The sum stays within one phase: another phase is another workload.
            let phase_changed = p.after_windows > 0 && phase != p.after_phase;
            if rate.calls > 0 && !phase_changed {
                if p.after_windows == 0 {
                    p.after_phase = phase;
                }
                p.after.calls += rate.calls;
                p.after.cycles += rate.cycles;
                p.after.elapsed_ticks += rate.elapsed_ticks;
                p.after.ticks_per_second = rate.ticks_per_second;
                p.after_windows += 1;
            } else {
                p.waited += 1;
            }
            let ready = (p.after_windows >= MEASURE_WINDOWS || phase_changed) && p.after.active();
            if !ready && p.waited < MAX_WAIT_WINDOWS {
                i += 1;
                continue;
            }
            let p = self.pending.swap_remove(i);
            self.decider.measured(p.island);
            if !p.after.active() {
                self.counters.unmeasured += 1;
                if let Some(e) = self.log.get_mut(p.seq) {
                    e.fate = Fate::Unmeasured;
                }
                continue;
            }
            // Measured in another phase than the one it moved in: the window before is
            // another workload; the baseline is the island's last run in that phase.
            let before = if p.after_phase == p.phase {
                p.before
            } else {
                WindowRate::default()
            };
            let seasonal = p
                .after_phase
                .and_then(|ph| p.seasonal.get(ph as usize).copied().flatten());
            let m = measure(before, p.after, seasonal);
            self.model.train(&p.features, m.benefit);
            self.errors.record(p.predicted, m.benefit);
            self.counters.measured += 1;
            let h = self.history.entry(p.island).or_insert((0, 0));
            h.0 += m.benefit;
            h.1 += 1;
            if let Some(e) = self.log.get_mut(p.seq) {
                e.fate = Fate::Measured {
                    benefit: m.benefit,
                    baseline: m.baseline,
                    cps: (m.baseline_cps, m.after_cps),
                    cycles_per_call: (m.cycles_per_call_before, m.cycles_per_call_after),
                };
            }
        }
    }

    fn candidates(&self, w: &Window) -> Vec<Candidate> {
        let heats = self.heats(w);
        let (phase, pos) = match self.phase_now {
            Some((p, windows)) => {
                let len = self.phases.length_windows(p);
                let pos = if len == 0 {
                    0
                } else {
                    ratio(u64::from(windows), u64::from(len)).min(ONE)
                };
                (Some(p), pos)
            }
            None => (None, 0),
        };
        let next = phase.map(|p| self.phases.next(p));
        let next_hottest = next.map_or(0, |n| self.phases.hottest(n));
        let cores: Vec<CoreObs> = w
            .cores
            .iter()
            .filter(|c| c.core != CONSOLE_CORE)
            .map(|c| CoreObs {
                core: c.core,
                // Busy share, or the run queue of task threads (4 count as full) when longer.
                load: c.load.max(ratio(u64::from(c.task_threads), 4).min(ONE)),
                islands: w
                    .islands
                    .iter()
                    .filter(|i| {
                        i.entry
                            && (i.home == Some(c.core)
                                || (i.home.is_none()
                                    && i.run_core == Some(c.core)
                                    && i.threads > 0))
                    })
                    .map(|i| i.id)
                    .collect(),
            })
            .collect();
        let coexec = |a: u32, b: u32| {
            let now = self.coexec.of(a, b);
            let upcoming = match next {
                Some(n) if self.phases.co_hot(n, a, b) => pos,
                _ => 0,
            };
            now.max(upcoming)
        };
        let ctx = Context {
            cores: &cores,
            coexec: &coexec,
            phase_position: pos,
            hot: ONE / 4,
        };
        let mut out = Vec::new();
        for i in &w.islands {
            let heat_next = match next {
                Some(n) if i.entry => {
                    heat_fraction(self.phases.expected(i.id, n).unwrap_or(0), next_hottest)
                }
                _ => 0,
            };
            let history = self
                .history
                .get(&i.id)
                .map_or(0, |&(sum, n)| if n == 0 { 0 } else { sum / n });
            let obs = IslandObs {
                id: i.id,
                entry: i.entry,
                core: i.home.or(i.run_core),
                large_page: i.large_page,
                heat_now: heats.get(&i.id).copied().unwrap_or(0),
                heat_prev: self.heat_prev.get(&i.id).copied().unwrap_or(0),
                heat_next,
                cycles_per_call: i.cycles.checked_div(i.calls),
                history,
                memory_node: i.node,
                home_node: i
                    .home
                    .and_then(|c| crate::island::place::numa_node_of_core(c as usize)),
            };
            out.extend(candidates(&obs, &ctx));
        }
        out
    }

    fn plan(&mut self, w: &Window, c: &Choice) -> Planned {
        let island = c.candidate.island;
        let before = w.rate(island);
        let seasonal = (0..self.phases.phases())
            .map(|p| self.phases.expected(island, p))
            .collect();
        let reason = match c.kind {
            ChoiceKind::Predicted => alloc::format!("{}", c.candidate.reason),
            ChoiceKind::Explore => alloc::format!("explore: {}", c.candidate.reason),
        };
        let seq = self.log.push(Entry {
            predicted: c.predicted,
            kind: c.kind,
            ..self.entry(w, island, c.candidate.target, Action::Move, reason)
        });
        self.counters.decisions += 1;
        self.pending.push(Pending {
            island,
            seq,
            features: c.candidate.features,
            predicted: c.predicted,
            before,
            seasonal,
            moved_window: w.index,
            waited: 0,
            phase: self.phase_now.map(|(p, _)| p),
            after: WindowRate::default(),
            after_windows: 0,
            after_phase: None,
        });
        Planned {
            seq,
            island,
            target: target_of(c.candidate.target),
        }
    }

    fn plan_regroup(&mut self, w: &Window, r: Regroup) {
        let (island, action, reason, to) = match r {
            Regroup::Merge {
                into,
                absorbed,
                reason,
            } => {
                let to = if matches!(reason, RegroupReason::RunTogether { hot: true, .. }) {
                    TargetKind::Large
                } else {
                    TargetKind::Small
                };
                (into, Action::Merge { absorbed }, reason, to)
            }
            Regroup::Split { island, at, reason } => {
                let p = PlannedRegroup { seq: 0, action: r };
                let to = match p.split_targets().1 {
                    Target::Large => TargetKind::Large,
                    _ => TargetKind::Small,
                };
                let action = Action::Split {
                    at: at as u32,
                    new: None,
                };
                (island, action, reason, to)
            }
        };
        let seq = self
            .log
            .push(self.entry(w, island, to, action, alloc::format!("{reason}")));
        self.regroup = Some(PlannedRegroup { seq, action: r });
    }

    /// A pending engine-log entry for a decision about `island` made in window `w`, not
    /// scored by the model (`plan` sets the prediction and the kind of a model's move).
    fn entry(
        &self,
        w: &Window,
        island: u32,
        to: TargetKind,
        action: Action,
        reason: String,
    ) -> Entry {
        let iw = w.island(island);
        Entry {
            seq: 0,
            window: w.index,
            tsc: w.tsc,
            island,
            label: iw.map_or_else(String::new, |i| i.label.clone()),
            from: iw.map_or_else(String::new, |i| env_text(i.home, i.run_core, i.large_page)),
            to,
            predicted: 0,
            action,
            reason,
            kind: ChoiceKind::Predicted,
            phase: self.phase_now.map(|(p, _)| p),
            active_before: w.rate(island).active(),
            pause_cycles: 0,
            bytes: (0, 0),
            fate: Fate::Pending,
        }
    }

    /// The merge or split decided in the last window, to make.
    pub fn take_regroup(&mut self) -> Option<PlannedRegroup> {
        self.regroup.take()
    }

    /// The merge or split `p` was made (or failed with `Err(message)`): the islands' engine
    /// metadata follows (history of measured benefits, heat, the monitor's baselines).
    pub fn record_regroup(&mut self, p: &PlannedRegroup, result: Result<&RegroupReport, String>) {
        let r = match result {
            Ok(r) => r,
            Err(msg) => {
                self.counters.regroup_failures += 1;
                if let Some(e) = self.log.get_mut(p.seq) {
                    e.fate = Fate::Failed(msg);
                }
                return;
            }
        };
        let (island, other) = (r.island, r.other);
        if r.merge {
            self.counters.merges += 1;
            self.regrouper.merged(island, other);
            if let Some((sum, n)) = self.history.remove(&other) {
                let h = self.history.entry(island).or_insert((0, 0));
                h.0 += sum;
                h.1 += n;
            }
            let absorbed_heat = self.heat_prev.remove(&other).unwrap_or(0);
            let h = self.heat_prev.entry(island).or_insert(0);
            *h = (*h).max(absorbed_heat);
        } else {
            self.counters.splits += 1;
            self.regrouper.split(island, other);
            if let Some(&h) = self.history.get(&island) {
                self.history.insert(other, h);
            }
            if let Some(&h) = self.heat_prev.get(&island) {
                self.heat_prev.insert(other, h);
            }
        }
        self.monitor.forget(island);
        self.monitor.forget(other);
        let bytes: u32 = r.results.iter().map(|x| x.2).sum();
        if let Some(e) = self.log.get_mut(p.seq) {
            e.pause_cycles = r.pause_cycles;
            e.bytes = (bytes, bytes);
            e.fate = Fate::Done;
            if let Action::Split { at, .. } = e.action {
                e.action = Action::Split {
                    at,
                    new: Some(other),
                };
            }
        }
    }

    /// The move `p` was made (or failed with `Err(message)`).
    pub fn record(&mut self, p: &Planned, result: Result<&MoveReport, String>) {
        match result {
            Ok(r) => {
                self.counters.moves += 1;
                match p.target {
                    Target::Core(_) => self.counters.core_moves += 1,
                    Target::Large => self.counters.to_large += 1,
                    Target::Small => self.counters.to_small += 1,
                    Target::Node(_) => self.counters.node_moves += 1,
                }
                let ahead = self.is_ahead(p.island);
                self.counters.bytes += u64::from(r.bytes);
                self.counters.bytes_written += u64::from(r.bytes_written);
                if let Some(e) = self.log.get_mut(p.seq) {
                    e.pause_cycles = r.pause_cycles;
                    e.bytes = (r.bytes, r.bytes_written);
                    if ahead && !e.active_before {
                        self.counters.ahead_of_phase += 1;
                    }
                }
            }
            Err(msg) => {
                self.counters.failures += 1;
                self.pending.retain(|q| q.seq != p.seq);
                self.decider.measured(p.island);
                if let Some(e) = self.log.get_mut(p.seq) {
                    e.fate = Fate::Failed(msg);
                }
            }
        }
    }

    /// Whether `island` is expected hot in the next phase.
    fn is_ahead(&self, island: u32) -> bool {
        let Some((p, _)) = self.phase_now else {
            return false;
        };
        let n = self.phases.next(p);
        self.phases.co_hot(n, island, island)
    }

    /// Moves awaiting measurement.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The current phase and windows in it.
    pub fn phase_now(&self) -> Option<(u32, u32)> {
        self.phase_now
    }
}
