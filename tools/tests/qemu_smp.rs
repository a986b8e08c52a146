//! SMP feature tests in QEMU: every core online with 1, 2, 4 and 8 cores on BIOS and UEFI; the
//! stop-the-world (SMI) stress under busy threads on every core; suspend, migrate and resume
//! under load; kill.
//!
//! TCG is slow, so each boot runs a batch of commands and reports every failed check at once.
//! The images are prebuilt (`./run-tests.sh` builds them); run alone with
//! `cargo test -p tools --release --test qemu_smp -- --test-threads 2`.

use std::thread::sleep;
use std::time::Duration;

use tools::qemu::threads::{find, spawn_counter, threads};
use tools::qemu::{Checks, Firmware, Json, Machine, Options};

/// The SMI stress's round count (the issue asks for 10,000).
const STRESS_ROUNDS: u64 = 10_000;
/// Time for the stress command: about 100 s at 4 cores under TCG on 2 host cores.
const STRESS_TIMEOUT: Duration = Duration::from_secs(900);

/// `cpus --json`: `online` equals the core count and every MADT entry is online with a thread.
fn check_all_online(c: &mut Checks, m: &mut Machine, smp: u32) {
    let out = m.command("cpus --json");
    let j = c.json("cpus --json", &out);
    let online = c.u64("cpus --json", &j, "online");
    c.check(online == u64::from(smp), || {
        format!("`cpus --json`: online should be {smp}: {out}")
    });
    let list = j
        .get("cpus")
        .and_then(Json::as_array)
        .map_or(&[][..], Vec::as_slice);
    c.check(list.len() == smp as usize, || {
        format!("`cpus --json`: {smp} entries expected: {out}")
    });
    for (i, cpu) in list.iter().enumerate() {
        c.check(
            cpu.get("id").and_then(Json::as_u64) == Some(i as u64)
                && cpu.get("apic_id").and_then(Json::as_u64).is_some()
                && cpu.get("enabled").and_then(Json::as_bool) == Some(true)
                && cpu.get("online").and_then(Json::as_bool) == Some(true)
                && cpu.get("thread").and_then(Json::as_u64).is_some()
                && cpu.get("load").and_then(Json::as_u64).is_some(),
            || format!("`cpus --json`: entry {i} should be online with a thread and load: {out}"),
        );
    }
    let plain = m.command("cpus");
    c.check(plain.starts_with(&format!("{smp} online")), || {
        format!("`cpus` should start `{smp} online`, got {plain:?}")
    });
}

/// Boots, checks every core is online, runs a short SMI and the thread self-test on all cores,
/// and powers off.
fn cores_batch(options: Options) {
    let smp = options.smp;
    let mut m = Machine::boot(options);
    let mut c = Checks::new();
    check_all_online(&mut c, &mut m, smp);

    let out = m.command("smi --count 50 --json");
    let j = c.json("smi --count 50 --json", &out);
    c.check(c_u64(&j, "rounds") == Some(50), || {
        format!("`smi`: 50 rounds expected: {out}")
    });
    c.check(c_u64(&j, "failures") == Some(0), || {
        format!("`smi`: no round may fail: {out}")
    });
    c.distribution("smi --json", &j, "rendezvous_cycles");
    c.distribution("smi --json", &j, "pause_cycles");

    let out = m.command("threads selftest --json");
    let j = c.json("threads selftest --json", &out);
    c.check(
        j.get("all_dead").and_then(Json::as_bool) == Some(true),
        || format!("`threads selftest`: every joined thread should be dead: {out}"),
    );

    if smp > 1 {
        let out = m.command("ipi-bench --count 100 --json");
        let j = c.json("ipi-bench --json", &out);
        c.distribution("ipi-bench --json", &j, "round_trip_cycles");
        c.distribution("ipi-bench --json", &j, "shootdown_cycles");
    } else {
        let out = m.command("ipi-bench");
        c.check(out.starts_with("error: "), || {
            format!("`ipi-bench` on one core should be an error, got {out:?}")
        });
    }
    let status = m.poweroff_and_wait();
    c.check(status == 0, || {
        format!("poweroff should exit 0, got {status}")
    });
    c.finish(&m);
}

fn c_u64(j: &Json, key: &str) -> Option<u64> {
    j.get(key).and_then(Json::as_u64)
}

#[test]
fn cores_bios_smp1() {
    cores_batch(Options::bios().smp(1));
}

#[test]
fn cores_bios_smp2() {
    cores_batch(Options::bios().smp(2));
}

#[test]
fn cores_bios_smp4() {
    cores_batch(Options::bios().smp(4));
}

#[test]
fn cores_bios_smp8() {
    cores_batch(Options::bios().smp(8));
}

#[test]
fn cores_uefi_smp1() {
    cores_batch(Options::new(Firmware::Uefi).smp(1));
}

#[test]
fn cores_uefi_smp2() {
    cores_batch(Options::uefi().smp(2));
}

#[test]
fn cores_uefi_smp4() {
    cores_batch(Options::uefi().smp(4));
}

#[test]
fn cores_uefi_smp8() {
    cores_batch(Options::uefi().smp(8));
}

/// Busy threads on every core while 10,000 stop-the-world rounds run: every thread stays alive,
/// its counter only grows, no round fails, and the pause figures are printed.
#[test]
fn smi_stress_under_load() {
    let smp = 4;
    let mut m = Machine::boot(Options::bios().smp(smp));
    let mut c = Checks::new();
    let mut ids: Vec<u64> = (0..u64::from(smp))
        .map(|core| spawn_counter(&mut c, &mut m, core))
        .collect();
    // Two threads fighting over one spinlock (interrupts off while held), so rounds land while
    // a core holds a lock or spins on it.
    for core in [1, 2] {
        let cmd = format!("spawn locker --core {core} --json");
        let out = m.command(&cmd);
        let j = c.json(&cmd, &out);
        ids.push(c.u64(&cmd, &j, "id"));
    }
    sleep(Duration::from_secs(1));
    let before = threads(&mut c, &mut m);

    // Under TCG a vCPU thread can lose its host core for a long time when other work runs on
    // the host, so the stress allows 5 s per rendezvous; the default is 1 s.
    // `--stray` also sends NMIs that are not rendezvous (as a watchdog would) every 10 rounds.
    let cmd = format!("smi --count {STRESS_ROUNDS} --timeout-ms 5000 --stray --json");
    m.send_line(&cmd);
    let head = m.wait_for("{\"rounds\"", STRESS_TIMEOUT);
    let rest = m.wait_prompt();
    let _ = head;
    let out = format!("{{\"rounds\"{}", rest.trim_end());
    let j = c.json(&cmd, &out);
    c.check(c_u64(&j, "rounds") == Some(STRESS_ROUNDS), || {
        format!("`{cmd}`: rounds should be {STRESS_ROUNDS}: {out}")
    });
    c.check(c_u64(&j, "failures") == Some(0), || {
        format!("`{cmd}`: no round may fail: {out}")
    });
    let r = c.distribution(&cmd, &j, "rendezvous_cycles");
    let p = c.distribution(&cmd, &j, "pause_cycles");
    c.check(r[0] > 0 && p[0] >= r[0], || {
        format!("`{cmd}`: the pause includes the rendezvous and is nonzero: {out}")
    });
    c.check(c_u64(&j, "unclaimed_nmis").is_some_and(|n| n > 0), || {
        format!("`{cmd}`: stray NMIs should be counted as unclaimed: {out}")
    });
    eprintln!("smi stress (smp {smp}): {out}");

    sleep(Duration::from_secs(1));
    let after = threads(&mut c, &mut m);
    for id in &ids {
        match (find(&before, *id), find(&after, *id)) {
            (Some(b), Some(a)) => {
                c.check(a.state == "running" || a.state == "ready", || {
                    format!("thread {id} should still be alive after the SMI stress: {a:?}")
                });
                c.check(a.counter > b.counter, || {
                    format!("thread {id}'s counter should have grown: {b:?} -> {a:?}")
                });
            }
            other => c.fail(format!("thread {id} missing from `threads`: {other:?}")),
        }
    }
    let status = m.poweroff_and_wait();
    c.check(status == 0, || {
        format!("poweroff should exit 0, got {status}")
    });
    c.finish(&m);
}

/// Suspends a counting thread (its counter stops), migrates it to another core while suspended,
/// resumes it (its counter grows there), and migrates a running thread; all under load.
#[test]
fn suspend_migrate_resume_under_load() {
    let mut m = Machine::boot(Options::bios().smp(4));
    let mut c = Checks::new();
    let a = spawn_counter(&mut c, &mut m, 1);
    let b = spawn_counter(&mut c, &mut m, 2);
    let busy = spawn_counter(&mut c, &mut m, 3);
    sleep(Duration::from_secs(1));

    let out = m.command(&format!("suspend {a}"));
    c.check(out == format!("suspended thread {a}"), || {
        format!("`suspend {a}`: got {out:?}")
    });
    let t1 = threads(&mut c, &mut m);
    sleep(Duration::from_secs(1));
    let t2 = threads(&mut c, &mut m);
    match (find(&t1, a), find(&t2, a)) {
        (Some(x), Some(y)) => {
            c.check(x.state == "suspended" && y.state == "suspended", || {
                format!("thread {a} should be suspended: {x:?} {y:?}")
            });
            c.check(x.counter == y.counter, || {
                format!("a suspended thread's counter must not move: {x:?} -> {y:?}")
            });
        }
        other => c.fail(format!("thread {a} missing: {other:?}")),
    }

    // Its context sits in its saved trap frame.
    let cmd = format!("regs {a} --json");
    let out = m.command(&cmd);
    let j = c.json(&cmd, &out);
    c.check(
        c_u64(&j, "rip").is_some_and(|r| r != 0) && c_u64(&j, "rsp").is_some(),
        || format!("`{cmd}`: a suspended thread's frame should have rip and rsp: {out}"),
    );
    let out = m.command(&format!("regs {b}"));
    c.check(out.starts_with("error: "), || {
        format!("`regs` of a running thread should fail, got {out:?}")
    });

    let out = m.command(&format!("migrate {a} 3"));
    c.check(!out.starts_with("error"), || {
        format!("`migrate {a} 3`: got {out:?}")
    });
    let out = m.command(&format!("resume {a}"));
    c.check(out == format!("resumed thread {a}"), || {
        format!("`resume {a}`: got {out:?}")
    });
    // A running thread moves too.
    let out = m.command(&format!("migrate {b} 1"));
    c.check(!out.starts_with("error"), || {
        format!("`migrate {b} 1`: got {out:?}")
    });
    sleep(Duration::from_secs(1));
    let t3 = threads(&mut c, &mut m);
    sleep(Duration::from_secs(2));
    let t4 = threads(&mut c, &mut m);
    for (id, core) in [(a, 3), (b, 1), (busy, 3)] {
        match (find(&t2, id), find(&t3, id), find(&t4, id)) {
            (Some(x), Some(y), Some(z)) => {
                c.check(y.core == core && z.core == core, || {
                    format!("thread {id} should be on core {core}: {y:?} {z:?}")
                });
                c.check(z.counter > y.counter && y.counter >= x.counter, || {
                    format!("thread {id}'s counter should keep growing: {x:?} {y:?} {z:?}")
                });
                c.check(z.state == "running" || z.state == "ready", || {
                    format!("thread {id} should be runnable: {z:?}")
                });
            }
            other => c.fail(format!("thread {id} missing: {other:?}")),
        }
    }

    // Errors: bad ids, bad cores, the shell itself.
    for bad in ["suspend 999", "resume 999", "migrate 999 1", "kill 999"] {
        let out = m.command(bad);
        c.check(out.starts_with("error: "), || {
            format!("`{bad}` should fail with `error: `, got {out:?}")
        });
    }
    let out = m.command(&format!("migrate {a} 99"));
    c.check(out.starts_with("error: "), || {
        format!("`migrate {a} 99` should fail, got {out:?}")
    });
    let shell = t4.iter().find(|t| t.name == "shell").map_or(1, |t| t.id);
    let out = m.command(&format!("kill {shell}"));
    c.check(out.starts_with("error: "), || {
        format!("`kill` of the shell should fail, got {out:?}")
    });

    // Kill: the thread ends and its counter stops.
    let out = m.command(&format!("kill {busy}"));
    c.check(out == format!("killed thread {busy}"), || {
        format!("`kill {busy}`: got {out:?}")
    });
    let t5 = threads(&mut c, &mut m);
    sleep(Duration::from_secs(1));
    let t6 = threads(&mut c, &mut m);
    match (find(&t5, busy), find(&t6, busy)) {
        (Some(x), Some(y)) => c.check(
            x.state == "dead" && y.state == "dead" && x.counter == y.counter,
            || format!("killed thread {busy} should stay dead and stop counting: {x:?} {y:?}"),
        ),
        other => c.fail(format!("thread {busy} missing: {other:?}")),
    }
    let status = m.poweroff_and_wait();
    c.check(status == 0, || {
        format!("poweroff should exit 0, got {status}")
    });
    c.finish(&m);
}

/// Under `--icount` the figures are also given in guest instructions.
#[test]
fn smi_figures_in_guest_instructions_under_icount() {
    let mut m = Machine::boot(Options::bios().smp(4).icount());
    let mut c = Checks::new();
    spawn_counter(&mut c, &mut m, 1);
    let cmd = "smi --count 20 --json";
    let out = m.command(cmd);
    let j = c.json(cmd, &out);
    c.check(c_u64(&j, "failures") == Some(0), || {
        format!("`{cmd}`: no round may fail: {out}")
    });
    for key in [
        "rendezvous_cycles",
        "pause_cycles",
        "rendezvous_instructions",
        "pause_instructions",
    ] {
        let d = c.distribution(cmd, &j, key);
        c.check(d[0] > 0, || {
            format!("`{cmd}`: `{key}` should be nonzero: {out}")
        });
    }
    let text = m.command("smi --count 5");
    c.check(text.contains("guest instructions"), || {
        format!("`smi` under icount should print guest instructions: {text:?}")
    });
    let status = m.poweroff_and_wait();
    c.check(status == 0, || {
        format!("poweroff should exit 0, got {status}")
    });
    c.finish(&m);
}

/// Two initiators at once: a thread runs stop-the-world rounds in a loop on core 2 while the
/// shell runs its own; they serialize, no round fails, and both make progress.
#[test]
fn two_initiators_serialize() {
    let mut m = Machine::boot(Options::bios().smp(4));
    let mut c = Checks::new();
    let cmd = "spawn initiator --core 2 --json";
    let out = m.command(cmd);
    let j = c.json(cmd, &out);
    let other = c.u64(cmd, &j, "id");
    let counter = spawn_counter(&mut c, &mut m, 3);
    sleep(Duration::from_secs(1));
    let before = threads(&mut c, &mut m);
    let cmd = "smi --count 500 --json";
    // 500 rounds that wait for the other initiator's rounds: a few seconds alone, but with
    // another QEMU test beside it on 2 host cores it has taken more than the default 30 s.
    let out = m.command_within(cmd, Duration::from_secs(180));
    let j = c.json(cmd, &out);
    c.check(c_u64(&j, "failures") == Some(0), || {
        format!("`{cmd}`: no round may fail with two initiators: {out}")
    });
    let after = threads(&mut c, &mut m);
    for id in [other, counter] {
        match (find(&before, id), find(&after, id)) {
            (Some(b), Some(a)) => c.check(a.counter > b.counter && a.state != "dead", || {
                format!("thread {id} should keep going: {b:?} -> {a:?}")
            }),
            other => c.fail(format!("thread {id} missing: {other:?}")),
        }
    }
    let status = m.poweroff_and_wait();
    c.check(status == 0, || {
        format!("poweroff should exit 0, got {status}")
    });
    c.finish(&m);
}
