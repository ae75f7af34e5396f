//! A user-defined architecture outside the crate: a residual MLP block and a network of
//! such blocks. The only code beyond the maths is naming the children.

use autograd::{Float, GradcheckOptions, Param, Tape, Tensor, Var};
use nn::loss::{self, Reduction};
use nn::{gradcheck_module, Ctx, LayerNorm, Linear, Module, Relu, Sequential};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// `y = x + fc2(relu(fc1(norm(x))))`, a pre-norm residual block.
struct ResidualBlock<T: Float> {
    norm: LayerNorm<T>,
    fc1: Linear<T>,
    fc2: Linear<T>,
}

impl<T: Float> ResidualBlock<T> {
    fn new(dim: usize, hidden: usize, rng: &mut StdRng) -> nn::Result<Self> {
        Ok(ResidualBlock {
            norm: LayerNorm::new(&[dim])?,
            fc1: Linear::new(dim, hidden, rng)?,
            fc2: Linear::new(hidden, dim, rng)?,
        })
    }
}

impl<T: Float> Module<T> for ResidualBlock<T> {
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> nn::Result<Var<'t, T>> {
        let h = cx.call("norm", &self.norm, x)?;
        let h = cx.call("fc1", &self.fc1, h)?.relu();
        let h = cx.call("fc2", &self.fc2, h)?;
        Ok(x.add(h)?)
    }

    fn children(&self, f: &mut dyn FnMut(&str, &dyn Module<T>)) {
        f("norm", &self.norm);
        f("fc1", &self.fc1);
        f("fc2", &self.fc2);
    }
}

/// An embedding-free classifier: input projection, `n` residual blocks, a head, and one
/// parameter of its own (a learnt output temperature).
struct ResMlp<T: Float> {
    input: Linear<T>,
    blocks: Sequential<T>,
    head: Linear<T>,
    log_temperature: Param<T>,
}

impl<T: Float> ResMlp<T> {
    fn new(inputs: usize, dim: usize, classes: usize, depth: usize, seed: u64) -> nn::Result<Self> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut blocks = Sequential::new();
        for _ in 0..depth {
            blocks.push(ResidualBlock::new(dim, 2 * dim, &mut rng)?);
        }
        Ok(ResMlp {
            input: Linear::new(inputs, dim, &mut rng)?,
            blocks,
            head: Linear::new(dim, classes, &mut rng)?,
            log_temperature: Param::new(Tensor::zeros([1]).unwrap()),
        })
    }
}

impl<T: Float> Module<T> for ResMlp<T> {
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> nn::Result<Var<'t, T>> {
        let h = cx.call("input", &self.input, x)?;
        let h = cx.call("blocks", &self.blocks, h)?;
        let logits = cx.call("head", &self.head, h)?;
        Ok(logits.mul(cx.param(&self.log_temperature).neg().exp())?)
    }

    fn children(&self, f: &mut dyn FnMut(&str, &dyn Module<T>)) {
        f("input", &self.input);
        f("blocks", &self.blocks);
        f("head", &self.head);
    }

    fn own_params(&self, f: &mut dyn FnMut(&str, &Param<T>)) {
        f("log_temperature", &self.log_temperature);
    }
}

#[test]
fn custom_modules_get_hierarchical_names_and_counts() {
    let net = ResMlp::<f32>::new(4, 6, 3, 2, 0).unwrap();
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "log_temperature",
            "input.weight",
            "input.bias",
            "blocks.0.norm.weight",
            "blocks.0.norm.bias",
            "blocks.0.fc1.weight",
            "blocks.0.fc1.bias",
            "blocks.0.fc2.weight",
            "blocks.0.fc2.bias",
            "blocks.1.norm.weight",
            "blocks.1.norm.bias",
            "blocks.1.fc1.weight",
            "blocks.1.fc1.bias",
            "blocks.1.fc2.weight",
            "blocks.1.fc2.bias",
            "head.weight",
            "head.bias",
        ]
    );
    // input 4·6 + 6, per block 2·6 + (6·12 + 12) + (12·6 + 6), head 6·3 + 3, temperature 1
    let block = 12 + 84 + 78;
    assert_eq!(net.num_parameters(), 30 + 2 * block + 21 + 1);
    assert_eq!(net.parameters().len(), 17);
}

#[test]
fn custom_module_gradchecks_with_respect_to_every_parameter() {
    let net = ResMlp::<f64>::new(3, 4, 2, 2, 1).unwrap();
    let x = Tensor::randn([3, 3], &mut StdRng::seed_from_u64(2)).unwrap();
    gradcheck_module(&net, &x, &GradcheckOptions::default()).unwrap();
}

#[test]
fn custom_module_trains_and_its_layers_show_in_diagnostics() {
    let net = ResMlp::<f64>::new(2, 8, 2, 2, 3).unwrap();
    // two separable blobs
    let mut rng = StdRng::seed_from_u64(4);
    let n = 32;
    let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
    let noise = Tensor::<f64>::randn([n, 2], &mut rng).unwrap();
    let x = Tensor::from_fn([n, 2], |k| {
        let sign = if labels[k / 2] == 0 { -1.0 } else { 1.0 };
        sign * 1.5 + 0.5 * noise.as_slice()[k]
    })
    .unwrap();
    let params = net.parameters();
    let loss_at = |net: &ResMlp<f64>| {
        let tape = Tape::new();
        let logits = net
            .forward(&Ctx::new(&tape), tape.constant(x.clone()))
            .unwrap();
        loss::cross_entropy(logits, &labels, 0.0, Reduction::Mean)
            .unwrap()
            .item()
            .unwrap()
    };
    let first = loss_at(&net);
    for _ in 0..30 {
        net.zero_grad();
        let tape = Tape::new();
        let logits = net
            .forward(&Ctx::new(&tape), tape.constant(x.clone()))
            .unwrap();
        loss::cross_entropy(logits, &labels, 0.0, Reduction::Mean)
            .unwrap()
            .backward()
            .unwrap();
        for p in &params {
            p.update(|v, g| {
                if let Some(g) = g {
                    v.zip_mut_with(g, |w, g| *w -= 0.1 * g).unwrap();
                }
            });
        }
    }
    let last = loss_at(&net);
    assert!(last < 0.5 * first, "loss {first} → {last}");

    let report = nn::diagnose(&net, &x, |y| {
        loss::cross_entropy(y, &labels, 0.0, Reduction::Mean)
    })
    .unwrap();
    let names: Vec<&str> = report.layers.iter().map(|l| l.name.as_str()).collect();
    assert!(names.contains(&"blocks.1.fc2"), "{names:?}");
    assert_eq!(report.params.len(), 17);
    // an unrelated activation module inside a Sequential would be reported by kind
    let seq = Sequential::<f64>::new().append(Relu);
    assert_eq!(seq.get(0).unwrap().activation(), Some(nn::Activation::Relu));
}
