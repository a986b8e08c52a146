//! Builds a Rust chunk workspace with the host's cargo: library chunks for
//! `wasm32-unknown-unknown`, WASI programs for `wasm32-wasip1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::ChunkcError;

/// The target of library chunks.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// The target of WASI programs.
pub const WASI_TARGET: &str = "wasm32-wasip1";

/// Where built Rust chunks are found.
#[derive(Debug)]
pub struct RustOutput {
    dir: PathBuf,
}

impl RustOutput {
    /// The `.wasm` file for crate `name`.
    pub fn wasm_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}.wasm", name.replace('-', "_")))
    }
}

/// Installs the wasm target if rustup is present and lacks it, then builds the workspace in
/// release mode. Cargo runs inside the workspace so its `.cargo/config.toml` applies.
pub fn build(workspace: &Path, target_dir: &Path) -> Result<RustOutput, ChunkcError> {
    build_for(workspace, target_dir, WASM_TARGET)
}

/// Like [`build`], for `target` (e.g. [`WASI_TARGET`]).
pub fn build_for(
    workspace: &Path,
    target_dir: &Path,
    target: &'static str,
) -> Result<RustOutput, ChunkcError> {
    ensure_target(target)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--target", target, "--target-dir"])
        .arg(target_dir)
        .current_dir(workspace)
        // The chunks' flags come from their own config; the caller's must not leak in.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .map_err(|e| ChunkcError::Cargo(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(ChunkcError::Cargo(format!(
            "`cargo build --release --target {target}` in {} failed ({status})",
            workspace.display()
        )));
    }
    Ok(RustOutput {
        dir: target_dir.join(target).join("release"),
    })
}

/// `rustup target add TARGET` when rustup exists and the target is missing.
fn ensure_target(target: &str) -> Result<(), ChunkcError> {
    let Ok(listed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        // No rustup: assume the toolchain was set up by other means.
        return Ok(());
    };
    let installed = String::from_utf8_lossy(&listed.stdout);
    if !listed.status.success() || installed.lines().any(|l| l.trim() == target) {
        return Ok(());
    }
    eprintln!("chunkc: installing the {target} target with rustup");
    let status = Command::new("rustup")
        .args(["target", "add", target])
        .status()
        .map_err(|e| ChunkcError::Cargo(format!("cannot run rustup: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(ChunkcError::Cargo(format!(
            "`rustup target add {target}` failed ({status})"
        )))
    }
}
