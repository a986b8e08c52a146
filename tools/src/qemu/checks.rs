//! Collecting the failed checks of one QEMU boot: TCG is slow, so a test runs a batch of
//! commands per boot, checks everything, and reports every failure at once with the serial log.

use std::fmt::Write as _;

use super::{Json, Machine, parse_json, scan};

/// The failed checks of one batch.
#[derive(Debug, Default)]
pub struct Checks {
    failures: Vec<String>,
}

impl Checks {
    /// No failures yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a failure.
    pub fn fail(&mut self, what: String) {
        self.failures.push(what);
    }

    /// Records `what()` unless `ok`.
    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(what());
        }
    }

    /// Parses a `--json` output: exactly one line holding one JSON object (`Null` and a
    /// recorded failure otherwise).
    pub fn json(&mut self, command: &str, output: &str) -> Json {
        let line = output.trim();
        if line.lines().count() != 1 {
            self.failures.push(format!(
                "`{command}`: expected exactly one line of output, got {output:?}"
            ));
        }
        match parse_json(line) {
            Ok(v @ Json::Object(_)) => v,
            Ok(other) => {
                self.failures.push(format!(
                    "`{command}`: expected a JSON object, got {other:?}"
                ));
                Json::Null
            }
            Err(e) => {
                self.failures
                    .push(format!("`{command}`: {e}; output was {output:?}"));
                Json::Null
            }
        }
    }

    /// The unsigned integer `obj[key]` (0 and a recorded failure when it is not one).
    pub fn u64(&mut self, command: &str, obj: &Json, key: &str) -> u64 {
        let v = obj.get(key).and_then(Json::as_u64);
        self.check(v.is_some(), || {
            format!("`{command}`: `{key}` should be an unsigned integer in {obj:?}")
        });
        v.unwrap_or(0)
    }

    /// [`Checks::u64`] for several keys.
    pub fn ints(&mut self, command: &str, obj: &Json, keys: &[&str]) -> Vec<u64> {
        keys.iter().map(|key| self.u64(command, obj, key)).collect()
    }

    /// Checks a `{"min","median","p99","max"}` distribution and returns it.
    pub fn distribution(&mut self, command: &str, obj: &Json, key: &str) -> [u64; 4] {
        let Some(d) = obj.get(key) else {
            self.failures
                .push(format!("`{command}`: no `{key}` distribution in {obj:?}"));
            return [0; 4];
        };
        let v = ["min", "median", "p99", "max"].map(|k| self.u64(command, d, k));
        self.check(v[0] <= v[1] && v[1] <= v[2] && v[2] <= v[3], || {
            format!("`{command}`: `{key}` should be ordered min <= median <= p99 <= max: {d:?}")
        });
        v
    }

    /// Checks that the output has a line starting `error: `.
    pub fn error_line(&mut self, command: &str, output: &str) {
        self.check(output.lines().any(|l| l.starts_with("error: ")), || {
            format!("`{command}`: expected a line starting `error: `, got {output:?}")
        });
    }

    /// Fails the test with every recorded failure and the machine's serial log.
    #[track_caller]
    pub fn finish(self, machine: &Machine) {
        if self.failures.is_empty() {
            return;
        }
        let mut msg = format!("{} check(s) failed:\n", self.failures.len());
        for f in &self.failures {
            let _ = writeln!(msg, "  - {f}");
        }
        panic!(
            "{msg}--- serial log ---\n{}\n--- end of serial log ---",
            scan::printable(machine.serial_log().as_bytes())
        );
    }
}
