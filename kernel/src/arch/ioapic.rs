//! The I/O APIC (device interrupts to local APICs) and the legacy 8259 PICs, which are masked
//! for good once the I/O APIC takes over.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::port::Port;

/// I/O APIC register indexes (written to IOREGSEL, then read or written through IOWIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Reg {
    /// Bits 16..24: highest redirection entry.
    Version = 0x01,
    /// First redirection entry (low half); entry n is at 0x10 + 2n.
    RedirectionBase = 0x10,
}

/// Offsets of the two MMIO registers.
const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;

/// Redirection entry bits.
mod bits {
    pub const MASKED: u64 = 1 << 16;
    pub const LEVEL: u64 = 1 << 15;
    pub const ACTIVE_LOW: u64 = 1 << 13;
}

/// The legacy PICs' data (mask) ports.
const PIC1_DATA: Port<u8> = Port::new(0x21);
const PIC2_DATA: Port<u8> = Port::new(0xa1);

static MMIO: AtomicU64 = AtomicU64::new(0);
static GSI_BASE: AtomicU32 = AtomicU32::new(0);
static ENTRIES: AtomicU32 = AtomicU32::new(0);

/// How an interrupt line signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trigger {
    /// Level-triggered (else edge).
    pub level: bool,
    /// Active low (else high).
    pub active_low: bool,
}

/// Why a route could not be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoApicError {
    /// `init` has not run.
    NotSetUp,
    /// The GSI is not served by this I/O APIC.
    NoSuchGsi(u32),
}

fn select(reg: u32) -> *mut u32 {
    let base = MMIO.load(Ordering::Relaxed);
    // SAFETY: `base` is the uncached mapping of the I/O APIC made for `init`; IOREGSEL is a
    // 32-bit register at offset 0.
    unsafe { ((base + IOREGSEL) as *mut u32).write_volatile(reg) };
    (base + IOWIN) as *mut u32
}

fn read(reg: u32) -> u32 {
    // SAFETY: IOWIN of the mapped I/O APIC; the selected register is readable.
    unsafe { select(reg).read_volatile() }
}

fn write(reg: u32, value: u32) {
    // SAFETY: IOWIN of the mapped I/O APIC; the selected register is writable.
    unsafe { select(reg).write_volatile(value) }
}

/// Masks both 8259 PICs so only the APICs deliver interrupts.
pub fn mask_legacy_pics() {
    // SAFETY: writing 0xff to the PIC mask registers only masks their lines.
    unsafe {
        PIC1_DATA.write(0xff);
        PIC2_DATA.write(0xff);
    }
}

/// Takes over the I/O APIC mapped at `mmio` (virtual) serving GSIs from `gsi_base`: every
/// entry masked. Returns the number of entries. Call once, on the boot core, interrupts off.
pub fn init(mmio: u64, gsi_base: u32) -> u32 {
    MMIO.store(mmio, Ordering::Relaxed);
    GSI_BASE.store(gsi_base, Ordering::Relaxed);
    let entries = ((read(Reg::Version as u32) >> 16) & 0xff) + 1;
    ENTRIES.store(entries, Ordering::Relaxed);
    for i in 0..entries {
        write(Reg::RedirectionBase as u32 + 2 * i, bits::MASKED as u32);
        write(Reg::RedirectionBase as u32 + 2 * i + 1, 0);
    }
    entries
}

/// Routes `gsi` to `vector` on the local APIC with id `dest` (physical destination, fixed
/// delivery), unmasked.
pub fn route(gsi: u32, vector: u8, dest: u8, trigger: Trigger) -> Result<(), IoApicError> {
    let entries = ENTRIES.load(Ordering::Relaxed);
    if entries == 0 {
        return Err(IoApicError::NotSetUp);
    }
    let index = gsi
        .checked_sub(GSI_BASE.load(Ordering::Relaxed))
        .filter(|i| *i < entries)
        .ok_or(IoApicError::NoSuchGsi(gsi))?;
    let mut low = u64::from(vector);
    if trigger.level {
        low |= bits::LEVEL;
    }
    if trigger.active_low {
        low |= bits::ACTIVE_LOW;
    }
    let reg = Reg::RedirectionBase as u32 + 2 * index;
    write(reg + 1, u32::from(dest) << 24);
    write(reg, low as u32);
    Ok(())
}
