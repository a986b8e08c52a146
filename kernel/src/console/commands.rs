//! The command table, dispatch, `help`, and the console's error type.

use alloc::string::String;
use core::fmt;

use atoll_kcore::args::{ArgError, Args, split_words};

use super::{
    cmd_autoreloc, cmd_debug, cmd_group, cmd_guard, cmd_hwinfo, cmd_island, cmd_lazy, cmd_numa,
    cmd_pae, cmd_predict, cmd_smp, cmd_snap, cmd_system, cmd_wasi,
};
use crate::arch::power::PowerError;
use crate::mem::vm::VmError;
use crate::println;

/// Why a command failed; printed as `error: ...`.
#[derive(Debug)]
pub enum CmdError {
    /// No such command.
    Unknown(String),
    /// Bad arguments.
    Args(ArgError),
    /// A virtual-memory operation failed.
    Vm(VmError),
    /// Power control failed.
    Power(PowerError),
    /// The facility is not available on this machine.
    Unavailable(&'static str),
    /// A self-test found failures.
    Failed(String),
    /// A thread operation failed.
    Thread(crate::sched::ThreadError),
    /// A remote call failed.
    Ipi(crate::smp::ipi::IpiError),
}

impl From<crate::sched::ThreadError> for CmdError {
    fn from(e: crate::sched::ThreadError) -> Self {
        CmdError::Thread(e)
    }
}

impl From<crate::smp::ipi::IpiError> for CmdError {
    fn from(e: crate::smp::ipi::IpiError) -> Self {
        CmdError::Ipi(e)
    }
}

impl From<ArgError> for CmdError {
    fn from(e: ArgError) -> Self {
        CmdError::Args(e)
    }
}

impl From<VmError> for CmdError {
    fn from(e: VmError) -> Self {
        CmdError::Vm(e)
    }
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdError::Unknown(c) => write!(f, "unknown command `{c}` (try `help`)"),
            CmdError::Args(e) => write!(f, "{e}"),
            CmdError::Vm(e) => write!(f, "{e}"),
            CmdError::Power(e) => write!(f, "{e}"),
            CmdError::Unavailable(what) => write!(f, "{what} is not available"),
            CmdError::Failed(what) => write!(f, "{what}"),
            CmdError::Thread(e) => write!(f, "{e}"),
            CmdError::Ipi(e) => write!(f, "{e}"),
        }
    }
}

/// What a command returns.
pub type CmdResult = Result<(), CmdError>;

/// One console command.
#[derive(Debug)]
pub struct Command {
    /// The word that runs it.
    pub name: &'static str,
    /// Its arguments, for `help`.
    pub usage: &'static str,
    /// One line on what it does.
    pub help: &'static str,
    /// The code.
    pub run: fn(&mut Args) -> CmdResult,
}

/// Every command, in `help` order.
pub static COMMANDS: &[Command] = &[
    Command {
        name: "help",
        usage: "",
        help: "list every command",
        run: help,
    },
    Command {
        name: "mem",
        usage: "[--json]",
        help: "physical frames free/used and heap use",
        run: cmd_system::mem,
    },
    Command {
        name: "numa",
        usage: "[--probe-alloc] [--json]",
        help: "NUMA nodes (SRAT): memory ranges, cores, free frames, SLIT distances; `--probe-alloc` takes and frees a frame on each node",
        run: cmd_numa::numa,
    },
    Command {
        name: "cpus",
        usage: "[--json]",
        help: "processors: online cores, APIC ids, current thread, load",
        run: cmd_system::cpus,
    },
    Command {
        name: "threads",
        usage: "[selftest | churn [--rounds N]] [--json]",
        help: "threads: id, core, state, CPU time, counter; `selftest` sleeps, wakes, joins; `churn` spawns and reaps on every core",
        run: cmd_smp::threads,
    },
    Command {
        name: "spawn",
        usage: "counter|locker|initiator [--core N] [--json]",
        help: "start a test thread: counts (locker: under a shared lock; initiator: SMI rounds)",
        run: cmd_smp::spawn,
    },
    Command {
        name: "kill",
        usage: "<id>",
        help: "end a thread",
        run: cmd_smp::kill,
    },
    Command {
        name: "suspend",
        usage: "<id>",
        help: "stop a thread (its context stays in its trap frame)",
        run: cmd_smp::suspend,
    },
    Command {
        name: "resume",
        usage: "<id>",
        help: "let a suspended thread run again",
        run: cmd_smp::resume,
    },
    Command {
        name: "regs",
        usage: "<id> [--json]",
        help: "a suspended thread's saved registers (its trap frame)",
        run: cmd_smp::regs,
    },
    Command {
        name: "migrate",
        usage: "<id> <core>",
        help: "move a thread to another core",
        run: cmd_smp::migrate,
    },
    Command {
        name: "smi",
        usage: "[--count N] [--timeout-ms T] [--flush] [--stray] [--hold-us U] [--json] | mark ID",
        help: "stop the world N times (NMI rendezvous), check parked threads stay still; `mark` rewrites a counter's RIP",
        run: cmd_smp::smi,
    },
    Command {
        name: "ipi-bench",
        usage: "[--count N] [--json]",
        help: "IPI remote-call round trip and TLB shootdown cost",
        run: cmd_smp::ipi_bench,
    },
    Command {
        name: "acpi",
        usage: "[--json]",
        help: "ACPI tables, I/O APICs, interrupt overrides, power facts",
        run: cmd_system::acpi,
    },
    Command {
        name: "hwinfo",
        usage: "[--json]",
        help: "hardware report for bug reports: CPU (vendor, family/model/stepping, features atoll uses), memory map, ACPI tables, cores, NUMA nodes, consoles",
        run: cmd_hwinfo::hwinfo,
    },
    Command {
        name: "uptime",
        usage: "[--json]",
        help: "time since kernel entry, TSC frequency",
        run: cmd_system::uptime,
    },
    Command {
        name: "boot",
        usage: "[--json]",
        help: "boot-time figures: cycles (and guest instructions) to the prompt",
        run: cmd_system::boot,
    },
    Command {
        name: "log",
        usage: "[off|error|warn|info|debug|trace]",
        help: "show or set the log level",
        run: cmd_system::log_level,
    },
    Command {
        name: "chunks",
        usage: "[--json]",
        help: "the chunk image the bootloader loaded (ramdisk)",
        run: cmd_system::chunks,
    },
    Command {
        name: "run",
        usage: "CHUNK.EXPORT [ARGS...] [--core N] [--background] [--snapshots on|off [--client NAME]] [--json] | CHUNK [ARGS...] [< FILE | < -] [--env K=V]... [--core N] [--background] [--json]",
        help: "assemble what is missing, run an export on a chunk thread; prints results or the trap (`--background`: prints the task id at once; `tasks` shows the outcome; `--snapshots on|off`: restore the predicted path from snapshots, or re-run it, see `snap`); `run CHUNK` runs a WASI command (default arguments and environment from the image, `< FILE` from its files, `< -` from lines typed until a lone `.` or Ctrl-D) and prints its output and exit code (`--background`: `output ID` shows them)",
        run: cmd_pae::run,
    },
    Command {
        name: "profile",
        usage: "[--json] | export",
        help: "task profiler: runs, cycles per call against the manifest's estimate, transitions, hottest blocks; `export` prints a record for `chunkc profile merge`",
        run: cmd_predict::profile,
    },
    Command {
        name: "predict",
        usage: "[--json] | on | off | order K | thresholds HIGH LOW | specialize on|off",
        help: "next-task prediction (order-k Markov, back-off) with confidence and the action each candidate gets; accuracy; the pre-assembly worker; `specialize on` assembles chunks with exports' constant arguments folded in behind a guard",
        run: cmd_predict::predict,
    },
    Command {
        name: "cache",
        usage: "[--json] | policy lru|lfu | limit BYTES | clear",
        help: "the chunk cache: bytes used of the bound, hits, misses, evictions, per-chunk residency and pins",
        run: cmd_predict::cache_cmd,
    },
    Command {
        name: "replay",
        usage: "TRACE [--predict on|off|both] [--limit BYTES] [--policy lru|lfu] [--results] [--json] | TRACE --snapshots on|off|both [--json]",
        help: "run a workload trace with prediction off and on from the same cold start (empty cache, seeded model): start latency, top-1/top-3 accuracy, cache hit rate; `--limit`/`--policy` hold for the replay only; `--snapshots`: the trace's requests with their paths re-run and restored from snapshots, side by side (see `snap`)",
        run: cmd_predict::replay_cmd,
    },
    Command {
        name: "trace",
        usage: "add NAME STEP [; STEP ...]",
        help: "add a workload trace from the console (STEP: CHUNK.EXPORT [ARGS...] [think=US]; N*[ ... ] repeats)",
        run: cmd_predict::trace,
    },
    Command {
        name: "traces",
        usage: "[--json]",
        help: "workload traces: shipped in the image and added from the console",
        run: cmd_predict::traces,
    },
    Command {
        name: "output",
        usage: "ID [--json]",
        help: "what background command run ID (`run CHUNK ... --background`) wrote so far, and its exit code once it ended",
        run: cmd_wasi::output,
    },
    Command {
        name: "tasks",
        usage: "[--json]",
        help: "tasks run so far: core, cycles, outcome",
        run: cmd_pae::tasks,
    },
    Command {
        name: "asm",
        usage: "CHUNK.FUNC",
        help: "generated x86-64 code of a function, with wasm offsets",
        run: cmd_pae::asm,
    },
    Command {
        name: "pae",
        usage: "[CHUNK] [--json]",
        help: "assembly engine: chunks assembled, code bytes, assembly time (per function with CHUNK)",
        run: cmd_pae::pae_stats,
    },
    Command {
        name: "lazy",
        usage: "[on | off | startup CHUNK.EXPORT [--rounds N]] [--json]",
        help: "assembly from the request: `on` makes tasks assemble only what their export reaches (the rest at its first call); shows per chunk what was assembled up front and lazily; `startup` measures task-start latency with whole-module assembly and from the request in one run",
        run: cmd_lazy::lazy,
    },
    Command {
        name: "guard",
        usage: "[on | off | bench CHUNK.EXPORT [ARGS...] [--rounds N]] [--json]",
        help: "guard pages: `on` sandboxes linear memory through the page tables (no bounds checks in the code; an access past the end faults into the out-of-bounds trap), `off` uses explicit checks; shows traps taken through page faults and the bounds checks in each chunk's code; `bench` runs a task both ways in one run",
        run: cmd_guard::guard,
    },
    Command {
        name: "groups",
        usage: "[reset CHUNK] [--json]",
        help: "linked groups: chunks sharing memories, tables or globals keep one instance each from task to task (tasks of a group run one at a time); `reset` drops a group's instances",
        run: cmd_group::groups,
    },
    Command {
        name: "snap",
        usage: "list | take SEGMENT [ARGS...] [--on ID] [--client NAME] [--core N] [--background] | drop ID | stats | refresh [--take PERMILLE] [--drop PERMILLE] [--budget BYTES] | auto on|off [--every N] [--take P] [--drop P] [--budget B] | bench CHUNK.EXPORT [ARGS...] [--rounds N] | verify CHUNK.EXPORT [--json]",
        help: "predictive snapshots (docs/snapshots.md): keep the state a segment (an init export) produced, restore it copy-on-write instead of re-running it; `bench` measures restore against re-running the path; `verify` compares a restored instance with one that ran the path, byte for byte",
        run: cmd_snap::snap,
    },
    Command {
        name: "islands",
        usage: "[CHUNK] [--json] | merge INTO OTHER [--json] | split ID AT [small|large|core N] [--json]",
        help: "code islands (one per assembled function, or merged): address, size, page size, core, calls, sampled cycles, moves; `merge`: two islands of one module into one contiguous island in INTO's place, `split`: functions AT.. become a new island at the target, both while they run",
        run: cmd_island::islands,
    },
    Command {
        name: "relocate",
        usage: "<island-id> small | large | core <n> | node <n> [--json] | --probe-old <island-id>",
        help: "move a running island with the world stopped: to fresh 4 KiB pages, into a shared 2 MiB page, to core n (its threads follow) or to node n's memory; prints what was rewritten and the pause (`--probe-old`: jump into its old copy, which must fault naming it)",
        run: cmd_island::relocate,
    },
    Command {
        name: "reloc-stress",
        usage: "<chunk.export> [ARGS...] [--count N] [--cores 1,2,3] [--islands CHUNK] [--json]",
        help: "run the task on each core, again and again, while N moves of its islands (or CHUNK's) alternate between 4 KiB/2 MiB pages and cores; prints moves, rewrites and every run's result",
        run: cmd_island::reloc_stress,
    },
    Command {
        name: "autoreloc",
        usage: "on | off | status [--json]",
        help: "the predictive relocation engine: let it move islands by itself (on), stop it (off), or show its windows, moves, measurements, budget and model error (status)",
        run: cmd_autoreloc::autoreloc,
    },
    Command {
        name: "model",
        usage: "[--json]",
        help: "the relocation engine's online model: features and weights, prediction error overall, recent and per window, recent predictions with measured outcomes",
        run: cmd_autoreloc::model,
    },
    Command {
        name: "engine-log",
        usage: "[--last N] [--json]",
        help: "the relocation engine's decisions: island, from, to, predicted and measured benefit, reason",
        run: cmd_autoreloc::engine_log,
    },
    Command {
        name: "phased",
        usage: "[--rounds N] [--per-phase N] [--inflight N] [--engine on|off | --compare] [--json]",
        help: "phased workload (parse+checksum, checksum+compress, compress+parse, each placed on one core): tasks/s of guest time, median latency, results, moves ahead of their phase; --compare runs engine off then on",
        run: cmd_autoreloc::phased,
    },
    Command {
        name: "reloc-stats",
        usage: "[--json]",
        help: "relocations: count, failures, retries, rewrites, pause distribution, bytes moved",
        run: cmd_island::reloc_stats,
    },
    Command {
        name: "vm",
        usage: "[selftest | translate ADDR] [--json]",
        help: "kernel virtual memory; `selftest` maps, protects and probes real pages; `translate` shows how an address is mapped",
        run: cmd_debug::vm,
    },
    Command {
        name: "fault",
        usage: "pagefault|heap-locked|gp|ud|divide|breakpoint|panic",
        help: "trigger a deliberate fault (debugging the fault reports)",
        run: cmd_debug::fault,
    },
    Command {
        name: "poweroff",
        usage: "",
        help: "power the machine off (ACPI S5)",
        run: cmd_system::poweroff,
    },
    Command {
        name: "reboot",
        usage: "",
        help: "reset the machine",
        run: cmd_system::reboot,
    },
];

fn help(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    if json {
        let mut j = atoll_kcore::json::Json::new();
        j.begin_object().array("commands");
        for c in COMMANDS {
            j.begin_object()
                .str("name", c.name)
                .str("usage", c.usage)
                .str("help", c.help)
                .end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    for c in COMMANDS {
        let head = if c.usage.is_empty() {
            String::from(c.name)
        } else {
            alloc::format!("{} {}", c.name, c.usage)
        };
        println!("  {head:<44} {}", c.help);
    }
    Ok(())
}

/// Runs one command line, printing its output or `error: ...`.
pub fn execute(line: &str) {
    if let Err(e) = try_execute(line) {
        println!("error: {e}");
    }
}

fn try_execute(line: &str) -> CmdResult {
    let mut words = split_words(line)?;
    if words.is_empty() {
        return Ok(());
    }
    let name = words.remove(0);
    let command = COMMANDS
        .iter()
        .find(|c| c.name == name)
        .ok_or(CmdError::Unknown(name))?;
    let mut args = Args::new(words);
    (command.run)(&mut args)
}
