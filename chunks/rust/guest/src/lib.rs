//! Support shared by atoll's Rust chunks: safe wrappers over the `atoll` kernel import module
//! and the panic handler (a panic traps with `unreachable`).
#![no_std]

#[link(wasm_import_module = "atoll")]
unsafe extern "C" {
    #[link_name = "print"]
    fn atoll_print(ptr: *const u8, len: usize);
    #[link_name = "cycles"]
    fn atoll_cycles() -> i64;
    #[link_name = "yield"]
    fn atoll_yield();
}

/// Prints one line through the kernel.
pub fn print(line: &str) {
    // SAFETY: the pointer and length describe a live `&str` in this module's linear memory,
    // which is all `atoll.print` reads.
    unsafe { atoll_print(line.as_ptr(), line.len()) }
}

/// The kernel's cycle counter.
pub fn cycles() -> i64 {
    // SAFETY: `atoll.cycles` takes no arguments and touches no memory of ours.
    unsafe { atoll_cycles() }
}

/// Lets the scheduler run something else.
pub fn yield_now() {
    // SAFETY: `atoll.yield` takes no arguments and touches no memory of ours.
    unsafe { atoll_yield() }
}

/// Deterministic test data: a 32-bit linear congruential generator.
#[derive(Debug, Clone, Copy)]
pub struct Lcg(pub u32);

impl Lcg {
    /// The next value (Numerical Recipes constants).
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        self.0
    }
}

/// Fills `buf` with the standard byte pattern the benchmarks use: `(i * 31 + 7) mod 256`.
pub fn fill_pattern(buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i.wrapping_mul(31).wrapping_add(7)) as u8;
    }
}

/// Clamps an export's length argument to `0..=max`.
pub fn clamp_len(n: i32, max: usize) -> usize {
    usize::try_from(n).unwrap_or(0).min(max)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

/// A fixed scratch buffer in linear memory.
///
/// Chunks run single-threaded and their exports are not re-entrant, so one export call has
/// exclusive use of the buffer while it runs.
pub struct Scratch<const N: usize>(core::cell::UnsafeCell<[u8; N]>);

// SAFETY: wasm32-unknown-unknown chunks run on one thread; see the type's documentation.
unsafe impl<const N: usize> Sync for Scratch<N> {}

impl<const N: usize> Scratch<N> {
    /// A zeroed buffer.
    pub const fn new() -> Self {
        Self(core::cell::UnsafeCell::new([0; N]))
    }

    /// The first `len` bytes (at most `N`).
    #[allow(clippy::mut_from_ref)]
    pub fn get(&self, len: usize) -> &mut [u8] {
        // SAFETY: single-threaded, non-re-entrant exports (see above) mean no other reference
        // to the buffer is live while the returned one is used.
        let all = unsafe { &mut *self.0.get() };
        &mut all[..len.min(N)]
    }
}

impl<const N: usize> Default for Scratch<N> {
    fn default() -> Self {
        Self::new()
    }
}
