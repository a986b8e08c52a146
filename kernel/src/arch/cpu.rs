//! CPU primitives: time-stamp counter, control registers, MSRs, interrupts flag, halting.

use core::arch::asm;

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: rdtsc only reads a counter.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Reads CR0.
pub fn cr0() -> u64 {
    let v: u64;
    // SAFETY: reading a control register has no side effect.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Reads CR2, the faulting address of the last page fault.
pub fn cr2() -> u64 {
    let v: u64;
    // SAFETY: reading a control register has no side effect.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Reads CR3, the physical address of the current PML4 (plus flag bits).
pub fn cr3() -> u64 {
    let v: u64;
    // SAFETY: reading a control register has no side effect.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Reads CR4.
pub fn cr4() -> u64 {
    let v: u64;
    // SAFETY: reading a control register has no side effect.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Model-specific registers atoll uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Msr {
    /// The GS segment base: per-core data.
    GsBase = 0xc000_0101,
    /// IA32_APIC_BASE: the local APIC's physical base and enable bits.
    ApicBase = 0x1b,
}

/// Reads an MSR.
pub fn rdmsr(msr: Msr) -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: every `Msr` variant exists on x86-64 processors; reading it has no side effect.
    unsafe {
        asm!("rdmsr", in("ecx") msr as u32, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes an MSR.
///
/// # Safety
/// The value must keep the machine in a state the kernel expects (e.g. GS base pointing at this
/// core's data).
pub unsafe fn wrmsr(msr: Msr, value: u64) {
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr as u32, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags));
    }
}

/// Flushes one page's translation from this core's TLB.
pub fn invlpg(addr: u64) {
    // SAFETY: invalidating a TLB entry never breaks memory safety; at worst it costs a walk.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) };
}

/// Enables maskable interrupts.
pub fn enable_interrupts() {
    // SAFETY: the IDT is loaded before any caller enables interrupts.
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// Disables maskable interrupts; returns whether they were enabled.
pub fn disable_interrupts() -> bool {
    let flags: u64;
    // SAFETY: reading RFLAGS and clearing IF has no memory effect.
    unsafe { asm!("pushfq", "pop {}", "cli", out(reg) flags, options(nomem)) };
    flags & (1 << 9) != 0
}

/// Runs `f` with maskable interrupts off, restoring the previous state.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    let was = disable_interrupts();
    let r = f();
    if was {
        enable_interrupts();
    }
    r
}

/// Waits for the next interrupt.
pub fn halt() {
    // SAFETY: hlt only waits.
    unsafe { asm!("hlt", options(nomem, nostack, preserves_flags)) };
}

/// Stops this core for good: interrupts off, halt forever (NMIs wake it, and it halts again).
pub fn halt_forever() -> ! {
    disable_interrupts();
    loop {
        halt();
    }
}

/// Reads the current frame pointer.
#[inline(always)]
pub fn frame_pointer() -> u64 {
    let v: u64;
    // SAFETY: copying RBP has no side effect.
    unsafe { asm!("mov {}, rbp", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// CPUID leaf `leaf`, subleaf `sub`: (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// This core's initial APIC id (CPUID leaf 1).
pub fn initial_apic_id() -> u32 {
    cpuid(1, 0).1 >> 24
}

/// Flushes every non-global translation from this core's TLB (reloads CR3).
pub fn flush_tlb() {
    // SAFETY: writing CR3 back with its own value changes no mapping; it only drops cached
    // translations.
    unsafe {
        asm!("mov {tmp}, cr3", "mov cr3, {tmp}", tmp = out(reg) _, options(nostack, preserves_flags))
    };
}

/// Serializes the instruction stream (CPUID is architecturally serializing): code written by
/// another core is fetched afresh after this.
pub fn serialize() {
    let _ = cpuid(0, 0);
}

/// Reads an MSR by index (register families such as the x2APIC's 0x800.. range).
pub fn rdmsr_index(index: u32) -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: callers pass indexes of MSRs that exist in the current mode (x2APIC registers
    // once x2APIC is enabled); reads have no side effect.
    unsafe {
        asm!("rdmsr", in("ecx") index, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes an MSR by index.
///
/// # Safety
/// The MSR must exist and the value must keep the machine in a state the kernel expects.
pub unsafe fn wrmsr_index(index: u32, value: u64) {
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!("wrmsr", in("ecx") index, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags));
    }
}

/// Writes CR4.
///
/// # Safety
/// The value must keep paging and the kernel's features working (copy the boot core's CR4).
pub unsafe fn write_cr4(value: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { asm!("mov cr4, {}", in(reg) value, options(nostack, preserves_flags)) };
}

/// CR0.MP: WAIT/FWAIT honour TS.
const CR0_MP: u64 = 1 << 1;
/// CR0.EM: x87/SSE instructions fault.
const CR0_EM: u64 = 1 << 2;
/// CR4.OSFXSR: the OS saves SSE state with fxsave/fxrstor (enables SSE).
const CR4_OSFXSR: u64 = 1 << 9;
/// CR4.OSXMMEXCPT: unmasked SIMD float exceptions raise #XM.
const CR4_OSXMMEXCPT: u64 = 1 << 10;
/// MXCSR as WebAssembly needs it: round to nearest, every exception masked.
const MXCSR_WASM: u32 = 0x1f80;

/// Enables SSE on this core (generated code uses it; the kernel itself is soft-float).
pub fn enable_sse() {
    let cr0 = (cr0() & !CR0_EM) | CR0_MP;
    // SAFETY: clearing EM and setting MP/OSFXSR/OSXMMEXCPT only enables SSE instructions; the
    // kernel never uses them itself, and threads that do get their state saved on switches.
    unsafe {
        asm!("mov cr0, {}", in(reg) cr0, options(nostack, preserves_flags));
        write_cr4(cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT);
    }
}

/// Resets x87/SSE state to what WebAssembly code expects (round to nearest, exceptions
/// masked, registers cleared of the previous owner's values).
pub fn reset_fpu_state() {
    let mxcsr = MXCSR_WASM;
    // SAFETY: SSE is enabled on every core; these only touch FPU/SSE registers.
    unsafe {
        asm!(
            "fninit",
            "ldmxcsr [{m}]",
            "xorps xmm0, xmm0", "xorps xmm1, xmm1", "xorps xmm2, xmm2", "xorps xmm3, xmm3",
            "xorps xmm4, xmm4", "xorps xmm5, xmm5", "xorps xmm6, xmm6", "xorps xmm7, xmm7",
            "xorps xmm8, xmm8", "xorps xmm9, xmm9", "xorps xmm10, xmm10", "xorps xmm11, xmm11",
            "xorps xmm12, xmm12", "xorps xmm13, xmm13", "xorps xmm14, xmm14", "xorps xmm15, xmm15",
            m = in(reg) &mxcsr,
            options(nostack)
        );
    }
}

/// Saves x87/SSE state into `area` (512 bytes, 16-byte aligned).
///
/// # Safety
/// `area` must point at 512 writable bytes aligned to 16, and SSE must be enabled.
pub unsafe fn fxsave(area: *mut u8) {
    // SAFETY: forwarded to the caller.
    unsafe { asm!("fxsave64 [{}]", in(reg) area, options(nostack, preserves_flags)) };
}

/// Restores x87/SSE state from `area`.
///
/// # Safety
/// `area` must hold state written by [`fxsave`], aligned to 16, and SSE must be enabled.
pub unsafe fn fxrstor(area: *const u8) {
    // SAFETY: forwarded to the caller.
    unsafe { asm!("fxrstor64 [{}]", in(reg) area, options(nostack, preserves_flags)) };
}
