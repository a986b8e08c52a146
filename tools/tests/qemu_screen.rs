//! The screen console and the keyboard in QEMU (`-vga std`), read through the monitor's
//! `screendump` (decoded with atoll's own font) and typed with `sendkey`:
//! - with no serial port at all (BIOS and UEFI): the boot log, the prompt, commands typed on the
//!   keyboard (with Home, Ctrl-C and an unknown command) and their output appear on the screen,
//!   and `poweroff` typed there ends QEMU with status 0;
//! - with both: the screen mirrors the serial output line for line, and keys typed on the
//!   keyboard run commands whose output also goes to the serial line; 400 random key presses
//!   (Enter, Esc, arrows, Ctrl and Shift combinations among them) leave the shell working.
//!
//! Run alone with `cargo test -p tools --release --test qemu_screen -- --test-threads 2`.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use tools::qemu::config::{FirmwareVars, MachineConfig, SerialMode};
use tools::qemu::machine::exit_code;
use tools::qemu::options::{default_chunk_image, disk_image};
use tools::qemu::screen::{Monitor, ScreenText};
use tools::qemu::{Firmware, Machine, Options};

fn scale() -> f64 {
    std::env::var("ATOLL_TIMEOUT_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(1.0)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("atoll-screen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Takes screenshots until `ready` holds (or fails after `timeout`, showing the last screen).
fn wait_screen(
    mon: &mut Monitor,
    what: &str,
    timeout: Duration,
    ready: impl Fn(&ScreenText) -> bool,
) -> ScreenText {
    let deadline = Instant::now() + timeout.mul_f64(scale());
    loop {
        let screen = mon.screen().unwrap_or_else(|e| panic!("screendump: {e}"));
        if ready(&screen) {
            return screen;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; the screen shows:\n{}",
            screen.joined()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The last non-empty row is the prompt (the shell waits for a command).
fn at_prompt(s: &ScreenText) -> bool {
    s.rows
        .iter()
        .rev()
        .find(|r| !r.is_empty())
        .map(String::as_str)
        == Some("atoll>")
}

struct Qemu {
    child: Child,
    _vars: Option<FirmwareVars>,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screen_only(firmware: Firmware) {
    let dir = scratch(firmware.name());
    let sock = dir.join("monitor.sock");
    let image = disk_image(&default_chunk_image(), firmware);
    assert!(
        image.is_file(),
        "{} is missing: run scripts/build.sh",
        image.display()
    );
    let mut config = MachineConfig::new(&image, firmware);
    config.no_reboot = true;
    config.extra_args = vec![
        "-vga".into(),
        "std".into(),
        "-monitor".into(),
        Monitor::arg(&sock).into(),
    ];
    let vars = match firmware {
        Firmware::Uefi => Some(FirmwareVars::create().unwrap()),
        Firmware::Bios => None,
    };
    let child = config
        .command(SerialMode::Absent, vars.as_ref())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting QEMU");
    let mut qemu = Qemu { child, _vars: vars };
    let mut mon = Monitor::connect(&sock, &dir, Duration::from_secs(20)).unwrap();

    let boot = wait_screen(
        &mut mon,
        "the first prompt",
        Duration::from_secs(120),
        at_prompt,
    );
    assert!(
        boot.has_row_starting("boot: ready in")
            && boot.rows.iter().any(|r| r.contains("screen console: ")),
        "the boot log should be on the screen:\n{}",
        boot.joined()
    );

    mon.type_text("hwinfo\r").unwrap();
    let s = wait_screen(&mut mon, "`hwinfo` output", Duration::from_secs(60), |s| {
        s.has_row_starting("console:") && at_prompt(s)
    });
    assert!(s.has_row_starting("atoll> hwinfo"), "{}", s.joined());
    assert!(
        s.rows
            .iter()
            .any(|r| r == "console:  serial no, screen yes, keyboard yes"),
        "no UART, so no serial console; screen and keyboard in use:\n{}",
        s.joined()
    );
    assert!(
        s.has_row_starting("cores:    2 online of 2"),
        "{}",
        s.joined()
    );

    // Line editing on the keyboard: `elp`, Home, `h`, Enter runs `help`.
    mon.type_text("elp").unwrap();
    mon.key("home").unwrap();
    mon.type_text("h\r").unwrap();
    let s = wait_screen(&mut mon, "`help` output", Duration::from_secs(60), |s| {
        s.has_row_starting("  reboot") && at_prompt(s)
    });
    assert!(s.has_row_starting("  poweroff"), "{}", s.joined());

    // Ctrl-C drops the line; an unknown command is an error line.
    mon.type_text("abc").unwrap();
    mon.key("ctrl-c").unwrap();
    mon.type_text("nosuch\r").unwrap();
    let s = wait_screen(
        &mut mon,
        "the error for `nosuch`",
        Duration::from_secs(60),
        |s| s.has_row_starting("error: unknown command `nosuch`") && at_prompt(s),
    );
    assert!(s.has_row_starting("atoll> abc^C"), "{}", s.joined());

    mon.type_text("poweroff\r").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60).mul_f64(scale());
    let status = loop {
        if let Some(status) = qemu.child.try_wait().unwrap() {
            break exit_code(status);
        }
        assert!(
            Instant::now() < deadline,
            "QEMU did not exit after `poweroff` typed on the keyboard"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 0, "`poweroff` should end QEMU with status 0");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn screen_and_keyboard_without_serial_bios() {
    screen_only(Firmware::Bios);
}

#[test]
fn screen_and_keyboard_without_serial_uefi() {
    screen_only(Firmware::Uefi);
}

#[test]
fn screen_mirrors_serial_and_keyboard_joins_it() {
    let dir = scratch("mirror");
    let sock = dir.join("monitor.sock");
    let mut m = Machine::boot(
        Options::bios()
            .arg("-vga")
            .arg("std")
            .arg("-monitor")
            .arg(&Monitor::arg(&sock)),
    );
    let mut mon = Monitor::connect(&sock, &dir, Duration::from_secs(20)).unwrap();
    let serial = m.command("cpus");
    let s = wait_screen(
        &mut mon,
        "`cpus` on the screen",
        Duration::from_secs(30),
        |s| s.has_row_starting("atoll> cpus") && at_prompt(s),
    );
    let start = s.rows.iter().rposition(|r| r == "atoll> cpus").unwrap() + 1;
    let on_screen: Vec<&str> = s.rows[start..]
        .iter()
        .map(String::as_str)
        .take_while(|r| *r != "atoll>")
        .collect();
    let on_serial: Vec<&str> = serial.lines().map(str::trim_end).collect();
    assert_eq!(
        on_screen, on_serial,
        "the screen should show what the serial line got"
    );

    // Keys typed with a serial console present: the command runs, its output on both.
    mon.type_text("mem\r").unwrap();
    m.wait_for("frames: ", Duration::from_secs(30));
    m.wait_prompt();
    let s = wait_screen(
        &mut mon,
        "`mem` on the screen",
        Duration::from_secs(30),
        |s| s.has_row_starting("frames: ") && at_prompt(s),
    );
    assert!(s.has_row_starting("atoll> mem"), "{}", s.joined());

    // 400 random key presses (letters, digits, symbols, Enter, Backspace, Esc, Tab, arrows,
    // Home/End/Delete, Ctrl and Shift combinations), held 2 ms each: the shell survives and
    // the keyboard still types commands.
    const KEYS: [&str; 30] = [
        "a",
        "z",
        "q",
        "m",
        "1",
        "0",
        "spc",
        "ret",
        "backspace",
        "esc",
        "tab",
        "up",
        "down",
        "left",
        "right",
        "home",
        "end",
        "delete",
        "ctrl-c",
        "ctrl-a",
        "ctrl-e",
        "ctrl-u",
        "shift-a",
        "shift-1",
        "bracket_left",
        "minus",
        "dot",
        "slash",
        "shift-grave_accent",
        "kp_enter",
    ];
    let mut x: u32 = 0x2545_f491;
    for _ in 0..400 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        mon.command(&format!("sendkey {} 20", KEYS[x as usize % KEYS.len()]))
            .unwrap();
    }
    let mut synced = None;
    for n in 0..20 {
        // A modifier release the keyboard's 16-byte queue dropped leaves Shift or Ctrl held in
        // the decoder (as on a real keyboard): pressing and releasing each lets go of it.
        for modifier in ["shift", "shift_r", "ctrl", "ctrl_r"] {
            mon.key(modifier).unwrap();
        }
        mon.key("ctrl-c").unwrap();
        mon.type_text(&format!("sync{n}\r")).unwrap();
        std::thread::sleep(Duration::from_secs(1));
        if m.serial_log().contains(&format!("`sync{n}`")) {
            synced = Some(n);
            break;
        }
    }
    let n = synced.unwrap_or_else(|| {
        let log = m.serial_log();
        let tail = &log.as_bytes()[log.len().saturating_sub(3000)..];
        let screen = mon.screen().map(|s| s.joined()).unwrap_or_default();
        panic!(
            "no marker line typed after the random keys came back\n--- serial tail ---\n{}\n--- screen ---\n{screen}",
            tools::qemu::scan::printable(tail)
        )
    });
    m.wait_for(&format!("`sync{n}`"), Duration::from_secs(30));
    m.wait_prompt();
    let help = m.command("help");
    assert!(
        help.lines().any(|l| l.trim_start().starts_with("hwinfo ")),
        "{help}"
    );
    assert_eq!(m.poweroff_and_wait(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
