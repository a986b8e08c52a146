//! The screen console: the bootloader's framebuffer as a text console with atoll's built-in
//! font (`atoll_kcore::font`). It shows the same output as the serial line; the grid logic
//! (cursor, the line editor's escape sequences, scrolling) is `atoll_kcore::textscreen`.

use bootloader_api::info::{FrameBuffer, PixelFormat};
use spin::Mutex;

use atoll_kcore::font::{CELL_HEIGHT, CELL_WIDTH, CURSOR_ROW, cell_bitmap};
use atoll_kcore::textscreen::{Surface, TextScreen};

use crate::arch::cpu;

/// Text colour (light grey) and background (black), as (red, green, blue).
const FOREGROUND: (u8, u8, u8) = (0xd8, 0xd8, 0xd8);
const BACKGROUND: (u8, u8, u8) = (0, 0, 0);

/// The framebuffer as cells.
struct Pixels {
    buf: &'static mut [u8],
    stride_bytes: usize,
    bytes_per_pixel: usize,
    format: PixelFormat,
    height: usize,
}

impl Pixels {
    /// One pixel's bytes for `rgb` in this framebuffer's format.
    fn encode(&self, (r, g, b): (u8, u8, u8)) -> [u8; 4] {
        match self.format {
            PixelFormat::Rgb => [r, g, b, 0],
            PixelFormat::U8 => [((u16::from(r) + u16::from(g) + u16::from(b)) / 3) as u8; 4],
            // BGR, and the common layout for formats the bootloader could not name.
            _ => [b, g, r, 0],
        }
    }
}

/// Draws one cell row of `N`-byte pixels (the pixel size known at compile time, so each pixel
/// is one store).
fn draw_row<const N: usize>(line: &mut [u8], bits: u8, on: &[u8; 4], off: &[u8; 4]) {
    let (on, off): (&[u8; N], &[u8; N]) = match (on[..N].try_into(), off[..N].try_into()) {
        (Ok(on), Ok(off)) => (on, off),
        _ => return,
    };
    for (x, pixel) in line.chunks_exact_mut(N).enumerate() {
        let colour = if bits & (0x80 >> x) != 0 { on } else { off };
        if let Ok(pixel) = <&mut [u8; N]>::try_from(pixel) {
            *pixel = *colour;
        }
    }
}

impl Surface for Pixels {
    fn draw(&mut self, col: usize, row: usize, ch: u8, cursor: bool) {
        let bitmap = cell_bitmap(ch);
        let (on, off) = (self.encode(FOREGROUND), self.encode(BACKGROUND));
        let bpp = self.bytes_per_pixel;
        for (y, mut bits) in bitmap.into_iter().enumerate() {
            if cursor && y == CURSOR_ROW {
                bits = 0xff;
            }
            let start = (row * CELL_HEIGHT + y) * self.stride_bytes + col * CELL_WIDTH * bpp;
            let Some(line) = self.buf.get_mut(start..start + CELL_WIDTH * bpp) else {
                return;
            };
            match bpp {
                4 => draw_row::<4>(line, bits, &on, &off),
                3 => draw_row::<3>(line, bits, &on, &off),
                2 => draw_row::<2>(line, bits, &on, &off),
                _ => draw_row::<1>(line, bits, &on, &off),
            }
        }
    }

    fn scroll(&mut self, rows: usize) {
        let shift = rows * CELL_HEIGHT * self.stride_bytes;
        let used = (self.height * self.stride_bytes).min(self.buf.len());
        if shift >= used {
            self.buf[..used].fill(0);
            return;
        }
        self.buf.copy_within(shift..used, 0);
        self.buf[used - shift..used].fill(0);
    }
}

struct ScreenConsole {
    text: TextScreen,
    pixels: Pixels,
}

static SCREEN: Mutex<Option<ScreenConsole>> = Mutex::new(None);

/// Takes the bootloader's framebuffer as the screen console (nothing happens without one, or
/// with a format this cannot draw).
pub fn init(framebuffer: Option<FrameBuffer>) {
    let Some(fb) = framebuffer else {
        return;
    };
    let info = fb.info();
    if !(1..=4).contains(&info.bytes_per_pixel) || info.width < CELL_WIDTH {
        return;
    }
    let pixels = Pixels {
        stride_bytes: info.stride * info.bytes_per_pixel,
        bytes_per_pixel: info.bytes_per_pixel,
        format: info.pixel_format,
        height: info.height,
        buf: fb.into_buffer(),
    };
    let console = ScreenConsole {
        text: TextScreen::new(info.width / CELL_WIDTH, info.height / CELL_HEIGHT),
        pixels,
    };
    let used = (info.height * console.pixels.stride_bytes).min(console.pixels.buf.len());
    console.pixels.buf[..used].fill(0);
    cpu::without_interrupts(|| *SCREEN.lock() = Some(console));
}

/// Whether there is a screen console.
pub fn present() -> bool {
    cpu::without_interrupts(|| SCREEN.lock().is_some())
}

/// The screen's size in character cells, if there is one.
pub fn size() -> Option<(usize, usize)> {
    cpu::without_interrupts(|| SCREEN.lock().as_ref().map(|s| s.text.size()))
}

/// Shows `bytes` (with interrupts held off, so a handler on this core cannot deadlock on the
/// lock).
pub fn write(bytes: &[u8]) {
    cpu::without_interrupts(|| {
        if let Some(s) = SCREEN.lock().as_mut() {
            s.text.write(bytes, &mut s.pixels);
        }
    });
}

/// Shows `bytes` for a fault report: skipped if the screen is busy (its holder may be the
/// interrupted code).
pub fn write_emergency(bytes: &[u8]) {
    if let Some(mut guard) = SCREEN.try_lock()
        && let Some(s) = guard.as_mut()
    {
        s.text.write(bytes, &mut s.pixels);
    }
}
