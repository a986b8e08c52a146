//! The large-modules table: compile-only figures for real modules of 32 KiB to several MB,
//! where an engine's per-function work dominates and its fixed per-module cost does not.
//!
//! Modules come from two places: the image's chunks of 32 KiB or more (the WASI programs),
//! and every `*.wasm` file in `--modules` (builds by others fetched by
//! `bench/fetch-modules.sh`: SQLite and Oniguruma in C, brotli in Rust, esbuild in Go).

use std::path::Path;

use chunk_image::Image;

use crate::engine::{self, Engine};
use crate::report::{CompileRow, Report};
use crate::{Settings, time_compiles};

/// Image chunks at least this large join the table.
const MIN_CHUNK_BYTES: usize = 32 * 1024;

/// Compiles every large module with every engine (one untimed compile, then at least one
/// timed, for `--compile-time` or `--iterations`) and records the rows in `report.large`.
pub fn section(
    image: &Image<'_>,
    engines: &[Box<dyn Engine>],
    settings: &Settings,
    report: &mut Report,
) {
    let mut modules: Vec<(String, Vec<u8>)> = image
        .chunks()
        .iter()
        .filter(|c| c.module.len() >= MIN_CHUNK_BYTES)
        .map(|c| (format!("{} (image)", c.name), c.module.to_vec()))
        .collect();
    match read_dir(&settings.modules) {
        Ok(files) => modules.extend(files),
        Err(e) => report.errors.push(format!(
            "{}: {e} (fetch the modules with bench/fetch-modules.sh, or pass --no-large)",
            settings.modules.display()
        )),
    }
    for (name, wasm) in modules {
        if !settings.json {
            eprintln!("  {name} ({} bytes)", wasm.len());
        }
        let mut row = CompileRow {
            chunk: name.clone(),
            bytes: wasm.len(),
            functions: engine::defined_functions(&wasm),
            figs: Vec::new(),
        };
        for engine in engines {
            row.figs
                .push(match time_compiles(engine.as_ref(), &wasm, settings, 1) {
                    Ok(fig) => Some(fig),
                    Err(e) => {
                        report
                            .errors
                            .push(format!("{} compiling {name}: {e}", engine.name()));
                        None
                    }
                });
        }
        report.large.push(row);
    }
}

/// Every `*.wasm` in `dir`, by name.
fn read_dir(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let name = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            files.push((name, std::fs::read(&path)?));
        }
    }
    files.sort();
    Ok(files)
}
