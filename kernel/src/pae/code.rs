//! Executable pages for generated code: written through a read-write mapping, then switched to
//! read-execute (never both), with every core's TLB flushed by the VM API before use.
//!
//! This is code injection, so the module may use `unsafe`: it copies the generated code into
//! the pages it just mapped, reads it back, and vouches to the runtime (`CodeMemory`) that the
//! pages hold exactly the compiled module's code.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::AtomicUsize;

use atoll_kcore::addr::{PageSize, SIZE_4K, VirtAddr};
use atoll_kcore::paging::Protection;
use atoll_pae::runtime::CodeMemory;

use crate::mem::vm::VmError;
use crate::mem::{frames, vm};

/// A module's code, mapped read-execute in the kernel's region, with one address cell per
/// function: where the entry trampoline finds the function now (islands move functions; see
/// `crate::island`).
#[derive(Debug)]
pub struct KernelCode {
    base: VirtAddr,
    pages: usize,
    len: usize,
    func_cells: Box<[AtomicUsize]>,
    /// Functions assembled lazily since (see `super::lazy`).
    pub(super) lazy: spin::Mutex<super::lazy::LazyCode>,
}

impl KernelCode {
    /// Copies `code` into fresh pages and maps them read-execute; function `i` starts at
    /// `func_offsets[i]`.
    pub fn new(code: &[u8], func_offsets: &[u32]) -> Result<Self, VmError> {
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
                func_cells: func_offsets
                    .iter()
                    .map(|&o| AtomicUsize::new(base.0 as usize + o as usize))
                    .collect(),
                lazy: spin::Mutex::new(super::lazy::LazyCode::new(func_offsets.len())),
            }),
            Err(e) => {
                // The pages mapped so far are the first `mapped.len()` from `base`.
                let _ = vm::unmap_free_4k_range(base, mapped.len() as u64);
                Err(e)
            }
        }
    }

    /// The code's address.
    pub fn base(&self) -> u64 {
        self.base.0
    }

    /// The cell holding function `index`'s current address. Written only by the relocation
    /// engine while the world is stopped, always with the address of an executable copy of
    /// the function.
    pub fn func_cell(&self, index: u32) -> Option<&AtomicUsize> {
        self.func_cells.get(index as usize)
    }

    /// Bytes of the pages mapped for functions assembled lazily.
    pub fn lazy_pages_bytes(&self) -> u64 {
        self.lazy.lock().pages_bytes()
    }

    /// Code bytes: the module's and every lazily assembled function's.
    pub fn code_bytes(&self) -> usize {
        self.len + self.lazy.lock().bytes()
    }

    /// The code as bytes (readable: R-X).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes at `base` are mapped readable for as long as `self` lives.
        unsafe { core::slice::from_raw_parts(self.base.0 as *const u8, self.len) }
    }
}

impl Drop for KernelCode {
    fn drop(&mut self) {
        let _ = vm::unmap_free_4k_range(self.base, self.pages as u64);
    }
}

/// A shared handle on a module's code, one per instance.
#[derive(Debug, Clone)]
pub struct SharedCode(pub alloc::sync::Arc<KernelCode>);

// SAFETY: `KernelCode::new` copies exactly the compiled module's code and maps it read-execute,
// not writable; the Arc keeps the mapping alive as long as any instance holds it.
// The function cells start at the module's own functions and are rewritten only by the
// relocation engine, with the world stopped, to a relocated copy it mapped read-execute, and
// once per lazily assembled function by `lazy::assemble_function`, to exactly the code
// `atoll_pae::lazy::assemble` returned, mapped read-execute and kept as long as the code.
unsafe impl CodeMemory for SharedCode {
    fn base(&self) -> usize {
        self.0.base() as usize
    }

    fn func_cell(&self, index: u32) -> Option<&AtomicUsize> {
        self.0.func_cell(index)
    }

    fn assemble_lazy(
        &self,
        module: &atoll_pae::CompiledModule,
        index: u32,
    ) -> Result<(), atoll_pae::CompileError> {
        super::lazy::assemble_function(&self.0, module, index)
    }
}
