//! The phased workload driver (`phased`): a workload whose hot set and core placement change
//! in repeating phases, for the engine to learn from. Three phases, each with two hot tasks
//! that share a task with the phase before and one with the phase after (parse+checksum,
//! checksum+compress, compress+parse), so no fixed placement on two work cores keeps every
//! phase's pair apart: some island must move before (or during) every phase. Tasks start on
//! the home core of the island they enter through when it has one (the engine put it there),
//! else on the phase's placement core, where both hot tasks crowd.
//!
//! Each phase keeps `inflight` runs of each hot task going until `per_phase` runs of each
//! have started, and waits for them all. Measured: tasks per second of guest time (TSC), the
//! median task latency (from the driver starting it to its last instruction), every result
//! (for comparison with the host reference), and which engine moves came ahead of the phase
//! that needed them.

use alloc::string::String;
use alloc::vec::Vec;

use atoll_kcore::stats::Distribution;
use atoll_relocmodel::select::TargetKind;

use super::log::Entry;
use crate::arch::cpu;
use crate::island::observe;
use crate::pae::{self, Started};
use crate::{sched, smp};

/// One phase.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    /// Name.
    pub name: &'static str,
    /// Its hot tasks: `chunk.export` and arguments.
    pub tasks: [(&'static str, &'static [&'static str]); 2],
    /// Index into the work cores of the core its tasks start on (without a home core).
    pub place: usize,
}

/// The phases, in order; they repeat.
pub const PHASES: [Phase; 3] = [
    Phase {
        name: "parse+checksum",
        tasks: [
            ("json.json_generate_and_count", &["200"]),
            ("crc32.crc32_bench", &["4096"]),
        ],
        place: 0,
    },
    Phase {
        name: "checksum+compress",
        tasks: [
            ("crc32.crc32_bench", &["4096"]),
            ("lz.lz_roundtrip", &["4096"]),
        ],
        place: 1,
    },
    Phase {
        name: "compress+parse",
        tasks: [
            ("lz.lz_roundtrip", &["4096"]),
            ("json.json_generate_and_count", &["200"]),
        ],
        place: 0,
    },
];

/// A run's shape.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Times the phases repeat.
    pub rounds: u32,
    /// Runs of each hot task per phase.
    pub per_phase: u32,
    /// Runs of each hot task kept going at once.
    pub inflight: u32,
    /// Engine on or off for the run (`None`: as it is).
    pub engine: Option<bool>,
}

/// What a run measured.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Engine state during the run.
    pub engine: bool,
    /// Tasks completed with a result.
    pub tasks: u64,
    /// Tasks lost or trapped.
    pub lost: u64,
    /// TSC ticks from the first start to the last result.
    pub elapsed_cycles: u64,
    /// TSC ticks per second.
    pub hz: u64,
    /// Task latencies, TSC ticks.
    pub latencies: Vec<u64>,
    /// Distinct results: task, arguments, value, runs.
    pub results: Vec<(String, String, String, u32)>,
    /// Engine moves made during the run.
    pub moves: u64,
    /// Of them, core moves of a hot task's entry island.
    pub phase_moves: u64,
    /// Of those, made while its task was not hot yet and would be in the next phase.
    pub ahead: u64,
    /// Tasks started on a core other than the phase's placement core (their entry island's
    /// home core).
    pub started_at_home: u64,
}

impl Report {
    /// Tasks per second of guest time, in thousandths.
    pub fn tasks_per_second_milli(&self) -> u64 {
        if self.elapsed_cycles == 0 {
            return 0;
        }
        (u128::from(self.tasks) * u128::from(self.hz) * 1000 / u128::from(self.elapsed_cycles))
            as u64
    }

    /// Median task latency, TSC ticks.
    pub fn median_latency(&self) -> u64 {
        let mut l = self.latencies.clone();
        Distribution::of(&mut l).median
    }

    /// Share of phase moves made ahead of their phase, thousandths.
    pub fn ahead_permille(&self) -> u64 {
        (self.ahead * 1000)
            .checked_div(self.phase_moves)
            .unwrap_or(0)
    }
}

/// Why a run could not start.
#[derive(Debug)]
pub enum PhasedError {
    /// A task could not be prepared.
    Task(pae::PaeError),
    /// A chunk thread could not start.
    Thread(sched::ThreadError),
    /// The machine has no core besides the console's.
    NoWorkCores,
}

impl core::fmt::Display for PhasedError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Task(e) => write!(f, "{e}"),
            Self::Thread(e) => write!(f, "chunk thread: {e}"),
            Self::NoWorkCores => {
                f.write_str("phased needs a core besides the console's (--smp 2 or more)")
            }
        }
    }
}

/// The cores tasks run on: every online core but the console's.
pub fn work_cores() -> Vec<u32> {
    smp::online_cores()
        .map(|c| c as u32)
        .filter(|&c| c != super::CONSOLE_CORE)
        .collect()
}

struct Running {
    task: &'static str,
    args: &'static [&'static str],
    started_tsc: u64,
    started: Started,
}

fn start(
    task: &'static str,
    args: &'static [&'static str],
    place: u32,
    work: &[u32],
    report: &mut Report,
) -> Result<Running, PhasedError> {
    let (chunk, export) = task.split_once('.').unwrap_or((task, ""));
    let home = observe::entry_of(chunk, export)
        .and_then(|(_, home)| home)
        .filter(|h| work.contains(h));
    let core = home.unwrap_or(place);
    report.started_at_home += u64::from(core != place);
    let prepared = pae::prepare(task).map_err(PhasedError::Task)?;
    let words: Vec<String> = args.iter().map(|a| String::from(*a)).collect();
    let parsed = prepared.parse_args(&words).map_err(PhasedError::Task)?;
    let started_tsc = cpu::rdtsc();
    let started =
        pae::start_on_thread(prepared, parsed, Some(core as usize)).map_err(PhasedError::Thread)?;
    Ok(Running {
        task,
        args,
        started_tsc,
        started,
    })
}

fn collect(r: Running, report: &mut Report) {
    let Ok(out) = r.started.wait() else {
        report.lost += 1;
        return;
    };
    let Ok(values) = &out.result else {
        report.lost += 1;
        return;
    };
    report.tasks += 1;
    let done = out.entered_tsc + out.run_cycles;
    report.latencies.push(done.saturating_sub(r.started_tsc));
    let value = pae::format_results(values);
    let args = r.args.join(" ");
    match report
        .results
        .iter_mut()
        .find(|(t, a, v, _)| *t == r.task && *a == args && *v == value)
    {
        Some(x) => x.3 += 1,
        None => report.results.push((r.task.into(), args, value, 1)),
    }
}

/// Runs the workload.
pub fn run(spec: &Spec) -> Result<Report, PhasedError> {
    let work = work_cores();
    if work.is_empty() {
        return Err(PhasedError::NoWorkCores);
    }
    super::ensure_started().map_err(PhasedError::Thread)?;
    // Assemble every chunk before the clock starts (each run pays the same).
    for p in &PHASES {
        for (task, _) in p.tasks {
            drop(pae::prepare(task).map_err(PhasedError::Task)?);
        }
    }
    let was = super::enabled();
    if let Some(on) = spec.engine {
        super::set_enabled(on);
    }
    let mut report = Report {
        engine: super::enabled(),
        hz: crate::time::tsc_hz(),
        ..Report::default()
    };
    let seq0 = super::log_seq();
    let t0 = cpu::rdtsc();
    let mut bounds: Vec<(u64, u32)> = Vec::new();
    let result = run_phases(spec, &work, &mut report, &mut bounds);
    let t1 = cpu::rdtsc();
    super::clear_phase();
    super::set_enabled(was);
    result?;
    report.elapsed_cycles = t1 - t0;
    classify(&super::log_since(seq0), &bounds, &mut report);
    Ok(report)
}

fn run_phases(
    spec: &Spec,
    work: &[u32],
    report: &mut Report,
    bounds: &mut Vec<(u64, u32)>,
) -> Result<(), PhasedError> {
    let n = PHASES.len() as u32;
    for _ in 0..spec.rounds {
        for (pi, phase) in PHASES.iter().enumerate() {
            super::set_phase(pi as u32, n);
            bounds.push((cpu::rdtsc(), pi as u32));
            let place = work[phase.place % work.len()];
            let mut started = [0u32; 2];
            let mut running: Vec<(usize, Running)> = Vec::new();
            loop {
                for (t, (task, args)) in phase.tasks.iter().enumerate() {
                    while started[t] < spec.per_phase
                        && running.iter().filter(|(i, _)| *i == t).count() < spec.inflight as usize
                    {
                        running.push((t, start(task, args, place, work, report)?));
                        started[t] += 1;
                    }
                }
                if running.is_empty() {
                    break;
                }
                match running.iter().position(|(_, r)| r.started.is_done()) {
                    Some(i) => {
                        let (_, r) = running.swap_remove(i);
                        collect(r, report);
                    }
                    None => sched::sleep_us(200),
                }
            }
        }
    }
    Ok(())
}

/// Which engine moves were core moves of a phase task's entry island, and of those, which
/// came while its task was not hot in the current phase but is in the next one.
fn classify(log: &[Entry], bounds: &[(u64, u32)], report: &mut Report) {
    for e in log {
        if !matches!(e.fate, super::log::Fate::Failed(_)) {
            report.moves += 1;
        } else {
            continue;
        }
        if !matches!(e.to, TargetKind::Core(_)) {
            continue;
        }
        let Some(&(_, phase)) = bounds.iter().rev().find(|(t, _)| *t <= e.tsc) else {
            continue;
        };
        let hot_in = |p: u32| PHASES[p as usize].tasks.iter().any(|(t, _)| *t == e.label);
        let next = (phase + 1) % PHASES.len() as u32;
        if hot_in(phase) {
            report.phase_moves += 1;
        } else if hot_in(next) {
            report.phase_moves += 1;
            report.ahead += 1;
        }
    }
}
