//! [`Sequential`]: a chain of single-`Var` layers, each fed the previous one's output.

use autograd::{Float, Var};

use crate::error::Result;
use crate::module::{Ctx, Field, Forward, Layer, Module, Visit};

/// `nn.Sequential`: runs its layers in order. Children are named `"0"`, `"1"`, …, so
/// parameters are `"0.weight"`, `"2.bias"`, … as in PyTorch's state dicts, and hooks see
/// each layer under that path. Holds any [`Layer`] (a module whose input and output are
/// one `Var`), boxed.
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
    layers: Vec<Box<dyn Layer<T>>>,
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
    pub fn append(mut self, layer: impl Layer<T> + 'static) -> Self {
        self.push(layer);
        self
    }

    /// Appends a layer.
    pub fn push(&mut self, layer: impl Layer<T> + 'static) {
        self.layers.push(Box::new(layer));
    }

    /// Appends an already boxed layer.
    pub fn push_boxed(&mut self, layer: Box<dyn Layer<T>>) {
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
    pub fn get(&self, i: usize) -> Option<&dyn Layer<T>> {
        self.layers.get(i).map(|b| &**b)
    }

    /// The layers in order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Layer<T>> {
        self.layers.iter().map(|b| &**b)
    }
}

impl<T: Float> Module<T> for Sequential<T> {
    fn visit_fields<'s>(&'s self, f: &mut dyn FnMut(&str, Field<'s, T>)) {
        for (i, layer) in self.layers.iter().enumerate() {
            let layer: &dyn Module<T> = &**layer;
            f(&i.to_string(), Field::Module(layer));
        }
    }
}

impl<T: Float> Visit<T> for Sequential<T> {
    fn visit<'s>(&'s self, name: &str, f: &mut dyn FnMut(&str, Field<'s, T>)) {
        f(name, Field::Module(self))
    }
}

impl<T: Float> Forward<T> for Sequential<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let mut h = x;
        for (i, layer) in self.layers.iter().enumerate() {
            h = cx.call_indexed(self, i, &**layer, h)?;
        }
        Ok(h)
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
        // in training mode the dropout mask is replayed for every perturbation
        let x = Tensor::from_vec(vec![0.5, -0.3, 1.2, 0.8], [2, 2]).unwrap();
        gradcheck_module(
            &net,
            std::slice::from_ref(&x),
            |v| v[0],
            &GradcheckOptions::default(),
        )
        .unwrap();
        // eval reaches the nested dropout
        net.eval();
        gradcheck_module(&net, &[x], |v| v[0], &GradcheckOptions::default()).unwrap();
    }
}
