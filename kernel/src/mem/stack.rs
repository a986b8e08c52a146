//! Kernel stacks in the kernel's virtual region, each with an unmapped guard page below it so
//! an overflow faults instead of corrupting a neighbour.
//!
//! [`alloc_with`] lends a fresh stack's memory as a byte slice before anyone runs on it (a new
//! thread's first frame is written there), which is this module's one `unsafe`.

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

/// Allocates a stack like [`alloc`] and lets `init` write its memory (`[bottom, top)`) before
/// anything runs on it; returns the stack and what `init` returned.
pub fn alloc_with<R>(
    bytes: u64,
    init: impl FnOnce(&mut [u8]) -> R,
) -> Result<(KernelStack, R), VmError> {
    let stack = alloc(bytes)?;
    // SAFETY: `[bottom, top)` was just mapped read-write for this stack, and nothing else knows
    // the stack yet: the slice is the only access to that memory while `init` runs.
    let memory = unsafe {
        core::slice::from_raw_parts_mut(
            stack.bottom as *mut u8,
            (stack.top - stack.bottom) as usize,
        )
    };
    let result = init(memory);
    Ok((stack, result))
}

/// Unmaps a stack and frees its frames (its virtual range is not reused).
pub fn free(stack: KernelStack) -> Result<(), VmError> {
    vm::unmap_free_4k_range(VirtAddr(stack.bottom), (stack.top - stack.bottom) / PAGE)
}
