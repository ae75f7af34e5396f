//! Every case of `optim_trajectories.json` reproduced in f64: losses, gradients (through the
//! tape) and parameters, step for step, at the tolerance and `check_steps` the file gives.
//!
//! Reads `$GRADLAB_REFERENCE_DIR/optim_trajectories.json` when the variable is set (e.g. a
//! held-out set), else the project's copy in `tests/data/`. Nothing about the cases is
//! hardcoded: the optimiser comes from `optimizer` + `param_group`, the problem from
//! `problems`, sizes and step counts from the data (see `optim::testing::pytorch`).

use autograd::testing::reference::{load_json, reference_file, WorstRatio};
use optim::testing::pytorch::replay_case;

fn load(name: &str) -> serde_json::Value {
    load_json(reference_file(name)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_reference_trajectory_matches_pytorch() {
    let data = load("optim_trajectories.json");
    assert_eq!(data["format"], "optim_trajectories/v1");
    let cases = data["cases"].as_array().expect("cases");
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    let mut overall = WorstRatio::default();
    let mut compared = 0;
    for case in cases {
        let (worst, n) = replay_case(&data, case, &mut failures);
        overall.merge(&worst, case["name"].as_str().unwrap());
        compared += n;
    }
    println!(
        "{} cases, {compared} values compared; worst {:.3e} of tolerance at {}; max |diff| {:.3e}",
        cases.len(),
        overall.ratio,
        overall.at,
        overall.abs
    );
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}
