//! The host side QEMU tests compare the kernel with: a task's result under the reference
//! interpreter (wasmi, `chunkc run`), as the console prints it, and the outcomes of background
//! tasks read back from the console.

use std::time::{Duration, Instant};

use crate::chunkc::run::{Outcome, run_text};
use crate::qemu::{Checks, Json, Machine};

/// An outcome as the console shows it: results separated by spaces, or `trap: MESSAGE`.
pub fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Returned(values) => values
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        Outcome::Trapped(message) => format!("trap: {message}"),
    }
}

/// `task` (`CHUNK.EXPORT`) with `args` run by the reference on `image`, from fresh instances.
pub fn result_in(image: &[u8], task: &str, args: &[String]) -> String {
    let ran = run_text(image, task, args).expect("the reference runs the task");
    outcome_text(&ran.outcome)
}

/// [`result_in`] on the default chunk image.
pub fn result_of(task: &str, args: &[&str]) -> String {
    let image = std::fs::read(super::options::default_chunk_image())
        .expect("default chunk image (built by run-tests.sh or scripts/build.sh)");
    let args: Vec<String> = args.iter().map(|a| (*a).to_string()).collect();
    result_in(&image, task, &args)
}

/// `tasks --json` (state, outcome) of the tasks `ids` now (`missing` for an id not listed).
pub fn task_states(c: &mut Checks, m: &mut Machine, ids: &[u64]) -> Vec<(String, String)> {
    let out = m.command("tasks --json");
    let j = c.json("tasks --json", &out);
    let list = j
        .get("tasks")
        .and_then(Json::as_array)
        .map_or(&[][..], Vec::as_slice);
    ids.iter()
        .map(|id| {
            list.iter()
                .find(|t| t.get("id").and_then(Json::as_u64) == Some(*id))
                .map_or(("missing".into(), String::new()), |t| {
                    let s = |k: &str| t.get(k).and_then(Json::as_str).unwrap_or("").into();
                    (s("state"), s("outcome"))
                })
        })
        .collect()
}

/// `tasks --json` (state, outcome) of the tasks `ids`, once none is running (or after 600 s).
pub fn wait_tasks(c: &mut Checks, m: &mut Machine, ids: &[u64]) -> Vec<(String, String)> {
    let start = Instant::now();
    loop {
        let states = task_states(c, m, ids);
        if states.iter().all(|(s, _)| s != "running") || start.elapsed() > Duration::from_secs(600)
        {
            return states;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
