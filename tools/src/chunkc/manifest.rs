//! The chunk-set manifest (TOML) that `chunkc build` reads. See `docs/chunk-format.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chunk_image::{ValType, Value};
use serde::Deserialize;

use super::error::ChunkcError;

/// The whole manifest file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Cargo workspace of Rust chunks, relative to the manifest.
    pub rust_workspace: Option<PathBuf>,
    /// Cargo target directory for the Rust chunks, relative to the manifest
    /// (default: `<rust_workspace>/target`).
    pub rust_target_dir: Option<PathBuf>,
    /// Cargo workspace of Rust WASI programs (built for `wasm32-wasip1`), relative to the
    /// manifest.
    pub rust_wasi_workspace: Option<PathBuf>,
    /// Its target directory (default: `<rust_wasi_workspace>/target`).
    pub rust_wasi_target_dir: Option<PathBuf>,
    /// Where C programs are compiled to (default: `target/c` next to the manifest).
    pub c_out_dir: Option<PathBuf>,
    /// The chunks, in image order.
    #[serde(default, rename = "chunk")]
    pub chunks: Vec<ChunkEntry>,
    /// The initial usage profile.
    #[serde(default)]
    pub profile: ProfileEntry,
    /// Settings of the kernel's predictive assembly engine (stored in the image).
    pub engine: Option<EngineEntry>,
    /// Workload traces shipped in the image (`replay NAME`).
    #[serde(default, rename = "trace")]
    pub traces: Vec<TraceEntry>,
}

/// The `[engine]` table (every field optional: the kernel's default).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineEntry {
    /// Chunk cache bound in bytes.
    pub cache_limit: Option<u64>,
    /// `lru` or `lfu`.
    pub policy: Option<String>,
    /// Order of the next-task model (1-8).
    pub order: Option<u8>,
    /// Confidence (permille) above which predicted chunks are pre-assembled.
    pub high_confidence: Option<u16>,
    /// Confidence (permille) above which predicted chunks are fetched and validated.
    pub low_confidence: Option<u16>,
}

/// One `[[trace]]`: a name and a trace file (format: `atoll_predict::trace`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceEntry {
    /// Trace name (a word).
    pub name: String,
    /// The trace file, relative to the manifest.
    pub file: PathBuf,
}

/// One `[[chunk]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkEntry {
    /// Unique chunk name; other chunks import from it under this module name.
    pub name: String,
    /// A `.wat` source, relative to the manifest.
    pub wat: Option<PathBuf>,
    /// A `.wasm` binary, relative to the manifest.
    pub wasm: Option<PathBuf>,
    /// A crate in `rust_workspace`, built for `wasm32-unknown-unknown`.
    pub rust: Option<String>,
    /// A C program, compiled with `clang --target=wasm32-wasi` (wasi-libc).
    pub c: Option<PathBuf>,
    /// Extra clang flags for a C program (e.g. `-msimd128`).
    #[serde(default)]
    pub cflags: Vec<String>,
    /// A binary crate in `rust_wasi_workspace`, built for `wasm32-wasip1`.
    pub rust_wasi: Option<String>,
    /// Default arguments of a command chunk (stored in the image).
    #[serde(default)]
    pub args: Vec<String>,
    /// A directory whose files ship read-only with the program (stored in the image).
    pub files: Option<PathBuf>,
    /// Default environment of a command chunk, `KEY=VALUE` (stored in the image).
    #[serde(default)]
    pub env: Vec<String>,
    /// Runs of a command chunk and their expected output, checked by the tests.
    #[serde(default)]
    pub expect_run: Vec<RunExpectation>,
    /// Native stack bytes the chunk needs.
    #[serde(default = "default_stack_bytes")]
    pub stack_bytes: u32,
    /// Expected cycles per call (0 = unknown).
    #[serde(default)]
    pub cycles_per_call: u64,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Known inputs and expected outputs, checked by the tests (not stored in the image).
    #[serde(default)]
    pub expect: Vec<Expectation>,
}

fn default_stack_bytes() -> u32 {
    64 * 1024
}

/// Where a chunk's module comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Text format, compiled with the `wat` crate.
    Wat(PathBuf),
    /// A binary module.
    Wasm(PathBuf),
    /// A crate of the Rust chunk workspace.
    Rust(String),
    /// A C source file.
    C(PathBuf),
    /// A binary crate of the Rust WASI workspace.
    RustWasi(String),
}

impl ChunkEntry {
    /// The single source this chunk names.
    pub fn source(&self, manifest: &Path, base: &Path) -> Result<Source, ChunkcError> {
        let given = [
            self.wat.as_ref().map(|p| Source::Wat(base.join(p))),
            self.wasm.as_ref().map(|p| Source::Wasm(base.join(p))),
            self.rust.clone().map(Source::Rust),
            self.c.as_ref().map(|p| Source::C(base.join(p))),
            self.rust_wasi.clone().map(Source::RustWasi),
        ];
        let mut given = given.into_iter().flatten();
        match (given.next(), given.next()) {
            (Some(source), None) => Ok(source),
            _ => Err(ChunkcError::Manifest {
                path: manifest.to_path_buf(),
                message: format!(
                    "chunk `{}` must name exactly one of `wat`, `wasm`, `rust`, `c` or `rust_wasi`",
                    self.name
                ),
            }),
        }
    }
}

/// A known input and its expected output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// The export to call.
    pub call: String,
    /// Arguments (integers or floats).
    #[serde(default)]
    pub args: Vec<toml::Value>,
    /// Expected results (integers or floats); absent when a trap is expected.
    #[serde(default)]
    pub results: Vec<toml::Value>,
    /// Expected trap message substring, if the call must trap.
    pub trap: Option<String>,
    /// Lines the call must print through `atoll.print`.
    #[serde(default)]
    pub prints: Vec<String>,
}

/// A run of a command chunk and what it must produce (not stored in the image).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunExpectation {
    /// Arguments after `argv[0]`; absent: the chunk's default `args`.
    pub args: Option<Vec<String>>,
    /// A path in the chunk's files to read as standard input.
    pub stdin: Option<String>,
    /// `KEY=VALUE` settings on top of the chunk's default environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// Expected exit code.
    #[serde(default)]
    pub exit: u32,
    /// A file (relative to the manifest) holding the expected standard output.
    pub stdout: Option<PathBuf>,
    /// The run must trap instead.
    #[serde(default)]
    pub trap: bool,
}

/// A manifest number as a WebAssembly value of type `ty` (integers may stand for f64); `None`
/// when it does not fit.
pub fn to_value(v: &toml::Value, ty: ValType) -> Option<Value> {
    Some(match (v, ty) {
        (toml::Value::Integer(i), ValType::I32) => Value::I32(i32::try_from(*i).ok()?),
        (toml::Value::Integer(i), ValType::I64) => Value::I64(*i),
        (toml::Value::Float(f), ValType::F32) => Value::F32(*f as f32),
        (toml::Value::Float(f), ValType::F64) => Value::F64(*f),
        (toml::Value::Integer(i), ValType::F64) => Value::F64(*i as f64),
        _ => return None,
    })
}

impl Expectation {
    /// The arguments as values of the export's parameter types.
    pub fn arg_values(&self, params: &[ValType]) -> Option<Vec<Value>> {
        if self.args.len() != params.len() {
            return None;
        }
        self.args
            .iter()
            .zip(params)
            .map(|(v, t)| to_value(v, *t))
            .collect()
    }

    /// The expected results as values of the export's result types.
    pub fn result_values(&self, results: &[ValType]) -> Option<Vec<Value>> {
        if self.results.len() != results.len() {
            return None;
        }
        self.results
            .iter()
            .zip(results)
            .map(|(v, t)| to_value(v, *t))
            .collect()
    }
}

/// The `[profile]` table: task frequencies and transitions, tasks named `chunk.export`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileEntry {
    /// Task frequencies.
    #[serde(default)]
    pub tasks: BTreeMap<String, u64>,
    /// Task-to-task transitions.
    #[serde(default, rename = "transition")]
    pub transitions: Vec<TransitionEntry>,
}

/// One `[[profile.transition]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionEntry {
    /// Earlier task.
    pub from: String,
    /// Following task.
    pub to: String,
    /// How often.
    pub count: u64,
}

/// Reads and parses a manifest file.
pub fn load(path: &Path) -> Result<ManifestFile, ChunkcError> {
    let text = std::fs::read_to_string(path).map_err(|e| ChunkcError::io(path, e))?;
    toml::from_str(&text).map_err(|e| ChunkcError::Manifest {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
