//! Which spec-script modules `chunkc wast` may skip: only modules that need a proposal from
//! [`SKIPPABLE`], an explicit list keyed on wasmparser's feature flags.
//!
//! When the code generator refuses a module (`CompileError::Invalid` or `Unsupported`), the
//! module is validated again with wasmparser: if it is valid with atoll's feature set plus the
//! listed proposals, and not with atoll's feature set alone, it is skipped and the proposals it
//! needs are named. Anything else is a failure: a module valid with atoll's own features (the
//! generator should have compiled it), a module that is invalid whatever the features, or one
//! that needs a proposal that is not on the list. The generator's error message is shown but
//! never decides, so a generator that fails with a proposal's message on a module that does not
//! use the proposal is still caught.
//!
//! The list holds only proposals that came after WebAssembly 2.0 and that `../shared/wasm-spec/`
//! or `../shared/wasm-spec-2.0/` need; a new spec file that needs another proposal fails until
//! the proposal is added here on purpose.

use chunk_image::SUPPORTED_FEATURES;
use wasmparser::{Validator, WasmFeatures};

/// A WebAssembly proposal whose modules `chunkc wast` may skip.
#[derive(Debug, Clone, Copy)]
pub struct Proposal {
    /// Its name in skip reasons.
    pub name: &'static str,
    /// The wasmparser feature that enables it.
    pub feature: WasmFeatures,
}

/// The post-2.0 proposals atoll's code generator does not support and whose modules may be
/// skipped.
pub const SKIPPABLE: [Proposal; 8] = [
    Proposal {
        name: "multi-memory",
        feature: WasmFeatures::MULTI_MEMORY,
    },
    // `i32.add` and friends in constant expressions (global.wast).
    Proposal {
        name: "extended constant expressions",
        feature: WasmFeatures::EXTENDED_CONST,
    },
    // `(ref.null $t)`, `(ref $t)` (br_table.wast).
    Proposal {
        name: "typed function references",
        feature: WasmFeatures::FUNCTION_REFERENCES,
    },
    // `global.get` of a module-defined global in a constant expression, which wasmparser
    // allows only with GC (global.wast).
    Proposal {
        name: "GC",
        feature: WasmFeatures::GC,
    },
    // `exnref`, `tag` (imports.wast, ref_null.wast).
    Proposal {
        name: "exception handling",
        feature: WasmFeatures::EXCEPTIONS,
    },
    Proposal {
        name: "memory64",
        feature: WasmFeatures::MEMORY64,
    },
    Proposal {
        name: "tail calls",
        feature: WasmFeatures::TAIL_CALL,
    },
    // `i8x16.relaxed_swizzle` and the other relaxed SIMD operators.
    Proposal {
        name: "relaxed SIMD",
        feature: WasmFeatures::RELAXED_SIMD,
    },
];

fn validates(bytes: &[u8], features: WasmFeatures) -> bool {
    Validator::new_with_features(features)
        .validate_all(bytes)
        .is_ok()
}

/// The listed proposals a module needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    /// Each of these.
    pub all_of: Vec<&'static str>,
    /// And one of these (empty when `all_of` is enough), e.g. typed references come with
    /// either the function-references or the GC proposal.
    pub one_of: Vec<&'static str>,
}

impl std::fmt::Display for Needs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self.all_of.iter().map(|n| (*n).to_string()).collect();
        if !self.one_of.is_empty() {
            parts.push(format!("one of ({})", self.one_of.join(", ")));
        }
        f.write_str(&parts.join(" + "))
    }
}

/// The listed proposals a module needs, when they are what keeps it from validating with
/// atoll's feature set; `None` when no listed proposal explains why it was refused.
pub fn needed_proposals(bytes: &[u8]) -> Option<Needs> {
    let with = |ps: &mut dyn Iterator<Item = &Proposal>| {
        ps.fold(SUPPORTED_FEATURES, |f, p| f.union(p.feature))
    };
    let all = with(&mut SKIPPABLE.iter());
    if validates(bytes, SUPPORTED_FEATURES) || !validates(bytes, all) {
        return None;
    }
    // Each proposal without which the module no longer validates...
    let (required, optional): (Vec<&Proposal>, Vec<&Proposal>) = SKIPPABLE
        .iter()
        .partition(|p| !validates(bytes, all.difference(p.feature)));
    let base = with(&mut required.iter().copied());
    // ...and, when those are not enough, the others that complete them.
    let one_of = if validates(bytes, base) {
        Vec::new()
    } else {
        optional
            .into_iter()
            .filter(|p| validates(bytes, base.union(p.feature)))
            .map(|p| p.name)
            .collect()
    };
    Some(Needs {
        all_of: required.into_iter().map(|p| p.name).collect(),
        one_of,
    })
}

/// The skip reason for a module the generator refused with `error`, or `Err` with the failure
/// message when the refusal is not allowed.
pub fn classify(bytes: &[u8], error: &str) -> Result<String, String> {
    match needed_proposals(bytes) {
        Some(needs) => Ok(format!("module skipped: needs {needs}: {error}")),
        None if validates(bytes, SUPPORTED_FEATURES) => Err(format!(
            "module refused: {error} (the module is valid with atoll's features, so it must compile)"
        )),
        None => Err(format!(
            "module refused: {error} (not a proposal that may be skipped: {})",
            SKIPPABLE.map(|p| p.name).join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(wat: &str) -> Option<String> {
        let bytes = wat::parse_str(wat).expect("test module encodes");
        needed_proposals(&bytes).map(|n| n.to_string())
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn listed_proposals_are_named() {
        assert_eq!(
            needs("(module (memory 1) (memory 1))"),
            some("multi-memory")
        );
        assert_eq!(needs("(module (memory i64 1))"), some("memory64"));
        assert_eq!(
            needs("(module (func (result exnref) (ref.null exn)))"),
            some("exception handling")
        );
        assert_eq!(
            needs("(module (global i32 (i32.const 0)) (global i32 (global.get 0)))"),
            some("GC")
        );
        assert_eq!(
            needs("(module (global i32 (i32.add (i32.const 1) (i32.const 2))))"),
            some("extended constant expressions")
        );
        assert_eq!(
            needs("(module (type $t (func)) (func (result (ref null $t)) (ref.null $t)))"),
            some("one of (typed function references, GC)")
        );
        assert_eq!(
            needs("(module (memory i64 1) (memory 1))"),
            some("multi-memory + memory64")
        );
    }

    #[test]
    fn anything_else_is_not_skippable() {
        // Valid with atoll's features: the generator must compile it (reference types and
        // several tables are WebAssembly 2.0, not a proposal that may be skipped).
        for wat in [
            "(module (table 1 funcref) (table 1 funcref))",
            "(module (func (param externref)))",
        ] {
            assert_eq!(needs(wat), None, "{wat}");
        }
        let supported = "(module (func (result i32) (i32.add (i32.const 1) (i32.const 2))))";
        assert_eq!(needs(supported), None);
        let bytes = wat::parse_str(supported).expect("encodes");
        let refused = classify(
            &bytes,
            "invalid module: reference types support is not enabled",
        );
        assert!(
            refused.as_ref().is_err_and(|m| m.contains("must compile")),
            "{refused:?}"
        );
        // Invalid whatever the features.
        assert_eq!(needs("(module (func (result i32) (i64.const 0)))"), None);
        // A proposal that is not on the list (threads).
        assert_eq!(needs("(module (memory 1 1 shared))"), None);
        let bytes = wat::parse_str("(module (memory 1 1 shared))").expect("encodes");
        assert!(classify(&bytes, "x").is_err_and(|m| m.contains("not a proposal")));
    }
}
