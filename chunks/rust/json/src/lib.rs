//! A small JSON tokenizer: counts tokens, sums numbers and measures nesting depth.
#![no_std]

use guest::{Scratch, clamp_len};

/// The built-in document.
const DOC: &[u8] = br#"{"name":"atoll","version":1,"cores":[0,1,2,3],
 "chunks":{"crc32":{"pages":2,"hot":true},"lz":{"pages":3,"hot":false,"ratio":0.25}},
 "offset":-42,"note":"tab\t and \"quotes\" \u00e9","empty":null,"big":1.5e3}"#;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Token {
    Open,
    Close,
    Comma,
    Colon,
    Str,
    /// A number; carries its value truncated toward zero.
    Num(i64),
    Literal,
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Lexer<'a> {
    fn new(s: &'a [u8]) -> Self {
        Self { s, i: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// The next token, `Ok(None)` at the end, `Err(())` on malformed input.
    fn next_token(&mut self) -> Result<Option<Token>, ()> {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        self.i += 1;
        let token = match c {
            b'{' | b'[' => Token::Open,
            b'}' | b']' => Token::Close,
            b',' => Token::Comma,
            b':' => Token::Colon,
            b'"' => {
                self.string()?;
                Token::Str
            }
            b'-' | b'0'..=b'9' => Token::Num(self.number(c)?),
            b't' => self.literal(b"rue")?,
            b'f' => self.literal(b"alse")?,
            b'n' => self.literal(b"ull")?,
            _ => return Err(()),
        };
        Ok(Some(token))
    }

    fn string(&mut self) -> Result<(), ()> {
        loop {
            match self.peek().ok_or(())? {
                b'"' => {
                    self.i += 1;
                    return Ok(());
                }
                b'\\' => {
                    let escape = *self.s.get(self.i + 1).ok_or(())?;
                    self.i += 2;
                    match escape {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4).ok_or(())?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(());
                            }
                            self.i += 4;
                        }
                        _ => return Err(()),
                    }
                }
                c if c < 0x20 => return Err(()),
                _ => self.i += 1,
            }
        }
    }

    fn number(&mut self, first: u8) -> Result<i64, ()> {
        let negative = first == b'-';
        let mut value: i64 = if negative { 0 } else { i64::from(first - b'0') };
        let mut digits = usize::from(!negative);
        while let Some(d @ b'0'..=b'9') = self.peek() {
            value = value.wrapping_mul(10).wrapping_add(i64::from(d - b'0'));
            digits += 1;
            self.i += 1;
        }
        if digits == 0 {
            return Err(());
        }
        let mut exponent: i32 = 0;
        if self.peek() == Some(b'.') {
            self.i += 1;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                value = value.wrapping_mul(10).wrapping_add(i64::from(d - b'0'));
                exponent -= 1;
                self.i += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            let exp_negative = self.peek() == Some(b'-');
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            let mut e: i32 = 0;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                e = e.saturating_mul(10).saturating_add(i32::from(d - b'0'));
                self.i += 1;
            }
            exponent = exponent.saturating_add(if exp_negative { -e } else { e });
        }
        // value * 10^exponent, truncated toward zero.
        if exponent >= 0 {
            for _ in 0..exponent.min(19) {
                value = value.wrapping_mul(10);
            }
        } else {
            for _ in 0..exponent.unsigned_abs().min(20) {
                value /= 10;
            }
        }
        Ok(if negative { -value } else { value })
    }

    fn literal(&mut self, rest: &[u8]) -> Result<Token, ()> {
        if self.s.get(self.i..self.i + rest.len()) == Some(rest) {
            self.i += rest.len();
            Ok(Token::Literal)
        } else {
            Err(())
        }
    }
}

/// Folds over all tokens of `doc`; returns `None` on malformed input or unbalanced brackets.
fn fold<T>(doc: &[u8], init: T, mut f: impl FnMut(T, Token, i32) -> T) -> Option<T> {
    let mut lexer = Lexer::new(doc);
    let mut acc = init;
    let mut depth: i32 = 0;
    while let Some(token) = lexer.next_token().ok()? {
        match token {
            Token::Open => depth += 1,
            Token::Close => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return None;
        }
        acc = f(acc, token, depth);
    }
    (depth == 0).then_some(acc)
}

/// Number of tokens in the built-in document, or -1 if it does not tokenize.
#[unsafe(no_mangle)]
pub extern "C" fn json_count_tokens() -> i32 {
    fold(DOC, 0i32, |n, _, _| n + 1).unwrap_or(-1)
}

/// Sum of all numbers in the built-in document, each truncated toward zero.
#[unsafe(no_mangle)]
pub extern "C" fn json_sum_numbers() -> i64 {
    fold(DOC, 0i64, |sum, token, _| match token {
        Token::Num(v) => sum.wrapping_add(v),
        _ => sum,
    })
    .unwrap_or(i64::MIN)
}

/// Deepest bracket nesting in the built-in document.
#[unsafe(no_mangle)]
pub extern "C" fn json_max_depth() -> i32 {
    fold(DOC, 0i32, |max, _, depth| max.max(depth)).unwrap_or(-1)
}

const MAX: usize = 64 * 1024;
static BUF: Scratch<MAX> = Scratch::new();

struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, s: &[u8]) -> Option<()> {
        self.buf
            .get_mut(self.len..self.len + s.len())?
            .copy_from_slice(s);
        self.len += s.len();
        Some(())
    }

    fn number(&mut self, mut v: u32) -> Option<()> {
        let mut digits = [0u8; 10];
        let mut n = 0;
        loop {
            digits[n] = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        digits[..n].reverse();
        self.bytes(&digits[..n])
    }
}

/// Writes `[{"id":0,"v":[0,0]},{"id":1,"v":[1,2]},...]` with `n` records into linear memory,
/// then tokenizes it. Returns the token count (`13n + n + 1` for n >= 1), or -1 if the document
/// does not fit in 64 KiB.
#[unsafe(no_mangle)]
pub extern "C" fn json_generate_and_count(n: i32) -> i32 {
    let n = clamp_len(n, MAX) as u32;
    let mut w = Writer {
        buf: BUF.get(MAX),
        len: 0,
    };
    let written = (|| {
        w.bytes(b"[")?;
        for i in 0..n {
            if i > 0 {
                w.bytes(b",")?;
            }
            w.bytes(br#"{"id":"#)?;
            w.number(i)?;
            w.bytes(br#","v":["#)?;
            w.number(i)?;
            w.bytes(b",")?;
            w.number(i.wrapping_mul(2))?;
            w.bytes(b"]}")?;
        }
        w.bytes(b"]")
    })();
    if written.is_none() {
        return -1;
    }
    let len = w.len;
    fold(&w.buf[..len], 0i32, |count, _, _| count + 1).unwrap_or(-1)
}
