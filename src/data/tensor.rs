//! [`TensorDataset`]: the rows of a tensor with their class labels, as a dataset
//! (`torch.utils.data.TensorDataset`) — for data already in memory and preprocessed
//! (standardised pixels, features).

use autograd::{Float, Tensor};

use super::dataset::{DataError, Dataset, LabeledBatch};
use super::rng::BatchRng;

/// The rows of an `[n, ..]` tensor (axis 0 indexes examples) and their `n` labels.
///
/// ```
/// use autograd::Tensor;
/// use gradlab::data::{DataLoader, LoaderOptions, TensorDataset};
///
/// let x = Tensor::from_vec((0..12).map(|v| v as f32).collect(), [6, 2])?;
/// let data = TensorDataset::new(x, vec![0, 1, 0, 1, 0, 1])?;
/// let opts = LoaderOptions { shuffle: false, ..LoaderOptions::new(4) };
/// let mut loader = DataLoader::new(data, opts, TensorDataset::<f32>::collate)?;
/// let sizes: Vec<Vec<usize>> = loader.epoch().map(|b| b.unwrap().inputs.dims().to_vec()).collect();
/// assert_eq!(sizes, [vec![4, 2], vec![2, 2]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TensorDataset<T: Float> {
    x: Tensor<T>,
    labels: Vec<usize>,
    row: usize,
}

impl<T: Float> TensorDataset<T> {
    /// Examples `x[i]` with labels `labels[i]`.
    ///
    /// # Errors
    /// [`DataError::InvalidOption`] when `x` is 0-d or its first axis is not
    /// `labels.len()` long.
    pub fn new(x: Tensor<T>, labels: Vec<usize>) -> Result<Self, DataError> {
        let dims = x.dims();
        if dims.first() != Some(&labels.len()) {
            return Err(DataError::InvalidOption {
                name: "x",
                value: format!("{:?} with {} labels", dims, labels.len()),
                reason: "axis 0 of the inputs must index the labelled examples",
            });
        }
        let row = dims[1..].iter().product();
        Ok(TensorDataset { x, labels, row })
    }

    /// The inputs.
    pub fn inputs(&self) -> &Tensor<T> {
        &self.x
    }

    /// The labels.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Stacks rows back into a `[B, ..]` tensor (the shape of one row kept): the collate
    /// function of a loader over a `TensorDataset`.
    ///
    /// # Errors
    /// [`DataError::InvalidOption`] for rows of different shapes (items from two
    /// datasets).
    pub fn collate(
        items: Vec<(Tensor<T>, usize)>,
        _rng: &mut BatchRng,
    ) -> Result<LabeledBatch<T>, DataError> {
        let row_dims = items.first().map_or(vec![0], |(r, _)| r.dims().to_vec());
        let mut data = Vec::with_capacity(items.len() * row_dims.iter().product::<usize>());
        let mut labels = Vec::with_capacity(items.len());
        for (r, l) in &items {
            if r.dims() != row_dims.as_slice() {
                return Err(DataError::InvalidOption {
                    name: "items",
                    value: format!("rows of shapes {:?} and {:?}", row_dims, r.dims()),
                    reason: "a batch stacks rows of one shape",
                });
            }
            data.extend_from_slice(r.as_slice());
            labels.push(*l);
        }
        let mut dims = vec![items.len()];
        dims.extend_from_slice(&row_dims);
        Ok(LabeledBatch {
            inputs: Tensor::from_vec(data, dims)?,
            labels,
        })
    }
}

impl<T: Float> Dataset for TensorDataset<T> {
    /// Row `i` (shape `x.dims()[1..]`) and its label.
    type Item = (Tensor<T>, usize);

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize) -> Result<Self::Item, DataError> {
        let Some(&label) = self.labels.get(index) else {
            return Err(DataError::Index {
                index,
                len: self.labels.len(),
            });
        };
        let start = index * self.row;
        let row = self.x.as_slice()[start..start + self.row].to_vec();
        Ok((Tensor::from_vec(row, &self.x.dims()[1..])?, label))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_back_with_their_labels_and_stack() {
        // x[i] = [[3i, 3i+1, 3i+2]]: rows of shape [1, 3]
        let x = Tensor::from_vec((0..12).map(|v| v as f64).collect(), [4, 1, 3]).unwrap();
        let d = TensorDataset::new(x, vec![7, 8, 9, 6]).unwrap();
        let (r, l) = d.get(2).unwrap();
        assert_eq!(
            (r.dims(), r.to_vec(), l),
            (&[1, 3][..], vec![6.0, 7.0, 8.0], 9)
        );
        let items = vec![d.get(3).unwrap(), d.get(0).unwrap()];
        let b = TensorDataset::<f64>::collate(items, &mut BatchRng::new(0)).unwrap();
        assert_eq!(b.inputs.dims(), &[2, 1, 3]);
        assert_eq!(b.inputs.to_vec(), vec![9.0, 10.0, 11.0, 0.0, 1.0, 2.0]);
        assert_eq!(b.labels, vec![6, 7]);
        assert!(matches!(
            d.get(4),
            Err(DataError::Index { index: 4, len: 4 })
        ));
        let bad = Tensor::<f64>::zeros([3, 2]).unwrap();
        assert!(TensorDataset::new(bad, vec![0; 4]).is_err());
    }
}
