//! `atoll-console`: boots an atoll disk image in QEMU and connects the serial console to this
//! process's stdin and stdout. `run-qemu.sh` builds the images and then runs this.
//!
//! With a terminal on stdin QEMU gets the terminal itself (`-serial mon:stdio`, raw; Ctrl-A X
//! quits). With a pipe, input typed before the kernel is ready would be lost, so this relays it:
//! guest output is copied to stdout as it arrives, and each input line is sent (ending in `\r`,
//! as a terminal's Enter) only once the kernel has printed every prompt the lines before it
//! produce (a line holding Ctrl-C produces two: see `tools::qemu::prompts`). When the input
//! ends, it waits for the last command to finish and stops QEMU.
//!
//! Exit status: QEMU's (0 after `poweroff`); 0 when the input ended and QEMU was stopped; 1 if
//! the kernel halted on a fault report (`*** halted`) or on a usage error; 124 if
//! `ATOLL_PROMPT_TIMEOUT` (seconds, pipe mode only) passed without the next prompt, or, when it
//! is unset, if the guest printed nothing for [`SILENCE_TIMEOUT`] while a prompt was awaited.

use std::collections::VecDeque;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ExitCode, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use tools::qemu::config::{Firmware, FirmwareVars, MachineConfig, QEMU, SerialMode};
use tools::qemu::machine::exit_code;
use tools::qemu::prompts::PromptPredictor;
use tools::qemu::scan::ConsoleScanner;

const USAGE: &str = "usage: atoll-console --image DISK-IMAGE [--firmware bios|uefi] [--kernel ELF] \
[--smp N] [--mem SIZE] [--numa N] [--icount] [--gdb] [--kvm] [--no-reboot] [-- QEMU-ARGS...]";

#[derive(Debug)]
struct Args {
    config: MachineConfig,
    kernel: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut image = None;
    let mut firmware = Firmware::Bios;
    let mut kernel = None;
    let mut smp = 2;
    let mut mem = String::from("1G");
    let mut numa = None;
    let (mut icount, mut gdb, mut kvm, mut no_reboot) = (false, false, false, false);
    let mut extra = Vec::new();
    let mut it = std::env::args_os().skip(1);
    while let Some(arg) = it.next() {
        let flag = arg.to_string_lossy().into_owned();
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--image" => image = Some(PathBuf::from(value()?)),
            "--kernel" => kernel = Some(PathBuf::from(value()?)),
            "--firmware" => {
                let name = value()?.to_string_lossy().into_owned();
                firmware = Firmware::from_name(&name)
                    .ok_or_else(|| format!("--firmware must be bios or uefi, not `{name}`"))?;
            }
            "--smp" => {
                let n = value()?.to_string_lossy().into_owned();
                smp = n
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("--smp needs a core count, not `{n}`"))?;
            }
            "--mem" => mem = value()?.to_string_lossy().into_owned(),
            "--numa" => {
                let n = value()?.to_string_lossy().into_owned();
                numa = Some(
                    n.parse::<u32>()
                        .map_err(|_| format!("error: --numa needs a node count, not `{n}`"))?,
                );
            }
            "--icount" => icount = true,
            "--gdb" => gdb = true,
            "--kvm" => kvm = true,
            "--no-reboot" => no_reboot = true,
            "--" => {
                extra.extend(it.by_ref());
                break;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    let image = image.ok_or_else(|| format!("--image is required\n{USAGE}"))?;
    if !image.is_file() {
        return Err(format!("disk image {} does not exist", image.display()));
    }
    let mut config = MachineConfig::new(image, firmware);
    config.smp = smp;
    config.mem = mem;
    config.icount = icount;
    config.gdb = gdb;
    config.kvm = kvm;
    config.no_reboot = no_reboot;
    if let Some(nodes) = numa {
        config.set_numa(nodes).map_err(|e| format!("error: {e}"))?;
    }
    config.extra_args = extra;
    Ok(Args { config, kernel })
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)),
        Err(e) => {
            eprintln!("atoll-console: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<i32, String> {
    let args = parse_args()?;
    let vars = match args.config.firmware {
        Firmware::Uefi => Some(FirmwareVars::create().map_err(|e| e.to_string())?),
        Firmware::Bios => None,
    };
    if args.config.gdb {
        print_gdb_help(args.kernel.as_ref(), args.config.firmware);
    }
    if std::io::stdin().is_terminal() {
        eprintln!("atoll: console on this terminal; quit with Ctrl-A X (Ctrl-A C: QEMU monitor)");
        let status = args
            .config
            .command(SerialMode::Terminal, vars.as_ref())
            .status()
            .map_err(|e| format!("cannot start {QEMU} (run scripts/setup.sh): {e}"))?;
        return Ok(exit_code(status));
    }
    let child = args
        .config
        .command(SerialMode::Pipe, vars.as_ref())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {QEMU} (run scripts/setup.sh): {e}"))?;
    relay(child)
}

/// Where bootloader 0.11.15 loads the (position-independent) kernel: the same address on every
/// boot with a given firmware. A fault report's `rip: ... (kernel+OFFSET)` line confirms it.
fn kernel_load_base(firmware: Firmware) -> u64 {
    match firmware {
        Firmware::Bios => 0x100_0000_0000,
        Firmware::Uefi => 0x80_0000_0000,
    }
}

fn print_gdb_help(kernel: Option<&PathBuf>, firmware: Firmware) {
    eprintln!("atoll: QEMU waits for gdb on localhost:1234 before running the guest");
    let elf = kernel.map_or_else(
        || "KERNEL-ELF".to_owned(),
        |k| {
            let path = std::fs::canonicalize(k).unwrap_or_else(|_| k.clone());
            path.display().to_string()
        },
    );
    let base = kernel_load_base(firmware);
    eprintln!("atoll: kernel ELF (symbols): {elf}; position-independent, loaded at {base:#x}");
    eprintln!("atoll: in another terminal:");
    eprintln!(
        "  gdb -ex 'add-symbol-file {elf} -o {base:#x}' -ex 'target remote localhost:1234' \\"
    );
    eprintln!("      -ex 'hbreak atoll_kernel::kmain' -ex continue");
}

/// What the relay's threads report to its main loop.
enum Event {
    /// A line of input (without its line break).
    Line(Vec<u8>),
    /// The input ended.
    InputEnd,
    /// The guest printed its prompt (the count so far).
    Prompts(usize),
    /// The guest printed something (no new prompt).
    Output,
    /// The guest printed the last line of a fault report and stopped.
    Halted,
    /// QEMU closed its output: it exited.
    Exited,
}

/// Without `ATOLL_PROMPT_TIMEOUT`, how long the guest may print nothing at all while the relay
/// waits for a prompt: a piped session never waits forever.
const SILENCE_TIMEOUT: Duration = Duration::from_secs(600);

/// The longest wait for a prompt in pipe mode, from `ATOLL_PROMPT_TIMEOUT` (seconds); `None`
/// when unset (then [`SILENCE_TIMEOUT`] applies).
fn prompt_timeout() -> Result<Option<Duration>, String> {
    match std::env::var("ATOLL_PROMPT_TIMEOUT") {
        Err(_) => Ok(None),
        Ok(text) => text
            .parse::<f64>()
            .ok()
            .filter(|s| *s > 0.0 && s.is_finite())
            .map(|s| Some(Duration::from_secs_f64(s)))
            .ok_or_else(|| {
                format!("ATOLL_PROMPT_TIMEOUT must be a number of seconds, not `{text}`")
            }),
    }
}

/// Copies QEMU's output to stdout as it arrives and reports prompts, halts and the end.
fn spawn_output_thread(mut guest_out: impl Read + Send + 'static, events: Sender<Event>) {
    thread::spawn(move || {
        let mut stdout = std::io::stdout();
        let mut scanner = ConsoleScanner::default();
        let mut chunk = [0u8; 4096];
        loop {
            let n = guest_out.read(&mut chunk).unwrap_or(0);
            if n == 0 {
                let _ = events.send(Event::Exited);
                return;
            }
            // A closed stdout (`| head`) must not stop the guest: keep draining.
            let _ = stdout.write_all(&chunk[..n]).and_then(|()| stdout.flush());
            let (prompts, halted) = (scanner.prompts, scanner.halted);
            scanner.feed(&chunk[..n]);
            if scanner.prompts != prompts {
                let _ = events.send(Event::Prompts(scanner.prompts));
            } else {
                let _ = events.send(Event::Output);
            }
            if scanner.halted && !halted {
                let _ = events.send(Event::Halted);
            }
        }
    });
}

/// Reads input lines; runs apart from the main loop so that QEMU exiting is noticed even while
/// the input is silent.
fn spawn_input_thread(events: Sender<Event>) {
    thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut line = Vec::new();
            if stdin.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                let _ = events.send(Event::InputEnd);
                return;
            }
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            if events.send(Event::Line(line)).is_err() {
                return;
            }
        }
    });
}

/// The pipe-mode relay: each input line goes to the guest (ending in `\r`) only after the guest
/// printed every prompt expected so far: one for the boot, then as many per sent line as the
/// shell's line editor makes of it.
fn relay(mut child: Child) -> Result<i32, String> {
    let prompt_timeout = prompt_timeout()?;
    // With ATOLL_PROMPT_TIMEOUT only a prompt restarts the clock; without it any output does.
    let wait_limit = prompt_timeout.unwrap_or(SILENCE_TIMEOUT);
    let (events, inbox) = mpsc::channel();
    spawn_output_thread(
        child.stdout.take().ok_or("QEMU's stdout is not piped")?,
        events.clone(),
    );
    spawn_input_thread(events);
    let mut guest_in = child.stdin.take().ok_or("QEMU's stdin is not piped")?;
    let mut pending: VecDeque<Vec<u8>> = VecDeque::new();
    let mut predictor = PromptPredictor::default();
    let (mut input_ended, mut prompts, mut expected) = (false, 0, 1);
    let mut deadline = Instant::now() + wait_limit;
    loop {
        let event = inbox.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        match event {
            Ok(Event::Line(line)) => pending.push_back(line),
            Ok(Event::InputEnd) => input_ended = true,
            Ok(Event::Prompts(count)) => {
                prompts = count;
                deadline = Instant::now() + wait_limit;
            }
            Ok(Event::Output) => {
                if prompt_timeout.is_none() {
                    deadline = Instant::now() + wait_limit;
                }
            }
            Ok(Event::Halted) => {
                eprintln!("\natoll-console: the kernel halted after a fault report; stopping QEMU");
                stop(&mut child);
                return Ok(1);
            }
            Ok(Event::Exited) | Err(RecvTimeoutError::Disconnected) => {
                let status = child.wait().map_err(|e| format!("waiting for QEMU: {e}"))?;
                return Ok(exit_code(status));
            }
            // Waiting for input, not for the guest: the timeout does not apply.
            Err(RecvTimeoutError::Timeout) if prompts >= expected => {
                deadline = Instant::now() + wait_limit;
            }
            Err(RecvTimeoutError::Timeout) => {
                let why = match prompt_timeout {
                    Some(t) => format!("no prompt within {t:?} (ATOLL_PROMPT_TIMEOUT)"),
                    None => format!(
                        "no output for {wait_limit:?} while waiting for a prompt \
                         (set ATOLL_PROMPT_TIMEOUT to bound each wait)"
                    ),
                };
                eprintln!("\natoll-console: {why}; stopping QEMU");
                stop(&mut child);
                return Ok(124);
            }
        }
        while prompts >= expected {
            let Some(mut line) = pending.pop_front() else {
                break;
            };
            line.push(b'\r');
            // A failed write means QEMU is gone; its exit is reported next.
            if guest_in
                .write_all(&line)
                .and_then(|()| guest_in.flush())
                .is_ok()
            {
                expected += predictor.prompts_for(&line);
                deadline = Instant::now() + wait_limit;
            } else {
                break;
            }
        }
        if input_ended && pending.is_empty() && prompts >= expected {
            eprintln!("\natoll-console: input ended; stopping QEMU");
            stop(&mut child);
            return Ok(0);
        }
    }
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
