//! Sandboxing linear memory through the page tables (guard-page mode, `docs/guard-pages.md`).
//!
//! With the mode on, chunks are compiled with `Options::guard_pages` (no bounds checks) and
//! every memory they define is a `snap::paged::PagedMemory`: 8 GiB + 64 KiB of reserved address
//! space from its base, of which only pages inside its size are ever mapped. Any access of
//! generated code lies inside that reservation (`zext(index) + offset + 16 < 2^33 + 64 KiB`), so
//! an access past the end faults. [`on_fault`] turns such a fault into the wasm out-of-bounds
//! trap of the task that made it, and only such a fault: the faulting instruction is generated
//! code (an executable page of the kernel's region, `vm::is_generated_code`; islands move code
//! only inside that region), the address lies in a paged memory's reservation past its size,
//! `r15` (the memory base register of generated code) is that memory's base, and the VM context
//! in `r14` names the same base. It then resumes at the context's trap exit with the trap code
//! in `eax`, exactly where a trap stub would have jumped: the trampoline unwinds every wasm frame
//! and the task ends with the trap. Anything else is left to the fault report.
//!
//! The fault path takes no lock of its own and allocates nothing (the paged-memory lookup takes
//! the regions lock with interrupts off, as demand paging does).

#[allow(unsafe_code)]
mod vmctx_read;

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use atoll_pae::TrapCode;

use crate::arch::trap::TrapFrame;
use crate::mem::vm;
use crate::snap::paged::Fault;

/// Whether chunks are compiled for guard pages (the default: measured faster, see
/// `docs/benchmarks.md`).
static ENABLED: AtomicBool = AtomicBool::new(true);
/// Out-of-bounds accesses turned into traps by the fault path since boot.
static TRAPS: AtomicU64 = AtomicU64::new(0);
/// Faults in paged memories past their size that were not turned into traps (not from
/// generated code, or registers that did not match).
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Whether new compilations use guard pages.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Chooses the mode for chunks assembled from now on (already assembled code keeps its own
/// mode, and its instances get the memory that mode needs).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Out-of-bounds traps delivered through page faults, and refused faults, since boot.
pub fn counts() -> (u64, u64) {
    (
        TRAPS.load(Ordering::Relaxed),
        REFUSED.load(Ordering::Relaxed),
    )
}

/// The page-fault path of the exception hook, after demand paging: `fault` is what the
/// paged memories made of it. Returns whether the fault was handled (the frame now resumes at
/// the trap exit).
pub fn on_fault(frame: &mut TrapFrame, fault: Fault) -> bool {
    let Fault::OutOfBounds { base } = fault else {
        return false;
    };
    if frame.r15 != base || !vm::is_generated_code(frame.rip) {
        REFUSED.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    let Some((memory_base, trap_exit)) = vmctx_read::base_and_trap_exit(frame.r14) else {
        REFUSED.fetch_add(1, Ordering::Relaxed);
        return false;
    };
    if memory_base != base || !vm::is_generated_code(trap_exit) {
        REFUSED.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    frame.rax = TrapCode::MemoryOutOfBounds as u64;
    frame.rip = trap_exit;
    TRAPS.fetch_add(1, Ordering::Relaxed);
    true
}

/// Counts the explicit bounds checks in generated code: compares against the VM context's
/// memory size (`cmp r64, [r14 + memory_size]`), the instruction every check has and nothing
/// else emits. Zero for code compiled for guard pages.
pub fn bounds_checks(code: &[u8]) -> u64 {
    use iced_x86::{Decoder, DecoderOptions, Mnemonic, OpKind, Register};
    let mut decoder = Decoder::new(64, code, DecoderOptions::NONE);
    let mut n = 0;
    for insn in &mut decoder {
        if insn.mnemonic() == Mnemonic::Cmp
            && insn.op_count() == 2
            && insn.op1_kind() == OpKind::Memory
            && insn.memory_base() == Register::R14
            && insn.memory_index() == Register::None
            && insn.memory_displacement64() == atoll_pae::vmctx::off::MEMORY_SIZE as u64
        {
            n += 1;
        }
    }
    n
}
