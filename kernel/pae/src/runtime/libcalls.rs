//! Runtime helpers called from generated code: `extern "C" fn(vmctx, a, b, c, d) -> u64`,
//! floats passed as raw bits. A helper that traps stores a [`TrapCode`] in
//! `VmContext::trap_code` and returns; generated code checks it after helpers that may trap.
//!
//! Float rounding is done with integer operations so it behaves the same with or without
//! hardware float support (the kernel target is soft-float for Rust code).

use crate::vmctx::{TrapCode, VmContext};
use crate::{LIBCALL_COUNT, Libcall};

use super::Instance;

type Helper = unsafe extern "C" fn(*mut VmContext, u64, u64, u64, u64) -> u64;

/// Every libcall, by index.
pub const LIBCALL_BY_INDEX: [Libcall; LIBCALL_COUNT] = [
    Libcall::MemoryGrow,
    Libcall::MemoryFill,
    Libcall::MemoryCopy,
    Libcall::MemoryInit,
    Libcall::DataDrop,
    Libcall::TableInit,
    Libcall::TableCopy,
    Libcall::ElemDrop,
    Libcall::TableGrow,
    Libcall::TableFill,
    Libcall::Popcnt32,
    Libcall::Popcnt64,
    Libcall::F32Ceil,
    Libcall::F32Floor,
    Libcall::F32Trunc,
    Libcall::F32Nearest,
    Libcall::F64Ceil,
    Libcall::F64Floor,
    Libcall::F64Trunc,
    Libcall::F64Nearest,
    Libcall::I32TruncF32S,
    Libcall::I32TruncF32U,
    Libcall::I64TruncF32S,
    Libcall::I64TruncF32U,
    Libcall::I32TruncF64S,
    Libcall::I32TruncF64U,
    Libcall::I64TruncF64S,
    Libcall::I64TruncF64U,
    Libcall::I32TruncSatF32S,
    Libcall::I32TruncSatF32U,
    Libcall::I64TruncSatF32S,
    Libcall::I64TruncSatF32U,
    Libcall::I32TruncSatF64S,
    Libcall::I32TruncSatF64U,
    Libcall::I64TruncSatF64S,
    Libcall::I64TruncSatF64U,
    Libcall::F32ConvertU64,
    Libcall::F64ConvertU64,
    Libcall::LazyAssemble,
    Libcall::Simd,
];

/// The table `VmContext::libcalls` points at.
pub fn table() -> [usize; LIBCALL_COUNT] {
    core::array::from_fn(|i| helper(LIBCALL_BY_INDEX[i]) as usize)
}

fn helper(which: Libcall) -> Helper {
    match which {
        Libcall::MemoryGrow => memory_grow,
        Libcall::MemoryFill => memory_fill,
        Libcall::MemoryCopy => memory_copy,
        Libcall::MemoryInit => memory_init,
        Libcall::DataDrop => data_drop,
        Libcall::TableInit => table_init,
        Libcall::TableCopy => table_copy,
        Libcall::ElemDrop => elem_drop,
        Libcall::TableGrow => table_grow,
        Libcall::TableFill => table_fill,
        Libcall::Popcnt32 => popcnt32,
        Libcall::Popcnt64 => popcnt64,
        Libcall::F32Ceil => f32_ceil,
        Libcall::F32Floor => f32_floor,
        Libcall::F32Trunc => f32_trunc,
        Libcall::F32Nearest => f32_nearest,
        Libcall::F64Ceil => f64_ceil,
        Libcall::F64Floor => f64_floor,
        Libcall::F64Trunc => f64_trunc,
        Libcall::F64Nearest => f64_nearest,
        Libcall::F32ConvertU64 => f32_convert_u64,
        Libcall::F64ConvertU64 => f64_convert_u64,
        Libcall::LazyAssemble => lazy_assemble,
        Libcall::Simd => simd_lanes,
        conversion => CONVERSIONS[conversion as usize - Libcall::I32TruncF32S as usize],
    }
}

/// Runs `f` on the instance that owns `vmctx`.
///
/// # Safety
/// `vmctx` must be the context of a live [`Instance`] that is currently executing (generated
/// code only passes its own `r14`).
unsafe fn with_instance<R>(vmctx: *mut VmContext, f: impl FnOnce(&mut Instance) -> R) -> R {
    // SAFETY: per the contract, `instance` points at the boxed Instance owning this vmctx, and
    // no other reference to it is used while generated code runs.
    let instance = unsafe { &mut *(*vmctx).instance.cast::<Instance>() };
    f(instance)
}

fn result(instance: &mut Instance, outcome: Result<(), TrapCode>) -> u64 {
    if let Err(code) = outcome {
        instance.vmctx.trap_code = code as u32;
    }
    0
}

unsafe extern "C" fn lazy_assemble(vm: *mut VmContext, index: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: called by a lazy stub with its own vmctx (the instance owning the function).
    unsafe {
        with_instance(vm, |i| {
            let outcome = i.assemble_lazy(index as u32);
            result(i, outcome)
        })
    }
}

unsafe extern "C" fn memory_grow(vm: *mut VmContext, delta: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: called by generated code with its own vmctx.
    unsafe {
        with_instance(vm, |i| {
            u64::from(i.grow_memory(delta as u32).unwrap_or(u32::MAX))
        })
    }
}

unsafe extern "C" fn memory_fill(vm: *mut VmContext, d: u64, v: u64, n: u64, _: u64) -> u64 {
    // SAFETY: called by generated code with its own vmctx.
    unsafe {
        with_instance(vm, |i| {
            let r = i.memory_fill(d as u32, v as u8, n as u32);
            result(i, r)
        })
    }
}

unsafe extern "C" fn memory_copy(vm: *mut VmContext, d: u64, s: u64, n: u64, _: u64) -> u64 {
    // SAFETY: called by generated code with its own vmctx.
    unsafe {
        with_instance(vm, |i| {
            let r = i.memory_copy(d as u32, s as u32, n as u32);
            result(i, r)
        })
    }
}

unsafe extern "C" fn memory_init(vm: *mut VmContext, d: u64, s: u64, n: u64, seg: u64) -> u64 {
    // SAFETY: called by generated code with its own vmctx.
    unsafe {
        with_instance(vm, |i| {
            let r = i.memory_init(seg as u32, d as u32, s as u32, n as u32);
            result(i, r)
        })
    }
}

unsafe extern "C" fn data_drop(vm: *mut VmContext, seg: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: called by generated code with its own vmctx.
    unsafe { with_instance(vm, |i| i.drop_data(seg as u32)) };
    0
}

unsafe extern "C" fn table_init(vm: *mut VmContext, d: u64, s: u64, n: u64, which: u64) -> u64 {
    // `which` is `table << 32 | segment`.
    // SAFETY: called by generated code with its own vmctx.
    unsafe {
        with_instance(vm, |i| {
            let (table, seg) = ((which >> 32) as u32, which as u32);
            let r = i.table_init(seg, table, d as u32, s as u32, n as u32);
            result(i, r)
        })
    }
}

unsafe extern "C" fn table_copy(vm: *mut VmContext, d: u64, s: u64, n: u64, tables: u64) -> u64 {
    // `tables` is `destination << 32 | source`.
    // SAFETY: called by generated code with its own vmctx.
    unsafe {
        with_instance(vm, |i| {
            let (dst, src) = ((tables >> 32) as u32, tables as u32);
            let r = i.table_copy(dst, src, d as u32, s as u32, n as u32);
            result(i, r)
        })
    }
}

unsafe extern "C" fn table_grow(vm: *mut VmContext, init: u64, n: u64, table: u64, _: u64) -> u64 {
    // SAFETY: called by generated code with its own vmctx.
    unsafe {
        with_instance(vm, |i| {
            u64::from(
                i.table_grow(table as u32, init, n as u32)
                    .unwrap_or(u32::MAX),
            )
        })
    }
}

unsafe extern "C" fn table_fill(vm: *mut VmContext, at: u64, v: u64, n: u64, table: u64) -> u64 {
    // SAFETY: called by generated code with its own vmctx.
    unsafe {
        with_instance(vm, |i| {
            let r = i.table_fill(table as u32, at as u32, v, n as u32);
            result(i, r)
        })
    }
}

unsafe extern "C" fn elem_drop(vm: *mut VmContext, seg: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: called by generated code with its own vmctx.
    unsafe { with_instance(vm, |i| i.drop_elem(seg as u32)) };
    0
}

extern "C" fn popcnt32(_: *mut VmContext, a: u64, _: u64, _: u64, _: u64) -> u64 {
    u64::from((a as u32).count_ones())
}

extern "C" fn popcnt64(_: *mut VmContext, a: u64, _: u64, _: u64, _: u64) -> u64 {
    u64::from(a.count_ones())
}

/// Rounding on raw bits, generic over the format: `mant` fraction bits, `bias`.
#[derive(Clone, Copy)]
pub(crate) enum Round {
    Ceil,
    Floor,
    Trunc,
    Nearest,
}

pub(crate) fn round_bits(bits: u64, width: u32, mant: u32, mode: Round) -> u64 {
    let exp_bits = width - 1 - mant;
    let bias = (1u64 << (exp_bits - 1)) - 1;
    let sign = bits >> (width - 1) & 1;
    let exp = bits >> mant & ((1 << exp_bits) - 1);
    let quiet = 1u64 << (mant - 1);
    if exp == (1 << exp_bits) - 1 {
        // Infinity stays; NaN becomes quiet.
        return if bits & ((1 << mant) - 1) != 0 {
            bits | quiet
        } else {
            bits
        };
    }
    if exp >= bias + u64::from(mant) {
        return bits; // already an integer
    }
    let neg_zero = sign << (width - 1);
    let one = bias << mant | neg_zero;
    if exp < bias {
        // |x| < 1: the result is ±0 or ±1.
        let is_zero = bits & !(1u64 << (width - 1)) == 0;
        let up = match mode {
            Round::Trunc => false,
            Round::Ceil => sign == 0 && !is_zero,
            Round::Floor => sign == 1 && !is_zero,
            // > 0.5 rounds away from zero; exactly 0.5 goes to even (0).
            Round::Nearest => exp == bias - 1 && bits & ((1 << mant) - 1) != 0,
        };
        return if up { one } else { neg_zero };
    }
    let frac_bits = u64::from(mant) - (exp - bias);
    let frac_mask = (1u64 << frac_bits) - 1;
    let frac = bits & frac_mask;
    if frac == 0 {
        return bits;
    }
    let truncated = bits & !frac_mask;
    let half = 1u64 << (frac_bits - 1);
    let away = match mode {
        Round::Trunc => false,
        Round::Ceil => sign == 0,
        Round::Floor => sign == 1,
        Round::Nearest => frac > half || (frac == half && truncated >> frac_bits & 1 == 1),
    };
    // Adding one unit in the last integer place carries into the exponent correctly.
    if away {
        truncated + (1 << frac_bits)
    } else {
        truncated
    }
}

macro_rules! rounding {
    ($name:ident, $width:expr, $mant:expr, $mode:expr) => {
        extern "C" fn $name(_: *mut VmContext, a: u64, _: u64, _: u64, _: u64) -> u64 {
            let mask = if $width == 64 {
                u64::MAX
            } else {
                u64::from(u32::MAX)
            };
            round_bits(a & mask, $width, $mant, $mode)
        }
    };
}

rounding!(f32_ceil, 32, 23, Round::Ceil);
rounding!(f32_floor, 32, 23, Round::Floor);
rounding!(f32_trunc, 32, 23, Round::Trunc);
rounding!(f32_nearest, 32, 23, Round::Nearest);
rounding!(f64_ceil, 64, 52, Round::Ceil);
rounding!(f64_floor, 64, 52, Round::Floor);
rounding!(f64_trunc, 64, 52, Round::Trunc);
rounding!(f64_nearest, 64, 52, Round::Nearest);

extern "C" fn f32_convert_u64(_: *mut VmContext, a: u64, _: u64, _: u64, _: u64) -> u64 {
    u64::from((a as f32).to_bits())
}

extern "C" fn f64_convert_u64(_: *mut VmContext, a: u64, _: u64, _: u64, _: u64) -> u64 {
    (a as f64).to_bits()
}

/// Float-to-int conversion; which one is decoded from the libcall index stored in `d`.
fn convert(index: u32, a: u64) -> Result<u64, TrapCode> {
    let unsigned = index & 1 != 0;
    let to_i64 = index & 2 != 0;
    let from_f64 = index & 4 != 0;
    let sat = index & 8 != 0;
    let x = if from_f64 {
        f64::from_bits(a)
    } else {
        f64::from(f32::from_bits(a as u32))
    };
    if sat {
        return Ok(match (to_i64, unsigned) {
            (false, false) => u64::from(x as i32 as u32),
            (false, true) => u64::from(x as u32),
            (true, false) => x as i64 as u64,
            (true, true) => x as u64,
        });
    }
    if x.is_nan() {
        return Err(TrapCode::InvalidConversion);
    }
    let (lo, hi) = match (to_i64, unsigned) {
        (false, false) => (-2147483649.0, 2147483648.0),
        (false, true) => (-1.0, 4294967296.0),
        (true, false) => (-9223372036854777856.0, 9223372036854775808.0),
        (true, true) => (-1.0, 18446744073709551616.0),
    };
    if !(x > lo && x < hi) {
        return Err(TrapCode::IntegerOverflow);
    }
    Ok(match (to_i64, unsigned) {
        (false, false) => u64::from(x as i32 as u32),
        (false, true) => u64::from(x as u32),
        (true, false) => x as i64 as u64,
        (true, true) => x as u64,
    })
}

macro_rules! conversion {
    ($($name:ident = $index:expr),* $(,)?) => {
        $(
            unsafe extern "C" fn $name(vm: *mut VmContext, a: u64, _: u64, _: u64, _: u64) -> u64 {
                match convert($index, a) {
                    Ok(v) => v,
                    Err(code) => {
                        // SAFETY: generated code passes its own, live vmctx.
                        unsafe { (*vm).trap_code = code as u32 };
                        0
                    }
                }
            }
        )*
        /// Conversion helpers by `index - I32TruncF32S`.
        const CONVERSIONS: [Helper; 16] = [$($name),*];
    };
}

conversion!(
    c0 = 0,
    c1 = 1,
    c2 = 2,
    c3 = 3,
    c4 = 4,
    c5 = 5,
    c6 = 6,
    c7 = 7,
    c8 = 8,
    c9 = 9,
    c10 = 10,
    c11 = 11,
    c12 = 12,
    c13 = 13,
    c14 = 14,
    c15 = 15,
);

/// `Libcall::Simd`: operands `a`, `b`, `c` at `ptr`, `ptr + 16`, `ptr + 32` (16 bytes each);
/// the result overwrites `a`.
unsafe extern "C" fn simd_lanes(_: *mut VmContext, op: u64, ptr: u64, _: u64, _: u64) -> u64 {
    let Some(&op) = super::lanes::LANE_OPS.get(op as usize) else {
        return 0;
    };
    let p = ptr as *mut u128;
    // SAFETY: generated code passes a pointer to 48 bytes of its own outgoing area (it
    // reserves 6 slots for this call); unaligned accesses because the area is 8-aligned.
    unsafe {
        let r = super::lanes::eval(
            op,
            p.read_unaligned(),
            p.add(1).read_unaligned(),
            p.add(2).read_unaligned(),
        );
        p.write_unaligned(r);
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r32(x: f32, mode: Round) -> f32 {
        f32::from_bits(round_bits(u64::from(x.to_bits()), 32, 23, mode) as u32)
    }

    #[test]
    fn rounding_matches_std() {
        for &x in &[
            0.5f32, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, -0.0, 3.7, -3.7, 8388607.5, 1e10, 0.0,
        ] {
            assert_eq!(
                r32(x, Round::Trunc).to_bits(),
                x.trunc().to_bits(),
                "trunc {x}"
            );
            assert_eq!(
                r32(x, Round::Ceil).to_bits(),
                x.ceil().to_bits(),
                "ceil {x}"
            );
            assert_eq!(
                r32(x, Round::Floor).to_bits(),
                x.floor().to_bits(),
                "floor {x}"
            );
            assert_eq!(
                r32(x, Round::Nearest).to_bits(),
                x.round_ties_even().to_bits(),
                "nearest {x}"
            );
        }
    }

    #[test]
    fn conversions_trap_exactly() {
        assert_eq!(
            convert(0, u64::from(2147483648.0f32.to_bits())),
            Err(TrapCode::IntegerOverflow)
        );
        assert_eq!(
            convert(0, u64::from(f32::NAN.to_bits())),
            Err(TrapCode::InvalidConversion)
        );
        assert_eq!(convert(1, u64::from((-0.9f32).to_bits())), Ok(0));
        assert_eq!(convert(4, (-2147483648.9f64).to_bits()), Ok(0x8000_0000));
    }
}
