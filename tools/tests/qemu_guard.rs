//! Guard-page mode in the kernel (`guard`, `docs/guard-pages.md`): linear memory sandboxed by
//! the page tables instead of bounds checks. One boot with four cores each under BIOS and
//! UEFI. Checked against the host reference (wasmi, `tools::qemu::reference`):
//! - loads and stores of the `guard` chunk at many addresses (the very end, just past it,
//!   straddling it, far past it, at 4 GiB - 1, with static offsets of a page, above 2 GiB and
//!   of 4 GiB - 1, after `memory.grow`, and after a refused grow) give exactly the reference's
//!   result or trap, in guard-page mode, from the console and as background tasks on cores 1-3
//!   at once;
//! - the code has no bounds checks in guard mode (`guard --json` counts the compares against
//!   the memory size in each chunk's code), and every out-of-bounds trap came through the
//!   page-fault path: its counter rises by exactly the number of trapping accesses (a kernel
//!   that still checked explicitly would trap correctly but fail both);
//! - the kernel keeps running: later tasks succeed, and `guard off` (explicit checks) gives the
//!   same outcomes with bounds checks in the code and no page-fault traps.
//!
//! Run alone with `cargo test -p tools --release --test qemu_guard -- --test-threads 2` after
//! `scripts/build.sh --firmware all --console`.

use tools::qemu::reference::{result_of, wait_tasks};
use tools::qemu::{Checks, Json, Machine, Options};

/// `(export, arguments)` of the `guard` chunk: each is a fresh task (one page of memory, at
/// most four).
const CASES: &[(&str, &[&str])] = &[
    ("load", &["65532"]),
    ("load", &["65533"]),
    ("load", &["65536"]),
    ("load", &["-1"]),
    ("load", &["-4"]),
    ("load8", &["65535"]),
    ("load8", &["65536"]),
    ("load8", &["-1"]),
    ("load64", &["65528"]),
    ("load64", &["65529"]),
    ("load64", &["1000000"]),
    ("load_page", &["0"]),
    ("load_page", &["-65536"]),
    ("load_far", &["0"]),
    ("load_far", &["-1"]),
    ("load_high", &["7"]),
    ("store", &["65532", "5"]),
    ("store", &["65533", "5"]),
    ("store", &["-4", "5"]),
    ("store8", &["65535"]),
    ("store8", &["65536"]),
    ("store64", &["65528"]),
    ("store64", &["65530"]),
    ("store_high", &["0"]),
    ("grow_load", &["1", "131068"]),
    ("grow_load", &["1", "131069"]),
    ("grow_load", &["3", "262140"]),
    ("grow_load", &["3", "262143"]),
    ("grow_load", &["5", "70000"]),
    ("grow_store", &["2", "196604"]),
    ("grow_store", &["2", "196608"]),
];

const CHUNK: &str = "guard";

fn task(export: &str) -> String {
    format!("{CHUNK}.{export}")
}

fn run_line(export: &str, args: &[&str]) -> String {
    format!("run {} {}", task(export), args.join(" "))
}

/// The console's last line for a foreground run, as the reference prints an outcome.
fn console_outcome(out: &str) -> String {
    let last = out.lines().last().unwrap_or("").trim();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

/// `guard --json`: (mode, traps through page faults, the chunk's bounds checks and code size).
fn figures(c: &mut Checks, m: &mut Machine) -> (bool, u64, Option<(bool, u64, u64)>) {
    let out = m.command("guard --json");
    let j = c.json("guard --json", &out);
    let on = j
        .get("guard_pages")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let traps = c.u64("guard --json", &j, "guard_traps");
    let chunk = j
        .get("chunks")
        .and_then(Json::as_array)
        .and_then(|l| {
            l.iter()
                .find(|x| x.get("chunk").and_then(Json::as_str) == Some(CHUNK))
        })
        .map(|x| {
            (
                x.get("guard_pages")
                    .and_then(Json::as_bool)
                    .unwrap_or(false),
                x.get("bounds_checks").and_then(Json::as_u64).unwrap_or(0),
                x.get("code_bytes").and_then(Json::as_u64).unwrap_or(0),
            )
        });
    (on, traps, chunk)
}

/// Runs every case from the console; returns how many trapped.
fn run_all(c: &mut Checks, m: &mut Machine, want: &[String], mode: &str) -> u64 {
    let mut traps = 0;
    for ((export, args), want) in CASES.iter().zip(want) {
        let out = m.command(&run_line(export, args));
        let got = console_outcome(&out);
        c.check(got == *want, || {
            format!(
                "{mode}: {}: got {got:?}, the reference says {want:?}",
                run_line(export, args)
            )
        });
        traps += u64::from(want.starts_with("trap: "));
    }
    traps
}

#[test]
fn out_of_bounds_accesses_trap_through_page_faults_on_every_core() {
    check(Options::bios().smp(4));
}

#[test]
fn out_of_bounds_accesses_trap_through_page_faults_under_uefi() {
    check(Options::uefi().smp(4));
}

fn check(options: Options) {
    let want: Vec<String> = CASES
        .iter()
        .map(|(export, args)| result_of(&task(export), args))
        .collect();
    let trapping = want.iter().filter(|w| w.starts_with("trap: ")).count() as u64;
    assert!(
        trapping >= 15 && trapping < CASES.len() as u64 - 5,
        "the cases must mix traps and in-bounds accesses: {want:?}"
    );
    assert!(
        want.iter()
            .filter(|w| w.starts_with("trap: "))
            .all(|w| w.contains("out of bounds")),
        "every trap is an out-of-bounds access: {want:?}"
    );

    let mut m = Machine::boot(options);
    let mut c = Checks::new();

    // Guard pages are the default; nothing has trapped yet.
    let (on, traps0, _) = figures(&mut c, &mut m);
    c.check(on, || "guard pages should be on by default".into());
    c.check(traps0 == 0, || format!("{traps0} guard traps at boot"));

    // From the console, one task at a time.
    let counted = run_all(&mut c, &mut m, &want, "guard pages");
    let (_, traps1, chunk) = figures(&mut c, &mut m);
    c.check(traps1 - traps0 == counted, || {
        format!(
            "{} traps came through page faults, {counted} accesses trapped",
            traps1 - traps0
        )
    });
    c.check(matches!(chunk, Some((true, 0, bytes)) if bytes > 0), || {
        format!("the guard chunk's code should be guard-mode with no bounds checks: {chunk:?}")
    });

    // As background tasks on cores 1-3 at the same time (in batches the task history holds).
    let size = CASES.len().div_ceil(3);
    for (b, batch) in CASES.chunks(size).enumerate() {
        let offset = b * size;
        let mut ids = Vec::new();
        let mut expected = Vec::new();
        for core in 1..=3 {
            for (i, (export, args)) in batch.iter().enumerate() {
                let cmd = format!(
                    "{} --core {core} --background --json",
                    run_line(export, args)
                );
                let out = m.command(&cmd);
                let j = c.json(&cmd, &out);
                ids.push(c.u64(&cmd, &j, "task_id"));
                expected.push((core, cmd, want[offset + i].clone()));
            }
        }
        for ((id, (state, outcome)), (core, cmd, want)) in ids
            .iter()
            .zip(wait_tasks(&mut c, &mut m, &ids))
            .zip(&expected)
        {
            // A background task's outcome is the trap's message alone.
            let (state_ok, got) = match want.strip_prefix("trap: ") {
                Some(_) => (state == "trapped", format!("trap: {outcome}")),
                None => (state == "done", outcome.clone()),
            };
            c.check(state_ok && got == *want, || {
                format!(
                    "task {id} on core {core} ({cmd}): {state} {outcome:?}, the reference says \
                     {want:?}"
                )
            });
        }
    }
    let (_, traps2, _) = figures(&mut c, &mut m);
    c.check(traps2 - traps1 == 3 * counted, || {
        format!(
            "{} traps through page faults from three cores, {} expected",
            traps2 - traps1,
            3 * counted
        )
    });

    // The kernel keeps running: later tasks succeed.
    for (t, args) in [("guard.sum", ["1024", "2"]), ("fib.fib_rec", ["20", ""])] {
        let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
        let out = m.command(&format!("run {t} {}", args.join(" ")));
        let want = result_of(t, &args);
        c.check(console_outcome(&out) == want, || {
            format!("run {t} after the traps: {out:?}, the reference says {want:?}")
        });
    }

    // Explicit checks: the same outcomes, checks in the code, no page-fault traps.
    m.command("guard off");
    let counted_off = run_all(&mut c, &mut m, &want, "explicit checks");
    let (on, traps3, chunk) = figures(&mut c, &mut m);
    c.check(!on && counted_off == counted, || {
        format!("guard off: mode {on}, {counted_off} traps")
    });
    c.check(traps3 == traps2, || {
        format!("explicit checks must not trap through page faults: {traps2} -> {traps3}")
    });
    c.check(
        matches!(chunk, Some((false, checks, _)) if checks >= 10),
        || format!("explicit-check code should have a bounds check per access: {chunk:?}"),
    );
    let out = m.command("guard maybe");
    c.error_line("guard maybe", &out);
    m.command("guard on");
    let out = m.command(&run_line("load", &["65533"]));
    c.check(console_outcome(&out) == want[1], || {
        format!("guard on again: {out:?}")
    });
    let (on, traps4, _) = figures(&mut c, &mut m);
    c.check(on && traps4 == traps3 + 1, || {
        format!("guard on again: mode {on}, traps {traps3} -> {traps4}")
    });
    c.finish(&m);
}
