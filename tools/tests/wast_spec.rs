//! Every script in `../shared/wasm-spec/` passes against atoll's code generator, with all
//! optimizations on and with all off.
#![cfg(target_arch = "x86_64")]

use std::path::PathBuf;

use atoll_pae::Options;
use tools::chunkc::wast::run_script;

fn spec_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/wasm-spec");
    assert!(
        dir.is_dir(),
        "the WebAssembly spec scripts are missing: expected them in {}",
        dir.display()
    );
    dir
}

fn run_all(options: Options) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(spec_dir())
        .expect("read spec dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wast"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .wast files found");
    let mut failures = Vec::new();
    let mut passed = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read script");
        let report = run_script(&file.display().to_string(), &text, options);
        passed += report.passed;
        for f in &report.failures {
            failures.push(format!("{}: {f}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(passed > 10_000, "only {passed} assertions passed");
}

#[test]
fn spec_scripts_pass_optimized() {
    run_all(Options::default());
}

#[test]
fn spec_scripts_pass_unoptimized() {
    run_all(Options::NONE);
}

#[test]
fn spec_scripts_pass_with_block_counters() {
    run_all(Options {
        block_counters: true,
        ..Options::default()
    });
}
