//! Compiles a C program to a WASI command module with Debian's clang, lld and wasi-libc
//! (`clang --target=wasm32-wasi -O2`), installed by `scripts/setup.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ChunkcError;

/// The C compiler (`$CC_WASI` or `clang`).
fn clang() -> String {
    std::env::var("CC_WASI").unwrap_or_else(|_| "clang".into())
}

/// Compiles `src` with the extra `flags` (e.g. `-msimd128`) to `out` and returns the module
/// bytes.
pub fn compile(
    src: &Path,
    flags: &[String],
    out: &Path,
) -> Result<(PathBuf, Vec<u8>), ChunkcError> {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ChunkcError::io(dir, e))?;
    }
    let cc = clang();
    let output = Command::new(&cc)
        .args([
            "--target=wasm32-wasi",
            "-O2",
            "-Wall",
            "-Werror",
            // DWARF is most of the module otherwise; the name section stays.
            "-Wl,--strip-debug",
        ])
        .args(flags)
        .arg("-o")
        .arg(out)
        .arg(src)
        .output()
        .map_err(|e| {
            ChunkcError::Cargo(format!(
                "cannot run `{cc}` for {} ({e}); run scripts/setup.sh to install clang, lld and wasi-libc",
                src.display()
            ))
        })?;
    if !output.status.success() {
        return Err(ChunkcError::Cargo(format!(
            "`{cc} --target=wasm32-wasi` failed for {}:\n{}",
            src.display(),
            String::from_utf8_lossy(&output.stderr).trim_end()
        )));
    }
    let bytes = std::fs::read(out).map_err(|e| ChunkcError::io(out, e))?;
    Ok((out.to_path_buf(), bytes))
}
