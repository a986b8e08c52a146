//! `atoll-bench`: compile throughput and execution time of atoll's code generator next to
//! Wasmtime (Cranelift and Winch) and wasmi, on the default chunk set, on the host.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml --target-dir target/bench -- [OPTIONS]
//! ```
//! Not part of the tests: a workspace of its own (see docs/benchmarks.md).

mod atoll;
mod engine;
mod large;
mod programs;
mod report;
mod sys;
mod wasi_engines;
mod wasi_setup;
mod wasmi_engine;
mod wasmtime_engine;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chunk_image::{Image, ValType, Value};

use crate::engine::{Engine, rdtsc};
use crate::report::{CompileFig, CompileRow, ExecFig, ExecRow, Report};

/// The execution workloads: `(chunk, export, arguments)`, all deterministic exports of the
/// default set with inputs larger than the tests use.
const WORKLOADS: &[(&str, &str, &[&str])] = &[
    ("crc32", "crc32_bench", &["65536"]),
    ("sha256", "sha256_bench", &["16384"]),
    ("sort", "sort_bench", &["16000", "1"]),
    ("lz", "lz_roundtrip", &["16384"]),
    ("sieve", "count_primes", &["200000"]),
    ("json", "json_generate_and_count", &["2000"]),
    ("matmul", "matmul", &["32"]),
    ("fib", "fib_rec", &["25"]),
    ("strsearch", "count_byte", &["101"]),
    ("pipeline", "pipeline", &["4096"]),
];

const USAGE: &str =
    "usage: atoll-bench [--image PATH] [--json] [--iterations N] [--compile-time SECS]
                   [--runs N] [--sample-ms MS] [--engines LIST]
  --image PATH         chunk image (default target/chunks/default.img)
  --json               print JSON instead of tables
  --iterations N       compile every chunk exactly N times per engine (default: time-based)
  --compile-time SECS  time-based compile: at least this long per chunk and engine (default 0.2)
  --runs N             timed samples per workload and engine; the median is reported (default 11)
  --sample-ms MS       target length of one sample; short calls are batched (default 10)
  --engines LIST       comma-separated subset of
                       atoll,atoll-guard,atoll-sched,wasmtime-cranelift,wasmtime-winch,wasmi
                       (default: all), or atoll-no-reg-locals (atoll without reg_locals/br_tree),
                       atoll-guard-trees (atoll-guard without jump tables),
                       atoll-guard-no-fuse (atoll-guard without Options::fuse)
                       atoll-guard-no-inline (atoll-guard without inlining)
  --no-programs        skip the WASI program workloads (lzc, sha256sum, forth, wordfreq)
  --programs-only      only the WASI program workloads
  --modules DIR        large modules to compile (every *.wasm; default target/bench-modules,
                       filled by bench/fetch-modules.sh); the image's chunks of 32 KiB or more
                       join them in the large-modules table
  --no-large           skip the large-modules table
  --large-only         only the large-modules table";

/// Command-line settings.
pub(crate) struct Settings {
    image: PathBuf,
    json: bool,
    iterations: Option<u32>,
    compile_time: f64,
    runs: usize,
    sample: Duration,
    engines: Vec<String>,
    /// Run the WASI program workloads (`--no-programs` skips them).
    programs: bool,
    /// Only the WASI program workloads (`--programs-only`).
    programs_only: bool,
    /// Directory of large modules (`--modules`).
    modules: PathBuf,
    /// Compile the large modules (`--no-large` skips them).
    large: bool,
    /// Only the large modules (`--large-only`).
    large_only: bool,
}

fn parse_args() -> Result<Settings, String> {
    let mut s = Settings {
        image: PathBuf::from("target/chunks/default.img"),
        json: false,
        iterations: None,
        compile_time: 0.2,
        runs: 11,
        sample: Duration::from_millis(10),
        engines: ENGINE_NAMES
            .iter()
            .filter(|&&e| {
                !matches!(
                    e,
                    "atoll-no-reg-locals"
                        | "atoll-guard-trees"
                        | "atoll-guard-no-fuse"
                        | "atoll-guard-no-inline"
                )
            })
            .map(|s| s.to_string())
            .collect(),
        programs: true,
        programs_only: false,
        modules: PathBuf::from("target/bench-modules"),
        large: true,
        large_only: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{what} needs a value"));
        let num = |v: String| v.parse::<f64>().map_err(|e| format!("`{v}`: {e}"));
        match arg.as_str() {
            "--image" => s.image = value("--image")?.into(),
            "--json" => s.json = true,
            "--iterations" => s.iterations = Some(num(value("--iterations")?)?.max(1.0) as u32),
            "--compile-time" => s.compile_time = num(value("--compile-time")?)?,
            "--runs" => s.runs = num(value("--runs")?)?.max(1.0) as usize,
            "--sample-ms" => {
                s.sample = Duration::from_secs_f64(num(value("--sample-ms")?)? / 1000.0)
            }
            "--engines" => {
                s.engines = value("--engines")?.split(',').map(str::to_string).collect();
                if let Some(bad) = s
                    .engines
                    .iter()
                    .find(|e| !ENGINE_NAMES.contains(&e.as_str()))
                {
                    return Err(format!("unknown engine `{bad}`"));
                }
            }
            "--no-programs" => s.programs = false,
            "--programs-only" => s.programs_only = true,
            "--modules" => s.modules = value("--modules")?.into(),
            "--no-large" => s.large = false,
            "--large-only" => s.large_only = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(s)
}

const ENGINE_NAMES: [&str; 10] = [
    "atoll",
    "atoll-guard",
    "atoll-guard-trees",
    "atoll-sched",
    "atoll-no-reg-locals",
    "atoll-guard-no-fuse",
    "atoll-guard-no-inline",
    "wasmtime-cranelift",
    "wasmtime-winch",
    "wasmi",
];

fn make_engine(name: &str) -> Result<Box<dyn Engine>, String> {
    Ok(match name {
        "atoll" => Box::new(atoll::Atoll::new("atoll")),
        "atoll-sched" => Box::new(atoll::Atoll::new("atoll-sched")),
        "atoll-guard" => Box::new(atoll::Atoll::new("atoll-guard")),
        "atoll-guard-trees" => Box::new(atoll::Atoll::new("atoll-guard-trees")),
        "atoll-no-reg-locals" => Box::new(atoll::Atoll::new("atoll-no-reg-locals")),
        "atoll-guard-no-fuse" => Box::new(atoll::Atoll::new("atoll-guard-no-fuse")),
        "atoll-guard-no-inline" => Box::new(atoll::Atoll::new("atoll-guard-no-inline")),
        "wasmtime-cranelift" => Box::new(wasmtime_engine::Wasmtime::new(
            "wasmtime-cranelift",
            wasmtime::Strategy::Cranelift,
        )?),
        "wasmtime-winch" => Box::new(wasmtime_engine::Wasmtime::new(
            "wasmtime-winch",
            wasmtime::Strategy::Winch,
        )?),
        _ => Box::new(wasmi_engine::Wasmi::new()),
    })
}

fn main() -> ExitCode {
    let settings = match parse_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let bytes = match std::fs::read(&settings.image) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "reading {}: {e}\nbuild it with: cargo run -p tools --release --bin chunkc -- \
                 build chunks/default.toml -o target/chunks/default.img",
                settings.image.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let image = match Image::parse(&bytes) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{}: {e}", settings.image.display());
            return ExitCode::FAILURE;
        }
    };
    let mut report = Report {
        cpu: sys::cpu_model(),
        cpus: sys::cpus(),
        date: sys::utc_now(),
        image: settings.image.display().to_string(),
        engines: Vec::new(),
        iterations: settings.iterations.map_or_else(
            || {
                format!(
                    "time-based, >= {} s per chunk and engine",
                    settings.compile_time
                )
            },
            |n| format!("{n} per chunk and engine"),
        ),
        runs: settings.runs,
        compile: Vec::new(),
        exec: Vec::new(),
        programs: Vec::new(),
        large: Vec::new(),
        errors: Vec::new(),
    };
    let mut engines = Vec::new();
    for name in &settings.engines {
        match make_engine(name) {
            Ok(e) => {
                report.engines.push(name.clone());
                engines.push(e);
            }
            Err(e) => report.errors.push(format!("{name}: {e}")),
        }
    }
    if settings.large && !settings.programs_only {
        if !settings.json {
            eprintln!("compiling large modules...");
        }
        large::section(&image, &engines, &settings, &mut report);
    }
    if !settings.programs_only && !settings.large_only {
        if !settings.json {
            eprintln!("compiling...");
        }
        compile_section(&image, &engines, &settings, &mut report);
        if !settings.json {
            eprintln!("running...");
        }
        exec_section(&image, &engines, &settings, &mut report);
    }
    if settings.programs && !settings.large_only {
        if !settings.json {
            eprintln!("running WASI programs...");
        }
        programs::section(&image, &engines, &settings, &mut report);
    }
    if settings.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_tables());
    }
    for e in &report.errors {
        eprintln!("ERROR: {e}");
    }
    if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn compile_section(
    image: &Image<'_>,
    engines: &[Box<dyn Engine>],
    settings: &Settings,
    report: &mut Report,
) {
    for chunk in image.chunks() {
        let mut row = CompileRow {
            chunk: chunk.name.to_string(),
            bytes: chunk.module.len(),
            functions: engine::defined_functions(chunk.module),
            figs: Vec::new(),
        };
        for engine in engines {
            row.figs.push(
                match time_compiles(engine.as_ref(), chunk.module, settings, 2) {
                    Ok(fig) => Some(fig),
                    Err(e) => {
                        report.errors.push(format!(
                            "{} compiling {}: {e}",
                            engine.name(),
                            chunk.name
                        ));
                        None
                    }
                },
            );
        }
        report.compile.push(row);
    }
}

/// Compiles `wasm` once untimed, then `--iterations` times or for `--compile-time` seconds
/// (and at least `min_timed` times).
pub(crate) fn time_compiles(
    engine: &dyn Engine,
    wasm: &[u8],
    s: &Settings,
    min_timed: u32,
) -> Result<CompileFig, String> {
    engine.compile(wasm)?;
    let start = Instant::now();
    let mut n = 0u32;
    loop {
        engine.compile(wasm)?;
        n += 1;
        let done = match s.iterations {
            Some(it) => n >= it,
            None => n >= min_timed && start.elapsed().as_secs_f64() >= s.compile_time,
        };
        if done {
            break;
        }
    }
    Ok(CompileFig {
        iterations: n,
        secs: start.elapsed().as_secs_f64() / f64::from(n),
    })
}

fn exec_section(
    image: &Image<'_>,
    engines: &[Box<dyn Engine>],
    settings: &Settings,
    report: &mut Report,
) {
    let roots: Vec<&str> = WORKLOADS.iter().map(|w| w.0).collect();
    let chunks = engine::with_providers(image, &roots);
    let mut worlds = Vec::new();
    for engine in engines {
        match engine.load(image, &chunks) {
            Ok(w) => worlds.push(Some(w)),
            Err(e) => {
                report
                    .errors
                    .push(format!("{} instantiating: {e}", engine.name()));
                worlds.push(None);
            }
        }
    }
    for &(chunk, export, args) in WORKLOADS {
        let label = format!("{chunk}.{export}({})", args.join(", "));
        let Some(sig) = image
            .chunk(chunk)
            .and_then(|c| c.manifest.exports.iter().find(|e| e.name == export))
            .map(|e| e.sig.clone())
        else {
            report.errors.push(format!("{label}: no such export"));
            continue;
        };
        let values: Option<Vec<Value>> = args
            .iter()
            .zip(&sig.params)
            .map(|(a, t)| Value::parse(a, *t))
            .collect();
        let Some(values) = values.filter(|v| v.len() == sig.params.len()) else {
            report.errors.push(format!("{label}: arguments do not fit"));
            continue;
        };
        let mut row = ExecRow {
            workload: label.clone(),
            result: String::new(),
            figs: Vec::new(),
        };
        let mut reference: Option<(String, Vec<u64>)> = None;
        for (engine, world) in engines.iter().zip(worlds.iter_mut()) {
            let Some(world) = world else {
                row.figs.push(None);
                continue;
            };
            match time_calls(
                world.as_mut(),
                chunk,
                export,
                &values,
                &sig.results,
                settings,
            ) {
                Ok((fig, result)) => {
                    match &reference {
                        None => {
                            row.result = show(&result, &sig.results);
                            reference = Some((engine.name().to_string(), result));
                        }
                        Some((who, want)) if *want != result => report.errors.push(format!(
                            "{label}: {} returned {} but {who} returned {}",
                            engine.name(),
                            show(&result, &sig.results),
                            show(want, &sig.results)
                        )),
                        Some(_) => {}
                    }
                    row.figs.push(Some(fig));
                }
                Err(e) => {
                    report
                        .errors
                        .push(format!("{} running {label}: {e}", engine.name()));
                    row.figs.push(None);
                }
            }
        }
        report.exec.push(row);
    }
}

fn show(bits: &[u64], types: &[ValType]) -> String {
    let shown: Vec<String> = bits
        .iter()
        .zip(types)
        .map(|(b, t)| match Value::from_bits(*b, *t) {
            Some(Value::I32(v)) => v.to_string(),
            Some(Value::I64(v)) => v.to_string(),
            Some(Value::F32(v)) => v.to_string(),
            Some(Value::F64(v)) => v.to_string(),
            None => format!("({})", t.name()),
        })
        .collect();
    shown.join(", ")
}

/// Keeps only the bits a value of its type has (i32/f32 in the low half).
fn normalize(mut bits: Vec<u64>, types: &[ValType]) -> Vec<u64> {
    for (b, t) in bits.iter_mut().zip(types) {
        if matches!(t, ValType::I32 | ValType::F32) {
            *b &= 0xFFFF_FFFF;
        }
    }
    bits
}

/// Warms up (at least 3 calls and 50 ms), then takes `runs` samples, each a batch of calls
/// sized to about `--sample-ms`; returns the median time and cycles per call and the result
/// (every call must return the same).
fn time_calls(
    world: &mut dyn engine::World,
    chunk: &str,
    export: &str,
    args: &[Value],
    types: &[ValType],
    s: &Settings,
) -> Result<(ExecFig, Vec<u64>), String> {
    let mut call = world.prepare(chunk, export, args)?;
    let first = normalize(call()?, types);
    let check = |got: Vec<u64>| {
        if normalize(got, types) == first {
            Ok(())
        } else {
            Err("result changed between calls".to_string())
        }
    };
    let warm = Instant::now();
    let mut warm_calls = 0u32;
    while warm_calls < 3 || warm.elapsed() < Duration::from_millis(50) {
        check(call()?)?;
        warm_calls += 1;
    }
    let per_call = warm.elapsed().as_secs_f64() / f64::from(warm_calls);
    let batch = ((s.sample.as_secs_f64() / per_call).round() as u64).max(1);
    let mut times = Vec::with_capacity(s.runs);
    let mut cycles = Vec::with_capacity(s.runs);
    for _ in 0..s.runs {
        let t0 = Instant::now();
        let c0 = rdtsc();
        for _ in 0..batch {
            let r = call()?;
            std::hint::black_box(&r);
        }
        let c1 = rdtsc();
        times.push(t0.elapsed().as_secs_f64() / batch as f64);
        cycles.push(c1.wrapping_sub(c0) as f64 / batch as f64);
    }
    check(call()?)?;
    Ok((
        ExecFig {
            secs: median(&mut times),
            cycles: median(&mut cycles),
            calls: batch,
        },
        first,
    ))
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
