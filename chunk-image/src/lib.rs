//! atoll's chunk-image format: a versioned, checksummed container of WebAssembly chunks.
//!
//! An image holds one record per chunk: a unique name, the module bytes, a content hash and a
//! manifest (imports and their providers, exports, the call graph, resource needs, a usage
//! profile and tags). The layout is described in `docs/chunk-format.md`.
//!
//! - [`write_image`] turns owned [`Chunk`]s into bytes.
//! - [`Image::parse`] checks an image completely (magic, version, header/table/chunk checksums,
//!   every offset, overlaps, manifests, duplicate names, providers, dependency cycles) and then
//!   lends out [`ChunkView`]s whose module bytes borrow from the input.
//! - With the `validate` feature, [`validate_module`] / [`analyze_module`] check a module
//!   against atoll's supported WebAssembly feature set.
//!
//! Invariants: no input makes the reader panic, read out of bounds, allocate more than a small
//! multiple of the input size, or loop longer than linear in it. There is no `unsafe` code.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod bytes;
pub mod checksum;
mod error;
mod graph;
mod layout;
mod manifest_codec;
mod model;
pub mod program;
mod reader;
mod strings;
#[cfg(feature = "validate")]
mod validate;
pub mod value;
pub mod workload;
mod writer;

pub use error::FormatError;
pub use graph::{KERNEL_MODULE, WASI_MODULE, linked_groups};
pub use layout::{
    HEADER_LEN, HEADER_LEN_V2, HEADER_LEN_V3, MAGIC, RECORD_LEN, VERSION_MAJOR, VERSION_MINOR,
};
pub use model::{
    CallEdge, Chunk, Export, FuncSig, Import, Manifest, ObjectExport, ObjectImport, ObjectType,
    Profile, Provider, Resources, TaskFrequency, Transition, ValType,
};
pub use program::{Program, ProgramView};
pub use reader::{ChunkView, Image};
#[cfg(feature = "validate")]
pub use validate::{
    FuncImport, ModuleError, ModuleInfo, SUPPORTED_FEATURES, analyze_module, validate_module,
};
pub use value::Value;
pub use workload::{EngineSettings, Trace, Workload, WorkloadView};
pub use writer::{write_image, write_image_full, write_image_with_programs};
