//! x87/SSE register state: the `fxsave` area a thread keeps it in, and the clean state
//! WebAssembly code starts from. The kernel itself is soft-float, so only threads that run
//! generated code have an area (see `sched::use_fpu`).
//!
//! Inline assembly, because the `x86_64` crate has no `fxsave`/`fxrstor`/`ldmxcsr`, and the
//! kernel target has SSE disabled for Rust code.

use core::arch::asm;

/// MXCSR as WebAssembly needs it: round to nearest, every exception masked.
const MXCSR_WASM: u32 = 0x1f80;

/// One thread's x87/SSE state in `fxsave64` layout: 512 bytes, 16-byte aligned.
#[repr(C, align(16))]
#[derive(Debug)]
pub struct FxSaveArea([u8; 512]);

impl FxSaveArea {
    /// An area holding the clean state ([`reset_state`]); leaves this core's registers in that
    /// state too.
    pub fn clean() -> Self {
        let mut area = Self([0; 512]);
        reset_state();
        area.save();
        area
    }

    /// Saves this core's x87/SSE registers into the area.
    pub fn save(&mut self) {
        // SAFETY: the area is 512 writable bytes aligned to 16 (the type guarantees both), and
        // SSE is enabled on every core before threads run.
        unsafe {
            asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack, preserves_flags))
        };
    }

    /// Loads this core's x87/SSE registers from the area.
    pub fn restore(&self) {
        // SAFETY: the area is aligned and was written by `save` (every constructor saves into
        // it), so it holds a valid image; `fxrstor64` only reads it.
        unsafe {
            asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(readonly, nostack, preserves_flags))
        };
    }
}

/// Resets this core's x87/SSE state to what WebAssembly code expects (round to nearest,
/// exceptions masked, registers cleared of the previous owner's values).
pub fn reset_state() {
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
