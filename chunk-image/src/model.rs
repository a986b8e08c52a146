//! The owned data model: what a chunk is and what its manifest says.
//!
//! The writer takes these types; the reader returns the same manifest types next to borrowed
//! module bytes, so a write followed by a read gives back equal values.

use alloc::string::String;
use alloc::vec::Vec;

/// A WebAssembly value type that may cross a chunk boundary: the four number types, and from
/// format version 4 the 128-bit vector and the two reference types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValType {
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
    /// 128-bit vector (simd128).
    V128,
    /// A function reference.
    FuncRef,
    /// An external (host) reference.
    ExternRef,
}

impl ValType {
    /// The binary encoding used by WebAssembly and by the image.
    pub const fn code(self) -> u8 {
        match self {
            Self::I32 => 0x7F,
            Self::I64 => 0x7E,
            Self::F32 => 0x7D,
            Self::F64 => 0x7C,
            Self::V128 => 0x7B,
            Self::FuncRef => 0x70,
            Self::ExternRef => 0x6F,
        }
    }

    /// Whether it is one of the four number types (the only ones format versions 1 to 3 hold
    /// and the console can show).
    pub const fn is_number(self) -> bool {
        matches!(self, Self::I32 | Self::I64 | Self::F32 | Self::F64)
    }

    /// Decodes a value-type byte.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0x7F => Some(Self::I32),
            0x7E => Some(Self::I64),
            0x7D => Some(Self::F32),
            0x7C => Some(Self::F64),
            0x7B => Some(Self::V128),
            0x70 => Some(Self::FuncRef),
            0x6F => Some(Self::ExternRef),
            _ => None,
        }
    }

    /// The WebAssembly text name (`i32`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Self::I32 => "i32",
            Self::I64 => "i64",
            Self::F32 => "f32",
            Self::F64 => "f64",
            Self::V128 => "v128",
            Self::FuncRef => "funcref",
            Self::ExternRef => "externref",
        }
    }
}

/// A function signature.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FuncSig {
    /// Parameter types, in order.
    pub params: Vec<ValType>,
    /// Result types, in order (multi-value allowed).
    pub results: Vec<ValType>,
}

/// Who provides an imported function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// The kernel's `atoll` import module (print, cycles, yield).
    Kernel,
    /// Another chunk in the same image, by name.
    Chunk(String),
}

/// One imported function and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The import's module name (`atoll` or a chunk name).
    pub module: String,
    /// The imported function's name.
    pub name: String,
    /// Its signature.
    pub sig: FuncSig,
    /// Who provides it.
    pub provider: Provider,
}

/// One exported function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// Export name.
    pub name: String,
    /// Index in the module's function index space (imports first).
    pub func_index: u32,
    /// Its signature.
    pub sig: FuncSig,
}

/// The type of a memory, table or global that chunks share: what an import asks for and what
/// an export offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    /// A linear memory with limits in 64 KiB pages.
    Memory {
        /// Initial (export) or least acceptable (import) size.
        min: u32,
        /// Maximum, if declared.
        max: Option<u32>,
    },
    /// A table of references.
    Table {
        /// `FuncRef` or `ExternRef`.
        elem: ValType,
        /// Initial (export) or least acceptable (import) size.
        min: u32,
        /// Maximum, if declared.
        max: Option<u32>,
    },
    /// A global.
    Global {
        /// Its value type.
        ty: ValType,
        /// Whether it may be written.
        mutable: bool,
    },
}

impl ObjectType {
    /// `memory`, `table` or `global`.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Memory { .. } => "memory",
            Self::Table { .. } => "table",
            Self::Global { .. } => "global",
        }
    }

    /// Why an export of type `self` cannot satisfy an import asking for `wanted`, by
    /// WebAssembly's import-matching rules (limits: the export's minimum at least the import's,
    /// and its maximum declared and at most the import's when the import declares one; globals:
    /// same type and mutability), or `None` when it matches.
    pub fn mismatch(&self, wanted: &ObjectType) -> Option<&'static str> {
        let limits = |min: u32, max: Option<u32>, want_min: u32, want_max: Option<u32>| {
            if min < want_min {
                return Some("its minimum size is below the import's");
            }
            match (max, want_max) {
                (None, Some(_)) => Some("the import needs a maximum size and the export has none"),
                (Some(m), Some(w)) if m > w => Some("its maximum size is above the import's"),
                _ => None,
            }
        };
        match (self, wanted) {
            (
                Self::Memory { min, max },
                Self::Memory {
                    min: wmin,
                    max: wmax,
                },
            ) => limits(*min, *max, *wmin, *wmax),
            (
                Self::Table { elem, min, max },
                Self::Table {
                    elem: welem,
                    min: wmin,
                    max: wmax,
                },
            ) => {
                if elem != welem {
                    Some("the element types differ")
                } else {
                    limits(*min, *max, *wmin, *wmax)
                }
            }
            (
                Self::Global { ty, mutable },
                Self::Global {
                    ty: wty,
                    mutable: wmut,
                },
            ) => {
                if ty != wty {
                    Some("the value types differ")
                } else if mutable != wmut {
                    Some("the mutability differs")
                } else {
                    None
                }
            }
            _ => Some("it is a different kind of object"),
        }
    }
}

/// An imported memory, table or global and the chunk that provides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectImport {
    /// The import's module name (the providing chunk's name).
    pub module: String,
    /// The imported object's name.
    pub name: String,
    /// What it must be.
    pub ty: ObjectType,
    /// Who provides it (always a chunk: the kernel exports no objects).
    pub provider: Provider,
}

/// An exported memory, table or global.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectExport {
    /// Export name.
    pub name: String,
    /// Index in the module's memory, table or global index space (imports first).
    pub index: u32,
    /// What it is.
    pub ty: ObjectType,
}

/// A direct call from one function to another (function index space, imports first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CallEdge {
    /// The calling function.
    pub caller: u32,
    /// The called function.
    pub callee: u32,
}

/// What a chunk needs to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    /// Initial linear-memory size in 64 KiB pages.
    pub memory_pages: u32,
    /// Maximum linear-memory size in pages, if the module declares one.
    pub max_memory_pages: Option<u32>,
    /// Native stack the chunk's threads need, in bytes.
    pub stack_bytes: u32,
    /// Expected cycles per call of a typical export (0 = unknown).
    pub cycles_per_call: u64,
}

/// How often a task (`chunk.export`) ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFrequency {
    /// Task name, `chunk.export`.
    pub task: String,
    /// Number of runs observed or expected.
    pub count: u64,
}

/// How often one task was followed by another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The earlier task.
    pub from: String,
    /// The task that followed it.
    pub to: String,
    /// Number of times observed or expected.
    pub count: u64,
}

/// The usage profile: task frequencies and task-to-task transitions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Profile {
    /// Frequencies of this chunk's tasks.
    pub tasks: Vec<TaskFrequency>,
    /// Transitions out of this chunk's tasks.
    pub transitions: Vec<Transition>,
}

/// Everything the image records about a chunk besides its code.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Imported functions and their providers.
    pub imports: Vec<Import>,
    /// Exported functions.
    pub exports: Vec<Export>,
    /// Imported memories, tables and globals (shared with their providers; version 4).
    pub object_imports: Vec<ObjectImport>,
    /// Exported memories, tables and globals (version 4).
    pub object_exports: Vec<ObjectExport>,
    /// The call graph of the module's functions.
    pub call_graph: Vec<CallEdge>,
    /// Resource requirements.
    pub resources: Resources,
    /// Usage profile.
    pub profile: Profile,
    /// Free-form tags.
    pub tags: Vec<String>,
}

impl Manifest {
    /// Names of the chunks this chunk imports from, deduplicated, in first-use order.
    pub fn chunk_dependencies(&self) -> Vec<&str> {
        let mut deps: Vec<&str> = Vec::new();
        let providers = self.imports.iter().map(|i| &i.provider);
        for provider in providers.chain(self.object_imports.iter().map(|i| &i.provider)) {
            if let Provider::Chunk(name) = provider
                && !deps.contains(&name.as_str())
            {
                deps.push(name);
            }
        }
        deps
    }

    /// Names of the chunks whose memories, tables or globals this chunk imports.
    pub fn object_providers(&self) -> Vec<&str> {
        let mut deps: Vec<&str> = Vec::new();
        for import in &self.object_imports {
            if let Provider::Chunk(name) = &import.provider
                && !deps.contains(&name.as_str())
            {
                deps.push(name);
            }
        }
        deps
    }

    /// Whether format versions 1 to 3 can hold this manifest (no shared objects, number types
    /// only at its boundary).
    pub fn fits_version_3(&self) -> bool {
        let numbers = |s: &FuncSig| s.params.iter().chain(&s.results).all(|t| t.is_number());
        self.object_imports.is_empty()
            && self.object_exports.is_empty()
            && self.imports.iter().all(|i| numbers(&i.sig))
            && self.exports.iter().all(|e| numbers(&e.sig))
    }
}

/// A chunk as given to the writer: a name, module bytes and a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Unique name within the image.
    pub name: String,
    /// The WebAssembly module bytes.
    pub module: Vec<u8>,
    /// The manifest.
    pub manifest: Manifest,
}
