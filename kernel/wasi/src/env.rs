//! Program environments: a chunk's defaults (from its image) with `--env KEY=VALUE` settings
//! on top, as one `KEY=VALUE` list in a stable order.

use alloc::string::String;
use alloc::vec::Vec;

/// Whether `kv` is `KEY=VALUE` with a non-empty key free of `=` and NUL (the value may be
/// empty but holds no NUL: `environ_get` hands out NUL-terminated strings).
pub fn valid_var(kv: &str) -> bool {
    kv.split_once('=')
        .is_some_and(|(k, _)| !k.is_empty() && !kv.contains('\0'))
}

/// `defaults` with each of `overrides` applied in order: a key already present keeps its
/// place and takes the new value, a new key is appended. Fails on the first entry that is not
/// `KEY=VALUE`.
pub fn merge<'a>(
    defaults: impl IntoIterator<Item = &'a str>,
    overrides: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for kv in defaults.into_iter().chain(overrides) {
        if !valid_var(kv) {
            return Err(alloc::format!("`{kv}` is not KEY=VALUE"));
        }
        let key = kv.split('=').next().unwrap_or_default();
        match out.iter_mut().find(|e| e.split('=').next() == Some(key)) {
            Some(slot) => *slot = kv.into(),
            None => out.push(kv.into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_in_place_and_new_keys_append() {
        let got = merge(["A=1", "B=2"], ["B=3", "C=", "A=x=y"]).unwrap();
        assert_eq!(got, ["A=x=y", "B=3", "C="]);
        assert!(merge(["A=1"], ["=v"]).is_err());
        assert!(merge(["NOEQUALS"], []).is_err());
        assert!(merge([], ["A=\0"]).is_err());
        assert_eq!(merge([], []).unwrap(), Vec::<String>::new());
    }
}
