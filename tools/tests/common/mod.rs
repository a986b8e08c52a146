//! Helpers shared by the code generator's machine-code tests (`pae_*.rs`): compile WebAssembly
//! text on the host, decode one function's code, find a loop. Each test file uses a subset.
#![allow(dead_code)]

use std::sync::Arc;

use atoll_pae::{CompiledModule, Options};
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind};
use tools::chunkc::wast_host;

/// `wat` compiled for the host with `options` (panics on an error: the modules are the tests').
pub fn compile(wat: &str, options: &Options) -> Arc<CompiledModule> {
    let bytes = wat::parse_str(wat).expect("wat");
    wast_host::compile(&bytes, options).expect("compile")
}

/// The instructions of function `index`, at their code offsets.
pub fn decode(module: &CompiledModule, index: usize) -> Vec<Instruction> {
    let r = module.funcs[index].code_range.clone();
    let code = &module.code[r.start as usize..r.end as usize];
    let mut d = Decoder::with_ip(64, code, u64::from(r.start), DecoderOptions::NONE);
    let mut out = Vec::new();
    while d.can_decode() {
        out.push(d.decode());
    }
    out
}

/// Instructions from the target of the function's first backward branch to that branch (the
/// innermost loop of the tests' functions).
pub fn loop_body(ins: &[Instruction]) -> &[Instruction] {
    let back = ins
        .iter()
        .position(|i| {
            i.op0_kind() == OpKind::NearBranch64
                && i.mnemonic() != Mnemonic::Call
                && i.near_branch_target() < i.ip()
        })
        .expect("a loop");
    let head = ins
        .iter()
        .position(|i| i.ip() == ins[back].near_branch_target())
        .expect("loop head on an instruction");
    &ins[head..=back]
}
