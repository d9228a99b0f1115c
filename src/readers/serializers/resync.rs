//! Reading past serializer snapshots flinksnap cannot interpret (an unknown class, or an unknown
//! version of a known one). Spec: `formats/serializers.md` § Unknown snapshots.
//!
//! A snapshot's class-specific payload carries no length, so where an unknown payload ends is not
//! written anywhere. What is known exactly is everything around it: the structure that follows
//! (the next nested snapshot, the next serializer of the state, the next state, the end of the
//! serialization proxy — whose end the handle records: the first key-group or state offset, or
//! the end of a meta-data file or a change record) and Flink's conventions for payloads
//! (`CompositeTypeSerializerSnapshot`'s magic, outer version and `NestedSerializersSnapshotDelegate`;
//! a Java serialization stream, which delimits itself).
//!
//! [`read_exact`] therefore tries every position an unknown payload could end at, and keeps the
//! positions from which the rest parses as Flink wrote it, to the exact end. The true end always
//! passes that test; so when exactly one position passes it, it is the true end — a fact, not a
//! guess. When none or several do (or the search exceeds its budget), nothing is assumed and the
//! unknown snapshot is reported.

use super::consts::{COMPOSITE_MAGIC, NESTED_MAGIC, NESTED_VERSION};
use super::snapshot::read_nested_delegate;
use crate::bytes::decode_modified_utf8;
use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind};

type R<T> = Result<T, DecodeError>;

/// Parses tried at most per [`read_exact`]: bounds the work on hostile or unlucky bytes.
const MAX_ATTEMPTS: usize = 5_000;
/// Bytes parsed at most per [`read_exact`] (each attempt counted as the whole structure): every
/// attempt re-parses the structure from its start, so the attempts a large one is given are
/// fewer. The custom-serializer fixtures' proxies (2 KB, three user-defined snapshots) take 309;
/// the 2.3.0 heap fixture's 2.8 KB proxy with every state's namespace serializer unknown
/// (`tests/edit.rs`) takes 3,060, 8.6 MB re-parsed.
const MAX_WORK_BYTES: usize = 16 << 20;
/// Unknown snapshots resolved at most in one structure.
const MAX_UNKNOWN: usize = 64;

/// The assumed ends of unknown payloads, by where each payload starts (absolute positions of the
/// cursor being parsed). The parsers skip an unknown payload to its assumed end, or, without
/// one, fail with [`DecodeErrorKind::UnknownSerializer`] naming where it starts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Skips {
    ends: Vec<(u64, u64)>,
}

impl Skips {
    /// No assumption: every unknown payload is an error.
    pub(crate) fn none() -> &'static Skips {
        static NONE: Skips = Skips { ends: Vec::new() };
        &NONE
    }

    /// Where the payload starting at `payload` ends, when assumed.
    pub(crate) fn end_of(&self, payload: u64) -> Option<u64> {
        self.ends.iter().find(|(p, _)| *p == payload).map(|(_, e)| *e)
    }
}

/// What a parser knows while reading snapshots: how deep it is, and the assumed payload ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'s> {
    pub depth: usize,
    pub skips: &'s Skips,
}

impl Ctx<'static> {
    /// At the top, with no assumption.
    pub(crate) fn top() -> Ctx<'static> {
        Ctx { depth: 0, skips: Skips::none() }
    }

    /// At `depth`, with no assumption (readers that count depth themselves: table, CEP).
    pub(crate) fn at_depth(depth: usize) -> Ctx<'static> {
        Ctx { depth, skips: Skips::none() }
    }
}

impl<'s> Ctx<'s> {
    /// One level deeper.
    pub(crate) fn nested(self) -> Ctx<'s> {
        Ctx { depth: self.depth + 1, skips: self.skips }
    }
}

/// What may follow an unknown payload: restricts the positions tried to those where the next
/// structure could start (the rest is then checked by parsing it to the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Follows {
    /// Inside a serialization proxy: a nested snapshot or a serializer entry (a `utf` class name
    /// or key), a state (`utf` name, `i32` backend state type), a count of states, or the end.
    Proxy,
    /// Anything (small structures: a length frame, a change record).
    Anything,
}

/// Parses `c` to its exact end with `parse`, reading past unknown serializer snapshots when the
/// bytes allow exactly one way to (module doc). Without unknown snapshots this is `parse` itself
/// (which need not then consume everything). On success `c` is advanced past what was parsed.
pub(crate) fn read_exact<'a, T>(c: &mut Cursor<'a>, follows: Follows, parse: &dyn Fn(&mut Cursor<'a>, &Skips) -> R<T>) -> R<T> {
    let mut first = c.clone();
    let err = match parse(&mut first, Skips::none()) {
        Ok(v) => {
            *c = first;
            return Ok(v);
        }
        Err(e) if !is_unknown(&e) => return Err(e),
        Err(e) => e,
    };
    let data = c.clone().rest();
    let max_attempts = MAX_ATTEMPTS.min(MAX_WORK_BYTES / data.len().max(1)).max(1);
    let mut search = Search { start: c.clone(), data, base: c.position(), follows, parse, attempts: 0, max_attempts, solutions: Vec::new() };
    let outcome = search.solve(&mut Skips::default());
    match (outcome, search.solutions.len()) {
        (Ok(()), 1) => {
            let v = search.solutions.pop().ok_or(err)?;
            c.rest();
            Ok(v)
        }
        (outcome, n) => {
            let why = match (outcome, n) {
                (Err(Stop::Budget), _) => format!("more than {} ways to read past it were tried", search.max_attempts),
                (_, 0) => "the bytes after it parse from no position as what must follow".to_owned(),
                _ => "the bytes after it parse from more than one position as what must follow".to_owned(),
            };
            Err(amend(err, &why))
        }
    }
}

/// True for an error about an unknown serializer snapshot.
pub(crate) fn is_unknown(e: &DecodeError) -> bool {
    matches!(e.kind, DecodeErrorKind::UnknownSerializer(_))
}

/// The error of an unknown snapshot, saying why its end is not known.
fn amend(mut e: DecodeError, why: &str) -> DecodeError {
    if let DecodeErrorKind::UnknownSerializer(u) = &mut e.kind {
        u.what.push_str(&format!("; where it ends cannot be determined: {why}"));
    }
    e
}

enum Stop {
    /// Two solutions: no need to look further.
    Ambiguous,
    /// Too many attempts.
    Budget,
}

struct Search<'a, 'p, T> {
    start: Cursor<'a>,
    data: &'a [u8],
    base: u64,
    follows: Follows,
    parse: &'p dyn Fn(&mut Cursor<'a>, &Skips) -> R<T>,
    attempts: usize,
    max_attempts: usize,
    solutions: Vec<T>,
}

impl<T> Search<'_, '_, T> {
    fn solve(&mut self, skips: &mut Skips) -> Result<(), Stop> {
        self.attempts += 1;
        if self.attempts > self.max_attempts {
            return Err(Stop::Budget);
        }
        let mut c = self.start.clone();
        match (self.parse)(&mut c, skips) {
            Ok(v) if c.is_empty() => {
                if std::env::var_os("FLINKSNAP_DEBUG_RESYNC").is_some() {
                    eprintln!("resync solution: {:?}", skips.ends);
                }
                self.solutions.push(v);
                if self.solutions.len() > 1 {
                    return Err(Stop::Ambiguous);
                }
            }
            Ok(_) => {}
            Err(e) => {
                let DecodeErrorKind::UnknownSerializer(u) = e.kind else { return Ok(()) };
                let payload = u.payload;
                if skips.end_of(payload).is_some() || skips.ends.len() >= MAX_UNKNOWN || payload < self.base {
                    return Ok(());
                }
                // The first unknown snapshot is met by the parse from the true start; later ones
                // are met after an assumed end, where a wrong assumption reads other strings (a
                // serializer key such as `VALUE_SERIALIZER`) as a class name. Flink writes
                // snapshot classes by their binary names, which for any class outside the
                // default package hold a dot: a dotless one met after an assumption ends that
                // branch, which otherwise multiplies the positions tried by every such string.
                if !skips.ends.is_empty() && !u.class.contains('.') {
                    return Ok(());
                }
                for end in self.candidates(payload) {
                    skips.ends.push((payload, end));
                    let r = self.solve(skips);
                    skips.ends.pop();
                    r?;
                }
            }
        }
        Ok(())
    }

    /// The positions the payload at `payload` may end at, ascending.
    fn candidates(&self, payload: u64) -> Vec<u64> {
        let d = self.data;
        let rel = (payload - self.base) as usize;
        if rel > d.len() {
            return Vec::new();
        }
        let at = &d[rel..];
        // CompositeTypeSerializerSnapshot (version 3+): magic, outer version, outer payload, then
        // the nested snapshots: the payload ends where a well-formed delegate ends.
        if at.len() >= 8 && at[..4] == COMPOSITE_MAGIC.to_be_bytes() {
            let mut nested = [0u8; 8];
            nested[..4].copy_from_slice(&NESTED_MAGIC.to_be_bytes());
            nested[4..].copy_from_slice(&NESTED_VERSION.to_be_bytes());
            let mut ends: Vec<u64> = (8..at.len().saturating_sub(7))
                .filter(|&m| at[m..m + 8] == nested)
                .filter_map(|m| {
                    let mut c = Cursor::with_base(&at[m..], payload + m as u64);
                    read_nested_delegate(&mut c).ok().map(|_| c.position())
                })
                .collect();
            if !ends.is_empty() {
                ends.sort_unstable();
                ends.dedup();
                return ends;
            }
        }
        // A payload that opens with a Java serialization stream ends after it.
        let mut lo = rel;
        if at.starts_with(&[0xAC, 0xED, 0x00, 0x05]) {
            let mut c = Cursor::with_base(at, payload);
            if crate::java_serialization::read_stream(&mut c).is_ok() {
                lo = rel + (c.position() - payload) as usize;
            }
        }
        (lo..=d.len()).filter(|&r| self.follows == Follows::Anything || proxy_may_follow(d, r)).map(|r| self.base + r as u64).collect()
    }
}

/// Whether a serialization proxy may continue at `r` of `d` after a snapshot: its end, a nested
/// snapshot or serializer entry (a `utf` Java name), a state (`utf` name, backend state type), or
/// a count of states (`i16`) followed by a state or the end.
fn proxy_may_follow(d: &[u8], r: usize) -> bool {
    r == d.len() || java_name_at(d, r) || state_at(d, r) || (i16_at(d, r).is_some_and(|n| n >= 0) && (r + 2 == d.len() || state_at(d, r + 2)))
}

/// The `utf` string at `r`, when one is there and decodes.
fn utf_at(d: &[u8], r: usize) -> Option<(String, usize)> {
    let len = u16::from_be_bytes(d.get(r..r + 2)?.try_into().ok()?) as usize;
    let raw = d.get(r + 2..r + 2 + len)?;
    decode_modified_utf8(raw).map(|s| (s, r + 2 + len))
}

fn i16_at(d: &[u8], r: usize) -> Option<i16> {
    Some(i16::from_be_bytes(d.get(r..r + 2)?.try_into().ok()?))
}

fn i32_at(d: &[u8], r: usize) -> Option<i32> {
    Some(i32::from_be_bytes(d.get(r..r + 4)?.try_into().ok()?))
}

/// A `utf` Java binary name (a class or a serializer key) followed by at least an `i32`.
fn java_name_at(d: &[u8], r: usize) -> bool {
    utf_at(d, r).is_some_and(|(s, end)| is_java_name(&s) && end + 4 <= d.len())
}

/// A state meta info: `utf` name, `i32` backend state type 0..=4.
fn state_at(d: &[u8], r: usize) -> bool {
    utf_at(d, r).is_some_and(|(s, end)| !s.is_empty() && i32_at(d, end).is_some_and(|t| (0..=4).contains(&t)))
}

/// A Java binary name: identifiers separated by dots (`$` and digits allowed inside).
pub(crate) fn is_java_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c.is_alphabetic() || c == '_' || c == '$') && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fuzzer's proxy (2.7 KB) whose wrong assumed ends read serializer keys as classes: the
    /// search took 20,000 attempts (9 s under ASan) before the dotless-class rule.
    #[test]
    fn strings_read_as_classes_after_an_assumed_end_open_no_branch() {
        let input = include_bytes!("../../../fuzz/regressions/keyed_backend_meta/resync-search-blowup");
        let r = crate::readers::raw::keyed_backend_meta(input);
        // The mutated bytes put a serializer key where the TTL value serializer's nested class
        // belongs: the first state reads, the other seven are reported unreadable, quickly.
        let m = r.unwrap();
        assert_eq!(m.states.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["v-pojo"]);
        let u = m.unreadable.unwrap();
        assert_eq!((u.first, u.count, u.name.as_deref()), (1, Some(7), Some("ttl-value")));
        let DecodeErrorKind::UnknownSerializer(e) = &u.error.kind else { panic!("{:?}", u.error) };
        assert_eq!(e.class, "NAMESPACE_SERIALIZER");
        assert!(e.what.contains("parse from no position"), "{}", e.what);
    }

    /// A fuzzer's 27 KB proxy: 1,242 attempts of 27 KB each under the former 32 MiB budget took
    /// 11 s under ASan; the 16 MiB budget ends the search after 621.
    #[test]
    fn a_large_proxy_gets_fewer_attempts() {
        let input = include_bytes!("../../../fuzz/regressions/keyed_backend_meta/resync-search-27k");
        let r = crate::readers::raw::keyed_backend_meta(input);
        let e = format!("{:?}", r.map(|m| m.unreadable.map(|u| u.error)));
        assert!(e.contains("ways to read past it were tried"), "{e}");
    }

    #[test]
    fn java_names() {
        assert!(is_java_name("org.apache.flink.Foo$Bar"));
        assert!(is_java_name("VALUE_SERIALIZER"));
        assert!(is_java_name("a.b1.C$1"));
        assert!(!is_java_name(""));
        assert!(!is_java_name("a..b"));
        assert!(!is_java_name("1a"));
        assert!(!is_java_name("a b"));
    }
}
