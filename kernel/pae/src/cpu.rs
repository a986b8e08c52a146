//! The instruction-set extensions the generated code may use beyond x86-64's baseline (SSE2),
//! chosen at assembly time: SSE extensions for SIMD and rounding, and the bit-counting
//! instructions (`popcnt`, `lzcnt`, `tzcnt`) and BMI2's three-operand shifts and rotates for the
//! scalar operators.
//!
//! The code runs on the machine that assembles it (the kernel and `chunkc` compile for the CPU
//! they run on), so [`CpuFeatures::detect`] reads CPUID. [`CpuFeatures::SSE2`] is the baseline
//! every x86-64 CPU has; each SIMD operator has an SSE2 form (inline or the lane helper).
//! AVX is not used: the kernel saves SSE state with `fxsave`, which does not cover the upper
//! halves of the YMM registers, and does not enable XSAVE.

/// Instruction-set extensions (CPUID leaves 1, 7 and 0x8000_0001).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuFeatures {
    /// POPCNT (`i32/i64.popcnt` in one instruction instead of a runtime helper).
    pub popcnt: bool,
    /// LZCNT (ABM; `clz` without the `bsr` + zero fix-up).
    pub lzcnt: bool,
    /// BMI1 (`tzcnt`: `ctz` without the `bsf` + zero fix-up).
    pub bmi1: bool,
    /// BMI2 (`shlx`/`shrx`/`sarx`: shifts by a register count without `cl`; `rorx`: rotates
    /// by a constant into another register).
    pub bmi2: bool,
    /// SSSE3 (`pshufb`, `pabs*`, `pmulhrsw`).
    pub ssse3: bool,
    /// SSE4.1 (`pmulld`, `pmin/pmax*`, `roundps`, `pmovsx/zx`, `pinsr/pextr*`, `ptest`;
    /// `roundss/sd` for scalar `ceil`, `floor`, `trunc` and `nearest`).
    pub sse41: bool,
    /// SSE4.2 (`pcmpgtq`).
    pub sse42: bool,
}

impl CpuFeatures {
    /// SSE2 only.
    pub const SSE2: CpuFeatures = CpuFeatures {
        popcnt: false,
        lzcnt: false,
        bmi1: false,
        bmi2: false,
        ssse3: false,
        sse41: false,
        sse42: false,
    };

    /// What this CPU has, from CPUID.
    pub fn detect() -> CpuFeatures {
        use core::arch::x86_64::{__cpuid, __cpuid_count};
        let ecx = __cpuid(1).ecx;
        let bit = |n: u32| ecx >> n & 1 == 1;
        // Leaves 7 and 0x8000_0001 only where the CPU has them.
        let ebx7 = if __cpuid(0).eax >= 7 {
            __cpuid_count(7, 0).ebx
        } else {
            0
        };
        let ecx_ext = if __cpuid(0x8000_0000).eax >= 0x8000_0001 {
            __cpuid(0x8000_0001).ecx
        } else {
            0
        };
        CpuFeatures {
            popcnt: bit(23),
            lzcnt: ecx_ext >> 5 & 1 == 1,
            bmi1: ebx7 >> 3 & 1 == 1,
            bmi2: ebx7 >> 8 & 1 == 1,
            ssse3: bit(9),
            sse41: bit(19),
            sse42: bit(20),
        }
    }

    /// Each extension `self` has, alone on the SSE2 baseline (for testing every form).
    pub fn each_alone(self) -> alloc::vec::Vec<CpuFeatures> {
        let none = Self::SSE2;
        [
            (
                self.popcnt,
                CpuFeatures {
                    popcnt: true,
                    ..none
                },
            ),
            (
                self.lzcnt,
                CpuFeatures {
                    lzcnt: true,
                    ..none
                },
            ),
            (self.bmi1, CpuFeatures { bmi1: true, ..none }),
            (self.bmi2, CpuFeatures { bmi2: true, ..none }),
            (
                self.ssse3,
                CpuFeatures {
                    ssse3: true,
                    ..none
                },
            ),
            (
                self.sse41,
                CpuFeatures {
                    sse41: true,
                    ..none
                },
            ),
            (
                self.sse42,
                CpuFeatures {
                    sse42: true,
                    ..none
                },
            ),
        ]
        .into_iter()
        .filter_map(|(has, alone)| has.then_some(alone))
        .collect()
    }
}
