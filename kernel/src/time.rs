//! Time: the TSC frequency (from CPUID when it says, measured against the PIT otherwise),
//! the TSC at kernel entry, and whether TSC ticks count guest instructions (QEMU `-icount`).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use crate::arch::tsc::TscSource;
use crate::arch::{cpu, fwcfg, tsc};

static ENTRY_TSC: AtomicU64 = AtomicU64::new(0);
static ICOUNT: AtomicBool = AtomicBool::new(false);

/// Records the TSC at kernel entry. Call first thing.
pub fn mark_entry() {
    ENTRY_TSC.store(cpu::rdtsc(), Ordering::Relaxed);
}

/// Finds the TSC frequency and whether the host runs us under `-icount`.
pub fn init() -> TscSource {
    let source = tsc::calibrate();
    let mut buf = [0u8; 8];
    if fwcfg::read_file("opt/atoll/icount", &mut buf).is_some() {
        ICOUNT.store(true, Ordering::Relaxed);
    }
    source
}

/// TSC ticks per second.
pub fn tsc_hz() -> u64 {
    tsc::hz()
}

/// The TSC when the kernel was entered.
pub fn entry_tsc() -> u64 {
    ENTRY_TSC.load(Ordering::Relaxed)
}

/// Whether QEMU runs with `-icount shift=0`, where the virtual clock advances 1 ns per guest
/// instruction.
pub fn icount() -> bool {
    ICOUNT.load(Ordering::Relaxed)
}

/// Converts TSC ticks to guest instructions under `-icount shift=0` (1 instruction = 1 ns).
pub fn cycles_to_instructions(cycles: u64) -> u64 {
    let hz = tsc_hz().max(1);
    (u128::from(cycles) * 1_000_000_000 / u128::from(hz)) as u64
}

/// Microseconds since kernel entry.
pub fn uptime_us() -> u64 {
    let ticks = cpu::rdtsc().saturating_sub(entry_tsc());
    (u128::from(ticks) * 1_000_000 / u128::from(tsc_hz().max(1))) as u64
}

/// Busy-waits `us` microseconds by the TSC.
pub fn spin_us(us: u64) {
    tsc::spin_us(us);
}

/// Converts microseconds to TSC ticks.
pub fn us_to_cycles(us: u64) -> u64 {
    (u128::from(us) * u128::from(tsc_hz()) / 1_000_000) as u64
}

/// Converts TSC ticks to microseconds.
pub fn cycles_to_us(cycles: u64) -> u64 {
    (u128::from(cycles) * 1_000_000 / u128::from(tsc_hz().max(1))) as u64
}
