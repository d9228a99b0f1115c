//! Avro schema resolution as `org.apache.avro.SchemaCompatibility.checkReaderWriterCompatibility`
//! decides it (the rule `AvroSerializerSnapshot` applies: the new schema reads data the old one
//! wrote): records match fields by name (or reader alias), a reader field missing from the
//! writer needs a default, numeric promotion int → long → float → double, string ↔ bytes, enums
//! need the writer's symbols (or a reader default), unions resolve branch by branch, fixed types
//! keep their size. Named types are resolved in each schema's own namespace.

use std::collections::HashMap;

use serde_json::Value as Json;

/// Named types of one schema by full name.
struct Names<'a>(HashMap<String, &'a Json>);

impl<'a> Names<'a> {
    fn of(schema: &'a Json) -> Names<'a> {
        let mut n = Names(HashMap::new());
        n.collect(schema, "", 0);
        n
    }

    fn collect(&mut self, s: &'a Json, ns: &str, depth: usize) {
        if depth > 128 {
            return;
        }
        match s {
            Json::Array(branches) => branches.iter().for_each(|b| self.collect(b, ns, depth + 1)),
            Json::Object(o) => {
                let mut ns = ns.to_owned();
                if let Some(name) = o.get("name").and_then(Json::as_str) {
                    let full = full_name(name, o.get("namespace").and_then(Json::as_str).unwrap_or(&ns));
                    ns = full.rsplit_once('.').map(|(a, _)| a.to_owned()).unwrap_or_default();
                    self.0.insert(full, s);
                }
                if let Some(fields) = o.get("fields").and_then(Json::as_array) {
                    for f in fields {
                        if let Some(t) = f.get("type") {
                            self.collect(t, &ns, depth + 1);
                        }
                    }
                }
                for k in ["items", "values"] {
                    if let Some(t) = o.get(k) {
                        self.collect(t, &ns, depth + 1);
                    }
                }
                if let Some(t) = o.get("type").filter(|t| !t.is_string()) {
                    self.collect(t, &ns, depth + 1);
                }
            }
            _ => {}
        }
    }

    /// The schema a reference names, or the schema itself.
    fn resolve(&self, s: &'a Json) -> &'a Json {
        match s {
            Json::String(n) if !is_primitive(n) => self.0.get(n.as_str()).copied().or_else(|| self.0.iter().find(|(k, _)| k.rsplit('.').next() == Some(n.as_str())).map(|(_, v)| *v)).unwrap_or(s),
            Json::Object(o) if o.get("type").and_then(Json::as_str).is_some_and(is_primitive) && !o.contains_key("fields") => o.get("type").unwrap_or(s),
            _ => s,
        }
    }
}

fn full_name(name: &str, ns: &str) -> String {
    if name.contains('.') || ns.is_empty() {
        name.to_owned()
    } else {
        format!("{ns}.{name}")
    }
}

fn is_primitive(n: &str) -> bool {
    matches!(n, "null" | "boolean" | "int" | "long" | "float" | "double" | "bytes" | "string")
}

/// The type name of a (resolved) schema: a primitive, `record`, `enum`, `array`, `map`,
/// `fixed`, or `union`.
fn kind(s: &Json) -> &str {
    match s {
        Json::String(n) => n,
        Json::Array(_) => "union",
        Json::Object(o) => o.get("type").and_then(Json::as_str).unwrap_or("?"),
        _ => "?",
    }
}

fn name(s: &Json) -> Option<&str> {
    s.get("name").and_then(Json::as_str).map(|n| n.rsplit('.').next().unwrap_or(n))
}

/// `Ok(())` when `reader` can read data written with `writer`; else why not.
pub fn reader_writer(reader: &Json, writer: &Json) -> Result<(), String> {
    let rn = Names::of(reader);
    let wn = Names::of(writer);
    let mut seen = Vec::new();
    check(&rn, &wn, reader, writer, "", &mut seen, 0)
}

fn check<'a>(rn: &Names<'a>, wn: &Names<'a>, reader: &'a Json, writer: &'a Json, at: &str, seen: &mut Vec<(String, String)>, depth: usize) -> Result<(), String> {
    if depth > 128 {
        return Err(format!("{at}: schema nests too deep"));
    }
    let r = rn.resolve(reader);
    let w = wn.resolve(writer);
    let (rk, wk) = (kind(r), kind(w));
    let here = |what: String| if at.is_empty() { what } else { format!("{at}: {what}") };
    // A writer union: every branch must be readable.
    if wk == "union" {
        for b in w.as_array().into_iter().flatten() {
            check(rn, wn, reader, b, at, seen, depth + 1)?;
        }
        return Ok(());
    }
    if rk == "union" {
        let ok = r.as_array().into_iter().flatten().any(|b| check(rn, wn, b, writer, at, &mut seen.clone(), depth + 1).is_ok());
        return if ok { Ok(()) } else { Err(here(format!("no branch of the reader union reads {wk}"))) };
    }
    let promoted = matches!(
        (wk, rk),
        ("int", "long" | "float" | "double") | ("long", "float" | "double") | ("float", "double") | ("string", "bytes") | ("bytes", "string")
    );
    if rk != wk && !promoted {
        return Err(here(format!("{wk} cannot be read as {rk}")));
    }
    match rk {
        "record" => {
            if name(r) != name(w) {
                return Err(here(format!("record {} read as record {}", name(w).unwrap_or("?"), name(r).unwrap_or("?"))));
            }
            let key = (name(r).unwrap_or("").to_owned(), name(w).unwrap_or("").to_owned());
            if seen.contains(&key) {
                return Ok(());
            }
            seen.push(key);
            let rf: &'a [Json] = r.get("fields").and_then(Json::as_array).map(Vec::as_slice).unwrap_or(&[]);
            let wf: &'a [Json] = w.get("fields").and_then(Json::as_array).map(Vec::as_slice).unwrap_or(&[]);
            for f in rf {
                let fname = f.get("name").and_then(Json::as_str).unwrap_or("");
                let aliases: Vec<&str> = f.get("aliases").and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str).collect();
                let matched = wf.iter().find(|g| g.get("name").and_then(Json::as_str).is_some_and(|n| n == fname || aliases.contains(&n)));
                let path = if at.is_empty() { fname.to_owned() } else { format!("{at}.{fname}") };
                match matched {
                    Some(g) => {
                        let (Some(rt), Some(wt)) = (f.get("type"), g.get("type")) else { continue };
                        check(rn, wn, rt, wt, &path, seen, depth + 1)?;
                    }
                    None if f.get("default").is_some() => {}
                    None => return Err(format!("{path}: field added without a default")),
                }
            }
            Ok(())
        }
        "enum" => {
            let syms = |s: &Json| s.get("symbols").and_then(Json::as_array).map(|a| a.iter().filter_map(Json::as_str).map(str::to_owned).collect::<Vec<_>>()).unwrap_or_default();
            let (rs, ws) = (syms(r), syms(w));
            if name(r) != name(w) {
                return Err(here(format!("enum {} read as enum {}", name(w).unwrap_or("?"), name(r).unwrap_or("?"))));
            }
            match ws.iter().find(|s| !rs.contains(s)) {
                Some(missing) if r.get("default").is_none() => Err(here(format!("enum symbol {missing} missing from the reader"))),
                _ => Ok(()),
            }
        }
        "fixed" => {
            if r.get("size") != w.get("size") || name(r) != name(w) {
                Err(here("fixed type name or size changed".into()))
            } else {
                Ok(())
            }
        }
        "array" => match (r.get("items"), w.get("items")) {
            (Some(a), Some(b)) => check(rn, wn, a, b, &format!("{at}[]"), seen, depth + 1),
            _ => Ok(()),
        },
        "map" => match (r.get("values"), w.get("values")) {
            (Some(a), Some(b)) => check(rn, wn, a, b, &format!("{at}{{}}"), seen, depth + 1),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(fields: Json) -> Json {
        json!({"type": "record", "name": "User", "namespace": "com.example", "fields": fields})
    }

    #[test]
    fn field_added_needs_a_default() {
        let v1 = rec(json!([{"name": "id", "type": "long"}]));
        let with_default = rec(json!([{"name": "id", "type": "long"}, {"name": "email", "type": ["null", "string"], "default": null}]));
        let without = rec(json!([{"name": "id", "type": "long"}, {"name": "email", "type": "string"}]));
        assert_eq!(reader_writer(&v1, &v1), Ok(()));
        assert_eq!(reader_writer(&with_default, &v1), Ok(()));
        assert!(reader_writer(&without, &v1).unwrap_err().contains("email"));
        // A field removed: the reader ignores it.
        assert_eq!(reader_writer(&v1, &with_default), Ok(()));
    }

    #[test]
    fn promotions_and_narrowing() {
        let int = rec(json!([{"name": "n", "type": "int"}]));
        let long = rec(json!([{"name": "n", "type": "long"}]));
        assert_eq!(reader_writer(&long, &int), Ok(()));
        assert!(reader_writer(&int, &long).is_err());
    }

    #[test]
    fn enums_and_unions() {
        let e = |s: Json| json!({"type": "enum", "name": "Color", "symbols": s});
        assert_eq!(reader_writer(&e(json!(["R", "G", "B"])), &e(json!(["R", "G"]))), Ok(()));
        assert!(reader_writer(&e(json!(["R"])), &e(json!(["R", "G"]))).is_err());
        assert_eq!(reader_writer(&json!(["null", "string"]), &json!("string")), Ok(()));
        assert!(reader_writer(&json!("string"), &json!(["null", "string"])).is_err());
    }
}
