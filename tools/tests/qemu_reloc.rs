//! Live relocation proven on running code: on 4 cores (BIOS), one long `fib.fib_rec` task per
//! other core keeps calling and returning through the `fib_rec` island (deep recursion, so its
//! threads' RIPs *and* return addresses are inside it) while the console moves that island to
//! fresh 4 KiB pages at least 100 times. Then:
//! - every task's result equals the reference value (Fibonacci, which `chunks/default.toml`
//!   also expects of `fib_rec` through wasmi) and nothing faulted;
//! - `reloc-stats` shows the moves, no failure, and nonzero RIP *and* return-address rewrites
//!   (a run that never caught a thread inside the island would prove nothing);
//! - `islands --json` shows the island at its last new address, in 4 KiB pages, with its moves
//!   and calls counted; a new task after the moves enters the moved copy (entry cell);
//! - bad input is refused with `error: ...` and the kernel goes on;
//! - a deliberate jump into a copy the island left faults, and the report names the island
//!   (unmapped pages after later moves; `int3` after the first, in a boot of its own).
//!
//! Run alone with `cargo test -p tools --release --test qemu_reloc -- --test-threads 2` after
//! `scripts/build.sh --firmware all --console`.

use std::time::{Duration, Instant};

use tools::qemu::reference::task_states;
use tools::qemu::{Checks, Json, Machine, Options};

/// Moves made while the tasks run.
const MOVES: u64 = 100;
/// `fib_rec(N)` per task: long enough to outlast the moves under TCG.
const N: u64 = 36;
/// How long the tasks may take after the moves.
const TASK_TIMEOUT: Duration = Duration::from_secs(600);

fn fib(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a + b);
    }
    a
}

fn u64_of(j: &Json, key: &str) -> u64 {
    j.get(key).and_then(Json::as_u64).unwrap_or(0)
}

fn fib_rec_island(c: &mut Checks, m: &mut Machine) -> Option<Json> {
    let out = m.command("islands fib --json");
    let j = c.json("islands fib --json", &out);
    j.get("islands")
        .and_then(Json::as_array)
        .and_then(|l| {
            l.iter()
                .find(|i| i.get("function").and_then(Json::as_str) == Some("fib_rec"))
        })
        .cloned()
}

/// Runs `fib.fib_rec 10` once (assembling the chunk) and returns the `fib_rec` island with its
/// id; `None` (with the failure recorded) if it did not run right or has no island.
fn assemble_fib(c: &mut Checks, m: &mut Machine) -> Option<(Json, u64)> {
    let out = m.command("run fib.fib_rec 10");
    c.check(out.trim() == "55", || {
        format!("`run fib.fib_rec 10`: {out:?}")
    });
    let Some(island) = fib_rec_island(c, m) else {
        c.fail("`islands fib --json` has no fib_rec island".into());
        return None;
    };
    let id = u64_of(&island, "id");
    Some((island, id))
}

#[test]
fn relocating_a_running_recursive_island() {
    let smp = 4;
    let mut m = Machine::boot(Options::bios().smp(smp));
    let mut c = Checks::new();
    // Assemble fib and check the island exists before anything runs.
    let Some((island, id)) = assemble_fib(&mut c, &mut m) else {
        return c.finish(&m);
    };

    // Bad input is refused, the kernel goes on.
    for bad in [
        "relocate 99999 small",
        "relocate x small",
        &format!("relocate {id} huge"),
        "relocate",
    ] {
        let out = m.command(bad);
        c.error_line(bad, &out);
    }

    // One long task per other core.
    let mut tasks = Vec::new();
    for core in 1..smp {
        let cmd = format!("run fib.fib_rec {N} --core {core} --background --json");
        let out = m.command(&cmd);
        let j = c.json(&cmd, &out);
        tasks.push(u64_of(&j, "task_id"));
    }

    let mut last = island.clone();
    let mut moves = 0;
    let mut while_running = 0;
    for i in 0..MOVES {
        let cmd = format!("relocate {id} small --json");
        let out = m.command(&cmd);
        let j = c.json(&cmd, &out);
        if u64_of(&j, "to") == 0 {
            c.fail(format!("`{cmd}` (move {i}): {out}"));
            break;
        }
        moves += 1;
        if i % 10 == 9 {
            let states = task_states(&mut c, &mut m, &tasks);
            if states.iter().any(|(s, _)| s == "running") {
                while_running = moves;
            }
        }
        last = j;
    }
    c.check(while_running >= MOVES, || {
        format!("only {while_running} moves were made while a task ran: make N larger")
    });

    // Every task finishes with the reference result.
    let start = Instant::now();
    let states = loop {
        let states = task_states(&mut c, &mut m, &tasks);
        if states.iter().all(|(s, _)| s != "running") || start.elapsed() > TASK_TIMEOUT {
            break states;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let want = fib(N).to_string();
    for (task, (state, outcome)) in tasks.iter().zip(&states) {
        c.check(state == "done" && *outcome == want, || {
            format!("task {task}: {state} {outcome:?}, expected done {want}")
        });
    }

    let out = m.command("reloc-stats --json");
    let s = c.json("reloc-stats --json", &out);
    c.check(u64_of(&s, "count") >= MOVES, || {
        format!("reloc-stats: {out}")
    });
    c.check(u64_of(&s, "failures") == 0, || {
        format!("reloc-stats: {out}")
    });
    c.check(u64_of(&s, "rips_rewritten") > 0, || {
        format!("no thread was ever caught with its RIP in the island: {out}")
    });
    c.check(u64_of(&s, "return_addresses_rewritten") > 0, || {
        format!("no return address into the island was ever rewritten: {out}")
    });

    // The island is where the last move put it, in 4 KiB pages, with its moves and calls.
    match fib_rec_island(&mut c, &mut m) {
        Some(now) => {
            c.check(u64_of(&now, "address") == u64_of(&last, "to"), || {
                format!("island at {now:?}, last move {last:?}")
            });
            c.check(u64_of(&now, "page_bytes") == 4096, || format!("{now:?}"));
            c.check(u64_of(&now, "moves") >= MOVES, || format!("{now:?}"));
            c.check(u64_of(&now, "calls") > fib(N), || format!("{now:?}"));
        }
        None => c.fail("fib_rec island gone".into()),
    }
    // A new task enters through the entry cell: the moved copy (the old ones are int3 or
    // unmapped, so reaching them would fault).
    let out = m.command("run fib.fib_rec 20");
    c.check(out.trim() == fib(20).to_string(), || {
        format!("`run fib.fib_rec 20` after the moves: {out:?}")
    });
    c.check(!m.serial_log().contains("*** "), || {
        "a fault or panic was reported".into()
    });
    // The copy the last move left is unmapped: a jump there page-faults, naming the island.
    check_probe(&mut c, &mut m, id, "page fault");
    c.finish(&m);
}

/// `relocate --probe-old ID` jumps into the island's last old copy: the fault report must name
/// the island (and the fault must be `fault`: int3 for a copy in its module's shared pages, a
/// page fault for a copy whose own pages were unmapped).
fn check_probe(c: &mut Checks, m: &mut Machine, id: u64, fault: &str) {
    let cmd = format!("relocate --probe-old {id}");
    let report = m.command_expect_halt(&cmd);
    c.check(
        report.contains("*** STALE CODE: ")
            && report.contains(&format!("island {id} (fib.fib_rec,")),
        || format!("`{cmd}`: no stale-code line naming island {id}: {report}"),
    );
    c.check(report.contains(&format!("*** EXCEPTION: {fault}")), || {
        format!("`{cmd}`: expected a `{fault}` report: {report}")
    });
}

/// The first move leaves the island's original bytes in its module's pages, filled with
/// `int3`: a stale jump there stops at the first byte with a report naming the island.
#[test]
fn a_stale_jump_into_the_first_old_copy_faults_naming_the_island() {
    let mut m = Machine::boot(Options::bios().smp(2));
    let mut c = Checks::new();
    let Some((_, id)) = assemble_fib(&mut c, &mut m) else {
        return c.finish(&m);
    };
    let cmd = format!("relocate --probe-old {id}");
    let out = m.command(&cmd);
    c.error_line(&cmd, &out);
    let cmd = format!("relocate {id} small --json");
    let out = m.command(&cmd);
    let j = c.json(&cmd, &out);
    c.check(
        j.get("old_copy").and_then(Json::as_str) == Some("int3"),
        || format!("`{cmd}`: the first move's old copy is filled with int3: {out}"),
    );
    let out = m.command("run fib.fib_rec 15");
    c.check(out.trim() == fib(15).to_string(), || {
        format!("`run fib.fib_rec 15` after the move: {out:?}")
    });
    check_probe(&mut c, &mut m, id, "breakpoint");
    c.finish(&m);
}

/// Pause figures under `-icount shift=0` (guest instructions, deterministic per schedule), 4
/// cores, a 4 KiB island with tasks recursing through it: printed for the README and checked
/// to be there and ordered.
#[test]
fn pause_figures_under_icount() {
    let smp = 4;
    let mut m = Machine::boot(Options::bios().smp(smp).icount());
    let mut c = Checks::new();
    let Some((_, id)) = assemble_fib(&mut c, &mut m) else {
        return c.finish(&m);
    };
    for core in 1..smp {
        m.command(&format!("run fib.fib_rec 40 --core {core} --background"));
    }
    let mut insns = Vec::new();
    for _ in 0..20 {
        let cmd = format!("relocate {id} small --json");
        let out = m.command(&cmd);
        let j = c.json(&cmd, &out);
        let figures = c.ints(
            &cmd,
            &j,
            &[
                "pause_instructions",
                "rendezvous_instructions",
                "callback_instructions",
            ],
        );
        c.check(figures[1] + figures[2] <= figures[0], || {
            format!("`{cmd}`: rendezvous and callback are parts of the pause: {out}")
        });
        insns.push(figures);
    }
    // The bare rendezvous under the same load, for comparison (no callback work).
    let smi = m.command("smi --count 20 --flush --json");
    eprintln!("smi under the same load: {smi}");
    let out = m.command("reloc-stats --json");
    let s = c.json("reloc-stats --json", &out);
    let d = c.distribution("reloc-stats --json", &s, "pause_instructions");
    eprintln!(
        "relocate pause, guest instructions (min/median/p99/max): {d:?}; \
         per move [pause, rendezvous, callback]: {insns:?}"
    );
    eprintln!("reloc-stats: {out}");
    c.finish(&m);
}
