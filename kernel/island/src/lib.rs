//! Code islands and their relocation: the pure, hardware-free core (no_std + alloc, no
//! `unsafe`, tested on the host). The kernel stops the world and writes memory; this crate says
//! what to write.
//!
//! - [`island`]: an island is a contiguous run of an assembled module's code: one function by
//!   default, or a group of functions, or every function of the module ([`Grouping`]). An
//!   [`IslandSet`] holds every island of every registered module with a sorted address index
//!   ([`IslandSet::locate`], binary search). A module's entry trampoline and trap stubs are
//!   its *anchor*: they never move.
//! - [`profile`]: calls and block counts (from the block counters), sampled cycles (an
//!   interrupted RIP attributed to the island holding it), rates, dependencies (from call
//!   sites) and the relocation priority. [`env`]: where an island runs and its last moves.
//! - [`copy`]: the relocated copy (iced-x86 decode at the old address, `BlockEncoder` at the
//!   new one) and the old-to-new instruction [`BoundaryMap`].
//! - [`patch`]: `call rel32` sites in other islands that call into a moved island, and code
//!   pointers by value (exports, `funcref` tables, import bindings).
//! - [`refs`]: the frame-pointer walk that finds every reference of a stopped thread into the
//!   moving island (its RIP, return-address slots) or answers `Retry` with the reason.
//!
//! # Protocol split
//!
//! Outside the pause (may allocate): [`IslandSet::prepare_move`] re-encodes the island for its
//! new address, translates its layout and plans the call patches into a [`PreparedMove`]. Inside
//! the pause (allocates and frees nothing): [`refs::find_references`] per thread into a
//! caller-provided buffer, [`PreparedMove::translate`] / [`patch::retarget_code_pointers`] for
//! tables, and [`IslandSet::commit_move`], which leaves the old layout in the `PreparedMove` to
//! be dropped after the world resumes. Protocol and proofs: `docs/relocation.md`.
//!
//! # Invariants
//!
//! - An island's layout (function ranges, frame windows, call sites, instruction starts) is in
//!   island-relative offsets of its *current* code; a move carries it through the boundary map,
//!   so every offset stays an instruction start of the code actually mapped.
//! - Every island function starts `push rbp; mov rbp, rsp`, writes `rbp` nowhere else, and every
//!   `leave` is directly followed by `ret` (checked by decoding when the island is built): the
//!   only places where `rbp` is not the function's frame are the three [`layout::Window`]s.
//! - Islands never overlap each other or an anchor; the copy must not overlap the old code
//!   (threads still run there until the pause).
//! - A [`PreparedMove`] is valid only for the set generation it was prepared against: a commit
//!   or walk against a changed set is refused. The same holds for a [`PreparedReshape`] (a merge
//!   of two islands or a split of one: several old ranges moved in one pause, `island::reshape`);
//!   the walk takes either as a [`Relocation`].
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod copy;
pub mod env;
pub mod island;
pub mod layout;
pub mod patch;
pub mod profile;
pub mod refs;

#[cfg(test)]
mod testutil;

pub use copy::{BoundaryMap, CopyError, RelocatedCode, relocate};
pub use env::{Environment, History, MoveRecord, PageSize};
pub use island::reshape::{NewCode, Part, PreparedReshape, ReshapeKind};
pub use island::{
    Grouping, Island, IslandError, IslandId, IslandSet, Location, ModuleId, MoveStats,
    PreparedMove, Relocation, Translation,
};
pub use refs::{
    RefKind, Reference, RetryReason, StackMemory, ThreadContext, Walk, WalkEnd, find_references,
    find_references_to,
};
