//! Reading atoll's screen console from the host and typing on its keyboard, through QEMU's
//! human monitor on a Unix socket: `screendump` writes the display as a PPM image, which is
//! decoded back into text by matching each 8x16 cell against atoll's own font
//! (`atoll_kcore::font`); `sendkey` presses keys on the emulated PS/2 keyboard.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atoll_kcore::font::{CELL_HEIGHT, CELL_WIDTH, decode_cell};

/// The text on a screen: one string per cell row, trailing blanks removed; a cell that is no
/// glyph of the font shows as `\u{fffd}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenText {
    /// The rows, top to bottom.
    pub rows: Vec<String>,
}

impl ScreenText {
    /// Whether some row starts with `prefix`.
    pub fn has_row_starting(&self, prefix: &str) -> bool {
        self.rows.iter().any(|r| r.starts_with(prefix))
    }

    /// The rows as one text.
    pub fn joined(&self) -> String {
        self.rows.join("\n")
    }
}

/// Why a screenshot could not be read.
#[derive(Debug)]
pub enum ScreenError {
    /// Not a binary PPM (P6) with 8-bit samples.
    NotPpm(String),
    /// Talking to the monitor failed.
    Monitor(std::io::Error),
}

impl std::fmt::Display for ScreenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScreenError::NotPpm(why) => write!(f, "not a P6 PPM image: {why}"),
            ScreenError::Monitor(e) => write!(f, "QEMU monitor: {e}"),
        }
    }
}

impl std::error::Error for ScreenError {}

/// Decodes a P6 PPM screenshot into text.
pub fn decode_ppm(bytes: &[u8]) -> Result<ScreenText, ScreenError> {
    // Header: magic, width, height, maxval, each after whitespace (comments are not used by
    // QEMU), then one whitespace byte before the samples.
    let mut fields = Vec::new();
    let mut pos = 0;
    while fields.len() < 4 {
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        let start = pos;
        while pos < bytes.len() && !bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if start == pos {
            return Err(ScreenError::NotPpm("short header".into()));
        }
        fields.push(String::from_utf8_lossy(&bytes[start..pos]).into_owned());
    }
    pos += 1;
    let number = |i: usize| {
        fields[i]
            .parse::<usize>()
            .map_err(|_| ScreenError::NotPpm(format!("header field {:?}", fields[i])))
    };
    if fields[0] != "P6" || number(3)? != 255 {
        return Err(ScreenError::NotPpm(format!("header {fields:?}")));
    }
    let (width, height) = (number(1)?, number(2)?);
    let pixels = bytes
        .get(pos..pos + width * height * 3)
        .ok_or_else(|| ScreenError::NotPpm("fewer samples than the size says".into()))?;
    let lit = |x: usize, y: usize| {
        let i = (y * width + x) * 3;
        let sum: u32 = pixels[i..i + 3].iter().map(|&v| u32::from(v)).sum();
        sum > 3 * 0x80
    };
    let mut rows = Vec::new();
    for row in 0..height / CELL_HEIGHT {
        let mut text = String::new();
        for col in 0..width / CELL_WIDTH {
            let mut cell = [0u8; CELL_HEIGHT];
            for (y, bits) in cell.iter_mut().enumerate() {
                for x in 0..CELL_WIDTH {
                    if lit(col * CELL_WIDTH + x, row * CELL_HEIGHT + y) {
                        *bits |= 0x80 >> x;
                    }
                }
            }
            text.push(decode_cell(&cell).map_or('\u{fffd}', char::from));
        }
        rows.push(text.trim_end().to_owned());
    }
    Ok(ScreenText { rows })
}

/// The QEMU key names (`sendkey`) that type `ch` on a US layout, or `None` for characters
/// without a key.
pub fn key_for(ch: char) -> Option<String> {
    const SHIFTED: &str = "~!@#$%^&*()_+{}|:\"<>?";
    const PLAIN: &str = "`1234567890-=[]\\;',./";
    const NAMES: [&str; 21] = [
        "grave_accent",
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
        "7",
        "8",
        "9",
        "0",
        "minus",
        "equal",
        "bracket_left",
        "bracket_right",
        "backslash",
        "semicolon",
        "apostrophe",
        "comma",
        "dot",
        "slash",
    ];
    Some(match ch {
        'a'..='z' | '0'..='9' => ch.to_string(),
        'A'..='Z' => format!("shift-{}", ch.to_ascii_lowercase()),
        ' ' => "spc".into(),
        '\r' | '\n' => "ret".into(),
        _ => {
            if let Some(i) = PLAIN.find(ch) {
                NAMES[i].into()
            } else {
                format!("shift-{}", NAMES[SHIFTED.find(ch)?])
            }
        }
    })
}

/// QEMU's human monitor on a Unix socket.
#[derive(Debug)]
pub struct Monitor {
    stream: UnixStream,
    dir: PathBuf,
}

impl Monitor {
    /// The `-monitor` argument for a socket at `path`.
    pub fn arg(path: &Path) -> String {
        format!("unix:{},server=on,wait=off", path.display())
    }

    /// Connects to the socket (QEMU creates it at start-up: retried for up to `timeout`);
    /// screenshots go to `dir`.
    pub fn connect(path: &Path, dir: &Path, timeout: Duration) -> Result<Self, ScreenError> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => return Err(ScreenError::Monitor(e)),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(ScreenError::Monitor)?;
        let mut m = Self {
            stream,
            dir: dir.to_owned(),
        };
        m.read_to_prompt()?;
        Ok(m)
    }

    fn read_to_prompt(&mut self) -> Result<String, ScreenError> {
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while !got.ends_with(b"(qemu) ") {
            let n = self.stream.read(&mut chunk).map_err(ScreenError::Monitor)?;
            if n == 0 {
                return Err(ScreenError::Monitor(
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            got.extend_from_slice(&chunk[..n]);
        }
        Ok(String::from_utf8_lossy(&got).into_owned())
    }

    /// Runs a monitor command and returns its output (with the monitor's echo).
    pub fn command(&mut self, line: &str) -> Result<String, ScreenError> {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .map_err(ScreenError::Monitor)?;
        self.read_to_prompt()
    }

    /// Types `text` on the keyboard, one `sendkey` per character.
    pub fn type_text(&mut self, text: &str) -> Result<(), ScreenError> {
        for ch in text.chars() {
            let key = key_for(ch).ok_or_else(|| {
                ScreenError::Monitor(std::io::Error::other(format!("no key types {ch:?}")))
            })?;
            self.command(&format!("sendkey {key}"))?;
        }
        Ok(())
    }

    /// Presses one key by its QEMU name (`ret`, `home`, `ctrl-c`).
    pub fn key(&mut self, name: &str) -> Result<(), ScreenError> {
        self.command(&format!("sendkey {name}")).map(|_| ())
    }

    /// Takes a screenshot and decodes it.
    pub fn screen(&mut self) -> Result<ScreenText, ScreenError> {
        let path = self.dir.join("screen.ppm");
        let _ = std::fs::remove_file(&path);
        self.command(&format!("screendump {}", path.display()))?;
        let bytes = std::fs::read(&path).map_err(ScreenError::Monitor)?;
        decode_ppm(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_kcore::font::cell_bitmap;

    /// Renders text the way the kernel does (light on black), as a PPM.
    fn render(lines: &[&str], cols: usize, rows: usize) -> Vec<u8> {
        let (w, h) = (cols * CELL_WIDTH, rows * CELL_HEIGHT);
        let mut px = vec![0u8; w * h * 3];
        for (row, line) in lines.iter().enumerate() {
            for (col, ch) in line.bytes().enumerate() {
                for (y, bits) in cell_bitmap(ch).iter().enumerate() {
                    for x in 0..CELL_WIDTH {
                        if bits & (0x80 >> x) != 0 {
                            let i = ((row * CELL_HEIGHT + y) * w + col * CELL_WIDTH + x) * 3;
                            px[i..i + 3].copy_from_slice(&[0xd8, 0xd8, 0xd8]);
                        }
                    }
                }
            }
        }
        let mut out = format!("P6\n{w} {h}\n255\n").into_bytes();
        out.extend_from_slice(&px);
        out
    }

    #[test]
    fn rendered_text_decodes_back() {
        let lines = ["atoll> hwinfo --json", "{\"cpu\":{\"x\":[1,2]}} ~`|\\"];
        let text = decode_ppm(&render(&lines, 40, 3)).unwrap();
        assert_eq!(text.rows, [lines[0], lines[1], ""]);
        assert!(decode_ppm(b"P3\n1 1\n255\n0 0 0").is_err());
        assert!(decode_ppm(b"P6\n8 16\n255\n\x00").is_err());
    }

    #[test]
    fn keys_for_every_printable_character() {
        for ch in (0x20u8..0x7f).map(char::from) {
            assert!(key_for(ch).is_some(), "{ch:?}");
        }
        assert_eq!(key_for('A').as_deref(), Some("shift-a"));
        assert_eq!(key_for('>').as_deref(), Some("shift-dot"));
        assert_eq!(key_for('-').as_deref(), Some("minus"));
        assert_eq!(key_for('\u{e9}'), None);
    }
}
