//! Every input the fuzzers found a crash, hang or runaway allocation with
//! (`fuzz/regressions/<target>/`), replayed through exactly the body of its fuzz target
//! (`fuzz/src/lib.rs`, included here by path, so the stable toolchain runs it without libFuzzer).
//! Each must now end in an `Ok` or an `Err`, never a panic; the tests next to the fixed code
//! assert which error.

use std::path::Path;

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod fuzz;

#[test]
fn every_regression_input_runs_through_its_target() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut replayed = 0;
    let mut targets: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    targets.sort();
    for t in targets {
        let name = t.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(fuzz::TARGETS.contains(&name.as_str()), "{}: no fuzz target {name}", t.display());
        let mut inputs: Vec<_> = std::fs::read_dir(&t).unwrap().flatten().map(|e| e.path()).collect();
        inputs.sort();
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            eprintln!("{name}: {}", input.display());
            fuzz::run(&name, &data);
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no regression inputs under {}", dir.display());
}
