//! The sieve of Eratosthenes over a bitmap in linear memory.
#![no_std]

use guest::{Scratch, clamp_len};

const MAX_N: usize = 1 << 20;
static BITS: Scratch<{ MAX_N / 8 }> = Scratch::new();

/// Marks composites below `n`; bit set = composite.
fn sieve(n: usize) -> &'static mut [u8] {
    let bits = BITS.get(n.div_ceil(8));
    bits.fill(0);
    let mut p = 2;
    while p * p < n {
        if bits[p / 8] & (1 << (p % 8)) == 0 {
            let mut m = p * p;
            while m < n {
                bits[m / 8] |= 1 << (m % 8);
                m += p;
            }
        }
        p += 1;
    }
    bits
}

fn is_prime(bits: &[u8], k: usize) -> bool {
    k >= 2 && bits[k / 8] & (1 << (k % 8)) == 0
}

/// The number of primes below `n` (at most 2^20).
#[unsafe(no_mangle)]
pub extern "C" fn count_primes(n: i32) -> i32 {
    let n = clamp_len(n, MAX_N);
    let bits = sieve(n);
    (0..n).filter(|&k| is_prime(bits, k)).count() as i32
}

/// The `k`-th prime (1-based), or -1 if it is not below 2^20. Sieves up to a bound that
/// doubles from 1024 until it holds `k` primes.
#[unsafe(no_mangle)]
pub extern "C" fn nth_prime(k: i32) -> i32 {
    let k = clamp_len(k, MAX_N);
    if k == 0 {
        return -1;
    }
    let mut bound = 1024;
    loop {
        let bits = sieve(bound);
        if let Some(p) = (0..bound).filter(|&i| is_prime(bits, i)).nth(k - 1) {
            return p as i32;
        }
        if bound == MAX_N {
            return -1;
        }
        bound = (bound * 2).min(MAX_N);
    }
}
