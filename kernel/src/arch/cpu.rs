//! CPU primitives: time-stamp counter, control registers, MSRs, the interrupt flag, halting,
//! TLB flushes and CPUID, through the `x86_64` crate's register and instruction types.
//!
//! Hand-written here, because the crate has no equivalent: reading RBP (backtraces) and the
//! final triple fault of a reset.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use atoll_kcore::addr::PhysAddr;
use x86_64::instructions::tables::lidt;
use x86_64::instructions::{interrupts, tlb};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr2, Cr3, Cr4, Cr4Flags};
use x86_64::registers::model_specific::Msr;
use x86_64::structures::DescriptorTablePointer;

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` only reads a counter (CR4.TSD is clear in ring 0).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Reads CR0.
pub fn cr0() -> u64 {
    Cr0::read_raw()
}

/// Reads CR2, the faulting address of the last page fault.
pub fn cr2() -> u64 {
    Cr2::read_raw()
}

/// Reads CR3 as it is: the root table's physical address plus the flag bits.
pub fn cr3() -> u64 {
    let (root, flags) = Cr3::read_raw();
    root.start_address().as_u64() | u64::from(flags)
}

/// The physical address of the current page-table root (CR3 without its flag bits).
pub fn page_table_root() -> PhysAddr {
    PhysAddr(Cr3::read().0.start_address().as_u64())
}

/// Reads CR4.
pub fn cr4() -> u64 {
    Cr4::read_raw()
}

/// Reads the x2APIC register MSR `index` (0x800..0x8ff).
pub(super) fn read_x2apic_msr(index: u32) -> u64 {
    debug_assert!((0x800..0x900).contains(&index));
    // SAFETY: only called once x2APIC mode is on, where 0x800..0x8ff are the local APIC's
    // registers; reading them has no side effect on memory.
    unsafe { Msr::new(index).read() }
}

/// Writes the x2APIC register MSR `index` (0x800..0x8ff).
pub(super) fn write_x2apic_msr(index: u32, value: u64) {
    debug_assert!((0x800..0x900).contains(&index));
    // SAFETY: as for `read_x2apic_msr`; APIC registers control interrupts, not memory.
    unsafe { Msr::new(index).write(value) }
}

/// Flushes one page's translation from this core's TLB.
pub fn invlpg(addr: u64) {
    tlb::flush(x86_64::VirtAddr::new_truncate(addr));
}

/// Enables maskable interrupts. The IDT is loaded before any caller enables them.
pub fn enable_interrupts() {
    interrupts::enable();
}

/// Disables maskable interrupts; returns whether they were enabled.
pub fn disable_interrupts() -> bool {
    let was = interrupts::are_enabled();
    interrupts::disable();
    was
}

/// Runs `f` with maskable interrupts off, restoring the previous state.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    interrupts::without_interrupts(f)
}

/// Waits for the next interrupt.
pub fn halt() {
    x86_64::instructions::hlt();
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
    tlb::flush_all();
}

/// Serializes the instruction stream (CPUID is architecturally serializing): code written by
/// another core is fetched afresh after this.
pub fn serialize() {
    let _ = cpuid(0, 0);
}

/// The boot core's CR4, recorded for the application processors (0: not recorded).
static BOOT_CR4: AtomicU64 = AtomicU64::new(0);

/// Records this (the boot) core's CR4 so the other cores can adopt its features. Call before
/// starting them.
pub fn record_boot_core_features() {
    BOOT_CR4.store(Cr4::read_raw(), Ordering::Release);
}

/// Gives this core the boot core's CR4 (paging extensions, global pages, ...), as recorded by
/// [`record_boot_core_features`]. Does nothing if none was recorded.
pub fn adopt_boot_core_features() {
    let cr4 = BOOT_CR4.load(Ordering::Acquire);
    if cr4 == 0 {
        return;
    }
    // SAFETY: the boot core runs on the same page tables with this CR4; the trampoline has
    // already set PAE, which the value keeps, so paging goes on exactly as it does there.
    unsafe { Cr4::write_raw(cr4) };
}

/// Enables SSE on this core (generated code uses it; the kernel itself is soft-float).
pub fn enable_sse() {
    // SAFETY: clearing EM and setting MP/OSFXSR/OSXMMEXCPT only enables SSE instructions; the
    // kernel never uses them itself, and threads that do get their state saved on switches.
    unsafe {
        Cr0::update(|f| {
            f.remove(Cr0Flags::EMULATE_COPROCESSOR);
            f.insert(Cr0Flags::MONITOR_COPROCESSOR);
        });
        Cr4::update(|f| f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
    }
}

/// Resets the machine the hard way: loads an empty IDT and raises an exception, which the CPU
/// cannot deliver (a triple fault). The last resort of a reset.
pub fn triple_fault() -> ! {
    let empty = DescriptorTablePointer {
        limit: 0,
        base: x86_64::VirtAddr::zero(),
    };
    // SAFETY: with interrupts off, no gate is used before the `int3`, whose delivery then fails
    // into the reset the caller asked for.
    unsafe {
        disable_interrupts();
        lidt(&empty);
        asm!("int3", options(noreturn));
    }
}

/// Whether the processor has RDRAND (CPUID.01H:ECX bit 30).
pub fn has_rdrand() -> bool {
    // CPUID leaf 1 exists on every x86-64 processor and only reads identification.
    let leaf1 = core::arch::x86_64::__cpuid(1);
    leaf1.ecx & (1 << 30) != 0
}

/// A hardware random number from RDRAND, or `None` if the processor has none or did not
/// deliver one after a few retries.
pub fn rdrand64() -> Option<u64> {
    if !has_rdrand() {
        return None;
    }
    for _ in 0..10 {
        let mut v = 0u64;
        // SAFETY: the processor supports RDRAND (checked above); it only writes `v`.
        if unsafe { rdrand_step(&mut v) } == 1 {
            return Some(v);
        }
    }
    None
}

/// # Safety
/// The processor must support RDRAND.
#[target_feature(enable = "rdrand")]
unsafe fn rdrand_step(v: &mut u64) -> i32 {
    core::arch::x86_64::_rdrand64_step(v)
}
