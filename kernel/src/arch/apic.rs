//! The local APIC: xAPIC through uncached MMIO, or x2APIC through MSRs when CPUID offers it.
//! Interrupt acknowledgement (EOI), the per-core timer, and inter-processor interrupts
//! (fixed vectors, NMI, INIT and SIPI) all go through here.

use core::mem::offset_of;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use atoll_kcore::addr::{PhysAddr, VirtAddr};
use spin::Once;
use volatile::{VolatilePtr, map_field};
use x86_64::registers::model_specific::{ApicBase, ApicBaseFlags};

use super::cpu;
use super::mmio::{MmioError, Reg32, RegisterBlock};

/// The xAPIC register page (the first 1 KiB of it), one 32-bit register per 16 bytes.
#[repr(C)]
#[derive(Debug)]
#[allow(dead_code)] // the architectural layout; fields are reached through `Reg`
struct XApicRegisters {
    _reserved0: [Reg32; 2],
    id: Reg32,
    version: Reg32,
    _reserved1: [Reg32; 4],
    task_priority: Reg32,
    arbitration_priority: Reg32,
    processor_priority: Reg32,
    eoi: Reg32,
    remote_read: Reg32,
    logical_destination: Reg32,
    destination_format: Reg32,
    spurious_vector: Reg32,
    in_service: [Reg32; 8],
    trigger_mode: [Reg32; 8],
    interrupt_request: [Reg32; 8],
    error_status: Reg32,
    _reserved2: [Reg32; 6],
    lvt_cmci: Reg32,
    icr_low: Reg32,
    icr_high: Reg32,
    lvt_timer: Reg32,
    lvt_thermal: Reg32,
    lvt_performance: Reg32,
    lvt_lint0: Reg32,
    lvt_lint1: Reg32,
    lvt_error: Reg32,
    timer_initial_count: Reg32,
    timer_current_count: Reg32,
    _reserved3: [Reg32; 4],
    timer_divide: Reg32,
}

const _: () = {
    assert!(offset_of!(XApicRegisters, id) == 0x20);
    assert!(offset_of!(XApicRegisters, eoi) == 0xb0);
    assert!(offset_of!(XApicRegisters, spurious_vector) == 0xf0);
    assert!(offset_of!(XApicRegisters, error_status) == 0x280);
    assert!(offset_of!(XApicRegisters, icr_low) == 0x300);
    assert!(offset_of!(XApicRegisters, lvt_error) == 0x370);
    assert!(offset_of!(XApicRegisters, timer_divide) == 0x3e0);
};

/// Declares `Reg`, the registers atoll uses, with their place in the xAPIC page (the x2APIC
/// MSR of a register follows from it: 0x800 + offset / 16).
macro_rules! registers {
    ($($(#[$doc:meta])* $name:ident => $field:ident,)*) => {
        /// A local APIC register.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Reg {
            $($(#[$doc])* $name,)*
        }

        impl Reg {
            /// The register in the xAPIC page.
            fn mmio(self, regs: VolatilePtr<'_, XApicRegisters>) -> VolatilePtr<'_, u32> {
                match self {
                    $(Reg::$name => map_field!(regs.$field.value),)*
                }
            }

            /// The register's x2APIC MSR.
            const fn msr(self) -> u32 {
                let offset = match self {
                    $(Reg::$name => offset_of!(XApicRegisters, $field),)*
                };
                0x800 + (offset / 16) as u32
            }
        }
    };
}

registers! {
    /// The APIC id (bits 24..32 in xAPIC mode).
    Id => id,
    /// Task priority: interrupts at or below it are held back.
    TaskPriority => task_priority,
    /// End of interrupt.
    Eoi => eoi,
    /// Software enable and the spurious vector.
    SpuriousVector => spurious_vector,
    /// Errors since the last write.
    ErrorStatus => error_status,
    /// Interrupt command, low half (the whole 64-bit ICR in x2APIC mode).
    IcrLow => icr_low,
    /// Interrupt command, high half: the destination (xAPIC only).
    IcrHigh => icr_high,
    /// The timer's local vector entry.
    LvtTimer => lvt_timer,
    /// LINT0's local vector entry.
    LvtLint0 => lvt_lint0,
    /// LINT1's local vector entry.
    LvtLint1 => lvt_lint1,
    /// The error interrupt's local vector entry.
    LvtError => lvt_error,
    /// The timer's starting count.
    TimerInitialCount => timer_initial_count,
    /// The timer's current count.
    TimerCurrentCount => timer_current_count,
    /// The timer's input divider.
    TimerDivide => timer_divide,
}

/// Bits of the registers above.
mod bits {
    /// SpuriousVector: APIC software enable.
    pub const SVR_ENABLE: u32 = 1 << 8;
    /// LVT entries: masked.
    pub const LVT_MASKED: u32 = 1 << 16;
    /// LvtTimer: periodic mode.
    pub const TIMER_PERIODIC: u32 = 1 << 17;
    /// TimerDivide: divide by 16.
    pub const DIVIDE_BY_16: u32 = 0b0011;
    /// ICR: delivery status (xAPIC only): the previous IPI has not been accepted yet.
    pub const ICR_PENDING: u32 = 1 << 12;
    /// ICR: level assert (needed for INIT and fine for everything else).
    pub const ICR_ASSERT: u32 = 1 << 14;
    /// ICR high (xAPIC): the destination APIC id's shift.
    pub const ICR_DEST_SHIFT: u32 = 24;
    /// Id (xAPIC): the APIC id's shift.
    pub const ID_SHIFT: u32 = 24;
    /// CPUID.1:ECX: x2APIC supported.
    pub const CPUID_X2APIC: u32 = 1 << 21;
}

/// How an IPI is delivered (ICR bits 8..11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Delivery {
    /// A normal interrupt on the given vector.
    Fixed = 0b000 << 8,
    /// A non-maskable interrupt (vector ignored).
    Nmi = 0b100 << 8,
    /// INIT: reset the target into wait-for-SIPI.
    Init = 0b101 << 8,
    /// Startup: begin real-mode execution at vector * 4 KiB.
    Startup = 0b110 << 8,
}

/// Which access method this machine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Not set up yet.
    None,
    /// Memory-mapped registers.
    XApic,
    /// MSR registers.
    X2Apic,
}

static MODE: AtomicU8 = AtomicU8::new(0);
/// The xAPIC register page (every core maps its own APIC at the same address).
static XAPIC: Once<RegisterBlock<XApicRegisters>> = Once::new();
/// The timer's input frequency (after the divider), measured once on the boot core.
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);

/// The access method in use.
pub fn mode() -> Mode {
    match MODE.load(Ordering::Acquire) {
        1 => Mode::XApic,
        2 => Mode::X2Apic,
        _ => Mode::None,
    }
}

/// Whether CPUID offers x2APIC.
pub fn x2apic_supported() -> bool {
    cpu::cpuid(1, 0).2 & bits::CPUID_X2APIC != 0
}

/// The local APIC's physical base, as IA32_APIC_BASE gives it.
pub fn base_address() -> PhysAddr {
    PhysAddr(ApicBase::read().0.start_address().as_u64())
}

fn read(reg: Reg) -> u32 {
    match (mode(), XAPIC.get()) {
        (Mode::X2Apic, _) => cpu::read_x2apic_msr(reg.msr()) as u32,
        (_, Some(xapic)) => reg.mmio(xapic.regs()).read(),
        (_, None) => 0,
    }
}

fn write(reg: Reg, value: u32) {
    match (mode(), XAPIC.get()) {
        (Mode::X2Apic, _) => cpu::write_x2apic_msr(reg.msr(), u64::from(value)),
        (_, Some(xapic)) => reg.mmio(xapic.regs()).write(value),
        (_, None) => {}
    }
}

/// Chooses x2APIC or xAPIC on the boot core. `mmio` is the virtual address of the uncached
/// mapping of the APIC page at `pa` (used in xAPIC mode); it is checked against the page tables.
pub fn init_boot_core(mmio: VirtAddr, pa: PhysAddr) -> Result<(), MmioError> {
    let registers = RegisterBlock::mapped(mmio, pa)?;
    XAPIC.call_once(|| registers);
    let mode = if x2apic_supported() { 2 } else { 1 };
    MODE.store(mode, Ordering::Release);
    init_this_core();
    Ok(())
}

/// Enables this core's APIC: x2APIC mode if chosen, software enable with the spurious vector,
/// all priorities accepted, LINT pins and error LVT masked.
pub fn init_this_core() {
    let (base, mut flags) = ApicBase::read();
    flags.insert(ApicBaseFlags::LAPIC_ENABLE);
    if mode() == Mode::X2Apic {
        flags.insert(ApicBaseFlags::X2APIC_ENABLE);
    }
    // SAFETY: the base address is written back unchanged; only the enable bits are set.
    unsafe { ApicBase::write(base, flags) };
    write(Reg::TaskPriority, 0);
    write(Reg::LvtLint0, bits::LVT_MASKED);
    write(Reg::LvtLint1, bits::LVT_MASKED);
    write(Reg::LvtError, bits::LVT_MASKED);
    write(
        Reg::SpuriousVector,
        bits::SVR_ENABLE | u32::from(super::vectors::Vector::Spurious as u8),
    );
    write(Reg::ErrorStatus, 0);
    eoi();
}

/// This core's APIC id as the APIC reports it.
pub fn id() -> u32 {
    match mode() {
        Mode::X2Apic => read(Reg::Id),
        _ => read(Reg::Id) >> bits::ID_SHIFT,
    }
}

/// Signals end of interrupt.
pub fn eoi() {
    write(Reg::Eoi, 0);
}

/// Sends an IPI to the APIC with id `dest`. Call with interrupts off (the xAPIC ICR is two
/// registers, and a handler on this core sending its own IPI in between would mix them).
pub fn send_ipi(dest: u32, delivery: Delivery, vector: u8) {
    let low = delivery as u32 | bits::ICR_ASSERT | u32::from(vector);
    match mode() {
        // The x2APIC ICR is one 64-bit MSR: destination in the high half.
        Mode::X2Apic => {
            cpu::write_x2apic_msr(Reg::IcrLow.msr(), (u64::from(dest) << 32) | u64::from(low))
        }
        _ => {
            wait_icr_idle();
            write(Reg::IcrHigh, dest << bits::ICR_DEST_SHIFT);
            write(Reg::IcrLow, low);
            wait_icr_idle();
        }
    }
}

fn wait_icr_idle() {
    for _ in 0..1_000_000 {
        if read(Reg::IcrLow) & bits::ICR_PENDING == 0 {
            return;
        }
        core::hint::spin_loop();
    }
}

/// Measures the timer's frequency (divide by 16) against the PIT. Call once on the boot core.
pub fn calibrate_timer() -> Option<u64> {
    write(Reg::TimerDivide, bits::DIVIDE_BY_16);
    write(Reg::LvtTimer, bits::LVT_MASKED);
    write(Reg::TimerInitialCount, u32::MAX);
    let hz = super::pit::measure_against_pit(20_000, || {
        u64::from(u32::MAX - read(Reg::TimerCurrentCount))
    });
    write(Reg::TimerInitialCount, 0);
    if let Some(hz) = hz {
        TIMER_HZ.store(hz, Ordering::Relaxed);
    }
    hz
}

/// The calibrated timer frequency in Hz (0 before calibration).
pub fn timer_hz() -> u64 {
    TIMER_HZ.load(Ordering::Relaxed)
}

/// Starts this core's timer: periodic, `hz` interrupts per second on `vector`.
pub fn start_periodic_timer(hz: u64, vector: u8) {
    let count = (timer_hz() / hz.max(1)).clamp(1, u64::from(u32::MAX)) as u32;
    write(Reg::TimerDivide, bits::DIVIDE_BY_16);
    write(Reg::LvtTimer, bits::TIMER_PERIODIC | u32::from(vector));
    write(Reg::TimerInitialCount, count);
}
