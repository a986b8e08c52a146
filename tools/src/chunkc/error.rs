//! chunkc's error type: one variant per layer, each pointing at the file or chunk at fault.

use std::fmt;
use std::path::PathBuf;

use chunk_image::{FormatError, ModuleError};

/// Why a chunkc command failed.
#[derive(Debug)]
pub enum ChunkcError {
    /// Bad command line; exit status 2.
    Usage(String),
    /// A command that is not implemented yet; exit status 2.
    NotImplemented(&'static str),
    /// Reading or writing a file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The manifest TOML is malformed or inconsistent.
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong (with line and column for TOML syntax errors).
        message: String,
    },
    /// A `.wat` file does not parse; the message carries file, line and column.
    Wat(String),
    /// A module failed validation or analysis.
    Module {
        /// The chunk.
        chunk: String,
        /// Its source file.
        path: PathBuf,
        /// What is wrong, naming the function and offset.
        error: ModuleError,
    },
    /// Building the Rust chunks failed.
    Cargo(String),
    /// The image is malformed, or the chunks do not form a valid image.
    Format(FormatError),
    /// `run` could not set up the call (unknown chunk or export, bad arguments, link errors).
    Run(String),
}

impl ChunkcError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::NotImplemented(_) => 2,
            _ => 1,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for ChunkcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(msg) => write!(f, "{msg}\n\n{}", super::USAGE),
            Self::NotImplemented(what) => write!(f, "{what} is not yet implemented"),
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Manifest { path, message } => write!(f, "{}: {message}", path.display()),
            Self::Wat(msg) => f.write_str(msg),
            Self::Module { chunk, path, error } => {
                write!(f, "{}: chunk `{chunk}`: {error}", path.display())
            }
            Self::Cargo(msg) => write!(f, "building Rust chunks: {msg}"),
            Self::Format(err) => write!(f, "{err}"),
            Self::Run(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for ChunkcError {}

impl From<FormatError> for ChunkcError {
    fn from(err: FormatError) -> Self {
        Self::Format(err)
    }
}
