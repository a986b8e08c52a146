//! `run-qemu.sh` end to end: commands piped into it (the relay waits for each prompt), and a
//! session on a pseudo-terminal (raw console). Both skip the build (`ATOLL_NO_BUILD=1`): the
//! images and `target/release/atoll-console` come from `./run-tests.sh`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tools::qemu::machine::exit_code;
use tools::qemu::options::repo_root;
use tools::qemu::scan::{self, printable};

const RUN_TIMEOUT: Duration = Duration::from_secs(180);

fn run_qemu_sh() -> (PathBuf, Command) {
    let root = repo_root();
    for needed in [
        "target/release/atoll-console",
        "target/images/default-bios.img",
    ] {
        assert!(
            root.join(needed).exists(),
            "{needed} is missing: build with ./run-tests.sh or scripts/build.sh --console"
        );
    }
    let script = root.join("run-qemu.sh");
    let mut cmd = Command::new(&script);
    cmd.current_dir(&root).env("ATOLL_NO_BUILD", "1");
    (script, cmd)
}

/// Starts `run-qemu.sh ARGS` (no build) with stdin, stdout and stderr piped.
fn spawn_run_qemu(args: &[&str]) -> Child {
    let (_, mut cmd) = run_qemu_sh();
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting run-qemu.sh")
}

/// Collects a child's output on a thread.
fn collect(mut source: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buf);
    thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = source.read(&mut chunk) {
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

/// Waits for the child with a deadline; kills it on timeout.
fn wait_with_deadline(child: &mut Child, out: &Mutex<Vec<u8>>, err: &Mutex<Vec<u8>>) -> i32 {
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for run-qemu.sh") {
            // Let the reader threads take the last output.
            thread::sleep(Duration::from_millis(200));
            return exit_code(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "run-qemu.sh did not exit within {RUN_TIMEOUT:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                printable(&out.lock().unwrap()),
                printable(&err.lock().unwrap())
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn piped_commands_run_in_order_and_poweroff_exits_0() {
    let mut child = spawn_run_qemu(&[]);
    // All input at once, before the kernel is ready: the relay must hold it back.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"help\ncpus\nmem\npoweroff\n")
        .unwrap();
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    let status = wait_with_deadline(&mut child, &out, &err);
    let stdout = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&err.lock().unwrap()).into_owned();
    let context = format!(
        "--- stdout ---\n{}\n--- stderr ---\n{stderr}",
        printable(stdout.as_bytes())
    );
    assert_eq!(
        status, 0,
        "run-qemu.sh should exit 0 after poweroff\n{context}"
    );
    let outputs = command_outputs(&stdout);
    let names: Vec<&str> = outputs.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        names,
        ["help", "cpus", "mem", "poweroff"],
        "each piped line should run once, in order, after a prompt\n{context}"
    );
    let help = &outputs[0].1;
    for name in ["help", "mem", "cpus", "poweroff"] {
        assert!(
            help.lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "`help` output should list `{name}`\n{context}"
        );
    }
    for (command, output) in &outputs[1..3] {
        assert!(
            !output.trim().is_empty() && !output.lines().any(|l| l.starts_with("error: ")),
            "`{command}` should print its figures\n{context}"
        );
    }
    assert!(
        !stdout
            .lines()
            .any(|l| l.starts_with("atoll: ") || l.starts_with("atoll-console: ")),
        "script and relay messages belong on stderr\n{context}"
    );
}

/// Splits console text into (command line, output) pairs, one per prompt followed by a command.
fn command_outputs(console: &str) -> Vec<(String, String)> {
    let bytes = console.as_bytes();
    let mut prompts = Vec::new();
    let mut from = 0;
    while let Some(pos) = scan::find_prompt(bytes, from) {
        prompts.push(pos);
        from = pos + scan::PROMPT.len();
    }
    let mut result = Vec::new();
    for (i, &pos) in prompts.iter().enumerate() {
        let start = pos + scan::PROMPT.len();
        let end = prompts.get(i + 1).copied().unwrap_or(bytes.len());
        let text = &console[start..end];
        let Some((line, _)) = text.split_once('\n') else {
            continue; // the last prompt, nothing typed
        };
        let line = line.trim_end_matches('\r').to_owned();
        result.push((line, scan::command_output(text)));
    }
    result
}

#[test]
fn terminal_session_on_a_pty() {
    let script_ok = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        script_ok,
        "`script` (util-linux) is needed for the pty test"
    );
    let (path, _) = run_qemu_sh();
    let mut child = Command::new("script")
        .args(["-qefc"])
        .arg(format!("ATOLL_NO_BUILD=1 {}", path.display()))
        .arg("/dev/null")
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting script(1)");
    let mut stdin = child.stdin.take().unwrap();
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    // On a terminal nothing holds input back: type only once the prompt is there.
    let wait_prompts = |n: usize| {
        let deadline = Instant::now() + RUN_TIMEOUT;
        loop {
            let count = {
                let buf = out.lock().unwrap();
                let mut count = 0;
                let mut from = 0;
                while let Some(pos) = scan::find_prompt(&buf, from) {
                    count += 1;
                    from = pos + 1;
                }
                count
            };
            if count >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no prompt #{n} on the terminal\n{}",
                printable(&out.lock().unwrap())
            );
            thread::sleep(Duration::from_millis(50));
        }
    };
    wait_prompts(1);
    stdin.write_all(b"help\r").unwrap();
    wait_prompts(2);
    stdin.write_all(b"poweroff\r").unwrap();
    let status = wait_with_deadline(&mut child, &out, &err);
    let output = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    assert_eq!(
        status,
        0,
        "poweroff on the terminal should exit 0\n{}",
        printable(output.as_bytes())
    );
    assert!(
        output.contains("Ctrl-A X"),
        "run-qemu.sh should say how to quit on a terminal\n{}",
        printable(output.as_bytes())
    );
    assert!(
        output
            .lines()
            .any(|l| l.split_whitespace().next() == Some("poweroff")),
        "`help` output expected on the terminal\n{}",
        printable(output.as_bytes())
    );
}

/// Runs `run-qemu.sh ARGS` (no build) with `input` piped in; returns (status, stdout, context).
fn run_piped(args: &[&str], input: &[u8]) -> (i32, String, String) {
    let mut child = spawn_run_qemu(args);
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    let status = wait_with_deadline(&mut child, &out, &err);
    let stdout = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    let context = format!(
        "run-qemu.sh {args:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        printable(stdout.as_bytes()),
        printable(&err.lock().unwrap())
    );
    (status, stdout, context)
}

/// A 0-byte chunk image (the bootloader cannot load an empty ramdisk: it used to stop before the
/// kernel, silently) boots without one, under BIOS and UEFI: the kernel says no chunk image was
/// loaded, chunk commands fail with `error: `, and the shell goes on to power off.
#[test]
fn empty_chunk_image_boots_without_one() {
    let root = repo_root();
    let dir = root.join("target/test-chunks");
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.img");
    std::fs::write(&empty, b"").unwrap();
    // The disk images run-qemu.sh boots for it (scripts/build.sh names them the same way and puts
    // the kernel without debug sections beside them).
    let made = Command::new(root.join("target/boot/release/atoll-image"))
        .arg("--kernel")
        .arg(root.join("target/images/atoll-kernel.boot.elf"))
        .arg("--ramdisk")
        .arg(&empty)
        .arg("--bios")
        .arg(root.join("target/images/empty-bios.img"))
        .arg("--uefi")
        .arg(root.join("target/images/empty-uefi.img"))
        .output()
        .expect("running atoll-image (built by ./run-tests.sh)");
    assert!(
        made.status.success(),
        "atoll-image with an empty ramdisk: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let empty = empty.to_string_lossy().into_owned();
    for firmware in ["--bios", "--uefi"] {
        let (status, stdout, context) = run_piped(
            &[firmware, "--chunks", &empty],
            b"chunks\nrun fib.fib 10\npoweroff\n",
        );
        assert_eq!(status, 0, "should boot and power off\n{context}");
        assert!(
            stdout.contains("no chunk image"),
            "the kernel should say no chunk image was loaded\n{context}"
        );
        let outputs = command_outputs(&stdout);
        let names: Vec<&str> = outputs.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(
            names,
            ["chunks", "run fib.fib 10", "poweroff"],
            "every command should run\n{context}"
        );
        for (command, output) in &outputs[..2] {
            assert!(
                output.lines().any(|l| l.starts_with("error: ")),
                "`{command}` without a chunk image should print `error: `\n{context}"
            );
        }
    }
}

/// The children of process `pid` (from /proc: every thread's list).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Whether `pid` is still a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// A QEMU never outlives a killed `run-qemu.sh` (the relay it execs): the relay is SIGKILLed at
/// the prompt, and its QEMU must be gone within seconds.
#[test]
fn qemu_dies_with_a_killed_relay() {
    let mut child = spawn_run_qemu(&[]);
    let stdin = child.stdin.take();
    let out = collect(child.stdout.take().unwrap());
    let _err = collect(child.stderr.take().unwrap());
    let deadline = Instant::now() + RUN_TIMEOUT;
    while scan::find_prompt(&out.lock().unwrap(), 0).is_none() {
        assert!(Instant::now() < deadline, "no prompt from run-qemu.sh");
        thread::sleep(Duration::from_millis(50));
    }
    // run-qemu.sh execs the relay, so the child is the relay and QEMU is its child.
    let relay = child.id();
    let qemus = children_of(relay);
    assert_eq!(
        qemus.len(),
        1,
        "the relay should have one child, QEMU: {qemus:?}"
    );
    let qemu = qemus[0];
    assert!(alive(qemu), "QEMU should be running");
    child.kill().expect("SIGKILL to the relay");
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(qemu) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let survived = alive(qemu);
    if survived {
        // Do not leave it running for the other tests.
        let _ = Command::new("kill")
            .arg("-9")
            .arg(qemu.to_string())
            .status();
    }
    drop(stdin);
    assert!(!survived, "QEMU (pid {qemu}) outlived its killed relay");
}

/// `run-qemu.sh --numa N` reaches QEMU (through `atoll-console`): the kernel finds N nodes with
/// the cores split evenly; a split that does not divide is refused with `error:` before QEMU
/// starts.
#[test]
fn numa_option_splits_the_machine_and_refuses_bad_splits() {
    let (status, stdout, context) =
        run_piped(&["--smp", "4", "--numa", "2"], b"numa --json\npoweroff\n");
    assert_eq!(status, 0, "should boot and power off\n{context}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("{\"srat\""))
        .unwrap_or_else(|| panic!("no `numa --json` output\n{context}"));
    let j = tools::qemu::parse_json(line).unwrap_or_else(|e| panic!("{e}\n{context}"));
    assert_eq!(j["node_count"], 2, "{context}");
    assert_eq!(
        j["nodes"][0]["cores"],
        serde_json::json!([0, 1]),
        "{context}"
    );
    assert_eq!(
        j["nodes"][1]["cores"],
        serde_json::json!([2, 3]),
        "{context}"
    );

    for bad in [
        &["--smp", "4", "--numa", "3"][..],
        &["--numa", "0"],
        &["--numa", "two"],
    ] {
        let (status, stdout, context) = run_piped(bad, b"");
        assert_ne!(status, 0, "should be refused\n{context}");
        assert!(stdout.is_empty(), "QEMU should not start\n{context}");
        assert!(
            context.contains("error: --numa"),
            "should say `error: --numa ...`\n{context}"
        );
    }
}

/// Two defects of piped sessions: a line holding a lone ESC left the line editor inside an
/// escape sequence (no prompt came back, the session hung), and a line holding Ctrl-C (which
/// prints a prompt of its own) made the relay count one prompt too many, so it sent the next
/// line early and, at the end of the input, stopped QEMU in the middle of the last command.
#[test]
fn lone_escape_and_ctrl_c_lines_keep_the_relay_in_step() {
    let (status, stdout, context) =
        run_piped(&[], b"\x1b\nmem\nabc\x03\ncpus\nxyz\x03\n\x1b[\npoweroff\n");
    assert_eq!(status, 0, "should power off\n{context}");
    assert!(
        !context.contains("input ended; stopping QEMU"),
        "`poweroff` must run, not be cut off by the relay\n{context}"
    );
    let outputs = command_outputs(&stdout);
    let names: Vec<&str> = outputs
        .iter()
        .map(|(c, _)| c.as_str())
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        names,
        ["mem", "abc^C", "cpus", "xyz^C", "poweroff"],
        "every line should reach the shell whole, in order\n{context}"
    );
    for (command, output) in outputs.iter().filter(|(c, _)| c == "mem" || c == "cpus") {
        assert!(
            !output.trim().is_empty() && !output.lines().any(|l| l.starts_with("error: ")),
            "`{command}` should print its figures\n{context}"
        );
    }

    // Without `poweroff` the relay stops QEMU at the end of the input, but only once the last
    // command finished: its output and the prompt after it are there.
    let (status, stdout, context) = run_piped(&[], b"abc\x03\nmem\n");
    assert_eq!(status, 0, "{context}");
    assert!(context.contains("input ended; stopping QEMU"), "{context}");
    let outputs = command_outputs(&stdout);
    let mem = outputs
        .iter()
        .find(|(c, _)| c == "mem")
        .unwrap_or_else(|| panic!("`mem` should run\n{context}"));
    assert!(!mem.1.trim().is_empty(), "`mem` output\n{context}");
    let prompts = {
        let bytes = stdout.as_bytes();
        let (mut count, mut from) = (0, 0);
        while let Some(pos) = scan::find_prompt(bytes, from) {
            count += 1;
            from = pos + 1;
        }
        count
    };
    assert_eq!(
        prompts, 4,
        "boot, Ctrl-C, the empty rest of that line, and `mem`: QEMU must not be stopped before \
         the prompt after `mem`\n{context}"
    );
}
