//! Reading atoll's serial console: where prompts and fault reports are.
//!
//! The console contract: the prompt [`PROMPT`] is printed at the start of a line when the kernel
//! is ready for a command; lines end `\r\n`; a fault report starts with a line beginning
//! `*** PANIC` or `*** EXCEPTION` and ends with the line [`HALTED`]. Line-editing redraws go
//! back to the start of the line with `\r`, never `\n`, so they are not taken for new prompts.

/// The console prompt.
pub const PROMPT: &str = "atoll> ";
/// The last line of a fault report; the kernel stops after it.
pub const HALTED: &str = "*** halted";
/// Beginnings of the first line of a fault report.
pub const FAULT_PREFIXES: [&str; 2] = ["*** PANIC", "*** EXCEPTION"];

/// The first position at or after `from` where a line starting with `prefix` begins.
pub fn find_line_start(buf: &[u8], from: usize, prefix: &str) -> Option<usize> {
    let prefix = prefix.as_bytes();
    let mut pos = from;
    while pos + prefix.len() <= buf.len() {
        let at_line_start = pos == 0 || buf[pos - 1] == b'\n';
        if at_line_start && buf[pos..].starts_with(prefix) {
            return Some(pos);
        }
        pos += match buf[pos..].iter().position(|&b| b == b'\n') {
            Some(newline) => newline + 1,
            None => return None,
        };
    }
    None
}

/// The first prompt at the start of a line at or after `from`.
pub fn find_prompt(buf: &[u8], from: usize) -> Option<usize> {
    find_line_start(buf, from, PROMPT)
}

/// The first fault-report line (`*** PANIC` or `*** EXCEPTION`) at or after `from`.
pub fn find_fault(buf: &[u8], from: usize) -> Option<usize> {
    FAULT_PREFIXES
        .iter()
        .filter_map(|prefix| find_line_start(buf, from, prefix))
        .min()
}

/// The output of a command, given the console text from the echo of the command line up to (not
/// including) the next prompt: the echoed line is dropped, `\r\n` becomes `\n`, and the final
/// line break is removed.
pub fn command_output(text: &str) -> String {
    let after_echo = text.split_once('\n').map_or("", |(_, rest)| rest);
    let output = after_echo.replace("\r\n", "\n");
    output.trim_end_matches(['\r', '\n']).to_owned()
}

/// Renders raw console bytes readably for failure messages: `\r\n` becomes a line break and other
/// control bytes (escape sequences of line editing, stray `\r`) are shown as `\xNN`.
pub fn printable(buf: &[u8]) -> String {
    let text = String::from_utf8_lossy(buf).replace("\r\n", "\n");
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Follows a console byte stream as it arrives and counts prompts and fault reports; used where
/// the output is passed on without being kept (the `atoll-console` relay).
#[derive(Debug, Default)]
pub struct ConsoleScanner {
    /// The start of the current line, up to the longest marker.
    line: Vec<u8>,
    /// Prompts seen so far.
    pub prompts: usize,
    /// Whether a fault report's final line ([`HALTED`]) was seen.
    pub halted: bool,
}

impl ConsoleScanner {
    const KEEP: usize = 16;

    /// Takes the next bytes of the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.line.clear();
                continue;
            }
            if self.line.len() >= Self::KEEP {
                continue;
            }
            self.line.push(b);
            if self.line == PROMPT.as_bytes() {
                self.prompts += 1;
            } else if self.line == HALTED.as_bytes() {
                self.halted = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_only_at_line_start() {
        let buf = b"atoll> help\r\nsay atoll> \r\natoll> ";
        assert_eq!(find_prompt(buf, 0), Some(0));
        assert_eq!(find_prompt(buf, 1), Some(buf.len() - PROMPT.len()));
        assert_eq!(find_prompt(b"x\ratoll> ", 0), None);
        assert_eq!(find_prompt(b"atoll>", 0), None);
    }

    #[test]
    fn faults() {
        let buf = b"atoll> fault ud\r\n*** EXCEPTION: invalid opcode (vector 6)\r\n*** halted\r\n";
        assert_eq!(find_fault(buf, 0), Some(17));
        assert!(find_line_start(buf, 0, HALTED).is_some());
        assert_eq!(find_fault(b"x *** PANIC\r\n", 0), None);
    }

    #[test]
    fn output_drops_echo() {
        assert_eq!(command_output("mem\r\n{\"a\": 1}\r\n"), "{\"a\": 1}");
        assert_eq!(command_output("\r\n"), "");
        assert_eq!(
            command_output("help\r\nhelp  x\r\nmem  y\r\n"),
            "help  x\nmem  y"
        );
    }

    #[test]
    fn scanner_counts_across_chunks() {
        let mut s = ConsoleScanner::default();
        s.feed(b"boot\r\natol");
        s.feed(b"l> ");
        assert_eq!(s.prompts, 1);
        s.feed(b"help\r\nx\r\natoll> hepl\ratoll> help");
        assert_eq!(s.prompts, 2);
        s.feed(b"\r\n*** halted\r\n");
        assert!(s.halted);
    }

    #[test]
    fn printable_escapes_controls() {
        assert_eq!(printable(b"a\r\nb\x1b[D\r"), "a\nb\\x1b[D\\x0d");
    }
}
