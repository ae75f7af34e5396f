//! Size arithmetic on user-given shapes, offsets, windows and paddings never overflows:
//! huge and zero dimensions, paddings, strides, dilations and offsets thrown at every
//! constructor, reshape, slice, conv and pool give a typed error or a correct result —
//! never a panic, never `Ok` over a wrapped size.
//!
//! The oracles compute sizes in `u128`, where nothing here can wrap. Run this file both
//! ways, since a wrapped product panics in one and silently succeeds in the other:
//!
//! ```text
//! cargo test -p gradlab-autograd --test overflow                      # overflow checks on
//! cargo test -p gradlab-autograd --test overflow --profile overflow   # overflow checks off
//! ```
//!
//! "Huge" is chosen so that no case allocates much: a size is either at most a few
//! thousand elements, or at least 2⁴⁷ bytes, more than the address space of x86-64 user
//! space, so the allocation fails (as a typed error) even with overcommit.

use autograd::{
    ops::PadMode, AvgPool2dArgs, Conv1dArgs, Conv2dArgs, ConvTranspose1dArgs, ConvTranspose2dArgs,
    Error, MaxPool2dArgs, Shape, Tape, Tensor, Var, MAX_NUMEL,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed};

fn config() -> Config {
    Config {
        cases: 256,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(0x6f76_6572_666c_6f77),
        failure_persistence: None,
        ..Config::default()
    }
}

/// The smallest "huge" size: 2⁴⁴ f64 elements are 2⁴⁷ bytes.
const HUGE: usize = 1 << 44;
/// Sizes up to this many elements are computed for real.
const SMALL: u128 = 4096;

/// Values that break size arithmetic: 0, small ones, powers of two whose products wrap,
/// the 3·K ≡ 2000 (mod 2⁶⁴) of the issue, and the top of the range.
fn size() -> BoxedStrategy<usize> {
    prop_oneof![
        3 => 0usize..=4,
        1 => Just(0usize),
        1 => HUGE..=usize::MAX,
        1 => prop::sample::select(vec![
            1usize << 48,
            1 << 62,
            usize::MAX,
            usize::MAX / 2,
            usize::MAX / 3 + 1,
            0x5555_5555_5555_57f0, // 3·this wraps to 2000
            MAX_NUMEL,
            MAX_NUMEL + 1,
        ]),
    ]
    .boxed()
}

fn dims() -> BoxedStrategy<Vec<usize>> {
    prop::collection::vec(size(), 0..=4).boxed()
}

/// Product of the nonzero dims and the element count, in u128 (which cannot wrap for up
/// to four 64-bit factors... nearly: saturate to be safe).
fn sizes(dims: &[usize]) -> (u128, u128) {
    let mut nonzero = 1u128;
    let mut numel = 1u128;
    for &d in dims {
        numel = numel.saturating_mul(d as u128);
        if d != 0 {
            nonzero = nonzero.saturating_mul(d as u128);
        }
    }
    (nonzero, numel)
}

/// What a constructor must do with `dims`: `Some(numel)` when it must succeed, `None` when
/// it must fail with `TooLarge` (too many elements, or more than memory can hold).
fn expected(dims: &[usize]) -> Option<usize> {
    let (nonzero, numel) = sizes(dims);
    if nonzero > MAX_NUMEL as u128 {
        return None; // no tensor can have this shape
    }
    if numel == 0 || numel <= SMALL {
        return Some(numel as usize);
    }
    assert!(numel >= HUGE as u128, "test bug: a mid-size shape {dims:?}");
    None // valid, but the allocation is refused
}

fn too_large<T>(r: &autograd::Result<T>) -> bool {
    matches!(r, Err(Error::TooLarge { .. }))
}

/// Checks a constructor's result against the oracle.
fn check_built(
    what: &str,
    dims: &[usize],
    r: autograd::Result<Tensor<f64>>,
) -> Result<(), TestCaseError> {
    match (expected(dims), r) {
        (Some(n), Ok(t)) => {
            prop_assert_eq!(t.dims(), dims, "{}", what);
            prop_assert_eq!(t.numel(), n, "{}", what);
            prop_assert_eq!(t.as_slice().len(), n, "{}", what);
        }
        (None, Err(Error::TooLarge { shape, .. })) => {
            prop_assert_eq!(shape.dims(), dims, "{}", what);
        }
        (want, got) => {
            return Err(TestCaseError::fail(format!(
                "{what}{dims:?}: expected {want:?} elements, got {got:?}"
            )))
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn constructors_refuse_shapes_they_cannot_hold(d in dims(), seed in any::<u64>()) {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        check_built("zeros", &d, Tensor::zeros(d.clone()))?;
        check_built("ones", &d, Tensor::ones(d.clone()))?;
        check_built("full", &d, Tensor::full(d.clone(), 2.5))?;
        check_built("from_fn", &d, Tensor::from_fn(d.clone(), |i| i as f64))?;
        check_built("rand", &d, Tensor::rand(d.clone(), &mut rng))?;
        check_built("randn", &d, Tensor::randn(d.clone(), &mut rng))?;
        check_built("uniform", &d, Tensor::uniform(d.clone(), -1.0, 1.0, &mut rng))?;
        let s = Shape::from(d.clone());
        match expected(&d) {
            Some(n) => prop_assert_eq!(s.checked_numel(), Some(n)),
            None if sizes(&d).0 > MAX_NUMEL as u128 => {
                prop_assert_eq!(s.checked_numel(), None);
                prop_assert!(too_large(&s.check("t")));
            }
            None => prop_assert!(s.checked_numel().is_some()),
        }
    }

    #[test]
    fn arange_and_eye_refuse_sizes_they_cannot_hold(n in size()) {
        check_built("arange", &[n], Tensor::arange(n))?;
        check_built("eye", &[n, n], Tensor::eye(n))?;
    }

    #[test]
    fn from_vec_never_accepts_a_wrapped_count(d in dims(), len in 0usize..=8) {
        let r = Tensor::from_vec(vec![1.0f64; len], d.clone());
        let (nonzero, numel) = sizes(&d);
        match r {
            Ok(t) => {
                prop_assert!(nonzero <= MAX_NUMEL as u128 && numel == len as u128, "{d:?}");
                prop_assert_eq!(t.numel(), len);
            }
            Err(Error::TooLarge { .. }) => prop_assert!(nonzero > MAX_NUMEL as u128),
            Err(Error::ShapeMismatch { .. }) => prop_assert!(numel != len as u128),
            Err(e) => return Err(TestCaseError::fail(format!("{d:?}: {e}"))),
        }
    }

    #[test]
    fn reshape_and_broadcast_to_check_the_target_shape(d in dims(), src in 1usize..=3) {
        let t = Tensor::<f64>::from_fn([src], |i| i as f64).unwrap();
        let (nonzero, numel) = sizes(&d);
        match t.reshape(d.clone()) {
            Ok(r) => prop_assert_eq!(r.dims(), &d[..]),
            Err(Error::TooLarge { .. }) => prop_assert!(nonzero > MAX_NUMEL as u128),
            Err(Error::ShapeMismatch { .. }) => prop_assert!(numel != src as u128),
            Err(e) => return Err(TestCaseError::fail(format!("{d:?}: {e}"))),
        }
        let tape = Tape::new();
        let v = tape.var(t.clone());
        match v.reshape(d.clone()) {
            Ok(r) => prop_assert_eq!(r.dims(), d.clone()),
            Err(Error::TooLarge { .. } | Error::ShapeMismatch { .. }) => {}
            Err(e) => return Err(TestCaseError::fail(format!("{d:?}: {e}"))),
        }
        // A one-element source broadcasts to any shape a tensor can have.
        let one = Tensor::<f64>::scalar(3.0);
        check_built("broadcast_to", &d, one.broadcast_to(d.clone()))?;
        match t.broadcast_to(d.clone()) {
            Ok(b) => {
                prop_assert_eq!(b.dims(), &d[..]);
                prop_assert_eq!(b.as_slice().len() as u128, numel);
            }
            Err(Error::Broadcast { .. } | Error::TooLarge { .. }) => {}
            Err(e) => return Err(TestCaseError::fail(format!("{d:?}: {e}"))),
        }
    }

    #[test]
    fn broadcasting_ops_check_the_result_shape(k in size(), j in size()) {
        // [k, 1, 0] and [1, j, 0] are both empty; their broadcast [k, j, 0] is valid only
        // when k·j fits.
        let (a, b) = (Tensor::<f64>::zeros([k, 1, 0]), Tensor::<f64>::zeros([1, j, 0]));
        let (Ok(a), Ok(b)) = (a, b) else {
            // k or j alone is past the limit
            prop_assert!(k > MAX_NUMEL || j > MAX_NUMEL);
            return Ok(());
        };
        let fits = (k.max(1) as u128) * (j.max(1) as u128) <= MAX_NUMEL as u128;
        match a.add(&b) {
            Ok(c) => {
                prop_assert!(fits);
                prop_assert_eq!(c.dims(), &[k, j, 0]);
            }
            Err(Error::TooLarge { .. }) => prop_assert!(!fits),
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
        let tape = Tape::new();
        let r = tape.var(a.clone()).mul(tape.var(b.clone()));
        prop_assert_eq!(r.is_ok(), fits);
        prop_assert!(r.is_ok() || too_large(&r));
    }

    #[test]
    fn matmul_checks_its_output_shape(m in size(), n in size(), batch in size()) {
        // k = 0 operands exist for any m, n; the product [batch, m, n] may not.
        let a = Tensor::<f64>::zeros([batch, m, 0]);
        let b = Tensor::<f64>::zeros([0, n]);
        let (Ok(a), Ok(b)) = (a, b) else { return Ok(()) };
        let d = [batch, m, n];
        match a.matmul(&b) {
            Ok(c) => {
                prop_assert_eq!(Some(c.numel()), expected(&d));
                prop_assert!(c.as_slice().iter().all(|&x| x == 0.0));
            }
            Err(Error::TooLarge { .. }) => prop_assert_eq!(expected(&d), None),
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
    }

    #[test]
    fn concat_checks_the_joined_length(k in size(), j in size()) {
        let (Ok(a), Ok(b)) = (Tensor::<f64>::zeros([k, 0]), Tensor::<f64>::zeros([j, 0])) else {
            return Ok(());
        };
        let total = k as u128 + j as u128;
        match Tensor::concat(&[&a, &b], 0) {
            Ok(c) => prop_assert_eq!(c.dims()[0] as u128, total),
            Err(Error::TooLarge { .. }) => prop_assert!(total > MAX_NUMEL as u128),
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
    }

    #[test]
    fn flat_gathers_and_scatters_check_their_shape(d in dims()) {
        let src = Tensor::<f64>::zeros([0]).unwrap();
        let (nonzero, numel) = sizes(&d);
        // No indices: fine exactly when the shape is empty and valid.
        match src.gather_flat(&[], d.clone(), 0.0) {
            Ok(t) => prop_assert!(numel == 0 && nonzero <= MAX_NUMEL as u128 && t.numel() == 0),
            Err(Error::TooLarge { .. }) => prop_assert!(nonzero > MAX_NUMEL as u128),
            Err(Error::InvalidArgument { .. }) => prop_assert!(numel != 0),
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
        // Scattering nothing into a shape allocates the whole shape.
        check_built("scatter_add_flat", &d, src.scatter_add_flat(&[], d.clone()))?;
    }

    #[test]
    fn narrow_and_slice_bounds_never_wrap(
        start in size(), len in size(), dim in 0usize..=5,
        s0 in any::<isize>(), s1 in proptest::option::of(any::<isize>()), step in size(),
    ) {
        let tape = Tape::new();
        let x = tape.var(Tensor::<f64>::from_fn([2, dim], |i| i as f64).unwrap());
        match x.narrow(1, start, len) {
            Ok(y) => {
                prop_assert!(start as u128 + len as u128 <= dim as u128);
                prop_assert_eq!(y.dims(), vec![2, len]);
                let want: Vec<f64> = (0..2)
                    .flat_map(|r| (start..start + len).map(move |c| (r * dim + c) as f64))
                    .collect();
                prop_assert_eq!(y.value().to_vec(), want);
            }
            Err(Error::InvalidArgument { .. }) => {
                prop_assert!(start as u128 + len as u128 > dim as u128);
            }
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
        // Python's slice rules, in i128.
        match x.slice(1, s0, s1, step) {
            Ok(y) => {
                prop_assert!(step > 0);
                let n = dim as i128;
                let clamp = |i: i128| if i < 0 { (i + n).max(0) } else { i.min(n) };
                let (a, b) = (clamp(s0 as i128), clamp(s1.map_or(n, |e| e as i128)));
                let count = if b > a { (b - a - 1) / step as i128 + 1 } else { 0 };
                prop_assert_eq!(y.dims(), vec![2, count as usize]);
            }
            Err(Error::InvalidArgument { .. }) => prop_assert_eq!(step, 0),
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
        match x.index_select(1, &[start]) {
            Ok(y) => prop_assert!(start < dim && y.dims() == vec![2, 1]),
            Err(Error::InvalidArgument { .. }) => prop_assert!(start >= dim),
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
    }

    #[test]
    fn gather_checks_the_index_shape(d in dims()) {
        let tape = Tape::new();
        let x = tape.var(Tensor::<f64>::zeros([2, 3]).unwrap());
        // Never Ok for a shape that is not [i ≤ 2, j] with i·j indices given (none here).
        let r = x.gather(1, &[], d.clone());
        if let Ok(y) = &r {
            let (_, numel) = sizes(&d);
            prop_assert!(numel == 0 && d.len() == 2 && d[0] <= 2);
            prop_assert_eq!(y.value().numel(), 0);
        } else {
            let typed = matches!(r, Err(Error::TooLarge { .. } | Error::InvalidArgument { .. }));
            prop_assert!(typed, "{:?}", r);
        }
    }

    #[test]
    fn empty_inputs_with_huge_extents_never_loop_or_allocate_blindly(
        k in size(), p in padding(),
    ) {
        // [k, 0] is empty for any k ≤ MAX_NUMEL; what is computed from it need not be.
        let Ok(x) = Tensor::<f64>::zeros([k, 0]) else { return Ok(()) };
        if let Ok(s) = x.sum_axes(&[1], false) {
            prop_assert!(s.as_slice().iter().all(|&v| v == 0.0));
        }
        check_built("sum", &[k], x.sum_axes(&[1], false))?;
        let tape = Tape::new();
        let v = tape.var(x);
        prop_assert_eq!(v.narrow(1, 0, 0).unwrap().dims(), vec![k, 0]);
        prop_assert_eq!(v.slice(1, 0, None, 1).unwrap().dims(), vec![k, 0]);
        prop_assert_eq!(v.index_select(1, &[]).unwrap().dims(), vec![k, 0]);
        prop_assert_eq!(v.t().unwrap().dims(), vec![0, k]);
        prop_assert_eq!(Var::concat(&[v, v], 1).unwrap().dims(), vec![k, 0]);
        // No input channels: the windows of a padded image hold nothing, the output zeros.
        let img = tape.var(Tensor::<f64>::zeros([1, 0, 2, 2]).unwrap());
        let w = tape.var(Tensor::<f64>::zeros([1, 0, 1, 1]).unwrap());
        let args = Conv2dArgs { padding: (p, p), ..Conv2dArgs::default() };
        let side = window_count(2, 1, 1, p, 1);
        match img.conv2d(w, None, args) {
            Ok(y) => {
                let side = side.unwrap() as usize;
                prop_assert_eq!(y.dims(), vec![1, 1, side, side]);
                prop_assert!(y.value().as_slice().iter().all(|&v| v == 0.0));
            }
            Err(Error::TooLarge { .. }) => prop_assert!(side.is_some_and(|s| s * s >= HUGE as u128)),
            Err(Error::InvalidArgument { .. }) => prop_assert!(side.is_none()),
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
    }

    #[test]
    fn conv2d_validates_every_argument(
        stride in (conv_arg(), conv_arg()),
        padding in (padding(), padding()),
        dilation in (conv_arg(), conv_arg()),
        groups in conv_arg(),
        kernel in (0usize..=3, 0usize..=3),
        (h, w) in (1usize..=5, 1usize..=5),
        (cin, cout) in (1usize..=2, 1usize..=2),
    ) {
        let tape = Tape::new();
        let x = tape.var(Tensor::<f64>::from_fn([1, cin, h, w], |i| i as f64).unwrap());
        let cpg = if groups > 0 && groups <= cin { cin / groups } else { cin };
        let wt = tape.var(Tensor::<f64>::ones([cout, cpg, kernel.0, kernel.1]).unwrap());
        let args = Conv2dArgs { stride, padding, dilation, groups };
        let oh = window_count(h, kernel.0, stride.0, padding.0, dilation.0);
        let ow = window_count(w, kernel.1, stride.1, padding.1, dilation.1);
        let groups_ok = groups > 0 && cin % groups == 0 && cout % groups == 0
            && cpg * groups == cin;
        // im2col holds one index per (window, input channel of a group, tap)
        let taps = oh.zip(ow).map(|(a, b)| a * b * (cpg * kernel.0 * kernel.1) as u128);
        prop_assume!(!mid_size(taps));
        match x.conv2d(wt, None, args) {
            Ok(y) => {
                prop_assert!(groups_ok);
                let (oh, ow) = (oh.unwrap(), ow.unwrap());
                prop_assert_eq!(y.dims(), vec![1, cout, oh as usize, ow as usize]);
            }
            Err(Error::TooLarge { .. }) => {
                // the windows of a huge padding
                prop_assert!(groups_ok && taps.unwrap() >= HUGE as u128);
            }
            Err(Error::InvalidArgument { .. }) => {
                prop_assert!(!groups_ok || taps.is_none());
            }
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
    }

    #[test]
    fn pooling_validates_every_argument(
        kernel in (pool_size(), pool_size()),
        stride in proptest::option::of((conv_arg(), conv_arg())),
        padding in (padding(), padding()),
        (h, w) in (1usize..=5, 1usize..=5),
    ) {
        let tape = Tape::new();
        let x = tape.var(Tensor::<f64>::from_fn([1, 2, h, w], |i| i as f64).unwrap());
        let s = stride.unwrap_or(kernel);
        let half = padding.0 <= kernel.0 / 2 && padding.1 <= kernel.1 / 2;
        let oh = window_count(h, kernel.0, s.0, padding.0, 1).filter(|_| half);
        let ow = window_count(w, kernel.1, s.1, padding.1, 1).filter(|_| half);
        let taps = oh.zip(ow).map(|(a, b)| a * b * kernel.0 as u128 * kernel.1 as u128);
        prop_assume!(!mid_size(taps));
        for r in [
            x.max_pool2d(kernel, stride, padding),
            x.avg_pool2d(kernel, stride, padding),
        ] {
            match (r, oh.zip(ow)) {
                (Ok(y), Some((oh, ow))) => {
                    prop_assert_eq!(y.dims(), vec![1, 2, oh as usize, ow as usize]);
                }
                (Err(Error::TooLarge { .. }), Some(_)) => {
                    prop_assert!(taps.unwrap() >= HUGE as u128);
                }
                (Err(Error::InvalidArgument { .. }), None) => {}
                (r, want) => {
                    return Err(TestCaseError::fail(format!("{r:?}, expected {want:?}")))
                }
            }
        }
    }
}

/// Windows along one axis of size `n` (kernel `k`, stride `s`, padding `p`, dilation `d`),
/// in u128; `None` when there is none: a zero argument, a window that does not fit, or a
/// padded size or span that does not fit in a usize (the ops refuse those too).
fn window_count(n: usize, k: usize, s: usize, p: usize, d: usize) -> Option<u128> {
    let padded = n as u128 + 2 * p as u128;
    let span = d as u128 * (k as u128).checked_sub(1)? + 1;
    let fits = s > 0 && d > 0 && padded >= span;
    let representable = padded <= usize::MAX as u128 && span <= usize::MAX as u128;
    (fits && representable).then(|| (padded - span) / s as u128 + 1)
}

/// Between "computed for real" and "too large to allocate anywhere": such a case would
/// really allocate gigabytes, so it is skipped (the strategies make it rare).
fn mid_size(count: Option<u128>) -> bool {
    count.is_some_and(|c| c > 1 << 16 && c < HUGE as u128)
}

/// Strides, dilations and groups: 0 (invalid), small, or huge.
fn conv_arg() -> BoxedStrategy<usize> {
    prop_oneof![1 => Just(0usize), 4 => 1usize..=3, 1 => HUGE..=usize::MAX].boxed()
}

/// Paddings: small, or so large that the padded size is unallocatable (or overflows).
fn padding() -> BoxedStrategy<usize> {
    prop_oneof![4 => 0usize..=2, 1 => HUGE..=usize::MAX, 1 => Just(usize::MAX / 2)].boxed()
}

/// Pooling windows: 0, small, or huge (never fits, and 2·p ≤ k must not overflow).
fn pool_size() -> BoxedStrategy<usize> {
    prop_oneof![1 => Just(0usize), 4 => 1usize..=3, 1 => HUGE..=usize::MAX].boxed()
}

/// The cases of the issue, one by one.
#[test]
fn the_reported_cases_are_typed_errors() {
    // 3·K ≡ 2000 (mod 2⁶⁴): the element count wrapped and a matmul then read out of bounds
    let k = 0x5555_5555_5555_57f0usize;
    assert_eq!(k.wrapping_mul(3), 2000);
    let e = Tensor::from_vec(vec![1.0f64; 2000], [3, k]).unwrap_err();
    assert!(matches!(e, Error::TooLarge { op: "from_vec", .. }), "{e}");
    // zeros([2³², 2³²]) was a tensor over an empty buffer
    let e = Tensor::<f32>::zeros([1 << 32, 1 << 32]).unwrap_err();
    assert!(matches!(e, Error::TooLarge { op: "zeros", .. }), "{e}");
    assert!(e.to_string().starts_with(
        "zeros: a tensor of shape [4294967296, 4294967296] is too large to represent or allocate (at "
    ));
    // narrow(1, usize::MAX, 2) was an empty slice
    let tape = Tape::new();
    let x = tape.var(Tensor::<f64>::zeros([2, 3]).unwrap());
    let e = x.narrow(1, usize::MAX, 2).unwrap_err();
    assert!(e.to_string().contains("exceeds axis 1 of size 3"), "{e}");
    // conv: dilation 0, stride 0, a kernel with a zero dimension, an overflowing padding
    let img = tape.var(Tensor::<f64>::zeros([1, 1, 4, 4]).unwrap());
    let w = tape.var(Tensor::<f64>::zeros([1, 1, 2, 2]).unwrap());
    let w0 = tape.var(Tensor::<f64>::zeros([1, 1, 0, 2]).unwrap());
    let args = Conv2dArgs::default();
    for (a, kernel, why) in [
        (
            Conv2dArgs {
                dilation: (0, 1),
                ..args
            },
            w,
            "dilation must be positive",
        ),
        (
            Conv2dArgs {
                stride: (1, 0),
                ..args
            },
            w,
            "stride must be positive",
        ),
        (
            Conv2dArgs { groups: 0, ..args },
            w,
            "groups must be positive",
        ),
        (args, w0, "kernel size must be positive"),
        (
            Conv2dArgs {
                padding: (usize::MAX / 2 + 1, 0),
                ..args
            },
            w,
            "padded size overflows",
        ),
    ] {
        let e = img.conv2d(kernel, None, a).unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument { op: "conv2d", .. }),
            "{e}"
        );
        assert!(e.to_string().contains(why), "{why}: {e}");
        // the user's line, not the library's
        assert_eq!(e.location().unwrap().file(), file!(), "{e}");
    }
    let e = img.max_pool2d((2, 2), Some((0, 1)), (0, 0)).unwrap_err();
    assert!(e.to_string().contains("stride must be positive"), "{e}");
    assert_eq!(e.location().unwrap().file(), file!(), "{e}");
    let e = img.max_pool2d((2, 0), None, (0, 0)).unwrap_err();
    assert!(
        e.to_string().contains("kernel size must be positive"),
        "{e}"
    );
    let e = img.avg_pool2d((2, 2), None, (usize::MAX, 0)).unwrap_err();
    assert!(e.to_string().contains("at most half the kernel"), "{e}");
    let e = img
        .max_pool2d((usize::MAX, 1), None, (usize::MAX / 2, 0))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
}

// --- the layout, scan, sort and einsum ops -------------------------------------------

/// A small input: rank 1 to 3, each dimension 0 to 3.
fn small_dims() -> BoxedStrategy<Vec<usize>> {
    prop::collection::vec(0usize..=3, 1..=3).boxed()
}

fn ramp(dims: &[usize]) -> Tensor<f64> {
    Tensor::from_fn(dims.to_vec(), |i| i as f64 + 1.0).unwrap()
}

/// What an op computing output `dims` must return, given whether its own argument checks
/// (`valid`) pass: InvalidArgument when they do not, else the constructors' oracle.
fn check_output<T>(
    what: &str,
    valid: bool,
    dims: &[u128],
    r: &autograd::Result<Var<'_, T>>,
) -> Result<(), TestCaseError>
where
    T: autograd::Float,
{
    let fits = dims.iter().all(|&d| d <= usize::MAX as u128);
    match r {
        Err(Error::InvalidArgument { .. }) if !valid || !fits => {}
        Ok(y) if valid && fits => {
            let dims: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
            prop_assert!(
                expected(&dims).is_some(),
                "{what}{dims:?}: Ok for a shape it cannot hold"
            );
            prop_assert_eq!(y.dims(), dims, "{}", what);
        }
        Err(Error::TooLarge { .. }) if valid && fits => {
            let dims: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
            prop_assert!(
                expected(&dims).is_none(),
                "{what}{dims:?}: TooLarge for a small shape"
            );
        }
        other => {
            return Err(TestCaseError::fail(format!(
                "{what}: valid {valid}, dims {dims:?}, got {other:?}"
            )))
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn pad_checks_the_padded_shape(
        d in small_dims(),
        pads in prop::collection::vec(size(), 0..=6),
        mode in 0usize..4,
    ) {
        let tape = Tape::new();
        let x = tape.var(ramp(&d));
        let mode = [PadMode::Constant(0.5), PadMode::Reflect, PadMode::Replicate, PadMode::Circular][mode];
        let r = d.len();
        let mut valid = pads.len() % 2 == 0 && pads.len() / 2 <= r;
        let mut out: Vec<u128> = d.iter().map(|&n| n as u128).collect();
        if valid {
            for (k, pair) in pads.chunks(2).enumerate() {
                let (axis, b, a) = (r - 1 - k, pair[0], pair[1]);
                let n = d[axis];
                let widest = b.max(a);
                valid &= match mode {
                    PadMode::Reflect => widest == 0 || widest < n,
                    PadMode::Replicate => widest == 0 || n > 0,
                    PadMode::Circular => widest <= n,
                    PadMode::Constant(_) => true,
                };
                out[axis] += b as u128 + a as u128;
            }
        }
        let y = x.pad(&pads, mode);
        check_output("pad", valid, &out, &y)?;
        if let (Ok(y), PadMode::Constant(_)) = (&y, mode) {
            // every input element once, the rest the fill
            let v = y.value();
            let fill = v.as_slice().iter().filter(|&&e| e == 0.5).count();
            prop_assert_eq!(fill + x.value().numel(), v.numel());
        }
    }

    #[test]
    fn repeat_checks_the_tiled_shape(
        d in prop::collection::vec(0usize..=3, 0..=2),
        repeats in prop::collection::vec(size(), 0..=3),
    ) {
        let tape = Tape::new();
        let x = tape.var(ramp(&d));
        let valid = repeats.len() >= d.len() && repeats.len() <= d.len() + 1;
        prop_assume!(repeats.len() <= d.len() + 1);
        let lead = repeats.len().saturating_sub(d.len());
        let own = std::iter::repeat_n(1usize, lead).chain(d.iter().copied());
        let out: Vec<u128> = own.zip(&repeats).map(|(n, &k)| n as u128 * k as u128).collect();
        check_output("repeat", valid, &out, &x.repeat(&repeats))?;
    }

    #[test]
    fn expand_checks_the_target_shape(
        d in prop::collection::vec(1usize..=2, 0..=2),
        lead in prop::collection::vec(size(), 0..=2),
        keep in any::<bool>(),
    ) {
        // new leading axes of any size; existing ones kept (-1) or their own size
        let tape = Tape::new();
        let x = tape.var(ramp(&d));
        let lead: Vec<usize> = lead.iter().map(|&s| s.min(isize::MAX as usize)).collect();
        let mut sizes: Vec<isize> = lead.iter().map(|&s| s as isize).collect();
        sizes.extend(d.iter().map(|&n| if keep { -1 } else { n as isize }));
        let out: Vec<u128> = lead.iter().chain(&d).map(|&n| n as u128).collect();
        check_output("expand", true, &out, &x.expand(&sizes))?;
    }

    #[test]
    fn empty_inputs_with_huge_extents_in_layout_scan_and_sort_ops(k in size(), c in size()) {
        // [k, 0] is empty for any k ≤ MAX_NUMEL: flips, rolls, scans and sorts of it must
        // neither loop over k nor build per-axis maps of length k.
        let Ok(x) = Tensor::<f64>::zeros([k, 0]) else { return Ok(()) };
        let tape = Tape::new();
        let v = tape.var(x);
        prop_assert_eq!(v.flip(&[0, 1]).unwrap().dims(), vec![k, 0]);
        prop_assert_eq!(v.roll(&[3, -2], &[0, 1]).unwrap().dims(), vec![k, 0]);
        prop_assert_eq!(v.roll(&[5], &[]).unwrap().dims(), vec![k, 0]);
        prop_assert_eq!(v.repeat(&[1, 1]).unwrap().dims(), vec![k, 0]);
        prop_assert_eq!(v.pad(&[0, 0, 0, 0], PadMode::Reflect).unwrap().dims(), vec![k, 0]);
        prop_assert_eq!(v.tril(0).unwrap().dims(), vec![k, 0]);
        prop_assert_eq!(v.cumsum(0).unwrap().dims(), vec![k, 0]);
        prop_assert_eq!(v.cumprod(1).unwrap().dims(), vec![k, 0]);
        let (s, i) = v.sort(0, true).unwrap();
        prop_assert_eq!((s.dims(), i.len()), (vec![k, 0], 0));
        let (s, i) = v.topk(0, 0, true).unwrap();
        prop_assert_eq!((s.dims(), i.len()), (vec![0, 0], 0));
        // a repeat or pad of the empty axis still checks the other one
        check_output("repeat", true, &[k as u128 * c as u128, 0], &v.repeat(&[c, 3]))?;
        // chunking an empty axis gives `c` empty pieces: that many must fit in memory
        match v.chunk(c, 1) {
            Ok(pieces) => {
                prop_assert!(c > 0 && c as u128 <= SMALL, "{} pieces", c);
                prop_assert_eq!(pieces.len(), c);
                prop_assert!(pieces.iter().all(|p| p.dims() == vec![k, 0]));
            }
            Err(Error::InvalidArgument { .. }) => prop_assert_eq!(c, 0),
            Err(Error::TooLarge { .. }) => prop_assert!(c as u128 >= HUGE as u128),
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
        // split sizes that wrap when added
        prop_assert!(v.split(&[k, usize::MAX], 0).is_err());
    }

    #[test]
    fn einsum_checks_its_output_and_intermediate_shapes(k in size(), j in size()) {
        // "ab,cd->abcd" of two empty operands: nothing to compute, but the output shape
        // [k, 0, j, 0] must be one a tensor can have.
        let (Ok(x), Ok(y)) = (Tensor::<f64>::zeros([k, 0]), Tensor::<f64>::zeros([j, 0])) else {
            return Ok(());
        };
        let tape = Tape::new();
        let (x, y) = (tape.var(x), tape.var(y));
        let r = Var::einsum("ab,cd->abcd", &[x, y]);
        check_output("einsum", true, &[k as u128, 0, j as u128, 0], &r)?;
        // "ab,cd->ac" sums each operand over its empty axis first: [k] and [j] zeros are
        // real tensors, then their outer product.
        let r = Var::einsum("ab,cd->ac", &[x, y]);
        let parts = expected(&[k]).is_some() && expected(&[j]).is_some();
        match (&r, parts) {
            (Err(Error::TooLarge { .. }), false) => {}
            (_, false) => return Err(TestCaseError::fail(format!("einsum: {r:?} for [{k}], [{j}]"))),
            (_, true) => check_output("einsum", true, &[k as u128, j as u128], &r)?,
        }
    }
}

#[test]
fn npy_headers_with_shapes_no_tensor_can_have_are_refused() {
    use autograd::io::npy::{Npy, NpyError};
    // [0, 2⁶³, 4]: zero elements, so a plain product does not overflow, but its strides do
    for shape in [
        "(0, 9223372036854775808, 4)",
        "(3, 6148914691236517872)",
        "(18446744073709551615, 2)",
    ] {
        let dict = format!("{{'descr': '<f8', 'fortran_order': True, 'shape': {shape}, }}");
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let pad = (64 - (10 + dict.len() + 1) % 64) % 64;
        let header = format!("{dict}{}\n", " ".repeat(pad));
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        let e = Npy::read(&bytes[..]).unwrap_err();
        assert!(matches!(e, NpyError::TooLarge { .. }), "{shape}: {e}");
    }
}

// --- the layer ops: conv1d, transposed convs, pools with every option, resampling ----

/// Output length of a transposed convolution along one axis, in u128:
/// `(n - 1)s - 2p + d(k - 1) + output_padding + 1`, `None` when the arguments are invalid
/// (PyTorch's rules: positive stride, dilation and kernel, output_padding below the stride
/// or the dilation), the length is not positive, or a size does not fit in a usize.
fn transposed_count(n: usize, k: usize, s: usize, p: usize, o: usize, d: usize) -> Option<u128> {
    if n == 0 || k == 0 || s == 0 || d == 0 || (o >= s && o >= d) {
        return None;
    }
    let full = (n as u128 - 1) * s as u128 + d as u128 * (k as u128 - 1) + o as u128 + 1;
    let pad = 2 * p as u128;
    (full <= usize::MAX as u128 && pad <= usize::MAX as u128 && full > pad).then(|| full - pad)
}

/// Output paddings: small, or huge (valid only under a huge stride or dilation).
fn output_padding() -> BoxedStrategy<usize> {
    prop_oneof![4 => 0usize..=2, 1 => HUGE..=usize::MAX].boxed()
}

/// Output sizes of resampling and adaptive pooling: 0, small, or huge.
fn out_size() -> BoxedStrategy<usize> {
    prop_oneof![1 => Just(0usize), 4 => 1usize..=4, 1 => HUGE..=usize::MAX, 1 => Just(1usize << 40)]
        .boxed()
}

/// Between "computed for real" and "certainly unallocatable" for a result whose count is
/// only known up to a small factor: such a case is skipped.
fn mid_size_loose(count: u128) -> bool {
    count > 1 << 10 && count < HUGE as u128
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn conv1d_validates_every_argument(
        stride in conv_arg(),
        padding in padding(),
        dilation in conv_arg(),
        groups in conv_arg(),
        k in 0usize..=3,
        l in 1usize..=5,
        (cin, cout) in (1usize..=2, 1usize..=2),
    ) {
        let tape = Tape::new();
        let x = tape.var(Tensor::<f64>::from_fn([1, cin, l], |i| i as f64).unwrap());
        let cpg = if groups > 0 && groups <= cin { cin / groups } else { cin };
        let wt = tape.var(Tensor::<f64>::ones([cout, cpg, k]).unwrap());
        let args = Conv1dArgs { stride, padding, dilation, groups };
        let ol = window_count(l, k, stride, padding, dilation);
        let groups_ok = groups > 0 && cin % groups == 0 && cout % groups == 0
            && cpg * groups == cin;
        let taps = ol.map(|o| o * (cpg * k) as u128);
        prop_assume!(!mid_size(taps));
        match x.conv1d(wt, None, args) {
            Ok(y) => {
                prop_assert!(groups_ok);
                prop_assert_eq!(y.dims(), vec![1, cout, ol.unwrap() as usize]);
            }
            Err(Error::TooLarge { op, .. }) => {
                prop_assert_eq!(op, "conv1d");
                prop_assert!(groups_ok && taps.unwrap() >= HUGE as u128);
            }
            Err(Error::InvalidArgument { op, .. }) => {
                prop_assert_eq!(op, "conv1d");
                prop_assert!(!groups_ok || taps.is_none());
            }
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
    }

    #[test]
    fn transposed_convs_validate_every_argument(
        stride in (conv_arg(), conv_arg()),
        padding in (padding(), padding()),
        output_padding in (output_padding(), output_padding()),
        dilation in (conv_arg(), conv_arg()),
        groups in conv_arg(),
        kernel in (0usize..=3, 0usize..=3),
        (h, w) in (1usize..=4, 1usize..=4),
        (cin, cpg_out) in (1usize..=2, 1usize..=2),
    ) {
        let tape = Tape::new();
        let x = tape.var(Tensor::<f64>::from_fn([1, cin, h, w], |i| i as f64).unwrap());
        let wt = tape.var(Tensor::<f64>::ones([cin, cpg_out, kernel.0, kernel.1]).unwrap());
        let groups_ok = groups > 0 && cin % groups == 0;
        let cout = if groups_ok { cpg_out * groups } else { 0 };
        let oh = transposed_count(h, kernel.0, stride.0, padding.0, output_padding.0, dilation.0);
        let ow = transposed_count(w, kernel.1, stride.1, padding.1, output_padding.1, dilation.1);
        let out = oh.zip(ow).map(|(a, b)| a.saturating_mul(b).saturating_mul(cout as u128));
        prop_assume!(!mid_size(out));
        let args = ConvTranspose2dArgs { stride, padding, output_padding, dilation, groups };
        match x.conv_transpose2d(wt, None, args) {
            Ok(y) => {
                prop_assert!(groups_ok);
                let (oh, ow) = (oh.unwrap() as usize, ow.unwrap() as usize);
                prop_assert_eq!(y.dims(), vec![1, cout, oh, ow]);
            }
            Err(Error::TooLarge { op, .. }) => {
                prop_assert_eq!(op, "conv_transpose2d");
                prop_assert!(groups_ok && out.unwrap() >= HUGE as u128);
            }
            Err(Error::InvalidArgument { op, .. }) => {
                prop_assert_eq!(op, "conv_transpose2d");
                prop_assert!(!groups_ok || out.is_none());
            }
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
        // The 1-d form along the columns alone.
        let x1 = tape.var(Tensor::<f64>::from_fn([1, cin, w], |i| i as f64).unwrap());
        let w1 = tape.var(Tensor::<f64>::ones([cin, cpg_out, kernel.1]).unwrap());
        let out1 = ow.map(|b| b * cout as u128);
        prop_assume!(!mid_size(out1));
        let args1 = ConvTranspose1dArgs {
            stride: stride.1,
            padding: padding.1,
            output_padding: output_padding.1,
            dilation: dilation.1,
            groups,
        };
        match x1.conv_transpose1d(w1, None, args1) {
            Ok(y) => {
                prop_assert!(groups_ok);
                prop_assert_eq!(y.dims(), vec![1, cout, ow.unwrap() as usize]);
            }
            Err(Error::TooLarge { op, .. }) => {
                prop_assert_eq!(op, "conv_transpose1d");
                prop_assert!(groups_ok && out1.unwrap() >= HUGE as u128);
            }
            Err(Error::InvalidArgument { op, .. }) => {
                prop_assert_eq!(op, "conv_transpose1d");
                prop_assert!(!groups_ok || out1.is_none());
            }
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
    }

    #[test]
    fn dilated_pooling_validates_every_argument(
        kernel in (pool_size(), pool_size()),
        stride in proptest::option::of((conv_arg(), conv_arg())),
        padding in (padding(), padding()),
        dilation in (conv_arg(), conv_arg()),
        (h, w) in (1usize..=5, 1usize..=5),
    ) {
        let tape = Tape::new();
        let x = tape.var(Tensor::<f64>::from_fn([1, 2, h, w], |i| i as f64).unwrap());
        let s = stride.unwrap_or(kernel);
        // At most half the dilated window (its span saturated, as a usize).
        let half = |k: usize, d: usize, p: usize| {
            let span = (d as u128 * (k as u128).saturating_sub(1) + 1).min(usize::MAX as u128);
            p as u128 <= span / 2
        };
        let ok = half(kernel.0, dilation.0, padding.0) && half(kernel.1, dilation.1, padding.1);
        let oh = window_count(h, kernel.0, s.0, padding.0, dilation.0).filter(|_| ok);
        let ow = window_count(w, kernel.1, s.1, padding.1, dilation.1).filter(|_| ok);
        let taps = oh
            .zip(ow)
            .map(|(a, b)| (a * b).saturating_mul(kernel.0 as u128 * kernel.1 as u128));
        prop_assume!(!mid_size(taps));
        let args = MaxPool2dArgs { stride, padding, dilation, ceil_mode: false };
        match (x.max_pool2d_args(kernel, args), oh.zip(ow)) {
            (Ok(y), Some((oh, ow))) => {
                prop_assert_eq!(y.dims(), vec![1, 2, oh as usize, ow as usize]);
            }
            (Err(Error::TooLarge { .. }), Some(_)) => {
                prop_assert!(taps.unwrap() >= HUGE as u128);
            }
            (Err(Error::InvalidArgument { op: "max_pool2d", .. }), None) => {}
            (r, want) => return Err(TestCaseError::fail(format!("{r:?}, expected {want:?}"))),
        }
        // Average pooling has no dilation; its ceil mode keeps at most one more window.
        let avg = AvgPool2dArgs { stride, padding, ceil_mode: true, ..AvgPool2dArgs::default() };
        let half1 = padding.0 <= kernel.0 / 2 && padding.1 <= kernel.1 / 2;
        let floor = window_count(h, kernel.0, s.0, padding.0, 1)
            .zip(window_count(w, kernel.1, s.1, padding.1, 1))
            .filter(|_| half1);
        let most = floor
            .map(|(a, b)| ((a + 1) * (b + 1)).saturating_mul(kernel.0 as u128 * kernel.1 as u128));
        prop_assume!(!most.is_some_and(mid_size_loose));
        match (x.avg_pool2d_args(kernel, avg), floor) {
            (Ok(y), Some((oh, ow))) => {
                let d = y.dims();
                prop_assert!(d[2] as u128 >= oh && d[2] as u128 <= oh + 1, "{d:?}");
                prop_assert!(d[3] as u128 >= ow && d[3] as u128 <= ow + 1, "{d:?}");
            }
            (Err(Error::TooLarge { .. }), Some(_)) => {
                prop_assert!(most.unwrap() >= HUGE as u128);
            }
            // Ceil mode may also refuse a padded size whose rounding would overflow.
            (Err(Error::InvalidArgument { op: "avg_pool2d", .. }), _) => {
                prop_assert!(floor.is_none() || most.unwrap() >= HUGE as u128);
            }
            (r, want) => return Err(TestCaseError::fail(format!("{r:?}, expected {want:?}"))),
        }
    }

    #[test]
    fn adaptive_pooling_and_resampling_check_their_output_size(
        out in (out_size(), out_size()),
        (h, w) in (1usize..=5, 1usize..=5),
        align_corners in any::<bool>(),
    ) {
        let tape = Tape::new();
        let x = tape.var(Tensor::<f64>::from_fn([1, 2, h, w], |i| i as f64).unwrap());
        let count = (2 * out.0 as u128).saturating_mul(out.1 as u128);
        // adaptive windows are at most ⌈n/o⌉ + 1 long: up to 36 taps per output here
        prop_assume!(!mid_size_loose(count));
        let empty = out.0 == 0 || out.1 == 0;
        let results = [
            ("adaptive_avg_pool2d", x.adaptive_avg_pool2d(out)),
            ("upsample_nearest2d", x.upsample_nearest2d(out, None)),
            ("upsample_bilinear2d", x.upsample_bilinear2d(out, align_corners, None)),
        ];
        for (name, r) in results {
            match r {
                Ok(y) => {
                    prop_assert!(!empty && count <= SMALL * 2, "{}", name);
                    prop_assert_eq!(y.dims(), vec![1, 2, out.0, out.1]);
                }
                Err(Error::TooLarge { op, .. }) => {
                    prop_assert_eq!(op, name);
                    prop_assert!(count >= HUGE as u128, "{}", name);
                }
                Err(Error::InvalidArgument { op, .. }) => {
                    prop_assert_eq!(op, name);
                    prop_assert!(empty, "{}", name);
                }
                Err(e) => return Err(TestCaseError::fail(format!("{name}: {e}"))),
            }
        }
    }
}
