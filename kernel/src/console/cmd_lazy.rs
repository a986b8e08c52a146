//! `lazy`: assembly from the request (only what a task's export reaches up front, the rest at
//! its first call): switch, figures, and the task-start measurement.

use atoll_kcore::args::{ArgError, Args};
use atoll_kcore::json::Json;

use super::commands::{CmdError, CmdResult};
use crate::island::reloc::instructions;
use crate::pae::{self, lazy};
use crate::println;

pub fn lazy(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let rounds = args.flag_u64("--rounds")?.unwrap_or(5);
    let word = args.positional();
    match word.as_deref() {
        Some("on" | "off") => {
            args.finish()?;
            lazy::set_enabled(word.as_deref() == Some("on"));
        }
        Some("startup") => {
            let task = args.required("CHUNK.EXPORT")?;
            args.finish()?;
            return startup(&task, rounds as usize, json);
        }
        Some(other) => {
            return Err(CmdError::Args(ArgError::Invalid {
                what: "lazy subcommand (on, off, startup)",
                value: other.into(),
            }));
        }
        None => args.finish()?,
    }
    show(json);
    Ok(())
}

/// The switch and, per assembled chunk, what was assembled up front and lazily.
fn show(json: bool) {
    let all = pae::assembled();
    if json {
        let mut j = Json::new();
        j.begin_object()
            .bool("from_request", lazy::enabled())
            .array("chunks");
        for a in &all {
            let s = lazy::stats(&a.code);
            let m = &a.module;
            let defined = m.funcs.len() - m.desc.func_imports as usize;
            j.begin_object()
                .str("chunk", &a.chunk)
                .u64("functions", defined as u64)
                .u64("assembled_up_front", (defined - m.stub_count()) as u64)
                .u64("stubs", m.stub_count() as u64)
                .u64("lazily_assembled", s.functions as u64)
                .u64("up_front_bytes", m.code.len() as u64)
                .u64("lazy_bytes", s.bytes as u64)
                .u64("code_bytes", a.code_bytes() as u64)
                .u64("lazy_cycles", s.cycles)
                .end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return;
    }
    println!(
        "assembly from the request: {}",
        if lazy::enabled() { "on" } else { "off" }
    );
    println!(
        "  {:<12} {:>9} {:>10} {:>6} {:>6} {:>11} {:>10} {:>12}",
        "chunk", "functions", "up front", "stubs", "lazily", "up-front B", "lazy B", "lazy cycles"
    );
    for a in &all {
        let s = lazy::stats(&a.code);
        let m = &a.module;
        let defined = m.funcs.len() - m.desc.func_imports as usize;
        println!(
            "  {:<12} {:>9} {:>10} {:>6} {:>6} {:>11} {:>10} {:>12}",
            a.chunk,
            defined,
            defined - m.stub_count(),
            m.stub_count(),
            s.functions,
            m.code.len(),
            s.bytes,
            s.cycles
        );
    }
}

/// `lazy startup TASK`: task-start latency with whole-module assembly and from the request.
fn startup(task: &str, rounds: usize, json: bool) -> CmdResult {
    let (whole, reach) = lazy::measure_startup(task, rounds)?;
    let ratio_x100 = whole.cycles * 100 / reach.cycles.max(1);
    if json {
        let mut j = Json::new();
        j.begin_object()
            .str("task", task)
            .u64("rounds", rounds as u64);
        for (name, s) in [("whole", whole), ("from_request", reach)] {
            j.object(name)
                .u64("cycles", s.cycles)
                .u64("functions", s.functions as u64)
                .u64("stubs", s.stubs as u64)
                .u64("code_bytes", s.code_bytes as u64);
            if let Some(i) = instructions(s.cycles) {
                j.u64("instructions", i);
            }
            j.end_object();
        }
        j.u64("speedup_x100", ratio_x100).end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!("{task}: request to instances ready, median of {rounds} each way");
    for (name, s) in [("whole modules", whole), ("from the request", reach)] {
        let instr = instructions(s.cycles)
            .map(|i| alloc::format!(", {i} guest instructions"))
            .unwrap_or_default();
        println!(
            "  {name:<17} {} cycles{instr}; {} functions assembled, {} stubs, {} code bytes",
            s.cycles, s.functions, s.stubs, s.code_bytes
        );
    }
    println!(
        "  from the request is {}.{:02}x faster",
        ratio_x100 / 100,
        ratio_x100 % 100
    );
    Ok(())
}
