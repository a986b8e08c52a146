//! The owned data model: what a chunk is and what its manifest says.
//!
//! The writer takes these types; the reader returns the same manifest types next to borrowed
//! module bytes, so a write followed by a read gives back equal values.

use alloc::string::String;
use alloc::vec::Vec;

/// A WebAssembly value type that may cross a chunk boundary (plain numbers only).
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
}

impl ValType {
    /// The binary encoding used by WebAssembly and by the image.
    pub const fn code(self) -> u8 {
        match self {
            Self::I32 => 0x7F,
            Self::I64 => 0x7E,
            Self::F32 => 0x7D,
            Self::F64 => 0x7C,
        }
    }

    /// Decodes a value-type byte.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0x7F => Some(Self::I32),
            0x7E => Some(Self::I64),
            0x7D => Some(Self::F32),
            0x7C => Some(Self::F64),
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
        for import in &self.imports {
            if let Provider::Chunk(name) = &import.provider
                && !deps.contains(&name.as_str())
            {
                deps.push(name);
            }
        }
        deps
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
