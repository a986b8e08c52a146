//! The module description the code generator and the runtime share: types, imports, globals,
//! memory, table, exports, segments. Parsed once from a validated module.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ops::Range;

use wasmparser::{
    ConstExpr, DataKind, ElementItems, ElementKind, FuncToValidate, FuncValidatorAllocations,
    Operator, Parser, Payload, TypeRef, ValidPayload, Validator, ValidatorResources,
};

use crate::CompileError;

/// Export kinds (re-exported from wasmparser).
pub use wasmparser::ExternalKind;

/// A WebAssembly number type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ty {
    /// i32.
    I32,
    /// i64.
    I64,
    /// f32.
    F32,
    /// f64.
    F64,
    /// funcref: 0 (null) or the address of a [`FuncRef`](crate::vmctx::FuncRef).
    FuncRef,
    /// externref: 0 (null) or a non-zero value chosen by the host.
    ExternRef,
    /// v128: 16 bytes in an XMM register, two 8-byte slots in memory (low half first).
    V128,
}

impl Ty {
    /// Whether values live in XMM registers (f32, f64 and v128).
    pub fn is_float(self) -> bool {
        matches!(self, Ty::F32 | Ty::F64 | Ty::V128)
    }

    /// Whether the value is at least 64 bits wide.
    pub fn is_wide(self) -> bool {
        matches!(
            self,
            Ty::I64 | Ty::F64 | Ty::FuncRef | Ty::ExternRef | Ty::V128
        )
    }

    /// Whether this is v128.
    pub fn is_v128(self) -> bool {
        self == Ty::V128
    }

    /// 8-byte slots a value takes in memory (argument areas, locals, host slots): 2 for v128.
    pub fn slots(self) -> usize {
        if self == Ty::V128 { 2 } else { 1 }
    }

    /// Whether this is a reference type.
    pub fn is_ref(self) -> bool {
        matches!(self, Ty::FuncRef | Ty::ExternRef)
    }

    pub(crate) fn from_ref(ty: wasmparser::RefType) -> Result<Self, CompileError> {
        if ty == wasmparser::RefType::FUNCREF {
            Ok(Ty::FuncRef)
        } else if ty == wasmparser::RefType::EXTERNREF {
            Ok(Ty::ExternRef)
        } else {
            Err(CompileError::Unsupported(alloc::format!(
                "reference type {ty}"
            )))
        }
    }

    pub(crate) fn from_wasm(ty: wasmparser::ValType) -> Result<Self, CompileError> {
        match ty {
            wasmparser::ValType::I32 => Ok(Ty::I32),
            wasmparser::ValType::I64 => Ok(Ty::I64),
            wasmparser::ValType::F32 => Ok(Ty::F32),
            wasmparser::ValType::F64 => Ok(Ty::F64),
            wasmparser::ValType::Ref(r) => Self::from_ref(r),
            wasmparser::ValType::V128 => Ok(Ty::V128),
        }
    }
}

/// A function signature.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FuncType {
    /// Parameter types.
    pub params: Vec<Ty>,
    /// Result types.
    pub results: Vec<Ty>,
}

impl FuncType {
    /// Slots the caller reserves for a call: `max(params, results)` in 8-byte slots (a v128
    /// takes two).
    pub fn slots(&self) -> usize {
        self.param_slots().max(self.result_slots())
    }

    /// 8-byte slots of the parameters.
    pub fn param_slots(&self) -> usize {
        self.params.iter().map(|t| t.slots()).sum()
    }

    /// 8-byte slots of the results.
    pub fn result_slots(&self) -> usize {
        self.results.iter().map(|t| t.slots()).sum()
    }
}

/// The slot index where each of `tys` starts when they are laid out one after another.
pub fn slot_offsets(tys: &[Ty]) -> alloc::vec::Vec<usize> {
    let mut at = 0;
    tys.iter()
        .map(|t| {
            let here = at;
            at += t.slots();
            here
        })
        .collect()
}

/// A constant initializer expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstInit {
    /// A number (raw bits, i32/f32 zero-extended).
    Value(u64),
    /// A v128 constant.
    V128(u128),
    /// `global.get` of an (imported) global.
    Global(u32),
    /// `ref.func`.
    RefFunc(u32),
    /// `ref.null`.
    RefNull,
}

/// What an import provides.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportKind {
    /// A function of the given type index.
    Func(u32),
    /// A global.
    Global(Ty, bool),
    /// A memory with these limits.
    Memory(Limits),
    /// A table.
    Table(TableDesc),
}

/// A table's element type and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDesc {
    /// `FuncRef` or `ExternRef`.
    pub ty: Ty,
    /// Limits in entries.
    pub limits: Limits,
    /// Initial value of every entry (defined tables; `RefNull` by default).
    pub init: ConstInit,
}

/// An import.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportDesc {
    /// Module name.
    pub module: String,
    /// Field name.
    pub name: String,
    /// Kind.
    pub kind: ImportKind,
}

/// A global (imported globals first, `init` unused for those).
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalDesc {
    /// Type.
    pub ty: Ty,
    /// Mutable.
    pub mutable: bool,
    /// Initializer (defined globals).
    pub init: ConstInit,
}

/// An export.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportDesc {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: ExternalKind,
    /// Index in the kind's index space.
    pub index: u32,
}

/// An element segment.
#[derive(Debug, Clone, PartialEq)]
pub struct ElemDesc {
    /// `Some(offset)` for an active segment.
    pub offset: Option<ConstInit>,
    /// The table an active segment initializes.
    pub table: u32,
    /// Declarative segments are dropped at instantiation.
    pub declared: bool,
    /// Element type.
    pub ty: Ty,
    /// Items: `RefFunc`, `RefNull` or `Global` (of a reference-typed global).
    pub items: Vec<ConstInit>,
}

/// A data segment.
#[derive(Debug, Clone, PartialEq)]
pub struct DataDesc {
    /// `Some(offset)` for an active segment (memory 0).
    pub offset: Option<ConstInit>,
    /// Bytes.
    pub bytes: Vec<u8>,
}

/// Memory or table limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Initial size (pages or entries).
    pub min: u64,
    /// Maximum size.
    pub max: Option<u64>,
}

/// Everything about a module except function bodies.
#[derive(Debug, Clone, Default)]
pub struct ModuleDesc {
    /// Type section.
    pub types: Vec<FuncType>,
    /// Type index of every function (imports first).
    pub funcs: Vec<u32>,
    /// All imports, in order.
    pub imports: Vec<ImportDesc>,
    /// Number of imported functions.
    pub func_imports: u32,
    /// Globals (imports first).
    pub globals: Vec<GlobalDesc>,
    /// Memory 0, if any.
    pub memory: Option<Limits>,
    /// Tables (imports first).
    pub tables: Vec<TableDesc>,
    /// Exports.
    pub exports: Vec<ExportDesc>,
    /// Element segments.
    pub elems: Vec<ElemDesc>,
    /// Data segments.
    pub datas: Vec<DataDesc>,
    /// Start function.
    pub start: Option<u32>,
    /// Function names (name section, else export names), by function index.
    pub names: Vec<Option<String>>,
    /// Byte ranges of defined function bodies in the module.
    pub(crate) bodies: Vec<Range<usize>>,
    /// Some type or global mentions v128 (then every function gets 16-byte home slots).
    pub uses_v128: bool,
}

impl ModuleDesc {
    /// Signature of function `index`.
    pub fn func_type(&self, index: u32) -> &FuncType {
        &self.types[self.funcs[index as usize] as usize]
    }

    /// The exported function named `name`.
    pub fn export_func(&self, name: &str) -> Option<u32> {
        self.exports
            .iter()
            .find(|e| e.kind == ExternalKind::Func && e.name == name)
            .map(|e| e.index)
    }
}

fn const_init(expr: &ConstExpr<'_>) -> Result<ConstInit, CompileError> {
    let mut reader = expr.get_operators_reader();
    let op = reader.read()?;
    Ok(match op {
        Operator::I32Const { value } => ConstInit::Value(u64::from(value as u32)),
        Operator::I64Const { value } => ConstInit::Value(value as u64),
        Operator::F32Const { value } => ConstInit::Value(u64::from(value.bits())),
        Operator::F64Const { value } => ConstInit::Value(value.bits()),
        Operator::V128Const { value } => ConstInit::V128(value.i128() as u128),
        Operator::GlobalGet { global_index } => ConstInit::Global(global_index),
        Operator::RefFunc { function_index } => ConstInit::RefFunc(function_index),
        Operator::RefNull { .. } => ConstInit::RefNull,
        _ => return Err(CompileError::Unsupported("constant expression".into())),
    })
}

fn table_desc(t: &wasmparser::TableType, init: ConstInit) -> Result<TableDesc, CompileError> {
    if t.table64 || t.shared {
        return Err(CompileError::Unsupported("64-bit or shared table".into()));
    }
    Ok(TableDesc {
        ty: Ty::from_ref(t.element_type)?,
        limits: Limits {
            min: t.initial,
            max: t.maximum,
        },
        init,
    })
}

/// A defined function's body still to validate (`parse_deferred`), by defined-function index.
pub(crate) type PendingBodies = Vec<Option<FuncToValidate<ValidatorResources>>>;

/// Validates `bytes` with atoll's feature set and parses the module description.
pub(crate) fn parse(bytes: &[u8]) -> Result<ModuleDesc, CompileError> {
    let (m, pending) = parse_module(bytes, false)?;
    debug_assert!(pending.is_empty());
    Ok(m)
}

/// Like [`parse`], validating everything but the function bodies: each body's validator is
/// returned instead, for the code generator to run over the operators as it decodes them (one
/// decoding per body instead of two). A body must be validated before anything reads it.
pub(crate) fn parse_deferred(bytes: &[u8]) -> Result<(ModuleDesc, PendingBodies), CompileError> {
    parse_module(bytes, true)
}

fn parse_module(bytes: &[u8], defer: bool) -> Result<(ModuleDesc, PendingBodies), CompileError> {
    let mut validator = Validator::new_with_features(chunk_image::SUPPORTED_FEATURES);
    let mut parser = Parser::new(0);
    parser.set_features(chunk_image::SUPPORTED_FEATURES);
    let mut pending = Vec::new();
    let mut bodies = Vec::new();
    let mut m = ModuleDesc::default();
    for payload in parser.parse_all(bytes) {
        let payload = payload?;
        // Each section is validated before it is read (as `Validator::validate_all` does;
        // bodies are validated after the whole module, here or by the code generator).
        if let ValidPayload::Func(func, body) = validator.payload(&payload)? {
            if defer {
                pending.push(Some(func));
            } else {
                bodies.push((func, body));
            }
        }
        match payload {
            Payload::TypeSection(reader) => {
                for group in reader.into_iter() {
                    for sub in group?.types() {
                        let wasmparser::CompositeInnerType::Func(f) = &sub.composite_type.inner
                        else {
                            return Err(CompileError::Unsupported("non-function type".into()));
                        };
                        let params = f.params().iter().map(|&t| Ty::from_wasm(t));
                        let results = f.results().iter().map(|&t| Ty::from_wasm(t));
                        m.types.push(FuncType {
                            params: params.collect::<Result<_, _>>()?,
                            results: results.collect::<Result<_, _>>()?,
                        });
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import?;
                    let kind = match import.ty {
                        TypeRef::Func(t) => {
                            m.funcs.push(t);
                            m.func_imports += 1;
                            ImportKind::Func(t)
                        }
                        TypeRef::Global(g) => {
                            let ty = Ty::from_wasm(g.content_type)?;
                            m.globals.push(GlobalDesc {
                                ty,
                                mutable: g.mutable,
                                init: ConstInit::Value(0),
                            });
                            ImportKind::Global(ty, g.mutable)
                        }
                        TypeRef::Memory(mem) => {
                            let limits = Limits {
                                min: mem.initial,
                                max: mem.maximum,
                            };
                            m.memory = Some(limits);
                            ImportKind::Memory(limits)
                        }
                        TypeRef::Table(t) => {
                            let table = table_desc(&t, ConstInit::RefNull)?;
                            m.tables.push(table);
                            ImportKind::Table(table)
                        }
                        _ => return Err(CompileError::Unsupported("import kind".into())),
                    };
                    m.imports.push(ImportDesc {
                        module: import.module.to_string(),
                        name: import.name.to_string(),
                        kind,
                    });
                }
            }
            Payload::FunctionSection(reader) => {
                for t in reader {
                    m.funcs.push(t?);
                }
            }
            Payload::TableSection(reader) => {
                for t in reader {
                    let t = t?;
                    let init = match &t.init {
                        wasmparser::TableInit::RefNull => ConstInit::RefNull,
                        wasmparser::TableInit::Expr(e) => const_init(e)?,
                    };
                    m.tables.push(table_desc(&t.ty, init)?);
                }
            }
            Payload::MemorySection(reader) => {
                for mem in reader {
                    let mem = mem?;
                    m.memory = Some(Limits {
                        min: mem.initial,
                        max: mem.maximum,
                    });
                }
            }
            Payload::GlobalSection(reader) => {
                for g in reader {
                    let g = g?;
                    m.globals.push(GlobalDesc {
                        ty: Ty::from_wasm(g.ty.content_type)?,
                        mutable: g.ty.mutable,
                        init: const_init(&g.init_expr)?,
                    });
                }
            }
            Payload::ExportSection(reader) => {
                for e in reader {
                    let e = e?;
                    m.exports.push(ExportDesc {
                        name: e.name.to_string(),
                        kind: e.kind,
                        index: e.index,
                    });
                }
            }
            Payload::StartSection { func, .. } => m.start = Some(func),
            Payload::ElementSection(reader) => {
                for e in reader {
                    let e = e?;
                    let (offset, table, declared) = match &e.kind {
                        ElementKind::Active {
                            offset_expr,
                            table_index,
                        } => (
                            Some(const_init(offset_expr)?),
                            table_index.unwrap_or(0),
                            false,
                        ),
                        ElementKind::Passive => (None, 0, false),
                        ElementKind::Declared => (None, 0, true),
                    };
                    let mut items = Vec::new();
                    let ty = match e.items {
                        ElementItems::Functions(r) => {
                            for f in r {
                                items.push(ConstInit::RefFunc(f?));
                            }
                            Ty::FuncRef
                        }
                        ElementItems::Expressions(ty, r) => {
                            for expr in r {
                                items.push(const_init(&expr?)?);
                            }
                            Ty::from_ref(ty)?
                        }
                    };
                    m.elems.push(ElemDesc {
                        offset,
                        table,
                        declared,
                        ty,
                        items,
                    });
                }
            }
            Payload::DataSection(reader) => {
                for d in reader {
                    let d = d?;
                    let offset = match &d.kind {
                        DataKind::Active { offset_expr, .. } => Some(const_init(offset_expr)?),
                        DataKind::Passive => None,
                    };
                    m.datas.push(DataDesc {
                        offset,
                        bytes: d.data.to_vec(),
                    });
                }
            }
            Payload::CodeSectionEntry(body) => {
                let r = body.range();
                m.bodies.push(r.start as usize..r.end as usize);
            }
            Payload::CustomSection(reader) => {
                if let wasmparser::KnownCustom::Name(names) = reader.as_known() {
                    for name in names.into_iter().flatten() {
                        if let wasmparser::Name::Function(map) = name {
                            for naming in map.into_iter().flatten() {
                                set_name(&mut m.names, naming.index, naming.name);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let exports: Vec<(u32, String)> = m
        .exports
        .iter()
        .filter(|e| e.kind == ExternalKind::Func)
        .map(|e| (e.index, e.name.clone()))
        .collect();
    for (index, name) in exports {
        if m.names
            .get(index as usize)
            .and_then(Option::as_ref)
            .is_none()
        {
            set_name(&mut m.names, index, &name);
        }
    }
    m.names.resize(m.funcs.len(), None);
    m.uses_v128 = m
        .types
        .iter()
        .any(|t| t.params.iter().chain(&t.results).any(|t| t.is_v128()))
        || m.globals.iter().any(|g| g.ty.is_v128());
    let mut allocs = FuncValidatorAllocations::default();
    for (func, body) in bodies {
        let mut v = func.into_validator(allocs);
        v.validate(&body)?;
        allocs = v.into_allocations();
    }
    Ok((m, pending))
}

fn set_name(names: &mut Vec<Option<String>>, index: u32, name: &str) {
    let index = index as usize;
    if index > 1 << 20 {
        return;
    }
    if names.len() <= index {
        names.resize(index + 1, None);
    }
    names[index] = Some(name.to_string());
}
