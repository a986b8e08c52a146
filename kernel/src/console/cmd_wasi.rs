//! `run CHUNK [ARGS...] [< FILE | < -] [--env K=V]... [--core N] [--background] [--json]`:
//! runs a command chunk (a WASI program's `_start`) on a chunk thread and shows what it wrote
//! and how it ended. Without ARGS the image's default arguments apply; the environment is the
//! image's default for the chunk with each `--env` on top; `< FILE` reads standard input from
//! one of the program's files, `< -` from lines typed at the console (see
//! [`read_console_input`]). Console flags (`--json`, `--core N`, `--background`, `--env`) are
//! taken first; every other word is the program's. `--background` prints the task id at once;
//! `output ID` shows what the program wrote so far and, once it ended, its exit code.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use atoll_kcore::args::{Args, split_redirect};
use atoll_kcore::json::Json;
use atoll_kcore::line_editor::{Event, LineEditor};
use atoll_pae::TrapCode;
use atoll_pae::runtime::InvokeError;
use spin::Mutex;

use super::commands::{CmdError, CmdResult};
use super::{input, out};
use crate::{pae, print, println, wasi};

/// The prompt while `< -` reads standard input from the console.
pub const INPUT_PROMPT: &str = "stdin> ";
/// Most bytes `< -` takes from the console.
pub const CONSOLE_INPUT_MAX_BYTES: usize = 64 << 10;

/// Reads a program's standard input from the console before it starts, through the shell's
/// line editor: one line per Enter (each ends with `\n`), until a line holding only `.` or
/// Ctrl-D at the start of a line. Ctrl-C abandons the run.
fn read_console_input() -> Result<Vec<u8>, CmdError> {
    println!("(standard input: end with a line holding only `.`, or Ctrl-D on an empty line)");
    let mut editor = LineEditor::new(INPUT_PROMPT);
    let mut data = Vec::new();
    let mut echo = Vec::new();
    print!("{INPUT_PROMPT}");
    loop {
        let byte = input::read_byte();
        if byte == 0x04 && editor.current().is_empty() {
            println!();
            return Ok(data);
        }
        echo.clear();
        let event = editor.feed(byte, &mut echo);
        out::write_raw(&echo);
        match event {
            Event::Pending => continue,
            Event::Line(line) if line == "." => return Ok(data),
            Event::Line(line) => {
                if data.len() + line.len() + 1 > CONSOLE_INPUT_MAX_BYTES {
                    return Err(CmdError::Failed(alloc::format!(
                        "standard input longer than {CONSOLE_INPUT_MAX_BYTES} bytes; nothing ran"
                    )));
                }
                data.extend_from_slice(line.as_bytes());
                data.push(b'\n');
            }
            Event::Cancelled => {
                return Err(CmdError::Failed("input cancelled; nothing ran".into()));
            }
            Event::Overflow => {
                return Err(CmdError::Failed("input line too long; nothing ran".into()));
            }
        }
        print!("{INPUT_PROMPT}");
    }
}

/// A command's WASI context from the console words left after the console's own flags.
fn command_setup(
    chunk: &str,
    args: &mut Args,
) -> Result<(atoll_wasi::WasiCtx, wasi::SharedCapture), CmdError> {
    let mut env = Vec::new();
    while let Some(kv) = args.flag_str("--env")? {
        if !atoll_wasi::env::valid_var(&kv) {
            return Err(CmdError::Failed(alloc::format!(
                "`--env {kv}`: not KEY=VALUE"
            )));
        }
        env.push(kv);
    }
    let words = args.rest();
    args.finish()?;
    let (words, stdin) = split_redirect(words)?;
    let program_args = (!words.is_empty()).then_some(words);
    let from_file = stdin.as_deref().filter(|s| *s != "-");
    let source = from_file.map_or(wasi::Stdin::Empty, wasi::Stdin::File);
    // The chunk is checked before anything is typed for it.
    let (mut ctx, capture) = wasi::command_context(chunk, program_args, &env, source)
        .map_err(|e| CmdError::Failed(alloc::format!("{e}")))?;
    if stdin.as_deref() == Some("-") {
        ctx.set_stdin_bytes(Arc::from(read_console_input()?));
    }
    Ok((ctx, capture))
}

/// FNV-1a 64 of `bytes`: `--json` reports it so a test can compare output byte for byte.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// How a command ended.
enum Ended {
    Exit(u32),
    Trap(TrapCode),
}

/// What `tasks` keeps of a command run.
pub struct Ran {
    /// The core it ran on.
    pub core: u32,
    /// Its chunk thread.
    pub thread: u64,
    /// TSC cycles in generated code.
    pub run_cycles: u64,
    /// `exit N`.
    pub outcome: String,
}

/// Runs command chunk `chunk` with the rest of `args`.
pub fn run_command(
    chunk: &str,
    args: &mut Args,
    json: bool,
    core: Option<usize>,
) -> Result<Ran, CmdError> {
    let (ctx, capture) = command_setup(chunk, args)?;
    let prepared = pae::prepare_command(chunk, ctx)?;
    let done = pae::run_on_thread(prepared, Vec::new(), core)
        .map_err(|e| CmdError::Failed(alloc::format!("chunk thread: {e}")))?;
    let ended = match (&done.result, done.wasi_exit) {
        (Ok(_), _) => Ended::Exit(0),
        (Err(InvokeError::Trap(TrapCode::HostError)), Some(code)) => Ended::Exit(code),
        (Err(InvokeError::Trap(t)), _) => Ended::Trap(*t),
        (Err(e), _) => return Err(CmdError::Failed(alloc::format!("{e}"))),
    };
    let out = core::mem::take(&mut *capture.lock());
    if json {
        let mut j = Json::new();
        j.begin_object();
        match ended {
            Ended::Exit(code) => j.u64("exit", u64::from(code)),
            Ended::Trap(t) => j.str("trap", t.message()),
        };
        j.u64("stdout_bytes", out.stdout.len() as u64)
            .str("stdout_fnv", &alloc::format!("{:016x}", fnv1a(&out.stdout)))
            .u64("stderr_bytes", out.stderr.len() as u64)
            .u64("dropped_bytes", out.dropped_bytes)
            .u64("cycles", done.run_cycles)
            .u64("core", u64::from(done.core))
            .u64("thread", done.thread)
            .str("random", wasi::random_source())
            .end_object();
        println!("{}", j.finish());
    } else {
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if out.stdout.last().is_some_and(|b| *b != b'\n') {
            println!();
        }
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            println!("stderr: {line}");
        }
        if out.dropped_bytes > 0 {
            println!("({} bytes of output dropped)", out.dropped_bytes);
        }
    }
    let outcome = match ended {
        Ended::Exit(code) => {
            if !json {
                println!("exit: {code}");
            }
            alloc::format!("exit {code}")
        }
        Ended::Trap(t) => {
            return Err(CmdError::Failed(alloc::format!("trap: {t}")));
        }
    };
    Ok(Ran {
        core: done.core,
        thread: done.thread,
        run_cycles: done.run_cycles,
        outcome,
    })
}

/// What `output` keeps of a background command run.
struct Output {
    id: u64,
    chunk: String,
    capture: wasi::SharedCapture,
    /// `exit N` or `trap: ...` once collected.
    outcome: Option<String>,
}

/// Background command runs, newest last (at most [`OUTPUT_HISTORY`]).
static OUTPUTS: Mutex<Vec<Output>> = Mutex::new(Vec::new());
/// How many background command runs `output` remembers.
const OUTPUT_HISTORY: usize = 16;

/// Starts command chunk `chunk` in the background as task `id`: standard input (a file, or
/// lines typed now with `< -`) is settled before it starts; its output is captured for
/// `output ID`.
pub fn start_background(
    id: u64,
    chunk: &str,
    args: &mut Args,
    core: Option<usize>,
) -> Result<pae::Started, CmdError> {
    let (ctx, capture) = command_setup(chunk, args)?;
    let prepared = pae::prepare_command(chunk, ctx)?;
    let started = pae::start_on_thread(prepared, Vec::new(), core)
        .map_err(|e| CmdError::Failed(alloc::format!("chunk thread: {e}")))?;
    let mut outputs = OUTPUTS.lock();
    if outputs.len() == OUTPUT_HISTORY {
        outputs.remove(0);
    }
    outputs.push(Output {
        id,
        chunk: chunk.into(),
        capture,
        outcome: None,
    });
    Ok(started)
}

/// How a collected background command ended: `exit N` (returned from `_start`, or
/// `proc_exit`) or `None` for a trap.
pub fn command_outcome(done: &pae::TaskOutcome) -> Option<String> {
    match (&done.result, done.wasi_exit) {
        (Ok(_), _) => Some("exit 0".into()),
        (Err(InvokeError::Trap(TrapCode::HostError)), Some(code)) => {
            Some(alloc::format!("exit {code}"))
        }
        _ => None,
    }
}

/// Records how background command `id` ended (from `tasks`' collection).
pub fn finished(id: u64, outcome: &str) {
    if let Some(o) = OUTPUTS.lock().iter_mut().find(|o| o.id == id) {
        o.outcome = Some(outcome.into());
    }
}

/// `output ID [--json]`: what background command `ID` wrote so far, and how it ended.
pub fn output(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let id = args.required("task id")?;
    args.finish()?;
    let id = atoll_kcore::args::parse_u64(&id, "task id")?;
    super::cmd_pae::collect_background();
    let (chunk, capture, outcome) = {
        let outputs = OUTPUTS.lock();
        let o = outputs.iter().find(|o| o.id == id).ok_or_else(|| {
            CmdError::Failed(alloc::format!(
                "no background command run with id {id} (the last {OUTPUT_HISTORY} are kept)"
            ))
        })?;
        (o.chunk.clone(), o.capture.clone(), o.outcome.clone())
    };
    let c = capture.lock();
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("task_id", id)
            .str("task", &chunk)
            .str("state", outcome.as_deref().unwrap_or("running"))
            .u64("stdout_bytes", c.stdout.len() as u64)
            .str("stdout_fnv", &alloc::format!("{:016x}", fnv1a(&c.stdout)))
            .u64("stderr_bytes", c.stderr.len() as u64)
            .u64("dropped_bytes", c.dropped_bytes)
            .end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    print!("{}", String::from_utf8_lossy(&c.stdout));
    if c.stdout.last().is_some_and(|b| *b != b'\n') {
        println!();
    }
    for line in String::from_utf8_lossy(&c.stderr).lines() {
        println!("stderr: {line}");
    }
    match outcome {
        Some(o) => println!("{}", o.replacen("exit ", "exit: ", 1)),
        None => println!("(task {id} is still running)"),
    }
    Ok(())
}
