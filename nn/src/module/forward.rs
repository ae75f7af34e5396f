//! [`Forward`]: a module's computation, with inputs and outputs of its own types;
//! [`Layer`], its object-safe single-`Var` form; and [`Vars`], which flattens inputs and
//! outputs into `Var`s for hooks.

use autograd::{Float, Tensor, Var};

use super::ctx::Ctx;
use super::visit::Module;
use crate::error::Result;

/// The computation of a module: `forward` from an input of the module's choosing to an
/// output of its choosing, recorded on the context's tape.
///
/// - A single-`Var` layer (every built-in layer, every activation) uses
///   `Input<'t> = Var<'t, T>` and `Output<'t> = Var<'t, T>`; it is then a [`Layer`] and
///   fits in a [`Sequential`](crate::Sequential).
/// - A multi-input module takes a tuple or a struct (`(Var, Var)`, an attention input
///   `{ query, key, value, mask: Option<..> }`), a recurrent cell `(Var, Option<State>)`
///   and returns `(Var, State)`. Both must implement [`Vars`] (`#[derive(Vars)]` for a
///   struct), so hooks see every `Var` of them.
///
/// Run a module as `cx.call(&module, input)` (PyTorch's `module(input)`): that is what
/// gives hooks and diagnostics its path in the model and wraps its errors with the layer
/// and the caller's line. Calling `module.forward(cx, input)` directly runs the same
/// maths without either (PyTorch's `module.forward(input)`).
///
/// ```
/// use autograd::{Float, Tape, Tensor, Var};
/// use nn::{Ctx, Forward, Linear, Module};
/// use rand::SeedableRng;
///
/// /// out = a(x) + b(y): two inputs, one output.
/// #[derive(Module)]
/// struct Merge<T: Float> { a: Linear<T>, b: Linear<T> }
///
/// impl<T: Float> Forward<T> for Merge<T> {
///     type Input<'t> = (Var<'t, T>, Var<'t, T>);
///     type Output<'t> = Var<'t, T>;
///     fn forward<'t>(&self, cx: &Ctx<'t, T>, (x, y): Self::Input<'t>) -> nn::Result<Var<'t, T>> {
///         Ok(cx.call(&self.a, x)?.add(cx.call(&self.b, y)?)?)
///     }
/// }
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let m = Merge::<f32> { a: Linear::new(3, 2, &mut rng)?, b: Linear::new(5, 2, &mut rng)? };
/// let tape = Tape::new();
/// let cx = Ctx::new(&tape);
/// let out = cx.call(&m, (tape.constant(Tensor::ones([4, 3])?), tape.constant(Tensor::ones([4, 5])?)))?;
/// assert_eq!(out.dims(), [4, 2]);
/// # Ok::<(), nn::Error>(())
/// ```
pub trait Forward<T: Float>: Module<T> {
    /// What `forward` takes (`Var<'t, T>` for a single-input layer).
    type Input<'t>: Vars<'t, T>;
    /// What `forward` returns (`Var<'t, T>` for a single-output layer).
    type Output<'t>: Vars<'t, T>;

    /// The output for `input`, recorded on `cx`'s tape.
    ///
    /// Ops recorded here (and errors raised here) carry the line that records them, as
    /// anywhere else. The layers of this crate mark their `forward` `#[track_caller]`, so
    /// theirs carry the line that called the layer (the `cx.call` in your code), never a
    /// line of the library; a module of yours can do the same when its internals are
    /// not what its users should see.
    ///
    /// # Errors
    /// [`Error::InputShape`](crate::Error::InputShape) when the input does not fit the
    /// module; tape errors.
    fn forward<'t>(&self, cx: &Ctx<'t, T>, input: Self::Input<'t>) -> Result<Self::Output<'t>>;
}

/// A shared module runs as that module (`cx.call(&arc, x)`).
impl<T: Float, M: Forward<T>> Forward<T> for std::sync::Arc<M> {
    type Input<'t> = M::Input<'t>;
    type Output<'t> = M::Output<'t>;

    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, input: Self::Input<'t>) -> Result<Self::Output<'t>> {
        (**self).forward(cx, input)
    }
}

/// A shared module runs as that module (`cx.call(&rc, x)`).
impl<T: Float, M: Forward<T>> Forward<T> for std::rc::Rc<M> {
    type Input<'t> = M::Input<'t>;
    type Output<'t> = M::Output<'t>;

    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, input: Self::Input<'t>) -> Result<Self::Output<'t>> {
        (**self).forward(cx, input)
    }
}

/// A single-`Var` module as an object (`Box<dyn Layer<T>>`): what [`Sequential`] holds.
/// Implemented for every [`Forward`] whose input and output are one `Var`.
///
/// [`Sequential`]: crate::Sequential
pub trait Layer<T: Float>: Module<T> {
    /// [`Forward::forward`] on one `Var`.
    ///
    /// # Errors
    /// As the module's `forward`.
    #[track_caller]
    fn forward_var<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>>;
}

impl<T: Float, M> Layer<T> for M
where
    M: for<'t> Forward<T, Input<'t> = Var<'t, T>, Output<'t> = Var<'t, T>>,
{
    #[track_caller]
    fn forward_var<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        self.forward(cx, x)
    }
}

impl<T: Float> Forward<T> for dyn Layer<T> + '_ {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        self.forward_var(cx, x)
    }
}

impl<T: Float, M: Forward<T> + ?Sized> Forward<T> for &M {
    type Input<'t> = M::Input<'t>;
    type Output<'t> = M::Output<'t>;
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, input: M::Input<'t>) -> Result<M::Output<'t>> {
        (**self).forward(cx, input)
    }
}

impl<T: Float, M: Forward<T> + ?Sized> Forward<T> for Box<M> {
    type Input<'t> = M::Input<'t>;
    type Output<'t> = M::Output<'t>;
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, input: M::Input<'t>) -> Result<M::Output<'t>> {
        (**self).forward(cx, input)
    }
}

/// Flattens a module's input or output into its `Var`s, in a fixed order, for hooks and
/// diagnostics. Implemented for `Var`, `Option`, `Vec`, arrays, slices, references,
/// tuples up to 6, and (as nothing) numbers, `bool`, strings and `Tensor`s; derive it for
/// a struct of your own with `#[derive(Vars)]` (`#[vars(skip)]` leaves a field out).
///
/// ```
/// use autograd::{Float, Tape, Tensor, Var};
/// use nn::Vars;
///
/// #[derive(Vars)]
/// struct AttentionInput<'t, T: Float> {
///     query: Var<'t, T>,
///     key: Var<'t, T>,
///     mask: Option<Var<'t, T>>,
///     causal: bool,
/// }
///
/// let tape = Tape::<f32>::new();
/// let q = tape.constant(Tensor::ones([2, 3])?);
/// let input = AttentionInput { query: q, key: q, mask: None, causal: true };
/// assert_eq!(input.vars().len(), 2);
/// # Ok::<(), autograd::Error>(())
/// ```
pub trait Vars<'t, T: Float> {
    /// Calls `f` with each `Var`, in order.
    fn visit_vars(&self, f: &mut dyn FnMut(Var<'t, T>));

    /// Every `Var`, in order.
    fn vars(&self) -> Vec<Var<'t, T>> {
        let mut out = Vec::new();
        self.visit_vars(&mut |v| out.push(v));
        out
    }
}

impl<'t, T: Float> Vars<'t, T> for Var<'t, T> {
    fn visit_vars(&self, f: &mut dyn FnMut(Var<'t, T>)) {
        f(*self)
    }
}

impl<'t, T: Float, V: Vars<'t, T>> Vars<'t, T> for Option<V> {
    fn visit_vars(&self, f: &mut dyn FnMut(Var<'t, T>)) {
        if let Some(v) = self {
            v.visit_vars(f)
        }
    }
}

impl<'t, T: Float, V: Vars<'t, T>> Vars<'t, T> for [V] {
    fn visit_vars(&self, f: &mut dyn FnMut(Var<'t, T>)) {
        for v in self {
            v.visit_vars(f)
        }
    }
}

impl<'t, T: Float, V: Vars<'t, T>> Vars<'t, T> for Vec<V> {
    fn visit_vars(&self, f: &mut dyn FnMut(Var<'t, T>)) {
        self.as_slice().visit_vars(f)
    }
}

impl<'t, T: Float, V: Vars<'t, T>, const N: usize> Vars<'t, T> for [V; N] {
    fn visit_vars(&self, f: &mut dyn FnMut(Var<'t, T>)) {
        self.as_slice().visit_vars(f)
    }
}

impl<'t, T: Float, V: Vars<'t, T> + ?Sized> Vars<'t, T> for &V {
    fn visit_vars(&self, f: &mut dyn FnMut(Var<'t, T>)) {
        (**self).visit_vars(f)
    }
}

impl<'t, T: Float, V: Vars<'t, T> + ?Sized> Vars<'t, T> for Box<V> {
    fn visit_vars(&self, f: &mut dyn FnMut(Var<'t, T>)) {
        (**self).visit_vars(f)
    }
}

/// A constant tensor passed along with the `Var`s (a mask, indices): no `Var` to report.
impl<'t, T: Float, U: Float> Vars<'t, T> for Tensor<U> {
    fn visit_vars(&self, _f: &mut dyn FnMut(Var<'t, T>)) {}
}

macro_rules! no_vars {
    ($($t:ty),* $(,)?) => {
        $(impl<'t, T: Float> Vars<'t, T> for $t {
            fn visit_vars(&self, _f: &mut dyn FnMut(Var<'t, T>)) {}
        })*
    };
}
no_vars!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    usize,
    i8,
    i16,
    i32,
    i64,
    isize,
    f32,
    f64,
    str,
    String,
);

macro_rules! tuple_vars {
    ($($name:ident),+) => {
        impl<'t, T: Float, $($name: Vars<'t, T>),+> Vars<'t, T> for ($($name,)+) {
            #[allow(non_snake_case)]
            fn visit_vars(&self, f: &mut dyn FnMut(Var<'t, T>)) {
                let ($($name,)+) = self;
                $($name.visit_vars(f);)+
            }
        }
    };
}
tuple_vars!(A);
tuple_vars!(A, B);
tuple_vars!(A, B, C);
tuple_vars!(A, B, C, D);
tuple_vars!(A, B, C, D, E);
tuple_vars!(A, B, C, D, E, F);
