//! Live relocation at scale, on 4 cores, under BIOS and under UEFI: the `hot` chunk's three
//! islands (`spin` calls `tree`, `tree` recurses and calls `mix`), each running on cores 1-3 with
//! RIPs and return addresses inside them, are moved 1,000 times by `reloc-stress`, alternating
//! between a 2 MiB page and 4 KiB pages and between cores (the threads found inside follow).
//! Then:
//! - every run of the task returned the host reference's value (wasmi through `chunkc run`'s
//!   library on the same image), no run was lost, and nothing faulted;
//! - the moves caught threads inside: RIPs, return addresses and `call` sites in other islands
//!   were all rewritten (a run that never caught a thread would prove nothing), and threads
//!   moved with their island;
//! - each kind of environment change is visible where it must be: `islands --json` reads the
//!   page size from the page tables (2 MiB after `large`, 4 KiB after `small`), the home core
//!   after `core N`, and `threads --json` shows a running task's thread on that core;
//! - `islands --json` shows calls and sampled cycles growing while a task is still running;
//! - bad targets are refused with `error: ...`.
//!
//! Run alone with `cargo test -p tools --release --test qemu_reloc_stress -- --test-threads 2`
//! after `scripts/build.sh --firmware all --console`.

use std::time::Duration;

use tools::qemu::reference::result_of;
use tools::qemu::threads::{find, threads};
use tools::qemu::{Checks, Json, Machine, Options};

/// Moves the stress makes.
const MOVES: u64 = 1000;
/// What each core runs over and over during the stress.
const STRESS_ARGS: [&str; 2] = ["60", "18"];
/// How long the stress may take (about two minutes on an idle machine).
const STRESS_TIMEOUT: Duration = Duration::from_secs(1500);

/// The host reference's result of `hot.<export> args`.
fn reference(export: &str, args: &[&str]) -> String {
    result_of(&format!("hot.{export}"), args)
}

fn u64_of(j: &Json, key: &str) -> u64 {
    j.get(key).and_then(Json::as_u64).unwrap_or(0)
}

/// `islands hot --json`, by function name.
fn hot_islands(c: &mut Checks, m: &mut Machine) -> Vec<(String, Json)> {
    let out = m.command("islands hot --json");
    let j = c.json("islands hot --json", &out);
    j.get("islands")
        .and_then(Json::as_array)
        .map(|l| {
            l.iter()
                .map(|i| {
                    let f = i.get("function").and_then(Json::as_str).unwrap_or("");
                    (f.to_string(), i.clone())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn island<'a>(list: &'a [(String, Json)], function: &str) -> Option<&'a Json> {
    list.iter().find(|(f, _)| f == function).map(|(_, j)| j)
}

/// Moves `id` to `target` and checks the report and `islands --json` agree with it: the new
/// address, the page size as the page tables say, the home core.
fn move_and_check(
    c: &mut Checks,
    m: &mut Machine,
    id: u64,
    target: &str,
    page_bytes: u64,
    core: Option<u64>,
) -> Json {
    let cmd = format!("relocate {id} {target} --json");
    let out = m.command(&cmd);
    let r = c.json(&cmd, &out);
    c.check(u64_of(&r, "page_bytes") == page_bytes, || {
        format!("`{cmd}`: page_bytes should be {page_bytes}: {out}")
    });
    let now = hot_islands(c, m);
    match now.iter().map(|(_, j)| j).find(|j| u64_of(j, "id") == id) {
        Some(j) => {
            c.check(u64_of(j, "address") == u64_of(&r, "to"), || {
                format!("after `{cmd}` ({out}) the island is at {j}")
            });
            c.check(u64_of(j, "page_bytes") == page_bytes, || {
                format!("after `{cmd}` the page tables map the island with {j}")
            });
            if let Some(core) = core {
                c.check(j.get("core").and_then(Json::as_u64) == Some(core), || {
                    format!("after `{cmd}` the island's home core is {j}")
                });
            }
            c.check(u64_of(j, "env_page_bytes") == page_bytes, || {
                format!("after `{cmd}` the environment records {j}")
            });
            let last = j["history"].as_array().and_then(|h| h.last());
            c.check(
                last.is_some_and(|h| {
                    u64_of(h, "to") == u64_of(&r, "to")
                        && u64_of(h, "from") == u64_of(&r, "from")
                        && u64_of(h, "page_bytes") == page_bytes
                }),
                || format!("after `{cmd}` the history's last move is not this one: {j}"),
            );
        }
        None => c.fail(format!("island {id} gone after `{cmd}`")),
    }
    r
}

/// Runs `reloc-stress` and checks every run returned the reference and no move failed;
/// returns the report.
fn stress_run(c: &mut Checks, m: &mut Machine, task: &str, args: &[&str], extra: &str) -> Json {
    let want = result_of(task, args);
    let cmd = format!("reloc-stress {task} {} {extra} --json", args.join(" "));
    let all = m.command_within(&cmd, STRESS_TIMEOUT);
    // The task may print (pipeline does): the report is the line that starts the JSON object.
    let out = all
        .lines()
        .find(|l| l.starts_with("{\"task\""))
        .unwrap_or(&all)
        .to_string();
    let s = c.json(&cmd, &out);
    eprintln!("{cmd}: {out}");
    c.check(
        u64_of(&s, "failures") == 0 && u64_of(&s, "moves") > 0,
        || format!("`{cmd}`: every move should complete: {out}"),
    );
    c.check(u64_of(&s, "lost") == 0, || {
        format!("`{cmd}`: runs lost: {out}")
    });
    let results = s
        .get("results")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    c.check(!results.is_empty(), || {
        format!("`{cmd}`: no run finished: {out}")
    });
    for r in &results {
        c.check(
            r.get("value").and_then(Json::as_str) == Some(want.as_str()),
            || format!("`{cmd}`: a run returned {r}, the reference {want}"),
        );
    }
    s
}

/// Code addresses held by value are re-targeted too: `pipeline` calls `json`, `crc32` and `lz`
/// through imports bound to their exports; moving those providers' islands while pipelines run
/// rewrites the import bindings, and every run still returns the reference. `hot.spin_indirect`
/// calls `mix` through a funcref table while `mix` moves. `hot.switch` dispatches through a
/// jump table while its island moves.
#[test]
fn imports_and_tables_follow_their_islands() {
    let mut m = Machine::boot(Options::bios().smp(4));
    let mut c = Checks::new();
    for provider in ["json", "crc32", "lz"] {
        let s = stress_run(
            &mut c,
            &mut m,
            "pipeline.pipeline",
            &["1024"],
            &format!("--islands {provider} --count 60 --cores 1,2,3"),
        );
        c.check(u64_of(&s, "code_pointers_retargeted") > 0, || {
            format!("moving {provider}'s islands should re-point pipeline's imports: {s}")
        });
    }
    let s = stress_run(
        &mut c,
        &mut m,
        "hot.spin_indirect",
        &["60", "18"],
        "--count 90 --cores 1,2,3",
    );
    // The table holds a funcref, which reads `mix`'s relocation cell at every call: the
    // cell is re-pointed in the pause, so the results above are the proof.
    c.check(u64_of(&s, "moves") >= 90, || format!("{s}"));
    // `hot.switch` dispatches every step through a `br_table` jump table, whose entries are
    // found by `rip`-relative `lea`s: the moves re-target them while threads run inside, and
    // every run still returns the reference. (A thread stopped between a `lea rax, [rip + ..]`
    // and its `jmp rax` makes the round retry, counted as `dispatch_window`; under TCG an NMI
    // is taken only between translation blocks, so it never lands there: the walk's side is
    // tested on the host, `atoll-island`'s `jump_table_dispatch_windows_are_retries...`.)
    let s = stress_run(
        &mut c,
        &mut m,
        "hot.switch",
        &["300000", "7"],
        "--count 200 --cores 1,2,3",
    );
    c.check(
        u64_of(&s, "rips_rewritten") > 0 && u64_of(&s, "moves_with_threads_inside") > 0,
        || format!("no move caught a thread dispatching in hot.switch: {s}"),
    );
    c.check(!m.serial_log().contains("*** "), || {
        "a fault or panic was reported".into()
    });
    c.finish(&m);
}

/// Ends the long background task's thread; the kernel must accept it.
fn kill(c: &mut Checks, m: &mut Machine, thread: u64) {
    let out = m.command(&format!("kill {thread}"));
    c.check(!out.starts_with("error"), || {
        format!("kill {thread}: {out}")
    });
}

fn stress(options: Options) {
    let mut m = Machine::boot(options.smp(4));
    let mut c = Checks::new();
    let want_tree = reference("tree", &["10"]);
    let out = m.command("run hot.tree 10");
    c.check(out.trim() == want_tree, || {
        format!("`run hot.tree 10`: {out:?}, reference {want_tree}")
    });
    let list = hot_islands(&mut c, &mut m);
    let (Some(tree), Some(_), Some(_)) = (
        island(&list, "tree"),
        island(&list, "mix"),
        island(&list, "spin"),
    ) else {
        c.fail(format!(
            "`islands hot --json` lacks mix, tree or spin: {list:?}"
        ));
        return c.finish(&m);
    };
    let tree = u64_of(tree, "id");

    let registered = |c: &mut Checks, m: &mut Machine| {
        let out = m.command("reloc-stats --json");
        u64_of(&c.json("reloc-stats --json", &out), "instances_registered")
    };
    let before = registered(&mut c, &mut m);
    for bad in [
        format!("relocate {tree} core 99"),
        format!("relocate {tree} node 7"),
        format!("relocate {tree} core"),
        format!("relocate {tree} large 3"),
        format!("relocate {tree} huge"),
        "reloc-stress hot.spin 1 1 --cores 1,x".to_string(),
        "reloc-stress hot.nope --count 1".to_string(),
        "reloc-stress nochunk.spin --count 1".to_string(),
    ] {
        let out = m.command(&bad);
        c.error_line(&bad, &out);
    }
    // Refused tasks leave no instance behind for the relocation engine to re-target.
    let after = registered(&mut c, &mut m);
    c.check(after == before, || {
        format!("instances registered: {before} before the refused commands, {after} after")
    });

    // A long task on core 1: its counters and cycles grow while it runs, and it follows its
    // island to another core.
    let cmd = "run hot.spin 100000 20 --core 1 --background --json";
    let out = m.command(cmd);
    let j = c.json(cmd, &out);
    let thread = u64_of(&j, "thread");
    std::thread::sleep(Duration::from_secs(2));
    let before = hot_islands(&mut c, &mut m);
    std::thread::sleep(Duration::from_secs(2));
    let after = hot_islands(&mut c, &mut m);
    for f in ["mix", "tree"] {
        let (b, a) = (island(&before, f), island(&after, f));
        let grew = |key: &str| {
            a.zip(b)
                .is_some_and(|(a, b)| u64_of(a, key) > u64_of(b, key))
        };
        c.check(grew("calls") && grew("blocks"), || {
            format!("{f}: calls and blocks should grow while the task runs: {b:?} -> {a:?}")
        });
        if f == "tree" {
            c.check(grew("sampled_cycles"), || {
                format!("tree: sampled cycles should grow while the task runs: {b:?} -> {a:?}")
            });
        }
    }
    // The rates of the last window (closed by `islands`, at least a second long) and the
    // dependencies from the call sites.
    let ids: Vec<u64> = ["mix", "tree", "spin"]
        .iter()
        .map(|f| island(&after, f).map_or(u64::MAX, |j| u64_of(j, "id")))
        .collect();
    if let Some(t) = island(&after, "tree") {
        c.check(
            u64_of(t, "calls_per_second") > 0 && u64_of(t, "priority") > 0,
            || format!("tree runs: its calls per second and priority should be nonzero: {t}"),
        );
        let deps = |key: &str| -> Vec<u64> {
            t["dependencies"][key]
                .as_array()
                .map(|l| l.iter().filter_map(Json::as_u64).collect())
                .unwrap_or_default()
        };
        c.check(
            deps("calls") == [ids[0]] && deps("called_by").contains(&ids[2]),
            || {
                format!(
                    "tree calls mix ({}) and is called by spin ({}): {t}",
                    ids[0], ids[2]
                )
            },
        );
    }
    move_and_check(&mut c, &mut m, tree, "large", 2 << 20, None);
    let r = move_and_check(&mut c, &mut m, tree, "core 3", 2 << 20, Some(3));
    c.check(u64_of(&r, "threads_migrated") >= 1, || {
        format!("the task running in `tree` should have moved with it: {r}")
    });
    // The migration is asked for after the release and happens at the thread's next switch:
    // poll (the host may be slow), but the thread must end up on core 3.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let on = loop {
        let list = threads(&mut c, &mut m);
        let core = find(&list, thread).map(|t| t.core);
        if core == Some(3) || std::time::Instant::now() > deadline {
            break core;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    c.check(on == Some(3), || {
        format!("thread {thread} is on core {on:?}, not core 3, after its island moved there")
    });
    move_and_check(&mut c, &mut m, tree, "small", 4096, Some(3));
    kill(&mut c, &mut m, thread);

    // The stress: every move completes and every run returns the reference (`stress_run`),
    // and the moves really caught threads inside the islands.
    let s = stress_run(
        &mut c,
        &mut m,
        "hot.spin",
        &STRESS_ARGS,
        &format!("--count {MOVES} --cores 1,2,3"),
    );
    c.check(
        u64_of(&s, "moves") >= MOVES && u64_of(&s, "runs") >= 3,
        || format!("{MOVES} moves and several runs expected: {s}"),
    );
    for key in [
        "to_large",
        "to_small",
        "core_moves",
        "rips_rewritten",
        "return_addresses_rewritten",
        "call_sites_patched",
        "threads_migrated",
    ] {
        c.check(u64_of(&s, key) > 0, || {
            format!("the stress: {key} is 0: {s}")
        });
    }

    // After every move: the entry path reaches the islands, and nothing faulted.
    let out = m.command("run hot.spin 3 10");
    let want_small = reference("spin", &["3", "10"]);
    c.check(out.trim() == want_small, || {
        format!("`run hot.spin 3 10` after the stress: {out:?}, reference {want_small}")
    });
    let out = m.command("reloc-stats --json");
    let stats = c.json("reloc-stats --json", &out);
    eprintln!("reloc-stats: {out}");
    c.check(u64_of(&stats, "failures") == 0, || {
        format!("reloc-stats: {out}")
    });
    // Every retried round has one reason (the reasons add up to `retries`), and the
    // jump-table reason is reported (`dispatch_window`, though under TCG it stays 0).
    let reasons = stats.get("retries_by_reason").and_then(Json::as_object);
    let sum: Option<u64> = reasons
        .filter(|r| r.contains_key("dispatch_window"))
        .and_then(|r| r.values().map(Json::as_u64).sum());
    c.check(sum == Some(u64_of(&stats, "retries")), || {
        format!("retries_by_reason lacks dispatch_window or does not add up to retries: {out}")
    });
    c.check(!m.serial_log().contains("*** "), || {
        "a fault or panic was reported".into()
    });
    c.finish(&m);
}

#[test]
fn a_thousand_moves_across_cores_and_page_sizes_bios() {
    stress(Options::bios());
}

#[test]
fn a_thousand_moves_across_cores_and_page_sizes_uefi() {
    stress(Options::uefi());
}

/// On a machine with two NUMA nodes (cores 0-1 on node 0, 2-3 on node 1): `node n` and `core n`
/// moves put the island's code in that node's memory, as the page tables and the SRAT say
/// (`memory_node`), in 4 KiB and 2 MiB pages, the running task follows `core n`, and a stress
/// whose core moves cross nodes keeps every result equal to the reference.
#[test]
fn moves_between_numa_nodes() {
    let mut m = Machine::boot(Options::bios().smp(4).numa(2));
    let mut c = Checks::new();
    let out = m.command("run hot.tree 10");
    c.check(out.trim() == reference("tree", &["10"]), || {
        format!("`run hot.tree 10`: {out:?}")
    });
    let list = hot_islands(&mut c, &mut m);
    let Some(tree) = island(&list, "tree").map(|j| u64_of(j, "id")) else {
        c.fail(format!("no tree island: {list:?}"));
        return c.finish(&m);
    };
    let cmd = "run hot.spin 100000 20 --core 1 --background --json";
    let out = m.command(cmd);
    let j = c.json(cmd, &out);
    let thread = u64_of(&j, "thread");
    std::thread::sleep(Duration::from_secs(1));
    // (target, page bytes, node the code must be on, home core)
    for (target, page, node, core) in [
        ("node 1", 4096, 1, None),
        ("core 2", 4096, 1, Some(2)),
        ("large", 2 << 20, 1, Some(2)),
        ("core 0", 2 << 20, 0, Some(0)),
        ("node 1", 2 << 20, 1, Some(0)),
        ("small", 4096, 1, Some(0)),
    ] {
        let r = move_and_check(&mut c, &mut m, tree, target, page, core);
        c.check(u64_of(&r, "node") == node, || {
            format!("`relocate {tree} {target}` should place the code on node {node}: {r}")
        });
        let now = hot_islands(&mut c, &mut m);
        let here = island(&now, "tree").map(|j| j["memory_node"].as_u64());
        c.check(here == Some(Some(node)), || {
            format!("after `{target}` the page tables put tree's code on node {here:?}, not {node}")
        });
    }
    let out = m.command(&format!("relocate {tree} node 2"));
    c.error_line("relocate to a node that does not exist", &out);
    kill(&mut c, &mut m, thread);
    let s = stress_run(
        &mut c,
        &mut m,
        "hot.spin",
        &STRESS_ARGS,
        "--count 100 --cores 1,2,3",
    );
    c.check(
        u64_of(&s, "core_moves") > 0 && u64_of(&s, "threads_migrated") > 0,
        || format!("core moves across nodes should carry threads: {s}"),
    );
    c.check(!m.serial_log().contains("*** "), || {
        "a fault or panic was reported".into()
    });
    c.finish(&m);
}
