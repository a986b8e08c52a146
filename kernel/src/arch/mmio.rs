//! Memory-mapped device registers: a register block is a `#[repr(C)]` struct laid out like the
//! device's registers, reached through the `volatile` crate (`map_field!` projects a field).
//! A [`RegisterBlock`] is unsafe to create (the creator vouches for the mapping) and safe to use.

use core::ptr::NonNull;

use atoll_kcore::addr::{PhysAddr, SIZE_4K, VirtAddr};
use volatile::VolatilePtr;

use super::physmem;

/// A 32-bit register at the start of a 16-byte slot, as APIC registers are laid out.
#[repr(C, align(16))]
#[derive(Debug, Clone, Copy)]
pub struct Reg32 {
    /// The register.
    pub value: u32,
}

const _: () = assert!(core::mem::size_of::<Reg32>() == 16);

/// Why a register block was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioError {
    /// The address is null or not aligned for the block.
    Misaligned(VirtAddr),
    /// The live page tables do not map this page of the block to the device's registers
    /// writable and non-executable.
    NotMapped(VirtAddr),
}

/// A device's registers, mapped (uncached) for the life of the kernel.
#[derive(Debug)]
pub struct RegisterBlock<T> {
    base: NonNull<T>,
}

// SAFETY: the block is device memory reached only through volatile accesses of single
// registers; any core may make them (each register access is one aligned load or store, and
// callers serialize multi-register sequences themselves).
unsafe impl<T> Send for RegisterBlock<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for RegisterBlock<T> {}

impl<T> RegisterBlock<T> {
    /// The registers at virtual address `base`.
    ///
    /// # Safety
    /// `base` must be the mapping of a device register block laid out as `T`, mapped uncached
    /// and never unmapped, and nothing else may treat that memory as ordinary memory.
    pub const unsafe fn new(base: NonNull<T>) -> Self {
        Self { base }
    }

    /// The registers of the device at physical `pa`, mapped at `va` (by the VM API, uncached).
    /// Checks first that the live page tables map every page of the block from `va` to `pa`,
    /// writable and not executable; device mappings are never unmapped.
    pub fn mapped(va: VirtAddr, pa: PhysAddr) -> Result<Self, MmioError> {
        let base = NonNull::new(va.0 as *mut T)
            .filter(|p| p.as_ptr().is_aligned())
            .ok_or(MmioError::Misaligned(va))?;
        let bytes = core::mem::size_of::<T>() as u64;
        let mut offset = 0;
        while offset < bytes {
            let page = VirtAddr(va.0 + offset);
            let ok = physmem::translate(page).is_some_and(|t| {
                t.phys == PhysAddr(pa.0 + offset) && t.protection.write && !t.protection.exec
            });
            if !ok {
                return Err(MmioError::NotMapped(page));
            }
            offset += SIZE_4K - (page.0 % SIZE_4K);
        }
        // SAFETY: checked above: `va` maps the device's registers, writable and not
        // executable (and uncached, as the VM API maps devices), for good.
        Ok(unsafe { Self::new(base) })
    }

    /// The registers, for volatile reads and writes.
    pub fn regs(&self) -> VolatilePtr<'_, T> {
        // SAFETY: `new`'s contract: `base` maps the registers for as long as `self` lives.
        unsafe { VolatilePtr::new(self.base) }
    }
}
