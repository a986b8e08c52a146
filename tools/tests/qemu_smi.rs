//! Stop-the-world proven, not counted: on 2, 4 and 8 cores, with a counting thread on every
//! other core,
//! - every round holds the world for 20 ms and the counter of the thread on each parked core
//!   must not move meanwhile (a handler that returned at once would let them count);
//! - `smi mark` rewrites a stopped thread's context, on a parked core and off-core, and the
//!   thread runs the rewritten context after release (its counter jumps by 2^48);
//! - `--flush` makes every parked core flush (and only then), and every stopped context is seen;
//! - `threads churn` spawns and reaps on every core at once without losing or leaking a thread.
//!
//! Run alone with `cargo test -p tools --release --test qemu_smi -- --test-threads 2`.

use std::thread::sleep;
use std::time::Duration;

use tools::qemu::threads::{Thread, find, spawn_counter, threads};
use tools::qemu::{Checks, Json, Machine, Options};

/// What `smi mark` adds to a counter (`testload::MARK` in the kernel).
const MARK: u64 = 1 << 48;
const ROUNDS: u64 = 20;
const HOLD_US: u64 = 20_000;
/// Short threads per churner per round (`CHURN_BATCH` in the kernel's `testload`).
const CHURN_BATCH: u64 = 4;
/// `threads churn` takes tens of seconds with 8 vCPUs on 2 host cores.
const CHURN_TIMEOUT: Duration = Duration::from_secs(300);

fn u64_of(j: &Json, key: &str) -> Option<u64> {
    j.get(key).and_then(Json::as_u64)
}

fn counter_of(list: &[Thread], id: u64) -> Option<u64> {
    find(list, id).map(|t| t.counter)
}

fn command_json(c: &mut Checks, m: &mut Machine, cmd: &str) -> (String, Json) {
    let out = m.command(cmd);
    let j = c.json(cmd, &out);
    (out, j)
}

/// The parked threads' counters stand still through every held round, and the flush and
/// frame figures add up.
fn check_stopped(c: &mut Checks, m: &mut Machine, smp: u32, counters: &[u64]) {
    let before = threads(c, m);
    let cmd = format!("smi --count {ROUNDS} --hold-us {HOLD_US} --flush --json");
    let (out, j) = command_json(c, m, &cmd);
    let after = threads(c, m);
    let others = u64::from(smp - 1);
    c.check(u64_of(&j, "failures") == Some(0), || {
        format!("`{cmd}`: no round may fail: {out}")
    });
    c.check(u64_of(&j, "counters_moved") == Some(0), || {
        format!("`{cmd}`: a parked thread's counter moved while the world was stopped: {out}")
    });
    // Each other core runs its counter (it is the only runnable thread there), so nearly every
    // round finds one on every parked core; a round can land in a switch or the idle thread.
    let checked = u64_of(&j, "threads_checked").unwrap_or(0);
    c.check(checked >= ROUNDS * others / 2, || {
        format!("`{cmd}`: too few parked counters checked ({checked}): {out}")
    });
    c.check(u64_of(&j, "flushes") == Some(ROUNDS * others), || {
        format!("`{cmd}`: every parked core flushes once a round: {out}")
    });
    let frames = u64_of(&j, "frames_seen").unwrap_or(0);
    c.check(frames >= ROUNDS * others, || {
        format!("`{cmd}`: every parked core's context is seen each round: {out}")
    });
    // The counters were not frozen for good: they ran between the rounds and after.
    for id in counters {
        match (counter_of(&before, *id), counter_of(&after, *id)) {
            (Some(b), Some(a)) => c.check(a > b, || {
                format!("counter {id} should run outside the pauses: {b} -> {a}")
            }),
            other => c.fail(format!("counter {id} missing from `threads`: {other:?}")),
        }
    }
    let cmd = "smi --count 5 --json";
    let (out, j) = command_json(c, m, cmd);
    c.check(u64_of(&j, "flushes") == Some(0), || {
        format!("`{cmd}`: without --flush no core flushes: {out}")
    });
}

/// `smi mark` on a running counter (parked context) and a suspended one (saved context).
fn check_mark(
    c: &mut Checks,
    m: &mut Machine,
    running: u64,
    suspended: u64,
    bystander: Option<u64>,
) {
    let cmd = format!("smi mark {running} --json");
    let (out, j) = command_json(c, m, &cmd);
    c.check(
        j.get("context").and_then(Json::as_str) == Some("parked"),
        || format!("`{cmd}`: a running counter's parked context should be rewritten: {out}"),
    );
    let cmd = format!("smi mark {suspended} --json");
    let (out, j) = command_json(c, m, &cmd);
    c.check(
        j.get("context").and_then(Json::as_str) == Some("saved"),
        || format!("`{cmd}`: a suspended counter's saved context should be rewritten: {out}"),
    );
    let out = m.command(&format!("resume {suspended}"));
    c.check(out.starts_with("resumed"), || {
        format!("`resume {suspended}`: {out:?}")
    });
    sleep(Duration::from_millis(500));
    let first = threads(c, m);
    sleep(Duration::from_millis(500));
    let second = threads(c, m);
    for id in [running, suspended] {
        match (counter_of(&first, id), counter_of(&second, id)) {
            (Some(a), Some(b)) => c.check(a >= MARK && b > a, || {
                format!(
                    "counter {id} should run the rewritten context (>= 2^48, growing): {a} -> {b}"
                )
            }),
            other => c.fail(format!("counter {id} missing from `threads`: {other:?}")),
        }
    }
    if let Some(id) = bystander {
        c.check(counter_of(&second, id).is_some_and(|n| n < MARK), || {
            format!("counter {id} was not marked and must not jump: {second:?}")
        });
    }
    // Only counters may be redirected; a bad id is an error too. The shell goes on.
    let shell = second
        .iter()
        .find(|t| t.name == "shell")
        .map_or(1, |t| t.id);
    for cmd in [
        format!("smi mark {shell}"),
        "smi mark 99999".into(),
        "smi mark".into(),
    ] {
        let out = m.command(&cmd);
        c.error_line(&cmd, &out);
    }
}

/// Spawning and reaping on every core at once loses and leaks nothing. Runs first, on an
/// otherwise idle machine: each round is a spawn, a join and a reap per core, and under TCG every
/// freed stack's TLB shootdown waits for every vCPU thread to be scheduled.
fn check_churn(c: &mut Checks, m: &mut Machine, smp: u32) {
    let rounds = 50;
    let cmd = format!("threads churn --rounds {rounds} --json");
    m.send_line(&cmd);
    m.wait_for("{\"cores\"", CHURN_TIMEOUT);
    let out = format!("{{\"cores\"{}", m.wait_prompt().trim_end());
    let j = c.json(&cmd, &out);
    c.check(u64_of(&j, "cores") == Some(u64::from(smp)), || {
        format!("`{cmd}`: a churner on every core: {out}")
    });
    c.check(
        u64_of(&j, "ran") == Some(CHURN_BATCH * rounds * u64::from(smp)),
        || format!("`{cmd}`: every short thread runs once: {out}"),
    );
    c.check(u64_of(&j, "clobbered") == Some(0), || {
        format!("`{cmd}`: no fresh thread's slot may be cleared by a reaper: {out}")
    });
    c.check(
        j.get("failed").and_then(Json::as_bool) == Some(false),
        || format!("`{cmd}`: no spawn, join or reap may fail: {out}"),
    );
    c.check(
        u64_of(&j, "live_before") == u64_of(&j, "live_after"),
        || format!("`{cmd}`: the live threads are as before: {out}"),
    );
    c.check(
        u64_of(&j, "pages_4k_before") == u64_of(&j, "pages_4k_after"),
        || format!("`{cmd}`: every stack is freed (4 KiB pages as before): {out}"),
    );
}

fn stop_the_world(smp: u32) {
    let mut m = Machine::boot(Options::bios().smp(smp));
    let mut c = Checks::new();
    check_churn(&mut c, &mut m, smp);
    let counters: Vec<u64> = (1..smp)
        .map(|core| spawn_counter(&mut c, &mut m, u64::from(core)))
        .collect();
    // An extra counter, suspended at once: its context lives in its saved frame.
    let suspended = spawn_counter(&mut c, &mut m, 1);
    let out = m.command(&format!("suspend {suspended}"));
    c.check(out.starts_with("suspended"), || {
        format!("`suspend {suspended}`: {out:?}")
    });
    sleep(Duration::from_millis(500));
    check_stopped(&mut c, &mut m, smp, &counters);
    // The last core's counter is marked; the first core's (with 3 or more cores) must not be.
    let running = *counters.last().expect("smp > 1");
    let bystander = Some(counters[0]).filter(|id| *id != running);
    check_mark(&mut c, &mut m, running, suspended, bystander);
    let status = m.poweroff_and_wait();
    c.check(status == 0, || {
        format!("poweroff should exit 0, got {status}")
    });
    c.finish(&m);
}

#[test]
fn stop_the_world_smp2() {
    stop_the_world(2);
}

#[test]
fn stop_the_world_smp4() {
    stop_the_world(4);
}

#[test]
fn stop_the_world_smp8() {
    stop_the_world(8);
}
