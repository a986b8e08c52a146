//! Memory probes that survive a fault: a read, a write, or a call that faults returns an error
//! instead of taking the kernel down. The exception hook recognizes a fault by the faulting
//! instruction's address (a fixed table, as Linux's exception tables do), so probes need no
//! per-core state and work on any core.

use core::arch::global_asm;

use super::trap::TrapFrame;

global_asm!(
    ".section .text.atoll_probe, \"ax\"",
    ".global atoll_probe_read",
    "atoll_probe_read:",
    "    xor eax, eax",
    ".global atoll_probe_read_insn",
    "atoll_probe_read_insn:",
    "    mov al, byte ptr [rdi]",
    "    ret",
    ".global atoll_probe_write",
    "atoll_probe_write:",
    ".global atoll_probe_write_insn",
    "atoll_probe_write_insn:",
    "    mov byte ptr [rdi], sil",
    "    xor eax, eax",
    "    ret",
    ".global atoll_probe_call",
    "atoll_probe_call:",
    "    call rdi",
    ".global atoll_probe_call_ret",
    "atoll_probe_call_ret:",
    "    ret",
    ".global atoll_probe_fault",
    "atoll_probe_fault:",
    "    mov rax, -1",
    "    ret",
);

unsafe extern "C" {
    fn atoll_probe_read(addr: u64) -> i64;
    fn atoll_probe_write(addr: u64, value: u8) -> i64;
    fn atoll_probe_call(addr: u64) -> i64;
    static atoll_probe_read_insn: u8;
    static atoll_probe_write_insn: u8;
    static atoll_probe_call_ret: u8;
    static atoll_probe_fault: u8;
}

fn label(sym: *const u8) -> u64 {
    sym as u64
}

/// The access faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faulted;

/// Reads one byte at `addr`, or reports that the read faulted.
///
/// # Safety
/// Reading `addr` must have no side effect (not device memory).
pub unsafe fn read_u8(addr: u64) -> Result<u8, Faulted> {
    // SAFETY: the probe routine touches only `addr`; a fault is fixed up by `fixup`.
    let v = unsafe { atoll_probe_read(addr) };
    u8::try_from(v).map_err(|_| Faulted)
}

/// Writes one byte at `addr`, or reports that the write faulted.
///
/// # Safety
/// If `addr` is mapped writable, the caller must own the byte there.
pub unsafe fn write_u8(addr: u64, value: u8) -> Result<(), Faulted> {
    // SAFETY: forwarded to the caller; a fault is fixed up by `fixup`.
    let v = unsafe { atoll_probe_write(addr, value) };
    if v == 0 { Ok(()) } else { Err(Faulted) }
}

/// Calls the code at `addr` (a function taking nothing and returning a small non-negative value
/// in RAX), or reports that fetching its first instruction faulted.
///
/// # Safety
/// If `addr` is executable, the code there must be such a function.
pub unsafe fn call(addr: u64) -> Result<u64, Faulted> {
    // SAFETY: forwarded to the caller; a fetch fault at `addr` is fixed up by `fixup`.
    let v = unsafe { atoll_probe_call(addr) };
    u64::try_from(v).map_err(|_| Faulted)
}

const PAGE_FAULT: u64 = 14;
const GENERAL_PROTECTION: u64 = 13;
const PF_INSTRUCTION_FETCH: u64 = 1 << 4;

/// The exception hook: if the fault came from a probe, resume at the probe's failure return.
pub fn fixup(frame: &mut TrapFrame) -> bool {
    if frame.vector != PAGE_FAULT && frame.vector != GENERAL_PROTECTION {
        return false;
    }
    let (read, write, call_ret, fault) = (
        label(core::ptr::addr_of!(atoll_probe_read_insn)),
        label(core::ptr::addr_of!(atoll_probe_write_insn)),
        label(core::ptr::addr_of!(atoll_probe_call_ret)),
        label(core::ptr::addr_of!(atoll_probe_fault)),
    );
    if frame.rip == read || frame.rip == write {
        frame.rip = fault;
        return true;
    }
    if frame.vector == PAGE_FAULT && frame.error_code & PF_INSTRUCTION_FETCH != 0 {
        // SAFETY: a fetch fault at a call target leaves the kernel stack as the call left it:
        // RSP points at the pushed return address, which is readable kernel stack.
        let ret = unsafe { (frame.rsp as *const u64).read() };
        if ret == call_ret {
            frame.rsp += 8;
            frame.rip = fault;
            return true;
        }
    }
    false
}
