//! `groups`: linked groups of chunks that share memories, tables or globals (one instance per
//! member, kept from task to task): members, instances, tasks, waits; `groups reset CHUNK`
//! drops a group's instances so its next task starts from fresh state.

use atoll_kcore::args::{ArgError, Args};
use atoll_kcore::json::Json;

use super::commands::{CmdError, CmdResult};
use crate::pae::group;
use crate::println;

pub fn groups(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    match args.positional().as_deref() {
        Some("reset") => {
            let chunk = args.required("CHUNK (a member of the group)")?;
            args.finish()?;
            let (name, dropped) = group::reset(&chunk)?;
            if json {
                let mut j = Json::new();
                j.begin_object()
                    .str("group", &name)
                    .u64("dropped_instances", dropped as u64)
                    .end_object();
                println!("{}", j.finish());
            } else {
                println!("group {name}: {dropped} instance(s) dropped");
            }
            Ok(())
        }
        Some(other) => Err(CmdError::Args(ArgError::Invalid {
            what: "groups subcommand (reset)",
            value: other.into(),
        })),
        None => {
            args.finish()?;
            show(json)
        }
    }
}

fn show(json: bool) -> CmdResult {
    let list = group::list()?;
    if json {
        let mut j = Json::new();
        j.begin_object().array("groups");
        for g in &list {
            j.begin_object().str("name", &g.name).array("members");
            for m in &g.members {
                j.str_value(m);
            }
            j.end_array().array("instances");
            for (name, bytes) in &g.memory_bytes {
                j.begin_object()
                    .str("chunk", name)
                    .u64("memory_bytes", *bytes)
                    .end_object();
            }
            j.end_array()
                .u64("tasks", g.tasks)
                .u64("waits", g.waits)
                .u64("resets", g.resets)
                .bool("busy", g.busy)
                .end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
        return Ok(());
    }
    if list.is_empty() {
        println!("no chunks share memories, tables or globals in this image");
        return Ok(());
    }
    for g in &list {
        let state = if g.busy {
            alloc::string::String::from("busy")
        } else {
            alloc::format!("{} instantiated", g.instantiated.len())
        };
        println!(
            "group {}: members {} ({state}); {} tasks, {} waits, {} resets",
            g.name,
            g.members.join(", "),
            g.tasks,
            g.waits,
            g.resets
        );
    }
    Ok(())
}
