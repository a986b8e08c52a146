//! An init-heavy chunk (issue 14, predictive snapshots): two tables built by explicit init
//! exports, the way a service builds its dictionary or lookup tables once before serving.
//!
//! - `lex_init` generates 32,768 pseudo-random words and inserts their hashes into an
//!   open-addressing hash table (about ten million instructions);
//! - `primes_init` sieves the numbers below 2^22 and builds a prefix table of prime counts
//!   (tens of millions of instructions).
//!
//! Every request export calls the init export of its table first (`#[inline(never)]`, so the
//! call stays a call and the block counters see it), which returns at once when the table is
//! ready. Each table lives in page-aligned statics of its own with its ready flag inside, so
//! the two inits write disjoint linear-memory pages.
#![no_std]

use core::cell::UnsafeCell;

use guest::{Lcg, clamp_len};

/// Words in the dictionary.
const WORDS: usize = 1 << 15;
/// Hash table slots (a power of two, load factor 1/2).
const SLOTS: usize = 1 << 16;
/// Numbers sieved: `0..LIMIT`.
const LIMIT: usize = 1 << 22;
/// Numbers per prefix-count block.
const BLOCK: usize = 512;

#[repr(C, align(4096))]
struct Dict {
    ready: u32,
    /// Word hash per slot (0 = empty; hashes are forced odd).
    keys: [u32; SLOTS],
    /// Word id per slot.
    ids: [u16; SLOTS],
}

#[repr(C, align(4096))]
struct Primes {
    ready: u32,
    count: u32,
    /// Bit set = composite.
    bits: [u8; LIMIT / 8],
    /// Primes below each block's start.
    prefix: [u32; LIMIT / BLOCK + 1],
}

/// A static the (single-threaded, non-re-entrant) exports use one at a time.
struct Static<T>(UnsafeCell<T>);

// SAFETY: wasm32-unknown-unknown chunks run on one thread and their exports are not
// re-entrant, so no two references to the contents are live at once.
unsafe impl<T> Sync for Static<T> {}

impl<T> Static<T> {
    #[allow(clippy::mut_from_ref)]
    fn get(&self) -> &mut T {
        // SAFETY: see the `Sync` impl: one export at a time uses the static.
        unsafe { &mut *self.0.get() }
    }
}

static DICT: Static<Dict> = Static(UnsafeCell::new(Dict {
    ready: 0,
    keys: [0; SLOTS],
    ids: [0; SLOTS],
}));

static PRIMES: Static<Primes> = Static(UnsafeCell::new(Primes {
    ready: 0,
    count: 0,
    bits: [0; LIMIT / 8],
    prefix: [0; LIMIT / BLOCK + 1],
}));

/// The hash of word `i` (generated from its own seed: 6 to 13 lowercase letters, FNV-1a).
fn word_hash(i: u32) -> u32 {
    let mut rng = Lcg(i.wrapping_mul(2_654_435_761) ^ 0x5bd1_e995);
    let len = 6 + rng.next_u32() % 8;
    let mut h: u32 = 0x811c_9dc5;
    for _ in 0..len {
        let letter = b'a' + (rng.next_u32() >> 16) as u8 % 26;
        h = (h ^ u32::from(letter)).wrapping_mul(0x0100_0193);
    }
    h | 1
}

/// Builds the dictionary (once); returns the words inserted.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn lex_init() -> i32 {
    let d = DICT.get();
    if d.ready == 0 {
        for i in 0..WORDS as u32 {
            let h = word_hash(i);
            let mut s = h as usize & (SLOTS - 1);
            while d.keys[s] != 0 && d.keys[s] != h {
                s = (s + 1) & (SLOTS - 1);
            }
            if d.keys[s] == 0 {
                d.keys[s] = h;
                d.ids[s] = i as u16;
            }
        }
        d.ready = 1;
    }
    WORDS as i32
}

/// The id the dictionary holds for word `i`'s hash (`i` itself unless an earlier word has the
/// same hash), or -1 when it is not there (`i` out of range).
#[unsafe(no_mangle)]
pub extern "C" fn lex_lookup(i: i32) -> i32 {
    lex_init();
    let d = DICT.get();
    if !(0..WORDS as i32).contains(&i) {
        return -1;
    }
    let h = word_hash(i as u32);
    let mut s = h as usize & (SLOTS - 1);
    while d.keys[s] != 0 {
        if d.keys[s] == h {
            return i32::from(d.ids[s]);
        }
        s = (s + 1) & (SLOTS - 1);
    }
    -1
}

/// Total probe distance of the first `n` words (a figure of the table's layout).
#[unsafe(no_mangle)]
pub extern "C" fn lex_probe_sum(n: i32) -> i64 {
    lex_init();
    let d = DICT.get();
    let mut total = 0i64;
    for i in 0..clamp_len(n, WORDS) as u32 {
        let h = word_hash(i);
        let mut s = h as usize & (SLOTS - 1);
        while d.keys[s] != h {
            s = (s + 1) & (SLOTS - 1);
            total += 1;
        }
    }
    total
}

/// Checksum of the whole table (keys and ids, position-weighted).
#[unsafe(no_mangle)]
pub extern "C" fn lex_checksum() -> i64 {
    lex_init();
    let d = DICT.get();
    let mut sum: u64 = 0;
    for s in 0..SLOTS {
        sum = sum
            .wrapping_mul(31)
            .wrapping_add(u64::from(d.keys[s]) ^ (u64::from(d.ids[s]) << 32));
    }
    sum as i64
}

/// Writes `tag` into every 64th slot's id (touching every page of the table), then returns
/// the checksum: what an instance sees depends only on the table and its own writes.
#[unsafe(no_mangle)]
pub extern "C" fn lex_touch(tag: i32) -> i64 {
    lex_init();
    let d = DICT.get();
    for s in (0..SLOTS).step_by(64) {
        d.ids[s] = (tag as u16).wrapping_add(s as u16);
        d.keys[s] ^= tag as u32;
    }
    lex_checksum()
}

/// `rounds` times: writes values derived from `tag` and the round into every 64th slot (every
/// page of the table) and yields the core; then returns the checksum. Instances restored from
/// one snapshot and running this at once must each see only their own writes.
#[unsafe(no_mangle)]
pub extern "C" fn lex_mark(tag: i32, rounds: i32) -> i64 {
    lex_init();
    let d = DICT.get();
    for r in 0..clamp_len(rounds, 1 << 20) as u32 {
        for s in (0..SLOTS).step_by(64) {
            d.ids[s] = (tag as u16) ^ (s as u16).wrapping_add(r as u16);
            d.keys[s] = d.keys[s].rotate_left(1) ^ (tag as u32);
        }
        guest::yield_now();
    }
    lex_checksum()
}

/// Sieves and builds the prefix table (once); returns the primes below 2^22.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn primes_init() -> i32 {
    let p = PRIMES.get();
    if p.ready == 0 {
        p.bits[0] |= 0b11;
        let mut i = 2;
        while i * i < LIMIT {
            if p.bits[i / 8] & (1 << (i % 8)) == 0 {
                let mut m = i * i;
                while m < LIMIT {
                    p.bits[m / 8] |= 1 << (m % 8);
                    m += i;
                }
            }
            i += 1;
        }
        let mut count = 0u32;
        for n in 0..LIMIT {
            if n % BLOCK == 0 {
                p.prefix[n / BLOCK] = count;
            }
            if p.bits[n / 8] & (1 << (n % 8)) == 0 {
                count += 1;
            }
        }
        p.prefix[LIMIT / BLOCK] = count;
        p.count = count;
        p.ready = 1;
    }
    p.count as i32
}

fn is_prime(p: &Primes, n: usize) -> bool {
    p.bits[n / 8] & (1 << (n % 8)) == 0
}

/// Primes `<= n` (n below 2^22), from the prefix table.
#[unsafe(no_mangle)]
pub extern "C" fn primes_pi(n: i32) -> i32 {
    primes_init();
    let p = PRIMES.get();
    let n = clamp_len(n, LIMIT - 1);
    let block = n / BLOCK;
    let extra = (block * BLOCK..=n).filter(|&k| is_prime(p, k)).count() as u32;
    (p.prefix[block] + extra) as i32
}

/// The `k`-th prime (1-based), or -1 when it is not below 2^22.
#[unsafe(no_mangle)]
pub extern "C" fn primes_nth(k: i32) -> i32 {
    primes_init();
    let p = PRIMES.get();
    let k = clamp_len(k, LIMIT) as u32;
    if k == 0 || k > p.count {
        return -1;
    }
    // The last block whose prefix is below k holds the k-th prime.
    let (mut lo, mut hi) = (0usize, LIMIT / BLOCK);
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if p.prefix[mid] < k {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let mut seen = p.prefix[lo];
    for n in lo * BLOCK..LIMIT {
        if is_prime(p, n) {
            seen += 1;
            if seen == k {
                return n as i32;
            }
        }
    }
    -1
}

/// The prime whose 1-based rank is word `i`'s id plus one: a request whose path runs both
/// inits (the dictionary's first, then the sieve's), so it restores two layers.
#[unsafe(no_mangle)]
pub extern "C" fn lex_prime_of(i: i32) -> i32 {
    let id = lex_lookup(i);
    if id < 0 {
        return -1;
    }
    primes_nth(id + 1)
}
