//! `chunkc`: builds, inspects and runs chunk images on the host.
//!
//! - `build MANIFEST.toml -o IMAGE` compiles `.wat`, takes `.wasm`, builds Rust chunks for
//!   `wasm32-unknown-unknown`, analyzes and validates every module and writes the image.
//! - `inspect IMAGE [--json]` prints chunks, sizes, dependencies, resources and profile.
//! - `run IMAGE CHUNK.EXPORT ARGS... [; CHUNK.EXPORT ARGS...]...` runs exports with the wasmi
//!   reference interpreter, one after another as the kernel would (chunks sharing memories,
//!   tables or globals keep their instances from one task to the next);
//!   `run IMAGE CHUNK [--native] [--stdin PATH] [ARGS...]` runs a command chunk (WASI `_start`)
//!   with wasmi or atoll's code generator.
//! - `exec [--native] [--dir HOST[::GUEST]] [--preload NAME=MODULE] FILE.wasm [ARGS...]` runs
//!   a WASI command module from a file with stdio passed through.
//! - `profile merge IMAGE RECORD -o OUT` folds a kernel's `profile export` record into the
//!   image's usage profiles.
//! - `wast [--json] [--no-opt] [--schedule] [--guard] FILE...` runs WebAssembly spec scripts
//!   against atoll's code generator, executing the generated code natively (x86-64 hosts);
//!   `--guard` compiles without bounds checks and runs over guard-page memory (`guard_host`).

pub mod build;
mod c_build;
pub mod command;
pub mod error;
pub mod exec;
#[cfg(target_arch = "x86_64")]
pub mod guard_host;
#[cfg(target_arch = "x86_64")]
pub mod host_code;
pub mod inspect;
pub mod manifest;
pub mod run;
mod rust_build;
#[cfg(target_arch = "x86_64")]
pub mod wast;
pub mod wast_host;
#[cfg(target_arch = "x86_64")]
pub mod wast_skip;
#[cfg(target_arch = "x86_64")]
pub mod wast_v128;
pub mod workload;

use std::io::Write;
use std::path::Path;

pub use error::ChunkcError;

use crate::wasi;

/// Command-line help.
pub const USAGE: &str = "usage:
  chunkc build MANIFEST.toml -o IMAGE
  chunkc inspect IMAGE [--json]
  chunkc run IMAGE CHUNK.EXPORT [ARGS...] [';' CHUNK.EXPORT [ARGS...]]...
  chunkc run IMAGE CHUNK [--native] [--stdin PATH] [--env K=V] [ARGS...]
  chunkc exec [--native] [--dir HOST[::GUEST]] [--preload NAME=MODULE] [--env K=V] FILE.wasm [ARGS...]
  chunkc profile merge IMAGE RECORD -o OUT
  chunkc wast [--json] [--no-opt] [--schedule] [--guard] FILE...";

/// Runs chunkc with `args` (without the program name), writing normal output to `out`.
/// Returns the exit status for success and traps (1 for a trap); errors are returned.
pub fn main_with_args(args: &[String], out: &mut dyn Write) -> Result<u8, ChunkcError> {
    let write_err = |e| ChunkcError::io("<stdout>", e);
    match args.first().map(String::as_str) {
        Some("build") => {
            let (manifest, image) = match &args[1..] {
                [m, o, i] if o == "-o" => (m, i),
                [o, i, m] if o == "-o" => (m, i),
                _ => {
                    return Err(ChunkcError::Usage(
                        "build needs MANIFEST.toml -o IMAGE".into(),
                    ));
                }
            };
            let summary = build::build_image(Path::new(manifest), Path::new(image))?;
            writeln!(out, "{summary}").map_err(write_err)?;
            Ok(0)
        }
        Some("inspect") => {
            let (path, as_json) = match &args[1..] {
                [p] => (p, false),
                [p, j] | [j, p] if j == "--json" => (p, true),
                _ => return Err(ChunkcError::Usage("inspect needs IMAGE [--json]".into())),
            };
            let bytes = std::fs::read(path).map_err(|e| ChunkcError::io(path, e))?;
            let image = chunk_image::Image::parse(&bytes)?;
            if as_json {
                writeln!(out, "{}", inspect::json(&image, bytes.len())).map_err(write_err)?;
            } else {
                write!(out, "{}", inspect::table(&image, bytes.len())).map_err(write_err)?;
            }
            Ok(0)
        }
        Some("run") => {
            let [path, target, rest @ ..] = &args[1..] else {
                return Err(ChunkcError::Usage(
                    "run needs IMAGE CHUNK.EXPORT [ARGS...]".into(),
                ));
            };
            let bytes = std::fs::read(path).map_err(|e| ChunkcError::io(path, e))?;
            if !target.contains('.') {
                let request = command::parse(&args[2..])?;
                let ran = command::run(&bytes, &request)?;
                out.write_all(&ran.stdout).map_err(write_err)?;
                std::io::stderr()
                    .write_all(&ran.stderr)
                    .map_err(write_err)?;
                if let wasi::Ended::Trap(m) = &ran.ended {
                    eprintln!("trap: {m}");
                }
                return Ok(ran.status());
            }
            let mut words = vec![target.clone()];
            words.extend(rest.iter().cloned());
            let mut status = 0;
            for result in run::run_tasks(&bytes, &words)? {
                for line in &result.printed {
                    writeln!(out, "{line}").map_err(write_err)?;
                }
                match result.outcome {
                    run::Outcome::Returned(values) => {
                        let text: Vec<String> = values.iter().map(ToString::to_string).collect();
                        writeln!(out, "{}", text.join(" ")).map_err(write_err)?;
                    }
                    run::Outcome::Trapped(message) => {
                        writeln!(out, "trap: {message}").map_err(write_err)?;
                        status = 1;
                    }
                }
            }
            Ok(status)
        }
        Some("profile") => {
            let (image, record, o) = match &args[1..] {
                [m, i, r, flag, o] if m == "merge" && flag == "-o" => (i, r, o),
                _ => {
                    return Err(ChunkcError::Usage(
                        "profile merge needs IMAGE RECORD -o OUT".into(),
                    ));
                }
            };
            let summary =
                workload::profile_merge(Path::new(image), Path::new(record), Path::new(o))?;
            writeln!(out, "{summary}").map_err(write_err)?;
            Ok(0)
        }
        Some("exec") => {
            let request = exec::parse(&args[1..])?;
            let ran = exec::exec(&request)?;
            if let wasi::Ended::Trap(m) = &ran.ended {
                eprintln!("trap: {m}");
            }
            Ok(ran.status())
        }
        #[cfg(target_arch = "x86_64")]
        Some("wast") => {
            let flags = |f: &str| args[1..].iter().any(|a| a == f);
            let files: Vec<String> = args[1..]
                .iter()
                .filter(|a| !a.starts_with("--"))
                .cloned()
                .collect();
            if files.is_empty() {
                return Err(ChunkcError::Usage("wast needs FILE...".into()));
            }
            let mut options = atoll_pae::Options {
                guard_pages: flags("--guard"),
                ..if flags("--no-opt") {
                    atoll_pae::Options::NONE
                } else {
                    atoll_pae::Options::default()
                }
            };
            if flags("--schedule") {
                options.schedule = true;
            }
            let ok = wast::run_files(&files, flags("--json"), options, out)?;
            Ok(if ok { 0 } else { 1 })
        }
        #[cfg(not(target_arch = "x86_64"))]
        Some("wast") => Err(ChunkcError::NotImplemented(
            "`chunkc wast` needs an x86-64 host",
        )),
        Some("help" | "--help" | "-h") => {
            writeln!(out, "{USAGE}").map_err(write_err)?;
            Ok(0)
        }
        Some(other) => Err(ChunkcError::Usage(format!("unknown command `{other}`"))),
        None => Err(ChunkcError::Usage("no command given".into())),
    }
}
