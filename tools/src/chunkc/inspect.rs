//! `chunkc inspect IMAGE [--json]`: a readable table, or one JSON object on one line.

use std::fmt::Write as _;

use chunk_image::{ChunkView, FuncSig, Image, ObjectType, Provider};
use serde_json::{Value, json};

/// `(i32, i32) -> i64` style text for a signature.
pub fn sig_text(sig: &FuncSig) -> String {
    let list =
        |tys: &[chunk_image::ValType]| tys.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ");
    match sig.results.len() {
        0 => format!("({})", list(&sig.params)),
        1 => format!("({}) -> {}", list(&sig.params), list(&sig.results)),
        _ => format!("({}) -> ({})", list(&sig.params), list(&sig.results)),
    }
}

fn depends_on(chunk: &ChunkView<'_>) -> Vec<String> {
    let mut deps: Vec<String> = chunk
        .manifest
        .chunk_dependencies()
        .into_iter()
        .map(String::from)
        .collect();
    if chunk
        .manifest
        .imports
        .iter()
        .any(|i| i.provider == Provider::Kernel)
    {
        deps.push(format!("{} (kernel)", chunk_image::KERNEL_MODULE));
    }
    deps
}

/// The human-readable report.
pub fn table(image: &Image<'_>, image_len: usize) -> String {
    let mut out = String::new();
    let chunks = image.chunks();
    let _ = writeln!(
        out,
        "chunk image v{}.{}: {} chunks, {image_len} bytes",
        image.major_version(),
        image.minor_version(),
        chunks.len()
    );
    let _ = writeln!(
        out,
        "{:<12} {:>7} {:<16} {:>5} {:>7} {:>9} {:>5}  DEPENDS ON",
        "NAME", "BYTES", "HASH", "PAGES", "STACK", "CYCLES", "CALLS"
    );
    for c in chunks {
        let r = &c.manifest.resources;
        let deps = depends_on(c);
        let _ = writeln!(
            out,
            "{:<12} {:>7} {:016x} {:>5} {:>7} {:>9} {:>5}  {}",
            c.name,
            c.module.len(),
            c.content_hash,
            r.memory_pages,
            r.stack_bytes,
            r.cycles_per_call,
            c.manifest.call_graph.len(),
            if deps.is_empty() {
                "-".to_string()
            } else {
                deps.join(", ")
            }
        );
    }
    for c in chunks {
        let m = &c.manifest;
        let _ = writeln!(out, "\n{}:", c.name);
        for e in &m.exports {
            let _ = writeln!(out, "  export {}{}", e.name, sig_text(&e.sig));
        }
        for i in &m.imports {
            let from = match &i.provider {
                Provider::Kernel => "kernel".to_string(),
                Provider::Chunk(p) => format!("chunk {p}"),
            };
            let _ = writeln!(
                out,
                "  import {}.{}{} from {from}",
                i.module,
                i.name,
                sig_text(&i.sig)
            );
        }
        for e in &m.object_exports {
            let _ = writeln!(out, "  export {} {}", e.name, object_text(&e.ty));
        }
        for i in &m.object_imports {
            let _ = writeln!(
                out,
                "  import {}.{} {} (shared)",
                i.module,
                i.name,
                object_text(&i.ty)
            );
        }
        let max = m
            .resources
            .max_memory_pages
            .map_or_else(|| "none".to_string(), |p| p.to_string());
        let _ = writeln!(
            out,
            "  resources: {} pages (max {max}), {} stack bytes, {} cycles/call",
            m.resources.memory_pages, m.resources.stack_bytes, m.resources.cycles_per_call
        );
        for t in &m.profile.tasks {
            let _ = writeln!(out, "  profile: {} x{}", t.task, t.count);
        }
        for t in &m.profile.transitions {
            let _ = writeln!(out, "  profile: {} -> {} x{}", t.from, t.to, t.count);
        }
        if !m.tags.is_empty() {
            let _ = writeln!(out, "  tags: {}", m.tags.join(", "));
        }
        if let Some(p) = image.program(c.name) {
            let bytes: usize = p.files.iter().map(|(_, d)| d.len()).sum();
            let _ = writeln!(
                out,
                "  program: args {:?}, {} files ({bytes} bytes)",
                p.args,
                p.files.len()
            );
            if !p.env.is_empty() {
                let _ = writeln!(out, "  environment: {:?}", p.env);
            }
        }
    }
    if image.major_version() >= 3 {
        let w = image.workload();
        let s = w.settings;
        let _ = writeln!(
            out,
            "engine: cache limit {} bytes, policy {}, order {}, thresholds {}/{} permille (0 = kernel default)",
            s.cache_limit,
            ["default", "lru", "lfu"][usize::from(s.policy.min(2))],
            s.order,
            s.high_permille,
            s.low_permille
        );
        for (name, body) in &w.traces {
            let steps = atoll_predict::trace::parse(body).map_or(0, |s| s.len());
            let _ = writeln!(out, "trace {name}: {steps} steps");
        }
    }
    out
}

/// One JSON object describing the image.
pub fn json(image: &Image<'_>, image_len: usize) -> Value {
    let sig = |s: &FuncSig| {
        json!({
            "params": s.params.iter().map(|t| t.name()).collect::<Vec<_>>(),
            "results": s.results.iter().map(|t| t.name()).collect::<Vec<_>>(),
        })
    };
    let chunks: Vec<Value> = image
        .chunks()
        .iter()
        .map(|c| {
            let m = &c.manifest;
            json!({
                "name": c.name,
                "size_bytes": c.module.len(),
                "content_hash": format!("{:016x}", c.content_hash),
                "depends_on": m.chunk_dependencies(),
                "exports": m.exports.iter().map(|e| json!({
                    "name": e.name, "func_index": e.func_index, "sig": sig(&e.sig),
                })).collect::<Vec<_>>(),
                "imports": m.imports.iter().map(|i| json!({
                    "module": i.module,
                    "name": i.name,
                    "sig": sig(&i.sig),
                    "provider": match &i.provider {
                        Provider::Kernel => "kernel".to_string(),
                        Provider::Chunk(p) => p.clone(),
                    },
                })).collect::<Vec<_>>(),
                "object_exports": m.object_exports.iter().map(|e| json!({
                    "name": e.name, "index": e.index, "type": object_text(&e.ty),
                })).collect::<Vec<_>>(),
                "object_imports": m.object_imports.iter().map(|i| json!({
                    "module": i.module, "name": i.name, "type": object_text(&i.ty),
                })).collect::<Vec<_>>(),
                "call_graph": m.call_graph.iter().map(|e| [e.caller, e.callee]).collect::<Vec<_>>(),
                "resources": {
                    "memory_pages": m.resources.memory_pages,
                    "max_memory_pages": m.resources.max_memory_pages,
                    "stack_bytes": m.resources.stack_bytes,
                    "cycles_per_call": m.resources.cycles_per_call,
                },
                "profile": {
                    "tasks": m.profile.tasks.iter().map(|t| json!({"task": t.task, "count": t.count})).collect::<Vec<_>>(),
                    "transitions": m.profile.transitions.iter().map(|t| json!({"from": t.from, "to": t.to, "count": t.count})).collect::<Vec<_>>(),
                },
                "tags": m.tags,
            })
        })
        .collect();
    json!({
        "version": format!("{}.{}", image.major_version(), image.minor_version()),
        "programs": image.programs().iter().map(|p| serde_json::json!({
            "chunk": p.chunk,
            "args": p.args,
            "env": p.env,
            "files": p.files.iter().map(|(path, data)| serde_json::json!({"path": path, "bytes": data.len()})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "size_bytes": image_len,
        "chunks": chunks,
        "engine": {
            "cache_limit": image.workload().settings.cache_limit,
            "policy": image.workload().settings.policy,
            "order": image.workload().settings.order,
            "high_permille": image.workload().settings.high_permille,
            "low_permille": image.workload().settings.low_permille,
        },
        "traces": image.workload().traces.iter().map(|(name, body)| json!({
            "name": name,
            "steps": atoll_predict::trace::parse(body).map_or(0, |s| s.len()),
        })).collect::<Vec<_>>(),
    })
}

/// A shared object's type in text form: `memory 1..4`, `table funcref 2..`, `global mut i64`.
pub fn object_text(ty: &ObjectType) -> String {
    let limits = |min: u32, max: Option<u32>| match max {
        Some(max) => format!("{min}..{max}"),
        None => format!("{min}.."),
    };
    match *ty {
        ObjectType::Memory { min, max } => format!("memory {}", limits(min, max)),
        ObjectType::Table { elem, min, max } => {
            format!("table {} {}", elem.name(), limits(min, max))
        }
        ObjectType::Global { ty, mutable } => {
            format!("global {}{}", if mutable { "mut " } else { "" }, ty.name())
        }
    }
}
