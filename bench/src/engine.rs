//! What the benchmark needs from an engine: compile a module, and instantiate the chunks of an
//! image linked to each other and to the `atoll` kernel imports, then call exports.

use chunk_image::{Image, Value};

use crate::wasi_setup::{Ran, Setup};

/// A prepared call: runs one export with fixed arguments and returns its raw result bits
/// (i32/f32 zero-extended to 64 bits).
pub type Call<'a> = Box<dyn FnMut() -> Result<Vec<u64>, String> + 'a>;

/// One engine under test.
pub trait Engine {
    /// Column name in the tables.
    fn name(&self) -> &'static str;
    /// Validates and compiles `wasm` to something runnable (for the JITs: executable machine
    /// code), then drops it.
    fn compile(&self, wasm: &[u8]) -> Result<(), String>;
    /// Instantiates `chunks` (providers first) from `image`, linked.
    fn load(&self, image: &Image<'_>, chunks: &[&str]) -> Result<Box<dyn World>, String>;
    /// Compiles the WASI command module `wasm` once, linked to atoll-wasi's preview1 subset.
    fn command(&self, wasm: &[u8]) -> Result<Box<dyn Command>, String>;
}

/// A compiled WASI command module.
pub trait Command {
    /// Instantiates it afresh with `setup` and runs `_start` to its end.
    fn run(&mut self, setup: &Setup) -> Result<Ran, String>;
}

/// Linked instances of some chunks.
pub trait World {
    /// Looks up `chunk.export` once and returns a closure that calls it with `args`.
    fn prepare<'a>(
        &'a mut self,
        chunk: &str,
        export: &str,
        args: &[Value],
    ) -> Result<Call<'a>, String>;
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` has no preconditions on x86-64.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

/// Entries of the function section of `wasm` (its defined, not imported, functions), whatever
/// any engine thinks of the module; 0 if it does not parse.
pub fn defined_functions(wasm: &[u8]) -> usize {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload {
            Ok(wasmparser::Payload::FunctionSection(s)) => return s.count() as usize,
            Ok(_) => {}
            Err(_) => return 0,
        }
    }
    0
}

/// `chunks` plus everything they import from, providers before importers.
pub fn with_providers<'i>(image: &'i Image<'_>, chunks: &[&str]) -> Vec<&'i str> {
    fn visit<'i>(image: &'i Image<'_>, name: &str, order: &mut Vec<&'i str>) {
        let Some(chunk) = image.chunk(name) else {
            return;
        };
        if order.contains(&chunk.name) {
            return;
        }
        // The image reader rejects dependency cycles, so this recursion ends.
        for dep in chunk.manifest.chunk_dependencies() {
            visit(image, dep, order);
        }
        order.push(chunk.name);
    }
    let mut order = Vec::new();
    for name in chunks {
        visit(image, name, &mut order);
    }
    order
}
