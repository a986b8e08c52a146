//! The format layer's error type: every malformed image maps to one of these.

use alloc::string::String;
use core::fmt;

/// Why an image could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The input ended before `what` (needed `needed` bytes at `offset`).
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Byte offset where it starts.
        offset: usize,
        /// Bytes needed from there.
        needed: usize,
    },
    /// The first eight bytes are not the image magic.
    BadMagic,
    /// The format version is not one this reader understands.
    UnsupportedVersion {
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
    },
    /// A header field has a value this version does not allow.
    BadHeader(&'static str),
    /// The header checksum does not match.
    HeaderChecksum {
        /// Stored value.
        stored: u32,
        /// Computed value.
        computed: u32,
    },
    /// The checksum over the string table, records and manifests does not match.
    TablesChecksum {
        /// Stored value.
        stored: u32,
        /// Computed value.
        computed: u32,
    },
    /// A chunk's checksum does not match its bytes.
    ChunkChecksum {
        /// Index of the chunk record.
        index: usize,
    },
    /// A chunk's content hash does not match its module bytes.
    ContentHash {
        /// Index of the chunk record.
        index: usize,
    },
    /// An offset/length pair points outside its section.
    OutOfRange(&'static str),
    /// Two sections or two chunks' bytes overlap.
    Overlap(&'static str),
    /// A string is not valid UTF-8 or is empty where a name is required.
    BadString(&'static str),
    /// A value-type byte is not i32/i64/f32/f64.
    BadValType(u8),
    /// An unknown provider tag.
    BadProvider(u8),
    /// An unknown shared-object kind (version 4).
    BadObjectKind(u8),
    /// An imported memory, table or global does not match what its provider exports.
    ObjectMismatch {
        /// The importing chunk.
        chunk: String,
        /// Import module (the provider).
        module: String,
        /// Import name.
        name: String,
        /// What differs.
        reason: &'static str,
    },
    /// A manifest has bytes left after its last field.
    TrailingBytes {
        /// Index of the chunk record.
        index: usize,
    },
    /// A count or size does not fit the format's 32-bit fields.
    TooLarge(&'static str),
    /// Two chunks share a name.
    DuplicateName(String),
    /// An import names a provider chunk that is not in the image, or that lacks the export.
    MissingProvider {
        /// The importing chunk.
        chunk: String,
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// An import's module name and its provider disagree.
    ProviderMismatch {
        /// The importing chunk.
        chunk: String,
        /// Import module.
        module: String,
    },
    /// Chunks import from each other in a cycle; names the chunk where it was found.
    DependencyCycle(String),
    /// The programs section breaks a rule (version 2).
    BadProgram(String),
    /// The workload section breaks a rule (version 3).
    BadWorkload(String),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated {
                what,
                offset,
                needed,
            } => write!(
                f,
                "image truncated: {what} needs {needed} bytes at offset {offset}"
            ),
            Self::BadMagic => f.write_str("not a chunk image (bad magic)"),
            Self::UnsupportedVersion { major, minor } => {
                write!(f, "unsupported chunk-image version {major}.{minor}")
            }
            Self::BadHeader(what) => write!(f, "bad header: {what}"),
            Self::HeaderChecksum { stored, computed } => write!(
                f,
                "header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            Self::TablesChecksum { stored, computed } => write!(
                f,
                "table checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            Self::ChunkChecksum { index } => write!(f, "chunk #{index}: checksum mismatch"),
            Self::ContentHash { index } => write!(f, "chunk #{index}: content hash mismatch"),
            Self::OutOfRange(what) => write!(f, "{what} out of range"),
            Self::Overlap(what) => write!(f, "overlapping {what}"),
            Self::BadString(what) => write!(f, "bad string: {what}"),
            Self::BadValType(code) => write!(f, "bad value type {code:#04x}"),
            Self::BadProvider(tag) => write!(f, "bad provider tag {tag}"),
            Self::BadObjectKind(tag) => write!(f, "bad shared-object kind {tag}"),
            Self::ObjectMismatch {
                chunk,
                module,
                name,
                reason,
            } => write!(
                f,
                "chunk `{chunk}` imports `{module}.{name}` but the export does not match: {reason}"
            ),
            Self::TrailingBytes { index } => {
                write!(f, "chunk #{index}: trailing bytes after manifest")
            }
            Self::TooLarge(what) => write!(f, "{what} too large for the format"),
            Self::DuplicateName(name) => write!(f, "duplicate chunk name `{name}`"),
            Self::MissingProvider {
                chunk,
                module,
                name,
            } => write!(
                f,
                "chunk `{chunk}` imports `{module}.{name}` but no chunk provides it"
            ),
            Self::ProviderMismatch { chunk, module } => write!(
                f,
                "chunk `{chunk}`: import module `{module}` does not match its provider"
            ),
            Self::DependencyCycle(name) => {
                write!(f, "dependency cycle through chunk `{name}`")
            }
            Self::BadProgram(what) => write!(f, "programs section: {what}"),
            Self::BadWorkload(what) => write!(f, "workload section: {what}"),
        }
    }
}

impl core::error::Error for FormatError {}
