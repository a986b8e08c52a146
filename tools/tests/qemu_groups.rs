//! Chunks that share a memory, a table and globals (`board`, `writer`, `reader` in the default
//! image) form a linked group in the kernel: one instance each, kept from task to task. Checked
//! here, against the host reference (`chunkc run`'s session, wasmi, the same tasks in order):
//! - the writer writes on core 1 and the reader, on core 0, reads what it wrote: words in the
//!   shared memory, a function the writer put in the shared table (called by the reader through
//!   `call_indirect`, running the writer's code), the shared global, and the memory's size after
//!   the writer grew it;
//! - tasks of a group run one at a time: a reader started while a long writer task holds the
//!   group waits for it and reads the writer's *last* state (the group counts the wait);
//! - one of the writer's functions relocated while its instance lives: later tasks still agree
//!   with the reference;
//! - `groups reset` drops the instances: the next task sees fresh state; a chunk outside any
//!   group is refused with an error.
//!
//! Run alone with `cargo test -p tools --release --test qemu_groups -- --test-threads 2` after
//! `scripts/build.sh --firmware all --console`.

use std::time::{Duration, Instant};

use tools::chunkc::run::run_tasks;
use tools::qemu::reference::outcome_text;
use tools::qemu::{Checks, Json, Machine, Options};

/// The reference results of `tasks` (each `CHUNK.EXPORT ARGS...`) run in order in one session.
fn reference(tasks: &[&str]) -> Vec<String> {
    let bytes = std::fs::read(tools::qemu::options::default_chunk_image())
        .expect("default chunk image (build it first)");
    let mut words = Vec::new();
    for t in tasks {
        words.extend(t.split_whitespace().map(String::from));
        words.push(";".into());
    }
    run_tasks(&bytes, &words)
        .expect("reference runs")
        .iter()
        .map(|r| outcome_text(&r.outcome))
        .collect()
}

/// Runs `task` on `core` with `--json`: (results joined by spaces, core it ran on).
fn run_on(c: &mut Checks, m: &mut Machine, task: &str, core: u32) -> (String, u64) {
    let cmd = format!("run {task} --core {core} --json");
    let out = m.command(&cmd);
    let j = c.json(&cmd, &out);
    let results = j
        .get("results")
        .and_then(Json::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Json::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    (
        results,
        j.get("core").and_then(Json::as_u64).unwrap_or(u64::MAX),
    )
}

fn group(c: &mut Checks, m: &mut Machine) -> Json {
    let out = m.command("groups --json");
    let j = c.json("groups --json", &out);
    j.get("groups")
        .and_then(Json::as_array)
        .and_then(|l| {
            l.iter()
                .find(|g| g.get("name").and_then(Json::as_str) == Some("board"))
        })
        .cloned()
        .unwrap_or(Json::Null)
}

#[test]
fn chunks_sharing_memory_table_and_globals_see_each_others_writes_across_cores() {
    // (task, core) in order; the churn task runs in the background while the next one waits.
    let steps: [(&str, u32); 11] = [
        ("reader.sum 1000", 0),
        ("writer.fill 7 1000", 1),
        ("reader.sum 1000", 0),
        ("writer.install 1 3", 1),
        ("reader.apply 3 9", 0),
        ("writer.grow 2", 1),
        ("reader.status", 0),
        ("writer.churn 3000", 1),
        ("reader.sum 4096", 0),
        ("writer.fill 9 100", 0),
        ("reader.sum 100", 1),
    ];
    let tasks: Vec<&str> = steps.iter().map(|(t, _)| *t).collect();
    let expected = reference(&tasks);
    assert_eq!(
        expected[2], expected[1],
        "the reference reader sees the writer's sum"
    );
    assert_eq!(expected[8], expected[7], "... and the last churn round");
    let fresh = reference(&["reader.status"]);

    let mut m = Machine::boot(Options::bios().smp(2));
    let mut c = Checks::new();
    let g = group(&mut c, &mut m);
    let members: Vec<&str> = g
        .get("members")
        .and_then(Json::as_array)
        .map(|l| l.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    c.check(members == ["board", "writer", "reader"], || {
        format!("group board: {g:?}")
    });

    for (i, (task, core)) in steps.iter().enumerate().take(7) {
        let (got, ran_on) = run_on(&mut c, &mut m, task, *core);
        c.check(got == expected[i] && ran_on == u64::from(*core), || {
            format!(
                "step {i} `{task}` on core {core}: {got:?} on core {ran_on}, reference {:?}",
                expected[i]
            )
        });
    }

    // A long writer task holds the group on core 1; a reader started meanwhile on core 0 waits
    // for it and then sees its last fill.
    let cmd = format!("run {} --core 1 --background --json", steps[7].0);
    let out = m.command(&cmd);
    let j = c.json(&cmd, &out);
    let churn_id = j.get("task_id").and_then(Json::as_u64).unwrap_or(0);
    let start = Instant::now();
    let mut held = false;
    while start.elapsed() < Duration::from_secs(120) {
        let g = group(&mut c, &mut m);
        if g.get("busy").and_then(Json::as_bool) == Some(true) {
            held = true;
            break;
        }
    }
    c.check(held, || "the churn task never held the group".into());
    let waits_before = group(&mut c, &mut m)
        .get("waits")
        .and_then(Json::as_u64)
        .unwrap_or(0);
    let (got, _) = run_on(&mut c, &mut m, steps[8].0, 0);
    c.check(got == expected[8], || {
        format!(
            "reader during the churn: {got:?}, reference (after the last round) {:?}",
            expected[8]
        )
    });
    let out = m.command("tasks --json");
    let churn_done = out.contains(&format!("\"id\":{churn_id},"))
        && out.contains(&format!("\"outcome\":\"{}\"", expected[7]));
    c.check(churn_done, || format!("churn task: {out}"));
    let g = group(&mut c, &mut m);
    let waits = g.get("waits").and_then(Json::as_u64).unwrap_or(0);
    c.check(waits > waits_before, || {
        format!("the reader did not wait for the group: {g:?}")
    });

    // Move the writer's `fill` while its instance lives; the group goes on.
    let out = m.command("islands writer --json");
    let j = c.json("islands writer --json", &out);
    let fill = j
        .get("islands")
        .and_then(Json::as_array)
        .and_then(|l| {
            l.iter()
                .find(|i| i.get("function").and_then(Json::as_str) == Some("fill"))
        })
        .and_then(|i| i.get("id").and_then(Json::as_u64));
    match fill {
        Some(id) => {
            let cmd = format!("relocate {id} small --json");
            let out = m.command(&cmd);
            let j = c.json(&cmd, &out);
            c.check(j.get("to").and_then(Json::as_u64).unwrap_or(0) != 0, || {
                format!("`{cmd}`: {out}")
            });
        }
        None => c.fail(format!("no island for writer's fill: {out}")),
    }
    for (i, (task, core)) in steps.iter().enumerate().skip(9) {
        let (got, _) = run_on(&mut c, &mut m, task, *core);
        c.check(got == expected[i], || {
            format!("step {i} `{task}`: {got:?}, reference {:?}", expected[i])
        });
    }
    let g = group(&mut c, &mut m);
    c.check(
        g.get("tasks").and_then(Json::as_u64) == Some(steps.len() as u64),
        || format!("tasks counted: {g:?}"),
    );

    // Reset: fresh state; a chunk outside any group is refused.
    let out = m.command("groups reset reader --json");
    let j = c.json("groups reset", &out);
    c.check(
        j.get("dropped_instances").and_then(Json::as_u64) == Some(3),
        || format!("reset: {out}"),
    );
    let (got, _) = run_on(&mut c, &mut m, "reader.status", 1);
    c.check(got == fresh[0], || {
        format!("after reset: {got:?}, fresh reference {:?}", fresh[0])
    });
    let out = m.command("groups reset fib");
    c.error_line("groups reset fib", &out);
    c.check(!m.serial_log().contains("*** "), || {
        "a fault or panic was reported".into()
    });
    c.finish(&m);
}
