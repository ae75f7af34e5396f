//! [`gradcheck_module`]: a module's gradients with respect to its inputs and every
//! parameter, against finite differences.

use std::cell::RefCell;

use autograd::{GradcheckOptions, Shape, Tensor, Var};

use super::ctx::Ctx;
use super::forward::{Forward, Vars};
use super::leaf::GeneratorState;
use crate::error::{Error, Result};

/// Checks the gradients of `module`'s output with respect to its inputs *and every
/// parameter* against finite differences, in f64.
///
/// `inputs` are the tensors to differentiate with respect to; `to_input` builds the
/// module's input from their `Var`s (`|v| v[0]` for a single-`Var` layer,
/// `|v| (v[0], Some(v[1]))` for a recurrent cell with a state, a struct for attention;
/// masks and other constants can be recorded inside it with `v[0].tape().constant(..)`).
/// The parameters are substituted by checked inputs (input `inputs.len() + i` is the
/// `i`-th of [`named_parameters`](crate::Module::named_parameters)), so a module must bind them
/// with [`Ctx::param`]. Every output `Var` (flattened by [`Vars`]) is reduced to
/// `Σ out ⊙ c` with a fixed non-uniform `c`, so every output element is checked while
/// the Jacobian stays small.
///
/// The module runs once per perturbation. Its buffers and generators are restored before
/// each run and at the end, so dropout draws the same mask every time (and can be
/// checked in training mode) and batch-norm statistics are left as they were.
///
/// ```
/// use autograd::{GradcheckOptions, Tensor};
/// use nn::{gradcheck_module, Linear};
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let fc = Linear::<f64>::new(3, 2, &mut rng)?;
/// let x = Tensor::randn([4, 3], &mut rng)?;
/// gradcheck_module(&fc, &[x], |v| v[0], &GradcheckOptions::default())?;
/// # Ok::<(), nn::Error>(())
/// ```
///
/// # Errors
/// [`Error::ModuleGradcheck`] naming the input or parameter whose gradient is wrong, with
/// autograd's report; [`Error::UnboundParameter`] when a parameter's substitute was never
/// used (the module binds it with `tape.param`, so its gradient was not checked);
/// [`Error::InvalidConfig`] when there is nothing to check or the output has no `Var`;
/// the module's own errors.
pub fn gradcheck_module<M, F>(
    module: &M,
    inputs: &[Tensor<f64>],
    to_input: F,
    opts: &GradcheckOptions,
) -> Result<()>
where
    M: Forward<f64>,
    F: for<'t> Fn(&[Var<'t, f64>]) -> M::Input<'t>,
{
    check_module(module, inputs, to_input, opts, false)
}

/// [`gradcheck_module`] to second order: the gradient of the reduced output with respect
/// to the inputs and every parameter is itself checked against finite differences
/// (`autograd::gradgradcheck`), so a module can be used under gradient penalties,
/// Hessian-vector products and meta-learning. Costs about as many backward passes as
/// there are checked scalars; keep the module small.
///
/// ```
/// use autograd::{GradcheckOptions, Tensor};
/// use nn::{gradgradcheck_module, Linear, Sequential, Tanh};
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let net = Sequential::<f64>::new().append(Linear::new(2, 3, &mut rng)?).append(Tanh);
/// let x = Tensor::randn([2, 2], &mut rng)?;
/// gradgradcheck_module(&net, &[x], |v| v[0], &GradcheckOptions::default())?;
/// # Ok::<(), nn::Error>(())
/// ```
///
/// # Errors
/// As [`gradcheck_module`].
pub fn gradgradcheck_module<M, F>(
    module: &M,
    inputs: &[Tensor<f64>],
    to_input: F,
    opts: &GradcheckOptions,
) -> Result<()>
where
    M: Forward<f64>,
    F: for<'t> Fn(&[Var<'t, f64>]) -> M::Input<'t>,
{
    check_module(module, inputs, to_input, opts, true)
}

fn check_module<M, F>(
    module: &M,
    inputs: &[Tensor<f64>],
    to_input: F,
    opts: &GradcheckOptions,
    second_order: bool,
) -> Result<()>
where
    M: Forward<f64>,
    F: for<'t> Fn(&[Var<'t, f64>]) -> M::Input<'t>,
{
    let params = module.named_parameters();
    let buffers: Vec<_> = module
        .named_buffers()
        .into_iter()
        .map(|(_, b)| {
            let v = b.value();
            (b, v)
        })
        .collect();
    let generators: Vec<(_, GeneratorState)> = module
        .named_generators()
        .into_iter()
        .map(|(_, g)| {
            let s = g.state();
            (g, s)
        })
        .collect();
    let restore = || -> Result<()> {
        for (b, v) in &buffers {
            b.set_value(v.clone())?;
        }
        for (g, s) in &generators {
            g.set_state(s);
        }
        Ok(())
    };
    let n = inputs.len();
    let mut all = inputs.to_vec();
    all.extend(params.iter().map(|(_, p)| p.value()));
    if all.is_empty() {
        return Err(Error::config(
            "gradcheck_module",
            "no inputs and no parameters: nothing to check",
        ));
    }

    // gradcheck's closure returns autograd errors; nn errors leave by this side channel,
    // with an autograd error that only stops the check.
    let nn_err: RefCell<Option<Error>> = RefCell::new(None);
    let stop = |e: Error| {
        nn_err.borrow_mut().get_or_insert(e);
        autograd::Error::InvalidArgument {
            op: "gradcheck_module",
            reason: "the module failed".into(),
            shape: Shape::scalar(),
            location: std::panic::Location::caller(),
        }
    };
    let reduced = autograd::gradcheck::func(|v| {
        restore().map_err(stop)?;
        let tape = v[0].tape();
        let mut cx = Ctx::new(tape);
        for ((_, p), var) in params.iter().zip(&v[n..]) {
            cx.substitute(p, *var);
        }
        let out = cx.call(module, to_input(&v[..n])).map_err(stop)?;
        if let Some((name, _)) = params
            .iter()
            .find(|(_, p)| cx.substitute_used(p) == Some(false))
        {
            return Err(stop(Error::UnboundParameter { name: name.clone() }));
        }
        let outs = out.vars();
        let mut total: Option<Var<'_, f64>> = None;
        for (k, y) in outs.iter().enumerate() {
            let c = Tensor::from_fn(y.shape(), |i| 1.0 + ((i + 7 * k) as f64 * 0.37).sin() * 0.5)?;
            let term = y.mul(tape.constant(c))?.sum();
            total = Some(match total {
                None => term,
                Some(t) => t.add(term)?,
            });
        }
        total.ok_or_else(|| {
            stop(Error::config(
                "gradcheck_module",
                "the module's output holds no Var to check",
            ))
        })
    });
    let res = if second_order {
        autograd::gradgradcheck(reduced, &all, opts)
    } else {
        autograd::gradcheck(reduced, &all, opts)
    };
    restore()?;
    if let Some(e) = nn_err.into_inner() {
        return Err(e);
    }
    match res {
        Ok(()) => Ok(()),
        Err(autograd::Error::Gradcheck(report)) => {
            let i = report.input;
            let checked = if i < n {
                format!("input {i}")
            } else {
                format!("parameter `{}`", params[i - n].0)
            };
            Err(Error::ModuleGradcheck {
                checked,
                source: Box::new(autograd::Error::Gradcheck(report)),
            })
        }
        Err(e) => Err(e.into()),
    }
}
