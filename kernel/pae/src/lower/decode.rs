//! Decoding a function body's operators and validating them in one pass: wasmparser's reader
//! drives a visitor that first has the function's validator check the operator, then builds
//! it (what `OperatorsReader::read` builds), so the bytes are read once, and the validator is
//! called directly rather than through a match over a built [`Operator`].

use alloc::vec::Vec; // named by the operator macro (operators with lists)
use wasmparser::{
    BinaryReaderError, FuncValidator, Operator, OperatorsReader, ValidatorResources, VisitOperator,
    VisitSimdOperator,
};

/// Reads the next operator of `reader` and its offset, validated by `v`.
pub(super) fn read_validated<'a>(
    reader: &mut OperatorsReader<'a>,
    v: &mut FuncValidator<ValidatorResources>,
) -> Result<(Operator<'a>, u64), BinaryReaderError> {
    let at = reader.original_position();
    let op = reader.visit_operator(&mut Checked(v.simd_visitor(at)))??;
    Ok((op, at))
}

/// A validator's visitor `V`, building each operator it accepts.
struct Checked<V>(V);

macro_rules! define_visit_operator {
    ($(@$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*))*) => {
        $(
            fn $visit(&mut self $($(,$arg: $argty)*)?) -> Self::Output {
                self.0.$visit($($($arg.clone()),*)?)?;
                Ok(Operator::$op $({ $($arg),* })?)
            }
        )*
    }
}

#[allow(clippy::clone_on_copy)]
impl<'a, V> VisitOperator<'a> for Checked<V>
where
    V: VisitSimdOperator<'a, Output = wasmparser::Result<()>>,
{
    type Output = wasmparser::Result<Operator<'a>>;

    fn simd_visitor(&mut self) -> Option<&mut dyn VisitSimdOperator<'a, Output = Self::Output>> {
        Some(self)
    }

    wasmparser::for_each_visit_operator!(define_visit_operator);
}

#[allow(clippy::clone_on_copy)]
impl<'a, V> VisitSimdOperator<'a> for Checked<V>
where
    V: VisitSimdOperator<'a, Output = wasmparser::Result<()>>,
{
    wasmparser::for_each_visit_simd_operator!(define_visit_operator);
}
