//! The interrupt vectors atoll assigns (exceptions use 0..32).

/// Named vectors above the exceptions. Higher vectors have higher APIC priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Vector {
    /// COM1 receive, routed through the I/O APIC.
    Serial = 0x24,
    /// The PS/2 keyboard (IRQ 1), routed through the I/O APIC.
    Keyboard = 0x25,
    /// The local APIC timer: preemption and sleeper wake-ups.
    Timer = 0x30,
    /// Voluntary reschedule (`int`), so every switch goes through a trap frame.
    Yield = 0x31,
    /// IPI: reschedule now.
    Reschedule = 0x40,
    /// IPI: run the remote calls queued for this core.
    Call = 0x41,
    /// The APIC's spurious-interrupt vector (no EOI).
    Spurious = 0xff,
}

/// Enters the scheduler through the yield vector (a software interrupt pushes a trap frame
/// like any other, so a voluntary switch looks exactly like a preemption).
pub fn raise_yield() {
    // Hand-written: `x86_64`'s `software_interrupt` sits behind its `asm_const` feature.
    // SAFETY: the yield vector's gate exists and its handler returns to the next instruction
    // (now, or when this thread is next scheduled).
    unsafe { core::arch::asm!("int {v}", v = const Vector::Yield as u8) };
}
