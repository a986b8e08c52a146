//! Profile-guided specialization in the kernel: every task's arguments are recorded per chunk
//! export (`atoll_pae::ArgProfile`); with `predict specialize on`, a chunk assembled whole
//! (on a miss, or by the pre-assembly worker) gets, for each export parameter that had one
//! value in every recorded call (at least [`MIN_CALLS`] calls), a body with that value folded
//! in behind a guard that falls back to the general body (`atoll_pae::compile_specialized`;
//! the code generator's differential tests check it against wasmi). A chunk already resident
//! keeps its code: `cache clear` (or an eviction) lets the next assembly use the profile.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use atoll_pae::{ArgProfile, Specialize};
use spin::Mutex;

/// Calls an export needs before its constant parameters are trusted.
pub const MIN_CALLS: u64 = 3;

static ON: AtomicBool = AtomicBool::new(false);

struct State {
    profiles: BTreeMap<String, ArgProfile>,
    /// Per chunk, the specializations its resident code was assembled with.
    assembled_with: BTreeMap<String, Vec<Specialize>>,
}

static STATE: Mutex<State> = Mutex::new(State {
    profiles: BTreeMap::new(),
    assembled_with: BTreeMap::new(),
});

/// Turns specialization of chunks assembled from now on on or off.
pub fn set_enabled(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// Whether chunks are specialized when assembled.
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Records a call of `chunk`'s function `func` with `args` (raw bits).
pub fn record(chunk: &str, func: u32, args: &[u64]) {
    let mut s = STATE.lock();
    if !s.profiles.contains_key(chunk) {
        s.profiles.insert(chunk.into(), ArgProfile::new());
    }
    if let Some(p) = s.profiles.get_mut(chunk) {
        p.record(func, args);
    }
}

/// What `chunk` would be specialized on now (nothing when specialization is off).
pub fn constants_of(chunk: &str) -> Vec<Specialize> {
    if !enabled() {
        return Vec::new();
    }
    STATE
        .lock()
        .profiles
        .get(chunk)
        .map(|p| p.constant_params(MIN_CALLS))
        .unwrap_or_default()
}

/// `chunk` was assembled with `specs`.
pub fn note_assembled(chunk: &str, specs: &[Specialize]) {
    STATE
        .lock()
        .assembled_with
        .insert(chunk.into(), specs.to_vec());
}

/// The specializations `chunk`'s last assembly used.
pub fn assembled_with(chunk: &str) -> Vec<Specialize> {
    STATE
        .lock()
        .assembled_with
        .get(chunk)
        .cloned()
        .unwrap_or_default()
}
