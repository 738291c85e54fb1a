//! Replays every fuzz target's saved corpus and regression inputs on stable, plus
//! generated inputs, through the same target bodies libFuzzer runs.

use std::path::PathBuf;
use stubvirt_tests::fuzz::TARGETS;
use stubvirt_tests::scenario::Rng;

/// Generated inputs per target (deterministic; libFuzzer explores far more).
const GENERATED: usize = 150;

fn saved_inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../devices/fuzz");
    let mut inputs = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = fuzz.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if let Ok(bytes) = std::fs::read(&path) {
                inputs.push((path, bytes));
            }
        }
    }
    inputs.sort();
    inputs
}

#[test]
fn every_fuzz_target_survives_its_corpus_and_generated_inputs() {
    for (name, target) in TARGETS {
        let saved = saved_inputs(name);
        for (path, bytes) in &saved {
            eprintln!("replaying {}", path.display());
            target(bytes);
        }
        let mut rng = Rng::new(0x5eed ^ name.len() as u64);
        for case in 0..GENERATED {
            let mut bytes = vec![0u8; rng.below(2048) as usize];
            rng.fill(&mut bytes);
            let result = std::panic::catch_unwind(|| target(&bytes));
            if result.is_err() {
                let dump = std::env::temp_dir().join(format!("stubvirt-{name}-{case}.bin"));
                std::fs::write(&dump, &bytes).ok();
                panic!(
                    "{name}: generated case {case} failed; input saved to {}",
                    dump.display()
                );
            }
        }
        println!(
            "{name}: {} saved inputs, {GENERATED} generated inputs",
            saved.len()
        );
    }
}
