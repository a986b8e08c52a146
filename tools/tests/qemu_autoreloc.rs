//! The predictive relocation engine in one boot on 3 cores under `-icount` (the console on core
//! 0, two work cores): the phased workload (parse+checksum, checksum+compress, compress+parse,
//! each phase placed on one core, so no fixed placement keeps each phase's two hot tasks
//! apart) runs with the engine off and then on, and once more, longer, with it on. Then:
//! - engine off moves nothing; engine on moves islands by itself (nobody typed `relocate`):
//!   core moves of the phases' hot entry islands, made by the model's predictions and not only
//!   by exploration, to work cores only, and tasks then start on their island's new home core;
//! - every task result equals the host reference (wasmi through `chunkc run`'s library), none
//!   lost, no fault;
//! - throughput with the engine on is at least 85% of off (the ratio is printed; guest time is
//!   guest instructions, which parallel placement cannot shorten, so the figure shows the
//!   engine's cost and the run-to-run spread of about 10%: docs/relocation-engine.md);
//! - the model's mean absolute prediction error over its last four windows of moves is lower
//!   than over its first (it starts from the textbook placement prior and the outcomes
//!   correct it);
//! - `autoreloc status --json` counters add up (decisions = moves + failures; moves = measured,
//!   unmeasured and pending together; kinds sum to the moves; trained = measured),
//!   `engine-log --json` has one entry per decision with benefits in range, and the islands it
//!   moved are where the log says;
//! - a move back to 4 KiB pages an island left reuses its kept copy there, at the same address,
//!   writing fewer bytes than the copy holds (differential copy), and `reloc-stats` counts it;
//! - bad input gets `error: ...`.
//!
//! Run alone with `cargo test -p tools --release --test qemu_autoreloc -- --test-threads 2`
//! after `scripts/build.sh --firmware all --console`.

use std::time::Duration;

use tools::qemu::reference::result_of;
use tools::qemu::{Checks, Json, Machine, Options};

/// How long one `phased` run may take (under half a minute on an idle machine).
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

fn u(j: &Json, key: &str) -> u64 {
    j.get(key).and_then(Json::as_u64).unwrap_or(0)
}

fn command_json(c: &mut Checks, m: &mut Machine, cmd: &str) -> Json {
    let out = m.command_within(cmd, RUN_TIMEOUT);
    eprintln!("{cmd}: {out}");
    c.json(cmd, &out)
}

/// Checks one run's results against the host reference and that none was lost.
fn check_results(c: &mut Checks, what: &str, run: &Json, expected_tasks: u64) {
    c.check(u(run, "lost") == 0, || format!("{what}: tasks lost: {run}"));
    c.check(u(run, "tasks") == expected_tasks, || {
        format!("{what}: {expected_tasks} tasks expected: {run}")
    });
    let results = run["results"].as_array().cloned().unwrap_or_default();
    c.check(results.len() == 3, || format!("{what}: three tasks: {run}"));
    for r in &results {
        let task = r["task"].as_str().unwrap_or("");
        let args = r["args"].as_str().unwrap_or("");
        let want = result_of(task, &args.split_whitespace().collect::<Vec<_>>());
        c.check(r["value"].as_str() == Some(want.as_str()), || {
            format!("{what}: {task} {args} returned {r}, the reference {want}")
        });
    }
}

#[test]
fn the_engine_moves_islands_by_itself_and_learns() {
    let mut m = Machine::boot(Options::bios().smp(3).icount());
    let mut c = Checks::new();

    for bad in [
        "autoreloc maybe",
        "autoreloc",
        "phased --engine maybe",
        "phased --rounds 0",
        "phased --compare --engine on",
        "engine-log --last x",
    ] {
        let out = m.command(bad);
        c.error_line(bad, &out);
    }
    let s0 = command_json(&mut c, &mut m, "autoreloc status --json");
    c.check(u(&s0, "moves") == 0 && s0["enabled"] == false, || {
        format!("a fresh engine is off and has moved nothing: {s0}")
    });

    // Engine off, then on, same workload, one boot.
    let rounds = 6u64;
    let per_phase = 10u64;
    let cmp = command_json(
        &mut c,
        &mut m,
        &format!("phased --compare --rounds {rounds} --per-phase {per_phase} --json"),
    );
    let tasks = rounds * 3 * 2 * per_phase;
    let (off, on) = (cmp["off"].clone(), cmp["on"].clone());
    check_results(&mut c, "engine off", &off, tasks);
    check_results(&mut c, "engine on", &on, tasks);
    c.check(
        u(&off, "moves") == 0 && u(&off, "started_at_home") == 0,
        || format!("engine off must not move anything: {off}"),
    );
    c.check(u(&on, "moves") >= 3 && u(&on, "phase_moves") >= 3, || {
        format!("engine on must move the phases' hot islands by itself: {on}")
    });
    c.check(u(&on, "started_at_home") > 0, || {
        format!("tasks should start on the home core the engine gave their island: {on}")
    });
    let ratio = u(&cmp, "throughput_ratio_milli");
    eprintln!(
        "throughput on/off {ratio}/1000, median latency off/on {}/1000, ahead of phase {}/1000",
        u(&cmp, "latency_ratio_milli"),
        u(&on, "ahead_permille")
    );
    c.check(ratio >= 850, || {
        format!("engine on should not be worse than off: ratio {ratio}/1000: {cmp}")
    });
    c.check(cmp["icount"] == true, || format!("{cmp}"));

    // A longer run with the engine on, for the model to learn from.
    let long = command_json(
        &mut c,
        &mut m,
        "phased --engine on --rounds 10 --per-phase 20 --json",
    );
    check_results(&mut c, "long run", &long["run"], 10 * 3 * 2 * 20);

    let model = command_json(&mut c, &mut m, "model --json");
    let windows: Vec<u64> = model["error_windows_milli"]
        .as_array()
        .map(|w| w.iter().filter_map(Json::as_u64).collect())
        .unwrap_or_default();
    c.check(windows.len() >= 4, || {
        format!("at least four windows of measured moves: {model}")
    });
    if windows.len() >= 4 {
        // The first window (the prior's predictions) against the mean of the last four.
        let last: Vec<u64> = windows[1..].iter().rev().take(4).copied().collect();
        let last_mean = last.iter().sum::<u64>() / last.len() as u64;
        eprintln!("prediction error per window (thousandths): {windows:?}");
        c.check(last_mean < windows[0], || {
            format!(
                "the error over the last windows ({last_mean}) should be lower than over the first ({}): {windows:?}",
                windows[0]
            )
        });
    }

    let s = command_json(&mut c, &mut m, "autoreloc status --json");
    c.check(s["enabled"] == false, || {
        format!("the runs restore the engine's state (off): {s}")
    });
    let (decisions, moves, failures) = (u(&s, "decisions"), u(&s, "moves"), u(&s, "failures"));
    c.check(decisions == moves + failures, || {
        format!("decisions = moves + failures: {s}")
    });
    c.check(
        moves == u(&s, "measured") + u(&s, "unmeasured") + u(&s, "pending"),
        || format!("moves = measured + unmeasured + pending: {s}"),
    );
    c.check(
        moves == u(&s, "core_moves") + u(&s, "to_large") + u(&s, "to_small") + u(&s, "node_moves"),
        || format!("move kinds sum to the moves: {s}"),
    );
    c.check(
        decisions == u(&s, "predicted_moves") + u(&s, "explore_moves"),
        || format!("every decision is predicted or exploring: {s}"),
    );
    c.check(u(&s, "predicted_moves") > 0, || {
        format!("the model must make decisions, not only exploration: {s}")
    });
    c.check(u(&s, "trained") == u(&s, "measured"), || {
        format!("the model trains on every measured move: {s}")
    });
    c.check(u(&model, "trained") <= u(&s, "trained"), || {
        format!("{model} vs {s}")
    });

    let log = command_json(&mut c, &mut m, "engine-log --json");
    let all = log["entries"].as_array().cloned().unwrap_or_default();
    // Merges and splits are logged too (`qemu_islandmerge.rs` checks them).
    let entries: Vec<Json> = all
        .iter()
        .filter(|e| e["action"] == "move")
        .cloned()
        .collect();
    let regroups = u(&s, "merges") + u(&s, "splits") + u(&s, "regroup_failures");
    let kept = (decisions + regroups).min(512);
    c.check(
        all.len() as u64 == kept && (kept == 512 || entries.len() as u64 == decisions),
        || format!("one log entry per decision: {} vs {s}", entries.len()),
    );
    let islands = command_json(&mut c, &mut m, "islands --json");
    let islands = islands["islands"].as_array().cloned().unwrap_or_default();
    for e in &entries {
        if let Some(b) = e["measured_milli"].as_i64() {
            c.check((-1000..=1000).contains(&b), || {
                format!("benefit out of range: {e}")
            });
        }
        c.check(!e["reason"].as_str().unwrap_or("").is_empty(), || {
            format!("every decision has a reason: {e}")
        });
        let to = e["to"].as_str().unwrap_or("");
        if let Some(core) = to.strip_prefix("core ") {
            c.check(core == "1" || core == "2", || {
                format!("core moves go to work cores only: {e}")
            });
        }
    }
    // The last core move of each island is where `islands --json` says it lives.
    for i in &islands {
        let id = u(i, "id");
        let last = entries.iter().rev().find(|e| {
            u(e, "island") == id
                && e["to"].as_str().unwrap_or("").starts_with("core ")
                && e["fate"] != "failed"
        });
        if let Some(e) = last {
            let want = e["to"].as_str().unwrap_or("").trim_start_matches("core ");
            c.check(
                i["core"].as_u64().map(|c| c.to_string()).as_deref() == Some(want),
                || format!("island {id} should live on core {want}: {i} (log {e})"),
            );
            c.check(u(i, "moves") > 0, || format!("{i}"));
        }
    }
    let stats = command_json(&mut c, &mut m, "reloc-stats --json");
    c.check(u(&stats, "count") >= moves, || {
        format!("every engine move went through the relocation protocol: {stats} vs {s}")
    });
    eprintln!(
        "engine moves: {} bytes moved, {} written; all moves: {} and {}, {} kept copies reused",
        u(&s, "bytes"),
        u(&s, "bytes_written"),
        u(&stats, "bytes_moved"),
        u(&stats, "bytes_written"),
        u(&stats, "reused_copies")
    );
    c.check(u(&s, "bytes_written") <= u(&s, "bytes"), || format!("{s}"));
    // Differential copy: an island moved back to 4 KiB pages it left reuses the copy kept
    // there and writes only the bytes that differ.
    let live = |id: u64| islands.iter().any(|i| u(i, "id") == id);
    if let Some(id) = entries.iter().map(|e| u(e, "island")).find(|&id| live(id)) {
        let first = command_json(&mut c, &mut m, &format!("relocate {id} small --json"));
        command_json(&mut c, &mut m, &format!("relocate {id} large --json"));
        let back = command_json(&mut c, &mut m, &format!("relocate {id} small --json"));
        c.check(
            back["reused_copy"] == true && u(&back, "to") == u(&first, "to"),
            || {
                format!(
                    "moving back to 4 KiB pages should reuse the kept copy at {}: {back}",
                    u(&first, "to")
                )
            },
        );
        c.check(u(&back, "bytes_written") < u(&back, "bytes"), || {
            format!("a reused copy writes only the bytes that differ: {back}")
        });
        c.check(u(&first, "bytes_written") <= u(&first, "bytes"), || {
            format!("{first}")
        });
        let after = command_json(&mut c, &mut m, "reloc-stats --json");
        c.check(
            u(&after, "reused_copies") > u(&stats, "reused_copies")
                && u(&after, "bytes_written") < u(&after, "bytes_moved"),
            || format!("reloc-stats should count the reused copy: {after}"),
        );
    }
    c.check(!m.serial_log().contains("*** "), || {
        "a fault or panic was reported".into()
    });
    c.finish(&m);
}
