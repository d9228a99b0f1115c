//! A tiny Java `DataOutput` builder for tests.

use super::strings::write_fstr;

/// Big-endian bytes, as `DataOutputStream` writes them.
#[derive(Debug, Default, Clone)]
pub struct Out(pub Vec<u8>);

impl Out {
    pub fn new() -> Self {
        Out(Vec::new())
    }
    pub fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    pub fn bool(self, v: bool) -> Self {
        self.u8(u8::from(v))
    }
    pub fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i64(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn f32(mut self, v: f32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn f64(mut self, v: f64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    /// Java `writeUTF`.
    pub fn utf(mut self, s: &str) -> Self {
        let b = crate::bytes::encode_modified_utf8(s);
        self.0.extend_from_slice(&(b.len() as u16).to_be_bytes());
        self.0.extend_from_slice(&b);
        self
    }
    /// `StringValue.writeString`.
    pub fn fstr(mut self, s: Option<&str>) -> Self {
        write_fstr(s, &mut self.0);
        self
    }
    /// An `i32`-length frame around another builder's bytes.
    pub fn framed(self, inner: Out) -> Self {
        self.i32(inner.0.len() as i32).raw(&inner.0)
    }
    /// A versioned-form snapshot header: `utf` class, `i32` version.
    pub fn snap(self, class: &str, version: i32) -> Self {
        self.utf(class).i32(version)
    }
    /// Composite snapshot framing up to the nested count.
    pub fn composite(self, class: &str, outer_version: i32, outer: Out, nested: usize) -> Self {
        self.snap(class, 3).i32(911_108).i32(outer_version).raw(&outer.0).i32(1_333_245).i32(1).i32(nested as i32)
    }
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Hex to bytes (whitespace ignored).
pub fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}
