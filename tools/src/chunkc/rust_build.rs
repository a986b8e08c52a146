//! Builds the Rust chunk workspace for `wasm32-unknown-unknown` with the host's cargo.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::ChunkcError;

const WASM_TARGET: &str = "wasm32-unknown-unknown";

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
    ensure_target()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "--target-dir",
        ])
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
            "`cargo build --release --target {WASM_TARGET}` in {} failed ({status})",
            workspace.display()
        )));
    }
    Ok(RustOutput {
        dir: target_dir.join(WASM_TARGET).join("release"),
    })
}

/// `rustup target add wasm32-unknown-unknown` when rustup exists and the target is missing.
fn ensure_target() -> Result<(), ChunkcError> {
    let Ok(listed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        // No rustup: assume the toolchain was set up by other means.
        return Ok(());
    };
    let installed = String::from_utf8_lossy(&listed.stdout);
    if !listed.status.success() || installed.lines().any(|l| l.trim() == WASM_TARGET) {
        return Ok(());
    }
    eprintln!("chunkc: installing the {WASM_TARGET} target with rustup");
    let status = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .status()
        .map_err(|e| ChunkcError::Cargo(format!("cannot run rustup: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(ChunkcError::Cargo(format!(
            "`rustup target add {WASM_TARGET}` failed ({status})"
        )))
    }
}
