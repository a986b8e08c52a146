//! ACPI tables read through the direct map: the `acpi` crate's handler, the tables the RSDP
//! leads to, and the DSDT's AML bytes.

use core::ptr::NonNull;

use acpi::{AcpiError, AcpiHandler, AcpiTables, PhysicalMapping};
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
