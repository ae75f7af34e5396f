//! The 8×8 handwritten digits (`data/digits.csv`, provenance and licence in
//! `data/README.md`); loading never touches the network.

use std::path::{Path, PathBuf};

use autograd::{Float, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::dataset::{DataError, Dataset, LabeledBatch};
use super::rng::BatchRng;

/// The 8×8 handwritten digits (UCI optdigits test set, as bundled with scikit-learn):
/// 1797 images of 64 pixels in `[0, 16]`, labels 0–9.
#[derive(Clone, Debug)]
pub struct Digits {
    /// Pixels scaled to `[0, 1]` (divided by 16), row-major 8×8 per image.
    pub pixels: Vec<[f32; 64]>,
    /// The digit of each image.
    pub labels: Vec<usize>,
}

/// `data/digits.csv` in this repository.
pub fn digits_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits.csv")
}

impl Digits {
    /// Reads the CSV (header `p0..p63,label`).
    ///
    /// # Errors
    /// [`DataError::Io`] when the file cannot be read; [`DataError::Format`] for a row
    /// without 65 integer fields, a pixel outside 0–16 or a label outside 0–9.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
            path: path.to_owned(),
            source,
        })?;
        let bad = |line: usize, reason: String| DataError::Format {
            path: path.to_owned(),
            line,
            reason,
        };
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for (i, row) in text.lines().enumerate().skip(1) {
            if row.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = row.split(',').collect();
            if fields.len() != 65 {
                return Err(bad(i + 1, format!("{} fields, expected 65", fields.len())));
            }
            let mut img = [0f32; 64];
            for (k, f) in fields[..64].iter().enumerate() {
                let v: u32 = f
                    .trim()
                    .parse()
                    .map_err(|_| bad(i + 1, format!("pixel {k} is not an integer: {f:?}")))?;
                if v > 16 {
                    return Err(bad(i + 1, format!("pixel {k} = {v} is outside 0..=16")));
                }
                img[k] = v as f32 / 16.0;
            }
            let label: usize = fields[64]
                .trim()
                .parse()
                .map_err(|_| bad(i + 1, format!("label {:?} is not an integer", fields[64])))?;
            if label > 9 {
                return Err(bad(i + 1, format!("label {label} is outside 0..=9")));
            }
            pixels.push(img);
            labels.push(label);
        }
        Ok(Digits { pixels, labels })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// A seeded random split into `n_train` training images and the rest held out.
    pub fn split(&self, n_train: usize, seed: u64) -> (Digits, Digits) {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        let n_train = n_train.min(self.len());
        (self.subset(&idx[..n_train]), self.subset(&idx[n_train..]))
    }

    /// The images at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Digits {
        Digits {
            pixels: idx.iter().map(|&i| self.pixels[i]).collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// The images at `idx` as a `[len, 64]` tensor, with their labels.
    ///
    /// # Panics
    /// When an index is out of range.
    pub fn batch<T: Float>(&self, idx: &[usize]) -> (Tensor<T>, Vec<usize>) {
        let data: Vec<T> = idx
            .iter()
            .flat_map(|&i| self.pixels[i].iter().map(|&p| T::of(p as f64)))
            .collect();
        let x = Tensor::from_vec(data, [idx.len(), 64]).expect("internal: 64 pixels per image");
        (x, idx.iter().map(|&i| self.labels[i]).collect())
    }
}

impl Dataset for Digits {
    /// An image (64 pixels in `[0, 1]`, row-major 8×8) and its digit.
    type Item = ([f32; 64], usize);

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize) -> Result<Self::Item, DataError> {
        match (self.pixels.get(index), self.labels.get(index)) {
            (Some(&p), Some(&l)) => Ok((p, l)),
            _ => Err(DataError::Index {
                index,
                len: self.labels.len(),
            }),
        }
    }
}

impl Digits {
    /// Collates images into a `[B, 64]` tensor of `T` and their labels: the collate
    /// function of a [`DataLoader`](super::DataLoader) over digits
    /// (`DataLoader::new(digits, opts, Digits::collate::<f32>)`).
    ///
    /// # Errors
    /// None for well-formed items; typed because tensor construction is.
    pub fn collate<T: Float>(
        items: Vec<([f32; 64], usize)>,
        _rng: &mut BatchRng,
    ) -> Result<LabeledBatch<T>, DataError> {
        let n = items.len();
        let mut data = Vec::with_capacity(n * 64);
        let mut labels = Vec::with_capacity(n);
        for (p, l) in items {
            data.extend(p.iter().map(|&v| T::of(v as f64)));
            labels.push(l);
        }
        Ok(LabeledBatch {
            inputs: Tensor::from_vec(data, [n, 64])?,
            labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_has_the_documented_class_counts() {
        let d = Digits::load(digits_path()).unwrap();
        assert_eq!(d.len(), 1797);
        let mut counts = [0usize; 10];
        for &l in &d.labels {
            counts[l] += 1;
        }
        // data/README.md: 178, 182, 177, 183, 181, 182, 181, 179, 174, 180
        assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    }

    #[test]
    fn a_malformed_row_names_its_line() {
        let dir = std::env::temp_dir().join(format!("gradlab-digits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.csv");
        std::fs::write(&p, "h\n".to_string() + &"1,".repeat(64) + "12\n").unwrap();
        let e = Digits::load(&p).unwrap_err();
        assert!(e.to_string().contains("bad.csv:2: label 12"), "{e}");
    }

    #[test]
    fn split_is_seeded_and_disjoint() {
        let d = Digits::load(digits_path()).unwrap();
        let (a, b) = d.split(1500, 7);
        let (a2, _) = d.split(1500, 7);
        assert_eq!((a.len(), b.len()), (1500, 297));
        assert_eq!(a.labels, a2.labels);
    }

    #[test]
    fn as_a_dataset_items_and_collation_match_batch() {
        let d = Digits::load(digits_path()).unwrap();
        assert_eq!(Dataset::len(&d), 1797);
        let idx = [5, 0, 1796];
        let items = idx.iter().map(|&i| d.get(i).unwrap()).collect();
        let b = Digits::collate::<f64>(items, &mut BatchRng::new(0)).unwrap();
        let (x, y) = d.batch::<f64>(&idx);
        assert_eq!((b.inputs, b.labels), (x, y));
        assert!(matches!(
            d.get(1797),
            Err(DataError::Index {
                index: 1797,
                len: 1797
            })
        ));
    }
}
