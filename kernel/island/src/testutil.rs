//! Test helpers: real modules compiled by `atoll_pae`, an independent decoder view of code, and
//! a simulated thread stack that follows the generated calling convention step by step.

use std::collections::BTreeMap;
use std::vec::Vec;

use atoll_pae::{CompiledModule, Options};
use iced_x86::{Code, Decoder, DecoderOptions, Instruction};

use crate::refs::StackMemory;

/// Recursive Fibonacci: deep recursion through one function.
pub const FIB: &str = r#"
(module
  (func $fib (export "fib") (param i64) (result i64)
    local.get 0
    i64.const 2
    i64.lt_u
    if (result i64)
      local.get 0
    else
      local.get 0
      i64.const 1
      i64.sub
      call $fib
      local.get 0
      i64.const 2
      i64.sub
      call $fib
      i64.add
    end))
"#;

/// A `br_table` of 9 targets and a default (a jump table with the default options) in a loop.
pub const SWITCH: &str = r#"
(module
  (func $sw (export "sw") (param $n i32) (result i32)
    (local $acc i32)
    (loop $next
      (block (block (block (block (block (block (block (block (block (block
        (br_table 0 1 2 3 4 5 6 7 8 9 (i32.rem_u (local.get $n) (i32.const 11))))
        (local.set $acc (i32.add (local.get $acc) (i32.const 1))))
        (local.set $acc (i32.add (local.get $acc) (i32.const 2))))
        (local.set $acc (i32.add (local.get $acc) (i32.const 3))))
        (local.set $acc (i32.add (local.get $acc) (i32.const 4))))
        (local.set $acc (i32.add (local.get $acc) (i32.const 5))))
        (local.set $acc (i32.add (local.get $acc) (i32.const 6))))
        (local.set $acc (i32.add (local.get $acc) (i32.const 7))))
        (local.set $acc (i32.add (local.get $acc) (i32.const 8))))
        (local.set $acc (i32.mul (local.get $acc) (i32.const 3))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $next (local.get $n)))
    (local.get $acc)))
"#;

/// A loop calling a helper, a libcall (`f64.ceil`), an import and an indirect call.
pub const LOOP: &str = r#"
(module
  (import "env" "log" (func $log (param i32)))
  (type $t (func (param i32) (result i32)))
  (table 2 funcref)
  (elem (i32.const 0) $helper $twice)
  (func $helper (param i32) (result i32)
    local.get 0
    i32.const 3
    i32.mul
    i32.const 1
    i32.add)
  (func $twice (param i32) (result i32)
    local.get 0
    call $helper
    call $helper)
  (func $main (export "main") (param i32) (result i32)
    (local $i i32) (local $acc i32)
    block
      loop
        local.get $i
        local.get 0
        i32.ge_u
        br_if 1
        local.get $acc
        call $helper
        local.get $i
        i32.const 1
        i32.and
        call_indirect (type $t)
        f64.convert_i32_u
        f64.ceil
        i32.trunc_f64_u
        local.set $acc
        local.get $acc
        call $log
        local.get $i
        i32.const 1
        i32.add
        local.set $i
        br 0
      end
    end
    local.get $acc))
"#;

/// Compiles a `.wat` text with the default options (but no inlining) on the SSE2 baseline: the
/// tests reach runtime helpers (libcalls) through operators (`f64.ceil`, `popcnt`) that a CPU
/// with SSE4.1 or POPCNT gets inline.
pub fn compile(wat: &str) -> CompiledModule {
    compile_with(wat, &Options::default())
}

/// Compiles a `.wat` text (on the SSE2 baseline, see [`compile`]).
pub fn compile_with(wat: &str, options: &Options) -> CompiledModule {
    let bytes = wat::parse_str(wat).expect("valid wat");
    // Not inlined: the calls between the small test functions are what islands link and
    // patch (the QEMU tests relocate islands holding inlined code).
    let options = Options {
        cpu: atoll_pae::CpuFeatures::SSE2,
        inline: false,
        ..*options
    };
    atoll_pae::compile(&bytes, &options).expect("compiles")
}

/// Every instruction of `code` decoded at `ip`.
pub fn decode(code: &[u8], ip: u64) -> Vec<Instruction> {
    let mut d = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut out = Vec::new();
    while d.can_decode() {
        let ins = d.decode();
        assert!(!ins.is_invalid(), "invalid instruction at {:#x}", ins.ip());
        out.push(ins);
    }
    out
}

/// Addresses of the instructions with `code` in `code` decoded at `ip`.
pub fn find(code: &[u8], ip: u64, which: Code) -> Vec<u64> {
    decode(code, ip)
        .iter()
        .filter(|i| i.code() == which)
        .map(|i| i.ip())
        .collect()
}

/// A thread's stack, simulated word by word, with the registers the walk reads. Every push of
/// a return address is remembered, so a test knows exactly where the live ones are.
#[derive(Debug, Clone, Default)]
pub struct Sim {
    pub mem: BTreeMap<u64, u64>,
    pub rsp: u64,
    pub rbp: u64,
    pub rip: u64,
    /// Slots holding return addresses (pushed by `call`, not yet popped by `ret`).
    pub ret_slots: Vec<u64>,
}

impl StackMemory for Sim {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        self.mem.get(&addr).copied()
    }
}

impl Sim {
    /// A thread whose stack ends at `top`, as the kernel starts it: `rbp == 0`, inside a
    /// foreign entry function with a frame.
    pub fn new(top: u64, entry: u64) -> Self {
        let mut s = Self {
            rsp: top,
            ..Self::default()
        };
        // Reserve the stack (readable, zero) and build the entry frame.
        for a in (top - 0x10_0000..top).step_by(8) {
            s.mem.insert(a, 0);
        }
        s.call(0, entry);
        s.frame(32);
        s
    }

    pub fn push(&mut self, v: u64) {
        self.rsp -= 8;
        self.mem.insert(self.rsp, v);
    }

    pub fn pop(&mut self) -> u64 {
        let v = self.mem[&self.rsp];
        self.rsp += 8;
        v
    }

    /// `call target` from a call instruction that returns to `ret`.
    pub fn call(&mut self, ret: u64, target: u64) {
        self.push(ret);
        self.ret_slots.push(self.rsp);
        self.rip = target;
    }

    /// `push rbp` (1 byte).
    pub fn push_rbp(&mut self) {
        self.push(self.rbp);
        self.rip += 1;
    }

    /// `mov rbp, rsp` (3 bytes).
    pub fn mov_rbp_rsp(&mut self) {
        self.rbp = self.rsp;
        self.rip += 3;
    }

    /// The whole prologue plus `sub rsp, bytes` (the RIP is left where the caller sets it).
    pub fn frame(&mut self, bytes: u64) {
        self.push_rbp();
        self.mov_rbp_rsp();
        self.rsp -= bytes;
    }

    /// `leave`, leaving the RIP at `ret_at`.
    pub fn leave(&mut self, ret_at: u64) {
        self.rsp = self.rbp;
        self.rbp = self.pop();
        self.rip = ret_at;
    }

    /// `ret`.
    pub fn ret(&mut self) {
        let slot = self.rsp;
        self.rip = self.pop();
        self.ret_slots.retain(|&s| s != slot);
    }

    /// The registers the walk starts from.
    pub fn ctx(&self) -> crate::refs::ThreadContext {
        crate::refs::ThreadContext {
            rip: self.rip,
            rsp: self.rsp,
            rbp: self.rbp,
        }
    }
}
