//! The guest's threads as tests see them: `threads --json` parsed, and `spawn counter`.

use super::{Checks, Json, Machine};

/// One thread from `threads --json`.
#[derive(Debug, Clone)]
pub struct Thread {
    /// Thread id.
    pub id: u64,
    /// Its name (`shell`, `idle0`, `counter`, ...).
    pub name: String,
    /// The core it belongs to.
    pub core: u64,
    /// `running`, `ready`, `sleeping`, `blocked`, `suspended` or `dead`.
    pub state: String,
    /// Its counter (test workloads bump it).
    pub counter: u64,
}

/// Runs `threads --json` and parses every thread (recording failures in `c`).
pub fn threads(c: &mut Checks, m: &mut Machine) -> Vec<Thread> {
    let out = m.command("threads --json");
    let j = c.json("threads --json", &out);
    let list = j
        .get("threads")
        .and_then(Json::as_array)
        .map_or(&[][..], Vec::as_slice);
    c.check(!list.is_empty(), || {
        format!("`threads --json`: no threads: {out}")
    });
    list.iter()
        .map(|t| Thread {
            id: c.u64("threads --json", t, "id"),
            name: t.get("name").and_then(Json::as_str).unwrap_or("").into(),
            core: c.u64("threads --json", t, "core"),
            state: t.get("state").and_then(Json::as_str).unwrap_or("").into(),
            counter: c.u64("threads --json", t, "counter"),
        })
        .collect()
}

/// The thread with `id` in a list.
pub fn find(list: &[Thread], id: u64) -> Option<&Thread> {
    list.iter().find(|t| t.id == id)
}

/// Starts a counting thread on `core`; returns its id.
pub fn spawn_counter(c: &mut Checks, m: &mut Machine, core: u64) -> u64 {
    let cmd = format!("spawn counter --core {core} --json");
    let out = m.command(&cmd);
    let j = c.json(&cmd, &out);
    c.u64(&cmd, &j, "id")
}
