//! Plain WebAssembly numbers (not vectors or references) as tools and the console read and print them, so the kernel's
//! `run` and the host reference (`chunkc run`) format results identically.

use core::fmt;

use crate::model::ValType;

/// A plain WebAssembly number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// i32.
    I32(i32),
    /// i64.
    I64(i64),
    /// f32.
    F32(f32),
    /// f64.
    F64(f64),
}

impl fmt::Display for Value {
    /// Integers in signed decimal; floats in Rust's `{:?}` form (`42.0`, `NaN`, `inf`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::I32(v) => write!(f, "{v}"),
            Self::I64(v) => write!(f, "{v}"),
            Self::F32(v) => write!(f, "{v:?}"),
            Self::F64(v) => write!(f, "{v:?}"),
        }
    }
}

impl Value {
    /// Parses an argument as `ty`: decimal, `0x` hex, or (for floats) any float Rust accepts.
    /// Integers may be given signed or unsigned.
    pub fn parse(text: &str, ty: ValType) -> Option<Self> {
        fn int(text: &str) -> Option<i128> {
            let (neg, digits) = match text.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, text),
            };
            let v = match digits.strip_prefix("0x") {
                Some(hex) => i128::from_str_radix(hex, 16).ok()?,
                None => digits.parse::<i128>().ok()?,
            };
            Some(if neg { -v } else { v })
        }
        match ty {
            ValType::I32 => {
                let v = int(text)?;
                let v = i32::try_from(v)
                    .ok()
                    .or_else(|| u32::try_from(v).ok().map(|u| u as i32))?;
                Some(Self::I32(v))
            }
            ValType::I64 => {
                let v = int(text)?;
                let v = i64::try_from(v)
                    .ok()
                    .or_else(|| u64::try_from(v).ok().map(|u| u as i64))?;
                Some(Self::I64(v))
            }
            ValType::F32 => text.parse().ok().map(Self::F32),
            ValType::F64 => text.parse().ok().map(Self::F64),
            ValType::V128 | ValType::FuncRef | ValType::ExternRef => None,
        }
    }

    /// The raw bits a code generator passes in a 64-bit slot (i32/f32 zero-extended).
    pub fn to_bits(self) -> u64 {
        match self {
            Self::I32(v) => u64::from(v as u32),
            Self::I64(v) => v as u64,
            Self::F32(v) => u64::from(v.to_bits()),
            Self::F64(v) => v.to_bits(),
        }
    }

    /// The number of type `ty` held in a 64-bit slot; `None` for a vector or a reference,
    /// which are not plain numbers.
    pub fn from_bits(bits: u64, ty: ValType) -> Option<Self> {
        Some(match ty {
            ValType::I32 => Self::I32(bits as u32 as i32),
            ValType::I64 => Self::I64(bits as i64),
            ValType::F32 => Self::F32(f32::from_bits(bits as u32)),
            ValType::F64 => Self::F64(f64::from_bits(bits)),
            ValType::V128 | ValType::FuncRef | ValType::ExternRef => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        assert_eq!(Value::parse("-1", ValType::I32), Some(Value::I32(-1)));
        assert_eq!(
            Value::parse("4294967295", ValType::I32),
            Some(Value::I32(-1))
        );
        assert_eq!(Value::parse("0x10", ValType::I64), Some(Value::I64(16)));
        assert_eq!(Value::parse("4294967296", ValType::I32), None);
        assert_eq!(Value::parse("x", ValType::F64), None);
        assert_eq!(Value::F64(18.0).to_string(), "18.0");
        assert_eq!(Value::I64(-5).to_string(), "-5");
    }

    #[test]
    fn bits_round_trip() {
        for (v, ty) in [
            (Value::I32(-7), ValType::I32),
            (Value::I64(i64::MIN), ValType::I64),
            (Value::F32(1.5), ValType::F32),
            (Value::F64(-0.25), ValType::F64),
        ] {
            assert_eq!(Value::from_bits(v.to_bits(), ty), Some(v));
        }
        for ty in [ValType::V128, ValType::FuncRef, ValType::ExternRef] {
            assert_eq!(Value::from_bits(0, ty), None);
            assert_eq!(Value::parse("0", ty), None);
        }
        assert_eq!(Value::I32(-1).to_bits(), 0xffff_ffff);
    }
}
