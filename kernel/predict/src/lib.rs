//! The predictive assembly engine's pure logic, shared by the kernel and the host tools:
//!
//! - [`markov`]: an order-k Markov model of which task follows which, with back-off to lower
//!   orders and a confidence score per prediction;
//! - [`profile`]: per-task counts and cycles, task-to-task transitions, and the text record
//!   `profile export` prints and `chunkc profile merge` folds back into an image;
//! - [`cache`]: the bookkeeping of a byte-bounded cache with LRU and LFU victims, pinned
//!   entries and hit/miss/eviction figures;
//! - [`trace`]: the workload trace format (task, arguments, think time) that `replay` runs.
//!
//! No hardware, no clock and no floating point: the kernel passes cycles in.
#![no_std]

extern crate alloc;

pub mod cache;
pub mod markov;
pub mod profile;
pub mod trace;
