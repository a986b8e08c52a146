//! Differential testing of atoll's code generator against wasmi on random valid modules
//! (wasm-smith, restricted to atoll's feature set, with fuel so every call terminates):
//! every exported function is called with seeded arguments in both engines, and results and
//! traps must agree exactly (NaNs compared as "both NaN"; references as "both null" or "both
//! non-null"; stack exhaustion excluded because the engines' limits differ).
//!
//! Reference types and several tables are on, and modules may import a memory, tables and
//! globals ([`IMPORTS`]). Each module is instantiated twice in each engine, both instances
//! sharing the same imported objects, and the calls alternate between the two instances, so
//! what one instance writes to a shared memory, table or global (including its funcrefs,
//! called through the other's `call_indirect`) is what the other reads.
//!
//! A third and fourth run turn on fixed-width SIMD (wasmi's `simd` feature is the reference)
//! with wasm-smith's NaN canonicalization, since a v128 result's NaN payloads are otherwise
//! nondeterministic and its lanes' types unknown here; v128 values are compared bit for bit.
//!
//! Modules one engine rejects cannot be compared: they are counted with their reasons, printed,
//! and must stay under [`MAX_DROPPED_PERCENT`] of the modules generated, so a generator that
//! rejects everything (or much of atoll's feature set) fails here instead of comparing nothing.
#![cfg(target_arch = "x86_64")]

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Unstructured;
use atoll_pae::module::{ImportKind, Limits};
use atoll_pae::runtime::{
    Extern, Global, Instance, InstantiateError, InvokeError, Memory, SigRegistry, Table,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use atoll_pae::{CompiledModule, Options, Specialize, TrapCode, Ty};
use tools::chunkc::wast_host::{self, HostError};
use wasmi::TrapCode as WasmiTrap;

fn config(simd: bool) -> wasm_smith::Config {
    wasm_smith::Config {
        simd_enabled: simd,
        relaxed_simd_enabled: false,
        reference_types_enabled: true,
        gc_enabled: false,
        exceptions_enabled: false,
        tail_call_enabled: false,
        threads_enabled: false,
        memory64_enabled: false,
        extended_const_enabled: false,
        wide_arithmetic_enabled: false,
        compact_imports_enabled: false,
        custom_page_sizes_enabled: false,
        multi_value_enabled: true,
        bulk_memory_enabled: true,
        saturating_float_to_int_enabled: true,
        sign_extension_ops_enabled: true,
        available_imports: Some(wat::parse_str(IMPORTS).expect("imports module encodes")),
        max_imports: 6,
        max_memories: 1,
        max_tables: 4,
        max_memory32_bytes: 1 << 20,
        // Defined memories and tables declare a maximum (and the imported externref table
        // has one): without, `table.grow`/`memory.grow` by huge deltas filled gigabytes in both
        // engines (8.4 GB resident at peak for one run, 15.7 GB with SIMD).
        memory_max_size_required: true,
        table_max_size_required: true,
        max_table_elements: 1000,
        export_everything: true,
        canonicalize_nans: simd,
        // The inlining test's modules have bodies small enough to be inlined.
        min_funcs: if probe_inlining() { 4 } else { 1 },
        max_funcs: 12,
        max_instructions: if probe_inlining() { 40 } else { 200 },
        ..wasm_smith::Config::default()
    }
}

/// What a generated module may import (a subset of, by name), with the objects the test
/// provides for each.
const IMPORTS: &str = r#"(module
  (import "env" "mem" (memory 1 4))
  (import "env" "funcs" (table 4 16 funcref))
  (import "env" "externs" (table 2 1000 externref))
  (import "env" "counter" (global (mut i32)))
  (import "env" "wide" (global (mut i64)))
  (import "env" "seed" (global i64))
)"#;

/// The shared objects of [`IMPORTS`] in both engines.
struct Provided {
    atoll: Vec<(&'static str, Extern)>,
    wasmi: wasmi::Linker<()>,
}

/// The shared objects both engines import; atoll's memory is a guard-page reservation when
/// the code is compiled for one (`options.guard_pages`).
fn provide(engine: &wasmi::Engine, store: &mut wasmi::Store<()>, options: &Options) -> Provided {
    use wasmi::{Mutability, Nullable, Ref, RefType, TableType};
    let limits = |min, max| Limits {
        min,
        max: Some(max),
    };
    let atoll = vec![
        (
            "mem",
            Extern::Memory(
                Memory::new(
                    wast_host::memory_for(options).expect("memory"),
                    limits(1, 4),
                )
                .expect("one page"),
            ),
        ),
        (
            "funcs",
            Extern::Table(Table::new(Ty::FuncRef, limits(4, 16), 0).expect("table")),
        ),
        (
            "externs",
            Extern::Table(Table::new(Ty::ExternRef, limits(2, 1000), 0).expect("t")),
        ),
        ("counter", Extern::Global(Global::new(Ty::I32, true, 7))),
        ("wide", Extern::Global(Global::new(Ty::I64, true, 1 << 40))),
        ("seed", Extern::Global(Global::new(Ty::I64, false, 12345))),
    ];
    let mut linker = wasmi::Linker::<()>::new(engine);
    let mem = wasmi::Memory::new(&mut *store, wasmi::MemoryType::new(1, Some(4))).expect("mem");
    let funcs = wasmi::Table::new(
        &mut *store,
        TableType::new(RefType::Func, 4, Some(16)),
        Ref::Func(Nullable::Null),
    )
    .expect("table");
    let externs = wasmi::Table::new(
        &mut *store,
        TableType::new(RefType::Extern, 2, Some(1000)),
        Ref::Extern(Nullable::Null),
    )
    .expect("table");
    let counter = wasmi::Global::new(&mut *store, wasmi::Val::I32(7), Mutability::Var);
    let wide = wasmi::Global::new(&mut *store, wasmi::Val::I64(1 << 40), Mutability::Var);
    let seed = wasmi::Global::new(&mut *store, wasmi::Val::I64(12345), Mutability::Const);
    for (name, ext) in [
        ("mem", wasmi::Extern::Memory(mem)),
        ("funcs", wasmi::Extern::Table(funcs)),
        ("externs", wasmi::Extern::Table(externs)),
        ("counter", wasmi::Extern::Global(counter)),
        ("wide", wasmi::Extern::Global(wide)),
        ("seed", wasmi::Extern::Global(seed)),
    ] {
        linker.define("env", name, ext).expect("define");
    }
    Provided {
        atoll,
        wasmi: linker,
    }
}

/// atoll's imports for `module`, from `provided`.
fn atoll_imports(module: &atoll_pae::CompiledModule, provided: &Provided) -> Vec<Extern> {
    module
        .desc
        .imports
        .iter()
        .map(|i| {
            assert!(
                !matches!(i.kind, ImportKind::Func(_)),
                "no function imports"
            );
            let (_, ext) = provided
                .atoll
                .iter()
                .find(|(n, _)| *n == i.name)
                .expect("wasm-smith imports only what IMPORTS offers");
            ext.clone()
        })
        .collect()
}

/// The largest share of generated modules that may be dropped because atoll or wasmi rejects
/// them (measured: 0 of 1500 per option set; see `run`).
const MAX_DROPPED_PERCENT: usize = 2;

/// Why a generated module was not compared.
#[derive(Debug)]
enum Dropped {
    /// atoll's code generator refused it.
    Compile(String),
    /// wasmi refused it.
    Wasmi(String),
    /// Both engines failed to instantiate it, not both with a trap that can be compared.
    Instantiate(String),
}

impl Dropped {
    /// The reason without module-specific details (offsets, indices), for counting.
    fn kind(&self) -> String {
        let (engine, msg) = match self {
            Dropped::Compile(m) => ("atoll refused", m),
            Dropped::Wasmi(m) => ("wasmi refused", m),
            Dropped::Instantiate(m) => ("instantiation failed in both", m),
        };
        let general: String = msg
            .split(" (at offset")
            .next()
            .unwrap_or(msg)
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect();
        format!("{engine}: {general}")
    }
}

/// Our trap code for a wasmi trap, or `None` for stack exhaustion and others we don't compare.
fn map_trap(t: WasmiTrap) -> Option<TrapCode> {
    Some(match t {
        WasmiTrap::UnreachableCodeReached => TrapCode::Unreachable,
        WasmiTrap::MemoryOutOfBounds => TrapCode::MemoryOutOfBounds,
        WasmiTrap::TableOutOfBounds => TrapCode::TableAccessOutOfBounds,
        WasmiTrap::IndirectCallToNull => TrapCode::UninitializedElement,
        WasmiTrap::IntegerDivisionByZero => TrapCode::DivideByZero,
        WasmiTrap::IntegerOverflow => TrapCode::IntegerOverflow,
        WasmiTrap::BadConversionToInteger => TrapCode::InvalidConversion,
        WasmiTrap::BadSignature => TrapCode::IndirectCallTypeMismatch,
        _ => return None,
    })
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Values(Vec<u128>),
    Trap(TrapCode),
    Ignore,
}

fn canon(ty: Ty, wide: u128) -> u128 {
    let bits = wide as u64;
    u128::from(match ty {
        Ty::V128 => return wide,
        Ty::F32 if f32::from_bits(bits as u32).is_nan() => 0x7FC0_0000,
        Ty::F64 if f64::from_bits(bits).is_nan() => 0x7FF8_0000_0000_0000,
        Ty::I32 | Ty::F32 => bits & 0xFFFF_FFFF,
        Ty::FuncRef | Ty::ExternRef => u64::from(bits != 0),
        _ => bits,
    })
}

fn to_wasmi(ty: Ty, wide: u128) -> wasmi::Val {
    let bits = wide as u64;
    match ty {
        Ty::V128 => wasmi::Val::V128(wasmi::V128::from(wide)),
        Ty::I32 => wasmi::Val::I32(bits as i32),
        Ty::I64 => wasmi::Val::I64(bits as i64),
        Ty::F32 => wasmi::Val::F32(f32::from_bits(bits as u32).into()),
        Ty::F64 => wasmi::Val::F64(f64::from_bits(bits).into()),
        // Arguments of reference type are always null (the test has no host references).
        Ty::FuncRef => wasmi::Val::FuncRef(wasmi::Nullable::Null),
        Ty::ExternRef => wasmi::Val::ExternRef(wasmi::Nullable::Null),
    }
}

fn from_wasmi(v: &wasmi::Val) -> u128 {
    u128::from(match v {
        wasmi::Val::V128(x) => return x.as_u128(),
        wasmi::Val::I32(x) => u64::from(*x as u32),
        wasmi::Val::I64(x) => *x as u64,
        wasmi::Val::F32(x) => u64::from(f32::from(*x).to_bits()),
        wasmi::Val::F64(x) => f64::from(*x).to_bits(),
        wasmi::Val::FuncRef(r) => u64::from(!r.is_null()),
        wasmi::Val::ExternRef(r) => u64::from(!r.is_null()),
    })
}

/// The trap that ended wasmi's instantiation: a trap in the start function, or an element or
/// data segment that does not fit (reported as an instantiation error, not a trap code).
fn wasmi_instantiation_trap(e: &wasmi::Error) -> Option<TrapCode> {
    if let Some(code) = e.as_trap_code() {
        return map_trap(code);
    }
    let msg = e.to_string();
    if msg.starts_with("out of bounds table access") {
        Some(TrapCode::TableAccessOutOfBounds)
    } else if msg.starts_with("out of bounds memory access") {
        Some(TrapCode::MemoryOutOfBounds)
    } else {
        None
    }
}

/// What comparing one module covered.
enum Compared {
    /// This many export calls.
    Calls(usize),
    /// Both engines' instantiation trapped the same way.
    InstantiationTrap,
}

/// Runs one module in both engines.
/// Seeded arguments for every exported function, in export order.
fn export_args(desc: &atoll_pae::ModuleDesc, seed: u64) -> Vec<Vec<u128>> {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    desc.exports
        .iter()
        .filter(|e| e.kind == atoll_pae::module::ExternalKind::Func)
        .map(|export| {
            desc.func_type(export.index)
                .params
                .iter()
                .map(|t| {
                    let r = next();
                    if t.is_ref() {
                        0 // null: the test has no host references
                    } else if t.is_v128() {
                        u128::from(r) | u128::from(next()) << 64
                    } else if r.is_multiple_of(4) {
                        u128::from(r % 8)
                    } else {
                        u128::from(r)
                    }
                })
                .collect()
        })
        .collect()
}

/// With `specialize`: every parameter of every export is specialized, two in three to
/// the value the test will pass (the guard holds, the folded body runs) and the rest to another
/// value (the guard fails, the general body runs).
fn compile(
    bytes: &[u8],
    seed: u64,
    options: Options,
    specialize: bool,
) -> Result<Arc<CompiledModule>, Dropped> {
    let plain = wast_host::compile(bytes, &options).map_err(|e| Dropped::Compile(e.to_string()))?;
    if options.inline && probe_inlining() {
        let without = Options {
            inline: false,
            ..options
        };
        let base =
            wast_host::compile(bytes, &without).map_err(|e| Dropped::Compile(e.to_string()))?;
        // The option changes nothing unless some call was inlined.
        if plain.code != base.code {
            INLINED.with(|n| n.set(n.get() + 1));
        }
    }
    if !specialize {
        return Ok(plain);
    }
    let funcs = plain
        .desc
        .exports
        .iter()
        .filter(|e| e.kind == atoll_pae::module::ExternalKind::Func);
    let mut specs = Vec::new();
    for (n, (export, args)) in funcs.zip(export_args(&plain.desc, seed)).enumerate() {
        for (j, &a) in args.iter().enumerate() {
            let a = a as u64;
            let bits = if (n + j) % 3 == 2 { a ^ 1 } else { a };
            specs.push(Specialize {
                func: export.index,
                param: j as u32,
                bits,
            });
        }
    }
    let spec = atoll_pae::compile_specialized(bytes, &options, &specs)
        .map_err(|e| Dropped::Compile(e.to_string()))?;
    if spec.code.len() > plain.code.len() {
        SPECIALIZED.fetch_add(1, Ordering::Relaxed);
    }
    Ok(Arc::new(spec))
}

thread_local! {
    /// This test thread counts the modules whose code inlining changed.
    static PROBE_INLINING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Modules (on this thread) whose code changed with inlining.
    static INLINED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn probe_inlining() -> bool {
    PROBE_INLINING.with(|p| p.get())
}

/// Modules in which some function got a specialized body.
static SPECIALIZED: AtomicUsize = AtomicUsize::new(0);

fn check_module(
    bytes: &[u8],
    seed: u64,
    options: Options,
    specialize: bool,
) -> Result<Compared, Dropped> {
    let module = compile(bytes, seed, options, specialize)?;
    let engine = wasmi::Engine::default();
    let wmodule = wasmi::Module::new(&engine, bytes).map_err(|e| Dropped::Wasmi(e.to_string()))?;
    let mut store = wasmi::Store::new(&engine, ());
    let provided = provide(&engine, &mut store, &options);
    let imports = atoll_imports(&module, &provided);
    let mut sigs = SigRegistry::default();
    let mut winsts = Vec::new();
    let mut ourss: Vec<Box<Instance>> = Vec::new();
    // Two instances sharing the imports; the second sees what the first's segments wrote.
    for _ in 0..2 {
        let winst = provided.wasmi.instantiate_and_start(&mut store, &wmodule);
        let ours = wast_host::instantiate(module.clone(), &imports, &mut sigs);
        let (w, o) = match (winst, ours) {
            (Ok(w), Ok(o)) => (w, o),
            (Err(w), Err(o)) => {
                let ours = match o {
                    HostError::Instantiate(InstantiateError::Trap(TrapCode::TableOutOfBounds)) => {
                        Some(TrapCode::TableAccessOutOfBounds)
                    }
                    HostError::Instantiate(InstantiateError::Trap(code)) => Some(code),
                    _ => None,
                };
                return match (wasmi_instantiation_trap(&w), ours) {
                    (Some(theirs), Some(ours)) => {
                        assert_eq!(ours, theirs, "seed {seed}: instantiation traps differ");
                        Ok(Compared::InstantiationTrap)
                    }
                    _ => Err(Dropped::Instantiate(format!("wasmi: {w}; atoll: {ours:?}"))),
                };
            }
            (w, o) => panic!(
                "seed {seed}: instantiation differs: wasmi {:?}, atoll {:?}",
                w.err(),
                o.err().map(|e| e.to_string())
            ),
        };
        winsts.push(w);
        ourss.push(o);
    }
    let mut compared = 0;
    let funcs = module
        .desc
        .exports
        .iter()
        .filter(|e| e.kind == atoll_pae::module::ExternalKind::Func);
    for (n, (export, args)) in funcs.zip(export_args(&module.desc, seed)).enumerate() {
        let (winst, ours) = (&winsts[n % 2], &mut ourss[n % 2]);
        let ty = module.desc.func_type(export.index).clone();
        // A v128 argument takes two slots, low half first.
        let slots: Vec<u64> = ty
            .params
            .iter()
            .zip(&args)
            .flat_map(|(t, &a)| [a as u64, (a >> 64) as u64].into_iter().take(t.slots()))
            .collect();
        let wfunc = winst.get_func(&store, &export.name).expect("export");
        let wargs: Vec<wasmi::Val> = ty
            .params
            .iter()
            .zip(&args)
            .map(|(&t, &b)| to_wasmi(t, b))
            .collect();
        let mut wres: Vec<wasmi::Val> = ty.results.iter().map(|&t| to_wasmi(t, 0)).collect();
        let expected = match wfunc.call(&mut store, &wargs, &mut wres) {
            Ok(()) => Outcome::Values(
                ty.results
                    .iter()
                    .zip(&wres)
                    .map(|(&t, v)| canon(t, from_wasmi(v)))
                    .collect(),
            ),
            Err(e) => match e.as_trap_code().and_then(map_trap) {
                Some(code) => Outcome::Trap(code),
                None => Outcome::Ignore,
            },
        };
        let got = match ours.invoke(export.index, &slots) {
            Ok(values) => {
                let mut at = 0;
                let mut out = Vec::new();
                for &t in &ty.results {
                    let mut v = u128::from(values[at]);
                    if t.is_v128() {
                        v |= u128::from(values[at + 1]) << 64;
                    }
                    at += t.slots();
                    out.push(canon(t, v));
                }
                Outcome::Values(out)
            }
            Err(InvokeError::Trap(TrapCode::StackOverflow)) => Outcome::Ignore,
            Err(InvokeError::Trap(TrapCode::TableOutOfBounds)) => {
                Outcome::Trap(TrapCode::TableAccessOutOfBounds)
            }
            Err(InvokeError::Trap(code)) => Outcome::Trap(code),
            Err(e) => panic!("seed {seed}: export `{}`: {e}", export.name),
        };
        if expected == Outcome::Ignore || got == Outcome::Ignore {
            return Ok(Compared::Calls(compared)); // states may have diverged
        }
        assert_eq!(
            got, expected,
            "seed {seed}: export `{}` args {args:x?}",
            export.name
        );
        compared += 1;
    }
    compare_shared_state(&provided, &store, seed);
    Ok(Compared::Calls(compared))
}

/// The imported objects must end in the same state in both engines: an instance that wrote to
/// a private copy instead of the shared object shows up here even when no call read it back.
fn compare_shared_state(provided: &Provided, store: &wasmi::Store<()>, seed: u64) {
    for (name, ext) in &provided.atoll {
        let theirs = provided
            .wasmi
            .get(store, "env", name)
            .expect("defined in the linker");
        match (ext, theirs) {
            (Extern::Memory(m), wasmi::Extern::Memory(w)) => {
                let data = w.data(store);
                let mut ours = vec![0u8; data.len()];
                assert!(m.read(0, &mut ours), "seed {seed}: memory sizes differ");
                assert!(
                    m.pages() * 65536 == data.len() as u64 && ours == data,
                    "seed {seed}: shared memory contents differ"
                );
            }
            (Extern::Table(t), wasmi::Extern::Table(w)) => {
                assert_eq!(t.len(), w.size(store), "seed {seed}: table `{name}` size");
                for i in 0..t.len() {
                    let null = w.get(store, i).expect("in bounds").is_null();
                    assert_eq!(
                        t.get(i) == Some(0),
                        null,
                        "seed {seed}: table `{name}` entry {i}"
                    );
                }
            }
            (Extern::Global(g), wasmi::Extern::Global(w)) => {
                let theirs = from_wasmi(&w.get(store));
                assert_eq!(
                    canon(g.ty(), u128::from(g.get())),
                    canon(g.ty(), theirs),
                    "seed {seed}: global `{name}`"
                );
            }
            _ => unreachable!("the same kinds are provided to both engines"),
        }
    }
}

/// The SIMD operators in `bytes`' function bodies, by name.
fn simd_ops(bytes: &[u8]) -> BTreeSet<String> {
    let mut ops = BTreeSet::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(wasmparser::Payload::CodeSectionEntry(body)) = payload else {
            continue;
        };
        let Ok(mut reader) = body.get_operators_reader() else {
            continue;
        };
        while let Ok((op, at)) = reader.read_with_offset() {
            if bytes.get(at as usize) == Some(&0xFD) {
                let name = format!("{op:?}");
                let end = name.find([' ', '{']).unwrap_or(name.len());
                ops.insert(name[..end].to_string());
            }
        }
    }
    ops
}

/// Distinct SIMD operators the compared modules of a SIMD run must contain at least, of the
/// 236 of simd128 (measured: all 236 in the 676 modules compared per option set).
const MIN_SIMD_OPS: usize = 230;

fn run(count: u64, options: Options, simd: bool) {
    run_with(count, options, simd, false);
}

fn run_with(count: u64, options: Options, simd: bool, specialize: bool) {
    let mut covered: BTreeSet<String> = BTreeSet::new();
    let mut simd_modules = 0;
    let mut modules = 0;
    let mut calls = 0;
    let mut generated = 0;
    let mut instantiation_traps = 0;
    let mut no_calls = 0;
    let mut dropped: BTreeMap<String, usize> = BTreeMap::new();
    for seed in 0..count {
        let mut data = vec![0u8; 4096];
        let mut x = seed.wrapping_add(0x1234_5678_9ABC_DEF1);
        for b in &mut data {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let mut u = Unstructured::new(&data);
        let Ok(mut module) = wasm_smith::Module::new(config(simd), &mut u) else {
            continue;
        };
        if module.ensure_termination(200).is_err() {
            continue;
        }
        let bytes = module.to_bytes();
        if std::env::var_os("PAE_DIFF_TRACE").is_some() {
            eprintln!("seed {seed}");
            std::fs::write("/tmp/pae_diff_last.wasm", &bytes).ok();
        }
        generated += 1;
        match check_module(&bytes, seed, options, specialize) {
            Ok(Compared::Calls(0)) => no_calls += 1,
            Ok(Compared::Calls(n)) => {
                modules += 1;
                calls += n;
                let ops = simd_ops(&bytes);
                simd_modules += usize::from(!ops.is_empty());
                covered.extend(ops);
            }
            Ok(Compared::InstantiationTrap) => instantiation_traps += 1,
            Err(why) => *dropped.entry(why.kind()).or_default() += 1,
        }
    }
    let dropped_total: usize = dropped.values().sum();
    eprintln!(
        "{generated} modules generated from {count} seeds: compared {calls} calls in {modules} \
         modules and {instantiation_traps} instantiation traps; {no_calls} modules exported no \
         function (or stopped at a call that cannot be compared); dropped {dropped_total}"
    );
    for (why, n) in &dropped {
        eprintln!("  dropped {n}: {why}");
    }
    if simd {
        eprintln!(
            "{simd_modules} compared modules use SIMD: {} distinct SIMD operators",
            covered.len()
        );
        assert!(
            covered.len() >= MIN_SIMD_OPS,
            "only {} SIMD operators compared: {covered:?}",
            covered.len()
        );
    }
    assert!(
        dropped_total * 100 <= generated * MAX_DROPPED_PERCENT,
        "{dropped_total} of {generated} modules dropped (more than {MAX_DROPPED_PERCENT}%): \
         {dropped:#?}"
    );
    assert!(
        modules as u64 > count / 4,
        "too few modules compared: {modules} of {count}"
    );
}

#[test]
fn random_modules_agree_with_wasmi_with_guard_pages() {
    // No bounds checks: out-of-bounds accesses trap through the SIGSEGV handler, and some of
    // the compared calls do.
    let before = tools::chunkc::guard_host::guard_traps();
    for base in [Options::default(), Options::NONE] {
        run(
            1500,
            Options {
                guard_pages: true,
                ..base
            },
            false,
        );
    }
    run(
        1500,
        Options {
            guard_pages: true,
            ..Options::default()
        },
        true,
    );
    let traps = tools::chunkc::guard_host::guard_traps() - before;
    eprintln!("{traps} out-of-bounds traps through the guard-page handler");
    assert!(
        traps > 0,
        "no out-of-bounds trap came through the guard-page handler"
    );
}

#[test]
fn random_modules_agree_with_wasmi_optimized() {
    run(1500, Options::default(), false);
}

/// Locals in registers and `br_table` trees: each alone on the baseline translation, and
/// every other optimization with both off.
#[test]
fn random_modules_agree_with_wasmi_with_register_locals_and_br_trees_on_and_off() {
    run(
        1500,
        Options {
            reg_locals: true,
            br_tree: true,
            ..Options::NONE
        },
        false,
    );
    run(
        1500,
        Options {
            reg_locals: false,
            br_tree: false,
            ..Options::default()
        },
        false,
    );
}

/// Instruction selection over pinned locals and flags: off with every other pass, and on over
/// the baseline translation with locals in registers.
#[test]
fn random_modules_agree_with_wasmi_with_fusion_on_and_off() {
    run(
        1500,
        Options {
            fuse: false,
            ..Options::default()
        },
        false,
    );
    run(
        1500,
        Options {
            fuse: true,
            reg_locals: true,
            ..Options::NONE
        },
        false,
    );
}

/// Inlining alone on the baseline translation, on modules of small functions (at most 40
/// instructions each, so most are inlinable), where enough modules must have had calls inlined
/// (code that differs from the code without it: 56 of these 1500 seeds); then every other
/// optimization without it.
#[test]
fn random_modules_agree_with_wasmi_with_inlining_on_and_off() {
    PROBE_INLINING.with(|p| p.set(true));
    run(
        1500,
        Options {
            inline: true,
            inline_everywhere: true,
            ..Options::NONE
        },
        false,
    );
    let inlined = INLINED.with(|n| n.get());
    eprintln!("{inlined} modules had calls inlined");
    assert!(inlined >= 40, "only {inlined} modules had a call inlined");
    PROBE_INLINING.with(|p| p.set(false));
    run(
        1500,
        Options {
            inline: false,
            ..Options::default()
        },
        false,
    );
}

#[test]
fn random_modules_agree_with_wasmi_unoptimized() {
    run(1500, Options::NONE, false);
}

/// With SIMD: optimized with the extensions this CPU has, then unoptimized with SSE2 only
/// (every lane-helper fallback).
/// Instruction scheduling (off by default) with every other pass, and on its own.
#[test]
fn random_modules_agree_with_wasmi_with_scheduling() {
    assert!(!Options::default().schedule && !Options::NONE.schedule);
    let with_all = Options {
        schedule: true,
        ..Options::default()
    };
    run(1500, with_all, false);
    run(1500, with_all, true);
    let alone = Options {
        schedule: true,
        ..Options::NONE
    };
    run(1000, alone, false);
    run(1500, alone, true);
}

#[test]
fn random_simd_modules_agree_with_wasmi() {
    run(1500, Options::default(), true);
    run(1500, Options::NONE, true);
}

#[test]
fn random_modules_agree_with_wasmi_with_every_function_assembled_lazily() {
    let before = wast_host::lazily_assembled();
    run(
        1500,
        Options {
            lazy: true,
            block_counters: true,
            ..Options::default()
        },
        false,
    );
    assert!(
        wast_host::lazily_assembled() - before >= 1000,
        "too few functions assembled lazily"
    );
}

#[test]
fn random_modules_agree_with_wasmi_with_specialization() {
    run_with(1500, Options::default(), false, true);
    let n = SPECIALIZED.load(Ordering::Relaxed);
    assert!(n >= 150, "only {n} modules got a specialized body");
}
