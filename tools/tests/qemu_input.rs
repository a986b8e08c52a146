//! Input robustness in QEMU: a few hundred thousand random bytes on the serial console (escape
//! sequences whole and cut short, NULs, lines far past the editor's limit, Ctrl-C, bursts written
//! faster than the shell reads) must not crash or wedge the shell; afterwards ordinary commands
//! run and print what they should.
//!
//! Run alone with `cargo test -p tools --release --test qemu_input -- --test-threads 2`.

use tools::qemu::{Checks, Machine, Options, parse_json};

/// Bytes of random input.
const RANDOM_BYTES: usize = 300_000;

/// xorshift64: a fixed seed, so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn byte(&mut self) -> u8 {
        (self.next() >> 24) as u8
    }
}

/// What the random stream is made of (each kind counted, to show the mix really had it).
#[derive(Debug, Default)]
struct Mix {
    random_runs: usize,
    sequences: usize,
    cut_sequences: usize,
    nul_runs: usize,
    long_lines: usize,
    ctrl_c: usize,
    line_ends: usize,
}

fn random_input(rng: &mut Rng, len: usize) -> (Vec<u8>, Mix) {
    const SEQUENCES: [&[u8]; 14] = [
        b"\x1b[A",
        b"\x1b[B",
        b"\x1b[C",
        b"\x1b[D",
        b"\x1b[H",
        b"\x1b[F",
        b"\x1b[3~",
        b"\x1b[1~",
        b"\x1b[4~",
        b"\x1bOH",
        b"\x1bOF",
        b"\x1b[1;5C",
        b"\x1b[15~",
        b"\x1b[?25h",
    ];
    const CUT: [&[u8]; 5] = [b"\x1b", b"\x1b[", b"\x1b[12;", b"\x1bO", b"\x1b[99"];
    let mut out = Vec::with_capacity(len + 8192);
    let mut mix = Mix::default();
    while out.len() < len {
        match rng.below(10) {
            0..=3 => {
                mix.random_runs += 1;
                for _ in 0..=rng.below(2000) {
                    out.push(rng.byte());
                }
            }
            4 => {
                mix.sequences += 1;
                out.extend_from_slice(SEQUENCES[rng.below(SEQUENCES.len() as u64) as usize]);
            }
            5 => {
                mix.cut_sequences += 1;
                out.extend_from_slice(CUT[rng.below(CUT.len() as u64) as usize]);
                out.push(if rng.below(2) == 0 { b'\r' } else { rng.byte() });
            }
            6 => {
                mix.nul_runs += 1;
                out.resize(out.len() + 1 + rng.below(500) as usize, 0);
            }
            7 => {
                mix.long_lines += 1;
                for _ in 0..(300 + rng.below(5000)) {
                    out.push(b' ' + rng.below(95) as u8);
                }
                out.push(b'\r');
            }
            8 => {
                mix.ctrl_c += 1;
                out.push(0x03);
            }
            _ => {
                // A short line of letters: an unknown command, or an argument error.
                for _ in 0..rng.below(12) {
                    out.push(b'a' + rng.below(26) as u8);
                }
                out.push(if rng.below(2) == 0 { b'\r' } else { b'\n' });
            }
        }
    }
    mix.line_ends = out.iter().filter(|&&b| b == b'\r' || b == b'\n').count();
    (out, mix)
}

#[test]
fn random_bytes_leave_the_shell_working() {
    let mut m = Machine::boot(Options::bios());
    let before = m.command("mem --json");
    let (input, mix) = random_input(&mut Rng(0x9e37_79b9_7f4a_7c15), RANDOM_BYTES);
    assert!(
        mix.sequences > 0 && mix.cut_sequences > 0 && mix.nul_runs > 0 && mix.long_lines > 0,
        "{mix:?}"
    );
    // Bursts of random size, back to back: QEMU takes them as fast as the UART drains.
    let mut rng = Rng(7);
    let mut sent = 0;
    while sent < input.len() {
        let burst = (1 + rng.below(65_536) as usize).min(input.len() - sent);
        m.send_raw(&input[sent..sent + burst]);
        sent += burst;
    }
    // Bytes the receive ring had no room for are dropped, so a marker line may be lost in the
    // tail of the stream: send numbered markers until one comes back as an unknown command.
    // Ctrl-C first ends whatever line or sequence the stream left open.
    let mut synced = None;
    for n in 0..60 {
        m.send_raw(format!("\x03sync-{n}\r").as_bytes());
        std::thread::sleep(std::time::Duration::from_secs(1));
        let log = m.serial_log();
        if (0..=n).any(|k| log.contains(&format!("`sync-{k}`"))) {
            // Once one marker came through, the ring had room for the later ones: wait for
            // the last one sent.
            synced = Some(n);
            break;
        }
    }
    let log = m.serial_log();
    let synced = synced.unwrap_or_else(|| {
        panic!(
            "the shell never answered a marker line after the random input ({} bytes of output)\n{}",
            log.len(),
            tools::qemu::scan::printable(log.as_bytes().rsplit_once_tail(4000))
        )
    });
    m.wait_for(
        &format!("`sync-{synced}`"),
        std::time::Duration::from_secs(60),
    );
    m.wait_prompt();

    let mut c = Checks::new();
    let errors = log
        .lines()
        .filter(|l| l.trim_start_matches(['\r', '\n']).starts_with("error: "))
        .count();
    c.check(errors > 10, || {
        format!("the random lines should have run as commands and failed with `error: `; {errors} did ({mix:?})")
    });
    c.check(log.contains("line longer than"), || {
        "an overlong line should be refused with `error: line longer than ...`".into()
    });
    let help = m.command("help");
    c.check(
        ["mem ", "cpus "]
            .iter()
            .all(|w| help.lines().any(|l| l.trim_start().starts_with(w))),
        || format!("`help` after the random input: {help:?}"),
    );
    let cpus = m.command("cpus --json");
    match parse_json(&cpus) {
        Ok(j) => c.check(j["online"] == 2, || format!("`cpus --json`: {cpus}")),
        Err(e) => c.fail(format!(
            "`cpus --json` after the random input: {e}: {cpus:?}"
        )),
    }
    let after = m.command("mem --json");
    for (label, text) in [("before", &before), ("after", &after)] {
        c.check(parse_json(text).is_ok(), || {
            format!("`mem --json` {label}: {text:?}")
        });
    }
    c.check(
        m.command_raw(b"elp\x1b[H\x1bh")
            .lines()
            .any(|l| l.trim_start().starts_with("poweroff ")),
        || "editing keys after the random input: `help` typed with Home and a lone ESC".into(),
    );
    c.finish(&m);
    assert_eq!(m.poweroff_and_wait(), 0);
}

/// The last `n` bytes of a buffer.
trait Tail {
    fn rsplit_once_tail(&self, n: usize) -> &[u8];
}

impl Tail for [u8] {
    fn rsplit_once_tail(&self, n: usize) -> &[u8] {
        &self[self.len().saturating_sub(n)..]
    }
}
