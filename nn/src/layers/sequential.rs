//! [`Sequential`]: a chain of modules, each fed the previous one's output.

use autograd::{Float, Var};

use crate::error::Result;
use crate::module::{Ctx, Module};

/// `nn.Sequential`: runs its layers in order. Children are named `"0"`, `"1"`, …, so
/// parameters are `"0.weight"`, `"2.bias"`, … as in PyTorch's state dicts. Each layer
/// runs through [`Ctx::call`], so a recording context sees every layer's output.
///
/// ```
/// use nn::{Linear, Module, Relu, Sequential};
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mlp = Sequential::<f32>::new()
///     .append(Linear::new(4, 8, &mut rng)?)
///     .append(Relu)
///     .append(Linear::new(8, 2, &mut rng)?);
/// assert_eq!(mlp.named_parameters()[2].0, "2.weight");
/// # Ok::<(), nn::Error>(())
/// ```
pub struct Sequential<T: Float> {
    layers: Vec<Box<dyn Module<T>>>,
}

impl<T: Float> Default for Sequential<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Sequential<T> {
    /// An empty chain (the identity).
    pub fn new() -> Self {
        Sequential { layers: Vec::new() }
    }

    /// Appends a layer (builder form, like `nn.Sequential.append`).
    #[must_use]
    pub fn append(mut self, layer: impl Module<T> + 'static) -> Self {
        self.push(layer);
        self
    }

    /// Appends a layer.
    pub fn push(&mut self, layer: impl Module<T> + 'static) {
        self.layers.push(Box::new(layer));
    }

    /// Appends an already boxed layer.
    pub fn push_boxed(&mut self, layer: Box<dyn Module<T>>) {
        self.layers.push(layer);
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Layer `i`, if it exists.
    pub fn get(&self, i: usize) -> Option<&dyn Module<T>> {
        self.layers.get(i).map(|b| &**b)
    }
}

impl<T: Float> Module<T> for Sequential<T> {
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let mut h = x;
        for (i, layer) in self.layers.iter().enumerate() {
            h = cx.call(&i.to_string(), &**layer, h)?;
        }
        Ok(h)
    }

    fn children(&self, f: &mut dyn FnMut(&str, &dyn Module<T>)) {
        for (i, layer) in self.layers.iter().enumerate() {
            f(&i.to_string(), &**layer);
        }
    }
}

impl<T: Float> std::fmt::Debug for Sequential<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.layers.iter().map(|l| l.type_name()).collect();
        write!(f, "Sequential{names:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::{Relu, Tanh};
    use crate::layers::{Dropout, Linear};
    use crate::module::gradcheck_module;
    use autograd::{GradcheckOptions, Tensor};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn sequential_names_counts_modes_and_gradchecks() {
        let mut rng = StdRng::seed_from_u64(5);
        let inner = Sequential::new()
            .append(Linear::new(3, 3, &mut rng).unwrap())
            .append(Tanh);
        let net = Sequential::<f64>::new()
            .append(Linear::new(2, 3, &mut rng).unwrap())
            .append(Relu)
            .append(inner)
            .append(Dropout::new(0.5, 0).unwrap())
            .append(Linear::new(3, 1, &mut rng).unwrap());
        let names: Vec<_> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "0.weight",
                "0.bias",
                "2.0.weight",
                "2.0.bias",
                "4.weight",
                "4.bias"
            ]
        );
        assert_eq!(net.num_parameters(), 2 * 3 + 3 + 9 + 3 + 3 + 1);
        assert_eq!(
            format!("{net:?}"),
            "Sequential[\"Linear\", \"Relu\", \"Sequential\", \"Dropout\", \"Linear\"]"
        );
        // eval reaches the nested dropout, so the net is deterministic and checkable
        net.eval();
        let x = Tensor::from_vec(vec![0.5, -0.3, 1.2, 0.8], [2, 2]).unwrap();
        gradcheck_module(&net, &x, &GradcheckOptions::default()).unwrap();
    }
}
