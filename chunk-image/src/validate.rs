//! Module validation and analysis with `wasmparser` (no_std), behind the `validate` feature.
//!
//! The supported feature set is WebAssembly 1.0 plus sign-extension operators, non-trapping
//! float-to-int conversions, multi-value, bulk memory, reference types (funcref/externref
//! values, several tables, the `table.*` instructions) and fixed-width SIMD (simd128).
//! `call_indirect`'s table index may use the overlong one-byte-longer LEB encoding LLVM emits.
//! Everything else (relaxed SIMD, threads, GC,
//! exceptions, memory64, tail calls, multi-memory, ...) is rejected with wasmparser's message, which names the
//! feature, prefixed by the function it was found in.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use wasmparser::{
    BinaryReaderError, ExternalKind, FuncValidatorAllocations, KnownCustom, Name, Operator, Parser,
    Payload, RefType, TypeRef, ValidPayload, Validator, WasmFeatures,
};

use crate::model::{
    CallEdge, Export, FuncSig, ObjectExport, ObjectImport, ObjectType, Provider, ValType,
};

/// The WebAssembly features atoll supports.
pub const SUPPORTED_FEATURES: WasmFeatures = WasmFeatures::WASM1
    .union(WasmFeatures::SIGN_EXTENSION)
    .union(WasmFeatures::SATURATING_FLOAT_TO_INT)
    .union(WasmFeatures::MULTI_VALUE)
    .union(WasmFeatures::BULK_MEMORY)
    .union(WasmFeatures::REFERENCE_TYPES)
    .union(WasmFeatures::CALL_INDIRECT_OVERLONG)
    .union(WasmFeatures::SIMD);

/// Why a module was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleError {
    /// What is wrong (for unsupported features, wasmparser's message naming the feature).
    pub message: String,
    /// Byte offset in the module, when known.
    pub offset: Option<u64>,
    /// Function index (imports first) the error is in, when it is in a function body.
    pub function: Option<u32>,
    /// That function's name (export or name section), when known.
    pub function_name: Option<String>,
}

impl ModuleError {
    fn plain(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            offset: None,
            function: None,
            function_name: None,
        }
    }

    fn from_parser(err: &BinaryReaderError) -> Self {
        let message = err.message();
        let message = match proposal_hint(message) {
            Some(proposal) => format!("{message} (the {proposal} proposal is not supported)"),
            None => message.to_string(),
        };
        Self {
            message,
            offset: Some(err.offset()),
            function: None,
            function_name: None,
        }
    }
}

/// Names the proposal behind wasmparser messages that do not name it themselves.
fn proposal_hint(message: &str) -> Option<&'static str> {
    const HINTS: [(&str, &str); 4] = [
        ("multiple memories", "multi-memory"),
        ("non-constant operator", "extended-const"),
        ("unexpected SIMD opcode", "SIMD"),
        ("indexed types not supported without the gc", "GC"),
    ];
    HINTS
        .iter()
        .find(|(needle, _)| message.contains(needle))
        .map(|&(_, proposal)| proposal)
}

impl fmt::Display for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(index) = self.function {
            write!(f, "function {index}")?;
            if let Some(name) = &self.function_name {
                write!(f, " `{name}`")?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)?;
        if let Some(offset) = self.offset {
            write!(f, " (at offset {offset:#x})")?;
        }
        Ok(())
    }
}

impl core::error::Error for ModuleError {}

/// A function import found in a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuncImport {
    /// Import module name.
    pub module: String,
    /// Import field name.
    pub name: String,
    /// Signature.
    pub sig: FuncSig,
}

/// What [`analyze_module`] learns about a valid module.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModuleInfo {
    /// Function imports, in index order.
    pub imports: Vec<FuncImport>,
    /// Exported functions.
    pub exports: Vec<Export>,
    /// Imported memories, tables and globals, in import order (provider: the chunk named by
    /// the import module).
    pub object_imports: Vec<ObjectImport>,
    /// Exported memories, tables and globals.
    pub object_exports: Vec<ObjectExport>,
    /// Direct call edges, sorted and deduplicated.
    pub call_graph: Vec<CallEdge>,
    /// Initial pages of the module's memory (0 if it has none).
    pub memory_pages: u32,
    /// Maximum pages, if declared.
    pub max_memory_pages: Option<u32>,
}

/// Validates `bytes` against [`SUPPORTED_FEATURES`].
pub fn validate_module(bytes: &[u8]) -> Result<(), ModuleError> {
    analyze_module(bytes).map(|_| ())
}

/// Validates `bytes` and extracts imports, exports, the call graph and memory needs.
///
/// Chunks import functions, memories, tables and globals; a function crossing a chunk boundary
/// may use the number types, `v128`, `funcref` and `externref`.
pub fn analyze_module(bytes: &[u8]) -> Result<ModuleInfo, ModuleError> {
    let names = function_names(bytes);
    let mut validator = Validator::new_with_features(SUPPORTED_FEATURES);
    let mut allocs = FuncValidatorAllocations::default();
    let mut types: Vec<Option<FuncSig>> = Vec::new();
    let mut func_types: Vec<u32> = Vec::new();
    // The memory, table and global index spaces (imports first), for the exports.
    let mut objects = ObjectSpaces::default();
    let mut info = ModuleInfo::default();
    let mut edges = BTreeSet::new();

    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| ModuleError::from_parser(&e))?;
        let valid = validator
            .payload(&payload)
            .map_err(|e| ModuleError::from_parser(&e))?;
        match &payload {
            Payload::TypeSection(reader) => {
                for group in reader.clone() {
                    let group = group.map_err(|e| ModuleError::from_parser(&e))?;
                    for sub in group.types() {
                        let sig = match &sub.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(f) => {
                                sig_of(f.params(), f.results())
                            }
                            _ => None,
                        };
                        types.push(sig);
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.clone().into_imports() {
                    let import = import.map_err(|e| ModuleError::from_parser(&e))?;
                    let boundary = || {
                        ModuleError::plain(format!(
                            "import `{}.{}`: only number, vector and reference types may cross a \
                             chunk boundary",
                            import.module, import.name
                        ))
                    };
                    let ty = match import.ty {
                        TypeRef::Func(type_index) => {
                            let sig = lookup_sig(&types, type_index).ok_or_else(boundary)?;
                            func_types.push(type_index);
                            info.imports.push(FuncImport {
                                module: import.module.to_string(),
                                name: import.name.to_string(),
                                sig,
                            });
                            continue;
                        }
                        TypeRef::Memory(m) => objects.memory(&m),
                        TypeRef::Table(t) => objects.table(&t),
                        TypeRef::Global(g) => objects.global(&g),
                        TypeRef::Tag(_) | TypeRef::FuncExact(_) => None,
                    }
                    .ok_or_else(boundary)?;
                    info.object_imports.push(ObjectImport {
                        module: import.module.to_string(),
                        name: import.name.to_string(),
                        ty,
                        provider: Provider::Chunk(import.module.to_string()),
                    });
                }
            }
            Payload::TableSection(reader) => {
                for table in reader.clone() {
                    let table = table.map_err(|e| ModuleError::from_parser(&e))?;
                    objects.table(&table.ty);
                }
            }
            Payload::GlobalSection(reader) => {
                for global in reader.clone() {
                    let global = global.map_err(|e| ModuleError::from_parser(&e))?;
                    objects.global(&global.ty);
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader.clone() {
                    func_types.push(ty.map_err(|e| ModuleError::from_parser(&e))?);
                }
            }
            Payload::MemorySection(reader) => {
                if let Some(memory) = reader.clone().into_iter().next() {
                    let memory = memory.map_err(|e| ModuleError::from_parser(&e))?;
                    objects.memory(&memory);
                    info.memory_pages = u32::try_from(memory.initial)
                        .map_err(|_| ModuleError::plain("memory too large"))?;
                    info.max_memory_pages = memory.maximum.and_then(|m| u32::try_from(m).ok());
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader.clone() {
                    let export = export.map_err(|e| ModuleError::from_parser(&e))?;
                    let boundary = || {
                        ModuleError::plain(format!(
                            "export `{}`: only number, vector and reference types may cross a \
                             chunk boundary",
                            export.name
                        ))
                    };
                    let space = match export.kind {
                        ExternalKind::Func => None,
                        ExternalKind::Memory => Some(&objects.memories),
                        ExternalKind::Table => Some(&objects.tables),
                        ExternalKind::Global => Some(&objects.globals),
                        ExternalKind::Tag | ExternalKind::FuncExact => continue,
                    };
                    if let Some(space) = space {
                        let ty = space
                            .get(export.index as usize)
                            .copied()
                            .flatten()
                            .ok_or_else(boundary)?;
                        info.object_exports.push(ObjectExport {
                            name: export.name.to_string(),
                            index: export.index,
                            ty,
                        });
                        continue;
                    }
                    let sig = func_types
                        .get(export.index as usize)
                        .and_then(|&t| lookup_sig(&types, t))
                        .ok_or_else(boundary)?;
                    info.exports.push(Export {
                        name: export.name.to_string(),
                        func_index: export.index,
                        sig,
                    });
                }
            }
            _ => {}
        }
        if let ValidPayload::Func(func, body) = valid {
            let index = func.index;
            let in_function = |e: BinaryReaderError| ModuleError {
                function: Some(index),
                function_name: names.get(&index).cloned(),
                ..ModuleError::from_parser(&e)
            };
            let mut func_validator = func.into_validator(allocs);
            func_validator.validate(&body).map_err(in_function)?;
            allocs = func_validator.into_allocations();
            let mut ops = body.get_operators_reader().map_err(in_function)?;
            while !ops.eof() {
                if let Operator::Call { function_index } = ops.read().map_err(in_function)? {
                    edges.insert(CallEdge {
                        caller: index,
                        callee: function_index,
                    });
                }
            }
        }
    }
    info.call_graph = edges.into_iter().collect();
    Ok(info)
}

/// The types in a module's memory, table and global index spaces, in index order; `None` for
/// one whose type cannot cross a chunk boundary (a 64-bit memory, a typed reference).
#[derive(Default)]
struct ObjectSpaces {
    memories: Vec<Option<ObjectType>>,
    tables: Vec<Option<ObjectType>>,
    globals: Vec<Option<ObjectType>>,
}

impl ObjectSpaces {
    fn memory(&mut self, m: &wasmparser::MemoryType) -> Option<ObjectType> {
        let ty = (!m.memory64).then_some(()).and_then(|()| {
            Some(ObjectType::Memory {
                min: u32::try_from(m.initial).ok()?,
                max: match m.maximum {
                    Some(max) => Some(u32::try_from(max).ok()?),
                    None => None,
                },
            })
        });
        self.memories.push(ty);
        ty
    }

    fn table(&mut self, t: &wasmparser::TableType) -> Option<ObjectType> {
        let elem = ref_type(t.element_type);
        let ty = (!t.table64).then_some(()).and_then(|()| {
            Some(ObjectType::Table {
                elem: elem?,
                min: u32::try_from(t.initial).ok()?,
                max: match t.maximum {
                    Some(max) => Some(u32::try_from(max).ok()?),
                    None => None,
                },
            })
        });
        self.tables.push(ty);
        ty
    }

    fn global(&mut self, g: &wasmparser::GlobalType) -> Option<ObjectType> {
        let ty = val_type(&g.content_type).map(|ty| ObjectType::Global {
            ty,
            mutable: g.mutable,
        });
        self.globals.push(ty);
        ty
    }
}

fn ref_type(r: RefType) -> Option<ValType> {
    if r == RefType::FUNCREF {
        Some(ValType::FuncRef)
    } else if r == RefType::EXTERNREF {
        Some(ValType::ExternRef)
    } else {
        None
    }
}

fn val_type(ty: &wasmparser::ValType) -> Option<ValType> {
    match ty {
        wasmparser::ValType::I32 => Some(ValType::I32),
        wasmparser::ValType::I64 => Some(ValType::I64),
        wasmparser::ValType::F32 => Some(ValType::F32),
        wasmparser::ValType::F64 => Some(ValType::F64),
        wasmparser::ValType::V128 => Some(ValType::V128),
        wasmparser::ValType::Ref(r) => ref_type(*r),
    }
}

fn lookup_sig(types: &[Option<FuncSig>], index: u32) -> Option<FuncSig> {
    types.get(index as usize).cloned().flatten()
}

fn sig_of(params: &[wasmparser::ValType], results: &[wasmparser::ValType]) -> Option<FuncSig> {
    let convert = |list: &[wasmparser::ValType]| -> Option<Vec<ValType>> {
        list.iter().map(val_type).collect()
    };
    Some(FuncSig {
        params: convert(params)?,
        results: convert(results)?,
    })
}

/// Best-effort function names (export names, overridden by the name section) for messages.
fn function_names(bytes: &[u8]) -> BTreeMap<u32, String> {
    let mut names = BTreeMap::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { break };
        match payload {
            Payload::ExportSection(reader) => {
                for export in reader.into_iter().flatten() {
                    if export.kind == ExternalKind::Func {
                        names.insert(export.index, export.name.to_string());
                    }
                }
            }
            Payload::CustomSection(reader) => {
                if let KnownCustom::Name(name_reader) = reader.as_known() {
                    for name in name_reader.into_iter().flatten() {
                        if let Name::Function(map) = name {
                            for naming in map.into_iter().flatten() {
                                names.insert(naming.index, naming.name.to_string());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    names
}
