//! Decoding CPUID into the facts `hwinfo` reports: vendor, brand, family/model/stepping (with
//! the extended fields folded in as the vendors' manuals say), the hypervisor, and the features
//! atoll looks at, each with what atoll does with it.
//!
//! The caller supplies CPUID as a function (`leaf, subleaf -> [eax, ebx, ecx, edx]`), so the
//! decoding is tested on the host with the register values of known processors.

use alloc::string::String;
use alloc::vec::Vec;

/// Which register of a CPUID leaf a feature bit is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    /// EAX.
    Eax,
    /// EBX.
    Ebx,
    /// ECX.
    Ecx,
    /// EDX.
    Edx,
}

/// One feature bit and what atoll does with it.
#[derive(Debug, Clone, Copy)]
pub struct FeatureDef {
    /// Short name (`x2apic`, `nx`, ...), as in `/proc/cpuinfo` where it has one.
    pub name: &'static str,
    /// CPUID leaf.
    pub leaf: u32,
    /// Subleaf.
    pub sub: u32,
    /// Register.
    pub reg: Reg,
    /// Bit.
    pub bit: u32,
    /// What atoll does with it (and without it).
    pub used_for: &'static str,
}

const fn f(
    name: &'static str,
    leaf: u32,
    reg: Reg,
    bit: u32,
    used_for: &'static str,
) -> FeatureDef {
    FeatureDef {
        name,
        leaf,
        sub: 0,
        reg,
        bit,
        used_for,
    }
}

/// The features `hwinfo` reports, in order.
pub const FEATURES: &[FeatureDef] = &[
    f(
        "apic",
        1,
        Reg::Edx,
        9,
        "local APIC: interrupts, timer, IPIs (required for SMP)",
    ),
    f(
        "x2apic",
        1,
        Reg::Ecx,
        21,
        "x2APIC mode (MSRs); xAPIC MMIO otherwise",
    ),
    f(
        "tsc",
        1,
        Reg::Edx,
        4,
        "the clock: cycle counts, timeouts (required)",
    ),
    f(
        "invariant_tsc",
        0x8000_0007,
        Reg::Edx,
        8,
        "TSC ticks at one rate in every power state (figures drift without it)",
    ),
    f(
        "tsc_deadline",
        1,
        Reg::Ecx,
        24,
        "not used (the APIC timer runs periodic)",
    ),
    f(
        "nx",
        0x8000_0001,
        Reg::Edx,
        20,
        "W^X: data pages not executable (the bootloader sets EFER.NXE)",
    ),
    f(
        "pdpe1gb",
        0x8000_0001,
        Reg::Edx,
        26,
        "1 GiB pages: not used (4 KiB and 2 MiB only)",
    ),
    f(
        "pge",
        1,
        Reg::Edx,
        13,
        "global pages for the kernel (kept as the bootloader set CR4)",
    ),
    f(
        "rdrand",
        1,
        Reg::Ecx,
        30,
        "WASI random_get (splitmix64 seeded from the TSC otherwise)",
    ),
    f(
        "sse2",
        1,
        Reg::Edx,
        26,
        "generated code's SIMD baseline (required)",
    ),
    f("sse3", 1, Reg::Ecx, 0, "not used"),
    f(
        "ssse3",
        1,
        Reg::Ecx,
        9,
        "generated SIMD: pshufb, pabs* (SSE2 forms otherwise)",
    ),
    f(
        "sse4_1",
        1,
        Reg::Ecx,
        19,
        "generated SIMD: pmulld, pmin/pmax, pinsr/pextr, roundps (SSE2 forms otherwise)",
    ),
    f(
        "sse4_2",
        1,
        Reg::Ecx,
        20,
        "generated SIMD: pcmpgtq (SSE2 form otherwise)",
    ),
    f(
        "popcnt",
        1,
        Reg::Ecx,
        23,
        "not used (wasm popcnt calls a helper)",
    ),
    f(
        "avx",
        1,
        Reg::Ecx,
        28,
        "not used (the kernel saves only SSE state, with fxsave)",
    ),
    f("avx2", 7, Reg::Ebx, 5, "not used"),
    f(
        "xsave",
        1,
        Reg::Ecx,
        26,
        "not used (fxsave covers SSE state)",
    ),
    f(
        "fxsr",
        1,
        Reg::Edx,
        24,
        "saving threads' SSE state (required)",
    ),
    f(
        "hypervisor",
        1,
        Reg::Ecx,
        31,
        "fw_cfg probing (QEMU's -icount flag) only under a hypervisor",
    ),
];

/// What `hwinfo` reports about the processor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    /// The vendor string (`GenuineIntel`, `AuthenticAMD`, ...).
    pub vendor: String,
    /// The brand string (leaves 0x80000002..4), trimmed; empty if the CPU has none.
    pub brand: String,
    /// Family, with the extended family added when the base family is 0xF.
    pub family: u32,
    /// Model, with the extended model for families 6 and 0xF.
    pub model: u32,
    /// Stepping.
    pub stepping: u32,
    /// The highest basic leaf.
    pub max_leaf: u32,
    /// The highest extended leaf.
    pub max_ext_leaf: u32,
    /// The hypervisor's vendor string (leaf 0x40000000), if the hypervisor bit is set.
    pub hypervisor: Option<String>,
    /// Which of [`FEATURES`] the CPU has, in the same order.
    pub has: Vec<bool>,
}

fn reg_str(regs: &[u32]) -> String {
    let bytes: Vec<u8> = regs.iter().flat_map(|r| r.to_le_bytes()).collect();
    let text: String = bytes
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect();
    String::from(text.trim())
}

impl CpuInfo {
    /// Decodes CPUID through `cpuid(leaf, subleaf)`. Leaves above the maxima the CPU reports
    /// are never read.
    pub fn decode(cpuid: impl Fn(u32, u32) -> [u32; 4]) -> Self {
        let [max_leaf, b, c, d] = cpuid(0, 0);
        let vendor = reg_str(&[b, d, c]);
        let max_ext_leaf = cpuid(0x8000_0000, 0)[0];
        let ext_ok = |leaf: u32| max_ext_leaf >= 0x8000_0000 && leaf <= max_ext_leaf;
        let leaf_ok = |leaf: u32| {
            if leaf >= 0x8000_0000 {
                ext_ok(leaf)
            } else {
                leaf <= max_leaf
            }
        };
        let brand = if ext_ok(0x8000_0004) {
            let regs: Vec<u32> = (0x8000_0002..=0x8000_0004)
                .flat_map(|leaf| cpuid(leaf, 0))
                .collect();
            reg_str(&regs)
        } else {
            String::new()
        };
        let sig = if max_leaf >= 1 { cpuid(1, 0)[0] } else { 0 };
        let base_family = (sig >> 8) & 0xf;
        let family = if base_family == 0xf {
            base_family + ((sig >> 20) & 0xff)
        } else {
            base_family
        };
        let model = if base_family == 6 || base_family == 0xf {
            ((sig >> 4) & 0xf) | (((sig >> 16) & 0xf) << 4)
        } else {
            (sig >> 4) & 0xf
        };
        let has: Vec<bool> = FEATURES
            .iter()
            .map(|def| {
                if !leaf_ok(def.leaf) {
                    return false;
                }
                let regs = cpuid(def.leaf, def.sub);
                let value = match def.reg {
                    Reg::Eax => regs[0],
                    Reg::Ebx => regs[1],
                    Reg::Ecx => regs[2],
                    Reg::Edx => regs[3],
                };
                value >> def.bit & 1 == 1
            })
            .collect();
        let hyper_bit = FEATURES.iter().position(|d| d.name == "hypervisor");
        let hypervisor = hyper_bit.filter(|&i| has[i]).map(|_| {
            let [_, b, c, d] = cpuid(0x4000_0000, 0);
            reg_str(&[b, c, d])
        });
        CpuInfo {
            vendor,
            brand,
            family,
            model,
            stepping: sig & 0xf,
            max_leaf,
            max_ext_leaf,
            hypervisor,
            has,
        }
    }

    /// Whether the CPU has the feature called `name` (false for names not in [`FEATURES`]).
    pub fn has(&self, name: &str) -> bool {
        FEATURES
            .iter()
            .position(|d| d.name == name)
            .is_some_and(|i| self.has[i])
    }

    /// Each feature with whether the CPU has it.
    pub fn features(&self) -> impl Iterator<Item = (&'static FeatureDef, bool)> + '_ {
        FEATURES.iter().zip(self.has.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(s: &[u8; 4]) -> u32 {
        u32::from_le_bytes(*s)
    }

    /// A table of leaves; missing leaves read as zeros (as leaves past the maximum may not).
    fn table(leaves: &[(u32, [u32; 4])]) -> impl Fn(u32, u32) -> [u32; 4] + '_ {
        move |leaf, _| {
            leaves
                .iter()
                .find(|(l, _)| *l == leaf)
                .map_or([0xdead_beef; 4], |(_, r)| *r)
        }
    }

    fn brand_leaves(brand: &[u8; 48]) -> [(u32, [u32; 4]); 3] {
        let word = |i: usize| le(&[brand[i], brand[i + 1], brand[i + 2], brand[i + 3]]);
        [0, 1, 2].map(|k| {
            let o = k * 16;
            (
                0x8000_0002 + k as u32,
                [word(o), word(o + 4), word(o + 8), word(o + 12)],
            )
        })
    }

    #[test]
    fn skylake_client() {
        // Intel Core i7-6700: family 6, model 0x5e, stepping 3 (signature 0x506e3).
        let mut brand = [0u8; 48];
        let text = b"  Intel(R) Core(TM) i7-6700 CPU @ 3.40GHz";
        brand[..text.len()].copy_from_slice(text);
        let b = brand_leaves(&brand);
        let leaves = [
            (0, [0x16, le(b"Genu"), le(b"ntel"), le(b"ineI")]),
            (
                1,
                [
                    0x506e3,
                    0,
                    (1 << 9) | (1 << 19) | (1 << 20) | (1 << 30),
                    (1 << 4) | (1 << 9) | (1 << 26),
                ],
            ),
            (7, [0, 1 << 5, 0, 0]),
            (0x8000_0000, [0x8000_0008, 0, 0, 0]),
            (0x8000_0001, [0, 0, 0, (1 << 20) | (1 << 26)]),
            (0x8000_0007, [0, 0, 0, 1 << 8]),
            b[0],
            b[1],
            b[2],
        ];
        let info = CpuInfo::decode(table(&leaves));
        assert_eq!(info.vendor, "GenuineIntel");
        assert_eq!(info.brand, "Intel(R) Core(TM) i7-6700 CPU @ 3.40GHz");
        assert_eq!((info.family, info.model, info.stepping), (6, 0x5e, 3));
        for name in [
            "ssse3",
            "sse4_1",
            "sse4_2",
            "rdrand",
            "nx",
            "pdpe1gb",
            "invariant_tsc",
            "avx2",
            "apic",
            "tsc",
        ] {
            assert!(info.has(name), "{name}");
        }
        for name in ["x2apic", "avx", "hypervisor", "no-such-feature"] {
            assert!(!info.has(name), "{name}");
        }
        assert_eq!(info.hypervisor, None);
    }

    #[test]
    fn amd_extended_family_and_hypervisor() {
        // AMD EPYC 7601 (Zen): base family 0xF + extended 8 = 0x17, model 0x01, stepping 2.
        let sig = (8 << 20) | (0xf << 8) | (1 << 4) | 2; // extended model 0
        let leaves = [
            (0, [0xd, le(b"Auth"), le(b"cAMD"), le(b"enti")]),
            (1, [sig, 0, (1 << 31) | (1 << 21), 0]),
            (
                0x4000_0000,
                [0x4000_0001, le(b"TCGT"), le(b"CGTC"), le(b"GTCG")],
            ),
            (0x8000_0000, [0x8000_0001, 0, 0, 0]),
            (0x8000_0001, [0, 0, 0, 1 << 20]),
        ];
        let info = CpuInfo::decode(table(&leaves));
        assert_eq!(info.vendor, "AuthenticAMD");
        assert_eq!((info.family, info.model, info.stepping), (0x17, 1, 2));
        assert_eq!(info.hypervisor.as_deref(), Some("TCGTCGTCGTCG"));
        assert!(info.has("x2apic") && info.has("nx"));
        // 0x80000007 is past the maximum extended leaf: not read, not claimed.
        assert!(!info.has("invariant_tsc"));
        assert_eq!(info.brand, "", "no brand leaves below the maximum");
    }

    #[test]
    fn leaves_past_the_maximum_are_not_trusted() {
        // A CPU whose maximum basic leaf is 1: leaf 7 reads garbage (0xdeadbeef) but is ignored.
        let leaves = [
            (0, [1, le(b"Genu"), le(b"ntel"), le(b"ineI")]),
            (1, [0x0f4a, 0, 0, 0]),
            (0x8000_0000, [0, 0, 0, 0]),
        ];
        let info = CpuInfo::decode(table(&leaves));
        assert!(!info.has("avx2"));
        assert!(!info.has("nx"), "no extended leaves at all");
        // Family 0xF without extended family bits, model 4 (extended model 0).
        assert_eq!((info.family, info.model, info.stepping), (0xf, 4, 0xa));
    }
}
