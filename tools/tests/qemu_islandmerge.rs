//! Merging and splitting islands while they run, in one boot on 3 cores under `-icount`:
//! - by hand (`islands merge`, `islands split`), again and again while a long `hot.spin` task
//!   (a recursive `tree` calling `mix` at every node) runs inside the code being reshaped: each merge puts both islands' functions contiguous in one
//!   new place (not where either was), `islands --json` shows the membership change, each split
//!   gives the second part a new island at yet another place; threads caught inside had their
//!   RIPs and return addresses rewritten, and the task still returns the host reference's
//!   result; bad requests get `error: ...`;
//! - by the engine on its own during the phased workload (`phased --engine on`): merges and
//!   splits counted by `autoreloc status --json`, each logged by `engine-log --json` with its
//!   reason, islands' membership changed in `islands --json`, every task result equal to the
//!   host reference.
//!
//! Run alone with `cargo test -p tools --release --test qemu_islandmerge -- --test-threads 2`
//! after `scripts/build.sh --firmware all --console`.

use std::time::Duration;

use tools::qemu::reference::{result_of, wait_tasks};
use tools::qemu::{Checks, Json, Machine, Options};

/// How long one `phased` run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);
/// Rounds and tree depth of the long task (long enough for the reshapes below).
const LONG_TASK: [&str; 2] = ["1500", "18"];
/// Merge-and-split rounds made while it runs.
const ROUNDS: usize = 6;

fn u(j: &Json, key: &str) -> u64 {
    j.get(key).and_then(Json::as_u64).unwrap_or(0)
}

fn command_json(c: &mut Checks, m: &mut Machine, cmd: &str) -> Json {
    let out = m.command_within(cmd, RUN_TIMEOUT);
    eprintln!("{cmd}: {}", out.chars().take(2000).collect::<String>());
    c.json(cmd, &out)
}

fn islands(c: &mut Checks, m: &mut Machine, chunk: &str) -> Vec<Json> {
    let j = command_json(c, m, &format!("islands {chunk} --json"));
    j["islands"].as_array().cloned().unwrap_or_default()
}

fn island(list: &[Json], id: u64) -> Option<&Json> {
    list.iter().find(|i| u(i, "id") == id)
}

/// Whether no live island covers `addr`.
fn vacated(list: &[Json], addr: u64) -> bool {
    !list
        .iter()
        .any(|i| addr >= u(i, "address") && addr < u(i, "address") + u(i, "size_bytes"))
}

#[test]
fn islands_merge_and_split_while_they_run() {
    let mut m = Machine::boot(Options::bios().smp(3).icount());
    let mut c = Checks::new();

    // hot assembled; the recursive `tree` and the island it calls (`mix`).
    let first = m.command("run hot.spin 2 3");
    c.check(first.contains(&result_of("hot.spin", &["2", "3"])), || {
        format!("hot.spin 2 3: {first}")
    });
    let list = islands(&mut c, &mut m, "hot");
    let Some(entry) = list.iter().find(|i| i["function"] == "tree").cloned() else {
        c.fail(format!("no tree island: {list:?}"));
        c.finish(&m);
        return;
    };
    let root = u(&entry, "id");
    let callee = entry["dependencies"]["calls"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(Json::as_u64)
        .filter(|&id| id != root)
        .filter_map(|id| island(&list, id).cloned())
        .max_by_key(|i| u(i, "calls"));
    let Some(callee) = callee else {
        c.fail(format!("tree calls no other island: {entry}"));
        c.finish(&m);
        return;
    };
    let (callee_id, callee_name) = (
        u(&callee, "id"),
        callee["function"].as_str().unwrap_or("").to_string(),
    );
    c.check(u(&callee, "calls") > 0, || {
        format!("its hottest callee ran: {callee}")
    });

    for bad in [
        format!("islands merge {root} {root}"),
        "islands merge 99999 1".to_string(),
        format!("islands merge {root}"),
        format!("islands split {root} 0"),
        format!("islands split {root} 1"),
        "islands split x 1".to_string(),
    ] {
        let out = m.command(&bad);
        c.error_line(&bad, &out);
    }

    // A long task on each work core, started again whenever one ends, so every round has
    // threads inside the code it reshapes.
    let start = |c: &mut Checks, m: &mut Machine, core: u32| {
        let cmd = format!(
            "run hot.spin {} --core {core} --background --json",
            LONG_TASK.join(" ")
        );
        let out = m.command(&cmd);
        u(&c.json(&cmd, &out), "task_id")
    };
    let mut tasks = vec![start(&mut c, &mut m, 1), start(&mut c, &mut m, 2)];

    let mut rewritten = (0, 0);
    let mut while_running = 0;
    let mut tail = callee_id;
    for round in 0..ROUNDS {
        let running = running_tasks(&mut c, &mut m);
        for core in 1..=2u32 {
            let busy = tasks
                .iter()
                .any(|t| running.iter().any(|(id, on)| id == t && *on == core));
            if !busy {
                tasks.push(start(&mut c, &mut m, core));
            }
        }
        let before = islands(&mut c, &mut m, "hot");
        let (a, b) = (
            island(&before, root).cloned(),
            island(&before, tail).cloned(),
        );
        let (Some(a), Some(b)) = (a, b) else {
            c.fail(format!(
                "round {round}: islands {root} and {tail} should exist: {before:?}"
            ));
            break;
        };
        let merged = command_json(
            &mut c,
            &mut m,
            &format!("islands merge {root} {tail} --json"),
        );
        let after = islands(&mut c, &mut m, "hot");
        let Some(mi) = island(&after, root).cloned() else {
            c.fail(format!(
                "round {round}: merged island {root} gone: {after:?}"
            ));
            break;
        };
        // One island holding both, contiguous at a new address, neither old range used.
        let (addr, size) = (u(&mi, "address"), u(&mi, "size_bytes"));
        let sum = u(&a, "size_bytes") + u(&b, "size_bytes");
        c.check(
            mi["function"].as_str() == Some(&format!("tree+{callee_name}")),
            || format!("round {round}: merged membership: {mi}"),
        );
        c.check(island(&after, tail).is_none(), || {
            format!("round {round}: island {tail} should be merged away: {after:?}")
        });
        c.check(addr != u(&a, "address") && addr != u(&b, "address"), || {
            format!(
                "round {round}: the merged island must be at a new address: {mi} from {a} and {b}"
            )
        });
        c.check(size * 2 >= sum && size <= sum * 2, || {
            format!("round {round}: merged size {size} for {sum} bytes of code")
        });
        c.check(
            vacated(&after, u(&a, "address")) && vacated(&after, u(&b, "address")),
            || format!("round {round}: old ranges still used: {after:?}"),
        );
        let res = &merged["results"][0];
        c.check(
            u(res, "address") == addr && u(res, "size_bytes") == size,
            || format!("round {round}: merge report {merged} vs islands {mi}"),
        );

        let split = command_json(&mut c, &mut m, &format!("islands split {root} 1 --json"));
        let new = u(&split, "other");
        let after = islands(&mut c, &mut m, "hot");
        let (h, t) = (island(&after, root).cloned(), island(&after, new).cloned());
        let ok = match (&h, &t) {
            (Some(h), Some(t)) => {
                h["function"] == "tree"
                    && t["function"].as_str() == Some(callee_name.as_str())
                    && u(h, "address") != addr
                    && u(t, "address") != addr
                    && vacated(&after, addr)
            }
            _ => false,
        };
        c.check(ok, || {
            format!(
                "round {round}: split of {root} into {root} and {new}: {split}; now {h:?} and {t:?}"
            )
        });
        tail = new;
        let mut inside = false;
        for r in [&merged, &split] {
            rewritten.0 += u(r, "rips_rewritten");
            rewritten.1 += u(r, "return_addresses_rewritten");
            inside |= u(r, "rips_rewritten") + u(r, "return_addresses_rewritten") > 0;
        }
        while_running += usize::from(inside);
    }
    c.check(while_running >= 2, || {
        format!(
            "only {while_running} merge-and-split rounds caught the task inside: make it longer"
        )
    });
    c.check(rewritten.0 + rewritten.1 > 0, || {
        format!(
            "no thread was caught inside the reshaped code (RIPs, return addresses {rewritten:?})"
        )
    });
    let want = result_of("hot.spin", &LONG_TASK);
    let done = wait_tasks(&mut c, &mut m, &tasks);
    for (id, (state, outcome)) in tasks.iter().zip(&done) {
        c.check(state == "done" && *outcome == want, || {
            format!(
                "task {id} ran inside the reshaped code: {state} {outcome}, the reference {want}"
            )
        });
    }
    eprintln!(
        "by hand: {ROUNDS} merges and splits, {while_running} with the task inside; rewritten: {} RIPs, {} return addresses",
        rewritten.0, rewritten.1
    );

    // The engine on its own, on the phased workload.
    let run = command_json(
        &mut c,
        &mut m,
        "phased --engine on --rounds 8 --per-phase 20 --json",
    );
    let run = &run["run"];
    c.check(
        u(run, "lost") == 0 && u(run, "tasks") == 8 * 3 * 2 * 20,
        || format!("phased: {run}"),
    );
    let results = run["results"].as_array().cloned().unwrap_or_default();
    c.check(results.len() == 3, || format!("three tasks: {run}"));
    for r in &results {
        let task = r["task"].as_str().unwrap_or("");
        let args = r["args"].as_str().unwrap_or("");
        let want = result_of(task, &args.split_whitespace().collect::<Vec<_>>());
        c.check(r["value"].as_str() == Some(want.as_str()), || {
            format!("{task} {args} returned {r}, the reference {want}")
        });
    }
    let s = command_json(&mut c, &mut m, "autoreloc status --json");
    eprintln!(
        "engine: {} merges, {} splits, {} failed",
        u(&s, "merges"),
        u(&s, "splits"),
        u(&s, "regroup_failures")
    );
    c.check(u(&s, "merges") > 0, || {
        format!("the engine merged nothing: {s}")
    });
    c.check(u(&s, "splits") > 0, || {
        format!("the engine split nothing: {s}")
    });
    let log = command_json(&mut c, &mut m, "engine-log --json");
    let entries = log["entries"].as_array().cloned().unwrap_or_default();
    let reshapes: Vec<&Json> = entries
        .iter()
        .filter(|e| e["action"] == "merge" || e["action"] == "split")
        .collect();
    c.check(
        reshapes.len() as u64 == u(&s, "merges") + u(&s, "splits") + u(&s, "regroup_failures"),
        || {
            format!(
                "one log entry per merge or split: {} vs {s}",
                reshapes.len()
            )
        },
    );
    for e in &reshapes {
        let reason = e["reason"].as_str().unwrap_or("");
        let want = if e["action"] == "merge" {
            "run together"
        } else {
            "part hot, part cold"
        };
        c.check(reason.starts_with(want), || format!("reason of {e}"));
        c.check(e["fate"] == "done" || e["fate"] == "failed", || {
            format!("{e}")
        });
    }
    let now = islands(&mut c, &mut m, "");
    let merged_now = now
        .iter()
        .filter(|i| i["function"].as_str().unwrap_or("").contains('+'))
        .count();
    let split_made = reshapes
        .iter()
        .filter_map(|e| e["new"].as_u64())
        .filter(|id| island(&now, *id).is_some())
        .count();
    c.check(merged_now > 0 || split_made > 0, || {
        format!("islands --json shows no island the engine merged or split: {now:?}")
    });
    let stats = command_json(&mut c, &mut m, "reloc-stats --json");
    c.check(
        u(&stats, "merges") >= u(&s, "merges") + ROUNDS as u64,
        || format!("{stats}"),
    );
    c.check(!m.serial_log().contains("*** "), || {
        "a fault or panic was reported".into()
    });
    c.finish(&m);
}

/// Ids and cores of the tasks running now.
fn running_tasks(c: &mut Checks, m: &mut Machine) -> Vec<(u64, u32)> {
    let out = m.command("tasks --json");
    let j = c.json("tasks --json", &out);
    j["tasks"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|t| t["state"] == "running")
                .map(|t| (u(t, "id"), u(t, "core") as u32))
                .collect()
        })
        .unwrap_or_default()
}
