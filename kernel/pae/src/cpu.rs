//! The SSE extensions the generated code may use beyond SSE2, chosen at assembly time.
//!
//! The code runs on the machine that assembles it (the kernel and `chunkc` compile for the CPU
//! they run on), so [`CpuFeatures::detect`] reads CPUID. [`CpuFeatures::SSE2`] is the baseline
//! every x86-64 CPU has; each SIMD operator has an SSE2 form (inline or the lane helper).
//! AVX is not used: the kernel saves SSE state with `fxsave`, which does not cover the upper
//! halves of the YMM registers, and does not enable XSAVE.

/// Instruction-set extensions (CPUID leaf 1, ECX).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuFeatures {
    /// SSSE3 (`pshufb`, `pabs*`, `pmulhrsw`).
    pub ssse3: bool,
    /// SSE4.1 (`pmulld`, `pmin/pmax*`, `roundps`, `pmovsx/zx`, `pinsr/pextr*`, `ptest`).
    pub sse41: bool,
    /// SSE4.2 (`pcmpgtq`).
    pub sse42: bool,
}

impl CpuFeatures {
    /// SSE2 only.
    pub const SSE2: CpuFeatures = CpuFeatures {
        ssse3: false,
        sse41: false,
        sse42: false,
    };

    /// What this CPU has, from CPUID.
    pub fn detect() -> CpuFeatures {
        let ecx = core::arch::x86_64::__cpuid(1).ecx;
        let bit = |n: u32| ecx >> n & 1 == 1;
        CpuFeatures {
            ssse3: bit(9),
            sse41: bit(19),
            sse42: bit(20),
        }
    }
}
