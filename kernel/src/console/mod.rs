//! The console (serial line, screen and keyboard): a line editor with history feeding a command table.
//!
//! The prompt is `atoll> ` at the start of a line, printed when the kernel is ready and after
//! every command's output. A failed command prints one line starting `error: ` and the shell
//! goes on.

mod cmd_autoreloc;
mod cmd_debug;
mod cmd_group;
mod cmd_guard;
mod cmd_hwinfo;
mod cmd_island;
mod cmd_lazy;
mod cmd_numa;
mod cmd_pae;
mod cmd_predict;
mod cmd_regroup;
mod cmd_smp;
mod cmd_snap;
mod cmd_snap_run;
mod cmd_system;
mod cmd_wasi;
pub mod commands;
pub mod input;
pub mod keyboard;
pub mod out;
pub mod screen;

use alloc::vec::Vec;

use atoll_kcore::line_editor::{Event, LineEditor, MAX_LINE_BYTES};

use crate::println;

/// The prompt, as host tools expect it.
pub const PROMPT: &str = "atoll> ";

/// Runs the shell forever.
pub fn run_shell() -> ! {
    let mut editor = LineEditor::new(PROMPT);
    let mut echo = Vec::with_capacity(64);
    crate::print!("{PROMPT}");
    loop {
        let byte = input::read_byte();
        echo.clear();
        let event = editor.feed(byte, &mut echo);
        out::write_raw(&echo);
        match event {
            Event::Pending => continue,
            Event::Line(line) => commands::execute(&line),
            Event::Cancelled => {}
            Event::Overflow => println!("error: line longer than {MAX_LINE_BYTES} bytes, ignored"),
        }
        crate::print!("{PROMPT}");
    }
}
