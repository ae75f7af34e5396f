//! Study: activation functions — f and f' (from autograd), where they saturate, whether
//! they are zero-centred, and what they cost.
//!
//! ```text
//! cargo run --release --example study_activations [-- --out figures]
//! ```
//!
//! Literature (SEED.md §1): sigmoid's f' is at most 1/4 and vanishes for large |x|; its
//! output is not zero-centred. tanh is zero-centred with f' up to 1 but still saturates.
//! ReLU never saturates for x > 0 (but is dead for x < 0, and not zero-centred).

// glibc's allocator hands large freed buffers back to the OS and page-faults them in again
// on the next step; on graphs of large tensors that cost 7x in backward (measured:
// tanh forward+backward on 10^6 elements, 11.5 vs 1.3 ns/element). mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/smoke.rs"]
mod smoke;

use std::time::Instant;

use anyhow::Result;
use autograd::{Tape, Tensor, Var};
use clap::Parser;
use gradlab::plot::{line_chart, out_dir, print_table, Series};
use rand::{rngs::StdRng, SeedableRng};

#[derive(Parser)]
struct Args {
    /// Folder for the SVG figures.
    #[arg(long, default_value = "figures")]
    out: String,
    /// Smoke mode (also `GRADLAB_SMOKE=1`): 10^4 samples instead of 10^6; figures go to
    /// out/smoke/.
    #[arg(long)]
    smoke: bool,
}

type Act = for<'t> fn(Var<'t, f64>) -> Var<'t, f64>;
type Act32 = for<'t> fn(Var<'t, f32>) -> Var<'t, f32>;

fn activations() -> Vec<(&'static str, Act, Act32)> {
    vec![
        ("sigmoid", |x| x.sigmoid(), |x| x.sigmoid()),
        ("tanh", |x| x.tanh(), |x| x.tanh()),
        ("relu", |x| x.relu(), |x| x.relu()),
        (
            "leaky_relu(0.01)",
            |x| x.leaky_relu(0.01),
            |x| x.leaky_relu(0.01),
        ),
        (
            "prelu(0.25)",
            |x| x.leaky_relu(0.25),
            |x| x.leaky_relu(0.25),
        ),
        ("elu(1)", |x| x.elu(1.0), |x| x.elu(1.0)),
        ("selu", |x| x.selu(), |x| x.selu()),
        ("gelu", |x| x.gelu(), |x| x.gelu()),
        (
            "softplus",
            |x| x.softplus(1.0, 20.0),
            |x| x.softplus(1.0, 20.0),
        ),
        ("silu", |x| x.silu(), |x| x.silu()),
    ]
}

/// f and f' on `xs`; f' is the vector-Jacobian product with ones, which for an elementwise
/// map is exactly the derivative at each point.
fn f_and_df(act: Act, xs: &Tensor<f64>) -> Result<(Vec<f64>, Vec<f64>)> {
    let tape = Tape::new();
    let x = tape.var(xs.clone());
    let y = act(x);
    let ones = tape.constant(xs.ones_like());
    let dy = tape.vjp(y, ones, &[x])?[0];
    Ok((y.value().to_vec(), dy.value().to_vec()))
}

fn ns_per_element(act: Act32, x: &Tensor<f32>, backward: bool) -> Result<f64> {
    let mut times = Vec::new();
    for _ in 0..15 {
        let tape = Tape::new();
        let v = tape.var(x.clone());
        let t0 = Instant::now();
        let y = act(v);
        if backward {
            let ones = tape.constant(x.ones_like());
            std::hint::black_box(tape.vjp(y, ones, &[v])?);
        }
        std::hint::black_box(y);
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2] * 1e9 / x.numel() as f64)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let is_smoke = smoke::enabled(args.smoke);
    let dir = out_dir(smoke::out_dir(
        &args.out,
        "figures",
        "study_activations",
        is_smoke,
    ))?;
    // A wide input range, as in the article's plots, sampled finely.
    let n = 4001;
    let xs = Tensor::from_fn([n], |i| -10.0 + 20.0 * i as f64 / (n - 1) as f64)?;
    let mut rng = StdRng::seed_from_u64(0);
    // Smoke mode: 10^4 samples instead of 10^6 (the means and timings are then rough).
    let samples = if is_smoke { 10_000 } else { 1_000_000 };
    let gauss = Tensor::<f64>::randn([samples], &mut rng)?;
    let bench = Tensor::<f32>::randn([samples], &mut rng)?;

    let (mut fs, mut dfs, mut rows) = (Vec::new(), Vec::new(), Vec::new());
    for (name, act, act32) in activations() {
        let (f, df) = f_and_df(act, &xs)?;
        let xv = xs.to_vec();
        let sat = df.iter().filter(|d| d.abs() < 0.01).count() as f64 / n as f64;
        let sat_pos = xv
            .iter()
            .zip(&df)
            .filter(|(x, d)| **x > 0.0 && d.abs() < 0.01)
            .count() as f64
            / xv.iter().filter(|x| **x > 0.0).count() as f64;
        let max_df = df.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mean_out = {
            let tape = Tape::new();
            act(tape.constant(gauss.clone())).mean().item()?
        };
        rows.push(vec![
            name.to_string(),
            format!("{max_df:.4}"),
            format!("{:.1}%", 100.0 * sat),
            format!("{:.1}%", 100.0 * sat_pos),
            format!("{mean_out:+.4}"),
            format!("{:.2}", ns_per_element(act32, &bench, false)?),
            format!("{:.2}", ns_per_element(act32, &bench, true)?),
        ]);
        fs.push(Series::new(name, xv.iter().copied().zip(f).collect()));
        dfs.push(Series::new(name, xv.into_iter().zip(df).collect()));
    }
    println!("Activations on x in [-10, 10] ({n} points); f' from autograd; mean over 10^6 N(0,1) inputs; cost on 10^6 f32 elements (median of 15)\n");
    print_table(
        &[
            "activation",
            "max f'",
            "f'<0.01 on [-10,10]",
            "f'<0.01 for x>0",
            "mean f(N(0,1))",
            "fwd ns/elem",
            "fwd+bwd ns/elem",
        ],
        &rows,
    );
    println!("\nLiterature: sigmoid max f' = 0.25 and saturates; tanh zero-centred (mean 0) with max f' = 1 but saturates;");
    println!("ReLU never saturates for x > 0 (0% there), is dead for x < 0, and is not zero-centred (mean 1/sqrt(2 pi) = 0.3989).");
    line_chart(
        &dir.join("activations_f.svg"),
        "activation f(x)",
        ("x", "f(x)"),
        &fs,
        Some((-2.0, 4.0)),
    )?;
    line_chart(
        &dir.join("activations_df.svg"),
        "derivative f'(x) (autograd)",
        ("x", "f'(x)"),
        &dfs,
        Some((-0.2, 1.3)),
    )?;
    println!(
        "\nfigures: {}/activations_f.svg, {}/activations_df.svg",
        dir.display(),
        dir.display()
    );
    Ok(())
}
