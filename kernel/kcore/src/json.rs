//! A small JSON writer for `--json` output: one object, on one line.

use alloc::string::String;
use core::fmt::Write;

/// Writes one JSON value into a string. Objects and arrays are opened and closed explicitly;
/// commas are placed automatically.
#[derive(Debug, Default)]
pub struct Json {
    out: String,
    /// Whether the next value in the current container needs a leading comma.
    need_comma: bool,
}

impl Json {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    fn sep(&mut self) {
        if self.need_comma {
            self.out.push(',');
        }
        self.need_comma = true;
    }

    fn key(&mut self, key: &str) {
        self.sep();
        push_str_lit(&mut self.out, key);
        self.out.push(':');
        self.need_comma = false;
    }

    /// Opens an object as a value (top level or array element).
    pub fn begin_object(&mut self) -> &mut Self {
        self.sep();
        self.out.push('{');
        self.need_comma = false;
        self
    }

    /// Opens an object under `key`.
    pub fn object(&mut self, key: &str) -> &mut Self {
        self.key(key);
        self.begin_object()
    }

    /// Closes the innermost object.
    pub fn end_object(&mut self) -> &mut Self {
        self.out.push('}');
        self.need_comma = true;
        self
    }

    /// Opens an array under `key`.
    pub fn array(&mut self, key: &str) -> &mut Self {
        self.key(key);
        self.sep();
        self.out.push('[');
        self.need_comma = false;
        self
    }

    /// Closes the innermost array.
    pub fn end_array(&mut self) -> &mut Self {
        self.out.push(']');
        self.need_comma = true;
        self
    }

    /// An unsigned integer field.
    pub fn u64(&mut self, key: &str, v: u64) -> &mut Self {
        self.key(key);
        self.u64_value(v)
    }

    /// An unsigned integer as an array element.
    pub fn u64_value(&mut self, v: u64) -> &mut Self {
        self.sep();
        let _ = write!(self.out, "{v}");
        self
    }

    /// A signed integer field.
    pub fn i64(&mut self, key: &str, v: i64) -> &mut Self {
        self.key(key);
        self.sep();
        let _ = write!(self.out, "{v}");
        self
    }

    /// A float field (non-finite values become `null`).
    pub fn f64(&mut self, key: &str, v: f64) -> &mut Self {
        self.key(key);
        self.sep();
        if v.is_finite() {
            let _ = write!(self.out, "{v}");
        } else {
            self.out.push_str("null");
        }
        self
    }

    /// A boolean field.
    pub fn bool(&mut self, key: &str, v: bool) -> &mut Self {
        self.key(key);
        self.sep();
        self.out.push_str(if v { "true" } else { "false" });
        self
    }

    /// A string field.
    pub fn str(&mut self, key: &str, v: &str) -> &mut Self {
        self.key(key);
        self.str_value(v)
    }

    /// A string as an array element.
    pub fn str_value(&mut self, v: &str) -> &mut Self {
        self.sep();
        push_str_lit(&mut self.out, v);
        self
    }

    /// A `null` field.
    pub fn null(&mut self, key: &str) -> &mut Self {
        self.key(key);
        self.sep();
        self.out.push_str("null");
        self
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Appends `s` as a JSON string literal.
pub fn push_str_lit(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_object() {
        let mut j = Json::new();
        j.begin_object().u64("online", 2).array("cpus");
        for id in 0..2 {
            j.begin_object()
                .u64("id", id)
                .bool("bsp", id == 0)
                .end_object();
        }
        j.end_array().str("name", "a\"b\n").end_object();
        assert_eq!(
            j.finish(),
            r#"{"online":2,"cpus":[{"id":0,"bsp":true},{"id":1,"bsp":false}],"name":"a\"b\n"}"#
        );
    }

    #[test]
    fn arrays_of_scalars() {
        let mut j = Json::new();
        j.begin_object()
            .array("t")
            .str_value("FACP")
            .str_value("APIC")
            .end_array()
            .array("n")
            .u64_value(1)
            .end_array()
            .f64("x", f64::NAN)
            .i64("y", -3)
            .null("z")
            .end_object();
        assert_eq!(
            j.finish(),
            r#"{"t":["FACP","APIC"],"n":[1],"x":null,"y":-3,"z":null}"#
        );
    }

    #[test]
    fn control_chars_escaped() {
        let mut s = String::new();
        push_str_lit(&mut s, "\u{1}");
        assert_eq!(s, "\"\\u0001\"");
    }
}
