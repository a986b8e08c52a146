//! Q16.16 fixed point on `i64`.

/// Fractional bits.
pub const SHIFT: u32 = 16;
/// 1.0.
pub const ONE: i64 = 1 << SHIFT;

/// `a * b` in Q16 (through `i128`, saturating).
pub fn mul(a: i64, b: i64) -> i64 {
    sat((i128::from(a) * i128::from(b)) >> SHIFT)
}

/// `a / b` in Q16 (0 when `b` is 0; saturating).
pub fn div(a: i64, b: i64) -> i64 {
    if b == 0 {
        return 0;
    }
    sat((i128::from(a) << SHIFT) / i128::from(b))
}

/// The ratio `num / den` of two plain integers, in Q16 (0 when `den` is 0).
pub fn ratio(num: u64, den: u64) -> i64 {
    if den == 0 {
        return 0;
    }
    sat((i128::from(num) << SHIFT) / i128::from(den))
}

/// Q16 value to thousandths (for printing: 0.5 -> 500).
pub fn to_milli(v: i64) -> i64 {
    sat(i128::from(v) * 1000 / i128::from(ONE))
}

/// Thousandths to Q16.
pub fn from_milli(m: i64) -> i64 {
    sat(i128::from(m) * i128::from(ONE) / 1000)
}

/// `v` clamped to `[-bound, bound]`.
pub fn clamp(v: i64, bound: i64) -> i64 {
    v.clamp(-bound, bound)
}

/// log2 of `v` in Q16 (integer part plus a linear fraction; 0 for 0 and 1).
pub fn log2(v: u64) -> i64 {
    if v <= 1 {
        return 0;
    }
    let int = 63 - i64::from(v.leading_zeros());
    let base = 1u64 << int;
    let frac = ratio(v - base, base);
    (int << SHIFT) + frac
}

fn sat(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        assert_eq!(mul(ONE / 2, ONE / 2), ONE / 4);
        assert_eq!(div(ONE, 4 * ONE), ONE / 4);
        assert_eq!(div(ONE, 0), 0);
        assert_eq!(ratio(3, 4), 3 * ONE / 4);
        assert_eq!(to_milli(ONE / 2), 500);
        assert_eq!(from_milli(-250), -ONE / 4);
        assert_eq!(log2(1024), 10 * ONE);
        assert_eq!(log2(1536), 10 * ONE + ONE / 2);
        assert_eq!(log2(0), 0);
        assert_eq!(mul(i64::MAX, i64::MAX), i64::MAX);
    }
}
