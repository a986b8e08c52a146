//! The engine log: every decision (island, from, to, predicted benefit, measured benefit once
//! known, reason), bounded; the oldest entries are dropped, sequence numbers keep counting.

use alloc::collections::VecDeque;
use alloc::string::String;

use atoll_relocmodel::decide::ChoiceKind;
use atoll_relocmodel::outcome::Baseline;
use atoll_relocmodel::select::TargetKind;

/// Entries kept.
pub const LOG_CAPACITY: usize = 512;

/// What became of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Moved; the outcome is awaited.
    Pending,
    /// Moved and measured.
    Measured {
        /// Benefit, Q16.
        benefit: i64,
        /// Where the baseline came from.
        baseline: Baseline,
        /// Calls per second: baseline and after.
        cps: (u64, u64),
        /// Cycles per call before and after.
        cycles_per_call: (Option<u64>, Option<u64>),
    },
    /// Moved, but the island did not run again in time to be measured.
    Unmeasured,
    /// The move failed (nothing changed).
    Failed(String),
    /// The merge or split was made (they are not measured: the model learns from moves).
    Done,
}

/// What a decision does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Moves the island to `to`.
    Move,
    /// Merges island `absorbed` into it (its code after the island's, in the island's place).
    Merge {
        /// The island merged into it.
        absorbed: u32,
    },
    /// Splits it before its `at`-th function; the second part (island `new` once made) goes
    /// to `to`.
    Split {
        /// Index of the first function of the second part.
        at: u32,
        /// The island made of the second part.
        new: Option<u32>,
    },
}

/// One decision.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Sequence number (from 1).
    pub seq: u64,
    /// Window it was made in.
    pub window: u64,
    /// TSC when it was made.
    pub tsc: u64,
    /// Island.
    pub island: u32,
    /// What the island is (`chunk.export` or `chunk`).
    pub label: String,
    /// Its environment before (`core 1 4K`...).
    pub from: String,
    /// Target.
    pub to: TargetKind,
    /// Predicted benefit, Q16.
    pub predicted: i64,
    /// Move, merge or split.
    pub action: Action,
    /// Why this target.
    pub reason: String,
    /// Chosen by the model or exploring.
    pub kind: ChoiceKind,
    /// Workload phase when it was made (index), if a workload announced phases.
    pub phase: Option<u32>,
    /// The island ran in the window before the move.
    pub active_before: bool,
    /// Stop-the-world pause of the move, TSC cycles.
    pub pause_cycles: u64,
    /// Bytes of the new copy, and bytes written for it (fewer when a kept copy was reused).
    pub bytes: (u32, u32),
    /// What became of it.
    pub fate: Fate,
}

/// The bounded log.
#[derive(Debug, Default)]
pub struct Log {
    entries: VecDeque<Entry>,
    next_seq: u64,
}

impl Log {
    /// Appends `e` (its `seq` is set here) and returns the sequence number.
    pub fn push(&mut self, mut e: Entry) -> u64 {
        self.next_seq += 1;
        e.seq = self.next_seq;
        if self.entries.len() == LOG_CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(e);
        self.next_seq
    }

    /// The entry with sequence number `seq`, if still kept.
    pub fn get_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        let first = self.entries.front()?.seq;
        let i = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.entries.get_mut(i)
    }

    /// Entries kept, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// The last sequence number given.
    pub fn last_seq(&self) -> u64 {
        self.next_seq
    }
}
