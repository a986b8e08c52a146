//! How many prompts the kernel prints for one line of piped input, so the `atoll-console` relay
//! knows when the guest is done with it.
//!
//! The shell prints its prompt after every event of its line editor: an entered line, a line
//! cancelled with Ctrl-C (which prints `^C` and a prompt of its own), an overlong line. A piped
//! line like `abc\x03` therefore yields two prompts, not one. Counting "one prompt per line"
//! made the relay send the next line, or stop QEMU at the end of the input, while the guest was
//! still busy with a command. This feeds each line to the kernel's own line editor
//! (`atoll_kcore::line_editor`, the same code the shell runs) and counts its events.

use atoll_kcore::line_editor::{Event, LineEditor};

/// Follows the guest's line editor over the lines the relay sends.
#[derive(Debug)]
pub struct PromptPredictor {
    editor: LineEditor,
}

impl Default for PromptPredictor {
    fn default() -> Self {
        Self {
            editor: LineEditor::new(super::scan::PROMPT),
        }
    }
}

impl PromptPredictor {
    /// The prompts the shell prints for `bytes` (a line as sent, with its `\r`).
    pub fn prompts_for(&mut self, bytes: &[u8]) -> usize {
        let mut echo = Vec::new();
        bytes
            .iter()
            .filter(|&&b| {
                echo.clear();
                self.editor.feed(b, &mut echo) != Event::Pending
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_prompt_per_plain_line() {
        let mut p = PromptPredictor::default();
        assert_eq!(p.prompts_for(b"help\r"), 1);
        assert_eq!(p.prompts_for(b"\r"), 1);
    }

    #[test]
    fn ctrl_c_adds_a_prompt() {
        let mut p = PromptPredictor::default();
        assert_eq!(p.prompts_for(b"abc\x03\r"), 2);
        assert_eq!(p.prompts_for(b"\x03\x03def\r"), 3);
        // Ctrl-C as the second byte of an escape sequence still cancels.
        assert_eq!(p.prompts_for(b"\x1b\x03\r"), 2);
    }

    #[test]
    fn lone_escape_and_mid_line_returns() {
        let mut p = PromptPredictor::default();
        assert_eq!(p.prompts_for(b"\x1b\r"), 1);
        assert_eq!(p.prompts_for(b"a\rb\r"), 2);
        let long = [b'x'; 400];
        let mut line = long.to_vec();
        line.push(b'\r');
        assert_eq!(
            p.prompts_for(&line),
            1,
            "an overlong line is one error and a prompt"
        );
    }
}
