//! Lane-wise semantics of the simd128 operations that generated code leaves to one runtime
//! helper (`Libcall::Simd`): those without a short SSE2 form (and, in SSE2-only mode, those
//! whose short form needs SSSE3/SSE4.1). Pure functions on 128-bit values, host-testable.
//!
//! Vector bits are little-endian: lane `i` of width `w` is bits `w*i .. w*(i+1)`.

use super::libcalls::{Round, round_bits};

/// Declares [`LaneOp`] and [`LANE_OPS`] (every operation, indexed by its number) from one list,
/// so the two cannot disagree.
macro_rules! lane_ops {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// An operation the helper computes. The generated code passes `op as u64`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        #[allow(missing_docs)]
        pub enum LaneOp {
            $($(#[$doc])* $name,)*
        }

        /// Every operation, indexed by its number.
        pub const LANE_OPS: &[LaneOp] = &[$(LaneOp::$name,)*];
    };
}

lane_ops! {
    I8x16Popcnt,
    F32x4Ceil,
    F32x4Floor,
    F32x4Trunc,
    F32x4Nearest,
    F64x2Ceil,
    F64x2Floor,
    F64x2Trunc,
    F64x2Nearest,
    I32x4TruncSatF32x4S,
    I32x4TruncSatF32x4U,
    I32x4TruncSatF64x2SZero,
    I32x4TruncSatF64x2UZero,
    F32x4ConvertI32x4U,
    F64x2ConvertLowI32x4U,
    I64x2Mul,
    I64x2LtS,
    I64x2GtS,
    I64x2LeS,
    I64x2GeS,
    /// `c` holds the 16 lane indices.
    I8x16Shuffle,
    I8x16Swizzle,
    /// `b`'s low 32 bits hold the shift count.
    I8x16Shl,
    I8x16ShrS,
    I8x16ShrU,
    I64x2ShrS,
    I16x8ExtaddPairwiseI8x16S,
    I16x8ExtaddPairwiseI8x16U,
    I32x4ExtaddPairwiseI16x8S,
    I32x4ExtaddPairwiseI16x8U,
    I16x8ExtmulLowI8x16S,
    I16x8ExtmulHighI8x16S,
    I16x8ExtmulLowI8x16U,
    I16x8ExtmulHighI8x16U,
    I32x4ExtmulLowI16x8S,
    I32x4ExtmulHighI16x8S,
    I32x4ExtmulLowI16x8U,
    I32x4ExtmulHighI16x8U,
    I64x2ExtmulLowI32x4S,
    I64x2ExtmulHighI32x4S,
    I64x2ExtmulLowI32x4U,
    I64x2ExtmulHighI32x4U,
    I16x8Q15MulrSatS,
    I16x8NarrowI32x4U,
    I8x16MinS,
    I8x16MaxS,
    I16x8MinU,
    I16x8MaxU,
    I32x4MinS,
    I32x4MinU,
    I32x4MaxS,
    I32x4MaxU,
    I32x4Mul,
    I64x2Abs,
    I64x2Eq,
    I64x2Ne,
}

/// A lane type: how it is read from and written into a vector.
trait Lane: Copy {
    const BITS: u32;
    fn get(v: u128, i: usize) -> Self;
    fn put(self) -> u128;
}

macro_rules! int_lane {
    ($($t:ty => $u:ty),*) => {$(
        impl Lane for $t {
            const BITS: u32 = <$u>::BITS;
            fn get(v: u128, i: usize) -> Self {
                (v >> (Self::BITS as usize * i)) as $u as $t
            }
            fn put(self) -> u128 {
                u128::from(self as $u)
            }
        }
    )*};
}
int_lane!(i8 => u8, u8 => u8, i16 => u16, u16 => u16, i32 => u32, u32 => u32, i64 => u64, u64 => u64);

impl Lane for f32 {
    const BITS: u32 = 32;
    fn get(v: u128, i: usize) -> Self {
        f32::from_bits(u32::get(v, i))
    }
    fn put(self) -> u128 {
        self.to_bits().put()
    }
}

impl Lane for f64 {
    const BITS: u32 = 64;
    fn get(v: u128, i: usize) -> Self {
        f64::from_bits(u64::get(v, i))
    }
    fn put(self) -> u128 {
        self.to_bits().put()
    }
}

/// Builds a vector of `U` lanes from `f(lane index)`.
fn build<U: Lane>(f: impl Fn(usize) -> U) -> u128 {
    let n = 128 / U::BITS as usize;
    (0..n).fold(0, |v, i| v | f(i).put() << (U::BITS as usize * i))
}

fn map1<T: Lane, U: Lane>(a: u128, f: impl Fn(T) -> U) -> u128 {
    build(|i| f(T::get(a, i)))
}

fn map2<T: Lane, U: Lane>(a: u128, b: u128, f: impl Fn(T, T) -> U) -> u128 {
    build(|i| f(T::get(a, i), T::get(b, i)))
}

/// All-ones lanes where `f` holds.
fn cmp64(a: u128, b: u128, f: impl Fn(i64, i64) -> bool) -> u128 {
    map2(a, b, |x: i64, y: i64| -i64::from(f(x, y)))
}

fn round32(x: f32, mode: Round) -> f32 {
    f32::from_bits(round_bits(u64::from(x.to_bits()), 32, 23, mode) as u32)
}

fn round64(x: f64, mode: Round) -> f64 {
    f64::from_bits(round_bits(x.to_bits(), 64, 52, mode))
}

/// Widening pairwise add: lane `i` of the result is `a[2i] + a[2i+1]`.
fn extadd<T: Lane + Into<i64>, U: Lane + TryFrom<i64>>(a: u128) -> u128 {
    build(|i| {
        let s = T::get(a, 2 * i).into() + T::get(a, 2 * i + 1).into();
        U::try_from(s)
            .ok()
            .expect("a pairwise sum fits the wide lane")
    })
}

/// Widening multiply of the low (`high` false) or high half's lanes.
fn extmul<T: Lane + Into<i128>, U: Lane>(
    a: u128,
    b: u128,
    high: bool,
    wrap: fn(i128) -> U,
) -> u128 {
    let base = if high { 64 / T::BITS as usize } else { 0 };
    build(|i| wrap(T::get(a, base + i).into() * T::get(b, base + i).into()))
}

/// Computes `op` on `a`, `b` (second operand or scalar count) and `c` (third operand or
/// shuffle indices).
pub fn eval(op: LaneOp, a: u128, b: u128, c: u128) -> u128 {
    use LaneOp::*;
    let count = b as u32;
    match op {
        I8x16Popcnt => map1(a, |x: u8| x.count_ones() as u8),
        F32x4Ceil => map1(a, |x: f32| round32(x, Round::Ceil)),
        F32x4Floor => map1(a, |x: f32| round32(x, Round::Floor)),
        F32x4Trunc => map1(a, |x: f32| round32(x, Round::Trunc)),
        F32x4Nearest => map1(a, |x: f32| round32(x, Round::Nearest)),
        F64x2Ceil => map1(a, |x: f64| round64(x, Round::Ceil)),
        F64x2Floor => map1(a, |x: f64| round64(x, Round::Floor)),
        F64x2Trunc => map1(a, |x: f64| round64(x, Round::Trunc)),
        F64x2Nearest => map1(a, |x: f64| round64(x, Round::Nearest)),
        // Rust's float-to-int `as` saturates and maps NaN to 0, as trunc_sat does.
        I32x4TruncSatF32x4S => map1(a, |x: f32| x as i32),
        I32x4TruncSatF32x4U => map1(a, |x: f32| x as u32),
        I32x4TruncSatF64x2SZero => build(|i| if i < 2 { f64::get(a, i) as i32 } else { 0 }),
        I32x4TruncSatF64x2UZero => build(|i| if i < 2 { f64::get(a, i) as u32 } else { 0 }),
        F32x4ConvertI32x4U => map1(a, |x: u32| x as f32),
        F64x2ConvertLowI32x4U => build(|i| f64::from(u32::get(a, i))),
        I64x2Mul => map2(a, b, |x: u64, y| x.wrapping_mul(y)),
        I64x2LtS => cmp64(a, b, |x, y| x < y),
        I64x2GtS => cmp64(a, b, |x, y| x > y),
        I64x2LeS => cmp64(a, b, |x, y| x <= y),
        I64x2GeS => cmp64(a, b, |x, y| x >= y),
        I64x2Eq => cmp64(a, b, |x, y| x == y),
        I64x2Ne => cmp64(a, b, |x, y| x != y),
        I8x16Shuffle => build(|i| {
            let k = usize::from(u8::get(c, i) & 31);
            if k < 16 {
                u8::get(a, k)
            } else {
                u8::get(b, k - 16)
            }
        }),
        I8x16Swizzle => build(|i| {
            let k = usize::from(u8::get(b, i));
            if k < 16 { u8::get(a, k) } else { 0 }
        }),
        I8x16Shl => map1(a, |x: u8| x << (count & 7)),
        I8x16ShrS => map1(a, |x: i8| x >> (count & 7)),
        I8x16ShrU => map1(a, |x: u8| x >> (count & 7)),
        I64x2ShrS => map1(a, |x: i64| x >> (count & 63)),
        I16x8ExtaddPairwiseI8x16S => extadd::<i8, i16>(a),
        I16x8ExtaddPairwiseI8x16U => extadd::<u8, u16>(a),
        I32x4ExtaddPairwiseI16x8S => extadd::<i16, i32>(a),
        I32x4ExtaddPairwiseI16x8U => extadd::<u16, u32>(a),
        I16x8ExtmulLowI8x16S => extmul::<i8, i16>(a, b, false, |p| p as i16),
        I16x8ExtmulHighI8x16S => extmul::<i8, i16>(a, b, true, |p| p as i16),
        I16x8ExtmulLowI8x16U => extmul::<u8, u16>(a, b, false, |p| p as u16),
        I16x8ExtmulHighI8x16U => extmul::<u8, u16>(a, b, true, |p| p as u16),
        I32x4ExtmulLowI16x8S => extmul::<i16, i32>(a, b, false, |p| p as i32),
        I32x4ExtmulHighI16x8S => extmul::<i16, i32>(a, b, true, |p| p as i32),
        I32x4ExtmulLowI16x8U => extmul::<u16, u32>(a, b, false, |p| p as u32),
        I32x4ExtmulHighI16x8U => extmul::<u16, u32>(a, b, true, |p| p as u32),
        I64x2ExtmulLowI32x4S => extmul::<i32, i64>(a, b, false, |p| p as i64),
        I64x2ExtmulHighI32x4S => extmul::<i32, i64>(a, b, true, |p| p as i64),
        I64x2ExtmulLowI32x4U => extmul::<u32, u64>(a, b, false, |p| p as u64),
        I64x2ExtmulHighI32x4U => extmul::<u32, u64>(a, b, true, |p| p as u64),
        I16x8Q15MulrSatS => map2(a, b, |x: i16, y: i16| {
            let p = (i32::from(x) * i32::from(y) + 0x4000) >> 15;
            p.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
        }),
        I16x8NarrowI32x4U => build(|i| {
            let x = if i < 4 {
                i32::get(a, i)
            } else {
                i32::get(b, i - 4)
            };
            x.clamp(0, i32::from(u16::MAX)) as u16
        }),
        I8x16MinS => map2(a, b, |x: i8, y| x.min(y)),
        I8x16MaxS => map2(a, b, |x: i8, y| x.max(y)),
        I16x8MinU => map2(a, b, |x: u16, y| x.min(y)),
        I16x8MaxU => map2(a, b, |x: u16, y| x.max(y)),
        I32x4MinS => map2(a, b, |x: i32, y| x.min(y)),
        I32x4MinU => map2(a, b, |x: u32, y| x.min(y)),
        I32x4MaxS => map2(a, b, |x: i32, y| x.max(y)),
        I32x4MaxU => map2(a, b, |x: u32, y| x.max(y)),
        I32x4Mul => map2(a, b, |x: u32, y| x.wrapping_mul(y)),
        I64x2Abs => map1(a, |x: i64| x.wrapping_abs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v32(l: [u32; 4]) -> u128 {
        build(|i| l[i])
    }

    #[test]
    fn table_matches_discriminants() {
        for (i, op) in LANE_OPS.iter().enumerate() {
            assert_eq!(*op as usize, i, "{op:?}");
        }
    }

    #[test]
    fn lanes_are_little_endian() {
        let v = v32([1, 2, 3, 4]);
        assert_eq!(v, 1 | 2 << 32 | 3 << 64 | 4 << 96);
        assert_eq!(i16::get(v, 2), 2);
    }

    #[test]
    fn shuffle_swizzle_and_saturation() {
        let a = build(|i| i as u8);
        let b = build(|i| 16 + i as u8);
        let idx = build(|i| 31 - i as u8);
        assert_eq!(
            eval(LaneOp::I8x16Shuffle, a, b, idx),
            build(|i| 31 - i as u8)
        );
        let sw = build(|i| if i == 0 { 200u8 } else { 15 - i as u8 });
        let r = eval(LaneOp::I8x16Swizzle, a, sw, 0);
        assert_eq!(u8::get(r, 0), 0);
        assert_eq!(u8::get(r, 1), 14);
        let q = eval(
            LaneOp::I16x8Q15MulrSatS,
            build(|_| i16::MIN),
            build(|_| i16::MIN),
            0,
        );
        assert_eq!(i16::get(q, 0), i16::MAX);
        let t = eval(
            LaneOp::I32x4TruncSatF32x4U,
            v32([
                (-1f32).to_bits(),
                f32::NAN.to_bits(),
                5e9f32.to_bits(),
                3.7f32.to_bits(),
            ]),
            0,
            0,
        );
        assert_eq!(t, v32([0, 0, u32::MAX, 3]));
    }
}
