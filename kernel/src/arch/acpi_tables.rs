//! ACPI tables read through the direct map: the `acpi` crate's handler, the tables the RSDP
//! leads to, and the DSDT's AML bytes.

use core::ptr::NonNull;

use acpi::sdt::{SdtHeader, Signature};
use acpi::{AcpiError, AcpiHandler, AcpiTable, AcpiTables, PhysicalMapping};
use atoll_kcore::addr::PhysAddr;

use super::physmem;

/// Maps ACPI tables through the direct map (nothing to map or unmap).
#[derive(Debug, Clone, Copy)]
pub struct DirectMapHandler;

impl AcpiHandler for DirectMapHandler {
    unsafe fn map_physical_region<T>(&self, pa: usize, size: usize) -> PhysicalMapping<Self, T> {
        let va = physmem::to_virt(PhysAddr(pa as u64)).0 as *mut T;
        // SAFETY: the direct map covers all physical memory, so `va` is valid for `size` bytes;
        // the acpi crate's contract makes `pa` hold a `T`.
        unsafe {
            PhysicalMapping::new(
                pa,
                NonNull::new(va).expect("direct map is never null"),
                size,
                size,
                *self,
            )
        }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// The firmware's Root System Description Pointer.
#[derive(Debug, Clone, Copy)]
pub struct Rsdp(PhysAddr);

/// Bytes of the ACPI 1.0 RSDP: signature, checksum, OEM id, revision, RSDT address.
const RSDP_V1_BYTES: usize = 20;
/// Bytes 9..15 of the RSDP: OEM id; byte 15: revision.
const RSDP_OEM: core::ops::Range<usize> = 9..15;
const RSDP_REVISION: usize = 15;

impl Rsdp {
    /// The RSDP at `pa`.
    ///
    /// # Safety
    /// `pa` must be where the firmware put its RSDP (as the bootloader reports it).
    pub const unsafe fn new(pa: PhysAddr) -> Self {
        Self(pa)
    }
}

/// The tables an RSDP leads to, and the RSDP's own facts.
#[derive(Debug)]
pub struct FirmwareTables {
    /// The tables, for `find_table`, `headers` and `dsdt`.
    pub tables: AcpiTables<DirectMapHandler>,
    /// RSDP revision (0 = ACPI 1.0 with an RSDT, 2+ = XSDT).
    pub revision: u8,
    /// The RSDP's OEM id.
    pub oem_id: [u8; 6],
}

/// Reads the tables from `rsdp` (the acpi crate checks signatures and checksums).
pub fn read(rsdp: Rsdp) -> Result<FirmwareTables, AcpiError> {
    // SAFETY: `Rsdp::new`'s contract: the address is the firmware's RSDP; the acpi crate
    // validates its signature and checksum before using it.
    let tables = unsafe { AcpiTables::from_rsdp(DirectMapHandler, rsdp.0.0 as usize)? };
    // SAFETY: the RSDP was validated above; its first 20 bytes are firmware data in RAM.
    let raw = unsafe { physmem::bytes(rsdp.0, RSDP_V1_BYTES) };
    let mut oem_id = [0; 6];
    oem_id.copy_from_slice(&raw[RSDP_OEM]);
    Ok(FirmwareTables {
        tables,
        revision: raw[RSDP_REVISION],
        oem_id,
    })
}

impl FirmwareTables {
    /// The DSDT's AML (after its header).
    pub fn dsdt_aml(&self) -> Result<&'static [u8], AcpiError> {
        let dsdt = self.tables.dsdt()?;
        // SAFETY: the DSDT's address and length come from the validated FADT; the table is
        // firmware data that nothing writes.
        Ok(unsafe { physmem::bytes(PhysAddr(dsdt.address as u64), dsdt.length as usize) })
    }
}

/// A table the `acpi` crate has no type for, read as raw bytes (only its header is typed).
#[repr(C, packed)]
struct Untyped<const KIND: u8> {
    header: SdtHeader,
}

/// Tables read as raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawTable {
    /// The System Resource Affinity Table (NUMA nodes).
    Srat,
    /// The System Locality Information Table (NUMA distances).
    Slit,
}

const KIND_SRAT: u8 = 0;
const KIND_SLIT: u8 = 1;

// SAFETY: `Untyped` is exactly an SDT header, so it never extends past a table; the signature
// selects the table kind it stands for.
unsafe impl<const KIND: u8> AcpiTable for Untyped<KIND> {
    const SIGNATURE: Signature = match KIND {
        KIND_SRAT => Signature::SRAT,
        _ => Signature::SLIT,
    };

    fn header(&self) -> &SdtHeader {
        &self.header
    }
}

fn untyped_bytes<const KIND: u8>(
    tables: &AcpiTables<DirectMapHandler>,
) -> Result<Option<&'static [u8]>, AcpiError> {
    let mapping = match tables.find_table::<Untyped<KIND>>() {
        Ok(m) => m,
        Err(AcpiError::TableMissing(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let length = { mapping.get().header.length } as usize;
    let pa = PhysAddr(mapping.physical_start() as u64);
    // SAFETY: the acpi crate validated the table's signature and checksum over `length`
    // bytes at `pa`; firmware tables are never written.
    Ok(Some(unsafe { physmem::bytes(pa, length) }))
}

impl FirmwareTables {
    /// The bytes of `table` (header included), or `None` when the firmware has none.
    pub fn raw_table(&self, table: RawTable) -> Result<Option<&'static [u8]>, AcpiError> {
        match table {
            RawTable::Srat => untyped_bytes::<KIND_SRAT>(&self.tables),
            RawTable::Slit => untyped_bytes::<KIND_SLIT>(&self.tables),
        }
    }
}
