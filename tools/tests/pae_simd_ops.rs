//! Every simd128 operator, one at a time, against wasmi: each operator gets a small module
//! (one export per lane index, shift-count form or shuffle pattern), called with seeded
//! arguments full of edge values (NaNs of both signs, ±0, ±inf, integer limits, halves for
//! rounding, lane values at the saturation bounds), under four option sets: optimized and
//! unoptimized, each with the CPU's extensions and with SSE2 only (every lane-helper
//! fallback). Results must be equal bit for bit, except that a NaN lane of a float-typed
//! result only has to be a NaN in both (its payload is nondeterministic in WebAssembly);
//! traps (out-of-bounds lane loads and stores) must agree.
//!
//! The random-module differential test (`pae_diff_random`) covers SIMD inside larger programs
//! but rarely observes each operator's result; this one observes every operator's.
#![cfg(target_arch = "x86_64")]

use atoll_pae::runtime::{InvokeError, SigRegistry};
use atoll_pae::{CpuFeatures, Options, TrapCode, Ty};
use tools::chunkc::wast_host;

const UNARY: &[&str] = &[
    "v128.not",
    "i8x16.abs",
    "i8x16.neg",
    "i8x16.popcnt",
    "i16x8.abs",
    "i16x8.neg",
    "i32x4.abs",
    "i32x4.neg",
    "i64x2.abs",
    "i64x2.neg",
    "f32x4.ceil",
    "f32x4.floor",
    "f32x4.trunc",
    "f32x4.nearest",
    "f32x4.abs",
    "f32x4.neg",
    "f32x4.sqrt",
    "f64x2.ceil",
    "f64x2.floor",
    "f64x2.trunc",
    "f64x2.nearest",
    "f64x2.abs",
    "f64x2.neg",
    "f64x2.sqrt",
    "i16x8.extadd_pairwise_i8x16_s",
    "i16x8.extadd_pairwise_i8x16_u",
    "i32x4.extadd_pairwise_i16x8_s",
    "i32x4.extadd_pairwise_i16x8_u",
    "i16x8.extend_low_i8x16_s",
    "i16x8.extend_high_i8x16_s",
    "i16x8.extend_low_i8x16_u",
    "i16x8.extend_high_i8x16_u",
    "i32x4.extend_low_i16x8_s",
    "i32x4.extend_high_i16x8_s",
    "i32x4.extend_low_i16x8_u",
    "i32x4.extend_high_i16x8_u",
    "i64x2.extend_low_i32x4_s",
    "i64x2.extend_high_i32x4_s",
    "i64x2.extend_low_i32x4_u",
    "i64x2.extend_high_i32x4_u",
    "i32x4.trunc_sat_f32x4_s",
    "i32x4.trunc_sat_f32x4_u",
    "f32x4.convert_i32x4_s",
    "f32x4.convert_i32x4_u",
    "i32x4.trunc_sat_f64x2_s_zero",
    "i32x4.trunc_sat_f64x2_u_zero",
    "f64x2.convert_low_i32x4_s",
    "f64x2.convert_low_i32x4_u",
    "f32x4.demote_f64x2_zero",
    "f64x2.promote_low_f32x4",
];

/// Binary operators, as `prefix.` + each name.
const BINARY: &[(&str, &[&str])] = &[
    ("v128", &["and", "andnot", "or", "xor"]),
    (
        "i8x16",
        &[
            "eq",
            "ne",
            "lt_s",
            "lt_u",
            "gt_s",
            "gt_u",
            "le_s",
            "le_u",
            "ge_s",
            "ge_u",
            "narrow_i16x8_s",
            "narrow_i16x8_u",
            "add",
            "add_sat_s",
            "add_sat_u",
            "sub",
            "sub_sat_s",
            "sub_sat_u",
            "min_s",
            "min_u",
            "max_s",
            "max_u",
            "avgr_u",
            "swizzle",
        ],
    ),
    (
        "i16x8",
        &[
            "eq",
            "ne",
            "lt_s",
            "lt_u",
            "gt_s",
            "gt_u",
            "le_s",
            "le_u",
            "ge_s",
            "ge_u",
            "narrow_i32x4_s",
            "narrow_i32x4_u",
            "add",
            "add_sat_s",
            "add_sat_u",
            "sub",
            "sub_sat_s",
            "sub_sat_u",
            "mul",
            "min_s",
            "min_u",
            "max_s",
            "max_u",
            "avgr_u",
            "q15mulr_sat_s",
            "extmul_low_i8x16_s",
            "extmul_high_i8x16_s",
            "extmul_low_i8x16_u",
            "extmul_high_i8x16_u",
        ],
    ),
    (
        "i32x4",
        &[
            "eq",
            "ne",
            "lt_s",
            "lt_u",
            "gt_s",
            "gt_u",
            "le_s",
            "le_u",
            "ge_s",
            "ge_u",
            "add",
            "sub",
            "mul",
            "min_s",
            "min_u",
            "max_s",
            "max_u",
            "dot_i16x8_s",
            "extmul_low_i16x8_s",
            "extmul_high_i16x8_s",
            "extmul_low_i16x8_u",
            "extmul_high_i16x8_u",
        ],
    ),
    (
        "i64x2",
        &[
            "eq",
            "ne",
            "lt_s",
            "gt_s",
            "le_s",
            "ge_s",
            "add",
            "sub",
            "mul",
            "extmul_low_i32x4_s",
            "extmul_high_i32x4_s",
            "extmul_low_i32x4_u",
            "extmul_high_i32x4_u",
        ],
    ),
    (
        "f32x4",
        &[
            "eq", "ne", "lt", "gt", "le", "ge", "add", "sub", "mul", "div", "min", "max", "pmin",
            "pmax",
        ],
    ),
    (
        "f64x2",
        &[
            "eq", "ne", "lt", "gt", "le", "ge", "add", "sub", "mul", "div", "min", "max", "pmin",
            "pmax",
        ],
    ),
];

/// `(shape, lanes, scalar type)`.
const SHAPES: &[(&str, u32, &str)] = &[
    ("i8x16", 16, "i32"),
    ("i16x8", 8, "i32"),
    ("i32x4", 4, "i32"),
    ("i64x2", 2, "i64"),
    ("f32x4", 4, "f32"),
    ("f64x2", 2, "f64"),
];

/// 64 bytes at 0 and 16 at the end of the one page: what the loads see.
const MEMORY: &str = r#"(memory 1)
  (data (i32.const 0) "\00\01\7f\80\ff\fe\81\02\10\20\40\55\aa\c0\e0\f0\00\00\80\7f\00\00\80\ff\00\00\c0\7f\01\00\00\80\00\00\00\00\00\00\f0\7f\00\00\00\00\00\00\f8\ff\00\00\00\00\00\00\00\80\ff\ff\ff\ff\ff\ff\ff\7f")
  (data (i32.const 65520) "\01\02\03\04\05\06\07\08\09\0a\0b\0c\0d\0e\0f\10")"#;

/// One module per operator (or operator group): `(operator names it covers, WAT)`.
fn modules() -> Vec<(Vec<String>, String)> {
    let m = |ops: Vec<String>, funcs: String| (ops, format!("(module {MEMORY}\n{funcs})"));
    let mut out = Vec::new();
    for op in UNARY {
        out.push(m(
            vec![op.to_string()],
            format!("(func (export \"f\") (param v128) (result v128) (local.get 0) ({op}))"),
        ));
    }
    for (prefix, names) in BINARY {
        for name in *names {
            let op = format!("{prefix}.{name}");
            out.push(m(
                vec![op.clone()],
                format!(
                    "(func (export \"f\") (param v128 v128) (result v128) \
                     (local.get 0) (local.get 1) ({op}))"
                ),
            ));
        }
    }
    out.push(m(
        vec!["v128.bitselect".into()],
        "(func (export \"f\") (param v128 v128 v128) (result v128) \
         (local.get 0) (local.get 1) (local.get 2) (v128.bitselect))"
            .into(),
    ));
    let mut reduce = vec!["v128.any_true".to_string()];
    for (shape, ..) in &SHAPES[..4] {
        reduce.push(format!("{shape}.all_true"));
        reduce.push(format!("{shape}.bitmask"));
    }
    for op in reduce {
        out.push(m(
            vec![op.clone()],
            format!("(func (export \"f\") (param v128) (result i32) (local.get 0) ({op}))"),
        ));
    }
    for (shape, lanes, scalar) in SHAPES {
        let mut funcs = String::new();
        let mut ops = vec![format!("{shape}.splat"), format!("{shape}.replace_lane")];
        funcs += &format!(
            "(func (export \"splat\") (param {scalar}) (result v128) (local.get 0) ({shape}.splat))\n"
        );
        let extracts: &[&str] = if *lanes >= 8 { &["_s", "_u"] } else { &[""] };
        for suffix in extracts {
            ops.push(format!("{shape}.extract_lane{suffix}"));
            for lane in 0..*lanes {
                funcs += &format!(
                    "(func (export \"x{suffix}{lane}\") (param v128) (result {scalar}) \
                     (local.get 0) ({shape}.extract_lane{suffix} {lane}))\n"
                );
            }
        }
        for lane in 0..*lanes {
            funcs += &format!(
                "(func (export \"r{lane}\") (param v128 {scalar}) (result v128) \
                 (local.get 0) (local.get 1) ({shape}.replace_lane {lane}))\n"
            );
        }
        if *lanes >= 2 && !shape.starts_with('f') {
            for s in ["shl", "shr_s", "shr_u"] {
                ops.push(format!("{shape}.{s}"));
                funcs += &format!(
                    "(func (export \"{s}\") (param v128 i32) (result v128) \
                     (local.get 0) (local.get 1) ({shape}.{s}))\n\
                     (func (export \"{s}_k\") (param v128) (result v128) \
                     (local.get 0) (i32.const 67) ({shape}.{s}))\n"
                );
            }
        }
        out.push(m(ops, funcs));
    }
    let mut funcs = String::new();
    let mut ops = Vec::new();
    for load in [
        "load",
        "load8x8_s",
        "load8x8_u",
        "load16x4_s",
        "load16x4_u",
        "load32x2_s",
        "load32x2_u",
        "load8_splat",
        "load16_splat",
        "load32_splat",
        "load64_splat",
        "load32_zero",
        "load64_zero",
    ] {
        ops.push(format!("v128.{load}"));
        funcs += &format!(
            "(func (export \"{load}\") (param i32) (result v128) (local.get 0) (v128.{load} offset=1))\n"
        );
    }
    for (bits, lanes) in [(8, 16), (16, 8), (32, 4), (64, 2)] {
        ops.push(format!("v128.load{bits}_lane"));
        ops.push(format!("v128.store{bits}_lane"));
        for lane in 0..lanes {
            funcs += &format!(
                "(func (export \"l{bits}_{lane}\") (param i32 v128) (result v128) \
                 (local.get 0) (local.get 1) (v128.load{bits}_lane offset=2 {lane}))\n\
                 (func (export \"s{bits}_{lane}\") (param i32 v128) (result v128) \
                 (local.get 0) (local.get 1) (v128.store{bits}_lane offset=2 {lane}) \
                 (v128.load (i32.const 0)))\n"
            );
        }
    }
    ops.push("v128.store".into());
    funcs += "(func (export \"store\") (param i32 v128) (result v128) \
              (local.get 0) (local.get 1) (v128.store offset=3) (v128.load (i32.const 0)))\n";
    out.push(m(ops, funcs));
    let patterns = [
        "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15",
        "31 30 29 28 27 26 25 24 23 22 21 20 19 18 17 16",
        "0 16 1 17 2 18 3 19 4 20 5 21 6 22 7 23",
        "3 3 3 3 19 19 19 19 0 31 15 16 8 24 1 1",
    ];
    let mut funcs = String::new();
    for (i, p) in patterns.iter().enumerate() {
        funcs += &format!(
            "(func (export \"s{i}\") (param v128 v128) (result v128) \
             (local.get 0) (local.get 1) (i8x16.shuffle {p}))\n"
        );
    }
    funcs += "(func (export \"c\") (result v128) (v128.const i32x4 1 -2 0x80000000 7))\n";
    out.push(m(vec!["i8x16.shuffle".into(), "v128.const".into()], funcs));
    out
}

/// Seeded values full of edge cases.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A 32-bit lane: random, or an edge value as an integer or an f32.
    fn lane32(&mut self) -> u32 {
        const EDGES: [u32; 16] = [
            0,
            0x8000_0000,
            0x3F80_0000,
            0xBF80_0000,
            0x7FC0_0000,
            0xFFC0_0001,
            0x7F80_0000,
            0xFF80_0000,
            0x7FFF_FFFF,
            0x3F00_0000,
            0x3FC0_0000,
            0xC020_0000,
            0x4F00_0000,
            0x4F80_0000,
            0xCF00_0000,
            0x7F7F_FFFF,
        ];
        let r = self.next();
        match r % 4 {
            0 => EDGES[(r >> 8) as usize % EDGES.len()],
            1 => [0x0000_7FFF, 0xFFFF_8000, 0x807F_FF80, 0x00FF_0001][(r >> 8) as usize % 4],
            _ => (r >> 16) as u32,
        }
    }

    /// A 64-bit lane: two 32-bit lanes, or an f64 edge value.
    fn lane64(&mut self) -> u64 {
        const EDGES: [u64; 10] = [
            0x8000_0000_0000_0000,
            0x3FF0_0000_0000_0000,
            0x7FF8_0000_0000_0000,
            0xFFF0_0000_0000_0001,
            0x7FF0_0000_0000_0000,
            0x3FE0_0000_0000_0000,
            0x4004_0000_0000_0000,
            0x41E0_0000_0000_0000,
            0xC1E0_0000_0020_0000,
            0x41F0_0000_0000_0000,
        ];
        let r = self.next();
        if r.is_multiple_of(3) {
            EDGES[(r >> 8) as usize % EDGES.len()]
        } else {
            u64::from(self.lane32()) | u64::from(self.lane32()) << 32
        }
    }

    /// Random lanes, or (one in four) a splat of an 8- or 16-bit edge value, so that both
    /// operands of a binary operator meet edge values in the same lane.
    fn v128(&mut self) -> u128 {
        let r = self.next();
        if r.is_multiple_of(4) {
            let edges: [u128; 6] = [0x8000, 0x7FFF, 0xFFFF, 0x0080, 0x7F7F, 0x0001];
            let e = edges[(r >> 8) as usize % edges.len()];
            return (0..8).fold(0, |v, i| v | e << (16 * i));
        }
        u128::from(self.lane64()) | u128::from(self.lane64()) << 64
    }

    fn scalar(&mut self, ty: Ty, addr: bool) -> u128 {
        if addr {
            // In bounds, at the end of memory, or past it.
            return u128::from(
                [0u32, 5, 17, 48, 65510, 65519, 65530, 0xFFFF_FFF0][self.next() as usize % 8],
            );
        }
        match ty {
            Ty::I32 | Ty::F32 => u128::from(self.lane32()),
            _ => u128::from(self.lane64()),
        }
    }
}

/// NaN lanes of float results become one canonical NaN (payloads may differ).
fn canon(op_shape: &str, ty: Ty, bits: u128) -> u128 {
    let lanes32 = |b: u128| -> u128 {
        (0..4).fold(0, |v, i| {
            let l = (b >> (32 * i)) as u32;
            let l = if f32::from_bits(l).is_nan() {
                0x7FC0_0000
            } else {
                l
            };
            v | u128::from(l) << (32 * i)
        })
    };
    let lanes64 = |b: u128| -> u128 {
        (0..2).fold(0, |v, i| {
            let l = (b >> (64 * i)) as u64;
            let l = if f64::from_bits(l).is_nan() {
                0x7FF8_0000_0000_0000
            } else {
                l
            };
            v | u128::from(l) << (64 * i)
        })
    };
    match ty {
        Ty::F32 => lanes32(bits & 0xFFFF_FFFF),
        Ty::F64 => lanes64(bits & u128::from(u64::MAX)),
        Ty::V128 if op_shape == "f32x4" => lanes32(bits),
        Ty::V128 if op_shape == "f64x2" => lanes64(bits),
        Ty::I32 => bits & 0xFFFF_FFFF,
        _ => bits,
    }
}

fn to_wasmi(ty: Ty, bits: u128) -> wasmi::Val {
    match ty {
        Ty::I32 => wasmi::Val::I32(bits as i32),
        Ty::I64 => wasmi::Val::I64(bits as i64),
        Ty::F32 => wasmi::Val::F32(f32::from_bits(bits as u32).into()),
        Ty::F64 => wasmi::Val::F64(f64::from_bits(bits as u64).into()),
        Ty::V128 => wasmi::Val::V128(wasmi::V128::from(bits)),
        _ => unreachable!("no references here"),
    }
}

fn from_wasmi(v: &wasmi::Val) -> u128 {
    match v {
        wasmi::Val::I32(x) => u128::from(*x as u32),
        wasmi::Val::I64(x) => u128::from(*x as u64),
        wasmi::Val::F32(x) => u128::from(f32::from(*x).to_bits()),
        wasmi::Val::F64(x) => u128::from(f64::from(*x).to_bits()),
        wasmi::Val::V128(x) => x.as_u128(),
        _ => unreachable!("no references here"),
    }
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Value(u128),
    Trap,
}

/// Runs every module under `options`; returns the number of calls compared.
fn check_all(options: Options) -> usize {
    let mut calls = 0;
    let engine = wasmi::Engine::default();
    for (ops, wat) in modules() {
        let bytes = wat::parse_str(&wat).unwrap_or_else(|e| panic!("{ops:?}: {e}"));
        let module = wast_host::compile(&bytes, &options)
            .unwrap_or_else(|e| panic!("{ops:?} must compile: {e}"));
        let mut ours = wast_host::instantiate(module.clone(), &[], &mut SigRegistry::default())
            .expect("instantiates");
        let wmodule = wasmi::Module::new(&engine, &bytes).expect("wasmi compiles");
        let mut store = wasmi::Store::new(&engine, ());
        let winst = wasmi::Linker::<()>::new(&engine)
            .instantiate_and_start(&mut store, &wmodule)
            .expect("wasmi instantiates");
        let shape = ops[0].split('.').next().unwrap_or("").to_string();
        let mut g = Gen(0x9E37_79B9_7F4A_7C15 ^ (calls as u64 + 1));
        for export in &module.desc.exports {
            let ty = module.desc.func_type(export.index).clone();
            let wfunc = winst.get_func(&store, &export.name).expect("export");
            for _ in 0..120 {
                let args: Vec<u128> = ty
                    .params
                    .iter()
                    .enumerate()
                    .map(|(i, &t)| {
                        let addr =
                            i == 0 && ty.params.len() <= 2 && shape == "v128" && t == Ty::I32;
                        if t == Ty::V128 {
                            g.v128()
                        } else {
                            g.scalar(t, addr)
                        }
                    })
                    .collect();
                let slots: Vec<u64> = ty
                    .params
                    .iter()
                    .zip(&args)
                    .flat_map(|(t, &a)| [a as u64, (a >> 64) as u64].into_iter().take(t.slots()))
                    .collect();
                let wargs: Vec<wasmi::Val> = ty
                    .params
                    .iter()
                    .zip(&args)
                    .map(|(&t, &a)| to_wasmi(t, a))
                    .collect();
                let rty = ty.results[0];
                let mut wres = vec![to_wasmi(rty, 0)];
                let expected = match wfunc.call(&mut store, &wargs, &mut wres) {
                    Ok(()) => Outcome::Value(canon(&shape, rty, from_wasmi(&wres[0]))),
                    Err(_) => Outcome::Trap,
                };
                let got = match ours.invoke(export.index, &slots) {
                    Ok(v) => {
                        let bits = u128::from(v[0]) | v.get(1).map_or(0, |&h| u128::from(h) << 64);
                        Outcome::Value(canon(&shape, rty, bits))
                    }
                    Err(InvokeError::Trap(TrapCode::MemoryOutOfBounds)) => Outcome::Trap,
                    Err(e) => panic!("{ops:?} `{}`: {e}", export.name),
                };
                assert_eq!(
                    got, expected,
                    "{ops:?} export `{}` with {options:?}, args {args:#x?}",
                    export.name
                );
                calls += 1;
            }
        }
    }
    calls
}

#[test]
fn the_table_covers_every_simd128_operator() {
    let covered: std::collections::BTreeSet<String> =
        modules().into_iter().flat_map(|(ops, _)| ops).collect();
    // 236 operators: the extract_lane forms count once per signedness, splat/replace once.
    assert_eq!(covered.len(), 236, "{covered:?}");
}

#[test]
fn every_simd_operator_agrees_with_wasmi_optimized() {
    let calls = check_all(Options::default());
    assert!(calls > 30_000, "{calls}");
    check_all(Options {
        cpu: CpuFeatures::SSE2,
        ..Options::default()
    });
}

#[test]
fn every_simd_operator_agrees_with_wasmi_unoptimized() {
    check_all(Options::NONE);
    check_all(Options {
        cpu: CpuFeatures::detect(),
        ..Options::NONE
    });
}

/// The `simdsum` chunk's vector path against its scalar reference, natively, in one run:
/// `cargo test -p tools --release --test pae_simd_ops -- --ignored --nocapture`
/// (the wasm is built by `chunkc build chunks/default.toml`). Both exports fill the same
/// 64 KiB pattern first, so the ratio understates the checksum's own speedup.
#[test]
#[ignore = "a measurement, not a check"]
fn simdsum_vector_path_against_scalar_reference() {
    let wasm = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/chunks/rust/wasm32-unknown-unknown/release/simdsum.wasm");
    let bytes = std::fs::read(&wasm).expect("build the default chunk set first");
    for (name, options) in [
        ("detected", Options::default()),
        (
            "SSE2 only",
            Options {
                cpu: CpuFeatures::SSE2,
                ..Options::default()
            },
        ),
    ] {
        let module = wast_host::compile(&bytes, &options).expect("compiles");
        let mut inst = wast_host::instantiate(module.clone(), &[], &mut SigRegistry::default())
            .expect("instantiates");
        // The fastest of 20 rounds of 20 calls, the two exports alternating (the machine is
        // shared, so the mean is mostly other load).
        let (bench, reference) = (
            module.desc.export_func("simdsum_bench").expect("export"),
            module.desc.export_func("simdsum_ref").expect("export"),
        );
        let (mut vector_us, mut scalar_us, mut v, mut s) = (f64::MAX, f64::MAX, 0, 0);
        for _ in 0..20 {
            for (index, best, result) in [
                (bench, &mut vector_us, &mut v),
                (reference, &mut scalar_us, &mut s),
            ] {
                let start = std::time::Instant::now();
                for _ in 0..20 {
                    *result = inst.invoke(index, &[65536]).expect("runs")[0];
                }
                *best = best.min(start.elapsed().as_secs_f64() / 20.0 * 1e6);
            }
        }
        assert_eq!(v, s);
        eprintln!(
            "{name}: simdsum_bench(65536) {vector_us:.1} us, simdsum_ref(65536) {scalar_us:.1} us \
             per call ({:.2}x)",
            scalar_us / vector_us
        );
    }
}
