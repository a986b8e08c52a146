//! `run CHUNK [ARGS...] [< FILE] [--core N] [--json]`: runs a command chunk (a WASI program's
//! `_start`) on a chunk thread and shows what it wrote and how it ended. Without ARGS the
//! image's default arguments apply; `< FILE` reads standard input from one of the program's
//! files. Console flags (`--json`, `--core N`) are taken first; every other word is the
//! program's.

use alloc::string::String;
use alloc::vec::Vec;

use atoll_kcore::args::{Args, split_redirect};
use atoll_kcore::json::Json;
use atoll_pae::TrapCode;
use atoll_pae::runtime::InvokeError;

use super::commands::CmdError;
use crate::{pae, print, println, wasi};

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
    let words = args.rest();
    args.finish()?;
    let (words, stdin) = split_redirect(words)?;
    let program_args = (!words.is_empty()).then_some(words);
    let (ctx, capture) = wasi::command_context(chunk, program_args, stdin.as_deref())
        .map_err(|e| CmdError::Failed(alloc::format!("{e}")))?;
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
