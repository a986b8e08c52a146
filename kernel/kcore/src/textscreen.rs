//! A text console over a grid of character cells: what the kernel's screen console shows.
//!
//! It takes the same byte stream the serial console gets: printable ASCII, `\n` (a new line,
//! at its start), `\r`, backspace, tab, the bell (ignored), and the escape sequences the line
//! editor sends (`ESC [ K` clear to the end of the line, `ESC [ n D` / `ESC [ n C` cursor left /
//! right). Other sequences are skipped whole. A UTF-8 character shows as one replacement box.
//!
//! Drawing goes through [`Surface`], so the logic is tested on the host. Scrolling jumps by a
//! quarter of the screen at a time: moving a whole framebuffer costs the same for one row as
//! for many, so jumping does it a quarter as often.

use alloc::vec;
use alloc::vec::Vec;

/// Where the cells are drawn.
pub trait Surface {
    /// Draws `ch` in the cell at (`col`, `row`), with the cursor underline if `cursor`.
    fn draw(&mut self, col: usize, row: usize, ch: u8, cursor: bool);
    /// Moves every cell row up by `rows` and blanks the `rows` rows at the bottom.
    fn scroll(&mut self, rows: usize);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    Started,
    Csi(Option<u16>),
}

/// The grid and its cursor.
#[derive(Debug)]
pub struct TextScreen {
    cols: usize,
    rows: usize,
    cells: Vec<u8>,
    col: usize,
    row: usize,
    /// The last column was written: the next printable character wraps first.
    wrap_pending: bool,
    esc: Esc,
    /// Inside a multi-byte UTF-8 character (its continuation bytes are skipped).
    utf8: bool,
}

impl TextScreen {
    /// An empty screen of `cols` x `rows` cells (at least 1 x 1).
    pub fn new(cols: usize, rows: usize) -> Self {
        let (cols, rows) = (cols.max(1), rows.max(1));
        Self {
            cols,
            rows,
            cells: vec![b' '; cols * rows],
            col: 0,
            row: 0,
            wrap_pending: false,
            esc: Esc::None,
            utf8: false,
        }
    }

    /// Columns and rows.
    pub fn size(&self) -> (usize, usize) {
        (self.cols, self.rows)
    }

    /// The cursor (column, row).
    pub fn cursor(&self) -> (usize, usize) {
        (self.col, self.row)
    }

    /// The text of row `row`, trailing blanks removed.
    pub fn row_text(&self, row: usize) -> &[u8] {
        let line = &self.cells[row * self.cols..(row + 1) * self.cols];
        let end = line.iter().rposition(|&c| c != b' ').map_or(0, |p| p + 1);
        &line[..end]
    }

    /// Rows a scroll moves by.
    fn jump(&self) -> usize {
        (self.rows / 4).max(1)
    }

    fn put(&mut self, ch: u8, s: &mut impl Surface) {
        if self.wrap_pending {
            self.wrap_pending = false;
            self.col = 0;
            self.newline(s);
        }
        self.cells[self.row * self.cols + self.col] = ch;
        s.draw(self.col, self.row, ch, false);
        if self.col + 1 == self.cols {
            self.wrap_pending = true;
        } else {
            self.col += 1;
        }
    }

    fn newline(&mut self, s: &mut impl Surface) {
        if self.row + 1 < self.rows {
            self.row += 1;
            return;
        }
        let jump = self.jump();
        self.cells.copy_within(jump * self.cols.., 0);
        let len = self.cells.len();
        self.cells[len - jump * self.cols..].fill(b' ');
        s.scroll(jump);
        self.row = self.rows - jump;
    }

    fn clear_to_eol(&mut self, s: &mut impl Surface) {
        for c in self.col..self.cols {
            let cell = &mut self.cells[self.row * self.cols + c];
            if *cell != b' ' {
                *cell = b' ';
                s.draw(c, self.row, b' ', false);
            }
        }
    }

    fn byte(&mut self, b: u8, s: &mut impl Surface) {
        match self.esc {
            Esc::None => {}
            Esc::Started => {
                self.esc = if b == b'[' { Esc::Csi(None) } else { Esc::None };
                return;
            }
            Esc::Csi(n) => {
                match b {
                    b'0'..=b'9' => {
                        let d = u16::from(b - b'0');
                        self.esc =
                            Esc::Csi(Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d)));
                    }
                    0x20..=0x3f => {}
                    _ => {
                        self.esc = Esc::None;
                        let count = usize::from(n.unwrap_or(1).max(1));
                        match b {
                            b'K' => self.clear_to_eol(s),
                            b'D' => {
                                self.wrap_pending = false;
                                self.col = self.col.saturating_sub(count);
                            }
                            b'C' => {
                                self.wrap_pending = false;
                                self.col = (self.col + count).min(self.cols - 1);
                            }
                            _ => {}
                        }
                    }
                }
                return;
            }
        }
        if self.utf8 && (0x80..0xc0).contains(&b) {
            return;
        }
        self.utf8 = false;
        match b {
            0x1b => self.esc = Esc::Started,
            b'\n' => {
                self.wrap_pending = false;
                self.col = 0;
                self.newline(s);
            }
            b'\r' => {
                self.wrap_pending = false;
                self.col = 0;
            }
            0x08 => {
                self.wrap_pending = false;
                self.col = self.col.saturating_sub(1);
            }
            b'\t' => {
                let next = ((self.col / 8) + 1) * 8;
                while self.col < next.min(self.cols) && !self.wrap_pending {
                    self.put(b' ', s);
                }
            }
            0x20..=0x7e => self.put(b, s),
            0xc0..=0xff => {
                self.utf8 = true;
                self.put(0x7f, s);
            }
            _ => {}
        }
    }

    /// Shows `bytes`, then the cursor where it ends.
    pub fn write(&mut self, bytes: &[u8], s: &mut impl Surface) {
        let (col, row) = (self.col, self.row);
        let before = self.cells[row * self.cols + col];
        for &b in bytes {
            self.byte(b, s);
        }
        // The old cursor cell without its underline (it may have scrolled: then it is gone).
        if (col, row) != (self.col, self.row) && self.cells[row * self.cols + col] == before {
            s.draw(col, row, before, false);
        }
        s.draw(
            self.col,
            self.row,
            self.cells[self.row * self.cols + self.col],
            true,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A surface that keeps cells like a screen would, to compare with the screen's own.
    struct Cells {
        cols: usize,
        cells: Vec<u8>,
        cursor: Option<(usize, usize)>,
        scrolls: usize,
    }

    impl Surface for Cells {
        fn draw(&mut self, col: usize, row: usize, ch: u8, cursor: bool) {
            self.cells[row * self.cols + col] = ch;
            if cursor {
                self.cursor = Some((col, row));
            }
        }
        fn scroll(&mut self, rows: usize) {
            self.cells.copy_within(rows * self.cols.., 0);
            let len = self.cells.len();
            self.cells[len - rows * self.cols..].fill(b' ');
            self.scrolls += 1;
        }
    }

    fn screen(cols: usize, rows: usize) -> (TextScreen, Cells) {
        (
            TextScreen::new(cols, rows),
            Cells {
                cols,
                cells: vec![b' '; cols * rows],
                cursor: None,
                scrolls: 0,
            },
        )
    }

    fn text(t: &TextScreen) -> Vec<&str> {
        (0..t.rows)
            .map(|r| core::str::from_utf8(t.row_text(r)).unwrap())
            .collect()
    }

    #[test]
    fn lines_and_line_editor_redraws() {
        let (mut t, mut s) = screen(20, 4);
        t.write(b"boot\r\natoll> hepl", &mut s);
        // The line editor's redraw: CR, prompt, line, clear to end, cursor back 2.
        t.write(b"\ratoll> help\x1b[K\x1b[2D", &mut s);
        assert_eq!(text(&t), ["boot", "atoll> help", "", ""]);
        assert_eq!(t.cursor(), (9, 1));
        assert_eq!(s.cursor, Some((9, 1)));
        t.write(b"\x1b[K", &mut s);
        assert_eq!(text(&t)[1], "atoll> he");
        assert_eq!(s.cells, t.cells, "the surface shows what the grid holds");
    }

    #[test]
    fn scrolling_jumps_a_quarter_and_keeps_the_last_lines() {
        let (mut t, mut s) = screen(10, 8);
        for i in 0..20 {
            t.write(alloc::format!("line {i}\n").as_bytes(), &mut s);
        }
        t.write(b"atoll> ", &mut s);
        let shown = text(&t);
        assert!(
            shown.contains(&"line 19") && shown.contains(&"atoll>"),
            "{shown:?}"
        );
        assert_eq!(s.cells, t.cells);
        // 20 newlines past 8 rows, two rows at a time.
        // The 8th newline is the first past the bottom: 13 more newlines, two rows per scroll.
        assert_eq!(s.scrolls, 7);
    }

    #[test]
    fn long_lines_wrap_and_utf8_is_one_box() {
        let (mut t, mut s) = screen(5, 3);
        t.write(b"abcdefg", &mut s);
        assert_eq!(text(&t), ["abcde", "fg", ""]);
        // Exactly full: no empty line after it.
        t.write(b"\r\n12345\r\nx", &mut s);
        assert_eq!(text(&t), ["fg", "12345", "x"]);
        t.write("\r\n\u{b5}s \u{2192}".as_bytes(), &mut s);
        assert_eq!(t.row_text(2), b"\x7fs \x7f");
    }

    #[test]
    fn random_bytes_keep_the_cursor_inside() {
        let (mut t, mut s) = screen(13, 5);
        let mut x: u32 = 7;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            t.write(&[(x >> 3) as u8], &mut s);
            let (c, r) = t.cursor();
            assert!(c < 13 && r < 5);
        }
        assert_eq!(s.cells, t.cells);
    }
}
