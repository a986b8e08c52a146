//! WASI programs in the kernel: every run of every command chunk in the default image
//! (`expect_run` in `chunks/default.toml`, with its arguments and standard input) prints, on the
//! console, exactly the standard output the host reference (wasmi with the same WASI subset)
//! gives, byte for byte (`--json`'s `stdout_fnv` and `stdout_bytes`) and line for line, and
//! ends with the same exit code or a trap. Bad requests (an unknown chunk, a non-command, a
//! missing input file, WASI imports used from an export) are `error: ...` lines, and the
//! kernel keeps running.
//!
//! Run alone with `cargo test -p tools --release --test qemu_wasi` after `./run-tests.sh` or
//! `scripts/build.sh` built the images.

use chunk_image::Image;
use tools::chunkc::command::{self, CommandRun};
use tools::chunkc::manifest;
use tools::qemu::{Checks, Json, Machine, Options};
use tools::wasi::Ended;

struct Case {
    chunk: String,
    command: String,
    stdout: Vec<u8>,
    ended: Ended,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Each expected run, with the reference's output for it.
fn cases() -> Vec<Case> {
    let root = tools::qemu::options::repo_root();
    let file = manifest::load(&root.join("chunks/default.toml")).expect("chunks/default.toml");
    let path = tools::qemu::options::default_chunk_image();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run ./run-tests.sh or scripts/build.sh first)",
            path.display()
        )
    });
    Image::parse(&bytes).expect("default image parses");
    let mut cases = Vec::new();
    for entry in &file.chunks {
        for want in &entry.expect_run {
            let request = CommandRun {
                chunk: entry.name.clone(),
                args: want.args.clone(),
                stdin: want.stdin.clone(),
                native: false,
                lazy: false,
                env: want.env.clone(),
            };
            let reference = command::run(&bytes, &request)
                .unwrap_or_else(|e| panic!("{}: reference: {e}", entry.name));
            let mut command = format!("run {}", entry.name);
            for a in want.args.iter().flatten() {
                assert!(!a.contains([' ', '"']), "argument {a:?} needs quoting");
                command.push(' ');
                command.push_str(a);
            }
            if let Some(input) = &want.stdin {
                command.push_str(" < ");
                command.push_str(input);
            }
            for kv in &want.env {
                assert!(!kv.contains([' ', '"']), "variable {kv:?} needs quoting");
                command.push_str(" --env ");
                command.push_str(kv);
            }
            cases.push(Case {
                chunk: entry.name.clone(),
                command,
                stdout: reference.stdout,
                ended: reference.ended,
            });
        }
    }
    cases
}

/// The command's output without kernel log lines (`[c0 1.234567] WARN ...`), which the first
/// assembly of a chunk may print.
fn without_log(output: &str) -> Vec<&str> {
    output
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !(l.starts_with("[c") && l.contains("] ")))
        .collect()
}

fn check_text(c: &mut Checks, case: &Case, output: &str) {
    // Standard error is shown as `stderr: ` lines (some carry timings); stdout is compared.
    let mut lines = without_log(output);
    lines.retain(|l| !l.starts_with("stderr: "));
    let text = String::from_utf8_lossy(&case.stdout);
    let mut want: Vec<String> = text.lines().map(String::from).collect();
    match &case.ended {
        Ended::Exit(code) => want.push(format!("exit: {code}")),
        Ended::Trap(_) => want.push("error: trap: ".into()),
    }
    let got: Vec<String> = lines.iter().map(|l| l.trim_end().to_string()).collect();
    let want_trimmed: Vec<String> = want.iter().map(|l| l.trim_end().to_string()).collect();
    let same = match case.ended {
        Ended::Trap(_) => {
            got.len() == want_trimmed.len()
                && got[..got.len() - 1] == want_trimmed[..want_trimmed.len() - 1]
                && got.last().is_some_and(|l| l.starts_with("error: trap: "))
        }
        Ended::Exit(_) => got == want_trimmed,
    };
    c.check(same, || {
        format!(
            "`{}`: printed {got:#?}\nexpected {want_trimmed:#?}",
            case.command
        )
    });
}

fn check_json(c: &mut Checks, case: &Case, command: &str, output: &str) {
    let last = without_log(output)
        .into_iter()
        .find(|l| l.starts_with('{'))
        .unwrap_or("")
        .to_string();
    let j = c.json(command, &last);
    match &case.ended {
        Ended::Exit(code) => {
            let got = c.u64(command, &j, "exit");
            c.check(got == u64::from(*code), || {
                format!("`{command}`: exit {got}, reference {code}")
            });
        }
        Ended::Trap(_) => {
            let trap = j.get("trap").and_then(Json::as_str).unwrap_or("");
            c.check(!trap.is_empty(), || {
                format!("`{command}`: no trap in {last}")
            });
        }
    }
    let bytes = c.u64(command, &j, "stdout_bytes");
    let fnv = j.get("stdout_fnv").and_then(Json::as_str).unwrap_or("");
    let want_fnv = format!("{:016x}", fnv1a(&case.stdout));
    c.check(bytes == case.stdout.len() as u64 && fnv == want_fnv, || {
        format!(
            "`{command}`: {bytes} bytes, fnv {fnv}; reference {} bytes, fnv {want_fnv}",
            case.stdout.len()
        )
    });
    c.u64(command, &j, "cycles");
    c.check(j.get("random").and_then(Json::as_str).is_some(), || {
        format!("`{command}`: no random source in {last}")
    });
}

#[test]
fn every_program_matches_the_reference_in_the_kernel() {
    let cases = cases();
    assert!(cases.len() >= 15, "only {} runs", cases.len());
    let mut m = Machine::boot(Options::bios().smp(2));
    let mut c = Checks::new();
    for case in &cases {
        let out = m.command(&case.command);
        check_text(&mut c, case, &out);
        let command = format!("{} --json", case.command);
        let out = m.command(&command);
        check_json(&mut c, case, &command, &out);
    }
    // Bad requests: clear errors, and the kernel goes on.
    for (command, says) in [
        ("run nosuch", "no chunk named `nosuch`"),
        ("run fib", "not a command"),
        ("run lzc - < text/absent.txt", "no file `text/absent.txt`"),
        ("run lzc <", "file after `<`"),
        ("run lzc._start", "run it as a command"),
        ("run wasitest env --env NOEQUALS", "not KEY=VALUE"),
        ("output 999999", "no background command run"),
    ] {
        let out = m.command(command);
        c.error_line(command, &out);
        c.check(out.contains(says), || {
            format!("`{command}`: {out:?} lacks {says:?}")
        });
    }
    let out = m.command("run fib.fib 20");
    c.check(out.trim_end().ends_with("6765"), || {
        format!("`run fib.fib 20` after the programs: {out:?}")
    });
    let out = m.command("mem");
    c.check(out.contains("frames:"), || format!("`mem`: {out:?}"));
    c.finish(&m);
}

/// UEFI with four cores: each program's first run, on each core in turn, agrees with the
/// reference byte for byte.
#[test]
fn programs_agree_under_uefi_on_every_core() {
    let cases = cases();
    let mut m = Machine::boot(Options::uefi().smp(4));
    let mut c = Checks::new();
    let mut seen: Vec<&str> = Vec::new();
    let mut core = 0;
    for case in &cases {
        if seen.contains(&case.chunk.as_str()) {
            continue;
        }
        seen.push(&case.chunk);
        let command = format!("{} --json --core {core}", case.command);
        let out = m.command(&command);
        check_json(&mut c, case, &command, &out);
        let ran_on = without_log(&out)
            .into_iter()
            .find(|l| l.starts_with('{'))
            .and_then(|l| tools::qemu::parse_json(l).ok())
            .and_then(|j| j.get("core").and_then(Json::as_u64));
        c.check(ran_on == Some(core), || {
            format!("`{command}`: ran on {ran_on:?}")
        });
        core = (core + 1) % 4;
    }
    c.check(seen.len() >= 5, || format!("only {} programs", seen.len()));
    c.finish(&m);
}
