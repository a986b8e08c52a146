//! Every script in `../shared/wasm-spec/` (WebAssembly 1.0) and `../shared/wasm-spec-2.0/` (the
//! rest of 2.0) passes against atoll's code generator, with all optimizations on and with all
//! off, and every module skipped needs an allow-listed post-2.0 proposal; a generator that
//! refuses modules it should compile makes the run fail, whatever message it gives.
//!
//! The 2.0 set includes its `simd_*` scripts; `Options::NONE` lowers SIMD with SSE2 only,
//! `Options::default()` with the extensions the CPU has, and one more run takes the SIMD
//! scripts optimized with SSE2 only.
#![cfg(target_arch = "x86_64")]

use std::path::PathBuf;
use std::sync::Arc;

use atoll_pae::{CompileError, CompiledModule, CpuFeatures, Options};
use tools::chunkc::wast::{FileReport, run_script, run_script_with};
use tools::chunkc::wast_host::{self, HostError};
use tools::chunkc::wast_skip::SKIPPABLE;

/// The 2.0 set's fixed-width SIMD scripts.
const SIMD_PREFIX: &str = "simd_";

fn spec_dir() -> PathBuf {
    dir_named("wasm-spec")
}

fn dir_named(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(name);
    assert!(
        dir.is_dir(),
        "the WebAssembly spec scripts are missing: expected them in {}",
        dir.display()
    );
    dir
}

/// Every skip must name an allow-listed proposal (`chunkc::wast_skip::SKIPPABLE`).
fn check_skips(report: &FileReport, failures: &mut Vec<String>) {
    for s in &report.skips {
        let needs = s
            .split_once(": module skipped: needs ")
            .and_then(|(_, rest)| rest.split(':').next());
        if !needs.is_some_and(|n| SKIPPABLE.iter().any(|p| n.contains(p.name))) {
            failures.push(format!("a skip that names no allowed proposal: {s}"));
        }
    }
}

fn scripts(dir: &PathBuf) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read spec dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wast"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .wast files in {}", dir.display());
    files
}

fn run_all(options: Options) {
    run_set(&scripts(&spec_dir()), options, 10_000);
}

fn is_simd(p: &std::path::Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(SIMD_PREFIX))
}

fn run_all_2_0(options: Options) {
    let files = scripts(&dir_named("wasm-spec-2.0"));
    let simd = files.iter().filter(|p| is_simd(p)).count();
    assert!(
        files.len() - simd >= 26 && simd >= 28,
        "2.0 scripts are missing"
    );
    run_set(&files, options, 23_000);
}

fn run_simd_2_0(options: Options) {
    let files: Vec<PathBuf> = scripts(&dir_named("wasm-spec-2.0"))
        .into_iter()
        .filter(|p| is_simd(p))
        .collect();
    run_set(&files, options, 15_000);
}

fn run_set(files: &[PathBuf], options: Options, min_passed: u32) {
    let mut failures = Vec::new();
    let (mut passed, mut skipped) = (0, 0);
    for file in files {
        let text = std::fs::read_to_string(file).expect("read script");
        let report = run_script(&file.display().to_string(), &text, options);
        passed += report.passed;
        skipped += report.skipped;
        failures.extend(report.failures.iter().cloned());
        check_skips(&report, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(passed > min_passed, "only {passed} assertions passed");
    eprintln!("{passed} passed, {skipped} skipped (allow-listed proposals)");
}

#[test]
fn spec_scripts_pass_optimized() {
    run_all(Options::default());
}

#[test]
fn spec_scripts_pass_unoptimized() {
    run_all(Options::NONE);
}

/// Instruction selection over pinned locals and flags (`Options::fuse`) off with every other
/// optimization, and on over the baseline translation with locals in registers (its aliases)
/// and without (flags only).
#[test]
fn spec_scripts_pass_with_fusion_on_and_off() {
    for options in [
        Options {
            fuse: false,
            ..Options::default()
        },
        Options {
            fuse: true,
            reg_locals: true,
            ..Options::NONE
        },
        Options {
            fuse: true,
            ..Options::NONE
        },
    ] {
        run_all(options);
        run_all_2_0(options);
    }
}

/// Locals in registers, `br_table` trees and jump tables each alone on the baseline
/// translation, and every other optimization with all three off.
#[test]
fn spec_scripts_pass_with_register_locals_and_br_trees_on_and_off() {
    for options in [
        Options {
            reg_locals: true,
            ..Options::NONE
        },
        Options {
            br_tree: true,
            ..Options::NONE
        },
        Options {
            jump_table: true,
            ..Options::NONE
        },
        Options {
            reg_locals: false,
            br_tree: false,
            jump_table: false,
            ..Options::default()
        },
    ] {
        run_all(options);
        run_all_2_0(options);
    }
}

/// Inlining (`Options::inline`) alone on the baseline translation (at every call site, and
/// only in loops as by default), with every other optimization at every call site, and every
/// other optimization without it (the optimized runs above have it on, in loops).
#[test]
fn spec_scripts_pass_with_inlining_on_and_off() {
    for options in [
        Options {
            inline: true,
            inline_everywhere: true,
            ..Options::NONE
        },
        Options {
            inline: true,
            ..Options::NONE
        },
        Options {
            inline_everywhere: true,
            ..Options::default()
        },
        Options {
            inline: false,
            ..Options::default()
        },
    ] {
        run_all(options);
        run_all_2_0(options);
    }
}

#[test]
fn spec_2_0_scripts_pass_optimized() {
    run_all_2_0(Options::default());
}

#[test]
fn spec_2_0_scripts_pass_unoptimized() {
    assert_eq!(Options::NONE.cpu, CpuFeatures::SSE2);
    run_all_2_0(Options::NONE);
}

/// Instruction scheduling (off by default) with every other pass, and on its own.
#[test]
fn spec_scripts_pass_with_scheduling() {
    assert!(!Options::default().schedule && !Options::NONE.schedule);
    let with_all = Options {
        schedule: true,
        ..Options::default()
    };
    run_all(with_all);
    run_all_2_0(with_all);
    let alone = Options {
        schedule: true,
        cpu: CpuFeatures::detect(),
        ..Options::NONE
    };
    run_all(alone);
    run_all_2_0(alone);
}

#[test]
fn spec_scripts_pass_with_every_function_assembled_lazily() {
    // Counters on too: lazily assembled functions count in the slots reserved for them.
    let lazy = Options {
        lazy: true,
        block_counters: true,
        ..Options::default()
    };
    let before = wast_host::lazily_assembled();
    run_all(lazy);
    run_all_2_0(lazy);
    assert!(
        wast_host::lazily_assembled() - before >= 1000,
        "too few functions assembled lazily"
    );
}

#[test]
fn spec_2_0_simd_scripts_pass_optimized_with_sse2_only() {
    run_simd_2_0(Options {
        cpu: CpuFeatures::SSE2,
        ..Options::default()
    });
}

#[test]
fn spec_2_0_simd_scripts_pass_unoptimized_with_every_extension() {
    run_simd_2_0(Options {
        cpu: CpuFeatures::detect(),
        ..Options::NONE
    });
}

/// The code generator's CPUID reading agrees with the standard library's detection.
#[test]
fn cpu_features_match_the_host() {
    let cpu = CpuFeatures::detect();
    assert_eq!(cpu.ssse3, is_x86_feature_detected!("ssse3"));
    assert_eq!(cpu.sse41, is_x86_feature_detected!("sse4.1"));
    assert_eq!(cpu.sse42, is_x86_feature_detected!("sse4.2"));
    assert_eq!(cpu.popcnt, is_x86_feature_detected!("popcnt"));
    assert_eq!(cpu.lzcnt, is_x86_feature_detected!("lzcnt"));
    assert_eq!(cpu.bmi1, is_x86_feature_detected!("bmi1"));
    assert_eq!(cpu.bmi2, is_x86_feature_detected!("bmi2"));
}

/// The scalar operators with a CPU-tailored form (`popcnt`, `clz` by `lzcnt`, `ctz` by `tzcnt`,
/// `ceil`/`floor`/`trunc`/`nearest` by `roundss/sd`) pass their scripts optimized with each
/// extension alone, with all of them and with none (the portable fallbacks).
#[test]
fn scalar_scripts_pass_with_each_cpu_feature_alone_and_without() {
    let files: Vec<PathBuf> = scripts(&spec_dir())
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            [
                "i32.wast",
                "i64.wast",
                "f32.wast",
                "f64.wast",
                "float_misc.wast",
                "int_exprs.wast",
            ]
            .contains(&name.as_ref())
        })
        .collect();
    assert_eq!(files.len(), 4, "scalar scripts are missing");
    let host = CpuFeatures::detect();
    let none = CpuFeatures::SSE2;
    for cpu in [none, host].into_iter().chain(host.each_alone()) {
        run_set(
            &files,
            Options {
                cpu,
                ..Options::default()
            },
            2_000,
        );
    }
}

#[test]
fn spec_scripts_pass_with_block_counters() {
    run_all(Options {
        block_counters: true,
        ..Options::default()
    });
}

/// A generator that has lost an operator: refuses every module as unsupported.
fn refuses_as_unsupported(_: &[u8], _: &Options) -> Result<Arc<CompiledModule>, HostError> {
    Err(HostError::Compile(CompileError::Unsupported(
        "operator I32Add".into(),
    )))
}

/// A generator that refuses every module with the message of an allow-listed proposal.
fn refuses_as_reference_types(_: &[u8], _: &Options) -> Result<Arc<CompiledModule>, HostError> {
    Err(HostError::Compile(CompileError::Invalid(
        "reference types support is not enabled (at offset 0x30)".into(),
    )))
}

#[test]
fn refused_supported_modules_fail_instead_of_skipping() {
    let file = spec_dir().join("i32.wast");
    let text = std::fs::read_to_string(&file).expect("read i32.wast");
    let name = file.display().to_string();
    let good = run_script(&name, &text, Options::default());
    assert!(
        good.failed == 0 && good.skipped == 0 && good.passed > 400,
        "{good:?}"
    );
    let broken = run_script_with(&name, &text, Options::default(), refuses_as_unsupported);
    assert_eq!(broken.skipped, 0, "{:?}", broken.skips);
    // Every module and every assertion on one fail; only assert_invalid/assert_malformed pass.
    assert_eq!(broken.passed + broken.failed, good.passed, "{broken:?}");
    assert!(broken.failed > 300 && broken.passed < 100, "{broken:?}");
    let first = &broken.failures[0];
    assert!(
        first.starts_with(&format!("{name}:3: module failed: "))
            && first.contains("unsupported: operator I32Add")
            && first.contains("must compile"),
        "the failure should name file:line and the reason: {first}"
    );
}

#[test]
fn a_proposals_message_does_not_excuse_a_supported_module() {
    let text = r#"(module (memory 1) (memory 1))
(module (func (export "f") (result i32) (i32.const 1)))
(assert_return (invoke "f") (i32.const 1))
"#;
    let good = run_script("t.wast", text, Options::default());
    assert_eq!(
        (good.passed, good.failed, good.skipped),
        (2, 0, 1),
        "{good:?}"
    );
    assert!(
        good.skips[0].starts_with("t.wast:1: module skipped: needs multi-memory: "),
        "{:?}",
        good.skips
    );
    let lying = run_script_with(
        "t.wast",
        text,
        Options::default(),
        refuses_as_reference_types,
    );
    // The two-memory module needs multi-memory whatever the generator says: still a skip.
    assert_eq!(lying.skipped, 1, "{lying:?}");
    assert!(lying.skips[0].contains("needs multi-memory"), "{lying:?}");
    // The supported module and the assertion on it fail.
    assert_eq!((lying.passed, lying.failed), (0, 2), "{lying:?}");
    assert!(
        lying.failures[0].starts_with("t.wast:2: module failed: ")
            && lying.failures[0].contains("reference types support is not enabled")
            && lying.failures[0].contains("must compile"),
        "{:?}",
        lying.failures
    );
    assert_eq!(
        lying.failures[1], "t.wast:3: the module at line 2 failed",
        "{:?}",
        lying.failures
    );
}

#[test]
fn spec_scripts_pass_with_guard_pages() {
    // No bounds checks in the code: every out-of-bounds assertion must trap through the
    // SIGSEGV handler (`chunkc::guard_host`): about 119 per run of the 1.0 and 2.0 sets that
    // use loads and stores (the bulk-memory ones are checked in their helpers).
    let before = tools::chunkc::guard_host::guard_traps();
    for base in [Options::default(), Options::NONE] {
        let guard = Options {
            guard_pages: true,
            ..base
        };
        run_all(guard);
        run_all_2_0(guard);
    }
    let traps = tools::chunkc::guard_host::guard_traps() - before;
    assert!(
        traps > 200,
        "only {traps} out-of-bounds traps came through the guard-page handler"
    );
    eprintln!("{traps} out-of-bounds traps through the guard-page handler");
}
