//! The I/O APIC (device interrupts to local APICs) and the legacy 8259 PICs, which are masked
//! for good once the I/O APIC takes over.

use core::sync::atomic::{AtomicU32, Ordering};

use atoll_kcore::addr::{PhysAddr, VirtAddr};
use spin::Once;
use volatile::map_field;

use super::mmio::{MmioError, Reg32, RegisterBlock};
use super::port::IoPort;

/// The I/O APIC's two MMIO registers: a register index is written to `select`, then the
/// register is read or written through `window`.
#[repr(C)]
#[derive(Debug)]
struct IoApicRegisters {
    select: Reg32,
    window: Reg32,
}

/// I/O APIC registers (indexes written to `select`).
mod reg {
    /// Bits 16..24: highest redirection entry.
    pub const VERSION: u32 = 0x01;
    /// Redirection entry `n`, low half (vector, delivery, trigger, mask); the high half
    /// (destination) follows it.
    pub const fn redirection_low(n: u32) -> u32 {
        0x10 + 2 * n
    }
    /// Redirection entry `n`, high half.
    pub const fn redirection_high(n: u32) -> u32 {
        redirection_low(n) + 1
    }
}

/// Redirection entry bits (low half).
mod bits {
    pub const MASKED: u32 = 1 << 16;
    pub const LEVEL: u32 = 1 << 15;
    pub const ACTIVE_LOW: u32 = 1 << 13;
    /// High half: the destination APIC id's shift.
    pub const DEST_SHIFT: u32 = 24;
    /// Version register: where the highest entry's index sits.
    pub const MAX_ENTRY_SHIFT: u32 = 16;
}

// SAFETY: the first 8259 PIC's data (mask) port; writing it only masks lines, touching no memory.
const PIC1_DATA: IoPort<u8> = unsafe { IoPort::new(0x21) };
// SAFETY: as above, for the second PIC.
const PIC2_DATA: IoPort<u8> = unsafe { IoPort::new(0xa1) };

/// The I/O APIC's registers. `select` then `window` is a pair: callers run with interrupts off
/// on the boot core at setup, so no other access comes in between.
static REGS: Once<RegisterBlock<IoApicRegisters>> = Once::new();
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

impl Trigger {
    /// How ISA interrupts signal unless the MADT says otherwise: edge, active high.
    pub const ISA_DEFAULT: Self = Self {
        level: false,
        active_low: false,
    };

    /// The trigger an MADT interrupt source override's MPS INTI flags give: bits 0..2 polarity
    /// (3 = active low), bits 2..4 trigger mode (3 = level); other values keep the bus default
    /// (ISA: edge, active high).
    pub fn from_inti_flags(flags: u16) -> Self {
        Self {
            active_low: flags & 0b11 == 0b11,
            level: (flags >> 2) & 0b11 == 0b11,
        }
    }
}

/// Why a route could not be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoApicError {
    /// `init` has not run.
    NotSetUp,
    /// The GSI is not served by this I/O APIC.
    NoSuchGsi(u32),
    /// Its registers are not mapped where the caller said.
    Mmio(MmioError),
}

fn read(regs: &RegisterBlock<IoApicRegisters>, index: u32) -> u32 {
    let r = regs.regs();
    map_field!(r.select.value).write(index);
    map_field!(r.window.value).read()
}

fn write(regs: &RegisterBlock<IoApicRegisters>, index: u32, value: u32) {
    let r = regs.regs();
    map_field!(r.select.value).write(index);
    map_field!(r.window.value).write(value);
}

/// Masks both 8259 PICs so only the APICs deliver interrupts.
pub fn mask_legacy_pics() {
    PIC1_DATA.write(0xff);
    PIC2_DATA.write(0xff);
}

/// Takes over the I/O APIC at physical `pa`, mapped (uncached) at `mmio`, serving GSIs from
/// `gsi_base`: every entry masked. Returns the number of entries. Call once, on the boot core,
/// interrupts off.
pub fn init(mmio: VirtAddr, pa: PhysAddr, gsi_base: u32) -> Result<u32, IoApicError> {
    let regs = RegisterBlock::mapped(mmio, pa).map_err(IoApicError::Mmio)?;
    let regs = REGS.call_once(|| regs);
    GSI_BASE.store(gsi_base, Ordering::Relaxed);
    let entries = ((read(regs, reg::VERSION) >> bits::MAX_ENTRY_SHIFT) & 0xff) + 1;
    ENTRIES.store(entries, Ordering::Relaxed);
    for i in 0..entries {
        write(regs, reg::redirection_low(i), bits::MASKED);
        write(regs, reg::redirection_high(i), 0);
    }
    Ok(entries)
}

/// Routes `gsi` to `vector` on the local APIC with id `dest` (physical destination, fixed
/// delivery), unmasked.
pub fn route(gsi: u32, vector: u8, dest: u8, trigger: Trigger) -> Result<(), IoApicError> {
    let (Some(regs), entries @ 1..) = (REGS.get(), ENTRIES.load(Ordering::Relaxed)) else {
        return Err(IoApicError::NotSetUp);
    };
    let index = gsi
        .checked_sub(GSI_BASE.load(Ordering::Relaxed))
        .filter(|i| *i < entries)
        .ok_or(IoApicError::NoSuchGsi(gsi))?;
    let mut low = u32::from(vector);
    if trigger.level {
        low |= bits::LEVEL;
    }
    if trigger.active_low {
        low |= bits::ACTIVE_LOW;
    }
    write(
        regs,
        reg::redirection_high(index),
        u32::from(dest) << bits::DEST_SHIFT,
    );
    write(regs, reg::redirection_low(index), low);
    Ok(())
}
