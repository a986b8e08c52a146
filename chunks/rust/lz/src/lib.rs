//! An LZ77-style compressor and decompressor over buffers in linear memory.
//!
//! Stream format: a token byte `t`. If `t < 0x80`, `t + 1` literal bytes follow. Otherwise it is
//! a match of `(t & 0x7F) + MIN_MATCH` bytes, followed by a 16-bit little-endian distance
//! (1..=65535) back into the output.
#![no_std]

use guest::{Lcg, Scratch, clamp_len};

const MAX: usize = 48 * 1024;
const MIN_MATCH: usize = 4;
const MAX_MATCH: usize = 0x7F + MIN_MATCH;
const MAX_LITERALS: usize = 0x80;
const HASH_BITS: u32 = 12;

static INPUT: Scratch<MAX> = Scratch::new();
static PACKED: Scratch<{ MAX + MAX / MAX_LITERALS + 16 }> = Scratch::new();
static OUTPUT: Scratch<MAX> = Scratch::new();

struct Table(core::cell::UnsafeCell<[u32; 1 << HASH_BITS]>);
// SAFETY: chunks run on one thread and exports are not re-entrant.
unsafe impl Sync for Table {}
static HASH: Table = Table(core::cell::UnsafeCell::new([0; 1 << HASH_BITS]));

fn hash4(b: &[u8]) -> usize {
    let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    (v.wrapping_mul(2_654_435_761) >> (32 - HASH_BITS)) as usize
}

fn flush_literals(input: &[u8], from: usize, to: usize, out: &mut [u8], o: &mut usize) {
    let mut start = from;
    while start < to {
        let len = (to - start).min(MAX_LITERALS);
        out[*o] = (len - 1) as u8;
        out[*o + 1..*o + 1 + len].copy_from_slice(&input[start..start + len]);
        *o += 1 + len;
        start += len;
    }
}

/// Compresses `input` into `out`, returning the compressed length. `out` must hold at least
/// `input.len() + input.len() / 128 + 1` bytes.
fn compress(input: &[u8], out: &mut [u8]) -> usize {
    // SAFETY: single-threaded, non-re-entrant exports: no other reference is live.
    let table = unsafe { &mut *HASH.0.get() };
    table.fill(u32::MAX);
    let (mut i, mut lit_start, mut o) = (0usize, 0usize, 0usize);
    while i + MIN_MATCH <= input.len() {
        let h = hash4(&input[i..]);
        let candidate = table[h] as usize;
        table[h] = i as u32;
        let usable = candidate < i && i - candidate <= 0xFFFF;
        if usable && input[candidate..candidate + MIN_MATCH] == input[i..i + MIN_MATCH] {
            let mut len = MIN_MATCH;
            while len < MAX_MATCH
                && i + len < input.len()
                && input[candidate + len] == input[i + len]
            {
                len += 1;
            }
            flush_literals(input, lit_start, i, out, &mut o);
            out[o] = 0x80 | (len - MIN_MATCH) as u8;
            out[o + 1..o + 3].copy_from_slice(&((i - candidate) as u16).to_le_bytes());
            o += 3;
            i += len;
            lit_start = i;
        } else {
            i += 1;
        }
    }
    flush_literals(input, lit_start, input.len(), out, &mut o);
    o
}

/// Decompresses `packed` into `out`; returns the length, or `None` on a malformed stream.
fn decompress(packed: &[u8], out: &mut [u8]) -> Option<usize> {
    let (mut p, mut o) = (0usize, 0usize);
    while p < packed.len() {
        let t = packed[p] as usize;
        p += 1;
        if t < 0x80 {
            let len = t + 1;
            let src = packed.get(p..p + len)?;
            out.get_mut(o..o + len)?.copy_from_slice(src);
            p += len;
            o += len;
        } else {
            let len = (t & 0x7F) + MIN_MATCH;
            let d = packed.get(p..p + 2)?;
            let dist = usize::from(u16::from_le_bytes([d[0], d[1]]));
            p += 2;
            if dist == 0 || dist > o || o + len > out.len() {
                return None;
            }
            for k in 0..len {
                out[o + k] = out[o + k - dist];
            }
            o += len;
        }
    }
    Some(o)
}

/// Fills `buf` with compressible text: words picked by an LCG, separated by spaces.
fn make_text(buf: &mut [u8]) {
    const WORDS: [&[u8]; 8] = [
        b"atoll", b"chunk", b"wasm", b"island", b"core", b"page", b"cycle", b"predict",
    ];
    let mut rng = Lcg(12345);
    let mut i = 0;
    while i < buf.len() {
        let word = WORDS[(rng.next_u32() >> 16) as usize % WORDS.len()];
        for &b in word.iter().chain(b" ") {
            if i < buf.len() {
                buf[i] = b;
                i += 1;
            }
        }
    }
}

/// Compresses `n` bytes (at most 49152) of generated text, decompresses it again and checks the
/// round trip. Returns the compressed size, or -1 if the round trip failed.
#[unsafe(no_mangle)]
pub extern "C" fn lz_roundtrip(n: i32) -> i32 {
    let input = INPUT.get(clamp_len(n, MAX));
    make_text(input);
    let packed = PACKED.get(usize::MAX);
    let size = compress(input, packed);
    // A natural point to let other tasks run: compression done, decompression next.
    guest::yield_now();
    let output = OUTPUT.get(MAX);
    match decompress(&packed[..size], output) {
        Some(len) if output[..len] == *input => size as i32,
        _ => -1,
    }
}

/// Compressed size of `n` bytes of generated text, in thousandths of the input size.
#[unsafe(no_mangle)]
pub extern "C" fn lz_ratio_permille(n: i32) -> i32 {
    let n = clamp_len(n, MAX);
    if n == 0 {
        return 0;
    }
    let size = lz_roundtrip(n as i32);
    if size < 0 {
        return -1;
    }
    (size as usize * 1000 / n) as i32
}
