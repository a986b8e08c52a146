//! Kernel stacks in the kernel's virtual region, each with an unmapped guard page below it so
//! an overflow faults instead of corrupting a neighbour.

use atoll_kcore::addr::{PageSize, VirtAddr};
use atoll_kcore::paging::Protection;

use super::{frames, vm};
use crate::mem::vm::VmError;

const PAGE: u64 = 4096;

/// A mapped stack: `[bottom, top)` is mapped, the page below `bottom` is the guard.
#[derive(Debug, Clone, Copy)]
pub struct KernelStack {
    /// Lowest mapped address.
    pub bottom: u64,
    /// One past the highest mapped address (16-byte aligned).
    pub top: u64,
}

/// Allocates a stack of `bytes` (rounded up to pages) plus its guard page.
pub fn alloc(bytes: u64) -> Result<KernelStack, VmError> {
    let pages = bytes.div_ceil(PAGE);
    let base = vm::reserve((pages + 1) * PAGE, PAGE)?;
    let bottom = base.0 + PAGE;
    for i in 0..pages {
        let pa = frames::alloc(PageSize::Size4K).ok_or(VmError::OutOfFrames)?;
        vm::map(
            VirtAddr(bottom + i * PAGE),
            pa,
            PageSize::Size4K,
            Protection::READ_WRITE,
        )?;
    }
    Ok(KernelStack {
        bottom,
        top: bottom + pages * PAGE,
    })
}

/// Unmaps a stack and frees its frames (its virtual range is not reused).
pub fn free(stack: KernelStack) -> Result<(), VmError> {
    vm::unmap_free_4k_range(VirtAddr(stack.bottom), (stack.top - stack.bottom) / PAGE)
}
