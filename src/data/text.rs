//! Character-level text: a vocabulary, an encoded corpus, a seeded train/validation split by
//! contiguous blocks, and fixed-length context windows for next-character prediction.
//!
//! The shipped corpus is the King James Version (`data/kjv.txt`, provenance in
//! `data/README.md`).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::dataset::{DataError, Dataset};
use super::rng::{derive, BatchRng};

/// `data/kjv.txt` in this repository: the King James Version, one verse per line.
pub fn kjv_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/kjv.txt")
}

/// The characters of a text, each with an id (ids follow the characters' code-point order,
/// so the same text always gives the same vocabulary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CharVocab {
    chars: Vec<char>,
    ids: BTreeMap<char, usize>,
}

impl CharVocab {
    /// Every distinct character of `text`.
    pub fn from_text(text: &str) -> Self {
        let set: std::collections::BTreeSet<char> = text.chars().collect();
        Self::from_chars(set.into_iter().collect())
    }

    fn from_chars(chars: Vec<char>) -> Self {
        let ids = chars.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        CharVocab { chars, ids }
    }

    /// Number of characters.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The characters, in id order.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The id of each character of `text`.
    ///
    /// # Errors
    /// [`DataError::UnknownChar`] for a character outside the vocabulary.
    pub fn encode(&self, text: &str) -> Result<Vec<usize>, DataError> {
        text.chars()
            .map(|ch| {
                self.ids
                    .get(&ch)
                    .copied()
                    .ok_or(DataError::UnknownChar { ch })
            })
            .collect()
    }

    /// The text of `ids`.
    ///
    /// # Errors
    /// [`DataError::UnknownToken`] for an id past the vocabulary.
    pub fn decode(&self, ids: &[usize]) -> Result<String, DataError> {
        ids.iter()
            .map(|&id| {
                self.chars.get(id).copied().ok_or(DataError::UnknownToken {
                    id,
                    len: self.chars.len(),
                })
            })
            .collect()
    }
}

/// How a corpus becomes training and validation windows.
#[derive(Clone, Debug, PartialEq)]
pub struct TextSplit {
    /// Characters of context per example (the target is the same span shifted by one).
    pub context: usize,
    /// Characters between the starts of consecutive windows (`context` for windows that
    /// do not overlap, 1 for every position).
    pub stride: usize,
    /// Length of the contiguous blocks the corpus is cut into before the split; every
    /// window lies inside one block, so no window straddles train and validation text.
    pub block: usize,
    /// Fraction of the blocks held out for validation (rounded to whole blocks, at least
    /// one when the fraction is positive).
    pub valid_fraction: f64,
    /// Seed of the choice of validation blocks.
    pub seed: u64,
}

impl TextSplit {
    /// Non-overlapping windows of `context` characters, 10 % of 4096-character blocks held
    /// out, seed 0.
    pub fn new(context: usize) -> Self {
        TextSplit {
            context,
            stride: context,
            block: 4096,
            valid_fraction: 0.1,
            seed: 0,
        }
    }
}

/// A text encoded with its character vocabulary.
#[derive(Clone, Debug)]
pub struct CharCorpus {
    vocab: CharVocab,
    tokens: Arc<[u32]>,
}

impl CharCorpus {
    /// Encodes `text` with the vocabulary of its own characters.
    pub fn from_text(text: &str) -> Self {
        let vocab = CharVocab::from_text(text);
        // Ids are below the number of distinct chars, at most 0x110000: they fit in u32.
        let tokens = text.chars().map(|ch| vocab.ids[&ch] as u32).collect();
        CharCorpus { vocab, tokens }
    }

    /// Reads a UTF-8 text file.
    ///
    /// # Errors
    /// [`DataError::Io`] when it cannot be read or is not UTF-8.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::from_text(&text))
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &CharVocab {
        &self.vocab
    }

    /// Number of characters.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The token ids of the whole text.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Cuts the corpus into blocks, holds out a seeded choice of them, and returns the
    /// windows of the training blocks and of the validation blocks.
    ///
    /// ```
    /// use gradlab::data::{CharCorpus, Dataset, TextSplit};
    /// let corpus = CharCorpus::from_text(&"In the beginning God created the heaven and the earth.\n".repeat(20));
    /// let split = TextSplit { block: 100, valid_fraction: 0.2, ..TextSplit::new(16) };
    /// let (train, valid) = corpus.split(&split)?;
    /// let (x, y) = train.get(0)?;                         // 16 ids and the 16 that follow
    /// assert_eq!(corpus.vocab().decode(&x[1..])?, corpus.vocab().decode(&y[..15])?);
    /// assert_eq!(valid.blocks().len(), 2);                // 2 of the 11 blocks
    /// # Ok::<(), gradlab::data::DataError>(())
    /// ```
    ///
    /// # Errors
    /// [`DataError::InvalidOption`] for a zero context, stride or block, a block too short
    /// for one window (`block < context + 1`), or a fraction outside `[0, 1)`.
    pub fn split(&self, s: &TextSplit) -> Result<(TextWindows, TextWindows), DataError> {
        let invalid = |name, value: String, reason| DataError::InvalidOption {
            name,
            value,
            reason,
        };
        if s.context == 0 || s.stride == 0 {
            let (name, v) = if s.context == 0 {
                ("context", s.context)
            } else {
                ("stride", s.stride)
            };
            return Err(invalid(name, v.to_string(), "must be at least 1"));
        }
        if s.block <= s.context {
            return Err(invalid(
                "block",
                s.block.to_string(),
                "a block must hold one window and its target (context + 1 characters)",
            ));
        }
        if !(0.0..1.0).contains(&s.valid_fraction) {
            return Err(invalid(
                "valid_fraction",
                s.valid_fraction.to_string(),
                "must be in [0, 1)",
            ));
        }
        let n = self.tokens.len();
        // The last block may be shorter; it is kept if it holds a window.
        let mut blocks: Vec<Range<usize>> = (0..n)
            .step_by(s.block)
            .map(|a| a..(a + s.block).min(n))
            .filter(|r| r.len() > s.context)
            .collect();
        let n_valid = if s.valid_fraction > 0.0 && !blocks.is_empty() {
            ((blocks.len() as f64 * s.valid_fraction).round() as usize).clamp(1, blocks.len())
        } else {
            0
        };
        let mut ids: Vec<usize> = (0..blocks.len()).collect();
        BatchRng::new(derive(s.seed, 0, 0)).shuffle(&mut ids);
        let mut is_valid = vec![false; blocks.len()];
        for &i in &ids[..n_valid] {
            is_valid[i] = true;
        }
        // Both sides keep text order, so windows read forward through the corpus.
        let (mut train, mut valid) = (Vec::new(), Vec::new());
        for (r, v) in blocks.drain(..).zip(is_valid) {
            if v {
                valid.push(r);
            } else {
                train.push(r);
            }
        }
        let windows = |blocks: Vec<Range<usize>>| TextWindows::new(self.tokens.clone(), blocks, s);
        Ok((windows(train), windows(valid)))
    }
}

/// Fixed-length windows inside a list of blocks of a corpus: item `i` is `context` token
/// ids and the `context` ids that follow each of them (the next-character targets).
#[derive(Clone, Debug)]
pub struct TextWindows {
    tokens: Arc<[u32]>,
    blocks: Vec<Range<usize>>,
    context: usize,
    /// Start of every window, in text order.
    starts: Vec<usize>,
}

impl TextWindows {
    fn new(tokens: Arc<[u32]>, blocks: Vec<Range<usize>>, s: &TextSplit) -> Self {
        let starts = blocks
            .iter()
            .flat_map(|r| (r.start..r.end - s.context).step_by(s.stride))
            .collect();
        TextWindows {
            tokens,
            blocks,
            context: s.context,
            starts,
        }
    }

    /// The character ranges of the corpus these windows come from.
    pub fn blocks(&self) -> &[Range<usize>] {
        &self.blocks
    }

    /// Characters per window.
    pub fn context(&self) -> usize {
        self.context
    }

    /// Collates windows into a [`TokenBatch`]: the collate function of a
    /// [`DataLoader`](super::DataLoader) over windows.
    ///
    /// # Errors
    /// [`DataError::InvalidOption`] when the windows differ in length (items from another
    /// source).
    pub fn collate(
        items: Vec<(Vec<usize>, Vec<usize>)>,
        _rng: &mut BatchRng,
    ) -> Result<TokenBatch, DataError> {
        let len = items.first().map_or(0, |(x, _)| x.len());
        let mut batch = TokenBatch {
            inputs: Vec::with_capacity(items.len() * len),
            targets: Vec::with_capacity(items.len() * len),
            batch: items.len(),
            len,
        };
        for (x, y) in items {
            if x.len() != len || y.len() != len {
                return Err(DataError::InvalidOption {
                    name: "window length",
                    value: x.len().to_string(),
                    reason: "every window of a batch must have the same length",
                });
            }
            batch.inputs.extend(x);
            batch.targets.extend(y);
        }
        Ok(batch)
    }
}

impl Dataset for TextWindows {
    /// `context` input ids and `context` target ids (the inputs shifted by one).
    type Item = (Vec<usize>, Vec<usize>);

    fn len(&self) -> usize {
        self.starts.len()
    }

    fn get(&self, index: usize) -> Result<Self::Item, DataError> {
        let &s = self.starts.get(index).ok_or(DataError::Index {
            index,
            len: self.starts.len(),
        })?;
        let ids = |r: Range<usize>| self.tokens[r].iter().map(|&t| t as usize).collect();
        Ok((ids(s..s + self.context), ids(s + 1..s + self.context + 1)))
    }
}

/// A batch of token windows, row-major `[batch, len]`: ready for an embedding lookup
/// (`inputs`) and a cross-entropy over `targets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBatch {
    /// `batch × len` input ids.
    pub inputs: Vec<usize>,
    /// `batch × len` next-token ids.
    pub targets: Vec<usize>,
    /// Windows in the batch.
    pub batch: usize,
    /// Tokens per window.
    pub len: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_corpus_has_the_documented_size_and_alphabet() {
        let c = CharCorpus::load(kjv_path()).unwrap();
        // data/README.md: 4,137,850 bytes of ASCII, 31,102 lines, 63 distinct characters
        assert_eq!(c.len(), 4_137_850);
        assert_eq!(c.vocab().len(), 63);
        let nl = c.vocab().encode("\n").unwrap()[0] as u32;
        assert_eq!(c.tokens().iter().filter(|&&t| t == nl).count(), 31_102);
        let start = c.vocab().decode(
            &c.tokens()[..31]
                .iter()
                .map(|&t| t as usize)
                .collect::<Vec<_>>(),
        );
        assert_eq!(start.unwrap(), "In the beginning God created th");
    }

    #[test]
    fn encode_and_decode_are_inverse_and_reject_unknowns() {
        let v = CharVocab::from_text("hello world");
        assert_eq!(v.chars(), &[' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
        let ids = v.encode("world hello").unwrap();
        assert_eq!(v.decode(&ids).unwrap(), "world hello");
        assert!(matches!(
            v.encode("help"),
            Err(DataError::UnknownChar { ch: 'p' })
        ));
        assert!(matches!(
            v.decode(&[8]),
            Err(DataError::UnknownToken { id: 8, len: 8 })
        ));
    }

    #[test]
    fn the_split_is_seeded_disjoint_and_windows_stay_in_their_blocks() {
        let text: String = (0..5000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let c = CharCorpus::from_text(&text);
        let s = TextSplit {
            block: 100,
            valid_fraction: 0.2,
            seed: 3,
            ..TextSplit::new(10)
        };
        let (train, valid) = c.split(&s).unwrap();
        let (train2, valid2) = c.split(&s).unwrap();
        assert_eq!(
            (train.blocks(), valid.blocks()),
            (train2.blocks(), valid2.blocks())
        );
        let (_, other) = c
            .split(&TextSplit {
                seed: 4,
                ..s.clone()
            })
            .unwrap();
        assert_ne!(valid.blocks(), other.blocks());
        // 50 blocks, 10 held out, none shared, all covered
        assert_eq!((train.blocks().len(), valid.blocks().len()), (40, 10));
        let mut all: Vec<_> = train
            .blocks()
            .iter()
            .chain(valid.blocks())
            .map(|r| r.start)
            .collect();
        all.sort();
        assert_eq!(all, (0..5000).step_by(100).collect::<Vec<_>>());
        // 100-character blocks give windows at 0, 10, …, 80 (90 + 10 + 1 > 100)
        assert_eq!(train.len(), 40 * 9);
        for i in 0..train.len() {
            let (x, y) = train.get(i).unwrap();
            assert_eq!((x.len(), y.len()), (10, 10));
            assert_eq!(&x[1..], &y[..9]);
        }
        assert!(matches!(
            train.get(360),
            Err(DataError::Index {
                index: 360,
                len: 360
            })
        ));
    }

    #[test]
    fn bad_split_options_are_typed_errors() {
        let c = CharCorpus::from_text("abcdefgh");
        for (s, name) in [
            (
                TextSplit {
                    context: 0,
                    ..TextSplit::new(4)
                },
                "context",
            ),
            (
                TextSplit {
                    stride: 0,
                    ..TextSplit::new(4)
                },
                "stride",
            ),
            (
                TextSplit {
                    block: 4,
                    ..TextSplit::new(4)
                },
                "block",
            ),
            (
                TextSplit {
                    valid_fraction: 1.0,
                    ..TextSplit::new(4)
                },
                "valid_fraction",
            ),
        ] {
            let e = c.split(&s).unwrap_err();
            assert!(
                matches!(e, DataError::InvalidOption { name: n, .. } if n == name),
                "{e}"
            );
        }
    }
}
