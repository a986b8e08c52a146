//! Console feature tests in QEMU: every console command of the foundation, on BIOS and UEFI with
//! 1 and 4 cores, plus fault reports, reboot and `--icount`.
//!
//! TCG is slow, so each boot runs a batch of commands; a batch checks everything and reports all
//! failed checks at once, with the serial log. The images are prebuilt (`./run-tests.sh` builds
//! them); run alone with `cargo test -p tools --release --test qemu_console -- --test-threads 2`.

use tools::qemu::{Checks, Firmware, Json, Machine, Options, parse_json};

/// The commands `help` must list.
const COMMANDS: [&str; 10] = [
    "help", "mem", "cpus", "acpi", "uptime", "log", "chunks", "fault", "poweroff", "reboot",
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

fn check_uptime(c: &mut Checks, m: &mut Machine) {
    let keys = ["uptime_ms", "tsc_hz", "tsc_cycles"];
    let first_out = m.command("uptime --json");
    let first = c.json("uptime --json", &first_out);
    let a = c.ints("uptime --json", &first, &keys);
    let second_out = m.command("uptime --json");
    let second = c.json("uptime --json", &second_out);
    let b = c.ints("uptime --json", &second, &keys);
    c.check(a[1] > 0, || {
        format!("`uptime --json`: tsc_hz should be > 0: {first_out}")
    });
    c.check(b[0] >= a[0] && b[2] >= a[2], || {
        format!("`uptime --json` should not go back: {first_out} then {second_out}")
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

/// Checks an exception report: header, error code, rip, registers, backtrace, `*** halted`.
fn fault_batch(options: Options, kind: &str, header: &str, vector: u32) {
    let mut m = Machine::boot(options);
    let report = m.command_expect_halt(&format!("fault {kind}"));
    let mut c = Checks::new();
    let lines: Vec<&str> = report.lines().collect();
    let start = lines.iter().position(|l| l.starts_with("*** EXCEPTION: "));
    c.check(
        start.is_some_and(|i| {
            lines[i].starts_with(header) && lines[i].contains(&format!("(vector {vector})"))
        }),
        || format!("`fault {kind}` should report `{header} (vector {vector})`"),
    );
    let body = &lines[start.unwrap_or(0)..];
    for needle in ["error code: 0x", "rip: 0x", "rax=", "r15="] {
        c.check(body.iter().any(|l| l.contains(needle)), || {
            format!("`fault {kind}`: the report should contain `{needle}`")
        });
    }
    if kind == "pagefault" || kind == "heap-locked" {
        c.check(
            body.iter()
                .any(|l| l.contains("cr2: 0x") && l.to_ascii_lowercase().contains("deadbeef000")),
            || "`fault pagefault`: `cr2: 0x...deadbeef000` expected".into(),
        );
    }
    let bt = body.iter().position(|l| l.trim_end() == "backtrace:");
    c.check(
        bt.is_some_and(|i| body.get(i + 1).is_some_and(|l| l.starts_with("  0x"))),
        || format!("`fault {kind}`: `backtrace:` then `  0x...` frame lines expected"),
    );
    c.check(lines.last() == Some(&"*** halted"), || {
        format!("`fault {kind}`: the report should end with `*** halted`")
    });
    c.finish(&m);
}

#[test]
fn fault_pagefault_bios() {
    fault_batch(
        Options::bios(),
        "pagefault",
        "*** EXCEPTION: page fault",
        14,
    );
}

#[test]
fn fault_pagefault_uefi() {
    fault_batch(
        Options::uefi().smp(1),
        "pagefault",
        "*** EXCEPTION: page fault",
        14,
    );
}

/// The fault comes while the faulting code holds the heap lock: a report that allocated would
/// spin on that lock forever and never print `*** halted`.
#[test]
fn fault_with_heap_locked_bios() {
    fault_batch(
        Options::bios().smp(2),
        "heap-locked",
        "*** EXCEPTION: page fault",
        14,
    );
}

#[test]
fn fault_gp_bios() {
    fault_batch(
        Options::bios().smp(1),
        "gp",
        "*** EXCEPTION: general protection",
        13,
    );
}

#[test]
fn fault_ud_bios() {
    fault_batch(
        Options::bios().smp(1),
        "ud",
        "*** EXCEPTION: invalid opcode",
        6,
    );
}

#[test]
fn fault_panic_bios() {
    let mut m = Machine::boot(Options::bios().smp(1));
    let report = m.command_expect_halt("fault panic");
    let mut c = Checks::new();
    c.check(report.lines().any(|l| l.starts_with("*** PANIC: ")), || {
        "`fault panic` should print `*** PANIC: ...`".into()
    });
    c.check(report.lines().last() == Some("*** halted"), || {
        "`fault panic` should end with `*** halted`".into()
    });
    c.finish(&m);
}

#[test]
fn reboot_ends_run_under_no_reboot() {
    let mut m = Machine::boot(Options::bios().smp(1));
    m.send_line("reboot");
    assert_eq!(
        m.wait_exit(tools::qemu::options::EXIT_TIMEOUT),
        0,
        "`reboot` with -no-reboot should end QEMU with status 0"
    );
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
