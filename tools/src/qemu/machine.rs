//! The in-QEMU test harness: boots a prebuilt disk image and drives the serial console.
//!
//! A [`Machine`] starts QEMU with the console on pipes, collects the serial output on a thread,
//! and offers waits that always have a deadline. Every failure (timeout, a `*** PANIC` or
//! `*** EXCEPTION` report that was not expected, QEMU exiting early) panics with the whole serial
//! log in the message, which is what a failing test should show. QEMU is killed on drop.
//!
//! Tests never build: `run-tests.sh` (or `scripts/build.sh`) builds the images first, and a missing
//! image is reported as such.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::config::{Firmware, FirmwareVars, MachineConfig, SerialMode};
use super::options::{
    COMMAND_TIMEOUT, EXIT_TIMEOUT, Options, check_ramdisk_stamp, disk_image, scaled,
};
use super::scan::{self, HALTED};

/// How long a fault report may take to reach its `*** halted` line before the failure is raised.
const FAULT_REPORT_GRACE: Duration = Duration::from_secs(3);

/// What the reader threads collect.
#[derive(Debug, Default)]
struct Output {
    serial: Vec<u8>,
    stderr: Vec<u8>,
    serial_closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    output: Mutex<Output>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Output> {
        self.output
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One running QEMU machine with its console.
#[derive(Debug)]
pub struct Machine {
    options: Options,
    child: Child,
    stdin: Option<ChildStdin>,
    shared: Arc<Shared>,
    /// Serial output before this position has been consumed by a wait.
    cursor: usize,
    /// Whether the last thing consumed was a prompt (the console awaits a command).
    at_prompt: bool,
    /// A fault report was requested (`command_expect_halt`); it is then not a failure.
    expect_halt: bool,
    status: Option<ExitStatus>,
    _vars: Option<FirmwareVars>,
}

impl Machine {
    /// Starts QEMU and waits for the first prompt.
    #[track_caller]
    pub fn boot(options: Options) -> Self {
        let mut machine = Self::start(options);
        let timeout = machine.options.boot_timeout();
        machine.wait_prompt_within("the first prompt", timeout);
        machine
    }

    /// Starts QEMU without waiting for anything.
    #[track_caller]
    pub fn start(options: Options) -> Self {
        let chunks = options.chunk_image();
        let image = disk_image(&chunks, options.firmware);
        if !image.is_file() {
            panic!(
                "{} is missing: the QEMU tests boot prebuilt images; build them with \
                 ./run-tests.sh or scripts/build.sh{}",
                image.display(),
                options
                    .chunks
                    .as_ref()
                    .map(|c| format!(" --chunks {}", c.display()))
                    .unwrap_or_default()
            );
        }
        if options.chunks.is_some() {
            check_ramdisk_stamp(&image, &chunks);
        }
        let mut config = MachineConfig::new(&image, options.firmware);
        config.smp = options.smp;
        config.mem = options.mem.clone();
        config.icount = options.icount;
        config.no_reboot = !options.allow_reboot;
        if let Some(nodes) = options.numa {
            config
                .set_numa(nodes)
                .unwrap_or_else(|e| panic!("{}: {e}", options.label()));
        }
        config.extra_args = options.extra_args.iter().map(Into::into).collect();
        let vars = match options.firmware {
            Firmware::Uefi => {
                Some(FirmwareVars::create().unwrap_or_else(|e| panic!("UEFI variables: {e}")))
            }
            Firmware::Bios => None,
        };
        let mut child = config
            .command(SerialMode::Pipe, vars.as_ref())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} (install it with scripts/setup.sh): {e}",
                    super::config::QEMU
                )
            });
        let shared = Arc::new(Shared::default());
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        spawn_reader(stdout, Arc::clone(&shared), true);
        spawn_reader(stderr, Arc::clone(&shared), false);
        Self {
            options,
            stdin: child.stdin.take(),
            child,
            shared,
            cursor: 0,
            at_prompt: false,
            expect_halt: false,
            status: None,
            _vars: vars,
        }
    }

    /// The options this machine was started with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The whole serial output so far, as text (lossy UTF-8, raw `\r\n` and escape sequences).
    pub fn serial_log(&self) -> String {
        String::from_utf8_lossy(&self.shared.lock().serial).into_owned()
    }

    /// Writes bytes to the serial line as they are (control characters, escape sequences).
    #[track_caller]
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.at_prompt = false;
        let stdin = self.stdin.as_mut().expect("QEMU's stdin is open");
        if let Err(e) = stdin.write_all(bytes).and_then(|()| stdin.flush()) {
            let log = self.failure_log();
            panic!("writing to QEMU's serial input failed: {e}\n{log}");
        }
    }

    /// Types `line` and Enter (`\r`, as a terminal sends).
    #[track_caller]
    pub fn send_line(&mut self, line: &str) {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\r');
        self.send_raw(&bytes);
    }

    /// Waits until `pattern` appears in output not yet consumed and consumes through it; returns
    /// the consumed text.
    #[track_caller]
    pub fn wait_for(&mut self, pattern: &str, timeout: Duration) -> String {
        let what = format!("`{pattern}`");
        let needle = pattern.as_bytes().to_vec();
        self.wait_until(&what, scaled(timeout), |buf, from| {
            find_bytes(&buf[from..], &needle).map(|pos| (from + pos, from + pos + needle.len()))
        })
    }

    /// Waits for the next prompt (at most [`COMMAND_TIMEOUT`], or the boot timeout before the first
    /// prompt) and returns the text before it.
    #[track_caller]
    pub fn wait_prompt(&mut self) -> String {
        let (what, timeout) = if self.cursor == 0 {
            ("the first prompt", self.options.boot_timeout())
        } else {
            ("the next prompt", scaled(COMMAND_TIMEOUT))
        };
        self.wait_prompt_within(what, timeout)
    }

    #[track_caller]
    fn wait_prompt_within(&mut self, what: &str, timeout: Duration) -> String {
        let text = self.wait_until(what, timeout, |buf, from| {
            scan::find_prompt(buf, from).map(|pos| (pos, pos + scan::PROMPT.len()))
        });
        self.at_prompt = true;
        text
    }

    /// Runs a command line and returns its output: the lines between the echoed command line and
    /// the next prompt, joined with `\n`. Waits for a prompt first if there is none yet.
    #[track_caller]
    pub fn command(&mut self, line: &str) -> String {
        self.command_raw(line.as_bytes())
    }

    /// Types raw bytes (a line with editing keys, say) and Enter, and returns the output that
    /// follows the (redrawn) command line up to the next prompt.
    #[track_caller]
    pub fn command_raw(&mut self, keys: &[u8]) -> String {
        self.command_raw_within(keys, COMMAND_TIMEOUT)
    }

    /// Runs a command that may take longer than [`COMMAND_TIMEOUT`] (a stress run), waiting up
    /// to `timeout` for its prompt.
    #[track_caller]
    pub fn command_within(&mut self, line: &str, timeout: Duration) -> String {
        self.command_raw_within(line.as_bytes(), timeout)
    }

    #[track_caller]
    fn command_raw_within(&mut self, keys: &[u8], timeout: Duration) -> String {
        if !self.at_prompt {
            self.wait_prompt();
        }
        let mut bytes = keys.to_vec();
        bytes.push(b'\r');
        self.send_raw(&bytes);
        let what = format!(
            "the prompt after `{}`",
            scan::printable(keys).replace('\n', "\\n")
        );
        let text = self.wait_prompt_within(&what, scaled(timeout));
        scan::command_output(&text)
    }

    /// Runs a command that is expected to end in a fault report (`fault pagefault`, `fault
    /// panic`): waits for the report's final `*** halted` line and returns the output from after
    /// the echoed command line through that line. The report does not fail the test.
    #[track_caller]
    pub fn command_expect_halt(&mut self, line: &str) -> String {
        if !self.at_prompt {
            self.wait_prompt();
        }
        self.expect_halt = true;
        self.send_line(line);
        let what = format!("`{HALTED}` after `{line}`");
        let text = self.wait_until(&what, scaled(COMMAND_TIMEOUT), |buf, from| {
            scan::find_line_start(buf, from, HALTED).map(|pos| (pos, pos + HALTED.len()))
        });
        scan::command_output(&format!("{text}{HALTED}"))
    }

    /// Types `poweroff` and returns QEMU's exit status (0 for a clean power-off).
    #[track_caller]
    pub fn poweroff_and_wait(&mut self) -> i32 {
        if !self.at_prompt {
            self.wait_prompt();
        }
        self.send_line("poweroff");
        self.wait_exit(EXIT_TIMEOUT)
    }

    /// Types `reboot` and waits, with the boot timeout, for the next prompt, which is the first
    /// prompt of the new boot if the machine really reset; returns the text from after the
    /// echoed `reboot` to that prompt (the kernel's start-up log of the new boot), for the test
    /// to check. Needs [`Options::allow_reboot`]: without it QEMU exits on the reset and this
    /// fails, as it does when the machine powers off instead.
    #[track_caller]
    pub fn reboot_and_wait(&mut self) -> String {
        if !self.at_prompt {
            self.wait_prompt();
        }
        self.send_line("reboot");
        let timeout = self.options.boot_timeout();
        let text = self.wait_prompt_within("the first prompt after `reboot`", timeout);
        scan::command_output(&text)
    }

    /// Waits for QEMU to exit and returns its status (128 + signal if it was killed).
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + scaled(timeout);
        loop {
            if let Some(status) = self.try_status() {
                return exit_code(status);
            }
            if self.unexpected_fault() {
                self.fail_on_fault("QEMU to exit");
            }
            let output = self.shared.lock();
            if Instant::now() >= deadline {
                drop(output);
                self.fail(&format!(
                    "timed out after {:?} waiting for QEMU to exit",
                    scaled(timeout)
                ));
            }
            let _ = self
                .shared
                .changed
                .wait_timeout(output, Duration::from_millis(50));
        }
    }

    /// The core wait: `find(serial, cursor)` returns `(start, end)` of the awaited thing; the text
    /// from the cursor to `start` is returned and the cursor moves to `end`.
    #[track_caller]
    fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        find: impl Fn(&[u8], usize) -> Option<(usize, usize)>,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let output = self.shared.lock();
            if let Some((start, end)) = find(&output.serial, self.cursor) {
                let text = String::from_utf8_lossy(&output.serial[self.cursor..start]).into_owned();
                self.cursor = end;
                return text;
            }
            let closed = output.serial_closed;
            drop(output);
            if self.unexpected_fault() {
                self.fail_on_fault(what);
            }
            if closed {
                // Give QEMU a moment to be reaped so the message can carry its status.
                let status = self.wait_status_briefly();
                let status = status.map_or_else(|| "unknown".into(), |s| exit_code(s).to_string());
                self.fail(&format!(
                    "QEMU exited (status {status}) while waiting for {what}"
                ));
            }
            if Instant::now() >= deadline {
                self.fail(&format!("timed out after {timeout:?} waiting for {what}"));
            }
            let output = self.shared.lock();
            if output.serial_closed || find(&output.serial, self.cursor).is_some() {
                continue;
            }
            let _ = self
                .shared
                .changed
                .wait_timeout(output, Duration::from_millis(200));
        }
    }

    /// Whether the guest printed a panic or exception report that was not asked for.
    fn unexpected_fault(&self) -> bool {
        !self.expect_halt && scan::find_fault(&self.shared.lock().serial, 0).is_some()
    }

    /// Fails on an unexpected fault report, after letting the report finish (up to its
    /// `*** halted` line) so the log shows all of it.
    #[track_caller]
    fn fail_on_fault(&self, what: &str) -> ! {
        let deadline = Instant::now() + FAULT_REPORT_GRACE;
        while Instant::now() < deadline {
            {
                let output = self.shared.lock();
                if scan::find_line_start(&output.serial, 0, HALTED).is_some()
                    || output.serial_closed
                {
                    break;
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
        self.fail(&format!(
            "the guest reported a fault while waiting for {what}"
        ));
    }

    #[track_caller]
    fn fail(&self, why: &str) -> ! {
        panic!(
            "atoll in QEMU ({}): {why}\n{}",
            self.options.label(),
            self.failure_log()
        );
    }

    /// The serial log and QEMU's stderr, framed for a failure message.
    fn failure_log(&self) -> String {
        let output = self.shared.lock();
        let mut log = format!(
            "--- serial log ({} bytes; control bytes as \\xNN) ---\n{}\n--- end of serial log ---",
            output.serial.len(),
            scan::printable(&output.serial)
        );
        if !output.stderr.is_empty() {
            log.push_str(&format!(
                "\n--- QEMU stderr ---\n{}--- end of QEMU stderr ---",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        log
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    fn wait_status_briefly(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn spawn_reader(mut source: impl Read + Send + 'static, shared: Arc<Shared>, serial: bool) {
    thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        loop {
            let n = source.read(&mut chunk).unwrap_or(0);
            let mut output = shared.lock();
            if n == 0 {
                if serial {
                    output.serial_closed = true;
                }
                shared.changed.notify_all();
                return;
            }
            if serial {
                output.serial.extend_from_slice(&chunk[..n]);
            } else {
                output.stderr.extend_from_slice(&chunk[..n]);
            }
            shared.changed.notify_all();
        }
    });
}

/// A process status as a shell shows it: the exit code, or 128 + the signal number.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
