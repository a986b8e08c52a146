//! Every core: the table of cores (dense ids, APIC ids, online flags), bring-up of the
//! application processors, and inter-processor interrupts.
//!
//! Core ids are dense: 0 is the boot core, then every other MADT processor in table order.
//! The table is fixed-size atomics, so the NMI path can read it without a lock.

pub mod boot;
pub mod ipi;

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// The most cores atoll drives.
pub const MAX_CORES: usize = 64;

/// What the kernel knows about one core.
#[derive(Debug)]
pub struct CoreSlot {
    apic_id: AtomicU32,
    madt_index: AtomicU32,
    online: AtomicBool,
    online_tsc: AtomicU64,
}

impl CoreSlot {
    const fn new() -> Self {
        Self {
            apic_id: AtomicU32::new(0),
            madt_index: AtomicU32::new(0),
            online: AtomicBool::new(false),
            online_tsc: AtomicU64::new(0),
        }
    }
}

static CORES: [CoreSlot; MAX_CORES] = [const { CoreSlot::new() }; MAX_CORES];
/// Cores with an id (the boot core plus every enabled MADT processor that fits).
static KNOWN: AtomicUsize = AtomicUsize::new(1);
static ONLINE: AtomicU32 = AtomicU32::new(0);

/// Assigns core ids from the MADT: the boot core (APIC id `bsp_apic`) is 0, then every other
/// enabled processor in table order. Returns how many cores have ids.
pub fn assign_ids(cpus: &[crate::acpi::CpuEntry], bsp_apic: u32) -> usize {
    let bsp_index = cpus.iter().position(|c| c.apic_id == bsp_apic).unwrap_or(0);
    CORES[0].apic_id.store(bsp_apic, Ordering::Relaxed);
    CORES[0]
        .madt_index
        .store(bsp_index as u32, Ordering::Relaxed);
    let mut n = 1;
    for (i, c) in cpus.iter().enumerate() {
        if c.apic_id == bsp_apic || !c.enabled || n >= MAX_CORES {
            continue;
        }
        CORES[n].apic_id.store(c.apic_id, Ordering::Relaxed);
        CORES[n].madt_index.store(i as u32, Ordering::Relaxed);
        n += 1;
    }
    KNOWN.store(n, Ordering::Release);
    n
}

/// Cores with ids (started or not).
pub fn known_cores() -> usize {
    KNOWN.load(Ordering::Acquire)
}

/// The APIC id of `core`.
pub fn apic_id(core: usize) -> u32 {
    CORES[core].apic_id.load(Ordering::Relaxed)
}

/// The core id of the processor with `apic`, if it has one.
pub fn core_of_apic(apic: u32) -> Option<usize> {
    (0..known_cores()).find(|c| apic_id(*c) == apic)
}

/// Marks this core online (it takes interrupts and runs threads).
pub fn mark_online(core: usize) {
    CORES[core]
        .online_tsc
        .store(crate::arch::cpu::rdtsc(), Ordering::Relaxed);
    CORES[core].online.store(true, Ordering::Release);
    ONLINE.fetch_add(1, Ordering::AcqRel);
}

/// Whether `core` is online.
pub fn is_online(core: usize) -> bool {
    core < MAX_CORES && CORES[core].online.load(Ordering::Acquire)
}

/// The TSC when `core` came online.
pub fn online_tsc(core: usize) -> u64 {
    CORES[core].online_tsc.load(Ordering::Relaxed)
}

/// How many cores are online.
pub fn online_count() -> u32 {
    ONLINE.load(Ordering::Acquire)
}

/// The online cores' ids.
pub fn online_cores() -> impl Iterator<Item = usize> {
    (0..known_cores()).filter(|c| is_online(*c))
}
