//! The local APIC: xAPIC through uncached MMIO, or x2APIC through MSRs when CPUID offers it.
//! Interrupt acknowledgement (EOI), the per-core timer, and inter-processor interrupts
//! (fixed vectors, NMI, INIT and SIPI) all go through here.

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use super::cpu::{self, Msr};

/// Local APIC registers, by their xAPIC MMIO offset (x2APIC MSR = 0x800 + offset / 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
#[allow(dead_code)] // the architectural set, not all used
pub enum Reg {
    Id = 0x20,
    Version = 0x30,
    TaskPriority = 0x80,
    Eoi = 0xb0,
    SpuriousVector = 0xf0,
    ErrorStatus = 0x280,
    IcrLow = 0x300,
    IcrHigh = 0x310,
    LvtTimer = 0x320,
    LvtLint0 = 0x350,
    LvtLint1 = 0x360,
    LvtError = 0x370,
    TimerInitialCount = 0x380,
    TimerCurrentCount = 0x390,
    TimerDivide = 0x3e0,
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
    /// IA32_APIC_BASE: global enable.
    pub const BASE_ENABLE: u64 = 1 << 11;
    /// IA32_APIC_BASE: x2APIC mode.
    pub const BASE_X2APIC: u64 = 1 << 10;
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
static MMIO_BASE: AtomicU64 = AtomicU64::new(0);
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

fn x2apic_msr(reg: Reg) -> u32 {
    0x800 + (reg as u32 >> 4)
}

fn read(reg: Reg) -> u32 {
    match mode() {
        Mode::X2Apic => cpu::rdmsr_index(x2apic_msr(reg)) as u32,
        _ => {
            let addr = MMIO_BASE.load(Ordering::Relaxed) + reg as u64;
            // SAFETY: `MMIO_BASE` is the uncached mapping of this core's APIC page made by
            // `init_boot_core`; APIC registers are 32-bit aligned and reads have no side effect
            // beyond the device.
            unsafe { (addr as *const u32).read_volatile() }
        }
    }
}

fn write(reg: Reg, value: u32) {
    match mode() {
        // SAFETY: x2APIC MSRs exist once x2APIC mode is on; these writes touch no memory.
        Mode::X2Apic => unsafe { cpu::wrmsr_index(x2apic_msr(reg), u64::from(value)) },
        _ => {
            let addr = MMIO_BASE.load(Ordering::Relaxed) + reg as u64;
            // SAFETY: as for `read`; the register is writable.
            unsafe { (addr as *mut u32).write_volatile(value) }
        }
    }
}

/// Chooses x2APIC or xAPIC on the boot core. `mmio` is the virtual address of the uncached
/// mapping of the APIC page (used in xAPIC mode).
pub fn init_boot_core(mmio: u64) {
    MMIO_BASE.store(mmio, Ordering::Relaxed);
    let mode = if x2apic_supported() { 2 } else { 1 };
    MODE.store(mode, Ordering::Release);
    init_this_core();
}

/// Enables this core's APIC: x2APIC mode if chosen, software enable with the spurious vector,
/// all priorities accepted, LINT pins and error LVT masked.
pub fn init_this_core() {
    let mut base = cpu::rdmsr(Msr::ApicBase) | bits::BASE_ENABLE;
    if mode() == Mode::X2Apic {
        base |= bits::BASE_X2APIC;
    }
    // SAFETY: setting the enable bits keeps the APIC at its base address; nothing else changes.
    unsafe { cpu::wrmsr(Msr::ApicBase, base) };
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
        _ => read(Reg::Id) >> 24,
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
        // SAFETY: the x2APIC ICR is one 64-bit MSR; writing it sends the IPI.
        Mode::X2Apic => unsafe {
            cpu::wrmsr_index(
                x2apic_msr(Reg::IcrLow),
                (u64::from(dest) << 32) | u64::from(low),
            )
        },
        _ => {
            wait_icr_idle();
            write(Reg::IcrHigh, dest << 24);
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
