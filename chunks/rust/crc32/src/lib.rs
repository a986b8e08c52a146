//! CRC-32 (IEEE 802.3, as zlib computes it) over data in linear memory.
#![no_std]

use guest::{Scratch, clamp_len, fill_pattern};

const POLY: u32 = 0xEDB8_8320;
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { POLY ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

const MAX: usize = 64 * 1024;
static BUF: Scratch<MAX> = Scratch::new();

fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |crc, &b| {
        TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8)
    })
}

/// CRC-32 of `n` bytes (at most 65536) of the standard pattern `(i * 31 + 7) mod 256`.
#[unsafe(no_mangle)]
pub extern "C" fn crc32_bench(n: i32) -> i32 {
    let buf = BUF.get(clamp_len(n, MAX));
    fill_pattern(buf);
    crc32(buf) as i32
}

/// CRC-32 of "The quick brown fox jumps over the lazy dog".
#[unsafe(no_mangle)]
pub extern "C" fn crc32_fox() -> i32 {
    crc32(b"The quick brown fox jumps over the lazy dog") as i32
}
