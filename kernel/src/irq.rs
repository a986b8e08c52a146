//! Interrupt setup on the boot core: legacy PICs masked, the local APIC (mapped uncached) and its
//! timer calibrated against the PIT, the I/O APIC taking over device lines, and COM1's receive
//! interrupt routed to the boot core.

use core::fmt;

use atoll_kcore::addr::{PhysAddr, SIZE_4K};

use crate::acpi::AcpiInfo;
use crate::arch::ioapic::{self, Trigger};
use crate::arch::mmio::MmioError;
use crate::arch::vectors::Vector;
use crate::arch::{apic, serial, trap};
use crate::mem::vm::{self, VmError};

/// Why interrupt setup failed.
#[derive(Debug, Clone, Copy)]
pub enum IrqError {
    /// Mapping APIC registers failed.
    Vm(VmError),
    /// The local APIC's registers were not where they were mapped.
    Mmio(MmioError),
    /// The APIC timer could not be measured.
    TimerCalibration,
    /// No I/O APIC in the MADT.
    NoIoApic,
    /// The I/O APIC could not be set up, or the serial line not routed.
    Route(ioapic::IoApicError),
}

impl From<VmError> for IrqError {
    fn from(e: VmError) -> Self {
        IrqError::Vm(e)
    }
}

impl fmt::Display for IrqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IrqError::Vm(e) => write!(f, "mapping APIC registers: {e}"),
            IrqError::Mmio(e) => write!(f, "local APIC registers: {e:?}"),
            IrqError::TimerCalibration => write!(f, "the PIT did not count; APIC timer unknown"),
            IrqError::NoIoApic => write!(f, "no I/O APIC in the MADT"),
            IrqError::Route(e) => write!(f, "routing COM1: {e:?}"),
        }
    }
}

/// What `init` set up.
#[derive(Debug, Clone, Copy)]
pub struct IrqSetup {
    /// x2APIC (true) or xAPIC.
    pub x2apic: bool,
    /// The APIC timer's input frequency (divide by 16).
    pub timer_hz: u64,
    /// The GSI COM1 arrives on.
    pub serial_gsi: u32,
    /// The GSI the PS/2 keyboard arrives on, if there is a controller.
    pub keyboard_gsi: Option<u32>,
}

/// Sets up the APICs on the boot core. Interrupts stay off until the caller enables them.
pub fn init(info: &AcpiInfo) -> Result<IrqSetup, IrqError> {
    ioapic::mask_legacy_pics();
    let lapic_pa = if info.local_apic_address != 0 {
        PhysAddr(info.local_apic_address)
    } else {
        apic::base_address()
    };
    let lapic = vm::map_device(lapic_pa, SIZE_4K)?;
    apic::init_boot_core(lapic, lapic_pa).map_err(IrqError::Mmio)?;
    trap::set_handler(Vector::Spurious as u8, |_| {});
    let timer_hz = apic::calibrate_timer().ok_or(IrqError::TimerCalibration)?;

    let io = info.io_apics.first().ok_or(IrqError::NoIoApic)?;
    let io_pa = PhysAddr(u64::from(io.address));
    let io_va = vm::map_device(io_pa, SIZE_4K)?;
    ioapic::init(io_va, io_pa, io.gsi_base).map_err(IrqError::Route)?;
    let (gsi, trigger) = isa_route(info, serial::COM1_ISA_IRQ);
    let bsp = apic::id() as u8;
    ioapic::route(gsi, Vector::Serial as u8, bsp, trigger).map_err(IrqError::Route)?;
    // The keyboard goes to the same core as COM1: the console's receive ring then has one
    // producer at a time (interrupt handlers do not nest).
    let keyboard_gsi = if crate::console::keyboard::init() {
        let (kbd_gsi, kbd_trigger) = isa_route(info, crate::arch::ps2::KEYBOARD_ISA_IRQ);
        ioapic::route(kbd_gsi, Vector::Keyboard as u8, bsp, kbd_trigger)
            .map_err(IrqError::Route)?;
        Some(kbd_gsi)
    } else {
        None
    };
    Ok(IrqSetup {
        x2apic: apic::mode() == apic::Mode::X2Apic,
        timer_hz,
        serial_gsi: gsi,
        keyboard_gsi,
    })
}

/// Where ISA `irq` arrives, after the MADT's overrides (ISA default: edge, active high).
fn isa_route(info: &AcpiInfo, irq: u8) -> (u32, Trigger) {
    match info.overrides.iter().find(|o| o.bus == 0 && o.irq == irq) {
        Some(o) => (o.gsi, Trigger::from_inti_flags(o.flags)),
        None => (u32::from(irq), Trigger::ISA_DEFAULT),
    }
}
