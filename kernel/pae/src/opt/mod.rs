//! Optimization helpers. Constant folding lives in [`fold`]; dead-code elimination and the
//! compare-branch peephole are decisions made during lowering (see `Options`).

pub(crate) mod fold;
pub(crate) mod inline;
pub mod specialize;
