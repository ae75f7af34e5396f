//! [`Module`]: a module's bookkeeping (its named fields), and [`Visit`], the trait that
//! says what each field type is.

use std::marker::PhantomData;

use autograd::{Float, Param, Shape};

use super::leaf::{Buffer, Generator, Mode};
use crate::activation::Activation;

/// One entry of a module: what [`Module::visit_fields`] reports for a field.
pub enum Field<'s, T: Float> {
    /// A trainable parameter (`weight`).
    Param(&'s Param<T>),
    /// Non-trainable state saved with the parameters (`running_mean`).
    Buffer(&'s Buffer<T>),
    /// A random stream (dropout's), saved with the module state.
    Generator(&'s Generator),
    /// A train/eval flag, set by [`Module::train`] and [`Module::eval`].
    Mode(&'s Mode),
    /// A child module.
    Module(&'s dyn Module<T>),
}

/// A module's identity while it is borrowed: its address and its full type name. Used to
/// find a called module's path among the visited ones; zero-sized siblings of one type
/// share it (see [`Ctx::call`](crate::Ctx::call)).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModuleId {
    addr: usize,
    ty: &'static str,
}

impl ModuleId {
    /// The short name of the module's type (`"Linear"`).
    pub(crate) fn short_type_name(&self) -> &'static str {
        short_type_name(self.ty)
    }

    pub(crate) fn of<M: ?Sized>(m: &M) -> Self {
        ModuleId {
            addr: m as *const M as *const () as usize,
            ty: std::any::type_name::<M>(),
        }
    }
}

/// The bookkeeping half of a module: its named parameters, buffers, generators, modes
/// and children, and everything derived from them. Object-safe (`&dyn Module<T>`); the
/// computation is [`Forward`](crate::Forward).
///
/// Normally derived: `#[derive(Module)]` generates [`visit_fields`](Module::visit_fields)
/// from the struct's fields, named after them, so a name is written once. Each field's
/// type says what it is through [`Visit`]: [`Param`], [`Buffer`], [`Generator`],
/// [`Mode`], any module, [`Option`] of those (absent = nothing), and configuration types
/// ([`Plain`]: numbers, `bool`, `String`, configs) that are not visited.
///
/// ```
/// use autograd::{Float, Param, Tensor};
/// use nn::{Linear, Module};
/// use rand::SeedableRng;
///
/// #[derive(Module)]
/// struct Block<T: Float> {
///     fc1: Linear<T>,
///     fc2: Option<Linear<T>>,
///     scale: Param<T>,
///     width: usize, // configuration: not visited
/// }
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let block = Block::<f64> {
///     fc1: Linear::new(4, 8, &mut rng)?,
///     fc2: None,
///     scale: Param::new(Tensor::ones([1])?),
///     width: 8,
/// };
/// let names: Vec<String> = block.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["scale", "fc1.weight", "fc1.bias"]);
/// assert_eq!(block.num_parameters(), 4 * 8 + 8 + 1);
/// # Ok::<(), nn::Error>(())
/// ```
///
/// Own parameters (and buffers) come before the children's, each in field order:
/// PyTorch's `named_parameters` order and `state_dict` keys for the same structure.
pub trait Module<T: Float> {
    /// Calls `f` with the name and entry of each field: the one required method, written
    /// by `#[derive(Module)]`.
    fn visit_fields<'s>(&'s self, f: &mut dyn FnMut(&str, Field<'s, T>));

    /// A short type name for reports and errors (`"Linear"`).
    fn type_name(&self) -> &'static str {
        short_type_name(std::any::type_name::<Self>())
    }

    /// The activation this module applies, if it is one (`#[module(activation)]`): what
    /// diagnostics and `init::calculate_gain` consult.
    fn activation(&self) -> Option<&dyn Activation> {
        None
    }

    /// Switches this module's own behaviour (not its children's) between training and
    /// evaluation: sets every [`Mode`] field.
    fn set_own_training(&self, training: bool) {
        self.visit_fields(&mut |_, field| {
            if let Field::Mode(m) = field {
                m.set(training);
            }
        });
    }

    /// ModuleId used to resolve a called module's path; a forwarding impl (`Box`) must
    /// forward it.
    #[doc(hidden)]
    fn module_id(&self) -> ModuleId {
        ModuleId::of(self)
    }

    /// Calls `f` with the name and a reference of each child module (`"fc1"`, `"0"`).
    fn children<'s>(&'s self, f: &mut dyn FnMut(&str, &'s dyn Module<T>)) {
        self.visit_fields(&mut |name, field| {
            if let Field::Module(m) = field {
                f(name, m);
            }
        });
    }

    /// Calls `f` with each parameter this module owns directly (not its children's).
    fn own_params(&self, f: &mut dyn FnMut(&str, &Param<T>)) {
        self.visit_fields(&mut |name, field| {
            if let Field::Param(p) = field {
                f(name, p);
            }
        });
    }

    /// Calls `f` with each buffer this module owns directly.
    fn own_buffers(&self, f: &mut dyn FnMut(&str, &Buffer<T>)) {
        self.visit_fields(&mut |name, field| {
            if let Field::Buffer(b) = field {
                f(name, b);
            }
        });
    }

    /// Calls `f` with the hierarchical name (`"layers.0.weight"`) of every parameter of
    /// this module and its descendants, depth first, own parameters before children's.
    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param<T>)) {
        self.own_params(f);
        self.children(&mut |name, child| {
            child.visit_params(&mut |n, p| f(&join(name, n), p));
        });
    }

    /// Like [`visit_params`](Module::visit_params) for buffers.
    fn visit_buffers(&self, f: &mut dyn FnMut(&str, &Buffer<T>)) {
        self.own_buffers(f);
        self.children(&mut |name, child| {
            child.visit_buffers(&mut |n, b| f(&join(name, n), b));
        });
    }

    /// Like [`visit_params`](Module::visit_params) for generators (dropout's random
    /// streams), named `"3.generator"`.
    fn visit_generators(&self, f: &mut dyn FnMut(&str, &Generator)) {
        self.visit_fields(&mut |name, field| {
            if let Field::Generator(g) = field {
                f(name, g);
            }
        });
        self.children(&mut |name, child| {
            child.visit_generators(&mut |n, g| f(&join(name, n), g));
        });
    }

    /// Every parameter with its hierarchical name (handles sharing the module's values).
    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        let mut out = Vec::new();
        self.visit_params(&mut |n, p| out.push((n.to_string(), p.clone())));
        out
    }

    /// Every parameter, in [`named_parameters`](Module::named_parameters) order: what an
    /// optimiser takes.
    fn parameters(&self) -> Vec<Param<T>> {
        self.named_parameters()
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    /// Every buffer with its hierarchical name.
    fn named_buffers(&self) -> Vec<(String, Buffer<T>)> {
        let mut out = Vec::new();
        self.visit_buffers(&mut |n, b| out.push((n.to_string(), b.clone())));
        out
    }

    /// Every generator (random stream) with its hierarchical name; their states are
    /// saved by [`state::save`](crate::state::save) so that a resumed run draws the same
    /// dropout masks.
    fn named_generators(&self) -> Vec<(String, Generator)> {
        let mut out = Vec::new();
        self.visit_generators(&mut |n, g| out.push((n.to_string(), g.clone())));
        out
    }

    /// Every module of the tree with its path, this one first (path `""`), then depth
    /// first in field order: the paths hooks and diagnostics report.
    fn named_modules(&self) -> Vec<(String, &dyn Module<T>)>
    where
        Self: Sized,
    {
        let mut out: Vec<(String, &dyn Module<T>)> = vec![(String::new(), self)];
        walk(self, "", &mut |path, m| out.push((path.to_string(), m)));
        out
    }

    /// Total number of trainable scalars.
    fn num_parameters(&self) -> usize {
        let mut n = 0;
        self.visit_params(&mut |_, p| n += p.numel());
        n
    }

    /// Sets training (`true`) or evaluation mode on this module and every descendant.
    fn set_training(&self, training: bool) {
        self.set_own_training(training);
        self.children(&mut |_, c| c.set_training(training));
    }

    /// Training mode (dropout drops, batch norm uses batch statistics). The default.
    fn train(&self) {
        self.set_training(true);
    }

    /// Evaluation mode (dropout is the identity, batch norm uses running statistics).
    fn eval(&self) {
        self.set_training(false);
    }

    /// Clears the gradient of every parameter.
    fn zero_grad(&self) {
        self.visit_params(&mut |_, p| p.zero_grad());
    }
}

/// Calls `f` with the path and reference of every descendant of `m`, depth first in field
/// order (`m` itself excluded).
pub(crate) fn walk<'s, T: Float>(
    m: &'s dyn Module<T>,
    prefix: &str,
    f: &mut dyn FnMut(&str, &'s dyn Module<T>),
) {
    m.children(&mut |name, child| {
        let path = join(prefix, name);
        f(&path, child);
        walk(child, &path, f);
    });
}

pub(crate) fn join(prefix: &str, name: &str) -> String {
    match (prefix.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}.{name}"),
    }
}

/// `"nn::layers::linear::Linear<f32>"` → `"Linear"`.
pub(crate) fn short_type_name(full: &'static str) -> &'static str {
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

/// `Module` for a pointer to a module: every method asks the module pointed to.
macro_rules! module_through_pointer {
    ($($(#[$doc:meta])* $ptr:ty;)*) => {$(
        $(#[$doc])*
        impl<T: Float, M: Module<T> + ?Sized> Module<T> for $ptr {
            fn visit_fields<'s>(&'s self, f: &mut dyn FnMut(&str, Field<'s, T>)) {
                (**self).visit_fields(f)
            }
            fn type_name(&self) -> &'static str {
                (**self).type_name()
            }
            fn activation(&self) -> Option<&dyn Activation> {
                (**self).activation()
            }
            fn set_own_training(&self, training: bool) {
                (**self).set_own_training(training)
            }
            fn module_id(&self) -> ModuleId {
                (**self).module_id()
            }
        }
    )*};
}

module_through_pointer! {
    /// A reference to a module is that module (so `cx.call(&model, x)` works whether
    /// `model` is a module or a reference to one).
    &M;
    Box<M>;
    /// A shared module is that module: blocks held as `Rc<Block>` or `Arc<Block>` (what
    /// [`checkpoint`](crate::checkpoint) takes) keep their names, parameters and paths.
    std::sync::Arc<M>;
    /// As for `Arc`.
    std::rc::Rc<M>;
}

/// A shared module as a field is that module.
impl<T: Float, M: Module<T>> Visit<T> for std::sync::Arc<M> {
    fn visit<'s>(&'s self, name: &str, f: &mut dyn FnMut(&str, Field<'s, T>)) {
        let m: &dyn Module<T> = &**self;
        f(name, Field::Module(m))
    }
}

/// A shared module as a field is that module.
impl<T: Float, M: Module<T>> Visit<T> for std::rc::Rc<M> {
    fn visit<'s>(&'s self, name: &str, f: &mut dyn FnMut(&str, Field<'s, T>)) {
        let m: &dyn Module<T> = &**self;
        f(name, Field::Module(m))
    }
}

/// What a field's type is to a module: implemented by [`Param`], [`Buffer`],
/// [`Generator`], [`Mode`], every module type (`#[derive(Module)]` emits it), the
/// containers ([`Sequential`](crate::Sequential), [`ModuleList`](crate::ModuleList)), a
/// boxed layer (`Box<dyn Layer<T>>`), [`Option`] of any of these, and, as nothing at all,
/// every [`Plain`] configuration type.
///
/// A field whose type implements none of them is a compile error naming the field: mark
/// it `#[module(skip)]`, or implement [`Plain`] for a configuration type of your own.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a module field (`nn::module::Visit<{T}>` is not implemented)",
    label = "this field's type is neither a parameter, buffer, generator, mode, module nor configuration",
    note = "mark the field `#[module(skip)]` to leave it out of the module's bookkeeping",
    note = "or implement `nn::module::Plain` for a configuration type, or `#[derive(Module)]` for a module type"
)]
pub trait Visit<T: Float> {
    /// Reports this field, named `name`, to `f` (or nothing, for configuration).
    fn visit<'s>(&'s self, name: &str, f: &mut dyn FnMut(&str, Field<'s, T>));
}

impl<T: Float> Visit<T> for Param<T> {
    fn visit<'s>(&'s self, name: &str, f: &mut dyn FnMut(&str, Field<'s, T>)) {
        f(name, Field::Param(self))
    }
}

impl<T: Float> Visit<T> for Buffer<T> {
    fn visit<'s>(&'s self, name: &str, f: &mut dyn FnMut(&str, Field<'s, T>)) {
        f(name, Field::Buffer(self))
    }
}

impl<T: Float> Visit<T> for Generator {
    fn visit<'s>(&'s self, name: &str, f: &mut dyn FnMut(&str, Field<'s, T>)) {
        f(name, Field::Generator(self))
    }
}

impl<T: Float> Visit<T> for Mode {
    fn visit<'s>(&'s self, name: &str, f: &mut dyn FnMut(&str, Field<'s, T>)) {
        f(name, Field::Mode(self))
    }
}

/// Absent: no parameters, no names.
impl<T: Float, V: Visit<T>> Visit<T> for Option<V> {
    fn visit<'s>(&'s self, name: &str, f: &mut dyn FnMut(&str, Field<'s, T>)) {
        if let Some(v) = self {
            v.visit(name, f);
        }
    }
}

/// A configuration type: a module field that holds no parameters, buffers, generators or
/// children (sizes, flags, hyper-parameters). Visiting it reports nothing.
///
/// Implemented for numbers, `bool`, `char`, `String`, `&'static str`, `()`, shapes,
/// `PhantomData`, vectors and arrays of plain values, and nn's configs. Implement it for
/// a configuration struct of your own to use it as a field without `#[module(skip)]`.
pub trait Plain {}

impl<T: Float, P: Plain> Visit<T> for P {
    fn visit<'s>(&'s self, _name: &str, _f: &mut dyn FnMut(&str, Field<'s, T>)) {}
}

macro_rules! plain {
    ($($t:ty),* $(,)?) => { $(impl Plain for $t {})* };
}
plain!(
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    String,
    &'static str,
    (),
    Shape,
);
impl<P: Plain> Plain for Vec<P> {}
impl<P: Plain, const N: usize> Plain for [P; N] {}
impl<X: ?Sized> Plain for PhantomData<X> {}
impl<A: Plain, B: Plain> Plain for (A, B) {}
impl<A: Plain, B: Plain, C: Plain> Plain for (A, B, C) {}

/// A boxed single-`Var` layer is that layer (`Box<dyn Layer<T>>` fields, chosen at run time).
impl<T: Float> Visit<T> for Box<dyn super::forward::Layer<T>> {
    fn visit<'s>(&'s self, name: &str, f: &mut dyn FnMut(&str, Field<'s, T>)) {
        let layer: &dyn Module<T> = &**self;
        f(name, Field::Module(layer))
    }
}
