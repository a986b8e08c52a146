//! What the bootloader hands over, turned into typed facts: the ramdisk as bytes and the RSDP.
//!
//! The `BootInfo` the entry point receives is trusted: the bootloader mapped what it describes
//! for the kernel for good.

use atoll_kcore::addr::PhysAddr;
use bootloader_api::BootInfo;

use super::acpi_tables::Rsdp;

/// The ramdisk (the chunk image) the bootloader loaded, if it loaded one.
pub fn ramdisk(info: &BootInfo) -> Option<&'static [u8]> {
    let addr = info.ramdisk_addr.into_option()?;
    let len = usize::try_from(info.ramdisk_len).ok()?;
    // SAFETY: the bootloader mapped `len` bytes at `addr` for the kernel for good, and nothing
    // writes them (the mapping is read by convention: the kernel never writes the ramdisk).
    Some(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
}

/// The RSDP the bootloader found, if it found one.
pub fn rsdp(info: &BootInfo) -> Option<Rsdp> {
    let addr = info.rsdp_addr.into_option()?;
    // SAFETY: the bootloader reports the firmware's RSDP address.
    Some(unsafe { Rsdp::new(PhysAddr(addr)) })
}
