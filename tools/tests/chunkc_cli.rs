//! The `chunkc` binary: build, inspect, run, error messages and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn chunkc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chunkc"))
        .args(args)
        .output()
        .expect("chunkc runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("chunkc-cli")
        .join(name);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The default image, built once with the CLI into a directory that does not exist yet.
fn default_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = scratch("default");
        let image = dir.join("nested/default.img");
        let _ = std::fs::remove_dir_all(dir.join("nested"));
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../chunks/default.toml");
        let out = chunkc(&[
            "build",
            manifest.to_str().expect("utf-8 path"),
            "-o",
            image.to_str().expect("utf-8 path"),
        ]);
        assert!(out.status.success(), "build failed: {}", stderr(&out));
        assert!(stdout(&out).contains("28 chunks"), "{}", stdout(&out));
        image.to_string_lossy().into_owned()
    })
}

#[test]
fn inspect_lists_every_chunk_with_dependencies_and_resources() {
    let out = chunkc(&["inspect", default_image()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let manifest = tools::chunkc::manifest::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../chunks/default.toml"),
    )
    .expect("manifest");
    assert_eq!(manifest.chunks.len(), 28);
    for chunk in manifest.chunks.iter().map(|c| c.name.as_str()) {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{chunk} "))),
            "{chunk} missing from table:\n{text}"
        );
        assert!(text.contains(&format!("\n{chunk}:\n")), "{chunk} detail");
    }
    let pipeline_row = text
        .lines()
        .find(|l| l.starts_with("pipeline "))
        .expect("pipeline row");
    assert!(
        pipeline_row.contains("json, crc32, lz, atoll (kernel)"),
        "{pipeline_row}"
    );
    assert!(text.contains("import crc32.crc32_bench(i32) -> i32 from chunk crc32"));
    assert!(text.contains("import atoll.print(i32, i32) from kernel"));
    assert!(text.contains("resources: 0 pages (max none), 16384 stack bytes, 2000 cycles/call"));
    assert!(text.contains("profile: json.json_generate_and_count -> crc32.crc32_bench x100"));
}

#[test]
fn inspect_json_is_one_object() {
    let out = chunkc(&["inspect", default_image(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let chunks = v["chunks"].as_array().expect("chunks array");
    assert_eq!(chunks.len(), 28);
    let pipeline = chunks
        .iter()
        .find(|c| c["name"] == "pipeline")
        .expect("pipeline");
    assert_eq!(
        pipeline["depends_on"],
        serde_json::json!(["json", "crc32", "lz"])
    );
    // Version 4: the image has programs (WASI commands with arguments and files, one of them
    // with a default environment), a workload section (engine settings and traces), and chunks
    // sharing a memory, a table and globals.
    assert_eq!(v["version"], "4.0");
    let reader = chunks
        .iter()
        .find(|c| c["name"] == "reader")
        .expect("reader");
    assert_eq!(reader["depends_on"], serde_json::json!(["board"]));
    assert_eq!(
        reader["object_imports"][0],
        serde_json::json!({"module": "board", "name": "mem", "type": "memory 1.."})
    );
    assert_eq!(v["traces"].as_array().map(Vec::len), Some(4));
    let programs = v["programs"].as_array().expect("programs array");
    assert_eq!(programs.len(), 7);
    assert!(
        programs
            .iter()
            .any(|p| p["chunk"] == "dirstat" && p["args"] == serde_json::json!(["."]))
    );
    assert!(programs.iter().any(|p| p["chunk"] == "wasitest"
        && p["env"] == serde_json::json!(["ATOLL_GREETING=hello from the image", "LANG=C"])));
}

#[test]
fn run_prints_results_and_traps() {
    let image = default_image();
    let out = chunkc(&["run", image, "fib.fib", "10"]);
    assert_eq!(stdout(&out), "55\n");
    assert!(out.status.success());

    let out = chunkc(&["run", image, "hello.hello"]);
    assert_eq!(stdout(&out), "hello from a chunk\n18\n");

    let out = chunkc(&["run", image, "pipeline.steps", "1024"]);
    assert_eq!(stdout(&out), "14337 2083658589 478\n");

    let out = chunkc(&["run", image, "matmul.matmul", "3"]);
    assert_eq!(stdout(&out), "18.0\n");

    let out = chunkc(&["run", image, "fib.div", "1", "0"]);
    assert_eq!(stdout(&out), "trap: integer divide by zero\n");
    assert_eq!(out.status.code(), Some(1));

    let out = chunkc(&["run", image, "fib.fib"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));

    let out = chunkc(&["run", image, "nope.fib", "1"]);
    assert!(stderr(&out).starts_with("error: no chunk `nope`"));

    // Tasks separated by `;` run in one session: chunks sharing state keep it between them;
    // a trap ends the sequence.
    let out = chunkc(&[
        "run",
        image,
        "writer.fill",
        "7",
        "10",
        ";",
        "reader.sum",
        "10",
        ";",
        "reader.apply",
        "0",
        "1",
        ";",
        "reader.sum",
        "10",
    ]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], lines[1], "{text}");
    assert_ne!(lines[0], "0");
    assert!(lines[2].starts_with("trap: "), "{text}");
    assert_eq!(out.status.code(), Some(1));
    // Separate runs start from fresh state.
    let out = chunkc(&["run", image, "reader.sum", "10"]);
    assert_eq!(stdout(&out), "0\n");
}

#[test]
fn shared_objects_that_do_not_match_are_refused_by_build() {
    let provider =
        r#"(module (memory (export "mem") 1 2) (global (export "g") i32 (i32.const 1)))"#;
    for (import, reason) in [
        (
            r#"(import "store" "mem" (memory 3))"#,
            "minimum size is below",
        ),
        (
            r#"(import "store" "mem" (memory 1 1))"#,
            "maximum size is above",
        ),
        (
            r#"(import "store" "g" (global (mut i32)))"#,
            "mutability differs",
        ),
        (r#"(import "store" "g" (global i64))"#, "value types differ"),
        (
            r#"(import "store" "none" (memory 1))"#,
            "no chunk provides it",
        ),
    ] {
        let manifest = r#"
[[chunk]]
name = "store"
wat = "store.wat"

[[chunk]]
name = "user"
wat = "user.wat"
"#;
        let user = format!("(module {import})");
        let out = build_set(
            "objects",
            manifest,
            &[("store.wat", provider), ("user.wat", &user)],
        );
        assert_eq!(out.status.code(), Some(1), "{import}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with("error: ") && err.contains(reason),
            "{import}: {err}"
        );
    }
    let out = build_set(
        "objects-kernel",
        "[[chunk]]\nname = \"user\"\nwat = \"user.wat\"\n",
        &[("user.wat", r#"(module (import "atoll" "mem" (memory 1)))"#)],
    );
    assert!(
        stderr(&out).contains("the kernel provides functions only"),
        "{}",
        stderr(&out)
    );
}

fn spec_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/wasm-spec")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing (shared/ beside the repo)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

#[test]
fn wast_reports_per_file_and_exits_0_when_all_pass() {
    let file = spec_file("i32.wast");
    let out = chunkc(&["wast", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("i32.wast: passed 460, failed 0, skipped 0"),
        "{}",
        stdout(&out)
    );

    let out = chunkc(&["wast", "--json", &file]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("one JSON object");
    assert_eq!(v["passed"], 460);
    assert_eq!(v["failed"], 0);
    assert!(v["file"].as_str().is_some_and(|f| f.ends_with("i32.wast")));
}

#[test]
fn wast_failure_exits_nonzero_and_names_it() {
    let dir = std::env::temp_dir().join(format!("chunkc-wast-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("wrong.wast");
    std::fs::write(
        &file,
        r#"(module (func (export "one") (result i32) (i32.const 1)))
(assert_return (invoke "one") (i32.const 1))
(assert_return (invoke "one") (i32.const 2))
(module (memory 1) (memory 1))
"#,
    )
    .expect("write wast");
    let out = chunkc(&["wast", "--json", &file.to_string_lossy()]);
    assert_ne!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("one JSON object");
    // The module that instantiates counts as passed, with the one correct assertion.
    assert_eq!(v["passed"], 2);
    assert_eq!(v["failed"], 1);
    assert_eq!(v["failures"].as_array().map(Vec::len), Some(1));
    // The two-memory module uses an unsupported proposal: skipped, with the reason.
    assert_eq!(v["skipped"], 1, "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A module the generator refuses without needing an allow-listed proposal is a failure with
/// its file and line, in text and JSON, and the exit status says so; a module that needs one is
/// still skipped with the proposal named.
#[test]
fn wast_refusal_outside_the_allow_list_fails() {
    let file = scratch("wast-refusal").join("refused.wast");
    std::fs::write(
        &file,
        r#"(module (func (result i32) (i64.const 0)))
(module (memory 1) (memory 1))
"#,
    )
    .expect("write wast");
    let path = file.to_string_lossy();
    let out = chunkc(&["wast", &path]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("{path}: passed 0, failed 1, skipped 1")),
        "{text}"
    );
    assert!(
        text.contains(&format!("  FAIL {path}:1: module failed: module refused: ")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  skip {path}:2: module skipped: needs multi-memory"
        )),
        "{text}"
    );

    let out = chunkc(&["wast", "--json", &path]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("one JSON object");
    assert_eq!(
        (
            v["passed"].as_u64(),
            v["failed"].as_u64(),
            v["skipped"].as_u64()
        ),
        (Some(0), Some(1), Some(1)),
        "{v}"
    );
    let failure = v["failures"][0].as_str().unwrap_or_default();
    assert!(
        failure.starts_with(&format!("{path}:1: ")) && failure.contains("type mismatch"),
        "{v}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = chunkc(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("error: unknown command"));
}

#[test]
fn corrupt_image_is_an_error() {
    let mut bytes = std::fs::read(default_image()).expect("image");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let path = scratch("corrupt").join("bad.img");
    std::fs::write(&path, &bytes).expect("write");
    let out = chunkc(&["inspect", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    assert!(stderr(&out).contains("checksum"), "{}", stderr(&out));
}

/// Writes a manifest and `.wat` files into a scratch directory and builds it.
fn build_set(name: &str, manifest: &str, files: &[(&str, &str)]) -> Output {
    let dir = scratch(name);
    for (file, text) in files {
        std::fs::write(dir.join(file), text).expect("write source");
    }
    let path = dir.join("set.toml");
    std::fs::write(&path, manifest).expect("write manifest");
    let image = dir.join("out.img");
    chunkc(&[
        "build",
        path.to_str().expect("utf-8"),
        "-o",
        image.to_str().expect("utf-8"),
    ])
}

#[test]
fn wat_errors_point_at_file_line_and_column() {
    let out = build_set(
        "bad-wat",
        "[[chunk]]\nname = \"bad\"\nwat = \"bad.wat\"\n",
        &[(
            "bad.wat",
            "(module\n  (func (export \"f\")\n    i32.bogus))\n",
        )],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("bad.wat:3:5"), "{err}");
}

#[test]
fn unsupported_features_name_the_function() {
    let out = build_set(
        "simd",
        "[[chunk]]\nname = \"v\"\nwat = \"v.wat\"\n",
        &[(
            "v.wat",
            "(module (func $f (export \"vec\") (result i32) v128.const i64x2 0 0 v128.const i64x2 0 0 i8x16.relaxed_swizzle drop i32.const 0))",
        )],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("function 0 `f`"), "{err}");
    assert!(err.contains("SIMD"), "{err}");
    assert!(err.contains("v.wat"), "{err}");
}

#[test]
fn missing_providers_and_cycles_are_rejected() {
    let out = build_set(
        "missing",
        "[[chunk]]\nname = \"a\"\nwat = \"a.wat\"\n",
        &[("a.wat", "(module (import \"nope\" \"f\" (func)))")],
    );
    assert!(
        stderr(&out).contains("no chunk provides it"),
        "{}",
        stderr(&out)
    );

    let out = build_set(
        "cycle",
        "[[chunk]]\nname = \"a\"\nwat = \"a.wat\"\n[[chunk]]\nname = \"b\"\nwat = \"b.wat\"\n",
        &[
            (
                "a.wat",
                "(module (import \"b\" \"g\" (func)) (func (export \"f\")))",
            ),
            (
                "b.wat",
                "(module (import \"a\" \"f\" (func)) (func (export \"g\")))",
            ),
        ],
    );
    assert!(
        stderr(&out).contains("dependency cycle"),
        "{}",
        stderr(&out)
    );

    let out = build_set(
        "bad-kernel",
        "[[chunk]]\nname = \"a\"\nwat = \"a.wat\"\n",
        &[(
            "a.wat",
            "(module (import \"atoll\" \"print\" (func (param i64))))",
        )],
    );
    assert!(stderr(&out).contains("wrong signature"), "{}", stderr(&out));
}

#[test]
fn manifest_errors_name_the_problem() {
    let wat = ("a.wat", "(module (func (export \"f\")))");
    let out = build_set(
        "bad-task",
        "[[chunk]]\nname = \"a\"\nwat = \"a.wat\"\n[profile]\ntasks = { \"a.g\" = 3 }\n",
        &[wat],
    );
    assert!(
        stderr(&out).contains("profile task `a.g`"),
        "{}",
        stderr(&out)
    );

    let out = build_set(
        "bad-toml",
        "[[chunk]]\nname = \"a\"\nwat = \"a.wat\"\nstack_bytes = \"big\"\n",
        &[wat],
    );
    let err = stderr(&out);
    assert!(err.contains("set.toml") && err.contains("line 4"), "{err}");

    let out = build_set(
        "two-sources",
        "[[chunk]]\nname = \"a\"\nwat = \"a.wat\"\nwasm = \"a.wasm\"\n",
        &[wat],
    );
    assert!(stderr(&out).contains("exactly one of"), "{}", stderr(&out));

    let out = build_set(
        "ok",
        "[[chunk]]\nname = \"a\"\nwat = \"a.wat\"\ntags = [\"t\"]\n[profile]\ntasks = { \"a.f\" = 3 }\n",
        &[wat],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn engine_settings_and_traces_go_into_the_image() {
    let wat = "(module (func (export \"f\") (param i32) (result i32) local.get 0))";
    let manifest = "[[chunk]]\nname = \"a\"\nwat = \"a.wat\"\n\n[engine]\ncache_limit = 8192\npolicy = \"lfu\"\norder = 3\n\n[[trace]]\nname = \"t\"\nfile = \"t.trace\"\n";
    let out = build_set(
        "workload",
        manifest,
        &[
            ("a.wat", wat),
            ("t.trace", "4*[ a.f 1 think=10 ; a.f 2 ]\n"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let image = scratch("workload").join("out.img");
    let out = chunkc(&["inspect", image.to_str().unwrap(), "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(j["version"], "3.0");
    assert_eq!(j["engine"]["cache_limit"], 8192);
    assert_eq!(j["engine"]["policy"], 2);
    assert_eq!(j["engine"]["order"], 3);
    assert_eq!(j["traces"][0]["name"], "t");
    assert_eq!(j["traces"][0]["steps"], 8);

    // A trace naming a task the set does not export, or one that does not parse, is refused
    // with the trace named.
    for (name, trace, says) in [
        ("workload-unknown", "a.g 1\n", "`a.g` is not an export"),
        ("workload-syntax", "2*[ a.f 1\n", "unbalanced"),
    ] {
        let out = build_set(name, manifest, &[("a.wat", wat), ("t.trace", trace)]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("trace `t`") && err.contains(says), "{err}");
    }
}

#[test]
fn profile_merge_folds_a_record_into_the_image() {
    let dir = scratch("profile-merge");
    let record = dir.join("run.rec");
    std::fs::write(
        &record,
        "atoll-profile 1\ntask fib.fib 2 100\ntransition fib.fib matmul.matmul 2\n",
    )
    .unwrap();
    let merged = dir.join("merged.img");
    let out = chunkc(&[
        "profile",
        "merge",
        default_image(),
        record.to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("2 profile lines folded"),
        "{}",
        stdout(&out)
    );
    let out = chunkc(&["inspect", merged.to_str().unwrap()]);
    let text = stdout(&out);
    // chunks/default.toml seeds fib.fib 60 and fib -> matmul 15.
    assert!(text.contains("profile: fib.fib x62"), "{text}");
    assert!(
        text.contains("profile: fib.fib -> matmul.matmul x17"),
        "{text}"
    );
    // A record naming a task the image does not have is refused; nothing is written.
    std::fs::write(&record, "atoll-profile 1\ntask fib.nope 1 1\n").unwrap();
    let refused = dir.join("refused.img");
    let out = chunkc(&[
        "profile",
        "merge",
        default_image(),
        record.to_str().unwrap(),
        "-o",
        refused.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("fib.nope"), "{}", stderr(&out));
    assert!(!refused.exists());
}
