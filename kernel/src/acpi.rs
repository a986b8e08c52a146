//! ACPI: finds the RSDP the bootloader reported, walks the tables with the `acpi` crate, and
//! keeps what the kernel needs: CPUs, I/O APICs and interrupt overrides from the MADT, the
//! power-control facts from the FADT and the DSDT's `\_S5`, and the NUMA affinity tables (SRAT,
//! SLIT; the crate has no types for them, so `atoll_kcore::srat` decodes their bytes).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use acpi::madt::{Madt, MadtEntry};
use acpi::{PhysicalMapping, fadt::Fadt};
use atoll_kcore::s5::{S5Error, find_s5};
use atoll_kcore::srat::{Slit, Srat, SratError, parse_slit, parse_srat};
use spin::Once;

use crate::arch::acpi_tables::{self, DirectMapHandler, FirmwareTables, RawTable, Rsdp};
use crate::arch::power::PowerInfo;

/// One processor from the MADT.
#[derive(Debug, Clone, Copy)]
pub struct CpuEntry {
    /// ACPI processor UID.
    pub processor_id: u32,
    /// Local APIC id.
    pub apic_id: u32,
    /// Usable now.
    pub enabled: bool,
    /// Can be brought online later.
    pub online_capable: bool,
}

/// One I/O APIC from the MADT.
#[derive(Debug, Clone, Copy)]
pub struct IoApicEntry {
    /// Its APIC id.
    pub id: u8,
    /// MMIO base (physical).
    pub address: u32,
    /// First global system interrupt it serves.
    pub gsi_base: u32,
}

/// An ISA interrupt routed somewhere other than the identity GSI.
#[derive(Debug, Clone, Copy)]
pub struct InterruptOverride {
    /// Source bus (0 = ISA).
    pub bus: u8,
    /// Bus-relative IRQ.
    pub irq: u8,
    /// The GSI it arrives on.
    pub gsi: u32,
    /// MPS INTI flags (polarity, trigger mode).
    pub flags: u16,
}

/// What the kernel learned from ACPI.
#[derive(Debug, Clone)]
pub struct AcpiInfo {
    /// RSDP revision (0 = ACPI 1.0 with an RSDT, 2+ = XSDT).
    pub revision: u8,
    /// The RSDP's OEM id.
    pub oem_id: String,
    /// Signatures of every table the RSDT/XSDT lists.
    pub tables: Vec<String>,
    /// Processors, in MADT order.
    pub cpus: Vec<CpuEntry>,
    /// I/O APICs.
    pub io_apics: Vec<IoApicEntry>,
    /// Interrupt source overrides.
    pub overrides: Vec<InterruptOverride>,
    /// The local APIC's physical MMIO base.
    pub local_apic_address: u64,
    /// Power-control facts.
    pub power: PowerInfo,
    /// Why `\_S5` could not be read, if it could not.
    pub s5_error: Option<S5Error>,
    /// The SRAT, if the firmware has a valid one.
    pub srat: Option<Srat>,
    /// The SLIT, if the firmware has a valid one.
    pub slit: Option<Slit>,
    /// Why a SRAT or SLIT present in the firmware could not be used.
    pub affinity_errors: Vec<AffinityError>,
}

/// Why an affinity table (SRAT or SLIT) was left out.
#[derive(Debug, Clone, Copy)]
pub enum AffinityError {
    /// The `acpi` crate could not map or validate it.
    Unreadable(RawTable),
    /// Its contents are malformed.
    Malformed(RawTable, SratError),
}

impl fmt::Display for AffinityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AffinityError::Unreadable(t) => write!(f, "{t:?}: unreadable"),
            AffinityError::Malformed(t, e) => write!(f, "{t:?}: {e}"),
        }
    }
}

/// Why ACPI could not be read.
#[derive(Debug)]
pub enum AcpiInitError {
    /// The bootloader found no RSDP.
    NoRsdp,
    /// The tables were invalid.
    Tables(acpi::AcpiError),
}

impl From<acpi::AcpiError> for AcpiInitError {
    fn from(e: acpi::AcpiError) -> Self {
        AcpiInitError::Tables(e)
    }
}

impl fmt::Display for AcpiInitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcpiInitError::NoRsdp => write!(f, "no RSDP found"),
            AcpiInitError::Tables(e) => write!(f, "invalid ACPI tables: {e:?}"),
        }
    }
}

static INFO: Once<AcpiInfo> = Once::new();

/// The ACPI facts, if `init` succeeded.
pub fn info() -> Option<&'static AcpiInfo> {
    INFO.get()
}

/// Reads the tables from the RSDP at `rsdp`.
pub fn init(rsdp: Option<Rsdp>) -> Result<&'static AcpiInfo, AcpiInitError> {
    let rsdp = rsdp.ok_or(AcpiInitError::NoRsdp)?;
    let firmware = acpi_tables::read(rsdp)?;
    let tables = &firmware.tables;
    let mut info = AcpiInfo {
        revision: firmware.revision,
        oem_id: String::from_utf8_lossy(&firmware.oem_id).trim().into(),
        tables: tables
            .headers()
            .map(|h| String::from(h.signature.as_str()))
            .collect(),
        cpus: Vec::new(),
        io_apics: Vec::new(),
        overrides: Vec::new(),
        local_apic_address: 0,
        power: PowerInfo::default(),
        s5_error: None,
        srat: None,
        slit: None,
        affinity_errors: Vec::new(),
    };
    if let Ok(madt) = tables.find_table::<Madt>() {
        read_madt(&madt, &mut info);
    }
    info.srat = read_affinity(
        &firmware,
        RawTable::Srat,
        parse_srat,
        &mut info.affinity_errors,
    );
    info.slit = read_affinity(
        &firmware,
        RawTable::Slit,
        parse_slit,
        &mut info.affinity_errors,
    );
    if let Ok(fadt) = tables.find_table::<Fadt>() {
        read_fadt(&fadt, &mut info.power);
    }
    match firmware.dsdt_aml() {
        Ok(aml) => match find_s5(aml) {
            Ok(s5) => info.power.s5 = Some(s5),
            Err(e) => info.s5_error = Some(e),
        },
        Err(_) => info.s5_error = Some(S5Error::NotFound),
    }
    Ok(INFO.call_once(|| info))
}

/// Reads and decodes one affinity table; a table that is present but bad is recorded in
/// `errors` and left out.
fn read_affinity<T>(
    firmware: &FirmwareTables,
    table: RawTable,
    parse: fn(&[u8]) -> Result<T, SratError>,
    errors: &mut Vec<AffinityError>,
) -> Option<T> {
    let bytes = match firmware.raw_table(table) {
        Ok(bytes) => bytes?,
        Err(_) => {
            errors.push(AffinityError::Unreadable(table));
            return None;
        }
    };
    parse(bytes)
        .map_err(|e| errors.push(AffinityError::Malformed(table, e)))
        .ok()
}

fn read_madt(madt: &PhysicalMapping<DirectMapHandler, Madt>, info: &mut AcpiInfo) {
    let madt = madt.get();
    let lapic: u32 = madt.local_apic_address;
    info.local_apic_address = u64::from(lapic);
    for entry in madt.entries() {
        match entry {
            MadtEntry::LocalApic(e) => info.cpus.push(CpuEntry {
                processor_id: u32::from(e.processor_id),
                apic_id: u32::from(e.apic_id),
                enabled: { e.flags } & 1 != 0,
                online_capable: { e.flags } & 2 != 0,
            }),
            MadtEntry::LocalX2Apic(e) => info.cpus.push(CpuEntry {
                processor_id: { e.processor_uid },
                apic_id: { e.x2apic_id },
                enabled: { e.flags } & 1 != 0,
                online_capable: { e.flags } & 2 != 0,
            }),
            MadtEntry::IoApic(e) => info.io_apics.push(IoApicEntry {
                id: e.io_apic_id,
                address: { e.io_apic_address },
                gsi_base: { e.global_system_interrupt_base },
            }),
            MadtEntry::InterruptSourceOverride(e) => info.overrides.push(InterruptOverride {
                bus: e.bus,
                irq: e.irq,
                gsi: { e.global_system_interrupt },
                flags: { e.flags },
            }),
            MadtEntry::LocalApicAddressOverride(e) => {
                info.local_apic_address = e.local_apic_address;
            }
            _ => {}
        }
    }
}

fn io_port(addr: Option<acpi::address::GenericAddress>) -> Option<u16> {
    let a = addr?;
    (a.address_space == acpi::address::AddressSpace::SystemIo && a.address != 0)
        .then(|| u16::try_from(a.address).ok())
        .flatten()
}

fn read_fadt(fadt: &PhysicalMapping<DirectMapHandler, Fadt>, power: &mut PowerInfo) {
    power.pm1a_control = io_port(fadt.pm1a_control_block().ok());
    power.pm1b_control = io_port(fadt.pm1b_control_block().ok().flatten());
    let smi = { fadt.smi_cmd_port };
    let enable = { fadt.acpi_enable };
    if smi != 0 && enable != 0 {
        power.smi_cmd = u16::try_from(smi).ok().map(|p| (p, enable));
    }
    let flags = { fadt.flags };
    if flags.supports_system_reset_via_fadt() {
        power.reset = io_port(fadt.reset_register().ok()).map(|p| (p, { fadt.reset_value }));
    }
}
