//! The module API itself: names derived from fields (nested, `Option`, `ModuleList`,
//! `Sequential`, skipped fields, concrete and generic structs), hooks by path, errors that
//! name the layer, its path and the caller's line, gradient checks that refuse a
//! parameter they cannot check, dropout masks that survive a save and resume, and
//! diagnostics that measure a user's own activation.

use std::cell::RefCell;
use std::collections::HashMap;

use autograd::{BackwardCx, Float, GradcheckOptions, Op, Param, Tape, Tensor, Var};
use nn::{
    diagnose, gradcheck_module, state, Activation, Buffer, Conv2dConfig, Ctx, Dropout, Error,
    Forward, Generator, Layer, Linear, Mode, Module, ModuleList, Relu, Sequential, Tanh,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn names<T: Float>(m: &impl Module<T>) -> Vec<String> {
    m.named_parameters().into_iter().map(|(n, _)| n).collect()
}

/// A leaf with every kind of field.
#[derive(Module)]
struct Leaf<T: Float> {
    w: Param<T>,
    maybe: Option<Param<T>>,
    stats: Buffer<T>,
    noise: Generator,
    mode: Mode,
    width: usize,
    label: String,
    #[module(skip)]
    #[allow(dead_code)]
    cache: HashMap<String, Vec<f32>>,
}

fn leaf<T: Float>(with_maybe: bool) -> Leaf<T> {
    Leaf {
        w: Param::new(Tensor::ones([2]).unwrap()),
        maybe: with_maybe.then(|| Param::new(Tensor::zeros([3]).unwrap())),
        stats: Buffer::new(Tensor::zeros([1]).unwrap()),
        noise: Generator::new(1),
        mode: Mode::new(),
        width: 2,
        label: "leaf".into(),
        cache: HashMap::new(),
    }
}

/// Nesting, optional children, lists, a Sequential and a tuple-struct child.
#[derive(Module)]
struct Tree<T: Float> {
    first: Leaf<T>,
    second: Option<Leaf<T>>,
    absent: Option<Leaf<T>>,
    list: ModuleList<Leaf<T>>,
    seq: Sequential<T>,
    pair: Pair<T>,
    boxed: Option<Box<dyn Layer<T>>>,
    own: Param<T>,
}

#[derive(Module)]
struct Pair<T: Float>(Linear<T>, Linear<T>);

fn tree() -> Tree<f64> {
    let mut r = rng(0);
    Tree {
        first: leaf(true),
        second: Some(leaf(false)),
        absent: None,
        list: vec![leaf(false), leaf(true)].into(),
        seq: Sequential::new()
            .append(Linear::new(2, 2, &mut r).unwrap())
            .append(Dropout::new(0.5, 3).unwrap()),
        pair: Pair(
            Linear::new(1, 1, &mut r).unwrap(),
            Linear::new(1, 1, &mut r).unwrap(),
        ),
        boxed: Some(Box::new(Linear::new(1, 3, &mut r).unwrap())),
        own: Param::new(Tensor::ones([1]).unwrap()),
    }
}

#[test]
fn derive_names_fields_once_through_nesting_options_lists_and_sequentials() {
    let t = tree();
    assert_eq!(
        names(&t),
        [
            "own",
            "first.w",
            "first.maybe",
            "second.w",
            "list.0.w",
            "list.1.w",
            "list.1.maybe",
            "seq.0.weight",
            "seq.0.bias",
            "pair.0.weight",
            "pair.0.bias",
            "pair.1.weight",
            "pair.1.bias",
            "boxed.weight",
            "boxed.bias",
        ]
    );
    let bufs: Vec<String> = t.named_buffers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        bufs,
        [
            "first.stats",
            "second.stats",
            "list.0.stats",
            "list.1.stats"
        ]
    );
    let gens: Vec<String> = t.named_generators().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        gens,
        [
            "first.noise",
            "second.noise",
            "list.0.noise",
            "list.1.noise",
            "seq.1.generator"
        ]
    );
    let modules: Vec<(String, &str)> = t
        .named_modules()
        .into_iter()
        .map(|(p, m)| (p, m.type_name()))
        .collect();
    assert_eq!(modules[0], (String::new(), "Tree"));
    assert!(modules.contains(&("list.1".to_string(), "Leaf")));
    assert!(modules.contains(&("seq.1".to_string(), "Dropout")));
    assert!(!modules.iter().any(|(p, _)| p.starts_with("absent")));
    // 2 + 3 + 2 + 2 + 2 + 3 + (4 + 2) + 2 · (1 + 1) + (3 + 3) + 1
    assert_eq!(t.num_parameters(), 2 + 3 + 2 + 2 + 2 + 3 + 6 + 4 + 6 + 1);

    // train/eval reaches every Mode field, in options and lists too
    t.eval();
    assert!(!t.first.mode.is_training());
    assert!(!t.list[1].mode.is_training());
    assert!(!t.second.as_ref().unwrap().mode.is_training());
    t.train();
    assert!(t.list[0].mode.is_training());
    assert_eq!((t.first.width, t.first.label.as_str()), (2, "leaf"));
}

/// A model written for one float, and a generic wrapper: both derive.
#[derive(Module)]
struct Concrete {
    fc: Linear<f32>,
    scale: f64,
}

#[derive(Module)]
struct Wrapper<M> {
    inner: M,
    tag: u8,
}

#[test]
fn derive_works_for_concrete_and_generic_structs() {
    let net = Concrete {
        fc: Linear::new(3, 2, &mut rng(1)).unwrap(),
        scale: 1.0,
    };
    // Module<f32> is the only impl: no annotation needed
    assert_eq!(names(&net), ["fc.weight", "fc.bias"]);
    let w = Wrapper {
        inner: Wrapper {
            inner: Linear::<f64>::new(2, 2, &mut rng(2)).unwrap(),
            tag: 0,
        },
        tag: 1,
    };
    assert_eq!(names(&w), ["inner.inner.weight", "inner.inner.bias"]);
    assert_eq!((net.scale, w.tag), (1.0, 1));
}

/// Two zero-sized siblings of one type, and a child called twice.
#[derive(Module)]
struct TwoActs<T: Float> {
    fc: Linear<T>,
    act1: Relu,
    act2: Relu,
    head: Linear<T>,
}

impl<T: Float> Forward<T> for TwoActs<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> nn::Result<Var<'t, T>> {
        let h = cx.call(&self.act1, cx.call(&self.fc, x)?)?;
        let h = cx.call(&self.act2, cx.call(&self.fc, h)?)?;
        // a module that is not in the tree
        let h = cx.call(&Tanh, h)?;
        cx.call(&self.head, h)
    }
}

#[test]
fn hooks_see_every_call_by_path_with_its_inputs_outputs_and_line() {
    let mut r = rng(3);
    let model = Sequential::<f64>::new()
        .append(Linear::new(3, 4, &mut r).unwrap())
        .append(TwoActs {
            fc: Linear::new(4, 4, &mut r).unwrap(),
            act1: Relu,
            act2: Relu,
            head: Linear::new(4, 2, &mut r).unwrap(),
        });
    let tape = Tape::new();
    let seen = RefCell::new(Vec::new());
    let mut cx = Ctx::new(&tape);
    cx.add_forward_hook(|call| {
        seen.borrow_mut().push((
            call.path.to_string(),
            call.module.type_name(),
            call.inputs[0].dims(),
            call.outputs[0].dims(),
            call.location.file().to_string(),
            call.location.line(),
        ))
    });
    let x = tape.constant(Tensor::ones([5, 3]).unwrap());
    let line = line!() + 1;
    let y = cx.call(&model, x).unwrap();
    assert_eq!(y.dims(), [5, 2]);
    let seen = seen.borrow();
    let paths: Vec<(&str, &str)> = seen.iter().map(|s| (s.0.as_str(), s.1)).collect();
    assert_eq!(
        paths,
        [
            ("0", "Linear"),
            ("1.fc", "Linear"),
            ("1.act1", "Relu"), // zero-sized siblings: by call order
            ("1.fc", "Linear"),
            ("1.act2", "Relu"),
            ("1.<Tanh>", "Tanh"), // not in the tree
            ("1.head", "Linear"),
            ("1", "TwoActs"),
            ("", "Sequential"),
        ]
    );
    assert_eq!(
        (seen[0].2.clone(), seen[0].3.clone()),
        (vec![5, 3], vec![5, 4])
    );
    // every call reports a line of user code: Sequential's layers and the model the
    // line that called the model, TwoActs' children the lines of its forward
    assert!(seen.iter().all(|s| s.4 == file!()), "{seen:?}");
    assert_eq!((seen[0].5, seen[8].5), (line, line));
    assert!(seen[1].5 != line);
}

/// A block whose second layer does not fit: the error must name it, its path and the
/// user's line.
#[derive(Module)]
struct Block<T: Float> {
    fc1: Linear<T>,
    fc2: Linear<T>,
}

const FC2_LINE: u32 = line!() + 8;

impl<T: Float> Forward<T> for Block<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> nn::Result<Var<'t, T>> {
        let h = cx.call(&self.fc1, x)?;
        // the next line is FC2_LINE
        cx.call(&self.fc2, h)
    }
}

#[derive(Module)]
struct Net<T: Float> {
    blocks: ModuleList<Block<T>>,
    weight: Param<T>,
}

const MATMUL_LINE: u32 = line!() + 11;

impl<T: Float> Forward<T> for Net<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> nn::Result<Var<'t, T>> {
        let mut h = x;
        for b in &self.blocks {
            h = cx.call(b, h)?;
        }
        // an autograd error raised in the user's own maths; the next line is MATMUL_LINE
        Ok(h.matmul(cx.param(&self.weight))?)
    }
}

fn net(bad_block: bool, weight_rows: usize) -> Net<f64> {
    let mut r = rng(4);
    let mut blocks = ModuleList::new();
    for i in 0..3 {
        let out = if bad_block && i == 1 { 5 } else { 4 };
        blocks.push(Block {
            fc1: Linear::new(4, out, &mut r).unwrap(),
            fc2: Linear::new(4, 4, &mut r).unwrap(),
        });
    }
    Net {
        blocks,
        weight: Param::new(Tensor::ones([weight_rows, 2]).unwrap()),
    }
}

#[test]
fn errors_name_the_layer_its_path_and_the_users_line_with_or_without_hooks() {
    for hooks in [false, true] {
        let model = net(true, 4);
        let tape = Tape::new();
        let mut cx = Ctx::new(&tape);
        if hooks {
            cx.add_forward_hook(|_| {});
        }
        let e = cx
            .call(&model, tape.constant(Tensor::ones([2, 4]).unwrap()))
            .unwrap_err();
        let m = e.module().unwrap_or_else(|| panic!("{e}"));
        assert_eq!(
            (m.layer, m.path.as_str()),
            ("Linear", "blocks.1.fc2"),
            "{e}"
        );
        assert_eq!(m.location.file(), file!());
        assert_eq!(m.location.line(), FC2_LINE, "{e}");
        // the layer's own error, with the shapes and the same line
        assert!(
            matches!(e.innermost(), Error::InputShape { layer: "Linear", got, location, .. }
                if got.dims() == [2, 5] && location.line() == FC2_LINE),
            "{e}"
        );
        let text = e.to_string();
        assert!(
            text.contains("Linear `blocks.1.fc2`") && text.contains("[*, 4]"),
            "{text}"
        );
    }

    // an autograd error in the user's own forward keeps its op and shapes, and points at
    // the user's line; the module that raised it is the model itself (path "")
    let model = net(false, 3);
    let tape = Tape::new();
    let e = Ctx::new(&tape)
        .call(&model, tape.constant(Tensor::ones([2, 4]).unwrap()))
        .unwrap_err();
    let m = e.module().unwrap();
    assert_eq!((m.layer, m.path.as_str()), ("Net", ""));
    match e.as_autograd() {
        Some(autograd::Error::Matmul {
            op,
            lhs,
            rhs,
            location,
        }) => {
            assert_eq!(
                (*op, lhs.dims(), rhs.dims()),
                ("matmul", &[2, 4][..], &[3, 2][..])
            );
            assert_eq!((location.file(), location.line()), (file!(), MATMUL_LINE));
        }
        other => panic!("{other:?}: {e}"),
    }
}

#[test]
fn sequential_errors_name_the_layer_index_even_when_forward_is_called_directly() {
    let mut r = rng(5);
    let mlp = Sequential::<f32>::new()
        .append(Linear::new(3, 4, &mut r).unwrap())
        .append(Relu)
        .append(Linear::new(5, 2, &mut r).unwrap());
    let tape = Tape::new();
    let line = line!() + 1;
    let e = mlp.forward(
        &Ctx::new(&tape),
        tape.constant(Tensor::ones([1, 3]).unwrap()),
    );
    let e = e.unwrap_err();
    let m = e.module().unwrap();
    assert_eq!((m.layer, m.path.as_str()), ("Linear", "2"));
    // Sequential runs its layers in the library, but the line is the caller's
    assert_eq!((m.location.file(), m.location.line()), (file!(), line));
}

#[test]
fn grouped_conv_errors_report_the_callers_shape_and_line() {
    let conv = Conv2dConfig {
        groups: 2,
        ..Conv2dConfig::new(4, 4, 3)
    }
    .init::<f32>(&mut rng(6))
    .unwrap();
    let tape = Tape::new();
    let line = line!() + 1;
    let e = Ctx::new(&tape).call(&conv, tape.constant(Tensor::zeros([1, 4, 2, 2]).unwrap()));
    let e = e.unwrap_err();
    match e.innermost() {
        Error::InputShape {
            layer: "Conv2d",
            got,
            location,
            ..
        } => {
            // the whole input, not one group's [1, 2, 2, 2] slice
            assert_eq!(got.dims(), [1, 4, 2, 2]);
            assert_eq!((location.file(), location.line()), (file!(), line));
        }
        other => panic!("{other:?}"),
    }
}

/// Binds its parameter straight on the tape, so substitution never reaches it.
#[derive(Module)]
struct TapeBound<T: Float> {
    w: Param<T>,
}

impl<T: Float> Forward<T> for TapeBound<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> nn::Result<Var<'t, T>> {
        Ok(x.mul(cx.tape().param(&self.w))?)
    }
}

#[test]
fn gradcheck_module_refuses_a_parameter_bound_with_tape_param() {
    let m = TapeBound {
        w: Param::new(Tensor::from_vec(vec![0.5, -1.5], [2]).unwrap()),
    };
    let x = Tensor::from_vec(vec![0.3, 0.7], [2]).unwrap();
    let e = gradcheck_module(&m, &[x], |v| v[0], &GradcheckOptions::default()).unwrap_err();
    assert!(
        matches!(&e, Error::UnboundParameter { name } if name == "w"),
        "{e}"
    );
}

/// `y = 2x` whose rule returns `3g`: a wrong gradient for gradcheck_module to find.
#[derive(Debug)]
struct WrongDouble;
impl Op<f64> for WrongDouble {
    fn name(&self) -> &'static str {
        "wrong_double"
    }
    fn forward(&self, x: &[&Tensor<f64>]) -> autograd::Result<Tensor<f64>> {
        Ok(x[0].map(|v| 2.0 * v))
    }
    fn backward<'t>(
        &self,
        cx: &BackwardCx<'t, '_, f64>,
    ) -> autograd::Result<Vec<Option<Var<'t, f64>>>> {
        Ok(vec![Some(cx.grad().mul_scalar(3.0))])
    }
}

#[derive(Module)]
struct Scaled {
    fc: Linear<f64>,
    bias: Param<f64>,
}

impl Forward<f64> for Scaled {
    type Input<'t> = Var<'t, f64>;
    type Output<'t> = Var<'t, f64>;
    fn forward<'t>(&self, cx: &Ctx<'t, f64>, x: Var<'t, f64>) -> nn::Result<Var<'t, f64>> {
        let b = cx.tape().apply(WrongDouble, &[cx.param(&self.bias)])?;
        Ok(cx.call(&self.fc, x)?.add(b)?)
    }
}

#[test]
fn gradcheck_module_names_the_parameter_with_a_wrong_gradient() {
    let m = Scaled {
        fc: Linear::new(2, 2, &mut rng(7)).unwrap(),
        bias: Param::new(Tensor::from_vec(vec![0.1, 0.2], [2]).unwrap()),
    };
    let x = Tensor::from_vec(vec![0.3, 0.7, -0.2, 0.4], [2, 2]).unwrap();
    let e = gradcheck_module(&m, &[x], |v| v[0], &GradcheckOptions::default()).unwrap_err();
    assert!(
        matches!(&e, Error::ModuleGradcheck { checked, .. } if checked == "parameter `bias`"),
        "{e}"
    );
}

fn dropout_net(seed: u64) -> Sequential<f64> {
    let mut r = rng(seed);
    Sequential::new()
        .append(Linear::new(6, 16, &mut r).unwrap())
        .append(Dropout::new(0.5, seed).unwrap())
        .append(Relu)
        .append(Linear::new(16, 16, &mut r).unwrap())
        .append(Dropout::new(0.3, seed + 1).unwrap())
}

/// Outputs of `n` training-mode steps on a fixed input (the masks change every step).
fn steps(model: &Sequential<f64>, n: usize) -> Vec<Vec<f64>> {
    let x = Tensor::from_fn([4, 6], |i| (i as f64 * 0.31).sin()).unwrap();
    (0..n)
        .map(|_| {
            let tape = Tape::new();
            let y = Ctx::new(&tape)
                .call(model, tape.constant(x.clone()))
                .unwrap();
            y.value().to_vec()
        })
        .collect()
}

#[test]
fn a_resumed_run_draws_the_same_dropout_masks_bit_for_bit() {
    let straight = dropout_net(10);
    let _warmup = steps(&straight, 3);
    let saved = state::to_bytes(&straight).unwrap();
    let after = steps(&straight, 4);

    // a fresh model with other weights and other generator seeds, resumed from the file
    let resumed = dropout_net(99);
    state::from_bytes(&resumed, &saved).unwrap();
    assert_eq!(steps(&resumed, 4), after);

    // the generator state is metadata: the tensors are exactly the state_dict's
    let file = safetensors::SafeTensors::deserialize(&saved).unwrap();
    let mut tensors = file.names();
    tensors.sort();
    assert_eq!(tensors, ["0.bias", "0.weight", "3.bias", "3.weight"]);

    // a file whose generators do not match the module's is refused, naming one
    let other = Sequential::<f64>::new()
        .append(Linear::new(6, 16, &mut rng(1)).unwrap())
        .append(Relu)
        .append(Relu)
        .append(Linear::new(16, 16, &mut rng(2)).unwrap());
    let e = state::from_bytes(&other, &saved).unwrap_err();
    assert!(
        matches!(&e, Error::StateGenerator { name, .. } if name == "1.generator"),
        "{e}"
    );
    // and a file without generator states (as PyTorch writes) leaves them running
    let before = resumed.named_generators()[0].1.state();
    let no_gens = state::to_bytes(&dropout_net(5)).unwrap();
    let stripped = strip_metadata(&no_gens);
    state::from_bytes(&resumed, &stripped).unwrap();
    assert_eq!(resumed.named_generators()[0].1.state(), before);
}

/// The same tensors, without the `__metadata__` header entry.
fn strip_metadata(bytes: &[u8]) -> Vec<u8> {
    let file = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        file.tensors().into_iter().collect();
    safetensors::serialize(views, &None).unwrap()
}

/// Softsign, `x / (1 + |x|)`: a user's activation, which saturates (f' = 1/(1 + |x|)²).
#[derive(Debug, Module)]
#[module(activation)]
struct Softsign;

impl<T: Float> Forward<T> for Softsign {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> nn::Result<Var<'t, T>> {
        Ok(x.div(x.abs().add_scalar(T::one()))?)
    }
}

impl Activation for Softsign {
    fn gain(&self) -> Option<f64> {
        None
    }
    fn max_derivative(&self) -> Option<f64> {
        Some(1.0)
    }
}

#[test]
fn diagnostics_measure_a_users_own_activation() {
    // Linear 4 → 4 with W = I and b = 0 passes x through; softsign'(x) = 1/(1 + |x|)² is
    // below 1 % of its maximum 1 exactly where |x| > 9. Of the 12 inputs, 5 are beyond.
    let fc = Linear::<f64>::new(4, 4, &mut rng(8)).unwrap();
    fc.weight.set_value(Tensor::eye(4).unwrap()).unwrap();
    fc.bias
        .as_ref()
        .unwrap()
        .set_value(Tensor::zeros([4]).unwrap())
        .unwrap();
    let net = Sequential::new().append(fc).append(Softsign);
    let x = Tensor::from_vec(
        vec![
            0.5, -12.0, 3.0, 20.0, //
            -8.9, 9.5, 0.0, -1.0, //
            100.0, 2.0, -30.0, 4.0,
        ],
        [3, 4],
    )
    .unwrap();
    let report = diagnose(&net, &x, |y| Ok(y.sum())).unwrap();
    let act = report.layer("1").unwrap();
    assert_eq!(act.activation, Some("Softsign"));
    assert_eq!(act.type_name, "Softsign");
    assert_eq!(act.saturated, Some(5.0 / 12.0));
    assert_eq!(act.dead, None);
    assert!(report.layer("0").unwrap().saturated.is_none());
}

/// Calls a module it builds on the spot, with an axis that does not exist.
#[derive(Module)]
struct OnTheSpot {
    fc: Linear<f64>,
}

impl Forward<f64> for OnTheSpot {
    type Input<'t> = Var<'t, f64>;
    type Output<'t> = Var<'t, f64>;
    fn forward<'t>(&self, cx: &Ctx<'t, f64>, x: Var<'t, f64>) -> nn::Result<Var<'t, f64>> {
        let h = cx.call(&self.fc, x)?;
        cx.call(&nn::Softmax { dim: 5 }, h)
    }
}

#[test]
fn a_module_built_inside_forward_is_named_by_its_type_in_errors_and_hooks() {
    let model = Sequential::new().append(OnTheSpot {
        fc: Linear::new(2, 2, &mut rng(9)).unwrap(),
    });
    for hooks in [false, true] {
        let tape = Tape::new();
        let mut cx = Ctx::new(&tape);
        if hooks {
            cx.add_forward_hook(|_| {});
        }
        let e = cx
            .call(&model, tape.constant(Tensor::ones([1, 2]).unwrap()))
            .unwrap_err();
        let m = e.module().unwrap();
        assert_eq!(
            (m.layer, m.path.as_str()),
            ("Softmax", "0.<Softmax>"),
            "{e}"
        );
        // softmax's own error, with the axis and shape it was given
        assert!(
            matches!(e.as_autograd(), Some(autograd::Error::Axis { axis: 5, .. })),
            "{e}"
        );
    }
}

#[test]
fn an_autograd_error_inside_a_built_in_layer_points_at_the_callers_line() {
    let flatten = nn::Flatten {
        start_dim: 7,
        end_dim: -1,
    };
    let tape = Tape::<f32>::new();
    let x = tape.constant(Tensor::zeros([2, 3]).unwrap());
    let line = line!() + 1;
    let e = Ctx::new(&tape).call(&flatten, x).unwrap_err();
    let m = e.module().unwrap();
    assert_eq!((m.layer, m.path.as_str()), ("Flatten", ""));
    let loc = e.as_autograd().and_then(|a| a.location()).unwrap();
    // not a line of nn/src/layers/flatten.rs
    assert_eq!((loc.file(), loc.line()), (file!(), line), "{e}");
}
