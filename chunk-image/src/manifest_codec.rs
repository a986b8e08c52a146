//! Binary encoding of a [`Manifest`]. Strings are string-table references (u32 offset, u32
//! length); counts are u32; integers are little-endian. Field order:
//!
//! resources (memory_pages u32, max_memory_pages u32 with `u32::MAX` = none, stack_bytes u32,
//! cycles_per_call u64), imports, exports, call graph, task frequencies, transitions, tags.

use alloc::string::String;
use alloc::vec::Vec;

use crate::bytes::{Cursor, PutLe, to_u32};
use crate::error::FormatError;
use crate::model::{
    CallEdge, Export, FuncSig, Import, Manifest, Profile, Provider, Resources, TaskFrequency,
    Transition, ValType,
};
use crate::strings::{StringTable, StringTableBuilder};

const NO_MAX_PAGES: u32 = u32::MAX;
const PROVIDER_KERNEL: u8 = 0;
const PROVIDER_CHUNK: u8 = 1;
/// Size of one string reference.
const STR_LEN: usize = 8;

/// Appends the encoding of `manifest` to `out`.
pub fn encode(
    manifest: &Manifest,
    strings: &mut StringTableBuilder,
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
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
        match &import.provider {
            Provider::Kernel => out.put_u8(PROVIDER_KERNEL),
            Provider::Chunk(name) => {
                out.put_u8(PROVIDER_CHUNK);
                strings.put(out, name)?;
            }
        }
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
    Ok(())
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

/// Decodes one manifest; the whole of `cur` must be consumed.
pub fn decode(
    cur: &mut Cursor<'_>,
    strings: &StringTable<'_>,
    index: usize,
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
        let sig = read_sig(cur)?;
        let provider = match cur.u8()? {
            PROVIDER_KERNEL => Provider::Kernel,
            PROVIDER_CHUNK => Provider::Chunk(owned(strings.read(cur, "provider")?)),
            other => return Err(FormatError::BadProvider(other)),
        };
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
        let sig = read_sig(cur)?;
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

    if cur.remaining() != 0 {
        return Err(FormatError::TrailingBytes { index });
    }
    Ok(Manifest {
        imports,
        exports,
        call_graph,
        resources,
        profile: Profile { tasks, transitions },
        tags,
    })
}

fn read_sig(cur: &mut Cursor<'_>) -> Result<FuncSig, FormatError> {
    let mut lists: [Vec<ValType>; 2] = [Vec::new(), Vec::new()];
    for list in &mut lists {
        let count = cur.count(1)?;
        list.reserve(count);
        for _ in 0..count {
            let code = cur.u8()?;
            list.push(ValType::from_code(code).ok_or(FormatError::BadValType(code))?);
        }
    }
    let [params, results] = lists;
    Ok(FuncSig { params, results })
}

fn owned(s: &str) -> String {
    String::from(s)
}
