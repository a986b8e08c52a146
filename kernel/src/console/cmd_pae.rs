//! Predictive Assembly Engine commands: `run`, `tasks`, `asm`, `pae`.

use alloc::string::String;
use alloc::vec::Vec;

use atoll_kcore::args::{ArgError, Args};
use atoll_kcore::json::Json;
use atoll_pae::runtime::InvokeError;
use core::sync::atomic::{AtomicU64, Ordering};
use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};
use spin::Mutex;

use super::commands::{CmdError, CmdResult};
use crate::pae::{self, PaeError};
use crate::{println, time};

impl From<PaeError> for CmdError {
    fn from(e: PaeError) -> Self {
        CmdError::Failed(alloc::format!("{e}"))
    }
}

/// One finished task, for `tasks`.
#[derive(Debug, Clone)]
struct TaskRecord {
    id: u64,
    task: String,
    core: u32,
    thread: u64,
    outcome: String,
    trapped: bool,
    run_cycles: u64,
}

static TASKS: Mutex<Vec<TaskRecord>> = Mutex::new(Vec::new());
/// How many finished tasks `tasks` remembers.
const TASK_HISTORY: usize = 64;

static NEXT_TASK_ID: AtomicU64 = AtomicU64::new(1);

/// A task started with `run --background`, not collected yet.
#[derive(Debug)]
struct Background {
    id: u64,
    task: String,
    started: pae::Started,
    /// A WASI command (`run CHUNK --background`): its outcome is its exit code.
    command: bool,
}

static RUNNING: Mutex<Vec<Background>> = Mutex::new(Vec::new());

/// Records a finished task; returns its outcome text and whether it trapped, or the error of
/// a call that did not fit the export (nothing ran).
fn record(id: u64, task: &str, done: &pae::TaskOutcome) -> Result<(String, bool), CmdError> {
    // Tasks are exports; a WASI command (no `.`) is not a task the predictor models.
    if task.contains('.') {
        crate::predict::on_finished(task, done.run_cycles, done.result.is_ok());
    }
    let command = (!task.contains('.'))
        .then(|| super::cmd_wasi::command_outcome(done))
        .flatten();
    let (text, trapped) = match &done.result {
        _ if command.is_some() => (command.unwrap_or_default(), false),
        Ok(results) => (pae::format_results(results), false),
        Err(InvokeError::Trap(trap)) => (alloc::format!("{trap}"), true),
        // Nothing ran: the call did not fit the export (parse_args checks the count first).
        Err(e) => return Err(CmdError::Failed(alloc::format!("{e}"))),
    };
    remember(TaskRecord {
        id,
        task: task.into(),
        core: done.core,
        thread: done.thread,
        outcome: text.clone(),
        trapped,
        run_cycles: done.run_cycles,
    });
    Ok((text, trapped))
}

fn remember(record: TaskRecord) {
    let mut tasks = TASKS.lock();
    if tasks.len() == TASK_HISTORY {
        tasks.remove(0);
    }
    tasks.push(record);
}

/// Records every background task that has finished.
pub(super) fn collect_background() {
    let finished: Vec<Background> = {
        let mut running = RUNNING.lock();
        let (done, still): (Vec<_>, Vec<_>) = running.drain(..).partition(|b| b.started.is_done());
        *running = still;
        done
    };
    for b in finished {
        let outcome = b.started.wait();
        match outcome {
            Ok(done) => {
                if let Ok((text, trapped)) = record(b.id, &b.task, &done)
                    && b.command
                {
                    let outcome = if trapped {
                        alloc::format!("trap: {text}")
                    } else {
                        text
                    };
                    super::cmd_wasi::finished(b.id, &outcome);
                }
            }
            Err(e) => println!("task {} ({}): {e}", b.id, b.task),
        }
    }
}

pub fn run(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let background = args.flag("--background");
    let core = args.flag_u64("--core")?.map(|c| c as usize);
    let task = args.required("task (CHUNK.EXPORT or a command CHUNK)")?;
    if !task.contains('.') {
        let id = NEXT_TASK_ID.fetch_add(1, Ordering::Relaxed);
        if background {
            let started = super::cmd_wasi::start_background(id, &task, args, core)?;
            return announce(id, task, started, true, json);
        }
        let ran = super::cmd_wasi::run_command(&task, args, json, core)?;
        remember(TaskRecord {
            id,
            task,
            core: ran.core,
            thread: ran.thread,
            outcome: ran.outcome,
            trapped: false,
            run_cycles: ran.run_cycles,
        });
        return Ok(());
    }
    let snapshots = args.flag_str("--snapshots")?;
    let client = args.flag_str("--client")?;
    let mut words = Vec::new();
    while let Some(w) = args.positional() {
        words.push(w);
    }
    args.finish()?;
    if let Some(mode) = snapshots {
        let client = client.as_deref();
        if background {
            let started = super::cmd_snap_run::start_task(&task, &words, &mode, core, client)?;
            let id = NEXT_TASK_ID.fetch_add(1, Ordering::Relaxed);
            return announce(id, task, started, false, json);
        }
        return super::cmd_snap_run::run_task(&task, &words, &mode, core, client, json);
    }
    if client.is_some() {
        return Err(CmdError::Failed(
            "--client names a snapshot library: it goes with --snapshots".into(),
        ));
    }
    crate::predict::on_request(&task);
    let prepared = pae::prepare(&task)?;
    let values = prepared.parse_args(&words)?;
    let id = NEXT_TASK_ID.fetch_add(1, Ordering::Relaxed);
    if background {
        let started = pae::start_on_thread(prepared, values, core)
            .map_err(|e| CmdError::Failed(alloc::format!("chunk thread: {e}")))?;
        return announce(id, task, started, false, json);
    }
    let done = pae::run_on_thread(prepared, values, core)
        .map_err(|e| CmdError::Failed(alloc::format!("chunk thread: {e}")))?;
    let run_cycles = done.run_cycles;
    let (text, trapped) = record(id, &task, &done)?;
    if json {
        let mut j = Json::new();
        j.begin_object().str("task", &task);
        match &done.result {
            Ok(results) => {
                j.array("results");
                for r in results {
                    j.str_value(&alloc::format!("{r}"));
                }
                j.end_array();
            }
            Err(InvokeError::Trap(trap)) => {
                j.str("trap", trap.message());
            }
            Err(_) => {}
        }
        j.u64("core", u64::from(done.core))
            .u64("thread", done.thread)
            .u64("run_cycles", run_cycles)
            .end_object();
        println!("{}", j.finish());
    } else if !trapped {
        println!("{text}");
    }
    if trapped {
        return Err(CmdError::Failed(alloc::format!("trap: {text}")));
    }
    Ok(())
}

/// Keeps a background task for `tasks` and prints its id.
fn announce(id: u64, task: String, started: pae::Started, command: bool, json: bool) -> CmdResult {
    let thread = started.thread();
    RUNNING.lock().push(Background {
        id,
        task: task.clone(),
        started,
        command,
    });
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("task_id", id)
            .str("task", &task)
            .u64("thread", thread)
            .end_object();
        println!("{}", j.finish());
    } else {
        println!("task {id} ({task}) started on thread {thread}");
    }
    Ok(())
}

pub fn tasks(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    args.finish()?;
    collect_background();
    let tasks = TASKS.lock().clone();
    let running: Vec<(u64, String, u64)> = RUNNING
        .lock()
        .iter()
        .map(|b| (b.id, b.task.clone(), b.started.thread()))
        .collect();
    if json {
        let mut j = Json::new();
        j.begin_object().array("tasks");
        for t in &tasks {
            j.begin_object()
                .u64("id", t.id)
                .str("task", &t.task)
                .u64("core", u64::from(t.core))
                .u64("thread", t.thread)
                .str("state", if t.trapped { "trapped" } else { "done" })
                .str("outcome", &t.outcome)
                .u64("run_cycles", t.run_cycles)
                .end_object();
        }
        for (id, task, thread) in &running {
            j.begin_object()
                .u64("id", *id)
                .str("task", task)
                .u64("thread", *thread)
                .str("state", "running")
                .end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!(
        "  {:<4} {:<28} {:<5} {:<8} {:>14}  outcome",
        "id", "task", "core", "state", "cycles"
    );
    for t in &tasks {
        println!(
            "  {:<4} {:<28} {:<5} {:<8} {:>14}  {}",
            t.id,
            t.task,
            t.core,
            if t.trapped { "trapped" } else { "done" },
            t.run_cycles,
            t.outcome
        );
    }
    for (id, task, thread) in &running {
        println!(
            "  {id:<4} {task:<28} {:<5} {:<8} (thread {thread})",
            "-", "running"
        );
    }
    Ok(())
}

pub fn pae_stats(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let chunk = args.positional();
    args.finish()?;
    if let Some(chunk) = chunk {
        return pae_functions(&chunk, json);
    }
    let all = pae::assembled();
    let hz = time::tsc_hz().max(1);
    if json {
        let mut j = Json::new();
        let functions: usize = all.iter().map(|a| a.module.funcs.len()).sum();
        let bytes: usize = all.iter().map(|a| a.module.code.len()).sum();
        j.begin_object()
            .u64("chunks", all.len() as u64)
            .u64("functions", functions as u64)
            .u64("code_bytes", bytes as u64)
            .array("assembled");
        for a in &all {
            let n = a.module.funcs.len().max(1) as u64;
            j.begin_object()
                .str("chunk", &a.chunk)
                .u64("wasm_bytes", a.wasm_bytes as u64)
                .u64("functions", a.module.funcs.len() as u64)
                .u64("code_bytes", a.module.code.len() as u64)
                .u64("code_addr", a.code.base())
                .u64("assemble_cycles", a.assemble_cycles)
                .u64("encode_cycles", a.module.encode_ticks)
                .u64("cycles_per_function", a.assemble_cycles / n)
                .end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!(
        "  {:<12} {:>10} {:>9} {:>10} {:>14} {:>10} {:>16}",
        "chunk",
        "wasm bytes",
        "functions",
        "code bytes",
        "assemble cyc",
        "time us",
        "cycles/function"
    );
    for a in &all {
        let n = a.module.funcs.len().max(1) as u64;
        println!(
            "  {:<12} {:>10} {:>9} {:>10} {:>14} {:>10} {:>16}",
            a.chunk,
            a.wasm_bytes,
            a.module.funcs.len(),
            a.module.code.len(),
            a.assemble_cycles,
            a.assemble_cycles * 1_000_000 / hz,
            a.assemble_cycles / n
        );
    }
    if all.is_empty() {
        println!("  nothing assembled yet (`run CHUNK.EXPORT` assembles what it needs)");
    }
    Ok(())
}

/// `pae CHUNK`: every function of one chunk, with the cycles its lowering took.
fn pae_functions(chunk: &str, json: bool) -> CmdResult {
    let a = pae::assemble(chunk)?;
    let m = &a.module;
    if json {
        let mut j = Json::new();
        j.begin_object()
            .str("chunk", chunk)
            .u64("assemble_cycles", a.assemble_cycles)
            .u64("encode_cycles", m.encode_ticks)
            .array("functions");
        for f in &m.funcs {
            j.begin_object()
                .u64("index", u64::from(f.index))
                .str("name", f.name.as_deref().unwrap_or(""))
                .u64(
                    "code_bytes",
                    u64::from(f.code_range.end - f.code_range.start),
                )
                .u64("lower_cycles", f.lower_ticks)
                .u64("call_sites", f.call_sites.len() as u64)
                .u64("frame_bytes", u64::from(f.frame.frame_bytes))
                .end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    println!(
        "{chunk}: {} functions, {} code bytes at {:#x}; {} cycles in all, {} encoding",
        m.funcs.len(),
        m.code.len(),
        a.code.base(),
        a.assemble_cycles,
        m.encode_ticks
    );
    println!(
        "  {:>5} {:<24} {:>10} {:>12} {:>6} {:>6}",
        "index", "name", "code bytes", "lower cyc", "calls", "frame"
    );
    for f in &m.funcs {
        println!(
            "  {:>5} {:<24} {:>10} {:>12} {:>6} {:>6}",
            f.index,
            f.name.as_deref().unwrap_or("-"),
            f.code_range.end - f.code_range.start,
            f.lower_ticks,
            f.call_sites.len(),
            f.frame.frame_bytes
        );
    }
    Ok(())
}

pub fn asm(args: &mut Args) -> CmdResult {
    let target = args.required("function (CHUNK.FUNC: an export name or a function index)")?;
    args.finish()?;
    let (chunk, func) = target.split_once('.').ok_or_else(|| {
        CmdError::Args(ArgError::Invalid {
            what: "CHUNK.FUNC",
            value: target.clone(),
        })
    })?;
    let assembled = pae::assemble(chunk)?;
    let module = &assembled.module;
    let index = module
        .desc
        .export_func(func)
        .or_else(|| func.parse::<u32>().ok())
        .ok_or_else(|| CmdError::Failed(alloc::format!("no function `{target}`")))?;
    let meta = module
        .funcs
        .iter()
        .find(|f| f.index == index)
        .ok_or_else(|| {
            CmdError::Failed(alloc::format!("function {index} has no code (an import?)"))
        })?;
    let range = meta.code_range.start as usize..meta.code_range.end as usize;
    let code = &assembled.code.bytes()[range.clone()];
    let base = assembled.code.base() + range.start as u64;
    println!(
        "{}: function {} ({}), {} bytes at {:#x}, frame {} bytes",
        target,
        index,
        meta.name.as_deref().unwrap_or("-"),
        code.len(),
        base,
        meta.frame.frame_bytes
    );
    let mut decoder = Decoder::with_ip(64, code, base, DecoderOptions::NONE);
    let mut formatter = IntelFormatter::new();
    let mut insn = Instruction::default();
    let mut text = String::new();
    let mut boundaries = meta.insn_boundaries.iter().peekable();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        let offset = (insn.ip() - assembled.code.base()) as u32;
        while let Some((code_off, wasm_off)) = boundaries.peek() {
            if *code_off > offset {
                break;
            }
            println!("  ;; wasm {:#06x}", wasm_off);
            boundaries.next();
        }
        text.clear();
        formatter.format(&insn, &mut text);
        println!("  {:016x}  {}", insn.ip(), text);
    }
    Ok(())
}
