//! The time-stamp counter's frequency (from CPUID leaf 0x15 when the CPU says,
//! measured against the PIT otherwise). `crate::time` builds uptime and unit conversions on top;
//! arch code that waits (power, bring-up) uses [`spin_us`] here, so it never calls back into it.

use core::sync::atomic::{AtomicU64, Ordering};

use super::cpu::{cpuid, rdtsc};
use super::pit;

static HZ: AtomicU64 = AtomicU64::new(0);

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

/// PIT time the measurement spans.
const PIT_WINDOW_US: u64 = 50_000;
/// What is assumed when nothing tells.
const ASSUMED_HZ: u64 = 1_000_000_000;

/// Finds the TSC frequency. Call once, early, on the boot core.
pub fn calibrate() -> TscSource {
    let (hz, source) = match hz_from_cpuid() {
        Some(hz) => (hz, TscSource::Cpuid),
        None => match pit::measure_tsc_hz(PIT_WINDOW_US) {
            Some(hz) => (hz, TscSource::Pit),
            None => (ASSUMED_HZ, TscSource::Assumed),
        },
    };
    HZ.store(hz, Ordering::Relaxed);
    source
}

fn hz_from_cpuid() -> Option<u64> {
    if cpuid(0, 0).0 < 0x15 {
        return None;
    }
    let (denominator, numerator, crystal_hz, _) = cpuid(0x15, 0);
    if denominator == 0 || numerator == 0 || crystal_hz == 0 {
        return None;
    }
    Some(u64::from(crystal_hz) * u64::from(numerator) / u64::from(denominator))
}

/// TSC ticks per second (0 before [`calibrate`]).
pub fn hz() -> u64 {
    HZ.load(Ordering::Relaxed)
}

/// Busy-waits `us` microseconds by the TSC.
pub fn spin_us(us: u64) {
    let end = rdtsc() + us * (hz() / 1_000_000).max(1);
    while rdtsc() < end {
        core::hint::spin_loop();
    }
}
