//! The application-processor trampoline: 16-bit real mode to 32-bit protected mode to 64-bit
//! long mode, copied to one page below 1 MiB and entered through a startup IPI.
//!
//! The code is position independent: it finds its page from CS (the SIPI sets CS to
//! page >> 4), so every absolute address it needs (the GDT base and the two far-jump targets)
//! is patched in by [`install`]. The parameter block at the end (`cr3`, `stack`, `entry`, `arg`)
//! is rewritten before each AP is started. See `docs/smp-bringup.md`.

use core::arch::global_asm;
use core::ptr::addr_of;

use atoll_kcore::addr::{PhysAddr, SIZE_4K, is_aligned};

use super::physmem;

global_asm!(
    r#"
    .section .rodata.atoll_ap_trampoline, "a"
    .balign 16
    .global atoll_tr_start
atoll_tr_start:
    .code16
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    xor %ebx, %ebx
    mov %ax, %bx
    shl $4, %ebx
    lgdtl (atoll_tr_gdtr - atoll_tr_start)
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl *(atoll_tr_pm32_ptr - atoll_tr_start)

    .code32
    .global atoll_tr_pm32
atoll_tr_pm32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov (atoll_tr_cr3 - atoll_tr_start)(%ebx), %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx
    rdmsr
    or $0x900, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80010000, %eax
    mov %eax, %cr0
    ljmpl *(atoll_tr_lm64_ptr - atoll_tr_start)(%ebx)

    .code64
    .global atoll_tr_lm64
atoll_tr_lm64:
    mov %ebx, %ebx
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov (atoll_tr_stack - atoll_tr_start)(%rbx), %rsp
    mov (atoll_tr_arg - atoll_tr_start)(%rbx), %rdi
    mov (atoll_tr_entry - atoll_tr_start)(%rbx), %rax
    push $0
    jmp *%rax

    .balign 8
    .global atoll_tr_gdt
atoll_tr_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00cf9a000000ffff
    .global atoll_tr_gdtr
atoll_tr_gdtr:
    .word 31
    .long 0
    .global atoll_tr_pm32_ptr
atoll_tr_pm32_ptr:
    .long 0
    .word 0x18
    .global atoll_tr_lm64_ptr
atoll_tr_lm64_ptr:
    .long 0
    .word 0x08
    .balign 8
    .global atoll_tr_cr3
atoll_tr_cr3:
    .quad 0
    .global atoll_tr_stack
atoll_tr_stack:
    .quad 0
    .global atoll_tr_entry
atoll_tr_entry:
    .quad 0
    .global atoll_tr_arg
atoll_tr_arg:
    .quad 0
    .global atoll_tr_end
atoll_tr_end:
    .text
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static atoll_tr_start: u8;
    static atoll_tr_pm32: u8;
    static atoll_tr_lm64: u8;
    static atoll_tr_gdt: u8;
    static atoll_tr_gdtr: u8;
    static atoll_tr_pm32_ptr: u8;
    static atoll_tr_lm64_ptr: u8;
    static atoll_tr_cr3: u8;
    static atoll_tr_stack: u8;
    static atoll_tr_entry: u8;
    static atoll_tr_arg: u8;
    static atoll_tr_end: u8;
}

/// Real mode reaches the first MiB: a SIPI vector is 8 bits of page number.
const REAL_MODE_LIMIT: u64 = 0x10_0000;

/// Offset of a trampoline label from its start.
fn off(label: *const u8) -> u64 {
    label as u64 - addr_of!(atoll_tr_start) as u64
}

/// Why the trampoline cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrampolineError {
    /// The page is not below 1 MiB (a SIPI vector is 8 bits of page number).
    PageTooHigh(u64),
    /// The page-table root is above 4 GiB, out of reach of the 32-bit stage's `mov cr3`.
    Cr3TooHigh(u64),
}

/// Writes a u64 into the trampoline page at `offset`.
fn poke(page: PhysAddr, offset: u64, value: u64, bytes: usize) {
    let va = physmem::to_virt(PhysAddr(page.0 + offset)).0;
    let src = value.to_le_bytes();
    for (i, b) in src.iter().take(bytes).enumerate() {
        // SAFETY: `page` is the trampoline frame, reserved for it below 1 MiB and reached
        // through the direct map; offsets are inside the copied code's parameter area.
        unsafe { ((va + i as u64) as *mut u8).write_volatile(*b) };
    }
}

/// Copies the trampoline into `page` (physical, below 1 MiB) and patches its absolute
/// addresses. The APs will use this core's page tables. Returns the SIPI vector of the page.
pub fn install(page: PhysAddr) -> Result<u8, TrampolineError> {
    if page.0 >= REAL_MODE_LIMIT || !is_aligned(page.0, SIZE_4K) {
        return Err(TrampolineError::PageTooHigh(page.0));
    }
    let cr3 = super::cpu::page_table_root().0;
    if cr3 > u64::from(u32::MAX) {
        return Err(TrampolineError::Cr3TooHigh(cr3));
    }
    let start = addr_of!(atoll_tr_start);
    let len = off(addr_of!(atoll_tr_end)) as usize;
    // SAFETY: the trampoline is `len` bytes of read-only data in the kernel image.
    let code = unsafe { core::slice::from_raw_parts(start, len) };
    for (i, b) in code.iter().enumerate() {
        poke(page, i as u64, u64::from(*b), 1);
    }
    let base = page.0;
    poke(
        page,
        off(addr_of!(atoll_tr_gdtr)) + 2,
        base + off(addr_of!(atoll_tr_gdt)),
        4,
    );
    poke(
        page,
        off(addr_of!(atoll_tr_pm32_ptr)),
        base + off(addr_of!(atoll_tr_pm32)),
        4,
    );
    poke(
        page,
        off(addr_of!(atoll_tr_lm64_ptr)),
        base + off(addr_of!(atoll_tr_lm64)),
        4,
    );
    poke(page, off(addr_of!(atoll_tr_cr3)), cr3, 8);
    Ok((page.0 / SIZE_4K) as u8)
}

/// Sets what the next AP started through `page` runs: `entry(arg)` on the stack `stack_top`.
pub fn set_params(page: PhysAddr, stack_top: u64, entry: extern "C" fn(u64) -> !, arg: u64) {
    poke(page, off(addr_of!(atoll_tr_stack)), stack_top, 8);
    poke(
        page,
        off(addr_of!(atoll_tr_entry)),
        entry as usize as u64,
        8,
    );
    poke(page, off(addr_of!(atoll_tr_arg)), arg, 8);
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
}
