//! The predictive relocation engine's pure logic (no_std + alloc, no `unsafe`, no floating
//! point, tested on the host). The kernel (`kernel/src/autoreloc/`) measures and moves; this
//! crate says what a measurement means and which move to make.
//!
//! - [`fixed`]: Q16.16 fixed-point arithmetic on `i64` (no float anywhere: the model may run
//!   where the FPU state belongs to a task).
//! - [`features`]: what the model sees of a candidate move (island x target environment).
//! - [`model`]: an online linear model of a move's benefit, trained by normalized least mean
//!   squares with a ridge decay from every measured outcome.
//! - [`error`]: prediction error, mean absolute overall, over the last N moves and per window.
//! - [`phase`]: what each island did in each phase of a repeating workload (seasonal memory),
//!   and which islands run together (co-execution).
//! - [`outcome`]: the measured benefit of a move (the island's throughput after it, against the
//!   window before it or, when it was idle then, its last run in the same phase).
//! - [`select`]: the candidate environments of an island (cores, page sizes, NUMA nodes), each
//!   with the reason it is considered, and their features.
//! - [`regroup`]: when islands are merged (a calling pair that runs together and wants one
//!   page) and split (parts that want different pages), and at which cut.
//! - [`decide`]: threshold with hysteresis, a budget of moves per second, never two moves of one
//!   island without a measurement in between, and exploration while the model is untrained.
//!
//! # Invariants
//!
//! - Every value the model sees or produces is Q16.16 (`fixed::ONE` is 1.0); features are
//!   clamped to [-4, 4] and weights to [-64, 64], so no product overflows an `i64` (they are
//!   computed in `i128` anyway).
//! - An island has at most one move awaiting measurement; [`decide::Decider`] refuses a second
//!   until [`decide::Decider::measured`] is called for it.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod decide;
pub mod error;
pub mod features;
pub mod fixed;
pub mod model;
pub mod outcome;
pub mod phase;
pub mod regroup;
pub mod select;

pub use decide::{Choice, ChoiceKind, Decider, Policy, SkipCounts};
pub use error::ErrorTracker;
pub use features::{FEATURE_NAMES, Features, N_FEATURES};
pub use model::Model;
pub use outcome::{Measured, WindowRate, measure};
pub use phase::{CoExec, PhaseMemory};
pub use select::{Candidate, CoreObs, IslandObs, TargetKind, candidates};
