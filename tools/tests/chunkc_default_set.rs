//! The default chunk set: every export's known inputs give the expected outputs under the
//! reference interpreter, and the image has the shape the kernel relies on.

use std::path::PathBuf;
use std::sync::OnceLock;

use chunk_image::{Image, Provider, validate_module};
use tools::chunkc::build::image_bytes;
use tools::chunkc::manifest::{self, Expectation};
use tools::chunkc::run::{Outcome, run_values};

fn manifest_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../chunks/default.toml")
}

/// Built once per test binary (this builds the Rust chunks with cargo).
fn default_image() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| image_bytes(&manifest_path()).unwrap_or_else(|e| panic!("build: {e}")))
}

fn check(image: &Image<'_>, chunk: &str, expect: &Expectation) {
    let label = format!("{chunk}.{}{:?}", expect.call, expect.args);
    let sig = &image
        .chunk(chunk)
        .and_then(|c| c.manifest.exports.iter().find(|e| e.name == expect.call))
        .unwrap_or_else(|| panic!("{label}: no such export"))
        .sig;
    assert_eq!(expect.args.len(), sig.params.len(), "{label}: arity");
    let args = expect
        .arg_values(&sig.params)
        .unwrap_or_else(|| panic!("{label}: arguments do not fit {:?}", sig.params));
    let result =
        run_values(image, chunk, &expect.call, &args).unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_eq!(result.printed, expect.prints, "{label}: printed lines");
    match (&result.outcome, &expect.trap) {
        (Outcome::Trapped(message), Some(want)) => {
            assert!(message.contains(want.as_str()), "{label}: trap `{message}`");
        }
        (Outcome::Returned(values), None) => {
            let want = expect
                .result_values(&sig.results)
                .unwrap_or_else(|| panic!("{label}: results do not fit {:?}", sig.results));
            assert_eq!(values, &want, "{label}");
        }
        (outcome, trap) => panic!("{label}: got {outcome:?}, expected trap {trap:?}"),
    }
}

#[test]
fn every_export_gives_its_expected_output() {
    let bytes = default_image();
    let image = Image::parse(bytes).expect("default image parses");
    let file = manifest::load(&manifest_path()).expect("manifest");
    let mut checked = 0;
    for entry in &file.chunks {
        let view = image.chunk(&entry.name).expect("chunk in image");
        if view.manifest.exports.iter().any(|e| e.name == "_start") {
            // A command (WASI program): its runs are checked by `wasi_programs.rs`.
            assert!(
                !entry.expect_run.is_empty(),
                "{}: no expect_run",
                entry.name
            );
            continue;
        }
        for export in &view.manifest.exports {
            // Vector and reference values have no console form: such exports are checked
            // through the chunks that call them (`vecmath` through `lanes`).
            let sig = &export.sig;
            if !sig.params.iter().chain(&sig.results).all(|t| t.is_number()) {
                continue;
            }
            assert!(
                entry.expect.iter().any(|e| e.call == export.name),
                "{}.{} has no expected output in chunks/default.toml",
                entry.name,
                export.name
            );
        }
        for expect in &entry.expect {
            check(&image, &entry.name, expect);
            checked += 1;
        }
    }
    assert!(checked >= 50, "only {checked} expectations");
}

#[test]
fn default_image_shape() {
    let image = Image::parse(default_image()).expect("default image parses");
    let names: Vec<&str> = image.chunks().iter().map(|c| c.name).collect();
    for want in [
        "json",
        "crc32",
        "sha256",
        "lz",
        "sort",
        "sieve",
        "fib",
        "matmul",
        "strsearch",
        "hello",
        "pipeline",
        "traps",
        "hot",
    ] {
        assert!(names.contains(&want), "missing chunk {want}");
    }
    for chunk in image.chunks() {
        validate_module(chunk.module).unwrap_or_else(|e| panic!("{}: {e}", chunk.name));
        assert!(!chunk.manifest.exports.is_empty(), "{}", chunk.name);
    }
    let pipeline = image.chunk("pipeline").expect("pipeline");
    assert_eq!(
        pipeline.manifest.chunk_dependencies(),
        ["json", "crc32", "lz"]
    );
    let hello = image.chunk("hello").expect("hello");
    let kernel: Vec<&str> = hello
        .manifest
        .imports
        .iter()
        .filter(|i| i.provider == Provider::Kernel)
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(kernel, ["print", "cycles", "yield"]);
    // The profile made it into the image: parse -> checksum is the strongest transition.
    let json = image.chunk("json").expect("json");
    assert!(
        json.manifest
            .profile
            .transitions
            .iter()
            .any(|t| t.to == "crc32.crc32_bench" && t.count == 100)
    );
    // Rust chunks are real compiler output with a call graph.
    assert!(
        !image
            .chunk("sort")
            .expect("sort")
            .manifest
            .call_graph
            .is_empty()
    );
}
