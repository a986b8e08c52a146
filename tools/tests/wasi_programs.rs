//! The WASI programs of the default image (C and Rust command chunks): every `expect_run` of
//! `chunks/default.toml` gives its checked-in standard output and exit code under wasmi, and
//! atoll's code generator, run natively, prints the same bytes and ends the same way.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chunk_image::Image;
use tools::chunkc::build::image_bytes;
use tools::chunkc::command::{self, CommandRun};
use tools::chunkc::manifest::{self, RunExpectation};
use tools::wasi::{Ended, RunOutput};

fn manifest_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../chunks/default.toml")
}

fn default_image() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| image_bytes(&manifest_path()).unwrap_or_else(|e| panic!("build: {e}")))
}

fn run(chunk: &str, want: &RunExpectation, native: bool) -> RunOutput {
    run_engine(chunk, want, native, false)
}

fn run_engine(chunk: &str, want: &RunExpectation, native: bool, lazy: bool) -> RunOutput {
    let request = CommandRun {
        chunk: chunk.into(),
        args: want.args.clone(),
        stdin: want.stdin.clone(),
        native,
        lazy,
        env: want.env.clone(),
    };
    command::run(default_image(), &request).unwrap_or_else(|e| panic!("{chunk}: {e}"))
}

fn check(chunk: &str, want: &RunExpectation, base: &Path) {
    let label = format!(
        "{chunk} {:?} < {:?} env {:?}",
        want.args, want.stdin, want.env
    );
    let reference = run(chunk, want, false);
    match (&reference.ended, want.trap) {
        (Ended::Exit(code), false) => assert_eq!(*code, want.exit, "{label}: exit code"),
        (Ended::Trap(_), true) => {}
        (ended, _) => panic!(
            "{label}: ended {ended:?}, expected trap={} exit={}",
            want.trap, want.exit
        ),
    }
    if let Some(path) = &want.stdout {
        let expected = std::fs::read(base.join(path)).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(
            String::from_utf8_lossy(&reference.stdout),
            String::from_utf8_lossy(&expected),
            "{label}: stdout differs from {}",
            path.display()
        );
    }
    // atoll's engine, and the same with every function assembled at its first call.
    for lazy in [false, true] {
        let native = run_engine(chunk, want, true, lazy);
        assert_eq!(
            native.stdout, reference.stdout,
            "{label}: native stdout (lazy {lazy})"
        );
        match (&native.ended, &reference.ended) {
            (Ended::Exit(a), Ended::Exit(b)) => assert_eq!(a, b, "{label}: native exit"),
            (Ended::Trap(_), Ended::Trap(_)) => {}
            (a, b) => panic!("{label}: native ended {a:?}, reference {b:?} (lazy {lazy})"),
        }
    }
}

#[test]
fn every_program_run_matches_its_expected_output_on_both_engines() {
    let file = manifest::load(&manifest_path()).expect("manifest");
    let base = manifest_path().parent().expect("dir").to_path_buf();
    let mut checked = 0;
    let (mut c, mut rust) = (0, 0);
    for entry in &file.chunks {
        for want in &entry.expect_run {
            check(&entry.name, want, &base);
            checked += 1;
        }
        if !entry.expect_run.is_empty() {
            if entry.c.is_some() {
                c += 1;
            }
            if entry.rust_wasi.is_some() {
                rust += 1;
            }
        }
    }
    assert!(c >= 3 && rust >= 2, "{c} C and {rust} Rust programs");
    assert!(checked >= 15, "only {checked} runs");
}

#[test]
fn programs_carry_their_arguments_and_files() {
    let image = Image::parse(default_image()).expect("parses");
    // Version 4: programs (wasitest has a default environment), the workload section, and
    // chunks sharing memories, tables and globals.
    assert_eq!(image.major_version(), 4);
    let lzc = image.program("lzc").expect("lzc program");
    assert_eq!(
        lzc.args,
        ["text/islands.txt", "text/console.txt", "forth/primes.fs"]
    );
    let on_disk = std::fs::read(
        manifest_path()
            .parent()
            .unwrap()
            .join("files/forth/primes.fs"),
    )
    .unwrap();
    let shipped = lzc
        .files
        .iter()
        .find(|(p, _)| *p == "forth/primes.fs")
        .expect("file");
    assert_eq!(shipped.1, on_disk.as_slice());
}

#[test]
fn commands_refuse_what_they_cannot_run() {
    let bad = |chunk: &str, stdin: Option<&str>| {
        command::run(
            default_image(),
            &CommandRun {
                chunk: chunk.into(),
                stdin: stdin.map(String::from),
                ..CommandRun::default()
            },
        )
        .map(|_| ())
        .unwrap_err()
        .to_string()
    };
    assert!(bad("fib", None).contains("not a command"));
    assert!(bad("nosuch", None).contains("no chunk"));
    assert!(bad("lzc", Some("text/none.txt")).contains("no file"));
}

const PRELOAD_WAT: &str = r#"(module (func (export "add") (param i32 i32) (result i32)
  local.get 0 local.get 1 i32.add))"#;

const MAIN_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "math" "add" (func $add (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "sum is ?\n")
  (func (export "_start")
    (i32.store8 (i32.const 23) (i32.add (i32.const 48) (call $add (i32.const 2) (i32.const 3))))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 9))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (call $add (i32.const 40) (i32.const 2)))
    unreachable))"#;

fn chunkc(args: &[String]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_chunkc"))
        .args(args)
        .output()
        .expect("chunkc runs")
}

#[test]
fn exec_runs_files_with_preloads_directories_and_exit_codes() {
    let dir = std::env::temp_dir().join(format!("atoll-exec-{}", std::process::id()));
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("a.txt"), b"12345").unwrap();
    std::fs::write(tree.join("sub/b.txt"), b"x").unwrap();
    std::fs::write(dir.join("math.wat"), PRELOAD_WAT).unwrap();
    std::fs::write(dir.join("main.wat"), MAIN_WAT).unwrap();
    let image = Image::parse(default_image()).unwrap();
    let wasitest = image.chunk("wasitest").unwrap().module;
    std::fs::write(dir.join("wasitest.wasm"), wasitest).unwrap();
    let (main, math, wt, tree) = (
        dir.join("main.wat"),
        format!("math={}", dir.join("math.wat").display()),
        dir.join("wasitest.wasm"),
        format!("{}::.", tree.display()),
    );
    for native in [false, true] {
        let with = |extra: &[&str]| -> Vec<String> {
            let mut v = vec!["exec".to_string()];
            if native {
                v.push("--native".into());
            }
            v.extend(extra.iter().map(|s| s.to_string()));
            v
        };
        let out = chunkc(&with(&["--preload", &math, main.to_str().unwrap()]));
        assert_eq!(out.status.code(), Some(42), "native={native}: {out:?}");
        assert_eq!(out.stdout, b"sum is 5\n");
        // Without the preload the import is unresolved: an error, not a crash.
        let out = chunkc(&with(&[main.to_str().unwrap()]));
        assert_eq!(out.status.code(), Some(1), "native={native}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
        let out = chunkc(&with(&["--dir", &tree, wt.to_str().unwrap(), "ls", "."]));
        assert_eq!(out.status.code(), Some(0), "native={native}: {out:?}");
        // `./..` is outside the preopened directory: stat fails, so it is not listed.
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "d        0 .\n-        5 a.txt\nd        0 sub\n"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("./..: Capabilities insufficient"));
        // Without --dir there is nothing to list; a trap is status 134.
        let out = chunkc(&with(&[wt.to_str().unwrap(), "ls", "."]));
        assert_eq!(out.status.code(), Some(1), "native={native}: {out:?}");
        let out = chunkc(&with(&[wt.to_str().unwrap(), "trap"]));
        assert_eq!(out.status.code(), Some(134), "native={native}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("trap: "));
        // --env sets the environment (a file run has no image defaults); a later value of
        // the same key replaces the earlier one.
        let out = chunkc(&with(&[
            "--env",
            "A=1",
            "--env",
            "ATOLL_GREETING=exec",
            "--env",
            "A=2",
            wt.to_str().unwrap(),
            "env",
        ]));
        assert_eq!(out.status.code(), Some(0), "native={native}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "env[0] A=2\nenv[1] ATOLL_GREETING=exec\n2 variables; ATOLL_GREETING=exec\n"
        );
        // poll_oneoff's clock: nanosleep waits at least as long as asked.
        let out = chunkc(&with(&[wt.to_str().unwrap(), "sleep", "30"]));
        assert_eq!(out.status.code(), Some(0), "native={native}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("slept at least that long: yes"));
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The vector instructions in `module`'s function bodies.
fn simd_instructions(module: &[u8]) -> usize {
    let mut count = 0;
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let Ok(wasmparser::Payload::CodeSectionEntry(body)) = payload {
            let mut ops = body.get_operators_reader().expect("operators");
            while !ops.eof() {
                let name = format!("{:?}", ops.read().expect("operator"));
                let lanes = ["V128", "I8x16", "I16x8", "I32x4", "I64x2", "F32x4", "F64x2"];
                if lanes.iter().any(|p| name.starts_with(p)) {
                    count += 1;
                }
            }
        }
    }
    count
}

#[test]
fn the_simd_c_program_matches_its_plain_c_build_for_the_host() {
    // The checked-in outputs come from the same C file compiled natively (no wasm SIMD path):
    // compile it again here and compare, so they are not just what the wasm build printed.
    let file = manifest::load(&manifest_path()).expect("manifest");
    let entry = file
        .chunks
        .iter()
        .find(|e| e.cflags.iter().any(|f| f == "-msimd128"))
        .expect("a C program built with -msimd128");
    let base = manifest_path().parent().expect("dir").to_path_buf();
    let src = base.join(entry.c.as_ref().expect("a C program"));
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tmp/native-c");
    std::fs::create_dir_all(&out_dir).expect("scratch dir");
    let exe = out_dir.join(&entry.name);
    let cc = std::process::Command::new("cc")
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("run cc (the host C compiler)");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let files = base.join(entry.files.as_ref().expect("files"));
    for want in &entry.expect_run {
        let native = std::process::Command::new(&exe)
            .args(want.args.iter().flatten())
            .current_dir(&files)
            .output()
            .expect("run the native build");
        let expected = std::fs::read(base.join(want.stdout.as_ref().expect("stdout file")))
            .expect("expected output");
        assert_eq!(
            String::from_utf8_lossy(&native.stdout),
            String::from_utf8_lossy(&expected),
            "{} {:?}: native build",
            entry.name,
            want.args
        );
        assert_eq!(native.status.code(), Some(want.exit as i32));
    }
    // And the wasm build really is vector code.
    let image = Image::parse(default_image()).expect("image");
    let module = image.chunk(&entry.name).expect("chunk").module;
    let simd = simd_instructions(module);
    assert!(
        simd >= 50,
        "only {simd} SIMD instructions in {}",
        entry.name
    );
}
