//! The launcher side: runs `mpirun` on this binary for each scenario, checks what happened,
//! and prints `N passed, M failed`.

use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use super::scenarios::SCENARIO_ENV;

/// What a run must show.
enum Expect {
    /// Exit 0 and every check passed.
    Success,
    /// A non-zero exit, within the run's limit, with these texts in the output.
    Failure(&'static [&'static str]),
}

struct Case {
    name: &'static str,
    ranks: usize,
    /// Extra `mpirun` arguments (the transport).
    mca: &'static [&'static str],
    scenario: &'static str,
    /// The collective timeout given to the ranks (`GRADLAB_DIST_TIMEOUT`).
    timeout_s: u64,
    /// The longest the whole run may take.
    limit: Duration,
    expect: Expect,
}

/// TCP on the loopback interface: the transport a multi-machine run uses, instead of
/// shared memory.
const TCP: &[&str] = &[
    "--mca",
    "btl",
    "tcp,self",
    "--mca",
    "btl_tcp_if_include",
    "lo",
];

fn cases() -> Vec<Case> {
    let train = |name, ranks, mca| Case {
        name,
        ranks,
        mca,
        scenario: "train",
        timeout_s: 120,
        limit: Duration::from_secs(600),
        expect: Expect::Success,
    };
    // Failures with a long collective timeout (60 s) and a short limit (30 s): they must
    // end through the abort or the agreed error, not by waiting the timeout out.
    let fails = |name, scenario, texts| Case {
        name,
        ranks: 2,
        mca: &[],
        scenario,
        timeout_s: 60,
        limit: Duration::from_secs(30),
        expect: Expect::Failure(texts),
    };
    // A rank that never arrives can only be noticed by the timeout: 3 s here.
    let waits = |name, scenario, texts| Case {
        timeout_s: 3,
        ..fails(name, scenario, texts)
    };
    vec![
        train("2 ranks, shared memory", 2, &[]),
        train("3 ranks on 2 cores (oversubscribed), shared memory", 3, &[]),
        train("2 ranks, TCP over loopback", 2, TCP),
        train("3 ranks (oversubscribed), TCP over loopback", 3, TCP),
        fails(
            "mismatched models are refused on every rank, naming the parameter",
            "mismatch",
            &[
                "[rank 0] error: the model differs across ranks: parameter `weight` is f64 [8, 8] on rank 0 but f64 [8, 9] on rank 1",
                "[rank 1] error: the model differs across ranks: parameter `weight`",
            ],
        ),
        fails(
            "a failing step ends every rank with an error, without an abort",
            "step-error",
            &[
                "[rank 1] error: step 1 failed on this rank (1): deliberate failure",
                "[rank 0] error: step 1 failed on rank(s) [1]",
            ],
        ),
        fails(
            "a panic outside a collective aborts the job at once",
            "panic-outside",
            &["[rank 1] panicked (deliberate panic", "aborting the job"],
        ),
        fails(
            "an error outside a collective aborts the job at once",
            "error-outside",
            &["[rank 1] error: deliberate error", "aborting the job"],
        ),
        waits(
            "a rank that never arrives is timed out",
            "hang",
            &["[rank 0] gradlab-distributed: gradient all-reduce (bucket 1 of 1) did not complete within"],
        ),
        waits(
            "a rank that leaves early is timed out",
            "early-exit",
            &["[rank 0] gradlab-distributed: gradient all-reduce (bucket 1 of 1) did not complete within"],
        ),
    ]
}

/// Output and exit status of one `mpirun`, killed when it outlives `limit`.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    killed: bool,
}

fn mpirun(case: &Case) -> Result<Outcome, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new("mpirun");
    cmd.args(["-np", &case.ranks.to_string(), "--oversubscribe"])
        .args(case.mca)
        .arg(&exe)
        // CI runs as root; Open MPI refuses that unless told it is intended.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        // The deliberate panics of the failure checks would print whole backtraces.
        .env("RUST_BACKTRACE", "0")
        .env(SCENARIO_ENV, case.scenario)
        .env(distributed::TIMEOUT_ENV, case.timeout_s.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start mpirun ({e}): install Open MPI (see the README)"))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut killed = false;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if start.elapsed() > case.limit && !killed {
            // mpirun forwards SIGTERM to its ranks; SIGKILL would orphan them.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            killed = true;
        }
        if start.elapsed() > case.limit + Duration::from_secs(10) {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(Outcome {
        code: status.code(),
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
        elapsed: start.elapsed(),
        killed,
    })
}

fn judge(case: &Case, o: &Outcome) -> Result<(), String> {
    if o.killed {
        return Err(format!("still running after {:?}: killed", case.limit));
    }
    match case.expect {
        Expect::Success => {
            if o.code != Some(0) {
                return Err(format!("exit code {:?}", o.code));
            }
            if !o.stdout.lines().any(|l| l.ends_with(" passed, 0 failed")) {
                return Err("no `N passed, 0 failed` line from rank 0".into());
            }
        }
        Expect::Failure(texts) => {
            if o.code == Some(0) {
                return Err("exit code 0".into());
            }
            let all = format!("{}{}", o.stdout, o.stderr);
            if let Some(missing) = texts.iter().find(|t| !all.contains(*t)) {
                return Err(format!("no `{missing}` in the output"));
            }
        }
    }
    Ok(())
}

pub fn run() -> ExitCode {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let (mut passed, mut failed) = (0, 0);
    for case in cases() {
        if filter
            .as_deref()
            .is_some_and(|f| !case.name.contains(f) && case.scenario != f)
        {
            continue;
        }
        let verdict = mpirun(&case).and_then(|o| {
            let v = judge(&case, &o);
            // the scenario's own report (check names and measured deviations)
            for line in o.stdout.lines() {
                println!("    | {line}");
            }
            if v.is_err() || !matches!(case.expect, Expect::Success) {
                for line in o.stderr.lines().filter(|l| !l.trim().is_empty()).take(40) {
                    println!("    ! {line}");
                }
            }
            v.map(|()| (o.elapsed, o.code))
        });
        match verdict {
            Ok((elapsed, code)) => {
                passed += 1;
                println!(
                    "test {} (np {}) ... ok ({:.1} s, exit code {:?})",
                    case.name,
                    case.ranks,
                    elapsed.as_secs_f64(),
                    code
                );
            }
            Err(why) => {
                failed += 1;
                println!("test {} (np {}) ... FAILED: {why}", case.name, case.ranks);
            }
        }
    }
    println!("\n{passed} passed, {failed} failed");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
