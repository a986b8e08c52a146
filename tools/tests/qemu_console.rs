//! Console feature tests in QEMU: every console command of the foundation, on BIOS and UEFI with
//! 1 and 4 cores (including `vm selftest`, `fault breakpoint`, which returns, and the clock
//! across a sleep), plus reboot and `--icount`. Fault reports that halt are in `qemu_faults.rs`.
//!
//! TCG is slow, so each boot runs a batch of commands; a batch checks everything and reports all
//! failed checks at once, with the serial log. The images are prebuilt (`./run-tests.sh` builds
//! them); run alone with `cargo test -p tools --release --test qemu_console -- --test-threads 2`.

use tools::qemu::kernel_elf::KernelElf;
use tools::qemu::{Checks, Firmware, Json, Machine, Options, parse_json};

/// The commands `help` must list.
const COMMANDS: [&str; 11] = [
    "help", "mem", "cpus", "acpi", "uptime", "log", "chunks", "vm", "fault", "poweroff", "reboot",
];
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "debug", "trace", "info"];

/// `boot: ready in N cycles since reset (M cycles in kernel)`.
fn check_boot_line(c: &mut Checks, log: &str) {
    let line = log
        .lines()
        .find(|l| l.starts_with("boot: ready in ") && l.contains("cycles since reset"));
    let Some(line) = line else {
        c.fail("no line `boot: ready in N cycles since reset (M cycles in kernel)`".into());
        return;
    };
    let words: Vec<&str> = line.split_whitespace().collect();
    let parsed = match words.as_slice() {
        [
            "boot:",
            "ready",
            "in",
            n,
            "cycles",
            "since",
            "reset",
            m,
            "cycles",
            "in",
            "kernel)",
        ] => m
            .strip_prefix('(')
            .and_then(|m| Some((n.parse::<u64>().ok()?, m.parse::<u64>().ok()?))),
        _ => None,
    };
    c.check(matches!(parsed, Some((n, m)) if m <= n && m > 0), || {
        format!("malformed boot line {line:?} (want N >= M > 0)")
    });
}

fn check_help(c: &mut Checks, out: &str) {
    for name in COMMANDS {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name));
        c.check(
            line.is_some_and(|l| l.split_whitespace().count() >= 2),
            || format!("`help` should list `{name}` with a description; got {out:?}"),
        );
    }
}

fn check_mem(c: &mut Checks, m: &mut Machine) {
    let plain = m.command("mem");
    c.check(
        !plain.is_empty() && !plain.lines().any(|l| l.starts_with("error: ")),
        || format!("`mem` should print figures, got {plain:?}"),
    );
    let out = m.command("mem --json");
    let mem = c.json("mem --json", &out);
    let v = c.ints(
        "mem --json",
        &mem,
        &[
            "frames_total",
            "frames_free",
            "frames_used",
            "frame_bytes",
            "heap_total_bytes",
            "heap_used_bytes",
            "heap_free_bytes",
        ],
    );
    c.check(v[1] + v[2] == v[0] && v[0] > 0, || {
        format!("`mem --json`: frames_free + frames_used != frames_total (or 0): {out}")
    });
    c.check(v[3] == 4096, || {
        format!("`mem --json`: frame_bytes != 4096: {out}")
    });
    c.check(v[5] + v[6] == v[4] && v[4] > 0, || {
        format!("`mem --json`: heap used + free != total (or 0): {out}")
    });
}

fn check_cpus(c: &mut Checks, m: &mut Machine, smp: u32) {
    let out = m.command("cpus --json");
    let cpus = c.json("cpus --json", &out);
    let online = c.ints("cpus --json", &cpus, &["online"])[0];
    c.check((1..=u64::from(smp)).contains(&online), || {
        format!("`cpus --json`: online should be 1..={smp}: {out}")
    });
    let list = cpus
        .get("cpus")
        .and_then(Json::as_array)
        .map_or(&[][..], Vec::as_slice);
    c.check(list.len() == smp as usize, || {
        format!("`cpus --json`: the MADT should list {smp} cpus: {out}")
    });
    for (i, cpu) in list.iter().enumerate() {
        c.check(
            cpu.get("id").and_then(Json::as_u64) == Some(i as u64)
                && cpu.get("apic_id").and_then(Json::as_u64).is_some()
                && cpu.get("enabled").and_then(Json::as_bool) == Some(true),
            || {
                format!(
                    "`cpus --json`: entry {i} should have id {i}, apic_id, enabled: true: {out}"
                )
            },
        );
    }
    let plain = m.command("cpus");
    c.check(
        !plain.is_empty() && !plain.lines().any(|l| l.starts_with("error: ")),
        || format!("`cpus` should print a table, got {plain:?}"),
    );
}

fn check_acpi(c: &mut Checks, m: &mut Machine) {
    let out = m.command("acpi --json");
    let acpi = c.json("acpi --json", &out);
    c.ints("acpi --json", &acpi, &["revision"]);
    c.check(acpi.get("oem_id").and_then(Json::as_str).is_some(), || {
        format!("`acpi --json`: oem_id should be a string: {out}")
    });
    c.check(acpi.get("cpus").is_some(), || {
        format!("`acpi --json`: no `cpus`: {out}")
    });
    for key in ["io_apics", "interrupt_overrides", "tables"] {
        c.check(acpi.get(key).and_then(Json::as_array).is_some(), || {
            format!("`acpi --json`: `{key}` should be an array: {out}")
        });
    }
    let tables: Vec<&str> = acpi
        .get("tables")
        .and_then(Json::as_array)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter_map(Json::as_str)
        .collect();
    c.check(tables.contains(&"FACP") && tables.contains(&"APIC"), || {
        format!("`acpi --json`: tables should include FACP and APIC: {out}")
    });
}

/// How long `threads selftest` keeps the console thread asleep (`sched::sleep_us(20_000)`, then
/// it joins sleepers of 10 ms and more).
const SELFTEST_SLEEP_MS: u64 = 20;

/// `uptime --json` twice with `threads selftest` (a guest sleep of at least
/// [`SELFTEST_SLEEP_MS`]) in between: the uptime and the TSC must advance by at least the sleep.
fn check_uptime(c: &mut Checks, m: &mut Machine) {
    let keys = ["uptime_ms", "tsc_hz", "tsc_cycles"];
    let first_out = m.command("uptime --json");
    let first = c.json("uptime --json", &first_out);
    let a = c.ints("uptime --json", &first, &keys);
    let sleep_out = m.command("threads selftest --json");
    let sleep = c.json("threads selftest --json", &sleep_out);
    let slept_us = c.u64("threads selftest --json", &sleep, "elapsed_us");
    let second_out = m.command("uptime --json");
    let second = c.json("uptime --json", &second_out);
    let b = c.ints("uptime --json", &second, &keys);
    let (hz, ms) = (a[1], SELFTEST_SLEEP_MS);
    c.check(hz > 0 && b[1] == hz, || {
        format!("`uptime --json`: tsc_hz should be > 0 and fixed: {first_out} then {second_out}")
    });
    c.check(slept_us >= ms * 1000, || {
        format!("`threads selftest` sleeps {ms} ms, but says it took {slept_us} us: {sleep_out}")
    });
    c.check(b[0] >= a[0] + ms.max(slept_us / 1000), || {
        format!(
            "`uptime --json` should advance by the {slept_us} us slept in between: {first_out} \
             then {second_out}"
        )
    });
    let slept_cycles = u128::from(slept_us.max(ms * 1000)) * u128::from(hz) / 1_000_000;
    c.check(u128::from(b[2].saturating_sub(a[2])) >= slept_cycles, || {
        format!(
            "`uptime --json`: tsc_cycles should advance by {slept_cycles} cycles ({slept_us} us at \
             {hz} Hz): {first_out} then {second_out}"
        )
    });
    // `uptime_ms` is read after `tsc_cycles`: never less than the cycles say.
    for (out, v) in [(&first_out, &a), (&second_out, &b)] {
        let from_cycles = u128::from(v[2]) * 1000 / u128::from(hz.max(1));
        c.check(u128::from(v[0]) >= from_cycles, || {
            format!("`uptime --json`: uptime_ms is less than tsc_cycles / tsc_hz: {out}")
        });
    }
}

/// `vm selftest` in text and JSON: every check passes, and the checks cover 4 KiB and 2 MiB
/// pages, NX and W^X.
fn check_vm_selftest(c: &mut Checks, m: &mut Machine) {
    let out = m.command("vm selftest");
    let mut names = Vec::new();
    let mut summary = None;
    for line in out.lines() {
        if let Some(name) = line.strip_prefix("  ok   ") {
            names.push(name.to_string());
        } else if let Some(rest) = line.strip_prefix("vm selftest: ") {
            summary = Some(rest.to_string());
        } else {
            c.fail(format!(
                "`vm selftest`: unexpected line {line:?} (a failed check?)"
            ));
        }
    }
    let want = format!("{} passed, 0 failed", names.len());
    c.check(summary.as_deref() == Some(want.as_str()), || {
        format!("`vm selftest` should end `vm selftest: {want}`, got {summary:?}")
    });
    c.check(names.len() >= 10, || {
        format!(
            "`vm selftest` should run at least 10 checks, ran {}",
            names.len()
        )
    });
    for topic in ["4K", "2M", "NX", "W^X", "unmap"] {
        c.check(names.iter().any(|n| n.contains(topic)), || {
            format!("`vm selftest` should check {topic}: {names:?}")
        });
    }

    let out = m.command("vm selftest --json");
    let j = c.json("vm selftest --json", &out);
    let v = c.ints("vm selftest --json", &j, &["checks", "passed", "failed"]);
    let results = j
        .get("results")
        .and_then(Json::as_array)
        .map_or(&[][..], Vec::as_slice);
    let json_names: Vec<&str> = results
        .iter()
        .filter_map(|r| r.get("name").and_then(Json::as_str))
        .collect();
    c.check(
        v[0] == names.len() as u64 && v[1] == v[0] && v[2] == 0 && results.len() == names.len(),
        || {
            format!(
                "`vm selftest --json`: {} checks, all passed, expected: {out}",
                names.len()
            )
        },
    );
    c.check(
        results
            .iter()
            .all(|r| r.get("ok").and_then(Json::as_bool) == Some(true))
            && json_names == names,
        || format!("`vm selftest --json`: every result ok, the same checks as the text: {out}"),
    );
}

/// `fault breakpoint` raises #BP, which is reported on one line and resumed: the shell goes on.
fn check_breakpoint(c: &mut Checks, m: &mut Machine, elf: Option<&KernelElf>) {
    let out = m.command("fault breakpoint");
    let at = out
        .lines()
        .find_map(|l| l.strip_prefix("*** breakpoint at "))
        .and_then(|rest| {
            let (addr, rest) = rest.split_once(' ')?;
            let offset = rest.strip_prefix("(kernel+0x")?.split_once(')')?.0;
            let core = rest.split_once(") on core ")?.1.parse::<u32>().ok()?;
            Some((
                addr.strip_prefix("0x")?.len(),
                u64::from_str_radix(offset, 16).ok()?,
                core,
            ))
        });
    c.check(
        out.lines().count() == 1 && at.is_some_and(|(digits, _, core)| digits == 16 && core < m.options().smp),
        || format!("`fault breakpoint` should print one line `*** breakpoint at 0x<16 digits> (kernel+0x<offset>) on core N`, got {out:?}"),
    );
    // The reported rip follows the int3 (a trap, not a fault).
    if let (Some((_, offset, _)), Some(elf)) = (at, elf) {
        let byte = offset
            .checked_sub(1)
            .and_then(|o| elf.bytes_at(o).ok()?.first().copied());
        c.check(byte == Some(0xcc), || {
            format!("`fault breakpoint`: the byte before kernel+{offset:#x} should be int3 (0xcc), got {byte:x?}")
        });
    }
    let after = m.command("help");
    c.check(is_help(&after), || {
        format!("the shell should go on after `fault breakpoint`; `help` gave {after:?}")
    });
}

fn check_log(c: &mut Checks, m: &mut Machine) {
    for level in LOG_LEVELS {
        let out = m.command(&format!("log {level}"));
        let want = format!("log level: {level}");
        c.check(out.lines().any(|l| l.trim_end() == want), || {
            format!("`log {level}` should print `{want}`, got {out:?}")
        });
    }
    let out = m.command("log bogus");
    c.error_line("log bogus", &out);
}

fn check_chunks(c: &mut Checks, m: &mut Machine) {
    let image = m.options().chunk_image();
    let size = std::fs::metadata(&image)
        .map(|md| md.len())
        .unwrap_or_else(|e| panic!("chunk image {}: {e}", image.display()));
    let out = m.command("chunks --json");
    let chunks = c.json("chunks --json", &out);
    let v = c.ints("chunks --json", &chunks, &["ramdisk_bytes", "ramdisk_addr"]);
    c.check(v[0] == size, || {
        format!(
            "`chunks --json`: ramdisk_bytes should be {size} ({}): {out}",
            image.display()
        )
    });
}

fn check_errors(c: &mut Checks, m: &mut Machine) {
    let out = m.command("frobnicate");
    c.error_line("frobnicate", &out);
    let out = m.command("mem --bogus");
    c.error_line("mem --bogus", &out);
    let out = m.command("");
    c.check(out.is_empty(), || {
        format!("an empty line should just reprint the prompt, got {out:?}")
    });
    let long = "x".repeat(320);
    let out = m.command(&long);
    c.error_line("a 320-character line", &out);
    let out = m.command("help");
    c.check(is_help(&out), || {
        format!("`help` after a long line should still work, got {out:?}")
    });
}

const LEFT: &[u8] = b"\x1b[D";
const RIGHT: &[u8] = b"\x1b[C";
const UP: &[u8] = b"\x1b[A";
const DOWN: &[u8] = b"\x1b[B";

fn keys(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn is_help(out: &str) -> bool {
    out.lines()
        .any(|l| l.split_whitespace().next() == Some("poweroff"))
        && out
            .lines()
            .any(|l| l.split_whitespace().next() == Some("mem"))
}

fn is_json_with(out: &str, key: &str) -> bool {
    parse_json(out.trim()).is_ok_and(|v| v.get(key).is_some())
}

fn check_line_editing(c: &mut Checks, m: &mut Machine) {
    // "hepl", left, backspace (0x7f) -> "hel|l"... right, "p" -> "help".
    let out = m.command_raw(&keys(&[b"hepl", LEFT, b"\x7f", RIGHT, b"p"]));
    c.check(is_help(&out), || {
        format!("left/backspace/right editing should give `help`, got {out:?}")
    });
    let out = m.command_raw(b"helpx\x08");
    c.check(is_help(&out), || {
        format!("backspace 0x08 should give `help`, got {out:?}")
    });
    let out = m.command_raw(&keys(&[b"elp", b"\x1b[H", b"h", b"\x1b[F"]));
    c.check(is_help(&out), || {
        format!("home (ESC [ H) should give `help`, got {out:?}")
    });
    let out = m.command_raw(&keys(&[b"pus --json", b"\x1b[1~", b"c", b"\x1b[4~"]));
    c.check(is_json_with(&out, "cpus"), || {
        format!("home (ESC [ 1 ~) / end (ESC [ 4 ~) should give `cpus --json`, got {out:?}")
    });
    let out = m.command_raw(&keys(&[b"em --jso", b"\x01", b"m", b"\x05", b"n"]));
    c.check(is_json_with(&out, "frames_total"), || {
        format!("Ctrl-A / Ctrl-E should give `mem --json`, got {out:?}")
    });
    // History: the last command again, then up, up, down.
    let _ = m.command("uptime --json");
    let out = m.command_raw(UP);
    c.check(is_json_with(&out, "uptime_ms"), || {
        format!("up-arrow should repeat `uptime --json`, got {out:?}")
    });
    let _ = m.command("cpus --json");
    let _ = m.command("mem --json");
    let out = m.command_raw(&keys(&[UP, UP, DOWN]));
    c.check(is_json_with(&out, "frames_total"), || {
        format!("up, up, down should recall `mem --json`, got {out:?}")
    });
    let out = m.command_raw(&keys(&[UP, UP]));
    c.check(is_json_with(&out, "online"), || {
        format!("up, up should recall `cpus --json`, got {out:?}")
    });
}

/// One boot running every console command and checking the contract.
fn console_batch(options: Options) {
    let smp = options.smp;
    let mut m = Machine::boot(options);
    let mut c = Checks::new();
    check_boot_line(&mut c, &m.serial_log());
    let help = m.command("help");
    check_help(&mut c, &help);
    let raw = m.serial_log();
    c.check(
        raw.contains("help\r\n") && raw.ends_with("\r\natoll> "),
        || "lines should end with \\r\\n and the prompt follow at the start of a line".into(),
    );
    check_mem(&mut c, &mut m);
    check_cpus(&mut c, &mut m, smp);
    check_acpi(&mut c, &mut m);
    check_uptime(&mut c, &mut m);
    check_vm_selftest(&mut c, &mut m);
    let elf = KernelElf::load();
    if let Err(e) = &elf {
        c.fail(format!("reading the kernel ELF: {e}"));
    }
    check_breakpoint(&mut c, &mut m, elf.as_ref().ok());
    check_chunks(&mut c, &mut m);
    check_log(&mut c, &mut m);
    check_errors(&mut c, &mut m);
    check_line_editing(&mut c, &mut m);
    c.finish(&m);
    assert_eq!(
        m.poweroff_and_wait(),
        0,
        "`poweroff` should end QEMU with status 0"
    );
}

#[test]
fn console_bios_smp1() {
    console_batch(Options::bios().smp(1));
}

#[test]
fn console_bios_smp4() {
    console_batch(Options::bios().smp(4));
}

#[test]
fn console_uefi_smp1() {
    console_batch(Options::uefi().smp(1));
}

#[test]
fn console_uefi_smp4() {
    console_batch(Options::uefi().smp(4));
}

/// `reboot` resets the machine: on a QEMU that resets instead of exiting (no `-no-reboot`), the
/// kernel starts again and the new boot's shell works. A `reboot` that powered off, hung or
/// returned to the old shell would fail here.
#[test]
fn reboot_boots_again() {
    let mut m = Machine::boot(Options::bios().smp(1).allow_reboot());
    let mut c = Checks::new();
    let first_boot = m.serial_log();
    c.check(count_starts(&first_boot) == 1, || {
        "the first boot should log `atoll ... starting` once".into()
    });
    let second = m.reboot_and_wait();
    let lines: Vec<&str> = second.lines().collect();
    let rebooting = lines.iter().position(|l| l.trim_end() == "rebooting");
    let starting = lines.iter().position(|l| is_start_line(l));
    let ready = lines.iter().position(|l| l.starts_with("boot: ready in "));
    c.check(rebooting.is_some() && rebooting < starting && starting < ready, || {
        format!(
            "after `reboot`: `rebooting`, then the kernel starting again (`atoll ... starting`), \
             then `boot: ready in ...` before the prompt; got {second:?}"
        )
    });
    check_boot_line(&mut c, &second);
    c.check(count_starts(&m.serial_log()) == 2, || {
        "the serial log should show exactly two kernel starts".into()
    });
    let out = m.command("uptime --json");
    let up = c.json("uptime --json", &out);
    c.ints("uptime --json (second boot)", &up, &["uptime_ms", "tsc_hz"]);
    c.finish(&m);
    assert_eq!(
        m.poweroff_and_wait(),
        0,
        "`poweroff` on the second boot should end QEMU with status 0"
    );
}

/// The kernel's first log line: `[cN T] INFO  atoll VERSION starting`.
fn is_start_line(line: &str) -> bool {
    line.split_once("] ")
        .is_some_and(|(_, rest)| rest.contains("atoll ") && rest.trim_end().ends_with(" starting"))
}

fn count_starts(log: &str) -> usize {
    log.lines().filter(|l| is_start_line(l)).count()
}

#[test]
fn icount_boot_figures() {
    let mut m = Machine::boot(Options::new(Firmware::Bios).smp(1).icount());
    let log = m.serial_log();
    let mut c = Checks::new();
    check_boot_line(&mut c, &log);
    let line = log
        .lines()
        .find(|l| l.starts_with("boot: ready in ") && l.contains("guest instructions"));
    let count = line.and_then(|l| {
        l.strip_prefix("boot: ready in ")?
            .strip_suffix(" guest instructions since reset")?
            .parse::<u64>()
            .ok()
    });
    c.check(count.is_some_and(|n| n > 0), || {
        format!("under --icount: `boot: ready in N guest instructions since reset` expected, got {line:?}")
    });
    c.finish(&m);
    assert_eq!(m.poweroff_and_wait(), 0);
}
