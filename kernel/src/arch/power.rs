//! Power off and reset, through ACPI where the firmware describes it and the legacy paths
//! otherwise.
//!
//! Power off: ACPI S5 — write `SLP_TYPa | SLP_EN` to PM1a_CNT (and `SLP_TYPb` to PM1b_CNT),
//! after switching the chipset to ACPI mode through SMI_CMD if SCI_EN is clear.
//! Reset, in order: the FADT reset register (when the FADT says it is supported), the 8042
//! keyboard controller's reset line, the 0xCF9 reset-control register, then a triple fault.

use super::port::Port;

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

fn spin_us(us: u64) {
    let hz = crate::time::tsc_hz().max(1);
    let end = super::cpu::rdtsc() + hz / 1_000_000 * us;
    while super::cpu::rdtsc() < end {
        core::hint::spin_loop();
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
    let pm1a = Port::<u16>::new(pm1a);
    // SAFETY: the FADT names these ports as the PM1 control blocks and SMI command port; writing
    // them changes power state, which is the intent.
    unsafe {
        if let (0, Some((port, enable))) = (pm1a.read() & pm1_cnt::SCI_EN, info.smi_cmd) {
            Port::<u8>::new(port).write(enable);
            for _ in 0..300 {
                if pm1a.read() & pm1_cnt::SCI_EN != 0 {
                    break;
                }
                spin_us(1000);
            }
        }
        let keep = pm1a.read() & pm1_cnt::SCI_EN;
        if let Some(pm1b) = info.pm1b_control {
            let pm1b = Port::<u16>::new(pm1b);
            pm1b.write(keep | (s5.b << pm1_cnt::SLP_TYP_SHIFT) | pm1_cnt::SLP_EN);
        }
        pm1a.write(keep | (s5.a << pm1_cnt::SLP_TYP_SHIFT) | pm1_cnt::SLP_EN);
    }
    spin_us(100_000);
    PowerError::StillRunning
}

/// Resets the machine. Never returns.
pub fn reset(info: &PowerInfo) -> ! {
    super::cpu::disable_interrupts();
    // SAFETY: each write below asks the hardware to reset, which is the intent; the ports are
    // the FADT's reset register, the 8042 command port and the PCI reset-control register.
    unsafe {
        if let Some((port, value)) = info.reset {
            Port::<u8>::new(port).write(value);
            spin_us(50_000);
        }
        let kbc_status = Port::<u8>::new(0x64);
        for _ in 0..10_000 {
            if kbc_status.read() & 0x02 == 0 {
                break;
            }
        }
        kbc_status.write(0xfe);
        spin_us(50_000);
        let cf9 = Port::<u8>::new(0xcf9);
        cf9.write(0x02);
        cf9.write(0x06);
        spin_us(50_000);
        // Triple fault: an empty IDT, then an exception.
        let empty: [u8; 10] = [0; 10];
        core::arch::asm!("lidt [{}]", "int3", in(reg) &empty, options(noreturn));
    }
}
