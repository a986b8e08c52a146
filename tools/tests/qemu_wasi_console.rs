//! WASI programs fed from the console and run in the background: `run CHUNK ... < -` reads
//! standard input from typed lines (through the line editor, until a lone `.` or Ctrl-D), and
//! the program prints exactly what the host reference (wasmi with the same WASI subset) prints
//! for those bytes; `run CHUNK ... --background` returns at once, and `output ID` shows the
//! captured output (again equal to the reference's) and the exit code, a trap as a trap, while
//! `tasks` lists the runs. The kernel keeps running throughout.
//!
//! Run alone with `cargo test -p tools --release --test qemu_wasi_console` after
//! `./run-tests.sh` or `scripts/build.sh` built the images.

use std::sync::Arc;
use std::time::Duration;

use chunk_image::Image;
use tools::chunkc::command::{self, CommandRun};
use tools::chunkc::exec::run_engine;
use tools::qemu::{Checks, Machine, Options};
use tools::wasi::{Ended, Input};

const WAIT: Duration = Duration::from_secs(60);

fn image_bytes() -> Vec<u8> {
    let path = tools::qemu::options::default_chunk_image();
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run ./run-tests.sh or scripts/build.sh first)",
            path.display()
        )
    })
}

/// The reference's standard output and ending for `chunk ARGS` with `stdin` bytes.
fn reference(bytes: &[u8], chunk: &str, args: &[&str], stdin: &[u8]) -> (Vec<u8>, Ended) {
    let image = Image::parse(bytes).expect("default image parses");
    let run = CommandRun {
        chunk: chunk.into(),
        args: Some(args.iter().map(|a| a.to_string()).collect()),
        ..CommandRun::default()
    };
    let mut setup = command::setup(&image, &run).expect("setup");
    setup.stdin = Input::Bytes(Arc::from(stdin));
    let module = image.chunk(chunk).expect("chunk").module;
    let out = run_engine(module, &[], &setup, false).expect("reference run");
    (out.stdout, out.ended)
}

/// Output lines without kernel log lines, `stderr:` lines and trailing blanks.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end_matches('\r').trim_end().to_string())
        .filter(|l| !(l.starts_with("stderr: ") || l.starts_with("[c") && l.contains("] ")))
        .collect()
}

fn expected(stdout: &[u8], ended: &Ended) -> Vec<String> {
    let mut want: Vec<String> = String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect();
    match ended {
        Ended::Exit(code) => want.push(format!("exit: {code}")),
        Ended::Trap(_) => want.push("trap: ".into()),
    }
    want
}

/// Types `command`, then each of `typed` at the `stdin> ` prompt, then `end` (raw bytes);
/// returns what followed the end up to the next prompt.
fn with_typed_input(m: &mut Machine, command: &str, typed: &[&str], end: &[u8]) -> String {
    m.send_line(command);
    m.wait_for("stdin> ", WAIT);
    for line in typed {
        m.send_line(line);
        m.wait_for("stdin> ", WAIT);
    }
    m.send_raw(end);
    let text = m.wait_prompt();
    // The first line is the echo of the end (`.` or nothing for Ctrl-D).
    text.split_once('\n')
        .map_or(String::new(), |(_, rest)| rest.to_string())
}

#[test]
fn console_input_and_background_runs_match_the_reference() {
    let bytes = image_bytes();
    let mut m = Machine::boot(Options::bios().smp(2));
    let mut c = Checks::new();
    m.command("mem");

    // Typed standard input, ended by a lone `.`: wasitest cat echoes it and counts its bytes.
    let typed = ["alpha beta", "  indented line", "", "last line: 3.14"];
    let stdin: String = typed.iter().map(|l| format!("{l}\n")).collect();
    let (out, ended) = reference(&bytes, "wasitest", &["cat"], stdin.as_bytes());
    let got = with_typed_input(&mut m, "run wasitest cat < -", &typed, b".\r");
    c.check(lines(&got) == expected(&out, &ended), || {
        format!(
            "cat < -: printed {got:?}, reference {:?}",
            expected(&out, &ended)
        )
    });
    // wordfreq reading `-`, ended by Ctrl-D on an empty line.
    let typed = ["the sea the sky", "The island and the sea", "sky"];
    let stdin: String = typed.iter().map(|l| format!("{l}\n")).collect();
    let (out, ended) = reference(&bytes, "wordfreq", &["-n", "3", "-"], stdin.as_bytes());
    let got = with_typed_input(&mut m, "run wordfreq -n 3 - < -", &typed, b"\x04");
    c.check(lines(&got) == expected(&out, &ended), || {
        format!(
            "wordfreq < -: printed {got:?}, reference {:?}",
            expected(&out, &ended)
        )
    });
    // Ctrl-C abandons the run: an error, nothing ran.
    let got = with_typed_input(&mut m, "run wasitest cat < -", &["never run"], b"\x03");
    c.check(got.contains("error: input cancelled"), || {
        format!("Ctrl-C: {got:?}")
    });
    // An unknown chunk is refused before anything is typed.
    let out = m.command("run nosuch < -");
    c.error_line("run nosuch < -", &out);

    // Background runs: the task id at once, the output and exit code from `output ID`.
    let mut started = Vec::new();
    for (command, chunk, args, stdin_file) in [
        ("run lzc --background", "lzc", None, None),
        (
            "run forth - < forth/countdown.fs --background",
            "forth",
            Some(vec!["-"]),
            Some("forth/countdown.fs"),
        ),
        (
            "run wasitest trap --background",
            "wasitest",
            Some(vec!["trap"]),
            None,
        ),
        (
            "run wasitest env --env BG=1 --background",
            "wasitest",
            Some(vec!["env"]),
            None,
        ),
    ] {
        let out = m.command(command);
        let id = out.lines().find_map(|l| {
            l.strip_prefix("task ")?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        });
        c.check(id.is_some(), || format!("`{command}`: {out:?}"));
        let request = CommandRun {
            chunk: chunk.into(),
            args: args.map(|a| a.iter().map(|s| s.to_string()).collect()),
            stdin: stdin_file.map(String::from),
            env: if command.contains("BG=1") {
                vec!["BG=1".into()]
            } else {
                Vec::new()
            },
            ..CommandRun::default()
        };
        let want = command::run(&bytes, &request).expect("reference");
        started.push((command, id.unwrap_or(0), want));
    }
    for (command, id, want) in &started {
        let mut out = String::new();
        for _ in 0..120 {
            out = m.command(&format!("output {id}"));
            if !out.contains("still running") {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let got = lines(&out);
        let mut exp = expected(&want.stdout, &want.ended);
        let same = match &want.ended {
            Ended::Trap(_) => {
                got.len() == exp.len()
                    && got[..got.len() - 1] == exp[..exp.len() - 1]
                    && got.last().is_some_and(|l| l.starts_with("trap: "))
            }
            Ended::Exit(_) => got == exp,
        };
        c.check(same, || {
            exp.truncate(40);
            format!("`{command}` (task {id}): output {got:#?}\nreference {exp:#?}")
        });
    }
    // A background run still sleeping is shown as running, then ends with exit 0.
    let out = m.command("run wasitest sleep 4000 --background");
    let id = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("task ")?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    let out = m.command(&format!("output {id}"));
    c.check(out.contains(&format!("task {id} is still running")), || {
        format!("output {id} at once: {out:?}")
    });
    let tasks = m.command("tasks");
    c.check(tasks.contains("running"), || format!("tasks: {tasks:?}"));
    let mut out = String::new();
    for _ in 0..120 {
        std::thread::sleep(Duration::from_millis(500));
        out = m.command(&format!("output {id}"));
        if !out.contains("still running") {
            break;
        }
    }
    c.check(
        out.contains("slept at least that long: yes") && out.contains("exit: 0"),
        || format!("output {id} later: {out:?}"),
    );
    let tasks = m.command("tasks");
    c.check(
        tasks.contains("exit 42") && tasks.contains("exit 0"),
        || format!("tasks: {tasks:?}"),
    );
    let out = m.command("run fib.fib 20");
    c.check(out.trim_end().ends_with("6765"), || {
        format!("`run fib.fib 20` after the programs: {out:?}")
    });
    c.finish(&m);
}
