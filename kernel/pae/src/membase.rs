//! Which calls may move linear memory: the memory base register (`r15`) is reloaded after a
//! direct call only when the callee can, transitively, change where memory lies.
//!
//! The base changes only when memory grows (`memory.grow`, which may move a memory that is not
//! reserved in place), and another instance sharing the memory can grow it only while code of
//! that instance runs, which is reached only through an imported function (a host function or
//! another instance's wasm) or through `call_indirect` (a funcref of another instance). So a
//! defined function *may move memory* when its body has `memory.grow`, `call_indirect` or
//! `return_call_indirect`, or a direct call (or tail call) of an import or of a function that
//! may move memory. The fixed point is computed over the direct-call graph from the bodies, so
//! recursion and calls of functions later in the module are covered. Every other runtime
//! helper leaves the memory where it is, and lazy stubs only assemble code (they reload the
//! base themselves).
//!
//! A module without a memory never needs the base: nothing moves it.

use alloc::vec;
use alloc::vec::Vec;

use wasmparser::{BinaryReader, FunctionBody, Operator};

use crate::CompileError;
use crate::module::ModuleDesc;

/// By function index: whether calling the function may change the memory base (imports
/// always may, when the module has a memory).
pub fn may_move_memory(bytes: &[u8], desc: &ModuleDesc) -> Result<Vec<bool>, CompileError> {
    let n = desc.funcs.len();
    if desc.memory.is_none() {
        return Ok(vec![false; n]);
    }
    let imports = desc.func_imports as usize;
    let mut moves = vec![false; n];
    moves[..imports].fill(true);
    // callers[g]: the defined functions calling `g` directly (each at most once).
    let mut callers: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (i, range) in desc.bodies.iter().enumerate() {
        let f = imports + i;
        let body = FunctionBody::new(BinaryReader::new(&bytes[range.clone()], range.start as u64));
        let mut ops = body.get_operators_reader()?;
        while !ops.eof() {
            match ops.read()? {
                Operator::MemoryGrow { .. }
                | Operator::CallIndirect { .. }
                | Operator::ReturnCallIndirect { .. } => moves[f] = true,
                Operator::Call { function_index } | Operator::ReturnCall { function_index } => {
                    let g = function_index as usize;
                    if g < imports {
                        moves[f] = true;
                    } else if g < n && callers[g].last() != Some(&(f as u32)) {
                        callers[g].push(f as u32);
                    }
                }
                _ => {}
            }
        }
    }
    // Propagate to callers: a worklist of functions known to move memory.
    let mut work: Vec<u32> = (0..n as u32).filter(|&f| moves[f as usize]).collect();
    while let Some(g) = work.pop() {
        for &f in &callers[g as usize] {
            if !moves[f as usize] {
                moves[f as usize] = true;
                work.push(f);
            }
        }
    }
    Ok(moves)
}

#[cfg(test)]
mod tests;
