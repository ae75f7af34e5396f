//! Smoke mode, shared by every example: `GRADLAB_SMOKE=1` in the environment (or `--smoke`
//! on the command line) shrinks a run to a few seconds — fewer epochs, seeds, steps or
//! sizes — so that CI runs every example end to end. The numbers a smoke run prints are
//! not the study's results, and its files go under `out/smoke/` instead of the real
//! output folder, so committed figures are never overwritten by one.

/// Whether smoke mode is on: the flag, or `GRADLAB_SMOKE` set to anything but `""`/`"0"`.
pub fn enabled(flag: bool) -> bool {
    flag || std::env::var("GRADLAB_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The output folder: `out/smoke/{name}` in smoke mode when the user did not choose one
/// (`chosen` is the folder given, `default` the example's default).
#[allow(dead_code)] // not every example writes files
pub fn out_dir(chosen: &str, default: &str, name: &str, smoke: bool) -> String {
    if smoke && chosen == default {
        format!("out/smoke/{name}")
    } else {
        chosen.to_string()
    }
}
