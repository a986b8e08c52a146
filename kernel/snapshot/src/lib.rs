//! Predictive snapshots, the pure part (issue 14; the design is `docs/snapshots.md`).
//!
//! A *segment* is an export run on an instance (`chunk.export`, an init export in practice); a
//! *path* is the ordered list of segments a request runs before its own export. A *layer* is
//! the state one segment produced in a scratch instance: the linear-memory pages it changed
//! (4 KiB granularity, captured by [`diff::dirty_pages`]), the mutable globals and table
//! entries it changed, and the data/element segments it dropped; either on the base (the
//! instance as instantiation leaves it) or *chained* on another layer (run in an instance
//! restored from it).
//!
//! - [`diff`]: which pages differ between two images of a memory;
//! - [`layer`]: a layer and [`layer::compose`], which stacks layers in path order under the
//!   conflict rule: a layer may overwrite a page (global, table entry) only if it was built on
//!   the layer that wrote it; two independent layers writing the same page conflict, and the
//!   composition is refused;
//! - [`library`]: the snapshots kept, keyed by segment with a probability weight, and the
//!   selector that picks, for a path, the longest prefix its snapshots cover;
//! - [`analyzer`]: the probability map of segments (how often a task's runs reach each
//!   segment, weighted by the task's frequency) and the refresh policy built on it.
//!
//! Page contents are a type parameter: the kernel keeps physical frames, the host tests keep
//! byte vectors. No hardware, no clock, no floating point.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod analyzer;
pub mod diff;
#[cfg(feature = "instance")]
pub mod instance;
pub mod layer;
pub mod library;

/// Bytes per snapshot page (the hardware page copy-on-write works with).
pub const PAGE_BYTES: usize = 4096;

/// A snapshot's id in its library (never reused within a boot).
pub type SnapId = u32;

/// Whether an export is an *init export*, a segment the analyzer tracks and the generator
/// snapshots by default: its name ends in `_init` and it takes no parameters.
pub fn is_init_export(name: &str, param_count: usize) -> bool {
    name.ends_with("_init") && name.len() > "_init".len() && param_count == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn init_exports_by_name_and_arity() {
        assert!(super::is_init_export("lex_init", 0));
        assert!(!super::is_init_export("lex_init", 1));
        assert!(!super::is_init_export("_init", 0));
        assert!(!super::is_init_export("initialize", 0));
    }
}
