//! Which callees are inlined (`Options::inline`): a pure judgement over one function's body.
//!
//! A callee is inlinable when it is small ([`MAX_OPS`] operators, [`MAX_LOCALS`] declared
//! locals), has no loop, may return, its parameters, results and locals are numeric or
//! references (no v128: the caller would need 16-byte home slots; declared locals are re-zeroed
//! at each inlined entry with a constant or `ref.null`), and it uses no operator whose meaning depends on being a
//! function of its own: tail calls (`return_call*`) and the exception-handling and GC
//! branches. Calls inside the body are allowed: inlined, they are calls of the caller (its
//! frame, its call-site metadata). The caller side (not itself, not a function reached through
//! a code cell, one level deep) is decided in `lower::inline`.

use alloc::vec::Vec;

use wasmparser::Operator;

use crate::module::Ty;

/// Largest body inlined, in operators (the final `end` not counted). A direct call costs about
/// 20 instructions besides the callee's body (arguments stored, `call`, frame set-up, stack
/// check, results copied, `leave; ret`, pinned locals and the memory base reloaded); a body of
/// up to 48 operators is about as long as that, so inlining at most doubles the code a call
/// site takes while covering address helpers (matmul's `$at`: 8) and small predicates with a
/// cold panic path (sieve's `is_prime`: 35).
pub const MAX_OPS: usize = 48;
/// Largest declared (non-parameter) local count inlined.
pub const MAX_LOCALS: usize = 16;
/// Bodies longer than this in bytes are refused without being decoded (every operator takes
/// at least one byte, most small ones two or three).
pub const MAX_BODY_BYTES: usize = 8 * MAX_OPS;

/// Why a function is not inlined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// More than [`MAX_OPS`] operators or [`MAX_BODY_BYTES`] bytes.
    TooLarge,
    /// More than [`MAX_LOCALS`] declared locals.
    TooManyLocals,
    /// A v128 parameter, result or local.
    Type,
    /// An operator that needs a frame of its own (tail calls, exceptions, GC branches).
    Operator,
    /// The body has a loop: it runs long per call, so the call costs little beside it, and its
    /// locals, hot inside the loop, would compete with the caller's for registers.
    Loop,
    /// The function never returns (it ends in `unreachable` with no `return` or branch out of
    /// its body: a panic helper). Its calls sit on cold paths, where inlining gains nothing
    /// and its locals would compete with the caller's for registers.
    NeverReturns,
}

/// What the lowering needs to know of an inlinable body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// By local index (parameters first): whether the body writes it (`local.set`/`tee`).
    pub written: Vec<bool>,
    /// The body has no structured control flow, branch, `return` or `unreachable` (before its
    /// final `end`): every operator runs, in order.
    pub straight: bool,
}

/// Judges a function with `params`/`results`, declared locals `declared` and body `ops` (the
/// final `end` included).
pub fn judge(
    params: &[Ty],
    results: &[Ty],
    declared: &[Ty],
    ops: &[(Operator<'_>, u32)],
) -> Result<Summary, Refusal> {
    if ops.len() > MAX_OPS + 1 {
        return Err(Refusal::TooLarge);
    }
    if declared.len() > MAX_LOCALS {
        return Err(Refusal::TooManyLocals);
    }
    if params
        .iter()
        .chain(results)
        .chain(declared)
        .any(|t| t.is_v128())
    {
        return Err(Refusal::Type);
    }
    let mut written = alloc::vec![false; params.len() + declared.len()];
    let mut straight = true;
    // Blocks open (the function's own frame not counted), and whether the body leaves its
    // frame other than by falling off its end.
    let mut depth = 0u32;
    let mut leaves = false;
    for (op, _) in &ops[..ops.len().saturating_sub(1)] {
        match *op {
            Operator::Loop { .. } => return Err(Refusal::Loop),
            Operator::Block { .. } | Operator::If { .. } => depth += 1,
            Operator::End => depth = depth.saturating_sub(1),
            Operator::Return => leaves = true,
            Operator::Br { relative_depth } | Operator::BrIf { relative_depth } => {
                leaves |= relative_depth == depth;
            }
            Operator::BrTable { ref targets } => {
                leaves |= targets.default() == depth
                    || targets.targets().any(|t| t.is_ok_and(|t| t == depth));
            }
            _ => {}
        }
        match *op {
            Operator::Block { .. }
            | Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::Else
            | Operator::End
            | Operator::Br { .. }
            | Operator::BrIf { .. }
            | Operator::BrTable { .. }
            | Operator::Return
            | Operator::Unreachable => straight = false,
            Operator::LocalSet { local_index } | Operator::LocalTee { local_index } => {
                written[local_index as usize] = true;
            }
            Operator::ReturnCall { .. }
            | Operator::ReturnCallIndirect { .. }
            | Operator::ReturnCallRef { .. }
            | Operator::TryTable { .. }
            | Operator::Try { .. }
            | Operator::Delegate { .. }
            | Operator::Rethrow { .. }
            | Operator::Throw { .. }
            | Operator::ThrowRef
            | Operator::BrOnNull { .. }
            | Operator::BrOnNonNull { .. }
            | Operator::BrOnCast { .. }
            | Operator::BrOnCastFail { .. } => return Err(Refusal::Operator),
            _ => {}
        }
    }
    let ends_in_unreachable =
        ops.len() >= 2 && matches!(ops[ops.len() - 2].0, Operator::Unreachable);
    if ends_in_unreachable && !leaves {
        return Err(Refusal::NeverReturns);
    }
    Ok(Summary { written, straight })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmparser::{BinaryReader, FunctionBody};

    /// The operators of the first body of `wat`'s module.
    fn judge_wat(
        wat: &str,
        params: &[Ty],
        results: &[Ty],
        declared: &[Ty],
    ) -> Result<Summary, Refusal> {
        let bytes = wat::parse_str(wat).expect("wat");
        for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
            if let Ok(wasmparser::Payload::CodeSectionEntry(body)) = payload {
                let range = body.range();
                let body = FunctionBody::new(BinaryReader::new(
                    &bytes[range.start as usize..range.end as usize],
                    range.start,
                ));
                let mut ops = Vec::new();
                let mut r = body.get_operators_reader().expect("ops");
                while !r.eof() {
                    let (op, at) = r.read_with_offset().expect("op");
                    ops.push((op, at as u32));
                }
                return judge(params, results, declared, &ops);
            }
        }
        panic!("no body");
    }

    #[test]
    fn small_bodies_pass_and_report_written_locals() {
        let s = judge_wat(
            "(module (func (param i32 i32) (result i32) (local i64)
               (local.set 1 (i32.add (local.get 0) (local.get 1))) (local.get 1)))",
            &[Ty::I32, Ty::I32],
            &[Ty::I32],
            &[Ty::I64],
        )
        .expect("inlinable");
        assert_eq!(s.written, [false, true, false]);
        assert!(s.straight);
    }

    #[test]
    fn large_bodies_locals_vectors_and_tail_calls_are_refused() {
        let mut body = alloc::string::String::new();
        for _ in 0..MAX_OPS / 2 + 1 {
            body.push_str("(drop (i32.const 1)) ");
        }
        let big = alloc::format!("(module (func {body}))");
        assert_eq!(judge_wat(&big, &[], &[], &[]), Err(Refusal::TooLarge));
        assert_eq!(
            judge_wat("(module (func (param v128)))", &[Ty::V128], &[], &[]),
            Err(Refusal::Type)
        );
        let many = [Ty::I32; MAX_LOCALS + 1];
        let wat = alloc::format!("(module (func (local {})))", "i32 ".repeat(MAX_LOCALS + 1));
        assert_eq!(
            judge_wat(&wat, &[], &[], &many),
            Err(Refusal::TooManyLocals)
        );
        assert_eq!(
            judge_wat("(module (func $f (return_call $f)))", &[], &[], &[]),
            Err(Refusal::Operator)
        );
        assert_eq!(
            judge_wat("(module (func (loop (br 0))))", &[], &[], &[]),
            Err(Refusal::Loop)
        );
        assert_eq!(
            judge_wat(
                "(module (func $p (param i32) (drop (local.get 0)) (call $p (i32.const 1)) (unreachable)))",
                &[Ty::I32],
                &[],
                &[]
            ),
            Err(Refusal::NeverReturns)
        );
        // Ending in `unreachable` after a branch out of the body: it may return.
        assert!(
            judge_wat(
                "(module (func (param i32) (block (br_if 1 (local.get 0))) (unreachable)))",
                &[Ty::I32],
                &[],
                &[]
            )
            .is_ok()
        );
    }
}
