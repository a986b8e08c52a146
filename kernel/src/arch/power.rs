//! Power off and reset, through ACPI where the firmware describes it and the legacy paths
//! otherwise.
//!
//! Power off: ACPI S5 — write `SLP_TYPa | SLP_EN` to PM1a_CNT (and `SLP_TYPb` to PM1b_CNT),
//! after switching the chipset to ACPI mode through SMI_CMD if SCI_EN is clear.
//! Reset, in order: the FADT reset register (when the FADT says it is supported), the 8042
//! keyboard controller's reset line, the 0xCF9 reset-control register, then a triple fault.

use super::port::IoPort;
use super::tsc::spin_us;

/// The facts power control needs, from the FADT and the DSDT.
#[derive(Debug, Clone, Copy, Default)]
pub struct PowerInfo {
    /// PM1a control block I/O port.
    pub pm1a_control: Option<u16>,
    /// PM1b control block I/O port.
    pub pm1b_control: Option<u16>,
    /// The SMI command port and the value that enables ACPI mode.
    pub smi_cmd: Option<(u16, u8)>,
    /// `\_S5` sleep types.
    pub s5: Option<atoll_kcore::s5::SleepType>,
    /// The FADT reset register (I/O space only) and its value.
    pub reset: Option<(u16, u8)>,
}

mod pm1_cnt {
    pub const SCI_EN: u16 = 1 << 0;
    pub const SLP_TYP_SHIFT: u16 = 10;
    pub const SLP_EN: u16 = 1 << 13;
}

/// The 8042 keyboard controller's status (read) and command (write) port.
const KBC_COMMAND: u16 = 0x64;
/// The PCI reset-control register.
const RESET_CONTROL: u16 = 0xcf9;

mod kbc_bits {
    /// Status: the controller's input buffer is full (not ready for a command).
    pub const INPUT_FULL: u8 = 1 << 1;
    /// Command: pulse the CPU reset line.
    pub const PULSE_RESET: u8 = 0xfe;
}

mod reset_control {
    /// Hard reset (rather than a soft INIT) when `RESET_CPU` rises.
    pub const SYSTEM_RESET: u8 = 1 << 1;
    /// Writing 1 after 0 starts the reset.
    pub const RESET_CPU: u8 = 1 << 2;
}

/// Why power off could not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerError {
    /// The firmware gave no PM1a control block.
    NoPm1Control,
    /// `\_S5` was not found.
    NoS5,
    /// The write was done but the machine is still running.
    StillRunning,
}

impl core::fmt::Display for PowerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PowerError::NoPm1Control => write!(f, "ACPI gives no PM1a control block"),
            PowerError::NoS5 => write!(f, "ACPI gives no \\_S5 sleep type"),
            PowerError::StillRunning => write!(f, "S5 was requested but the machine kept running"),
        }
    }
}

/// Enters ACPI S5 (soft off). Returns only if that failed.
pub fn power_off(info: &PowerInfo) -> PowerError {
    let Some(pm1a) = info.pm1a_control else {
        return PowerError::NoPm1Control;
    };
    let Some(s5) = info.s5 else {
        return PowerError::NoS5;
    };
    // SAFETY: the FADT names these ports as the PM1 control blocks and the SMI command port;
    // writing them changes power state, which is the intent, and touches no memory.
    let (pm1a, pm1b, smi_cmd) = unsafe {
        (
            IoPort::<u16>::new(pm1a),
            info.pm1b_control.map(|p| IoPort::<u16>::new(p)),
            info.smi_cmd
                .map(|(p, enable)| (IoPort::<u8>::new(p), enable)),
        )
    };
    if let (0, Some((port, enable))) = (pm1a.read() & pm1_cnt::SCI_EN, smi_cmd) {
        port.write(enable);
        for _ in 0..300 {
            if pm1a.read() & pm1_cnt::SCI_EN != 0 {
                break;
            }
            spin_us(1000);
        }
    }
    let keep = pm1a.read() & pm1_cnt::SCI_EN;
    if let Some(pm1b) = pm1b {
        pm1b.write(keep | (s5.b << pm1_cnt::SLP_TYP_SHIFT) | pm1_cnt::SLP_EN);
    }
    pm1a.write(keep | (s5.a << pm1_cnt::SLP_TYP_SHIFT) | pm1_cnt::SLP_EN);
    spin_us(100_000);
    PowerError::StillRunning
}

/// Resets the machine. Never returns.
pub fn reset(info: &PowerInfo) -> ! {
    super::cpu::disable_interrupts();
    // SAFETY: each port asks the hardware to reset, which is the intent: the FADT's reset
    // register, the 8042 keyboard controller's command/status port and the PCI reset-control
    // register. None of them touches memory.
    let (fadt_reset, kbc, cf9) = unsafe {
        (
            info.reset
                .map(|(port, value)| (IoPort::<u8>::new(port), value)),
            IoPort::<u8>::new(KBC_COMMAND),
            IoPort::<u8>::new(RESET_CONTROL),
        )
    };
    if let Some((port, value)) = fadt_reset {
        port.write(value);
        spin_us(50_000);
    }
    for _ in 0..10_000 {
        if kbc.read() & kbc_bits::INPUT_FULL == 0 {
            break;
        }
    }
    kbc.write(kbc_bits::PULSE_RESET);
    spin_us(50_000);
    cf9.write(reset_control::SYSTEM_RESET);
    cf9.write(reset_control::SYSTEM_RESET | reset_control::RESET_CPU);
    spin_us(50_000);
    super::cpu::triple_fault()
}
