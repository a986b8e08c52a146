//! Constant folding of integer operators with exact WebAssembly semantics. Operators that would
//! trap (division by zero, signed overflow) are not folded, so the trap happens at run time.

/// Integer binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bin {
    Add,
    Sub,
    Mul,
    And,
    Or,
    Xor,
    Shl,
    ShrS,
    ShrU,
    Rotl,
    Rotr,
    DivS,
    DivU,
    RemS,
    RemU,
}

/// Integer comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    LtS,
    LtU,
    GtS,
    GtU,
    LeS,
    LeU,
    GeS,
    GeU,
}

/// Folds `a op b` on `wide` (i64) or i32 values given as zero-extended bits.
pub(crate) fn bin(op: Bin, wide: bool, a: u64, b: u64) -> Option<u64> {
    if wide {
        let (x, y) = (a, b);
        let (sx, sy) = (x as i64, y as i64);
        Some(match op {
            Bin::Add => x.wrapping_add(y),
            Bin::Sub => x.wrapping_sub(y),
            Bin::Mul => x.wrapping_mul(y),
            Bin::And => x & y,
            Bin::Or => x | y,
            Bin::Xor => x ^ y,
            Bin::Shl => x.wrapping_shl(y as u32),
            Bin::ShrS => sx.wrapping_shr(y as u32) as u64,
            Bin::ShrU => x.wrapping_shr(y as u32),
            Bin::Rotl => x.rotate_left((y & 63) as u32),
            Bin::Rotr => x.rotate_right((y & 63) as u32),
            Bin::DivS => sx.checked_div(sy)? as u64,
            Bin::DivU => x.checked_div(y)?,
            Bin::RemS => {
                if sy == 0 {
                    return None;
                }
                sx.wrapping_rem(sy) as u64
            }
            Bin::RemU => x.checked_rem(y)?,
        })
    } else {
        let (x, y) = (a as u32, b as u32);
        let (sx, sy) = (x as i32, y as i32);
        let r = match op {
            Bin::Add => x.wrapping_add(y),
            Bin::Sub => x.wrapping_sub(y),
            Bin::Mul => x.wrapping_mul(y),
            Bin::And => x & y,
            Bin::Or => x | y,
            Bin::Xor => x ^ y,
            Bin::Shl => x.wrapping_shl(y),
            Bin::ShrS => sx.wrapping_shr(y) as u32,
            Bin::ShrU => x.wrapping_shr(y),
            Bin::Rotl => x.rotate_left(y & 31),
            Bin::Rotr => x.rotate_right(y & 31),
            Bin::DivS => sx.checked_div(sy)? as u32,
            Bin::DivU => x.checked_div(y)?,
            Bin::RemS => {
                if sy == 0 {
                    return None;
                }
                sx.wrapping_rem(sy) as u32
            }
            Bin::RemU => x.checked_rem(y)?,
        };
        Some(u64::from(r))
    }
}

/// Folds a comparison to 0 or 1.
pub(crate) fn cmp(op: Cmp, wide: bool, a: u64, b: u64) -> u64 {
    let (x, y, sx, sy) = if wide {
        (a, b, a as i64, b as i64)
    } else {
        (
            u64::from(a as u32),
            u64::from(b as u32),
            i64::from(a as u32 as i32),
            i64::from(b as u32 as i32),
        )
    };
    u64::from(match op {
        Cmp::Eq => x == y,
        Cmp::Ne => x != y,
        Cmp::LtS => sx < sy,
        Cmp::LtU => x < y,
        Cmp::GtS => sx > sy,
        Cmp::GtU => x > y,
        Cmp::LeS => sx <= sy,
        Cmp::LeU => x <= y,
        Cmp::GeS => sx >= sy,
        Cmp::GeU => x >= y,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_like_wasm() {
        assert_eq!(bin(Bin::DivS, false, 0x8000_0000, 0xFFFF_FFFF), None);
        assert_eq!(bin(Bin::RemS, false, 0x8000_0000, 0xFFFF_FFFF), Some(0));
        assert_eq!(bin(Bin::Shl, false, 1, 33), Some(2));
        assert_eq!(bin(Bin::ShrS, true, u64::MAX, 65), Some(u64::MAX));
        assert_eq!(bin(Bin::DivU, true, 1, 0), None);
        assert_eq!(cmp(Cmp::LtS, false, 0xFFFF_FFFF, 0), 1);
        assert_eq!(cmp(Cmp::LtU, false, 0xFFFF_FFFF, 0), 0);
    }
}
