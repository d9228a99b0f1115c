//! `_metadata` robustness on real files: every truncation and random byte flips give an error
//! naming the byte offset, never a panic.

use flinksnap::metadata::CheckpointMetadata;
use flinksnap::snapshot::Snapshot;
use flinksnap::storage::LocalStorage;
use flinksnap::Error;
use std::sync::Arc;

use crate::util::{flinksnap, metadata_files, root, Rng};

/// The writer mirrors the reader: every `_metadata` real Flink wrote (V3–V6 here: every handle
/// type the fixtures have, file-merging, changelog and unaligned ones included) comes back byte
/// for byte when written at its own version.
#[test]
fn every_fixture_metadata_writes_back_byte_identical() {
    let files = metadata_files();
    for p in &files {
        let data = std::fs::read(root().join(p)).unwrap();
        let m = CheckpointMetadata::parse(&data).unwrap();
        let written = flinksnap::writers::metadata::write_metadata(&m, m.version).unwrap();
        let first_diff = written.iter().zip(&data).position(|(a, b)| a != b);
        assert!(written == data, "{}: V{} written back differs at byte {first_diff:?} (lengths {} vs {})", p.display(), m.version, written.len(), data.len());
    }
    assert!(files.len() >= 20);
}

#[test]
fn fixtures_exist() {
    let files = metadata_files();
    assert!(files.len() >= 20, "expected the real-Flink fixtures in testdata/, found {} _metadata files", files.len());
}

/// Where to cut a file: everywhere for files up to 64 KiB; for larger ones (the 32768-key-group
/// savepoints, ~780 KiB of mostly offsets, where every cut would be quadratic) every cut in the
/// first and last 8 KiB plus 2,000 random ones.
fn cuts(len: usize, rng: &mut Rng) -> Vec<usize> {
    if len <= 64 * 1024 {
        return (0..len).collect();
    }
    let mut v: Vec<usize> = (0..8192).chain(len - 8192..len).collect();
    v.extend((0..2000).map(|_| rng.below(len as u64) as usize));
    v
}

#[test]
fn every_truncation_fails_with_an_offset_inside_the_data() {
    let mut rng = Rng(0x7a11_0ff5e7);
    for f in metadata_files() {
        let data = std::fs::read(root().join(&f)).unwrap();
        CheckpointMetadata::parse(&data).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for n in cuts(data.len(), &mut rng) {
            // V4+ files end in Java-serialized properties, which never fail the file: a cut
            // inside them is reported as a note instead.
            match CheckpointMetadata::parse(&data[..n]) {
                Err(e) => assert!(e.offset <= n as u64, "{} cut at {n}: offset {} past the end", f.display(), e.offset),
                Ok(m) => assert!(
                    m.version >= 4 && m.properties_note.is_some(),
                    "{} cut at {n} parsed without complaint",
                    f.display()
                ),
            }
        }
    }
}

#[test]
fn random_byte_flips_never_panic() {
    let mut rng = Rng(0x5eed_f11b);
    for f in metadata_files() {
        let data = std::fs::read(root().join(&f)).unwrap();
        let tries = if data.len() > 64 * 1024 { 20 } else { 300 };
        for _ in 0..tries {
            let mut d = data.clone();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(d.len() as u64) as usize;
                d[i] ^= 1 << rng.below(8);
            }
            if let Err(e) = CheckpointMetadata::parse(&d) {
                assert!(e.offset <= d.len() as u64, "{}: {e}", f.display());
            }
        }
    }
}

#[test]
fn a_truncated_metadata_file_names_file_and_offset() {
    let f = metadata_files().into_iter().next().expect("fixtures");
    let data = std::fs::read(root().join(&f)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("_metadata");
    std::fs::write(&cut, &data[..data.len() / 2]).unwrap();
    let err = Snapshot::open(Arc::new(LocalStorage), cut.to_str().unwrap()).unwrap_err();
    match &err {
        Error::Decode { file, error } => {
            assert_eq!(file, cut.to_str().unwrap());
            assert!(error.offset <= (data.len() / 2) as u64);
        }
        other => panic!("expected a decode error, got {other}"),
    }
    // The CLI says the same and exits 2.
    let out = flinksnap(&["inspect", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(cut.to_str().unwrap()) && stderr.contains("byte offset"), "{stderr}");
}
