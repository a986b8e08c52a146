//! Faults raised on purpose, for the console's `fault` command: each function performs one
//! faulting operation so the kernel's exception report can be seen. All of them but
//! [`raise_breakpoint`] end in a report and a halted core.

use core::arch::asm;

/// The address [`raise_page_fault`] reads: canonical, never mapped.
const UNMAPPED_ADDR: u64 = 0x0dea_dbee_f000;
/// A non-canonical address: reading it raises #GP.
const NON_CANONICAL_ADDR: u64 = 0x8000_0000_0000_0000;

/// Reads an unmapped address: a page fault (#PF) with CR2 = 0xdeadbeef000. Returns what was
/// read, which never happens.
pub fn raise_page_fault() -> u64 {
    read_u64(UNMAPPED_ADDR)
}

/// Reads a non-canonical address: a general-protection fault (#GP). Returns what was read,
/// which never happens.
pub fn raise_general_protection() -> u64 {
    read_u64(NON_CANONICAL_ADDR)
}

fn read_u64(addr: u64) -> u64 {
    let value: u64;
    // SAFETY: reading these addresses faults before any memory is touched: nothing is mapped
    // at `UNMAPPED_ADDR`, and `NON_CANONICAL_ADDR` is no address at all. The exception report
    // halts the core, so the read never completes.
    unsafe {
        asm!("mov {v}, qword ptr [{a}]", a = in(reg) addr, v = out(reg) value, options(nostack, readonly))
    };
    value
}

/// Executes `ud2`: an invalid-opcode fault (#UD).
pub fn raise_invalid_opcode() {
    // SAFETY: ud2 raises #UD and touches nothing; the report halts the core.
    unsafe { asm!("ud2", options(nomem, nostack)) };
}

/// Divides by zero with `div`: a divide error (#DE).
pub fn raise_divide_error() {
    // SAFETY: the division faults before writing any register the compiler relies on (all
    // three are declared clobbered); the report halts the core.
    unsafe {
        asm!("xor edx, edx", "xor ecx, ecx", "mov eax, 1", "div ecx", out("eax") _, out("edx") _, out("ecx") _, options(nomem, nostack))
    };
}

/// Executes `int3`: a breakpoint (#BP), which the kernel reports and resumes from.
pub fn raise_breakpoint() {
    x86_64::instructions::interrupts::int3();
}
