//! The task profiler's numbers and the record that carries them between boots.
//!
//! Per task (`chunk.export`): runs, cycles per call (sum, min, max) next to the manifest's
//! estimate, and task-to-task transitions. Seeded counts (from the image's recorded usage
//! profile) are kept apart from what this boot measured, so `profile export` can print only
//! what is new and `chunkc profile merge` adds it to the image without counting history twice.
//!
//! The record is text, one fact per line:
//!
//! ```text
//! atoll-profile 1
//! task json.json_generate_and_count 12 4810023
//! transition json.json_generate_and_count crc32.crc32_bench 11
//! ```
//!
//! `task NAME RUNS CYCLES` (cycles summed over the runs), `transition FROM TO COUNT`. Lines
//! starting with `#` and blank lines are ignored.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

/// One task's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskStats {
    /// Runs seeded from the image's profile.
    pub seeded: u64,
    /// Runs measured this boot.
    pub runs: u64,
    /// Cycles summed over the measured runs.
    pub cycles: u64,
    /// Fewest cycles of one run (0 before the first).
    pub min_cycles: u64,
    /// Most cycles of one run.
    pub max_cycles: u64,
    /// The manifest's estimate of cycles per call (0 = none).
    pub estimate: u64,
    /// Runs that trapped or failed.
    pub failed: u64,
}

impl TaskStats {
    /// Mean cycles per measured run.
    pub fn mean_cycles(&self) -> u64 {
        self.cycles.checked_div(self.runs).unwrap_or(0)
    }
}

/// A transition's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransitionStats {
    /// Seeded from the image.
    pub seeded: u64,
    /// Seen this boot.
    pub seen: u64,
}

/// The profiler.
#[derive(Debug, Clone, Default)]
pub struct Profiler {
    tasks: BTreeMap<String, TaskStats>,
    transitions: BTreeMap<(String, String), TransitionStats>,
    last: Option<String>,
}

impl Profiler {
    /// An empty profiler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Seeds a task's run count and cycle estimate (from the image).
    pub fn seed_task(&mut self, task: &str, runs: u64, estimate: u64) {
        let t = self.tasks.entry(task.into()).or_default();
        t.seeded += runs;
        if estimate != 0 {
            t.estimate = estimate;
        }
    }

    /// Seeds a transition count (from the image).
    pub fn seed_transition(&mut self, from: &str, to: &str, count: u64) {
        self.transitions
            .entry((from.into(), to.into()))
            .or_default()
            .seeded += count;
    }

    /// Records a run of `task` that took `cycles` (`ok` = it returned normally); the
    /// transition from the previous task is counted.
    pub fn record(&mut self, task: &str, cycles: u64, ok: bool) {
        let t = self.tasks.entry(task.into()).or_default();
        t.runs += 1;
        t.cycles = t.cycles.saturating_add(cycles);
        t.min_cycles = if t.runs == 1 {
            cycles
        } else {
            t.min_cycles.min(cycles)
        };
        t.max_cycles = t.max_cycles.max(cycles);
        if !ok {
            t.failed += 1;
        }
        if let Some(prev) = self.last.take() {
            self.transitions
                .entry((prev, task.into()))
                .or_default()
                .seen += 1;
        }
        self.last = Some(task.into());
    }

    /// The task that ran last.
    pub fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }

    /// Every task's figures, by name.
    pub fn tasks(&self) -> impl Iterator<Item = (&str, &TaskStats)> {
        self.tasks.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Every transition, by (from, to).
    pub fn transitions(&self) -> impl Iterator<Item = (&str, &str, TransitionStats)> {
        self.transitions
            .iter()
            .map(|((f, t), s)| (f.as_str(), t.as_str(), *s))
    }

    /// The record of what this boot measured (seeded counts left out).
    pub fn export(&self) -> Record {
        Record {
            tasks: self
                .tasks
                .iter()
                .filter(|(_, s)| s.runs > 0)
                .map(|(n, s)| RecordTask {
                    task: n.clone(),
                    runs: s.runs,
                    cycles: s.cycles,
                })
                .collect(),
            transitions: self
                .transitions
                .iter()
                .filter(|(_, s)| s.seen > 0)
                .map(|((f, t), s)| RecordTransition {
                    from: f.clone(),
                    to: t.clone(),
                    count: s.seen,
                })
                .collect(),
        }
    }
}

/// A task line of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordTask {
    /// `chunk.export`.
    pub task: String,
    /// Runs.
    pub runs: u64,
    /// Cycles summed over the runs.
    pub cycles: u64,
}

/// A transition line of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordTransition {
    /// Earlier task.
    pub from: String,
    /// Following task.
    pub to: String,
    /// How often.
    pub count: u64,
}

/// A profile record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Task lines.
    pub tasks: Vec<RecordTask>,
    /// Transition lines.
    pub transitions: Vec<RecordTransition>,
}

/// The first line of a record.
pub const RECORD_HEADER: &str = "atoll-profile 1";

/// Why a record could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "profile record line {}: {}", self.line, self.message)
    }
}

fn is_task_name(s: &str) -> bool {
    matches!(s.split_once('.'), Some((c, e)) if !c.is_empty() && !e.is_empty())
        && s.bytes().all(|b| b.is_ascii_graphic())
}

impl Record {
    /// The record as text (ends with a newline).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{RECORD_HEADER}");
        for t in &self.tasks {
            let _ = writeln!(out, "task {} {} {}", t.task, t.runs, t.cycles);
        }
        for t in &self.transitions {
            let _ = writeln!(out, "transition {} {} {}", t.from, t.to, t.count);
        }
        out
    }

    /// Reads a record.
    pub fn parse(text: &str) -> Result<Self, RecordError> {
        let err = |line: usize, message: &str| RecordError {
            line,
            message: message.into(),
        };
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        match lines.next() {
            Some((_, RECORD_HEADER)) => {}
            Some((n, _)) => return Err(err(n, "expected `atoll-profile 1`")),
            None => return Err(err(1, "empty record")),
        }
        let mut record = Self::default();
        for (n, line) in lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            let num = |s: &str| s.parse::<u64>().map_err(|_| err(n, "bad number"));
            match words.as_slice() {
                ["task", task, runs, cycles] if is_task_name(task) => {
                    record.tasks.push(RecordTask {
                        task: (*task).into(),
                        runs: num(runs)?,
                        cycles: num(cycles)?,
                    });
                }
                ["transition", from, to, count] if is_task_name(from) && is_task_name(to) => {
                    record.transitions.push(RecordTransition {
                        from: (*from).into(),
                        to: (*to).into(),
                        count: num(count)?,
                    });
                }
                _ => {
                    return Err(err(
                        n,
                        "expected `task CHUNK.EXPORT RUNS CYCLES` or `transition FROM TO COUNT`",
                    ));
                }
            }
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_runs_and_transitions() {
        let mut p = Profiler::new();
        p.seed_task("a.x", 10, 500);
        p.seed_transition("a.x", "b.y", 7);
        p.record("a.x", 400, true);
        p.record("b.y", 100, true);
        p.record("a.x", 600, false);
        let a = p.tasks().find(|(n, _)| *n == "a.x").unwrap().1;
        assert_eq!(
            (
                a.seeded,
                a.runs,
                a.cycles,
                a.min_cycles,
                a.max_cycles,
                a.failed
            ),
            (10, 2, 1000, 400, 600, 1)
        );
        assert_eq!((a.mean_cycles(), a.estimate), (500, 500));
        let t: Vec<_> = p.transitions().collect();
        assert_eq!(
            t,
            [
                ("a.x", "b.y", TransitionStats { seeded: 7, seen: 1 }),
                ("b.y", "a.x", TransitionStats { seeded: 0, seen: 1 })
            ]
        );
        assert_eq!(p.last(), Some("a.x"));
    }

    #[test]
    fn export_round_trips_and_leaves_seeds_out() {
        let mut p = Profiler::new();
        p.seed_task("s.only", 99, 0);
        p.record("a.x", 5, true);
        p.record("b.y", 6, true);
        let r = p.export();
        assert_eq!(r.tasks.len(), 2);
        assert_eq!(r.transitions.len(), 1);
        let text = r.to_text();
        assert!(text.starts_with("atoll-profile 1\n"));
        assert_eq!(Record::parse(&text).unwrap(), r);
    }

    #[test]
    fn bad_records_name_the_line() {
        assert_eq!(Record::parse("").unwrap_err().line, 1);
        assert_eq!(Record::parse("hello").unwrap_err().line, 1);
        let e = Record::parse("atoll-profile 1\n# c\ntask a.b 1 2\ntask a.b x 2\n").unwrap_err();
        assert_eq!(e.line, 4);
        let e = Record::parse("atoll-profile 1\ntask nodot 1 2").unwrap_err();
        assert_eq!(e.line, 2);
        let e = Record::parse("atoll-profile 1\ntransition a.b c.d").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(Record::parse("atoll-profile 1\n").unwrap().tasks.is_empty());
    }
}
