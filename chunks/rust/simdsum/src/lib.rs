//! A Fletcher-style checksum computed with WebAssembly SIMD (simd128) and, as the reference,
//! with scalar code: both must give the same value for every length.
//!
//! The vector path is compiled with `simd128` enabled (`#[target_feature(enable = "simd128")]`,
//! the per-function form of `-C target-feature=+simd128`), so rustc emits `v128.load`,
//! `i16x8.extend_*_i8x16_u`, `i16x8.add`, `i32x4.extadd_pairwise_i16x8_u`, `i32x4.add` and
//! `i32x4.extract_lane`; the rest of the workspace stays scalar.
//!
//! Definition: four lanes `s[j]`, `t[j]` (wrapping u32). Each 16-byte block `b` adds
//! `b[2j] + b[2j+1] + b[2j+8] + b[2j+9]` to `s[j]`, then `s[j]` to `t[j]`. The `len % 16`
//! trailing bytes `x[i]` each add to `s[i % 4]`, then `s[i % 4]` to `t[i % 4]`. The result
//! folds the lanes: `h = h.rotate_left(5) ^ s[j] ^ t[j].rotate_left(16)` for `j = 0..4`.
#![no_std]

use core::arch::wasm32::{
    i16x8_add, i32x4_add, i32x4_extadd_pairwise_u16x8, i32x4_extract_lane, i32x4_splat,
    u16x8_extend_high_u8x16, u16x8_extend_low_u8x16, v128, v128_load,
};
use guest::{Scratch, clamp_len, fill_pattern};

const MAX: usize = 64 * 1024;
static BUF: Scratch<MAX> = Scratch::new();

fn tail(data: &[u8], s: &mut [u32; 4], t: &mut [u32; 4]) {
    for (i, &x) in data.iter().enumerate() {
        s[i % 4] = s[i % 4].wrapping_add(u32::from(x));
        t[i % 4] = t[i % 4].wrapping_add(s[i % 4]);
    }
}

fn fold(s: [u32; 4], t: [u32; 4]) -> i32 {
    (0..4).fold(0u32, |h, j| h.rotate_left(5) ^ s[j] ^ t[j].rotate_left(16)) as i32
}

/// The scalar reference.
fn checksum_scalar(data: &[u8]) -> i32 {
    let (mut s, mut t) = ([0u32; 4], [0u32; 4]);
    let blocks = data.chunks_exact(16);
    let rest = blocks.remainder();
    for b in blocks {
        for j in 0..4 {
            let sum = [2 * j, 2 * j + 1, 2 * j + 8, 2 * j + 9]
                .iter()
                .map(|&k| u32::from(b[k]))
                .sum::<u32>();
            s[j] = s[j].wrapping_add(sum);
            t[j] = t[j].wrapping_add(s[j]);
        }
    }
    tail(rest, &mut s, &mut t);
    fold(s, t)
}

fn lanes(v: v128) -> [u32; 4] {
    [
        i32x4_extract_lane::<0>(v) as u32,
        i32x4_extract_lane::<1>(v) as u32,
        i32x4_extract_lane::<2>(v) as u32,
        i32x4_extract_lane::<3>(v) as u32,
    ]
}

/// The vector path.
#[target_feature(enable = "simd128")]
fn checksum_simd(data: &[u8]) -> i32 {
    let (mut s, mut t) = (i32x4_splat(0), i32x4_splat(0));
    let blocks = data.chunks_exact(16);
    let rest = blocks.remainder();
    for b in blocks {
        // SAFETY: `b` is 16 readable bytes; v128_load has no alignment requirement.
        let v = unsafe { v128_load(b.as_ptr().cast::<v128>()) };
        let pairs = i16x8_add(u16x8_extend_low_u8x16(v), u16x8_extend_high_u8x16(v));
        s = i32x4_add(s, i32x4_extadd_pairwise_u16x8(pairs));
        t = i32x4_add(t, s);
    }
    let (mut s, mut t) = (lanes(s), lanes(t));
    tail(rest, &mut s, &mut t);
    fold(s, t)
}

/// The checksum of `n` bytes (at most 65536) of the standard pattern, with SIMD.
#[unsafe(no_mangle)]
pub extern "C" fn simdsum_bench(n: i32) -> i32 {
    let buf = BUF.get(clamp_len(n, MAX));
    fill_pattern(buf);
    // Safe on wasm: an engine without simd128 refuses the whole module before it runs.
    checksum_simd(buf)
}

/// The same checksum with scalar code (the reference).
#[unsafe(no_mangle)]
pub extern "C" fn simdsum_ref(n: i32) -> i32 {
    let buf = BUF.get(clamp_len(n, MAX));
    fill_pattern(buf);
    checksum_scalar(buf)
}
