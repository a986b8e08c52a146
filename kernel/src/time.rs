//! Time: the TSC frequency (from CPUID when it says, measured against the PIT otherwise),
//! the TSC at kernel entry, and whether TSC ticks count guest instructions (QEMU `-icount`).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::{cpu, fwcfg, pit};

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static ENTRY_TSC: AtomicU64 = AtomicU64::new(0);
static ICOUNT: AtomicBool = AtomicBool::new(false);

/// Where the TSC frequency came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TscSource {
    /// CPUID leaf 0x15.
    Cpuid,
    /// Measured against the PIT over 50 ms.
    Pit,
    /// Neither worked; a nominal 1 GHz is assumed.
    Assumed,
}

/// Records the TSC at kernel entry. Call first thing.
pub fn mark_entry() {
    ENTRY_TSC.store(cpu::rdtsc(), Ordering::Relaxed);
}

/// Finds the TSC frequency and whether the host runs us under `-icount`.
pub fn init() -> TscSource {
    let (hz, source) = match tsc_hz_from_cpuid() {
        Some(hz) => (hz, TscSource::Cpuid),
        None => match pit::measure_tsc_hz(50_000) {
            Some(hz) => (hz, TscSource::Pit),
            None => (1_000_000_000, TscSource::Assumed),
        },
    };
    TSC_HZ.store(hz, Ordering::Relaxed);
    let mut buf = [0u8; 8];
    if fwcfg::read_file("opt/atoll/icount", &mut buf).is_some() {
        ICOUNT.store(true, Ordering::Relaxed);
    }
    source
}

fn tsc_hz_from_cpuid() -> Option<u64> {
    if cpu::cpuid(0, 0).0 < 0x15 {
        return None;
    }
    let (denominator, numerator, crystal_hz, _) = cpu::cpuid(0x15, 0);
    if denominator == 0 || numerator == 0 || crystal_hz == 0 {
        return None;
    }
    Some(u64::from(crystal_hz) * u64::from(numerator) / u64::from(denominator))
}

/// TSC ticks per second.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
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
    let end = cpu::rdtsc() + us * (tsc_hz() / 1_000_000).max(1);
    while cpu::rdtsc() < end {
        core::hint::spin_loop();
    }
}

/// Converts microseconds to TSC ticks.
pub fn us_to_cycles(us: u64) -> u64 {
    (u128::from(us) * u128::from(tsc_hz()) / 1_000_000) as u64
}

/// Converts TSC ticks to microseconds.
pub fn cycles_to_us(cycles: u64) -> u64 {
    (u128::from(cycles) * 1_000_000 / u128::from(tsc_hz().max(1))) as u64
}
