//! v128 values in `chunkc wast`: arguments as two 64-bit slots (low half first) and result
//! patterns matched lane by lane (`nan:canonical` / `nan:arithmetic` per float lane).

use wast::core::{NanPattern, V128Const, V128Pattern};

/// The 128 bits of a `v128.const` argument.
pub fn const_bits(v: &V128Const) -> u128 {
    u128::from_le_bytes(v.to_le_bytes())
}

/// The two slots a v128 argument takes.
pub fn slots(bits: u128) -> [u64; 2] {
    [bits as u64, (bits >> 64) as u64]
}

/// Whether f32 `b` is what `p` expects.
pub fn f32_matches(p: &NanPattern<wast::token::F32>, b: u32) -> bool {
    let nan = b & 0x7FFF_FFFF > 0x7F80_0000;
    match p {
        NanPattern::CanonicalNan => b & 0x7FFF_FFFF == 0x7FC0_0000,
        NanPattern::ArithmeticNan => nan && b & 0x0040_0000 != 0,
        NanPattern::Value(v) => b == v.bits,
    }
}

/// Whether f64 `b` is what `p` expects.
pub fn f64_matches(p: &NanPattern<wast::token::F64>, b: u64) -> bool {
    let nan = b & (u64::MAX >> 1) > 0x7FF0_0000_0000_0000;
    match p {
        NanPattern::CanonicalNan => b & (u64::MAX >> 1) == 0x7FF8_0000_0000_0000,
        NanPattern::ArithmeticNan => nan && b & 0x0008_0000_0000_0000 != 0,
        NanPattern::Value(v) => b == v.bits,
    }
}

/// Whether `bits` is what the pattern expects, lane by lane.
pub fn matches(p: &V128Pattern, bits: u128) -> bool {
    let lane = |w: u32, i: usize| (bits >> (w as usize * i)) & ((1u128 << w) - 1);
    match p {
        V128Pattern::I8x16(l) => l
            .iter()
            .enumerate()
            .all(|(i, &v)| lane(8, i) == u128::from(v as u8)),
        V128Pattern::I16x8(l) => l
            .iter()
            .enumerate()
            .all(|(i, &v)| lane(16, i) == u128::from(v as u16)),
        V128Pattern::I32x4(l) => l
            .iter()
            .enumerate()
            .all(|(i, &v)| lane(32, i) == u128::from(v as u32)),
        V128Pattern::I64x2(l) => l
            .iter()
            .enumerate()
            .all(|(i, &v)| lane(64, i) == u128::from(v as u64)),
        V128Pattern::F32x4(l) => l
            .iter()
            .enumerate()
            .all(|(i, p)| f32_matches(p, lane(32, i) as u32)),
        V128Pattern::F64x2(l) => l
            .iter()
            .enumerate()
            .all(|(i, p)| f64_matches(p, lane(64, i) as u64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> V128Pattern {
        let buf = wast::parser::ParseBuffer::new(text).expect("lexes");
        wast::parser::parse::<V128Pattern>(&buf).expect("parses")
    }

    #[test]
    fn lanes_and_nan_patterns() {
        let v = 1u128 | 2 << 32 | 3 << 64 | 0xFFFF_FFFF << 96;
        assert!(matches(&pattern("i32x4 1 2 3 -1"), v));
        assert!(!matches(&pattern("i32x4 1 2 3 4"), v));
        assert!(matches(&pattern("i64x2 0x200000001 0xffffffff00000003"), v));
        let nans = u128::from(0x7FC0_0000u32) | u128::from(0xFFC0_0001u32) << 32;
        assert!(matches(
            &pattern("f32x4 nan:canonical nan:arithmetic 0 0"),
            nans
        ));
        assert!(!matches(
            &pattern("f32x4 nan:arithmetic nan:canonical 0 0"),
            nans
        ));
    }
}
