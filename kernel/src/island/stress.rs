//! `reloc-stress`: keeps a task running on each of several cores, over and over, while it moves
//! the task's islands again and again, alternating between a change of page size (4 KiB pages
//! and a 2 MiB page) and a change of home core (the islands' threads follow). Every run's result
//! is kept, so the caller can compare them with the host reference.

use alloc::string::String;
use alloc::vec::Vec;

use atoll_island::PageSize;

use super::place::Target;
use super::reloc::{self, RelocError};
use crate::pae::{self, Started};
use crate::sched;

/// What to stress.
#[derive(Debug)]
pub struct StressSpec {
    /// `chunk.export`.
    pub task: String,
    /// Its arguments, as typed.
    pub words: Vec<String>,
    /// Moves to make.
    pub count: u32,
    /// Cores that run the task (and that core moves rotate over).
    pub cores: Vec<u32>,
    /// The chunk whose islands move (the task's own by default; a provider it imports from,
    /// to re-target import bindings).
    pub islands_of: Option<String>,
}

/// What a stress run did.
#[derive(Debug, Default)]
pub struct StressReport {
    /// Moves completed.
    pub moves: u32,
    /// Moves that failed (with the first failure).
    pub failures: u32,
    /// The first failure's message.
    pub first_failure: Option<String>,
    /// Moves of each kind.
    pub to_large: u32,
    /// Moves to 4 KiB pages.
    pub to_small: u32,
    /// Moves to another core.
    pub core_moves: u32,
    /// Rounds retried.
    pub retries: u32,
    /// RIPs rewritten.
    pub rips_rewritten: u64,
    /// Return addresses rewritten.
    pub return_addresses_rewritten: u64,
    /// Call sites patched.
    pub call_sites_patched: u64,
    /// Code addresses held by instances re-pointed.
    pub code_pointers_retargeted: u64,
    /// Threads moved with their island.
    pub threads_migrated: u64,
    /// Moves that found at least one thread inside the island.
    pub moves_with_threads_inside: u32,
    /// Runs of the task that finished.
    pub runs: u32,
    /// Distinct results (as printed) with how many runs gave each.
    pub results: Vec<(String, u32)>,
    /// Runs that trapped or could not be collected (their thread was lost).
    pub lost: u32,
    /// Pause of every completed move, in TSC cycles.
    pub pause_cycles: Vec<u64>,
    /// Islands of the task's chunk that were moved.
    pub islands: Vec<u32>,
}

/// Why a stress run could not start.
#[derive(Debug)]
pub enum StressError {
    /// The task could not be prepared (or its arguments parsed).
    Task(pae::PaeError),
    /// Its chunk has no island that may move.
    NothingToMove(String),
    /// A core named in `--cores` is not online.
    NoSuchCore(u32),
    /// A chunk thread could not be started.
    Thread(sched::ThreadError),
}

impl core::fmt::Display for StressError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Task(e) => write!(f, "{e}"),
            Self::NothingToMove(chunk) => write!(f, "chunk {chunk} has no island"),
            Self::NoSuchCore(c) => write!(f, "core {c} is not online"),
            Self::Thread(e) => write!(f, "chunk thread: {e}"),
        }
    }
}

/// The target of move `i` of an island now in `page` pages: even moves flip the page size,
/// odd moves go to the next core of `cores`.
pub fn target_of(i: u32, page_bytes: u64, cores: &[u32]) -> Target {
    if i.is_multiple_of(2) || cores.is_empty() {
        if page_bytes == PageSize::Size2M.bytes() {
            Target::Small
        } else {
            Target::Large
        }
    } else {
        Target::Core(cores[(i as usize / 2) % cores.len()])
    }
}

fn start(spec: &StressSpec, core: u32) -> Result<Started, StressError> {
    let prepared = pae::prepare(&spec.task).map_err(StressError::Task)?;
    let args = prepared
        .parse_args(&spec.words)
        .map_err(StressError::Task)?;
    pae::start_on_thread(prepared, args, Some(core as usize)).map_err(StressError::Thread)
}

fn collect(report: &mut StressReport, started: Started) {
    match started.wait() {
        Ok(outcome) => match outcome.result {
            Ok(values) => {
                report.runs += 1;
                let text = values
                    .iter()
                    .map(|v| alloc::format!("{v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                match report.results.iter_mut().find(|(r, _)| *r == text) {
                    Some((_, n)) => *n += 1,
                    None => report.results.push((text, 1)),
                }
            }
            Err(_) => report.lost += 1,
        },
        Err(_) => report.lost += 1,
    }
}

/// Runs the stress: a task per core kept running, `count` moves, then every task collected.
pub fn run(spec: &StressSpec) -> Result<StressReport, StressError> {
    if let Some(&bad) = spec
        .cores
        .iter()
        .find(|c| !crate::smp::is_online(**c as usize))
    {
        return Err(StressError::NoSuchCore(bad));
    }
    // Preparing assembles the chunk and its providers, which registers their islands.
    drop(pae::prepare(&spec.task).map_err(StressError::Task)?);
    let chunk = spec
        .islands_of
        .as_deref()
        .unwrap_or_else(|| spec.task.split_once('.').map_or("", |(c, _)| c));
    let islands: Vec<u32> = super::views(Some(chunk)).iter().map(|v| v.id).collect();
    if islands.is_empty() {
        return Err(StressError::NothingToMove(chunk.into()));
    }
    let mut report = StressReport {
        islands: islands.clone(),
        ..StressReport::default()
    };
    let mut running: Vec<(u32, Option<Started>)> = Vec::new();
    for &core in &spec.cores {
        running.push((core, Some(start(spec, core)?)));
    }
    for i in 0..spec.count {
        // Keep every core busy: a finished run is collected and started again.
        for (core, slot) in &mut running {
            if slot.as_ref().is_some_and(Started::is_done)
                && let Some(done) = slot.take()
            {
                collect(&mut report, done);
                *slot = Some(start(spec, *core)?);
            }
        }
        let island = islands[i as usize % islands.len()];
        let page = super::page_bytes_of(island);
        let target = target_of(i, page, &spec.cores);
        match reloc::relocate(island, target) {
            Ok(r) => {
                report.moves += 1;
                match target {
                    Target::Core(_) => report.core_moves += 1,
                    _ if r.page_bytes == PageSize::Size2M.bytes() => report.to_large += 1,
                    _ => report.to_small += 1,
                }
                report.retries += r.retries;
                report.rips_rewritten += u64::from(r.rips_rewritten);
                report.return_addresses_rewritten += u64::from(r.return_addresses_rewritten);
                report.call_sites_patched += u64::from(r.call_sites_patched);
                report.code_pointers_retargeted += u64::from(r.code_pointers_retargeted);
                report.threads_migrated += u64::from(r.threads_migrated);
                report.moves_with_threads_inside +=
                    u32::from(r.rips_rewritten + r.return_addresses_rewritten > 0);
                report.pause_cycles.push(r.pause_cycles);
            }
            Err(e) => {
                report.failures += 1;
                if report.first_failure.is_none() {
                    report.first_failure = Some(alloc::format!("island {island}: {e}"));
                }
                if matches!(e, RelocError::NoSuchIsland(_)) {
                    break;
                }
            }
        }
    }
    for (_, slot) in running {
        if let Some(started) = slot {
            collect(&mut report, started);
        }
    }
    Ok(report)
}
