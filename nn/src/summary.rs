//! A model summary (torchinfo's `summary`, Keras' `model.summary()`): every module of the
//! tree with its path, type, output shape for a given input and parameter count, and the
//! totals. [`summary`] builds it; it prints as a table.
//!
//! The tree and the parameter counts come from the module visitor
//! ([`Module::visit_fields`]); the output shapes from one forward pass with a forward hook
//! ([`Ctx::add_forward_hook`]), in evaluation mode and without recording gradients. The
//! pass leaves the model as it found it: each module's train/eval flag, its buffers (batch
//! norm's running statistics) and its random streams (dropout's) are restored, so taking a
//! summary in the middle of a run does not change the run.
//!
//! ```
//! use nn::{Linear, Relu, Sequential};
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mlp = Sequential::<f32>::new()
//!     .append(Linear::new(64, 32, &mut rng)?)
//!     .append(Relu)
//!     .append(Linear::new(32, 10, &mut rng)?);
//! let s = nn::summary(&mlp, &autograd::Tensor::zeros([1, 64])?)?;
//! assert_eq!(s.total_params, 64 * 32 + 32 + 32 * 10 + 10);
//! assert_eq!(s.rows[1].path, "0");
//! assert_eq!(s.rows[1].output_shapes[0].dims(), &[1, 32]);
//! println!("{s}");
//! # Ok::<(), nn::Error>(())
//! ```

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;

use autograd::{Float, ParamId, Shape, Tape, Tensor, Var};

use crate::error::Result;
use crate::module::{Ctx, Field, Forward, Module};

/// One module of the tree.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    /// The module's path (`"blocks.1.fc2"`; `""` for the model itself).
    pub path: String,
    /// Depth in the tree (0 for the model).
    pub depth: usize,
    /// The module's type name (`"Linear"`).
    pub type_name: &'static str,
    /// The shapes of its output for the summary's input, from its first call (empty when
    /// the forward pass never called it).
    pub output_shapes: Vec<Shape>,
    /// How many times the forward pass called it (a shared block called twice: 2).
    pub calls: usize,
    /// Parameter scalars in the module and its descendants, trainable and frozen (each
    /// shared parameter once).
    pub params: usize,
}

/// What [`summary`] measured: one row per module, in tree order (the model first, then
/// depth first in field order), and the totals.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The modules.
    pub rows: Vec<SummaryRow>,
    /// The shapes of the input tensors.
    pub input_shapes: Vec<Shape>,
    /// Parameter scalars in the model, trainable and frozen, each shared parameter
    /// counted once.
    pub total_params: usize,
    /// Of [`total_params`](Summary::total_params), those frozen
    /// ([`Param::set_requires_grad`](autograd::Param::set_requires_grad)`(false)`); the
    /// rest are trainable.
    pub frozen_params: usize,
    /// Distinct parameter tensors.
    pub param_tensors: usize,
    /// Scalars in buffers (saved, not trained: batch norm's running statistics).
    pub buffer_elems: usize,
    /// Bytes of one element (4 for `f32`, 8 for `f64`).
    pub elem_bytes: usize,
}

impl Summary {
    /// The row of the module at `path`.
    pub fn row(&self, path: &str) -> Option<&SummaryRow> {
        self.rows.iter().find(|r| r.path == path)
    }
}

/// The summary of a single-input model (`Input = Var`) for the input `x`. `x`'s leading
/// axis is the batch, as the model expects it; a batch of one is enough.
///
/// # Errors
/// The model's errors on `x` (a wrong input width is reported like any forward error).
pub fn summary<T, M>(model: &M, x: &Tensor<T>) -> Result<Summary>
where
    T: Float,
    M: for<'t> Forward<T, Input<'t> = Var<'t, T>>,
{
    summary_with(model, std::slice::from_ref(x), |vs| vs[0])
}

/// The summary of a model of any input type: `to_input` builds the model's input from the
/// `inputs` (as constants on the summary's tape), as
/// [`gradcheck_module`](crate::gradcheck_module) does.
///
/// # Errors
/// The model's errors on the input.
pub fn summary_with<T, M, F>(model: &M, inputs: &[Tensor<T>], to_input: F) -> Result<Summary>
where
    T: Float,
    M: Forward<T>,
    F: for<'t> Fn(&[Var<'t, T>]) -> M::Input<'t>,
{
    let calls: RefCell<HashMap<String, Call>> = RefCell::new(HashMap::new());
    let order: RefCell<Vec<String>> = RefCell::new(Vec::new());
    let saved = Saved::take(model);
    model.eval();
    let run = || -> Result<()> {
        let tape = Tape::new();
        let mut cx = Ctx::new(&tape);
        cx.add_forward_hook(|call| {
            let mut calls = calls.borrow_mut();
            let entry = calls.entry(call.path.to_string()).or_insert_with(|| {
                order.borrow_mut().push(call.path.to_string());
                Call {
                    count: 0,
                    type_name: call.module.type_name(),
                    shapes: call.outputs.iter().map(|v| v.shape()).collect(),
                }
            });
            entry.count += 1;
        });
        let vars: Vec<Var<'_, T>> = inputs.iter().map(|t| tape.constant(t.clone())).collect();
        tape.no_grad(|| cx.call(model, to_input(&vars)).map(|_| ()))
    };
    let result = run();
    saved.restore();
    result?;

    let mut calls = calls.into_inner();
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    tree_rows(model, "", 0, &mut rows, &mut calls, &mut seen);
    // Modules built inside a forward (not fields) were called but are not in the tree:
    // list each after its parent's subtree, where the hook named it (`"<parent>.<Type>"`).
    for path in order.into_inner() {
        if let Some(call) = calls.remove(&path) {
            let parent = path.rsplit_once('.').map_or("", |(p, _)| p);
            let below =
                |p: &str| parent.is_empty() || p == parent || p.starts_with(&format!("{parent}."));
            let at = rows
                .iter()
                .rposition(|r| below(&r.path))
                .map_or(rows.len(), |i| i + 1);
            rows.insert(
                at,
                SummaryRow {
                    depth: path.matches('.').count() + 1,
                    type_name: call.type_name,
                    path,
                    output_shapes: call.shapes,
                    calls: call.count,
                    params: 0,
                },
            );
        }
    }
    let mut frozen = HashSet::new();
    model.visit_params(&mut |_, p| {
        if !p.requires_grad() {
            frozen.insert((p.id(), p.numel()));
        }
    });
    let mut buffer_elems = 0;
    model.visit_buffers(&mut |_, b| buffer_elems += b.shape().numel());
    Ok(Summary {
        rows,
        input_shapes: inputs.iter().map(|t| t.shape().clone()).collect(),
        total_params: seen.iter().map(|(_, n)| n).sum(),
        frozen_params: frozen.iter().map(|(_, n)| n).sum(),
        param_tensors: seen.len(),
        buffer_elems,
        elem_bytes: std::mem::size_of::<T>(),
    })
}

/// What the hook keeps of a module's calls: how many, and the first one's output.
struct Call {
    count: usize,
    type_name: &'static str,
    shapes: Vec<Shape>,
}

/// Rows of `m` and its descendants in tree order; `seen` collects every distinct parameter
/// of the tree with its size.
fn tree_rows<T: Float>(
    m: &dyn Module<T>,
    path: &str,
    depth: usize,
    rows: &mut Vec<SummaryRow>,
    calls: &mut HashMap<String, Call>,
    seen: &mut HashSet<(ParamId, usize)>,
) {
    let mut own = HashSet::new();
    m.visit_params(&mut |_, p| {
        own.insert((p.id(), p.numel()));
    });
    let params = own.iter().map(|(_, n)| n).sum();
    seen.extend(own);
    let (count, shapes) = calls
        .remove(path)
        .map_or((0, Vec::new()), |c| (c.count, c.shapes));
    rows.push(SummaryRow {
        path: path.to_string(),
        depth,
        type_name: m.type_name(),
        output_shapes: shapes,
        calls: count,
        params,
    });
    m.children(&mut |name, child| {
        let child_path = if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        };
        tree_rows(child, &child_path, depth + 1, rows, calls, seen);
    });
}

/// What the summary's forward pass could change, to put back afterwards.
struct Saved<'m, T: Float> {
    modes: Vec<(&'m crate::Mode, bool)>,
    buffers: Vec<(crate::Buffer<T>, Tensor<T>)>,
    generators: Vec<(crate::Generator, crate::module::GeneratorState)>,
}

impl<'m, T: Float> Saved<'m, T> {
    fn take(model: &'m dyn Module<T>) -> Self {
        let mut modes = Vec::new();
        collect_modes(model, &mut modes);
        let mut buffers = Vec::new();
        model.visit_buffers(&mut |_, b| buffers.push((b.clone(), b.value())));
        let mut generators = Vec::new();
        model.visit_generators(&mut |_, g| generators.push((g.clone(), g.state())));
        Saved {
            modes,
            buffers,
            generators,
        }
    }

    fn restore(self) {
        for (m, training) in self.modes {
            m.set(training);
        }
        for (b, v) in self.buffers {
            // The same shape it had a moment ago: cannot fail.
            let _ = b.set_value(v);
        }
        for (g, s) in self.generators {
            g.set_state(&s);
        }
    }
}

fn collect_modes<'m, T: Float>(m: &'m dyn Module<T>, out: &mut Vec<(&'m crate::Mode, bool)>) {
    m.visit_fields(&mut |_, field| match field {
        Field::Mode(mode) => out.push((mode, mode.is_training())),
        Field::Module(child) => collect_modes(child, out),
        _ => {}
    });
}

/// `1234567` → `"1,234,567"`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in binary units with one decimal (`"8.0 KiB"`), plain bytes below 1 KiB.
fn bytes(n: usize) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

impl fmt::Display for Summary {
    /// A table: one line per module, indented by depth (the model is `(model)`), its type,
    /// output shape (`--` when never called, `×n` when called n times), parameters in its
    /// subtree; then the totals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells: Vec<[String; 4]> = self
            .rows
            .iter()
            .map(|r| {
                let name = if r.path.is_empty() {
                    "(model)".to_string()
                } else {
                    r.path.clone()
                };
                let mut shape = if r.output_shapes.is_empty() {
                    "--".to_string()
                } else {
                    let s: Vec<String> = r.output_shapes.iter().map(|s| s.to_string()).collect();
                    s.join(", ")
                };
                if r.calls > 1 {
                    shape.push_str(&format!(" ×{}", r.calls));
                }
                [
                    format!("{}{name}", "  ".repeat(r.depth)),
                    r.type_name.to_string(),
                    shape,
                    thousands(r.params),
                ]
            })
            .collect();
        let header = ["layer", "type", "output shape", "params"];
        let mut w = header.map(|h| h.chars().count());
        for c in &cells {
            for (wi, ci) in w.iter_mut().zip(c) {
                *wi = (*wi).max(ci.chars().count());
            }
        }
        let total_width = w.iter().sum::<usize>() + 3 * 2;
        let line = |f: &mut fmt::Formatter<'_>, c: &[String; 4]| {
            writeln!(
                f,
                "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}",
                c[0],
                c[1],
                c[2],
                c[3],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3]
            )
        };
        line(f, &header.map(String::from))?;
        writeln!(f, "{}", "-".repeat(total_width))?;
        for c in &cells {
            line(f, c)?;
        }
        writeln!(f, "{}", "-".repeat(total_width))?;
        let inputs: Vec<String> = self.input_shapes.iter().map(|s| s.to_string()).collect();
        writeln!(f, "input: {}", inputs.join(", "))?;
        writeln!(
            f,
            "parameters: {} in {} tensors ({})",
            thousands(self.total_params),
            self.param_tensors,
            bytes(self.total_params * self.elem_bytes)
        )?;
        if self.frozen_params > 0 {
            writeln!(
                f,
                "trainable: {}, frozen: {}",
                thousands(self.total_params - self.frozen_params),
                thousands(self.frozen_params)
            )?;
        }
        if self.buffer_elems > 0 {
            writeln!(
                f,
                "buffers: {} ({})",
                thousands(self.buffer_elems),
                bytes(self.buffer_elems * self.elem_bytes)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Relu;
    use crate::layers::{BatchNorm1d, Dropout, Linear, Sequential};
    use autograd::Param;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn thousands_and_bytes_format_by_hand() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }

    /// Linear(4 → 16): 4·16 weights + 16 biases = 80; Linear(16 → 3): 48 + 3 = 51; the
    /// model 131. Output shapes for a batch of 8: [8, 16], [8, 16], [8, 3].
    #[test]
    fn an_mlp_summary_reads_as_computed_by_hand() {
        let mut rng = StdRng::seed_from_u64(0);
        let mlp = Sequential::<f32>::new()
            .append(Linear::new(4, 16, &mut rng).unwrap())
            .append(Relu)
            .append(Linear::new(16, 3, &mut rng).unwrap());
        let s = summary(&mlp, &Tensor::zeros([8, 4]).unwrap()).unwrap();
        let expected = "\
layer    type        output shape  params
-----------------------------------------
(model)  Sequential  [8, 3]           131
  0      Linear      [8, 16]           80
  1      Relu        [8, 16]            0
  2      Linear      [8, 3]            51
-----------------------------------------
input: [8, 4]
parameters: 131 in 4 tensors (524 B)
";
        assert_eq!(s.to_string(), expected);
        assert_eq!(s.total_params, 131);
        assert_eq!(s.row("2").unwrap().params, 51);
    }

    /// Freezing the first Linear (80 scalars) leaves 51 trainable, and says so.
    #[test]
    fn a_summary_counts_frozen_parameters_apart() {
        let mut rng = StdRng::seed_from_u64(0);
        let mlp = Sequential::<f32>::new()
            .append(Linear::new(4, 16, &mut rng).unwrap())
            .append(Relu)
            .append(Linear::new(16, 3, &mut rng).unwrap());
        let first: Vec<_> = mlp.named_parameters().into_iter().take(2).collect();
        assert!(first.iter().all(|(n, _)| n.starts_with("0.")));
        first.iter().for_each(|(_, p)| p.set_requires_grad(false));
        let s = summary(&mlp, &Tensor::zeros([8, 4]).unwrap()).unwrap();
        assert_eq!((s.total_params, s.frozen_params), (131, 80));
        assert!(s
            .to_string()
            .ends_with("parameters: 131 in 4 tensors (524 B)\ntrainable: 51, frozen: 80\n"));
    }

    /// A derived module with a shared child called twice, a buffer-holding child, and a
    /// parameter of its own: counts by hand.
    #[derive(crate::Module)]
    struct Net {
        scale: Param<f64>,
        fc: Linear<f64>,
        norm: BatchNorm1d<f64>,
        drop: Dropout,
        unused: Option<Linear<f64>>,
    }

    impl Forward<f64> for Net {
        type Input<'t> = (Var<'t, f64>, Var<'t, f64>);
        type Output<'t> = Var<'t, f64>;
        fn forward<'t>(
            &self,
            cx: &Ctx<'t, f64>,
            (a, b): (Var<'t, f64>, Var<'t, f64>),
        ) -> crate::Result<Var<'t, f64>> {
            let ya = cx.call(&self.fc, a)?;
            let yb = cx.call(&self.fc, b)?;
            let y = cx.call(&self.norm, ya.add(yb)?)?;
            let y = cx.call(&self.drop, y)?;
            Ok(y.mul(cx.param(&self.scale))?)
        }
    }

    #[test]
    fn shared_calls_buffers_and_unused_children_are_reported() {
        let mut rng = StdRng::seed_from_u64(1);
        let net = Net {
            scale: Param::new(Tensor::ones([1]).unwrap()),
            fc: Linear::new(5, 3, &mut rng).unwrap(),
            norm: BatchNorm1d::new(3).unwrap(),
            drop: Dropout::new(0.5, 9).unwrap(),
            unused: Some(Linear::new(2, 2, &mut rng).unwrap()),
        };
        net.train();
        let running = net.norm.named_buffers();
        let before: Vec<Tensor<f64>> = running.iter().map(|(_, b)| b.value()).collect();
        let stream = Module::<f64>::named_generators(&net.drop)[0].1.state();
        let x = Tensor::from_fn([2, 5], |i| i as f64).unwrap();
        let s = summary_with(&net, &[x.clone(), x], |v| (v[0], v[1])).unwrap();
        // fc: 5·3 + 3 = 18; norm: weight 3 + bias 3 = 6; unused: 2·2 + 2 = 6; scale 1:
        // 31 in 7 tensors; norm's buffers: running mean 3, running var 3, batches seen 1.
        let expected = "\
layer     type         output shape  params
-------------------------------------------
(model)   Net          [2, 3]            31
  fc      Linear       [2, 3] ×2         18
  norm    BatchNorm1d  [2, 3]             6
  drop    Dropout      [2, 3]             0
  unused  Linear       --                 6
-------------------------------------------
input: [2, 5], [2, 5]
parameters: 31 in 7 tensors (248 B)
buffers: 7 (56 B)
";
        assert_eq!(s.to_string(), expected);
        // the pass changed nothing: still training, same running statistics, same stream
        assert!(Module::<f64>::named_generators(&net.drop)[0].1.state() == stream);
        let after: Vec<Tensor<f64>> = running.iter().map(|(_, b)| b.value()).collect();
        assert_eq!(before, after);
        let mut training = Vec::new();
        collect_modes(&net, &mut training);
        assert!(training.iter().all(|(_, t)| *t));
    }

    /// A module that builds a layer inside its forward (not a field): the call is listed
    /// after the tree, named by its type as hooks name it, with no parameters of the model.
    #[derive(crate::Module)]
    struct Adhoc {
        fc: Linear<f64>,
    }

    impl Forward<f64> for Adhoc {
        type Input<'t> = Var<'t, f64>;
        type Output<'t> = Var<'t, f64>;
        fn forward<'t>(&self, cx: &Ctx<'t, f64>, x: Var<'t, f64>) -> crate::Result<Var<'t, f64>> {
            let h = cx.call(&self.fc, x)?;
            cx.call(&Relu, h)
        }
    }

    #[test]
    fn a_module_built_inside_forward_is_listed_after_the_tree() {
        let net = Adhoc {
            fc: Linear::new(3, 2, &mut StdRng::seed_from_u64(0)).unwrap(),
        };
        let s = summary(&net, &Tensor::zeros([4, 3]).unwrap()).unwrap();
        let rows: Vec<(&str, &str, usize)> = s
            .rows
            .iter()
            .map(|r| (r.path.as_str(), r.type_name, r.params))
            .collect();
        // fc: 3·2 + 2 = 8
        assert_eq!(
            rows,
            [("", "Adhoc", 8), ("fc", "Linear", 8), ("<Relu>", "Relu", 0)]
        );
        assert_eq!(s.rows[2].output_shapes[0].dims(), &[4, 2]);
    }

    #[test]
    fn a_forward_error_is_returned_and_the_model_is_left_as_it_was() {
        let mut rng = StdRng::seed_from_u64(0);
        let mlp = Sequential::<f32>::new().append(Linear::new(4, 2, &mut rng).unwrap());
        mlp.train();
        let e = summary(&mlp, &Tensor::zeros([1, 5]).unwrap()).unwrap_err();
        assert!(e.to_string().contains("Linear"), "{e}");
        let mut modes = Vec::new();
        collect_modes(&mlp, &mut modes);
        assert!(modes.iter().all(|(_, t)| *t));
    }
}
