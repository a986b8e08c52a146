//! WASI program workloads: real C and Rust programs of the default image (`lzc`, `sha256sum`,
//! `forth`, `wordfreq`) run whole by every engine over the same WASI subset (`atoll-wasi`),
//! with inputs larger than the tests use. Each engine compiles the module once; a timed run is
//! instantiate + `_start` to its exit. Engines must agree on the exit code and on every byte
//! of standard output.

use std::sync::Arc;
use std::time::{Duration, Instant};

use atoll_wasi::Tree;
use chunk_image::Image;

use crate::Settings;
use crate::engine::{Engine, rdtsc};
use crate::report::{ExecFig, ExecRow, Report};
use crate::wasi_setup::{Ran, Setup};

/// Standard input of a workload, built from the program's files.
enum Input {
    None,
    /// These files concatenated, `times` times over.
    Repeat(&'static [&'static str], usize),
    /// A file, then this text.
    FileThen(&'static str, &'static str),
}

/// `(chunk, arguments after argv[0], standard input)`.
const PROGRAMS: &[(&str, &[&str], Input)] = &[
    (
        "lzc",
        &["-"],
        Input::Repeat(
            &["text/islands.txt", "text/console.txt", "forth/primes.fs"],
            64,
        ),
    ),
    ("sha256sum", &["-b", "256", "8"], Input::None),
    (
        "forth",
        &["-"],
        Input::FileThen(
            "forth/primes.fs",
            "\n1000 primes\n10000 record best-n @ . best @ . cr\n",
        ),
    ),
    (
        "wordfreq",
        &["-n", "8", "-"],
        Input::Repeat(&["text/islands.txt", "text/console.txt"], 128),
    ),
];

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn setup(image: &Image<'_>, chunk: &str, args: &[&str], input: &Input) -> Result<Setup, String> {
    let program = image
        .program(chunk)
        .ok_or(format!("`{chunk}` has no program settings in the image"))?;
    let mut tree = Tree::new();
    for (path, data) in &program.files {
        tree.add_file(path, Arc::from(*data))
            .map_err(|e| format!("{chunk}: {e}"))?;
    }
    let file = |p: &str| -> Result<&[u8], String> {
        program
            .files
            .iter()
            .find(|(f, _)| *f == p)
            .map(|(_, d)| *d)
            .ok_or(format!("{chunk}: no file `{p}`"))
    };
    let stdin: Vec<u8> = match input {
        Input::None => Vec::new(),
        Input::Repeat(files, times) => {
            let mut one = Vec::new();
            for f in *files {
                one.extend_from_slice(file(f)?);
            }
            one.repeat(*times)
        }
        Input::FileThen(f, text) => [file(f)?, text.as_bytes()].concat(),
    };
    let mut argv = vec![chunk.to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    Ok(Setup {
        args: argv,
        tree: Arc::new(tree),
        stdin: Arc::from(stdin),
    })
}

fn label(args: &[&str], setup: &Setup, chunk: &str) -> String {
    let mut l = format!("{chunk} {}", args.join(" "));
    if !setup.stdin.is_empty() {
        l.push_str(&format!(" < {} KiB", setup.stdin.len().div_ceil(1024)));
    }
    l
}

/// Warms up (at least 2 runs and 50 ms), then takes `runs` samples of about `--sample-ms`
/// each; every run must print the same as the first.
fn time_runs(
    cmd: &mut dyn crate::engine::Command,
    setup: &Setup,
    s: &Settings,
) -> Result<(ExecFig, Ran), String> {
    let first = cmd.run(setup)?;
    let check = |r: Ran| {
        if r == first {
            Ok(())
        } else {
            Err("output changed between runs".to_string())
        }
    };
    let warm = Instant::now();
    let mut warm_runs = 0u32;
    while warm_runs < 2 || warm.elapsed() < Duration::from_millis(50) {
        check(cmd.run(setup)?)?;
        warm_runs += 1;
    }
    let per_run = warm.elapsed().as_secs_f64() / f64::from(warm_runs);
    let batch = ((s.sample.as_secs_f64() / per_run).round() as u64).max(1);
    let (mut times, mut cycles) = (Vec::new(), Vec::new());
    for _ in 0..s.runs {
        let t0 = Instant::now();
        let c0 = rdtsc();
        for _ in 0..batch {
            std::hint::black_box(cmd.run(setup)?);
        }
        let c1 = rdtsc();
        times.push(t0.elapsed().as_secs_f64() / batch as f64);
        cycles.push(c1.wrapping_sub(c0) as f64 / batch as f64);
    }
    Ok((
        ExecFig {
            secs: crate::median(&mut times),
            cycles: crate::median(&mut cycles),
            calls: batch,
        },
        first,
    ))
}

/// Runs every program workload on every engine into `report.programs`.
pub fn section(image: &Image<'_>, engines: &[Box<dyn Engine>], s: &Settings, report: &mut Report) {
    for (chunk, args, input) in PROGRAMS {
        let setup = match setup(image, chunk, args, input) {
            Ok(x) => x,
            Err(e) => {
                report.errors.push(e);
                continue;
            }
        };
        let Some(wasm) = image.chunk(chunk).map(|c| c.module) else {
            report.errors.push(format!("no chunk `{chunk}`"));
            continue;
        };
        let mut row = ExecRow {
            workload: label(args, &setup, chunk),
            result: String::new(),
            figs: Vec::new(),
        };
        let mut reference: Option<(&str, Ran)> = None;
        for engine in engines {
            let timed = engine
                .command(wasm)
                .and_then(|mut cmd| time_runs(cmd.as_mut(), &setup, s));
            match timed {
                Ok((fig, ran)) => {
                    match &reference {
                        None => {
                            row.result = format!(
                                "exit {}, {} B out, fnv {:08x}",
                                ran.exit,
                                ran.stdout.len(),
                                fnv1a(&ran.stdout) as u32
                            );
                            reference = Some((engine.name(), ran));
                        }
                        Some((who, want)) if *want != ran => report.errors.push(format!(
                            "{}: {} printed {} bytes and exited {}, {who} {} bytes and {}",
                            row.workload,
                            engine.name(),
                            ran.stdout.len(),
                            ran.exit,
                            want.stdout.len(),
                            want.exit
                        )),
                        Some(_) => {}
                    }
                    row.figs.push(Some(fig));
                }
                Err(e) => {
                    report
                        .errors
                        .push(format!("{} running {}: {e}", engine.name(), row.workload));
                    row.figs.push(None);
                }
            }
        }
        report.programs.push(row);
    }
}
