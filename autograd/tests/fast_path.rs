//! The first-order fast path (`Op::backward_values`, used by `Var::backward`) must give the
//! same gradients as the `Var` rules (used by `Tape::grad`, and checked against finite
//! differences and PyTorch elsewhere). Every op that has a fast path is compared here, on
//! random shapes and values, through both entry points.

use autograd::testing::{away_from, matmul_pair, positive, shapes, tensor, tensor_with};
use autograd::{
    assert_close, set_conv_algorithm, Conv2dArgs, ConvAlgorithm, MaxPool2dArgs, Param, Shape, Tape,
    Tensor, Var,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed};

fn config() -> Config {
    Config {
        cases: 32,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(0x6661_7374_7061_7468),
        failure_persistence: None,
        ..Config::default()
    }
}

type Build = for<'t> fn(&[Var<'t, f64>]) -> Var<'t, f64>;

/// Gradients of `sum(f(xs) · c)` by `backward` (fast path, into Params) and by `vjp`
/// (Var rules), for a fixed cotangent `c`.
fn both_paths<F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>>(
    f: F,
    xs: &[Tensor<f64>],
) -> (Vec<Tensor<f64>>, Vec<Tensor<f64>>) {
    let params: Vec<Param<f64>> = xs.iter().map(|x| Param::new(x.clone())).collect();
    let tape = Tape::new();
    let vars: Vec<_> = params.iter().map(|p| tape.param(p)).collect();
    let y = f(&vars);
    let c = Tensor::from_fn(y.shape(), |i| 0.5 + (i % 7) as f64 * 0.25).unwrap();
    let cot = tape.constant(c.clone());
    let by_vjp: Vec<Tensor<f64>> = tape
        .vjp(y, cot, &vars)
        .unwrap()
        .iter()
        .map(|g| g.value())
        .collect();
    y.backward_with(c).unwrap();
    // An input the output does not depend on has no gradient in its Param; vjp says zero.
    let by_backward = params
        .iter()
        .map(|p| p.grad().unwrap_or_else(|| p.value().zeros_like()))
        .collect();
    (by_backward, by_vjp)
}

fn agree<F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>>(f: F, xs: &[Tensor<f64>]) {
    let (fast, rule) = both_paths(f, xs);
    for (a, b) in fast.iter().zip(&rule) {
        assert_close!(a, b, atol = 1e-14, rtol = 1e-13);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn elementwise_fast_paths_match_the_var_rules(
        x in tensor(shapes(1..=3, 1..=4)),
    ) {
        let y = x.map(|v| v * 0.7 + 0.3);
        let ops: [Build; 9] = [
            |v| v[0].add(v[1]).unwrap(),
            |v| v[0].sub(v[1]).unwrap(),
            |v| v[0].mul(v[1]).unwrap(),
            |v| v[0].add_scalar(1.5).mul_scalar(-2.0).rsub_scalar(0.25).div_scalar(3.0),
            |v| v[0].neg().exp(),
            |v| v[0].square(),
            |v| v[0].tanh(),
            |v| v[0].sigmoid(),
            |v| v[0].sum_axes(&[-1], true).unwrap().mul(v[1].sum()).unwrap(),
        ];
        for f in ops {
            agree(f, &[x.clone(), y.clone()]);
        }
    }

    #[test]
    fn positive_domain_fast_paths_match_the_var_rules(
        x in tensor_with(shapes(1..=2, 1..=4), positive(0.2, 3.0)),
    ) {
        agree(|v| v[0].ln(), std::slice::from_ref(&x));
        agree(|v| v[0].sqrt(), std::slice::from_ref(&x));
    }

    #[test]
    fn relu_fast_path_matches_the_var_rule(
        x in tensor_with(shapes(1..=3, 1..=4), away_from(&[0.0], 0.05)),
    ) {
        agree(|v| v[0].relu(), &[x]);
    }

    // Batched pairs take the Var rule in both paths (the fast path declines them), so
    // they check that the fallback inside backward is wired correctly.
    #[test]
    fn matmul_fast_path_matches_the_var_rule(p in matmul_pair(2, 5, true)) {
        let f: Build = match (p.ta, p.tb) {
            (false, false) => |v| v[0].matmul_t(v[1], false, false).unwrap(),
            (false, true) => |v| v[0].matmul_t(v[1], false, true).unwrap(),
            (true, false) => |v| v[0].matmul_t(v[1], true, false).unwrap(),
            (true, true) => |v| v[0].matmul_t(v[1], true, true).unwrap(),
        };
        agree(f, &[p.a, p.b]);
    }
}

/// A convolution's operands (input, weight, bias) and arguments: every stride, padding,
/// dilation and group count up to 2 (padding 3), inputs from one window to a few more.
fn conv_operands() -> impl Strategy<Value = (Vec<Tensor<f64>>, Conv2dArgs)> {
    (
        (1usize..=2, 1usize..=2, 1usize..=3, 1usize..=2),
        (1usize..=3, 1usize..=3, 1usize..=2, 1usize..=2),
        (
            0usize..=3,
            0usize..=2,
            1usize..=2,
            1usize..=2,
            0usize..=4,
            0usize..=4,
        ),
    )
        .prop_flat_map(
            |((n, groups, cig, cog), (kh, kw, sh, sw), (ph, pw, dh, dw, exh, exw))| {
                let (h, w) = (dh * (kh - 1) + 1 + exh, dw * (kw - 1) + 1 + exw);
                let args = Conv2dArgs {
                    stride: (sh, sw),
                    padding: (ph, pw),
                    dilation: (dh, dw),
                    groups,
                };
                (
                    tensor(Just(Shape::from([n, groups * cig, h, w]))),
                    tensor(Just(Shape::from([groups * cog, cig, kh, kw]))),
                    tensor(Just(Shape::from([groups * cog]))),
                    Just(args),
                )
            },
        )
        .prop_map(|(x, w, b, args)| (vec![x, w, b], args))
}

proptest! {
    #![proptest_config(config())]

    /// conv2d's kernels (both algorithms; the setting is read when the op is recorded)
    /// against its composed Var rule, for every input, with and without a bias.
    #[test]
    fn conv2d_fast_path_matches_the_var_rule((xs, args) in conv_operands()) {
        // The setting is read when the op is recorded; the lock keeps the other test that
        // switches it from doing so meanwhile.
        let _only_us = crate::CONV_ALGORITHM
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for algo in [ConvAlgorithm::Im2colGemm, ConvAlgorithm::Direct] {
            set_conv_algorithm(algo);
            agree(|v| v[0].conv2d(v[1], Some(v[2]), args).unwrap(), &xs);
            agree(|v| v[0].conv2d(v[1], None, args).unwrap().add(v[2].sum()).unwrap(), &xs);
        }
        set_conv_algorithm(ConvAlgorithm::Auto);
    }

    /// max_pool2d's scan against its Var rule, overlapping windows, padding and ceil mode
    /// included.
    #[test]
    fn max_pool2d_fast_path_matches_the_var_rule(
        x in tensor(Just(Shape::from([2, 3, 6, 5]))),
        (kh, kw, sh, sw, ceil) in (1usize..=3, 1usize..=3, 1usize..=3, 1usize..=3, any::<bool>()),
    ) {
        let args = MaxPool2dArgs {
            stride: Some((sh, sw)),
            padding: (kh / 2, kw / 2),
            ceil_mode: ceil,
            ..MaxPool2dArgs::default()
        };
        agree(|v| v[0].max_pool2d_args((kh, kw), args).unwrap(), &[x]);
    }
}

#[test]
fn the_fast_path_skips_inputs_that_need_no_gradient() {
    // y = x·W with x a constant: only W gets a gradient, and it is xᵀ·1.
    let w = Param::new(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]).unwrap());
    let tape = Tape::new();
    let x = tape.constant(Tensor::from_vec(vec![1.0, 0.0, 2.0, 1.0], [2, 2]).unwrap());
    x.matmul(tape.param(&w)).unwrap().sum().backward().unwrap();
    // column sums of x, repeated for each output column: [1+2, 1+2], [0+1, 0+1]
    assert_eq!(w.grad().unwrap().to_vec(), vec![3.0, 3.0, 1.0, 1.0]);
}
