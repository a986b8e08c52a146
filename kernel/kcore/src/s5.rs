//! Finding the `\_S5` sleep-type values in a DSDT's AML without a full AML interpreter.
//!
//! ACPI soft-off writes `SLP_TYPa | SLP_EN` to PM1a_CNT (and `SLP_TYPb` to PM1b_CNT). The values
//! live in the package `Name (_S5, Package () { a, b, ... })`, which firmware emits as a plain
//! `NameOp` at the top level of the DSDT on every machine we know; we look for that encoding and
//! decode the first two integer elements. Firmware that computes `_S5` in a method is not
//! supported (the kernel then falls back to the reset path and says so).

use core::fmt;

/// The sleep-type values for S5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SleepType {
    /// SLP_TYPa, for PM1a_CNT.
    pub a: u16,
    /// SLP_TYPb, for PM1b_CNT.
    pub b: u16,
}

/// Why `\_S5` could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S5Error {
    /// No `_S5_` name object in the table.
    NotFound,
    /// `_S5_` was found but not as a package of integers.
    Malformed,
}

impl fmt::Display for S5Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            S5Error::NotFound => write!(f, "no \\_S5 object in the DSDT"),
            S5Error::Malformed => write!(f, "\\_S5 is not a static package of integers"),
        }
    }
}

const NAME_OP: u8 = 0x08;
const PACKAGE_OP: u8 = 0x12;
const ROOT_CHAR: u8 = b'\\';

/// Decodes `\_S5` from a DSDT's AML bytes (header included or not).
pub fn find_s5(aml: &[u8]) -> Result<SleepType, S5Error> {
    let mut malformed = false;
    let mut i = 0;
    while let Some(pos) = find(&aml[i..], b"_S5_") {
        let at = i + pos;
        i = at + 1;
        let name_op = match at.checked_sub(1).map(|p| aml[p]) {
            Some(NAME_OP) => true,
            Some(ROOT_CHAR) => at >= 2 && aml[at - 2] == NAME_OP,
            _ => false,
        };
        if !name_op {
            continue;
        }
        match decode_package(&aml[at + 4..]) {
            Some(t) => return Ok(t),
            None => malformed = true,
        }
    }
    Err(if malformed {
        S5Error::Malformed
    } else {
        S5Error::NotFound
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decodes `PackageOp PkgLength NumElements a b` into the first two integers.
fn decode_package(bytes: &[u8]) -> Option<SleepType> {
    let (&op, rest) = bytes.split_first()?;
    if op != PACKAGE_OP {
        return None;
    }
    let (&lead, _) = rest.split_first()?;
    let follow = usize::from(lead >> 6);
    let rest = rest.get(1 + follow..)?;
    let (&count, mut rest) = rest.split_first()?;
    if count < 2 {
        return None;
    }
    let (a, r) = integer(rest)?;
    rest = r;
    let (b, _) = integer(rest)?;
    Some(SleepType { a, b })
}

/// Reads one AML integer constant; sleep types are at most 3 bits, so larger values are refused.
fn integer(bytes: &[u8]) -> Option<(u16, &[u8])> {
    let (&op, rest) = bytes.split_first()?;
    let (value, rest): (u64, &[u8]) = match op {
        0x00 => (0, rest),
        0x01 => (1, rest),
        0x0a => (u64::from(*rest.first()?), rest.get(1..)?),
        0x0b => (
            u64::from(u16::from_le_bytes(rest.get(..2)?.try_into().ok()?)),
            rest.get(2..)?,
        ),
        0x0c => (
            u64::from(u32::from_le_bytes(rest.get(..4)?.try_into().ok()?)),
            rest.get(4..)?,
        ),
        _ => return None,
    };
    Some((u16::try_from(value).ok()?, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_style_package() {
        // Name (_S5, Package (0x04) { Zero, Zero, Zero, Zero }) as QEMU's q35 DSDT has it,
        // but with a BytePrefix value to prove decoding.
        let aml = [
            0xaa, 0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0x0a, 0x05, 0x00, 0x00, 0x00,
        ];
        assert_eq!(find_s5(&aml), Ok(SleepType { a: 5, b: 0 }));
    }

    #[test]
    fn rooted_name_and_multibyte_pkglength() {
        let aml = [
            0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x40, 0x00, 0x02, 0x01, 0x0b, 0x07, 0x00,
        ];
        assert_eq!(find_s5(&aml), Ok(SleepType { a: 1, b: 7 }));
    }

    #[test]
    fn reference_not_definition_is_skipped() {
        // A method referencing _S5_ (not after NameOp) before the real definition.
        let aml = [
            0x70, b'_', b'S', b'5', b'_', 0x08, b'_', b'S', b'5', b'_', 0x12, 0x05, 0x02, 0x0a,
            0x07, 0x00,
        ];
        assert_eq!(find_s5(&aml), Ok(SleepType { a: 7, b: 0 }));
    }

    #[test]
    fn errors() {
        assert_eq!(find_s5(b"nothing here"), Err(S5Error::NotFound));
        assert_eq!(
            find_s5(&[0x08, b'_', b'S', b'5', b'_', 0x14]),
            Err(S5Error::Malformed)
        );
        assert_eq!(
            find_s5(&[0x08, b'_', b'S', b'5', b'_', 0x12, 0x05]),
            Err(S5Error::Malformed)
        );
        assert_eq!(
            find_s5(&[0x08, b'_', b'S', b'5', b'_']),
            Err(S5Error::Malformed)
        );
    }

    #[test]
    fn truncations_never_panic() {
        let aml = [
            0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x40, 0x00, 0x02, 0x01, 0x0b, 0x07, 0x00,
        ];
        for n in 0..aml.len() {
            let _ = find_s5(&aml[..n]);
        }
    }
}
