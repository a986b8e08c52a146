//! The console's line editor: turns received bytes into edits of one line, with history.
//!
//! It understands printable ASCII, backspace (DEL or BS), Ctrl-A/Ctrl-E, Ctrl-C (drop the line),
//! Ctrl-U (kill to start), and the VT100 escapes for the arrows and home/end
//! (`ESC [ A/B/C/D/H/F`, `ESC [ 1~ / 4~ / 7~ / 8~ / 3~` and `ESC O A/B/C/D/H/F`). Other escape
//! sequences are skipped whole; a control byte inside one (Enter after a lone ESC) ends it and
//! counts as typed, so no input leaves the editor stuck in a sequence. The editor produces
//! terminal output to write back (echo and redraws), so it needs no knowledge of the UART.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

/// The longest line the editor accepts; further characters are refused with a bell.
pub const MAX_LINE_BYTES: usize = 256;
/// How many past lines `up` can reach.
pub const HISTORY_LINES: usize = 64;

/// What one received byte did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Nothing to act on yet; write `echo` (possibly empty) back to the terminal.
    Pending,
    /// A complete line was entered (Enter). The editor has already emitted the newline.
    Line(String),
    /// The line was abandoned (Ctrl-C).
    Cancelled,
    /// The line would have exceeded [`MAX_LINE_BYTES`]: the entered line is returned so the caller
    /// can report it; it is not run.
    Overflow,
}

/// Where the editor is inside a terminal escape sequence.
///
/// A sequence ends at its final byte, or at any control byte (C0 or DEL): that byte is then
/// taken as typed, so a lone ESC followed by Enter still ends the line. A byte after ESC that
/// starts no sequence is taken as typed too: ESC alone does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EscState {
    None,
    Esc,
    /// `ESC [`, with the first numeric parameter so far (`None` before any digit) and whether
    /// a second parameter (after `;`) began.
    Csi {
        param: Option<u16>,
        more: bool,
    },
    Ss3,
}

/// One line being edited, plus the history of entered lines.
#[derive(Debug)]
pub struct LineEditor {
    line: Vec<u8>,
    cursor: usize,
    esc: EscState,
    history: VecDeque<String>,
    /// Index into history while browsing with up/down (0 = newest); `None` when editing fresh.
    browsing: Option<usize>,
    /// The fresh line saved when browsing started, restored by `down` past the newest entry.
    saved: Vec<u8>,
    overflowed: bool,
    prompt: &'static str,
}

impl LineEditor {
    /// An empty editor whose redraws repaint `prompt` at the start of the line.
    pub fn new(prompt: &'static str) -> Self {
        Self {
            line: Vec::new(),
            cursor: 0,
            esc: EscState::None,
            history: VecDeque::new(),
            browsing: None,
            saved: Vec::new(),
            overflowed: false,
            prompt,
        }
    }

    /// The line as currently edited.
    pub fn current(&self) -> &[u8] {
        &self.line
    }

    /// The cursor position in bytes.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Past lines, newest first.
    pub fn history(&self) -> impl Iterator<Item = &str> {
        self.history.iter().map(String::as_str)
    }

    /// Feeds one received byte. Terminal output to echo is appended to `out`.
    pub fn feed(&mut self, byte: u8, out: &mut Vec<u8>) -> Event {
        let is_control = byte < 0x20 || byte == 0x7f;
        match self.esc {
            EscState::None => {}
            // A control byte ends any sequence and is then taken as typed.
            _ if is_control => self.esc = EscState::None,
            EscState::Esc => {
                self.esc = EscState::None;
                match byte {
                    b'[' => {
                        self.esc = EscState::Csi {
                            param: None,
                            more: false,
                        }
                    }
                    b'O' => self.esc = EscState::Ss3,
                    // Not a sequence: the ESC is dropped and this byte taken as typed.
                    _ => return self.plain(byte, out),
                }
                return Event::Pending;
            }
            EscState::Csi { param, more } => {
                match byte {
                    b'0'..=b'9' if !more => {
                        let digit = u16::from(byte - b'0');
                        let value = param.unwrap_or(0).saturating_mul(10).saturating_add(digit);
                        self.esc = EscState::Csi {
                            param: Some(value),
                            more,
                        };
                    }
                    // Further parameters (modifiers) and intermediate bytes.
                    0x20..=0x3f => self.esc = EscState::Csi { param, more: true },
                    // The final byte (0x40..=0x7e) ends the sequence.
                    _ => {
                        self.esc = EscState::None;
                        self.csi(param, byte, out);
                    }
                }
                return Event::Pending;
            }
            EscState::Ss3 => {
                self.esc = EscState::None;
                self.csi(None, byte, out);
                return Event::Pending;
            }
        }
        self.plain(byte, out)
    }

    /// Whether the editor is inside an escape sequence (the next byte continues it).
    pub fn in_escape(&self) -> bool {
        self.esc != EscState::None
    }

    /// Acts on the final byte of `ESC [ ... final` or `ESC O final`.
    fn csi(&mut self, param: Option<u16>, byte: u8, out: &mut Vec<u8>) {
        match (param, byte) {
            (None | Some(1), b'A') => self.history_up(out),
            (None | Some(1), b'B') => self.history_down(out),
            (None | Some(1), b'C') => self.right(out),
            (None | Some(1), b'D') => self.left(out),
            (None | Some(1), b'H') | (Some(1 | 7), b'~') => self.home(out),
            (None | Some(1), b'F') | (Some(4 | 8), b'~') => self.end(out),
            (Some(3), b'~') => self.delete_at_cursor(out),
            _ => {}
        }
    }

    /// A byte outside any escape sequence.
    fn plain(&mut self, byte: u8, out: &mut Vec<u8>) -> Event {
        match byte {
            0x1b => self.esc = EscState::Esc,
            b'\r' | b'\n' => return self.enter(out),
            0x7f | 0x08 => self.backspace(out),
            0x01 => self.home(out),
            0x05 => self.end(out),
            0x02 => self.left(out),
            0x06 => self.right(out),
            0x15 => self.kill_to_start(out),
            0x03 => {
                out.extend_from_slice(b"^C\r\n");
                self.reset();
                return Event::Cancelled;
            }
            0x20..=0x7e => self.insert(byte, out),
            _ => {}
        }
        Event::Pending
    }

    fn reset(&mut self) {
        self.line.clear();
        self.cursor = 0;
        self.browsing = None;
        self.saved.clear();
        self.overflowed = false;
    }

    fn enter(&mut self, out: &mut Vec<u8>) -> Event {
        out.extend_from_slice(b"\r\n");
        let overflowed = self.overflowed;
        let text = String::from_utf8_lossy(&self.line).into_owned();
        self.reset();
        if overflowed {
            return Event::Overflow;
        }
        let trimmed = text.trim();
        if !trimmed.is_empty() && self.history.front().map(String::as_str) != Some(trimmed) {
            if self.history.len() == HISTORY_LINES {
                self.history.pop_back();
            }
            self.history.push_front(String::from(trimmed));
        }
        Event::Line(text)
    }

    fn insert(&mut self, byte: u8, out: &mut Vec<u8>) {
        if self.line.len() >= MAX_LINE_BYTES {
            self.overflowed = true;
            out.push(0x07);
            return;
        }
        self.line.insert(self.cursor, byte);
        self.cursor += 1;
        if self.cursor == self.line.len() {
            out.push(byte);
        } else {
            self.redraw(out);
        }
    }

    fn backspace(&mut self, out: &mut Vec<u8>) {
        if self.cursor == 0 {
            return;
        }
        self.cursor -= 1;
        self.line.remove(self.cursor);
        self.redraw(out);
    }

    fn delete_at_cursor(&mut self, out: &mut Vec<u8>) {
        if self.cursor < self.line.len() {
            self.line.remove(self.cursor);
            self.redraw(out);
        }
    }

    fn kill_to_start(&mut self, out: &mut Vec<u8>) {
        self.line.drain(..self.cursor);
        self.cursor = 0;
        self.redraw(out);
    }

    fn left(&mut self, out: &mut Vec<u8>) {
        if self.cursor > 0 {
            self.cursor -= 1;
            out.extend_from_slice(b"\x1b[D");
        }
    }

    fn right(&mut self, out: &mut Vec<u8>) {
        if self.cursor < self.line.len() {
            self.cursor += 1;
            out.extend_from_slice(b"\x1b[C");
        }
    }

    fn home(&mut self, out: &mut Vec<u8>) {
        self.cursor = 0;
        self.redraw(out);
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.cursor = self.line.len();
        self.redraw(out);
    }

    fn history_up(&mut self, out: &mut Vec<u8>) {
        let next = match self.browsing {
            None => 0,
            Some(i) => i + 1,
        };
        let Some(entry) = self.history.get(next) else {
            return;
        };
        if self.browsing.is_none() {
            self.saved = core::mem::take(&mut self.line);
        }
        self.line = entry.as_bytes().to_vec();
        self.browsing = Some(next);
        self.cursor = self.line.len();
        self.redraw(out);
    }

    fn history_down(&mut self, out: &mut Vec<u8>) {
        match self.browsing {
            None => return,
            Some(0) => {
                self.line = core::mem::take(&mut self.saved);
                self.browsing = None;
            }
            Some(i) => {
                self.line = self.history[i - 1].as_bytes().to_vec();
                self.browsing = Some(i - 1);
            }
        }
        self.cursor = self.line.len();
        self.redraw(out);
    }

    /// Repaints the whole line: carriage return, prompt, text, clear to end of line, then moves
    /// the cursor back to its place.
    fn redraw(&self, out: &mut Vec<u8>) {
        out.push(b'\r');
        out.extend_from_slice(self.prompt.as_bytes());
        out.extend_from_slice(&self.line);
        out.extend_from_slice(b"\x1b[K");
        let back = self.line.len() - self.cursor;
        if back > 0 {
            out.extend_from_slice(b"\x1b[");
            push_decimal(out, back);
            out.push(b'D');
        }
    }
}

fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(ed: &mut LineEditor, bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        bytes
            .iter()
            .map(|b| ed.feed(*b, &mut out))
            .filter(|e| *e != Event::Pending)
            .collect()
    }

    fn line(s: &str) -> Event {
        Event::Line(String::from(s))
    }

    #[test]
    fn plain_line() {
        let mut ed = LineEditor::new("> ");
        assert_eq!(feed_all(&mut ed, b"help\r"), [line("help")]);
    }

    #[test]
    fn backspace_both_codes() {
        let mut ed = LineEditor::new("> ");
        assert_eq!(feed_all(&mut ed, b"hepx\x7f\x08lp\r"), [line("help")]);
    }

    #[test]
    fn cursor_movement_inserts_in_middle() {
        let mut ed = LineEditor::new("> ");
        // "hepl", left, left, backspace -> "hpl"; insert 'e' -> "hepl"? Build "help" instead:
        // type "hlp", home, right, insert 'e' -> "help".
        assert_eq!(feed_all(&mut ed, b"hlp\x1b[H\x1b[Ce\r"), [line("help")]);
        assert_eq!(
            feed_all(&mut ed, b"hepl\x1b[D\x1b[D\x7f\x1b[Cl\r"),
            [line("hpll")]
        );
        assert_eq!(feed_all(&mut ed, b"elp\x01h\x05!\r"), [line("help!")]);
        assert_eq!(feed_all(&mut ed, b"lp\x1b[1~he\x1b[4~\r"), [line("help")]);
        assert_eq!(feed_all(&mut ed, b"xhelp\x1bOH\x1b[3~\r"), [line("help")]);
    }

    #[test]
    fn history_up_down() {
        let mut ed = LineEditor::new("> ");
        feed_all(&mut ed, b"one\rtwo\r");
        assert_eq!(feed_all(&mut ed, b"\x1b[A\r"), [line("two")]);
        // "two" was entered again but is not duplicated at the front.
        assert_eq!(feed_all(&mut ed, b"\x1b[A\x1b[A\r"), [line("one")]);
        assert_eq!(feed_all(&mut ed, b"fresh\x1b[A\x1b[B\r"), [line("fresh")]);
        let hist: Vec<_> = ed.history().collect();
        assert_eq!(hist, ["fresh", "one", "two", "one"]);
    }

    #[test]
    fn history_is_bounded() {
        let mut ed = LineEditor::new("> ");
        for i in 0..(HISTORY_LINES + 10) {
            let cmd = alloc::format!("c{i}\r");
            feed_all(&mut ed, cmd.as_bytes());
        }
        assert_eq!(ed.history().count(), HISTORY_LINES);
    }

    #[test]
    fn overflow_is_reported_not_run() {
        let mut ed = LineEditor::new("> ");
        let long = [b'a'; MAX_LINE_BYTES + 20];
        assert_eq!(feed_all(&mut ed, &long), []);
        assert_eq!(feed_all(&mut ed, b"\r"), [Event::Overflow]);
        assert_eq!(feed_all(&mut ed, b"ok\r"), [line("ok")]);
    }

    #[test]
    fn ctrl_c_cancels() {
        let mut ed = LineEditor::new("> ");
        assert_eq!(feed_all(&mut ed, b"abc\x03"), [Event::Cancelled]);
        assert_eq!(feed_all(&mut ed, b"d\r"), [line("d")]);
    }

    #[test]
    fn redraw_moves_cursor_back() {
        let mut ed = LineEditor::new("> ");
        let mut out = Vec::new();
        for b in b"ab\x1b[D\x1b[Dx" {
            ed.feed(*b, &mut out);
        }
        assert_eq!(ed.current(), b"xab");
        assert_eq!(ed.cursor(), 1);
        assert!(out.ends_with(b"\r> xab\x1b[K\x1b[2D"));
    }

    #[test]
    fn lone_escape_does_not_swallow_enter() {
        let mut ed = LineEditor::new("> ");
        // ESC then Enter: the line ends (empty), and the editor is out of the sequence.
        assert_eq!(feed_all(&mut ed, b"\x1b\r"), [line("")]);
        assert!(!ed.in_escape());
        assert_eq!(feed_all(&mut ed, b"help\x1b\r"), [line("help")]);
        // ESC followed by an ordinary character: ESC dropped, the character typed.
        assert_eq!(feed_all(&mut ed, b"\x1bhelp\r"), [line("help")]);
        // Unfinished CSI and SS3 sequences end at the control byte.
        assert_eq!(feed_all(&mut ed, b"ab\x1b[\r"), [line("ab")]);
        assert_eq!(feed_all(&mut ed, b"ab\x1b[12;\r"), [line("ab")]);
        assert_eq!(feed_all(&mut ed, b"ab\x1bO\r"), [line("ab")]);
        // Ctrl-C inside a sequence still cancels; ESC ESC [ D is one left arrow.
        assert_eq!(feed_all(&mut ed, b"x\x1b[\x03"), [Event::Cancelled]);
        assert_eq!(feed_all(&mut ed, b"ab\x1b\x1b[Dc\r"), [line("acb")]);
    }

    #[test]
    fn unknown_sequences_are_skipped_whole() {
        let mut ed = LineEditor::new("> ");
        // Ctrl-right (`ESC [ 1 ; 5 C`), F5 (`ESC [ 15~`), a private mode (`ESC [ ? 25 h`): none
        // inserts a character.
        assert_eq!(
            feed_all(&mut ed, b"ab\x1b[1;5C\x1b[15~\x1b[?25hc\r"),
            [line("abc")]
        );
        assert_eq!(feed_all(&mut ed, b"ac\x1bODb\r"), [line("abc")]);
    }

    #[test]
    fn every_line_ends_whatever_came_before() {
        // After any byte sequence, `\r` produces an event (a line or an overflow): the shell
        // always prints its prompt again.
        let mut x: u32 = 99;
        for _ in 0..2000 {
            let mut ed = LineEditor::new("> ");
            let mut out = Vec::new();
            for _ in 0..(x % 40) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let pool = b"\x1b[O;0123~ABCDHFa\x7f\x08";
                ed.feed(pool[(x as usize) % pool.len()], &mut out);
            }
            let event = ed.feed(b'\r', &mut out);
            assert!(
                matches!(event, Event::Line(_) | Event::Overflow),
                "{event:?}"
            );
            assert!(!ed.in_escape());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut ed = LineEditor::new("> ");
        let mut out = Vec::new();
        let mut x: u32 = 12345;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            ed.feed((x & 0xff) as u8, &mut out);
            assert!(ed.cursor() <= ed.current().len());
            out.clear();
        }
    }
}
