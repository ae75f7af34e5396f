//! Study: depth — does a deep network train at all, depending on its initialisation and
//! activation?
//!
//! ```text
//! cargo run --release --example study_depth [-- --out figures]
//! ```
//!
//! (a) A deep ReLU MLP on the digits data, with Xavier and with He weights. Literature:
//! He et al. (2015, Fig. 3) trained a 30-layer ReLU network that converged with their
//! initialisation and stalled with Xavier's, which halves the signal's variance at each
//! ReLU layer. (b) A deep sigmoid MLP with naive Gaussian weights (N(0, 1) saturates it,
//! N(0, 0.01²) collapses its signal) against ReLU + He. Literature (Glorot & Bengio 2010):
//! the naive sigmoid net barely moves.
//!
//! Both train with the same SGD + momentum, batch order and seeds; gradients by autograd,
//! the step-0 diagnosis by [`nn::diagnose`].

// glibc's allocator hands large freed buffers back to the OS and page-faults them in again
// on the next step; on graphs of large tensors that cost 7x in backward (measured:
// tanh forward+backward on 10^6 elements, 11.5 vs 1.3 ns/element). mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use anyhow::Result;
use autograd::{Tape, Tensor};
use clap::Parser;
use gradlab::datasets::{digits_path, Digits};
use gradlab::plot::{line_chart, out_dir, print_table, Series};
use nn::{loss, Ctx, Init, LinearConfig, Module, Relu, Sequential, Sigmoid};
use optim::{Optim, Optimizer, Sgd};
use rand::seq::SliceRandom;
use rand::{rngs::StdRng, SeedableRng};

#[derive(Parser)]
struct Args {
    /// Folder for the SVG figures.
    #[arg(long, default_value = "figures")]
    out: String,
    /// Weight layers of the part (a) ReLU networks (comma-separated for several depths).
    #[arg(long, value_delimiter = ',', default_value = "30,60")]
    depth_a: Vec<usize>,
    /// Weight layers of the part (b) networks.
    #[arg(long, default_value_t = 10)]
    depth_b: usize,
    /// Hidden width.
    #[arg(long, default_value_t = 128)]
    width: usize,
    /// Passes over the 1500 training images.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// SGD learning rate (momentum 0.9).
    #[arg(long, default_value_t = 0.003)]
    lr: f64,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Act {
    Relu,
    Sigmoid,
}

struct Config {
    name: String,
    part: char,
    depth: usize,
    act: Act,
    init: Init,
}

/// `depth` weight layers: 64 → width, (depth − 2) × width → width, width → 10, the
/// activation after every one but the last; zero biases, as both papers assume.
fn mlp(cfg: &Config, width: usize) -> Result<Sequential<f32>> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut net = Sequential::new();
    for k in 0..cfg.depth {
        let n_in = if k == 0 { 64 } else { width };
        let n_out = if k + 1 == cfg.depth { 10 } else { width };
        let layer = LinearConfig {
            weight_init: cfg.init,
            bias_init: Some(Init::Zeros),
            ..LinearConfig::new(n_in, n_out)
        };
        net.push(layer.init::<f32>(&mut rng)?);
        if k + 1 < cfg.depth {
            match cfg.act {
                Act::Relu => net.push(Relu),
                Act::Sigmoid => net.push(Sigmoid),
            }
        }
    }
    Ok(net)
}

/// Pixels standardised per feature with the training set's statistics (constant pixels
/// are only centred), so the input has the unit variance the initialisers assume.
fn standardise(train: &Tensor<f32>, others: &[&Tensor<f32>]) -> Result<Vec<Tensor<f32>>> {
    let (n, d) = (train.dims()[0], train.dims()[1]);
    let x = train.as_slice();
    let mean: Vec<f32> = (0..d)
        .map(|j| (0..n).map(|i| x[i * d + j]).sum::<f32>() / n as f32)
        .collect();
    let std: Vec<f32> = (0..d)
        .map(|j| {
            let v = (0..n)
                .map(|i| (x[i * d + j] - mean[j]).powi(2))
                .sum::<f32>()
                / n as f32;
            if v > 1e-8 {
                v.sqrt()
            } else {
                1.0
            }
        })
        .collect();
    std::iter::once(train)
        .chain(others.iter().copied())
        .map(|t| {
            let data = t
                .as_slice()
                .iter()
                .enumerate()
                .map(|(k, &v)| (v - mean[k % d]) / std[k % d])
                .collect();
            Ok(Tensor::from_vec(data, t.dims().to_vec())?)
        })
        .collect()
}

/// Mean cross-entropy and accuracy on a whole set, without recording gradients.
fn evaluate(net: &Sequential<f32>, x: &Tensor<f32>, y: &[usize]) -> Result<(f64, f64)> {
    let tape = Tape::new();
    let logits = tape.no_grad(|| Ctx::new(&tape).call(&net, tape.constant(x.clone())))?;
    let l = loss::cross_entropy(logits, y)?.item()? as f64;
    let (_, flat) = logits.value().extreme_axes(&[1], false, true)?;
    let correct = flat
        .iter()
        .enumerate()
        .filter(|(i, &f)| f - i * 10 == y[*i])
        .count();
    Ok((l, correct as f64 / y.len() as f64))
}

fn norm(v: impl Iterator<Item = f32>) -> f64 {
    v.map(|v| (v as f64).powi(2)).sum::<f64>().sqrt()
}

fn param(net: &Sequential<f32>, name: &str) -> autograd::Param<f32> {
    net.named_parameters()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p)
        .expect("parameter exists")
}

/// ‖W − W_0‖/‖W_0‖: how far training moved a weight matrix.
fn moved(w: &Tensor<f32>, w0: &Tensor<f32>) -> f64 {
    let d = w.as_slice().iter().zip(w0.as_slice()).map(|(a, b)| a - b);
    norm(d) / norm(w0.as_slice().iter().copied())
}

struct Run {
    losses: Vec<f64>,
    first_grads: Vec<f64>,
    init_loss: f64,
    final_loss: f64,
    test_acc: f64,
    g_first: f64,
    g_last: f64,
    /// ‖W_end − W_0‖/‖W_0‖ of the first and the last weight matrix.
    moved_first: f64,
    moved_last: f64,
    secs: f64,
}

struct Data {
    x_train: Tensor<f32>,
    y_train: Vec<usize>,
    x_test: Tensor<f32>,
    y_test: Vec<usize>,
}

fn train(cfg: &Config, data: &Data, args: &Args) -> Result<Run> {
    let t0 = Instant::now();
    let net = mlp(cfg, args.width)?;
    let last = format!("{}.weight", 2 * (cfg.depth - 1));
    // Step 0, on the whole training set: the loss and the gradient reaching the first and
    // the last weight matrix before any update.
    let report = nn::diagnose(&net, &data.x_train, |y| {
        loss::cross_entropy(y, &data.y_train)
    })?;
    let g_first = report.param("0.weight").expect("first layer").grad_norm;
    let g_last = report.param(&last).expect("last layer").grad_norm;
    let (first_w, last_w) = (param(&net, "0.weight"), param(&net, &last));
    let (first_w0, last_w0) = (first_w.value(), last_w.value());

    let mut opt = Optim::new(
        net.parameters(),
        args.lr,
        Sgd {
            momentum: 0.9,
            ..Sgd::default()
        },
    )?;
    // The same batch order for every configuration.
    let mut rng = StdRng::seed_from_u64(1);
    let mut order: Vec<usize> = (0..data.y_train.len()).collect();
    let (mut losses, mut first_grads) = (Vec::new(), Vec::new());
    for _ in 0..args.epochs {
        order.shuffle(&mut rng);
        for idx in order.chunks(args.batch) {
            let x = rows(&data.x_train, idx)?;
            let y: Vec<usize> = idx.iter().map(|&i| data.y_train[i]).collect();
            opt.zero_grad();
            let tape = Tape::new();
            let logits = Ctx::new(&tape).call(&net, tape.constant(x))?;
            let l = loss::cross_entropy(logits, &y)?;
            losses.push(l.item()? as f64);
            l.backward()?;
            let g = first_w.grad().expect("the first layer has a gradient");
            first_grads.push(norm(g.as_slice().iter().copied()));
            opt.step()?;
        }
    }
    let (final_loss, _) = evaluate(&net, &data.x_train, &data.y_train)?;
    let (_, test_acc) = evaluate(&net, &data.x_test, &data.y_test)?;
    Ok(Run {
        losses,
        first_grads,
        init_loss: report.loss,
        final_loss,
        test_acc,
        g_first,
        g_last,
        moved_first: moved(&first_w.value(), &first_w0),
        moved_last: moved(&last_w.value(), &last_w0),
        secs: t0.elapsed().as_secs_f64(),
    })
}

/// The rows `idx` of a `[n, d]` tensor.
fn rows(x: &Tensor<f32>, idx: &[usize]) -> Result<Tensor<f32>> {
    let d = x.dims()[1];
    let v = x.as_slice();
    let data = idx
        .iter()
        .flat_map(|&i| &v[i * d..(i + 1) * d])
        .copied()
        .collect();
    Ok(Tensor::from_vec(data, [idx.len(), d])?)
}

fn moving_average(v: &[f64], w: usize) -> Vec<(f64, f64)> {
    (0..v.len())
        .map(|i| {
            let lo = i.saturating_sub(w - 1);
            let s = &v[lo..=i];
            (i as f64, s.iter().sum::<f64>() / s.len() as f64)
        })
        .collect()
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dir = out_dir(&args.out)?;
    let all = Digits::load(digits_path())?;
    let (train_set, test_set) = all.split(1500, 0);
    let (x_train, y_train) = train_set.batch::<f32>(&(0..train_set.len()).collect::<Vec<_>>());
    let (x_test, y_test) = test_set.batch::<f32>(&(0..test_set.len()).collect::<Vec<_>>());
    let mut std = standardise(&x_train, &[&x_test])?.into_iter();
    let data = Data {
        x_train: std.next().expect("train"),
        y_train,
        x_test: std.next().expect("test"),
        y_test,
    };
    println!(
        "digits: 1500 train / {} held out, pixels standardised; MLPs of width {}, zero biases; \
         SGD lr {} momentum 0.9, batch {}, {} epochs ({} steps); same seeds for all\n",
        data.y_test.len(),
        args.width,
        args.lr,
        args.batch,
        args.epochs,
        args.epochs * 1500usize.div_ceil(args.batch)
    );

    let mut cfgs = Vec::new();
    for &depth in &args.depth_a {
        for (init_name, init) in [
            ("Xavier", Init::XavierNormal { gain: 1.0 }),
            ("He", Init::HE_NORMAL),
        ] {
            cfgs.push(Config {
                name: format!("{depth}-layer ReLU {init_name}"),
                part: 'a',
                depth,
                act: Act::Relu,
                init,
            });
        }
    }
    let d = args.depth_b;
    for (name, act, init) in [
        (
            "sigmoid N(0,1)",
            Act::Sigmoid,
            Init::Normal {
                mean: 0.0,
                std: 1.0,
            },
        ),
        (
            "sigmoid N(0,0.01²)",
            Act::Sigmoid,
            Init::Normal {
                mean: 0.0,
                std: 0.01,
            },
        ),
        ("ReLU He", Act::Relu, Init::HE_NORMAL),
    ] {
        cfgs.push(Config {
            name: format!("{d}-layer {name}"),
            part: 'b',
            depth: d,
            act,
            init,
        });
    }

    let mut runs = Vec::new();
    for cfg in &cfgs {
        let run = train(cfg, &data, &args)?;
        eprintln!("{}: {:.1} s", cfg.name, run.secs);
        runs.push(run);
    }

    let rows: Vec<Vec<String>> = cfgs
        .iter()
        .zip(&runs)
        .map(|(c, r)| {
            vec![
                format!("({}) {}", c.part, c.name),
                format!("{:.4}", r.init_loss),
                format!("{:.4}", r.final_loss),
                format!("{:.1}%", 100.0 * r.test_acc),
                format!("{:.3e}", r.g_first),
                format!("{:.3e}", r.g_last),
                format!("{:.2e}", r.moved_first),
                format!("{:.2e}", r.moved_last),
                format!("{:.1}", r.secs),
            ]
        })
        .collect();
    print_table(
        &[
            "configuration",
            "initial loss",
            "final train loss",
            "held-out acc",
            "‖dL/dW_first‖ step 0",
            "‖dL/dW_last‖ step 0",
            "first W moved",
            "last W moved",
            "time s",
        ],
        &rows,
    );
    // Where each run's training loss first falls below 1.0 (chance is ln 10 = 2.303).
    println!();
    for (c, r) in cfgs.iter().zip(&runs) {
        let smooth = moving_average(&r.losses, 20);
        let hit = smooth.iter().find(|p| p.1 < 1.0).map(|p| p.0 as usize);
        println!(
            "({}) {}: smoothed training loss < 1.0 first at step {}",
            c.part,
            c.name,
            hit.map_or("never".to_string(), |s| s.to_string())
        );
    }

    for part in ['a', 'b'] {
        let pick = |f: &dyn Fn(&Run) -> Vec<(f64, f64)>| -> Vec<Series> {
            cfgs.iter()
                .zip(&runs)
                .filter(|(c, _)| c.part == part)
                .map(|(c, r)| Series::new(c.name.clone(), f(r)))
                .collect()
        };
        line_chart(
            &dir.join(format!("depth_{part}_loss.svg")),
            "training loss (moving average of 20 steps, clipped at 3)",
            ("step", "cross-entropy"),
            &pick(&|r| moving_average(&r.losses, 20)),
            Some((0.0, 3.0)),
        )?;
        line_chart(
            &dir.join(format!("depth_{part}_grad_first.svg")),
            "first layer's gradient norm per step",
            ("step", "log10 ‖dL/dW_first‖"),
            &pick(&|r| {
                r.first_grads
                    .iter()
                    .enumerate()
                    .map(|(i, g)| (i as f64, g.log10()))
                    .collect()
            }),
            None,
        )?;
    }
    println!(
        "\nfigures: {0}/depth_a_loss.svg, {0}/depth_a_grad_first.svg, {0}/depth_b_loss.svg, {0}/depth_b_grad_first.svg",
        dir.display()
    );
    Ok(())
}
