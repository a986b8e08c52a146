//! `chunkc build MANIFEST.toml -o IMAGE`: compile, analyze, validate and write an image.

use std::path::{Path, PathBuf};

use chunk_image::{
    Chunk, FuncSig, Import, KERNEL_MODULE, Manifest, ModuleInfo, Profile, Program, Provider,
    Resources, TaskFrequency, Transition, ValType, WASI_MODULE, Workload, analyze_module,
    write_image_full,
};

use super::error::ChunkcError;
use super::manifest::{self, ManifestFile, Source};
use super::{c_build, rust_build};

/// The kernel functions chunks may import from `atoll`, with their signatures.
pub const KERNEL_FUNCTIONS: [(&str, &[ValType], &[ValType]); 3] = [
    ("print", &[ValType::I32, ValType::I32], &[]),
    ("cycles", &[], &[ValType::I64]),
    ("yield", &[], &[]),
];

/// Builds the chunks `manifest_path` describes and returns them in manifest order.
pub fn build_chunks(manifest_path: &Path) -> Result<Vec<Chunk>, ChunkcError> {
    build_set(manifest_path).map(|(chunks, _)| chunks)
}

/// Builds the chunks `manifest_path` describes, and the run settings (default arguments and
/// shipped files) of its command chunks.
pub fn build_set(manifest_path: &Path) -> Result<(Vec<Chunk>, Vec<Program>), ChunkcError> {
    build_all(manifest_path).map(|(chunks, programs, _)| (chunks, programs))
}

/// Everything an image holds: chunks, programs and the workload section.
pub type ImageParts = (Vec<Chunk>, Vec<Program>, Option<Workload>);

/// Everything an image holds: chunks, programs and the workload section (engine settings and
/// traces), if the manifest has one.
pub fn build_all(manifest_path: &Path) -> Result<ImageParts, ChunkcError> {
    let file = manifest::load(manifest_path)?;
    // Absolute, because cargo runs inside the Rust workspace and must find the same paths.
    let parent = manifest_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = &std::path::absolute(parent).map_err(|e| ChunkcError::io(parent, e))?;
    let bad = |message: String| ChunkcError::Manifest {
        path: manifest_path.to_path_buf(),
        message,
    };

    let sources = file
        .chunks
        .iter()
        .map(|c| c.source(manifest_path, base))
        .collect::<Result<Vec<_>, _>>()?;
    let rust_output = if sources.iter().any(|s| matches!(s, Source::Rust(_))) {
        let workspace = file
            .rust_workspace
            .as_ref()
            .map(|w| base.join(w))
            .ok_or_else(|| bad("`rust` chunks need `rust_workspace`".into()))?;
        let target_dir = file
            .rust_target_dir
            .as_ref()
            .map_or_else(|| workspace.join("target"), |t| base.join(t));
        Some(rust_build::build(&workspace, &target_dir)?)
    } else {
        None
    };
    let wasi_output = if sources.iter().any(|s| matches!(s, Source::RustWasi(_))) {
        let workspace = file
            .rust_wasi_workspace
            .as_ref()
            .map(|w| base.join(w))
            .ok_or_else(|| bad("`rust_wasi` chunks need `rust_wasi_workspace`".into()))?;
        let target_dir = file
            .rust_wasi_target_dir
            .as_ref()
            .map_or_else(|| workspace.join("target"), |t| base.join(t));
        Some(rust_build::build_for(
            &workspace,
            &target_dir,
            rust_build::WASI_TARGET,
        )?)
    } else {
        None
    };
    let c_out = file
        .c_out_dir
        .as_ref()
        .map_or_else(|| base.join("target/c"), |d| base.join(d));

    let mut chunks = Vec::new();
    let mut programs = Vec::new();
    for (entry, source) in file.chunks.iter().zip(&sources) {
        let (path, module) = match source {
            Source::C(src) => c_build::compile(
                src,
                &entry.cflags,
                &c_out.join(format!("{}.wasm", entry.name)),
            )?,
            _ => load_module(source, rust_output.as_ref(), wasi_output.as_ref())?,
        };
        if !entry.args.is_empty() || entry.files.is_some() {
            programs.push(program_of(entry, base)?);
        }
        let info = analyze_module(&module).map_err(|error| ChunkcError::Module {
            chunk: entry.name.clone(),
            path: path.clone(),
            error,
        })?;
        let manifest = chunk_manifest(&entry.name, &path, info, entry, &file)?;
        chunks.push(Chunk {
            name: entry.name.clone(),
            module,
            manifest,
        });
    }
    check_profile(&file, &chunks).map_err(bad)?;
    let workload = super::workload::of_manifest(&file, base, &chunks).map_err(bad)?;
    Ok((chunks, programs, workload))
}

/// A command chunk's default arguments and the files under its `files` directory.
fn program_of(entry: &manifest::ChunkEntry, base: &Path) -> Result<Program, ChunkcError> {
    let mut files = Vec::new();
    if let Some(dir) = &entry.files {
        let tree = crate::wasi::load_dir(&base.join(dir))?;
        files = tree
            .files()
            .map(|(p, d)| (p.to_string(), d.to_vec()))
            .collect();
    }
    Ok(Program {
        chunk: entry.name.clone(),
        args: entry.args.clone(),
        files,
        env: entry.env.clone(),
    })
}

/// Builds the image `manifest_path` describes, in memory.
pub fn image_bytes(manifest_path: &Path) -> Result<Vec<u8>, ChunkcError> {
    let (chunks, programs, workload) = build_all(manifest_path)?;
    Ok(write_image_full(&chunks, &programs, workload.as_ref())?)
}

/// `chunkc build`: builds and writes the image, creating the output directory.
pub fn build_image(manifest_path: &Path, out: &Path) -> Result<String, ChunkcError> {
    let (chunks, programs, workload) = build_all(manifest_path)?;
    let bytes = write_image_full(&chunks, &programs, workload.as_ref())?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ChunkcError::io(dir, e))?;
    }
    std::fs::write(out, &bytes).map_err(|e| ChunkcError::io(out, e))?;
    Ok(format!(
        "wrote {}: {} chunks, {} bytes",
        out.display(),
        chunks.len(),
        bytes.len()
    ))
}

fn load_module(
    source: &Source,
    rust: Option<&rust_build::RustOutput>,
    rust_wasi: Option<&rust_build::RustOutput>,
) -> Result<(PathBuf, Vec<u8>), ChunkcError> {
    match source {
        Source::Wat(path) => {
            // `parse_file` reports errors as `path:line:column`.
            let bytes = wat::parse_file(path).map_err(|e| ChunkcError::Wat(e.to_string()))?;
            Ok((path.clone(), bytes))
        }
        Source::Wasm(path) => {
            let bytes = std::fs::read(path).map_err(|e| ChunkcError::io(path, e))?;
            Ok((path.clone(), bytes))
        }
        Source::Rust(name) => {
            let path = rust
                .map(|r| r.wasm_path(name))
                .ok_or_else(|| ChunkcError::Cargo("Rust chunks were not built".into()))?;
            let bytes = std::fs::read(&path).map_err(|e| ChunkcError::io(&path, e))?;
            Ok((path, bytes))
        }
        Source::RustWasi(name) => {
            let path = rust_wasi
                .map(|r| r.wasm_path(name))
                .ok_or_else(|| ChunkcError::Cargo("Rust WASI programs were not built".into()))?;
            let bytes = std::fs::read(&path).map_err(|e| ChunkcError::io(&path, e))?;
            Ok((path, bytes))
        }
        Source::C(src) => Err(ChunkcError::Cargo(format!(
            "{} must be compiled first",
            src.display()
        ))),
    }
}

fn chunk_manifest(
    name: &str,
    path: &Path,
    info: ModuleInfo,
    entry: &manifest::ChunkEntry,
    file: &ManifestFile,
) -> Result<Manifest, ChunkcError> {
    // A refused kernel or WASI import: the module's error, not tied to one function.
    let bad_import = |message| ChunkcError::Module {
        chunk: name.into(),
        path: path.to_path_buf(),
        error: chunk_image::ModuleError {
            message,
            offset: None,
            function: None,
            function_name: None,
        },
    };
    let mut imports = Vec::new();
    for import in info.imports {
        let provider = if import.module == KERNEL_MODULE {
            check_kernel_import(&import.name, &import.sig).map_err(bad_import)?;
            Provider::Kernel
        } else if import.module == WASI_MODULE {
            check_wasi_import(&import.name, &import.sig).map_err(bad_import)?;
            Provider::Kernel
        } else {
            Provider::Chunk(import.module.clone())
        };
        imports.push(Import {
            module: import.module,
            name: import.name,
            sig: import.sig,
            provider,
        });
    }
    if let Some(import) = info
        .object_imports
        .iter()
        .find(|i| i.module == KERNEL_MODULE || i.module == WASI_MODULE)
    {
        return Err(bad_import(format!(
            "import `{}.{}`: the kernel provides functions only, not a {}",
            import.module,
            import.name,
            import.ty.kind()
        )));
    }
    let prefix = format!("{name}.");
    let profile = Profile {
        tasks: file
            .profile
            .tasks
            .iter()
            .filter(|(task, _)| task.starts_with(&prefix))
            .map(|(task, &count)| TaskFrequency {
                task: task.clone(),
                count,
            })
            .collect(),
        transitions: file
            .profile
            .transitions
            .iter()
            .filter(|t| t.from.starts_with(&prefix))
            .map(|t| Transition {
                from: t.from.clone(),
                to: t.to.clone(),
                count: t.count,
            })
            .collect(),
    };
    Ok(Manifest {
        imports,
        exports: info.exports,
        object_imports: info.object_imports,
        object_exports: info.object_exports,
        call_graph: info.call_graph,
        resources: Resources {
            memory_pages: info.memory_pages,
            max_memory_pages: info.max_memory_pages,
            stack_bytes: entry.stack_bytes,
            cycles_per_call: entry.cycles_per_call,
        },
        profile,
        tags: entry.tags.clone(),
    })
}

fn check_kernel_import(name: &str, sig: &FuncSig) -> Result<(), String> {
    let (_, params, results) = KERNEL_FUNCTIONS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| format!("`{KERNEL_MODULE}` has no function `{name}`"))?;
    if sig.params != *params || sig.results != *results {
        return Err(format!(
            "`{KERNEL_MODULE}.{name}` has the wrong signature {}",
            super::inspect::sig_text(sig)
        ));
    }
    Ok(())
}

fn check_wasi_import(name: &str, sig: &FuncSig) -> Result<(), String> {
    let func = atoll_wasi::Func::by_name(name)
        .ok_or_else(|| format!("`{WASI_MODULE}` has no function `{name}`"))?;
    let params: Vec<ValType> = func
        .params()
        .iter()
        .map(|t| match t {
            atoll_wasi::abi::Ty::I32 => ValType::I32,
            atoll_wasi::abi::Ty::I64 => ValType::I64,
        })
        .collect();
    let results: &[ValType] = if func.returns_errno() {
        &[ValType::I32]
    } else {
        &[]
    };
    if sig.params != params || sig.results != results {
        return Err(format!(
            "`{WASI_MODULE}.{name}` has the wrong signature {}",
            super::inspect::sig_text(sig)
        ));
    }
    Ok(())
}

/// Every task in the profile must be `chunk.export` of a chunk in the set.
fn check_profile(file: &ManifestFile, chunks: &[Chunk]) -> Result<(), String> {
    let known = |task: &str| {
        task.split_once('.').is_some_and(|(chunk, export)| {
            chunks
                .iter()
                .any(|c| c.name == chunk && c.manifest.exports.iter().any(|e| e.name == export))
        })
    };
    let tasks = file.profile.tasks.keys().map(String::as_str);
    let ends = file
        .profile
        .transitions
        .iter()
        .flat_map(|t| [t.from.as_str(), t.to.as_str()]);
    for task in tasks.chain(ends) {
        if !known(task) {
            return Err(format!(
                "profile task `{task}` is not `chunk.export` of a chunk in this set"
            ));
        }
    }
    Ok(())
}
