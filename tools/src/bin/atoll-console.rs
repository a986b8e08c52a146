//! `atoll-console`: boots an atoll disk image in QEMU and connects the serial console to this
//! process's stdin and stdout. `run-qemu.sh` builds the images and then runs this.
//!
//! With a terminal on stdin QEMU gets the terminal itself (`-serial mon:stdio`, raw; Ctrl-A X
//! quits). With a pipe, input typed before the kernel is ready would be lost, so this relays it:
//! guest output is copied to stdout as it arrives, and each input line is sent (ending in `\r`,
//! as a terminal's Enter) only once the kernel has printed its prompt `atoll> ` for it. When the
//! input ends, it waits for the last command to finish and stops QEMU.
//!
//! Exit status: QEMU's (0 after `poweroff`); 0 when the input ended and QEMU was stopped; 1 if
//! the kernel halted on a fault report (`*** halted`) or on a usage error.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ExitCode, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use tools::qemu::config::{Firmware, FirmwareVars, MachineConfig, QEMU, SerialMode};
use tools::qemu::machine::exit_code;
use tools::qemu::scan::ConsoleScanner;

const USAGE: &str = "usage: atoll-console --image DISK-IMAGE [--firmware bios|uefi] [--kernel ELF] \
[--smp N] [--mem SIZE] [--icount] [--gdb] [--kvm] [--no-reboot] [-- QEMU-ARGS...]";

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
        print_gdb_help(args.kernel.as_ref());
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

fn print_gdb_help(kernel: Option<&PathBuf>) {
    eprintln!("atoll: QEMU waits for gdb on localhost:1234 before running the guest");
    match kernel.map(|k| std::fs::canonicalize(k).unwrap_or_else(|_| k.clone())) {
        Some(elf) => {
            eprintln!("atoll: kernel ELF (symbols): {}", elf.display());
            eprintln!(
                "atoll: in another terminal: gdb {} -ex 'target remote localhost:1234'",
                elf.display()
            );
        }
        None => eprintln!(
            "atoll: in another terminal: gdb KERNEL-ELF -ex 'target remote localhost:1234'"
        ),
    }
}

/// What the output thread has seen.
#[derive(Debug, Default)]
struct Seen {
    scanner: ConsoleScanner,
    closed: bool,
}

/// What the input side waits for.
enum Next {
    /// A prompt for the next line.
    Prompt,
    /// QEMU closed its output (it exited).
    Exited,
    /// The kernel printed a fault report and stopped.
    Halted,
}

fn relay(mut child: Child) -> Result<i32, String> {
    let shared = Arc::new((Mutex::new(Seen::default()), Condvar::new()));
    let mut guest_out = child.stdout.take().ok_or("QEMU's stdout is not piped")?;
    let mut guest_in = child.stdin.take().ok_or("QEMU's stdin is not piped")?;
    let reader = {
        let shared = Arc::clone(&shared);
        thread::spawn(move || {
            let mut stdout = std::io::stdout();
            let mut chunk = [0u8; 4096];
            loop {
                let n = guest_out.read(&mut chunk).unwrap_or(0);
                if n > 0 {
                    // A closed stdout (`| head`) must not stop the guest: keep draining.
                    let _ = stdout.write_all(&chunk[..n]).and_then(|()| stdout.flush());
                }
                let (lock, changed) = &*shared;
                let mut seen = lock.lock().unwrap_or_else(|p| p.into_inner());
                if n == 0 {
                    seen.closed = true;
                } else {
                    seen.scanner.feed(&chunk[..n]);
                }
                changed.notify_all();
                if n == 0 {
                    return;
                }
            }
        })
    };
    let wait_next = |lines_sent: usize| -> Next {
        let (lock, changed) = &*shared;
        let mut seen = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if seen.scanner.halted {
                return Next::Halted;
            }
            if seen.scanner.prompts > lines_sent {
                return Next::Prompt;
            }
            if seen.closed {
                return Next::Exited;
            }
            seen = changed.wait(seen).unwrap_or_else(|p| p.into_inner());
        }
    };

    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    let mut sent = 0;
    let outcome = loop {
        line.clear();
        let read = stdin.read_until(b'\n', &mut line).unwrap_or(0);
        match wait_next(sent) {
            Next::Prompt if read > 0 => {}
            other => break other,
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        line.push(b'\r');
        if guest_in
            .write_all(&line)
            .and_then(|()| guest_in.flush())
            .is_err()
        {
            break wait_next(usize::MAX);
        }
        sent += 1;
    };
    let code = match outcome {
        Next::Exited => {
            let status = child.wait().map_err(|e| format!("waiting for QEMU: {e}"))?;
            exit_code(status)
        }
        Next::Halted => {
            eprintln!("\natoll-console: the kernel halted after a fault report; stopping QEMU");
            stop(&mut child);
            1
        }
        Next::Prompt => {
            eprintln!("\natoll-console: input ended; stopping QEMU");
            stop(&mut child);
            0
        }
    };
    let _ = reader.join();
    Ok(code)
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
