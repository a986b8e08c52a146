//! Sorting 32-bit integers in linear memory.
#![no_std]

use guest::{Lcg, clamp_len};

const MAX: usize = 16 * 1024;

struct Words(core::cell::UnsafeCell<[u32; MAX]>);
// SAFETY: chunks run on one thread and exports are not re-entrant.
unsafe impl Sync for Words {}
static WORDS: Words = Words(core::cell::UnsafeCell::new([0; MAX]));

fn words(len: usize) -> &'static mut [u32] {
    // SAFETY: single-threaded, non-re-entrant exports: no other reference is live.
    let all = unsafe { &mut *WORDS.0.get() };
    &mut all[..len.min(MAX)]
}

fn fill(buf: &mut [u32], seed: i32) {
    let mut rng = Lcg(seed as u32);
    for v in buf.iter_mut() {
        *v = rng.next_u32();
    }
}

/// Checksum of a sorted array: sum of `v[i] * (i + 1)`, wrapping in 64 bits.
fn weighted_sum(buf: &[u32]) -> i64 {
    buf.iter().enumerate().fold(0u64, |acc, (i, &v)| {
        acc.wrapping_add(u64::from(v).wrapping_mul(i as u64 + 1))
    }) as i64
}

/// Sorts `n` (at most 16384) LCG values from `seed` with the standard library's unstable sort
/// and returns their weighted checksum, or -1 if the result is not sorted.
#[unsafe(no_mangle)]
pub extern "C" fn sort_bench(n: i32, seed: i32) -> i64 {
    let buf = words(clamp_len(n, MAX));
    fill(buf, seed);
    buf.sort_unstable();
    if buf.windows(2).any(|w| w[0] > w[1]) {
        return -1;
    }
    weighted_sum(buf)
}

/// The same with a hand-written heapsort.
#[unsafe(no_mangle)]
pub extern "C" fn heapsort_bench(n: i32, seed: i32) -> i64 {
    let buf = words(clamp_len(n, MAX));
    fill(buf, seed);
    heapsort(buf);
    if buf.windows(2).any(|w| w[0] > w[1]) {
        return -1;
    }
    weighted_sum(buf)
}

fn heapsort(v: &mut [u32]) {
    let sift_down = |v: &mut [u32], mut root: usize, end: usize| {
        loop {
            let mut child = 2 * root + 1;
            if child >= end {
                break;
            }
            if child + 1 < end && v[child] < v[child + 1] {
                child += 1;
            }
            if v[root] >= v[child] {
                break;
            }
            v.swap(root, child);
            root = child;
        }
    };
    for start in (0..v.len() / 2).rev() {
        sift_down(v, start, v.len());
    }
    for end in (1..v.len()).rev() {
        v.swap(0, end);
        sift_down(v, 0, end);
    }
}

/// The median (element `n / 2` after sorting) of `n` LCG values from `seed`; 0 if `n` is 0.
#[unsafe(no_mangle)]
pub extern "C" fn median(n: i32, seed: i32) -> i32 {
    let buf = words(clamp_len(n, MAX));
    if buf.is_empty() {
        return 0;
    }
    fill(buf, seed);
    let mid = buf.len() / 2;
    *buf.select_nth_unstable(mid).1 as i32
}
