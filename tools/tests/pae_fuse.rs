//! Instruction selection over pinned locals and the flags (`Options::fuse`), checked on the
//! machine code and against wasmi: a counted loop reads its pinned locals in place (no `mov`
//! copying a register), increments them in place and branches on `cmp` + `jcc` with no
//! `setcc` even through an `i32.eqz`; a `select` of a compare is `cmp` + `cmovcc`. Edge cases
//! (a local written while a `local.get` of it is still on the value stack, across blocks,
//! branches and calls; `select` with equal operands; i64 and float compares, NaN included,
//! through `eqz`, `select` and `br_if`) give wasmi's results with the option on and off. The
//! spec scripts and the random differential test run both settings (`wast_spec.rs`,
//! `pae_diff_random.rs`).
#![cfg(target_arch = "x86_64")]

use atoll_pae::{CpuFeatures, Options, Ty};
use iced_x86::{Code, Instruction, Mnemonic, OpKind};
use tools::chunkc::wast_host;

mod common;
use common::{compile, decode, loop_body};

const COUNTED: &str = r#"
(module
  (memory 1)
  (data (i32.const 0) "\01\02\03\04\05\06\07\08\09\0a\0b\0c\0d\0e\0f\10")
  ;; s = (s + i + mem[i]) ^ k for i below n (at least once)
  (func (export "count") (param $n i32) (param $k i32) (result i32)
    (local $i i32) (local $s i32)
    (loop $l
      (local.set $s (i32.add (local.get $s) (local.get $i)))
      (local.set $s (i32.add (local.get $s) (i32.load8_u (local.get $i))))
      (local.set $s (i32.xor (local.get $s) (local.get $k)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.eqz (i32.ge_u (local.get $i) (local.get $n)))))
    (local.get $s))
  (func (export "max") (param $a i32) (param $b i32) (result i32)
    (select (local.get $a) (local.get $b) (i32.gt_s (local.get $a) (local.get $b))))
)
"#;

const EDGES: &str = r#"
(module
  (func $id (param i32) (result i32) (local.get 0))
  ;; $x written while a local.get of it is on the value stack, in and out of blocks
  (func (export "old_below_set") (param $x i32) (param $y i32) (result i32)
    (local $i i32) (local $acc i32)
    (loop $l
      (local.get $x)
      (local.set $x (i32.const 1))
      (local.set $acc (i32.add (local.get $acc) (i32.sub (local.get $x))))
      (local.set $acc (i32.add (local.get $acc)
        (i32.sub
          (local.get $x)
          (block (result i32)
            (local.set $x (i32.add (local.get $x) (i32.const 3)))
            (local.get $x)))))
      (local.set $acc (i32.xor (local.get $acc)
        (i32.mul (local.get $x) (local.tee $x (i32.sub (local.get $y) (local.get $x))))))
      (local.set $y (i32.add (local.get $x) (local.get $y)))
      (local.set $x (i32.add (local.get $y) (local.get $x)))
      (local.set $x (i32.sub (local.get $x) (local.get $x)))
      (local.set $x (i32.shl (local.get $y) (local.get $x)))
      (local.set $y (i32.shr_u (local.get $x) (local.get $y)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 5))))
    (i32.add (local.get $acc) (i32.add (local.get $x) (local.get $y))))
  ;; an alias as a branch value, and across a call
  (func (export "across_br_and_call") (param $x i32) (param $y i32) (result i32)
    (local $i i32) (local $s i32)
    (loop $l
      (local.set $s (i32.add (local.get $s)
        (block $b (result i32)
          (local.get $x)
          (local.set $x (i32.add (local.get $x) (local.get $y)))
          (br_if $b (i32.and (local.get $x) (i32.const 1)))
          (drop)
          (local.get $x))))
      (local.set $s (i32.add (local.get $s)
        (i32.sub (local.get $x)
          (call $id (local.tee $x (i32.add (local.get $x) (local.get $y)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.eqz (i32.ge_u (local.get $i) (i32.const 6)))))
    (i32.add (local.get $s) (local.get $x)))
  (func (export "selects_i32") (param $x i32) (param $y i32) (result i32)
    (local $i i32) (local $s i32)
    (loop $l
      (local.set $s (i32.add (local.get $s)
        (select (local.get $x) (local.get $x) (i32.lt_s (local.get $x) (local.get $y)))))
      (local.set $s (i32.add (local.get $s)
        (select (local.get $x) (i32.const 7) (i32.gt_u (i32.const 5) (local.get $y)))))
      (local.set $s (i32.add (local.get $s)
        (select (i32.const -1) (local.get $y) (i32.eqz (i32.and (local.get $x) (i32.const 1))))))
      (local.set $s (i32.add (local.get $s)
        (select (local.get $y) (local.get $x) (local.get $i))))
      (local.set $x
        (select (local.get $y) (local.get $x) (i32.eqz (i32.eqz (i32.ge_s (local.get $x) (local.get $y))))))
      (local.set $s (i32.add (local.get $s) (i32.le_u (local.get $x) (local.get $s))))
      (local.set $s (i32.add (local.get $s) (i32.eqz (i32.and (local.get $s) (local.get $y)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (local.set $y (i32.rotl (local.get $y) (local.get $i)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 4))))
    (local.get $s))
  (func (export "selects_i64") (param $x i64) (param $y i64) (result i64)
    (local $i i32) (local $s i64)
    (loop $l
      (local.set $s (i64.add (local.get $s)
        (select (local.get $x) (local.get $y) (i64.le_u (local.get $x) (local.get $y)))))
      (local.set $s (i64.xor (local.get $s)
        (select (local.get $y) (local.get $s) (i32.eqz (i64.lt_s (local.get $y) (local.get $x))))))
      (local.set $s (i64.add (local.get $s) (i64.extend_i32_u (i64.eqz (local.get $x)))))
      (block $skip
        (br_if $skip (i32.eqz (i64.gt_u (local.get $x) (i64.const 100))))
        (local.set $s (i64.sub (local.get $s) (i64.const 3))))
      (local.set $x (i64.rotr (local.get $x) (i64.const 7)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 4))))
    (local.get $s))
  ;; each float compare through eqz (bits 0-5), select (bits 8-13) and br_if (bits 16-21)
  (func (export "float_compares") (param $x f64) (param $y f64) (result i32)
    (local $m i32) (local $i i32)
    (loop $l
      (local.set $m (i32.or (local.get $m) (i32.eqz (f64.lt (local.get $x) (local.get $y)))))
      (local.set $m (i32.or (local.get $m) (i32.shl (i32.eqz (f64.le (local.get $x) (local.get $y))) (i32.const 1))))
      (local.set $m (i32.or (local.get $m) (i32.shl (i32.eqz (f64.gt (local.get $x) (local.get $y))) (i32.const 2))))
      (local.set $m (i32.or (local.get $m) (i32.shl (i32.eqz (f64.ge (local.get $x) (local.get $y))) (i32.const 3))))
      (local.set $m (i32.or (local.get $m) (i32.shl (i32.eqz (f64.eq (local.get $x) (local.get $y))) (i32.const 4))))
      (local.set $m (i32.or (local.get $m) (i32.shl (i32.eqz (f64.ne (local.get $x) (local.get $y))) (i32.const 5))))
      (local.set $m (i32.or (local.get $m) (select (i32.const 0x100) (i32.const 0) (f64.lt (local.get $x) (local.get $y)))))
      (local.set $m (i32.or (local.get $m) (select (i32.const 0x200) (i32.const 0) (f64.le (local.get $x) (local.get $y)))))
      (local.set $m (i32.or (local.get $m) (select (i32.const 0x400) (i32.const 0) (f64.gt (local.get $x) (local.get $y)))))
      (local.set $m (i32.or (local.get $m) (select (i32.const 0x800) (i32.const 0) (f64.ge (local.get $x) (local.get $y)))))
      (local.set $m (i32.or (local.get $m) (select (i32.const 0x1000) (i32.const 0) (f64.eq (local.get $x) (local.get $y)))))
      (local.set $m (i32.or (local.get $m) (select (i32.const 0x2000) (i32.const 0) (f64.ne (local.get $x) (local.get $y)))))
      (block $a (br_if $a (i32.eqz (f64.lt (local.get $x) (local.get $y))))
        (local.set $m (i32.or (local.get $m) (i32.const 0x10000))))
      (block $a (br_if $a (i32.eqz (f64.le (local.get $x) (local.get $y))))
        (local.set $m (i32.or (local.get $m) (i32.const 0x20000))))
      (block $a (br_if $a (i32.eqz (f64.gt (local.get $x) (local.get $y))))
        (local.set $m (i32.or (local.get $m) (i32.const 0x40000))))
      (block $a (br_if $a (i32.eqz (f64.ge (local.get $x) (local.get $y))))
        (local.set $m (i32.or (local.get $m) (i32.const 0x80000))))
      (if (i32.eqz (f64.eq (local.get $x) (local.get $y)))
        (then (local.set $m (i32.or (local.get $m) (i32.const 0x100000)))))
      (if (f64.ne (local.get $x) (local.get $y))
        (then (local.set $m (i32.or (local.get $m) (i32.const 0x200000)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 2))))
    (local.get $m))
  ;; float select with float compares, and arithmetic into a pinned float local
  (func (export "float_selects") (param $x f32) (param $y f32) (result i64)
    (local $a f32) (local $b f32) (local $i i32)
    (loop $l
      (local.set $a (select (local.get $x) (local.get $y) (f32.lt (local.get $x) (local.get $y))))
      (local.set $b (select (local.get $y) (local.get $y) (i32.eqz (f32.ge (local.get $a) (local.get $x)))))
      (local.set $b (f32.sub (local.get $a) (local.get $b)))
      (local.set $a (f32.mul (local.get $a) (f32.const 2)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 3))))
    (i64.or
      (i64.shl (i64.extend_i32_u (i32.reinterpret_f32 (local.get $a))) (i64.const 32))
      (i64.extend_i32_u (i32.reinterpret_f32 (local.get $b)))))
)
"#;

/// Shifts by a variable count and a rotate by a constant, of pinned locals.
const SHIFTS: &str = r#"
(module
  (func (export "shifts") (param $x i32) (param $n i64) (result i64)
    (local $i i32) (local $s i32) (local $w i64)
    (loop $l
      (local.set $s (i32.add (local.get $s) (i32.shl (local.get $x) (i32.wrap_i64 (local.get $n)))))
      (local.set $s (i32.xor (local.get $s) (i32.shr_u (local.get $x) (local.get $i))))
      (local.set $s (i32.add (local.get $s) (i32.shr_s (local.get $x) (local.get $s))))
      (local.set $s (i32.xor (local.get $s) (i32.rotl (local.get $x) (i32.const 7))))
      (local.set $w (i64.add (local.get $w) (i64.rotr (local.get $n) (i64.const 13))))
      (local.set $w (i64.xor (local.get $w) (i64.shr_s (local.get $n) (local.get $w))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 40))))
    (i64.add (local.get $w) (i64.extend_i32_u (local.get $s))))
)
"#;

fn is_reg_copy(i: &Instruction) -> bool {
    matches!(
        i.code(),
        Code::Mov_r32_rm32 | Code::Mov_r64_rm64 | Code::Movaps_xmm_xmmm128
    ) && i.op1_kind() == OpKind::Register
}

fn is_setcc(i: &Instruction) -> bool {
    format!("{:?}", i.mnemonic()).starts_with("Set")
}

fn is_cmov(i: &Instruction) -> bool {
    format!("{:?}", i.mnemonic()).starts_with("Cmov")
}

fn fused() -> Options {
    let on = Options::default();
    assert!(on.fuse && on.reg_locals && on.peephole, "on by default");
    on
}

fn unfused() -> Options {
    Options {
        fuse: false,
        ..Options::default()
    }
}

fn wasmi_val(ty: Ty, bits: u64) -> wasmi::Val {
    match ty {
        Ty::I32 => wasmi::Val::I32(bits as i32),
        Ty::I64 => wasmi::Val::I64(bits as i64),
        Ty::F32 => wasmi::Val::F32(f32::from_bits(bits as u32).into()),
        Ty::F64 => wasmi::Val::F64(f64::from_bits(bits).into()),
        _ => unreachable!("numeric test values only"),
    }
}

fn wasmi_bits(v: &wasmi::Val) -> u64 {
    match v {
        wasmi::Val::I32(x) => u64::from(*x as u32),
        wasmi::Val::I64(x) => *x as u64,
        wasmi::Val::F32(x) => u64::from(f32::from(*x).to_bits()),
        wasmi::Val::F64(x) => f64::from(*x).to_bits(),
        _ => unreachable!("numeric results only"),
    }
}

/// Interesting raw values of a type (NaN, signed zeros and extremes included).
fn samples(ty: Ty) -> Vec<u64> {
    match ty {
        Ty::I32 => [
            0u32,
            1,
            2,
            5,
            7,
            100,
            u32::MAX,
            0x7fff_ffff,
            0x8000_0000,
            12345,
        ]
        .map(u64::from)
        .to_vec(),
        Ty::I64 => vec![
            0,
            1,
            3,
            101,
            u64::MAX,
            i64::MAX as u64,
            1 << 63,
            0xdead_beef_1234,
        ],
        Ty::F32 => [
            0.0f32,
            -0.0,
            1.5,
            -2.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ]
        .map(|f| u64::from(f.to_bits()))
        .to_vec(),
        Ty::F64 => [
            0.0f64,
            -0.0,
            1.5,
            -2.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ]
        .map(f64::to_bits)
        .to_vec(),
        _ => unreachable!("numeric test values only"),
    }
}

/// Runs every export of `wat` on every pair of sample arguments under `options` and checks
/// each result against wasmi's. Returns the number of calls compared.
fn agrees_with_wasmi(wat: &str, options: &Options) -> usize {
    let bytes = wat::parse_str(wat).expect("wat");
    let engine = wasmi::Engine::default();
    let wmodule = wasmi::Module::new(&engine, &bytes).expect("wasmi module");
    let mut store = wasmi::Store::new(&engine, ());
    let winst = wasmi::Linker::<()>::new(&engine)
        .instantiate_and_start(&mut store, &wmodule)
        .expect("wasmi instance");
    let module = wast_host::compile(&bytes, options).expect("compile");
    let mut inst =
        wast_host::instantiate(module.clone(), &[], &mut Default::default()).expect("instance");
    let mut compared = 0;
    for export in &module.desc.exports {
        let Some(index) = module.desc.export_func(&export.name) else {
            continue;
        };
        let ty = module.desc.func_type(index).clone();
        let (t0, t1) = (ty.params[0], ty.params[1]);
        let wfunc = winst.get_func(&store, &export.name).expect("wasmi export");
        for &a in &samples(t0) {
            for &b in &samples(t1) {
                let got = inst.invoke(index, &[a, b]);
                let mut wres = [wasmi::Val::I32(0)];
                let wanted =
                    wfunc.call(&mut store, &[wasmi_val(t0, a), wasmi_val(t1, b)], &mut wres);
                compared += 1;
                let got = match (got, wanted) {
                    (Ok(got), Ok(())) => got,
                    // Both trap (an out-of-bounds load of `count`).
                    (Err(_), Err(_)) => continue,
                    (got, wanted) => panic!(
                        "{}({a:#x}, {b:#x}): atoll {got:?}, wasmi {wanted:?}",
                        export.name
                    ),
                };
                let want = wasmi_bits(&wres[0]);
                let got = match ty.results[0] {
                    Ty::I32 | Ty::F32 => got[0] & 0xffff_ffff,
                    _ => got[0],
                };
                assert_eq!(
                    got, want,
                    "{}({a:#x}, {b:#x}) with fuse {} reg_locals {} peephole {}",
                    export.name, options.fuse, options.reg_locals, options.peephole
                );
            }
        }
    }
    compared
}

#[test]
fn counted_loop_uses_pinned_registers_in_place_and_branches_on_the_compare() {
    for (options, fused) in [(fused(), true), (unfused(), false)] {
        let module = compile(COUNTED, &options);
        let ins = decode(&module, 0);
        let body = loop_body(&ins);
        let copies = body.iter().filter(|i| is_reg_copy(i)).count();
        let setccs = body.iter().filter(|i| is_setcc(i)).count();
        let before_branch = body[body.len() - 2].mnemonic();
        if fused {
            assert_eq!(copies, 0, "register copies in the loop: {body:#?}");
            assert_eq!(setccs, 0, "setcc in the loop: {body:#?}");
            assert_eq!(
                before_branch,
                Mnemonic::Cmp,
                "the branch follows its compare"
            );
            // `local.set $i (i32.add (local.get $i) (i32.const 1))` is one `add`.
            assert!(
                body.iter().any(|i| i.mnemonic() == Mnemonic::Add
                    && i.op0_kind() == OpKind::Register
                    && i.op1_kind() != OpKind::Register
                    && i.op1_kind() != OpKind::Memory
                    && i.immediate(1) == 1),
                "an in-place increment: {body:#?}"
            );
        } else {
            assert!(
                copies > 0 && setccs > 0,
                "the baseline copies and sets flags"
            );
        }
        let mut inst = wast_host::instantiate(module.clone(), &[], &mut Default::default())
            .expect("instantiate");
        let count = module.desc.export_func("count").expect("export");
        let mem = [1u32, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
        for (n, k) in [(0u32, 0u32), (1, 5), (100, 0x5a5a_5a5a), (1000, u32::MAX)] {
            let want = (0..n.max(1)).fold(0u32, |s, i| {
                (s.wrapping_add(i)
                    .wrapping_add(mem.get(i as usize).copied().unwrap_or(0)))
                    ^ k
            });
            let got = inst
                .invoke(count, &[u64::from(n), u64::from(k)])
                .expect("runs");
            assert_eq!(got, [u64::from(want)], "count({n}, {k:#x})");
        }
    }
    assert!(agrees_with_wasmi(COUNTED, &fused()) > 0);
}

#[test]
fn select_of_a_compare_is_a_cmov_on_its_flags() {
    let module = compile(COUNTED, &fused());
    let ins = decode(&module, 1);
    let at = ins.iter().position(is_cmov).expect("a cmov");
    let cmp = ins[..at]
        .iter()
        .rposition(|i| i.mnemonic() == Mnemonic::Cmp)
        .expect("a compare before it");
    assert!(
        ins[cmp + 1..at]
            .iter()
            .all(|i| i.mnemonic() == Mnemonic::Mov),
        "only moves between the compare and the cmov: {:#?}",
        &ins[cmp..=at]
    );
    assert!(!ins.iter().any(is_setcc), "no setcc: {ins:#?}");
    assert!(
        !ins.iter().any(|i| i.mnemonic() == Mnemonic::Test),
        "no test: {ins:#?}"
    );
    let unfused = decode(&compile(COUNTED, &unfused()), 1);
    assert!(
        unfused.iter().any(is_setcc),
        "the baseline materializes the compare"
    );
}

#[test]
fn edge_cases_agree_with_wasmi_with_fusion_on_and_off() {
    let settings = [
        fused(),
        unfused(),
        Options {
            reg_locals: false,
            ..fused()
        },
        Options {
            fuse: true,
            ..Options::NONE
        },
        Options {
            fuse: true,
            reg_locals: true,
            ..Options::NONE
        },
    ];
    for options in settings {
        let n = agrees_with_wasmi(EDGES, &options);
        assert!(n >= 400, "{n} calls compared");
    }
}

/// With BMI2, shifts by a register count and rotates by a constant of pinned locals are
/// three-operand (`shlx`/`shrx`/`sarx`, `rorx`: no copy, no `cl`); without, `cl` forms. Both
/// agree with wasmi (counts beyond the width included).
#[test]
fn bmi2_shifts_read_pinned_locals_in_place() {
    let has = CpuFeatures::detect().bmi2;
    let with = Options {
        cpu: CpuFeatures {
            bmi2: true,
            ..CpuFeatures::SSE2
        },
        ..fused()
    };
    let without = Options {
        cpu: CpuFeatures::SSE2,
        ..fused()
    };
    for (options, bmi2) in [(with, true), (without, false)] {
        let module = compile(SHIFTS, &options);
        let ins = decode(&module, 0);
        let body = loop_body(&ins);
        let uses_cl = body
            .iter()
            .any(|i| (0..i.op_count()).any(|k| i.op_register(k) == iced_x86::Register::CL));
        let three = [
            Mnemonic::Shlx,
            Mnemonic::Shrx,
            Mnemonic::Sarx,
            Mnemonic::Rorx,
        ]
        .map(|m| body.iter().any(|i| i.mnemonic() == m));
        if bmi2 {
            assert!(!uses_cl && three == [true; 4], "BMI2 forms: {body:#?}");
        } else {
            assert!(uses_cl && three == [false; 4], "cl forms: {body:#?}");
        }
        if bmi2 && !has {
            continue; // this CPU cannot run BMI2 code
        }
        assert!(agrees_with_wasmi(SHIFTS, &options) > 0);
    }
}
