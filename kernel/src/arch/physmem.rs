//! The direct map: all physical memory mapped at a fixed offset by the bootloader. This is how
//! the kernel reads page tables, ACPI tables and the ramdisk.

use core::sync::atomic::{AtomicU64, Ordering};

use atoll_kcore::addr::{PhysAddr, VirtAddr};
use atoll_kcore::paging::{Mapper, PhysMem, Translation};

use super::cpu;

static OFFSET: AtomicU64 = AtomicU64::new(0);

/// Records where the bootloader mapped physical memory. Called once, before any other use.
pub fn init(offset: u64) {
    OFFSET.store(offset, Ordering::Release);
}

/// The virtual address at which physical address `pa` is mapped.
pub fn to_virt(pa: PhysAddr) -> VirtAddr {
    VirtAddr(OFFSET.load(Ordering::Acquire) + pa.0)
}

/// Physical memory as seen through the direct map, for the page-table mapper.
#[derive(Debug, Default)]
pub struct DirectMap;

impl PhysMem for DirectMap {
    fn read(&self, pa: PhysAddr) -> u64 {
        let ptr = to_virt(pa).0 as *const u64;
        // SAFETY: the direct map covers all physical memory and `pa` is 8-byte aligned (page
        // table entries); a volatile read keeps the access as written.
        unsafe { ptr.read_volatile() }
    }

    fn write(&mut self, pa: PhysAddr, value: u64) {
        let ptr = to_virt(pa).0 as *mut u64;
        // SAFETY: as for `read`; the mapper only writes page-table entries it owns.
        unsafe { ptr.write_volatile(value) }
    }
}

/// Where `va` leads in the live page tables (those CR3 points at), if it is mapped.
pub fn translate(va: VirtAddr) -> Option<Translation> {
    let mut mem = DirectMap;
    Mapper::new(&mut mem, cpu::page_table_root()).translate(va)
}

/// Borrows `len` bytes of physical memory starting at `pa` through the direct map.
///
/// # Safety
/// The range must be RAM or firmware tables that nothing writes while the slice lives.
pub unsafe fn bytes(pa: PhysAddr, len: usize) -> &'static [u8] {
    // SAFETY: forwarded to the caller; the direct map covers the range.
    unsafe { core::slice::from_raw_parts(to_virt(pa).0 as *const u8, len) }
}
