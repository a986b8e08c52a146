//! PS/2 keyboard scancodes (set 1, as the i8042 controller delivers them with translation on)
//! to the bytes a terminal would send: ASCII, control characters with Ctrl, and the VT100
//! sequences of the arrows, Home, End and Delete. The shell's line editor then takes them
//! exactly as if they came over the serial line.

/// Keys the decoder tracks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Set1Decoder {
    e0: bool,
    /// Bytes of a Pause sequence (`E1 ...`) still to skip.
    skip: u8,
    shift_left: bool,
    shift_right: bool,
    ctrl_left: bool,
    ctrl_right: bool,
    caps: bool,
}

/// Unshifted and shifted characters of the make codes 0x00..0x3a (0: not a character key).
const PLAIN: &[u8; 0x3a] =
    b"\0\x1b1234567890-=\x7f\tqwertyuiop[]\r\0asdfghjkl;'`\0\\zxcvbnm,./\0*\0 ";
const SHIFTED: &[u8; 0x3a] =
    b"\0\x1b!@#$%^&*()_+\x7f\tQWERTYUIOP{}\r\0ASDFGHJKL:\"~\0|ZXCVBNM<>?\0*\0 ";
/// The keypad (0x47..=0x53) with Num Lock on.
const KEYPAD: &[u8; 13] = b"789-456+1230.";

impl Set1Decoder {
    /// A decoder with no key held.
    pub const fn new() -> Self {
        Self {
            e0: false,
            skip: 0,
            shift_left: false,
            shift_right: false,
            ctrl_left: false,
            ctrl_right: false,
            caps: false,
        }
    }

    /// Takes one scancode byte; the bytes it types go to `out`.
    pub fn feed(&mut self, code: u8, mut out: impl FnMut(u8)) {
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        match code {
            0xe0 => {
                self.e0 = true;
                return;
            }
            0xe1 => {
                self.skip = 5;
                return;
            }
            _ => {}
        }
        let e0 = core::mem::take(&mut self.e0);
        let released = code & 0x80 != 0;
        let make = code & 0x7f;
        match (e0, make) {
            // E0 2A / E0 AA: the "fake shift" some keyboards wrap around keys; ignored.
            (true, 0x2a | 0x36) => {}
            (false, 0x2a) => self.shift_left = !released,
            (false, 0x36) => self.shift_right = !released,
            (false, 0x1d) => self.ctrl_left = !released,
            (true, 0x1d) => self.ctrl_right = !released,
            (false, 0x3a) if !released => self.caps = !self.caps,
            _ if released => {}
            (true, _) => self.extended(make, &mut out),
            (false, 0x47..=0x53) => out(KEYPAD[usize::from(make - 0x47)]),
            (false, m) if usize::from(m) < PLAIN.len() => self.character(m, &mut out),
            _ => {}
        }
    }

    fn character(&self, make: u8, out: &mut impl FnMut(u8)) {
        let shift = self.shift_left || self.shift_right;
        let mut ch = if shift { SHIFTED } else { PLAIN }[usize::from(make)];
        if ch == 0 {
            return;
        }
        if self.caps && ch.is_ascii_alphabetic() {
            ch ^= 0x20;
        }
        if self.ctrl_left || self.ctrl_right {
            match ch {
                b'a'..=b'z' | b'A'..=b'Z' => ch &= 0x1f,
                _ => return,
            }
        }
        out(ch);
    }

    fn extended(&self, make: u8, out: &mut impl FnMut(u8)) {
        let seq: &[u8] = match make {
            0x48 => b"\x1b[A",
            0x50 => b"\x1b[B",
            0x4d => b"\x1b[C",
            0x4b => b"\x1b[D",
            0x47 => b"\x1b[H",
            0x4f => b"\x1b[F",
            0x53 => b"\x1b[3~",
            0x1c => b"\r",
            0x35 => b"/",
            _ => b"",
        };
        seq.iter().for_each(|&b| out(b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn typed(codes: &[u8]) -> Vec<u8> {
        let mut d = Set1Decoder::new();
        let mut out = Vec::new();
        for &c in codes {
            d.feed(c, |b| out.push(b));
        }
        out
    }

    #[test]
    fn letters_digits_shift_and_enter() {
        // h e l p (make, break), Enter.
        assert_eq!(
            typed(&[0x23, 0xa3, 0x12, 0x92, 0x26, 0xa6, 0x19, 0x99, 0x1c, 0x9c]),
            b"help\r"
        );
        // Shift held: `A!`; released: `a`.
        assert_eq!(
            typed(&[0x2a, 0x1e, 0x9e, 0x02, 0x82, 0xaa, 0x1e, 0x9e]),
            b"A!a"
        );
        assert_eq!(typed(&[0x39, 0x0c, 0x34, 0x35, 0x2b]), b" -./\\");
    }

    #[test]
    fn ctrl_caps_and_extended_keys() {
        // Ctrl-C, then Ctrl released: c.
        assert_eq!(typed(&[0x1d, 0x2e, 0xae, 0x9d, 0x2e]), b"\x03c");
        // Caps Lock on: letters upper, digits not; Shift inverts letters back.
        assert_eq!(typed(&[0x3a, 0xba, 0x1e, 0x02, 0x2a, 0x1e, 0xaa]), b"A1a");
        // Arrows, Home, End, Delete with E0; keypad Enter.
        assert_eq!(
            typed(&[
                0xe0, 0x48, 0xe0, 0xc8, 0xe0, 0x4b, 0xe0, 0x47, 0xe0, 0x4f, 0xe0, 0x53, 0xe0, 0x1c
            ]),
            b"\x1b[A\x1b[D\x1b[H\x1b[F\x1b[3~\r"
        );
        // A fake shift around an arrow does not shift later letters.
        assert_eq!(
            typed(&[0xe0, 0x2a, 0xe0, 0x4d, 0xe0, 0xaa, 0x1e]),
            b"\x1b[Ca"
        );
        // Pause (E1 1D 45 E1 9D C5) types nothing and leaves the decoder in step.
        assert_eq!(typed(&[0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5, 0x1e]), b"a");
    }

    #[test]
    fn random_codes_never_panic() {
        let mut d = Set1Decoder::new();
        let mut x: u32 = 3;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            d.feed(x as u8, |_| {});
        }
    }
}
