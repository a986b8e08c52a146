//! Binary encoding of a [`Manifest`]. Strings are string-table references (u32 offset, u32
//! length); counts are u32; integers are little-endian. Field order:
//!
//! resources (memory_pages u32, max_memory_pages u32 with `u32::MAX` = none, stack_bytes u32,
//! cycles_per_call u64), imports, exports, call graph, task frequencies, transitions, tags, and
//! from version 4 the shared objects: object imports (module, name, type, provider) and object
//! exports (name, index u32, type). An object type is a kind byte (0 memory, 1 table, 2 global)
//! then memory `min u32, max u32`, table `elem u8, min u32, max u32` (`u32::MAX` = no maximum),
//! global `type u8, mutable u8`. Signatures of versions 1 to 3 hold number types only.

use alloc::string::String;
use alloc::vec::Vec;

use crate::bytes::{Cursor, PutLe, to_u32};
use crate::error::FormatError;
use crate::model::{
    CallEdge, Export, FuncSig, Import, Manifest, ObjectExport, ObjectImport, ObjectType, Profile,
    Provider, Resources, TaskFrequency, Transition, ValType,
};
use crate::strings::{StringTable, StringTableBuilder};

const NO_MAX_PAGES: u32 = u32::MAX;
const PROVIDER_KERNEL: u8 = 0;
const PROVIDER_CHUNK: u8 = 1;
const OBJECT_MEMORY: u8 = 0;
const OBJECT_TABLE: u8 = 1;
const OBJECT_GLOBAL: u8 = 2;
/// The first version whose manifests hold shared objects and non-number signature types.
pub const OBJECTS_VERSION: u16 = 4;
/// Size of one string reference.
const STR_LEN: usize = 8;

/// Appends the encoding of `manifest` to `out` for an image of version `major`.
pub fn encode(
    manifest: &Manifest,
    major: u16,
    strings: &mut StringTableBuilder,
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    if major < OBJECTS_VERSION && !manifest.fits_version_3() {
        return Err(FormatError::TooLarge(
            "shared objects or vector/reference types in a version-3 image",
        ));
    }
    let r = &manifest.resources;
    if r.max_memory_pages == Some(NO_MAX_PAGES) {
        return Err(FormatError::TooLarge("max_memory_pages"));
    }
    out.put_u32(r.memory_pages);
    out.put_u32(r.max_memory_pages.unwrap_or(NO_MAX_PAGES));
    out.put_u32(r.stack_bytes);
    out.put_u64(r.cycles_per_call);

    out.put_u32(to_u32(manifest.imports.len(), "imports")?);
    for import in &manifest.imports {
        strings.put(out, &import.module)?;
        strings.put(out, &import.name)?;
        put_sig(out, &import.sig)?;
        put_provider(out, strings, &import.provider)?;
    }

    out.put_u32(to_u32(manifest.exports.len(), "exports")?);
    for export in &manifest.exports {
        strings.put(out, &export.name)?;
        out.put_u32(export.func_index);
        put_sig(out, &export.sig)?;
    }

    out.put_u32(to_u32(manifest.call_graph.len(), "call graph")?);
    for edge in &manifest.call_graph {
        out.put_u32(edge.caller);
        out.put_u32(edge.callee);
    }

    out.put_u32(to_u32(manifest.profile.tasks.len(), "task frequencies")?);
    for task in &manifest.profile.tasks {
        strings.put(out, &task.task)?;
        out.put_u64(task.count);
    }
    out.put_u32(to_u32(manifest.profile.transitions.len(), "transitions")?);
    for t in &manifest.profile.transitions {
        strings.put(out, &t.from)?;
        strings.put(out, &t.to)?;
        out.put_u64(t.count);
    }

    out.put_u32(to_u32(manifest.tags.len(), "tags")?);
    for tag in &manifest.tags {
        strings.put(out, tag)?;
    }

    if major >= OBJECTS_VERSION {
        out.put_u32(to_u32(manifest.object_imports.len(), "object imports")?);
        for import in &manifest.object_imports {
            strings.put(out, &import.module)?;
            strings.put(out, &import.name)?;
            put_object(out, &import.ty);
            put_provider(out, strings, &import.provider)?;
        }
        out.put_u32(to_u32(manifest.object_exports.len(), "object exports")?);
        for export in &manifest.object_exports {
            strings.put(out, &export.name)?;
            out.put_u32(export.index);
            put_object(out, &export.ty);
        }
    }
    Ok(())
}

fn put_provider(
    out: &mut Vec<u8>,
    strings: &mut StringTableBuilder,
    provider: &Provider,
) -> Result<(), FormatError> {
    match provider {
        Provider::Kernel => out.put_u8(PROVIDER_KERNEL),
        Provider::Chunk(name) => {
            out.put_u8(PROVIDER_CHUNK);
            strings.put(out, name)?;
        }
    }
    Ok(())
}

fn put_object(out: &mut Vec<u8>, ty: &ObjectType) {
    let max = |m: Option<u32>| m.unwrap_or(NO_MAX_PAGES);
    match *ty {
        ObjectType::Memory { min, max: m } => {
            out.put_u8(OBJECT_MEMORY);
            out.put_u32(min);
            out.put_u32(max(m));
        }
        ObjectType::Table { elem, min, max: m } => {
            out.put_u8(OBJECT_TABLE);
            out.put_u8(elem.code());
            out.put_u32(min);
            out.put_u32(max(m));
        }
        ObjectType::Global { ty, mutable } => {
            out.put_u8(OBJECT_GLOBAL);
            out.put_u8(ty.code());
            out.put_u8(u8::from(mutable));
        }
    }
}

fn read_object(cur: &mut Cursor<'_>) -> Result<ObjectType, FormatError> {
    let max = |m: u32| (m != NO_MAX_PAGES).then_some(m);
    let value_type = |code: u8| ValType::from_code(code).ok_or(FormatError::BadValType(code));
    Ok(match cur.u8()? {
        OBJECT_MEMORY => ObjectType::Memory {
            min: cur.u32()?,
            max: max(cur.u32()?),
        },
        OBJECT_TABLE => {
            let elem = value_type(cur.u8()?)?;
            if !matches!(elem, ValType::FuncRef | ValType::ExternRef) {
                return Err(FormatError::BadValType(elem.code()));
            }
            ObjectType::Table {
                elem,
                min: cur.u32()?,
                max: max(cur.u32()?),
            }
        }
        OBJECT_GLOBAL => {
            let ty = value_type(cur.u8()?)?;
            let mutable = match cur.u8()? {
                0 => false,
                1 => true,
                _ => return Err(FormatError::BadString("global mutability")),
            };
            ObjectType::Global { ty, mutable }
        }
        other => return Err(FormatError::BadObjectKind(other)),
    })
}

fn read_provider(cur: &mut Cursor<'_>, strings: &StringTable<'_>) -> Result<Provider, FormatError> {
    Ok(match cur.u8()? {
        PROVIDER_KERNEL => Provider::Kernel,
        PROVIDER_CHUNK => Provider::Chunk(owned(strings.read(cur, "provider")?)),
        other => return Err(FormatError::BadProvider(other)),
    })
}

fn put_sig(out: &mut Vec<u8>, sig: &FuncSig) -> Result<(), FormatError> {
    for list in [&sig.params, &sig.results] {
        out.put_u32(to_u32(list.len(), "signature")?);
        for ty in list {
            out.put_u8(ty.code());
        }
    }
    Ok(())
}

/// Decodes one manifest of an image of version `major`; the whole of `cur` must be consumed.
pub fn decode(
    cur: &mut Cursor<'_>,
    strings: &StringTable<'_>,
    index: usize,
    major: u16,
) -> Result<Manifest, FormatError> {
    let memory_pages = cur.u32()?;
    let max = cur.u32()?;
    let resources = Resources {
        memory_pages,
        max_memory_pages: (max != NO_MAX_PAGES).then_some(max),
        stack_bytes: cur.u32()?,
        cycles_per_call: cur.u64()?,
    };

    let count = cur.count(2 * STR_LEN + 9)?;
    let mut imports = Vec::with_capacity(count);
    for _ in 0..count {
        let module = owned(strings.read(cur, "import module")?);
        let name = owned(strings.read(cur, "import name")?);
        let sig = read_sig(cur, major)?;
        let provider = read_provider(cur, strings)?;
        imports.push(Import {
            module,
            name,
            sig,
            provider,
        });
    }

    let count = cur.count(STR_LEN + 12)?;
    let mut exports = Vec::with_capacity(count);
    for _ in 0..count {
        let name = owned(strings.read(cur, "export name")?);
        let func_index = cur.u32()?;
        let sig = read_sig(cur, major)?;
        exports.push(Export {
            name,
            func_index,
            sig,
        });
    }

    let count = cur.count(8)?;
    let mut call_graph = Vec::with_capacity(count);
    for _ in 0..count {
        call_graph.push(CallEdge {
            caller: cur.u32()?,
            callee: cur.u32()?,
        });
    }

    let count = cur.count(STR_LEN + 8)?;
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        tasks.push(TaskFrequency {
            task: owned(strings.read(cur, "task")?),
            count: cur.u64()?,
        });
    }
    let count = cur.count(2 * STR_LEN + 8)?;
    let mut transitions = Vec::with_capacity(count);
    for _ in 0..count {
        transitions.push(Transition {
            from: owned(strings.read(cur, "transition")?),
            to: owned(strings.read(cur, "transition")?),
            count: cur.u64()?,
        });
    }

    let count = cur.count(STR_LEN)?;
    let mut tags = Vec::with_capacity(count);
    for _ in 0..count {
        tags.push(owned(strings.read(cur, "tag")?));
    }

    let mut object_imports = Vec::new();
    let mut object_exports = Vec::new();
    if major >= OBJECTS_VERSION {
        let count = cur.count(2 * STR_LEN + 4)?;
        object_imports.reserve(count);
        for _ in 0..count {
            object_imports.push(ObjectImport {
                module: owned(strings.read(cur, "object import module")?),
                name: owned(strings.read(cur, "object import name")?),
                ty: read_object(cur)?,
                provider: read_provider(cur, strings)?,
            });
        }
        let count = cur.count(STR_LEN + 7)?;
        object_exports.reserve(count);
        for _ in 0..count {
            object_exports.push(ObjectExport {
                name: owned(strings.read(cur, "object export name")?),
                index: cur.u32()?,
                ty: read_object(cur)?,
            });
        }
    }

    if cur.remaining() != 0 {
        return Err(FormatError::TrailingBytes { index });
    }
    Ok(Manifest {
        imports,
        exports,
        object_imports,
        object_exports,
        call_graph,
        resources,
        profile: Profile { tasks, transitions },
        tags,
    })
}

fn read_sig(cur: &mut Cursor<'_>, major: u16) -> Result<FuncSig, FormatError> {
    let mut lists: [Vec<ValType>; 2] = [Vec::new(), Vec::new()];
    for list in &mut lists {
        let count = cur.count(1)?;
        list.reserve(count);
        for _ in 0..count {
            let code = cur.u8()?;
            let ty = ValType::from_code(code)
                .filter(|t| t.is_number() || major >= OBJECTS_VERSION)
                .ok_or(FormatError::BadValType(code))?;
            list.push(ty);
        }
    }
    let [params, results] = lists;
    Ok(FuncSig { params, results })
}

fn owned(s: &str) -> String {
    String::from(s)
}
