//! [`ModuleList`]: an indexed stack of modules of one type, as `nn.ModuleList`.

use std::ops::Index;

use autograd::Float;

use crate::module::{Field, Module, Visit};

/// `nn.ModuleList`: modules of one type `M`, named `"0"`, `"1"`, … (so a field
/// `blocks: ModuleList<Block<T>>` gives `"blocks.0.fc.weight"`, PyTorch's keys). It has
/// no `forward`: the parent iterates, calling each with `cx.call(block, h)`, and hooks
/// see it as `"blocks.1"`. Any module type fits, including multi-input ones and boxed
/// layers (`ModuleList<Box<dyn Layer<T>>>`).
///
/// ```
/// use autograd::{Float, Tape, Tensor, Var};
/// use nn::{Ctx, Forward, Linear, Module, ModuleList};
/// use rand::SeedableRng;
///
/// #[derive(Module)]
/// struct Tower<T: Float> { blocks: ModuleList<Linear<T>> }
///
/// impl<T: Float> Forward<T> for Tower<T> {
///     type Input<'t> = Var<'t, T>;
///     type Output<'t> = Var<'t, T>;
///     fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> nn::Result<Var<'t, T>> {
///         let mut h = x;
///         for block in &self.blocks {
///             h = cx.call(block, h)?.tanh();
///         }
///         Ok(h)
///     }
/// }
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let blocks = (0..3).map(|_| Linear::<f32>::new(4, 4, &mut rng)).collect::<nn::Result<ModuleList<_>>>()?;
/// let tower = Tower { blocks };
/// assert_eq!(tower.named_parameters()[4].0, "blocks.2.weight");
/// let tape = Tape::new();
/// assert_eq!(Ctx::new(&tape).call(&tower, tape.constant(Tensor::ones([1, 4])?))?.dims(), [1, 4]);
/// # Ok::<(), nn::Error>(())
/// ```
#[derive(Debug)]
pub struct ModuleList<M> {
    items: Vec<M>,
}

impl<M> Default for ModuleList<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> ModuleList<M> {
    /// An empty list.
    pub fn new() -> Self {
        ModuleList { items: Vec::new() }
    }

    /// Appends a module.
    pub fn push(&mut self, module: M) {
        self.items.push(module);
    }

    /// Number of modules.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Module `i`, if it exists.
    pub fn get(&self, i: usize) -> Option<&M> {
        self.items.get(i)
    }

    /// The modules in order.
    pub fn iter(&self) -> std::slice::Iter<'_, M> {
        self.items.iter()
    }
}

impl<M> From<Vec<M>> for ModuleList<M> {
    fn from(items: Vec<M>) -> Self {
        ModuleList { items }
    }
}

impl<M> FromIterator<M> for ModuleList<M> {
    fn from_iter<I: IntoIterator<Item = M>>(iter: I) -> Self {
        ModuleList {
            items: iter.into_iter().collect(),
        }
    }
}

impl<'a, M> IntoIterator for &'a ModuleList<M> {
    type Item = &'a M;
    type IntoIter = std::slice::Iter<'a, M>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl<M> Index<usize> for ModuleList<M> {
    type Output = M;
    /// # Panics
    /// When `i` is out of range, as `Vec` indexing; use [`ModuleList::get`] to check.
    fn index(&self, i: usize) -> &M {
        &self.items[i]
    }
}

impl<T: Float, M: Module<T>> Module<T> for ModuleList<M> {
    fn visit_fields<'s>(&'s self, f: &mut dyn FnMut(&str, Field<'s, T>)) {
        for (i, m) in self.items.iter().enumerate() {
            f(&i.to_string(), Field::Module(m));
        }
    }
}

impl<T: Float, M: Module<T>> Visit<T> for ModuleList<M> {
    fn visit<'s>(&'s self, name: &str, f: &mut dyn FnMut(&str, Field<'s, T>)) {
        f(name, Field::Module(self))
    }
}
