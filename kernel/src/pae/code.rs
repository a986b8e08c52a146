//! Executable pages for generated code: written through a read-write mapping, then switched to
//! read-execute (never both), with every core's TLB flushed by the VM API before use.
//!
//! This is code injection, so the module may use `unsafe`: it copies the generated code into
//! the pages it just mapped, reads it back, and vouches to the runtime (`CodeMemory`) that the
//! pages hold exactly the compiled module's code.

use alloc::vec::Vec;

use atoll_kcore::addr::{PageSize, SIZE_4K, VirtAddr};
use atoll_kcore::paging::Protection;
use atoll_pae::runtime::CodeMemory;

use crate::mem::vm::VmError;
use crate::mem::{frames, vm};

/// A module's code, mapped read-execute in the kernel's region.
#[derive(Debug)]
pub struct KernelCode {
    base: VirtAddr,
    pages: usize,
    len: usize,
}

impl KernelCode {
    /// Copies `code` into fresh pages and maps them read-execute.
    pub fn new(code: &[u8]) -> Result<Self, VmError> {
        let pages = code.len().div_ceil(SIZE_4K as usize).max(1);
        let base = vm::reserve(pages as u64 * SIZE_4K, SIZE_4K)?;
        let mut mapped: Vec<VirtAddr> = Vec::with_capacity(pages);
        let result = (|| {
            for i in 0..pages {
                let va = VirtAddr(base.0 + i as u64 * SIZE_4K);
                let pa = frames::alloc(PageSize::Size4K).ok_or(VmError::OutOfFrames)?;
                if let Err(e) = vm::map(va, pa, PageSize::Size4K, Protection::READ_WRITE) {
                    let _ = frames::free(pa, PageSize::Size4K);
                    return Err(e);
                }
                mapped.push(va);
            }
            // SAFETY: the whole range was just mapped read-write and belongs to us.
            unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), base.0 as *mut u8, code.len()) };
            for va in &mapped {
                vm::protect(*va, PageSize::Size4K, Protection::READ_EXEC)?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(Self {
                base,
                pages,
                len: code.len(),
            }),
            Err(e) => {
                for va in mapped {
                    let _ = vm::unmap_free(va, PageSize::Size4K);
                }
                Err(e)
            }
        }
    }

    /// The code's address.
    pub fn base(&self) -> u64 {
        self.base.0
    }

    /// The code as bytes (readable: R-X).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes at `base` are mapped readable for as long as `self` lives.
        unsafe { core::slice::from_raw_parts(self.base.0 as *const u8, self.len) }
    }
}

impl Drop for KernelCode {
    fn drop(&mut self) {
        for i in 0..self.pages {
            let _ = vm::unmap_free(VirtAddr(self.base.0 + i as u64 * SIZE_4K), PageSize::Size4K);
        }
    }
}

/// A shared handle on a module's code, one per instance.
#[derive(Debug, Clone)]
pub struct SharedCode(pub alloc::sync::Arc<KernelCode>);

// SAFETY: `KernelCode::new` copies exactly the compiled module's code and maps it read-execute,
// not writable; the Arc keeps the mapping alive as long as any instance holds it.
unsafe impl CodeMemory for SharedCode {
    fn base(&self) -> usize {
        self.0.base() as usize
    }
}
