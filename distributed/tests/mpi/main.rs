//! The distributed tests. `cargo test` runs this binary as the **driver**: it starts
//! `mpirun` on itself for each scenario (2 ranks, 3 oversubscribed ranks, shared memory and
//! TCP on the loopback interface, and the failure scenarios) and checks exit codes, output
//! and wall-clock bounds. Started by `mpirun`, the same binary is **one rank** of the
//! scenario named by `GRADLAB_DIST_SCENARIO`.

mod checks;
mod driver;
mod scenarios;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Open MPI's launcher sets these in every rank it starts.
    let under_mpirun = std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some()
        || std::env::var_os("PMIX_RANK").is_some();
    if under_mpirun {
        scenarios::run()
    } else {
        driver::run()
    }
}
