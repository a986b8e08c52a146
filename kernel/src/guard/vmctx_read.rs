//! Reading a VM context from the fault path, after checking it is mapped.

use atoll_kcore::addr::VirtAddr;
use atoll_pae::vmctx::off;

use crate::mem::vm;

/// The memory base and trap exit of the VM context at `vmctx` (what `r14` holds in generated
/// code), if both fields are mapped.
pub fn base_and_trap_exit(vmctx: u64) -> Option<(u64, u64)> {
    let field = |o: i32| vmctx.checked_add(o as u64).filter(|a| a % 8 == 0);
    let (base_at, exit_at) = (field(off::MEMORY_BASE)?, field(off::TRAP_EXIT)?);
    if vm::translate(VirtAddr(base_at)).is_none() || vm::translate(VirtAddr(exit_at)).is_none() {
        return None;
    }
    // SAFETY: both addresses are 8-aligned (so each 8-byte read stays in one page) and mapped,
    // just checked; volatile reads of plain words, nothing is written. The values are only
    // compared and used as a resume address after further checks.
    unsafe {
        Some((
            core::ptr::read_volatile(base_at as *const u64),
            core::ptr::read_volatile(exit_at as *const u64),
        ))
    }
}
