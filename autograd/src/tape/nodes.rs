//! Where the tape keeps its nodes: each recorded value with how it was made.

use smallbox::{space::S4, SmallBox};
use smallvec::SmallVec;

use crate::error::Loc;
use crate::op::Op;
use crate::param::Param;
use crate::tensor::{Float, Tensor};

/// A recorded op, stored inline when it fits in four words (every scalar-parameter op
/// does), so recording allocates nothing beyond the output tensor.
pub(super) type OpBox<T> = SmallBox<dyn Op<T>, S4>;

pub(super) enum Kind<T: Float> {
    /// No gradient: data, detached values, results of ops on constants or under no_grad.
    Constant,
    /// An input that gradients are taken with respect to (`tape.var`).
    Leaf,
    /// A bound [`Param`]: backward accumulates into it.
    Param(Param<T>),
    /// A recorded op. The box is taken out while its backward rule runs.
    Op {
        op: Option<OpBox<T>>,
        parents: SmallVec<[usize; 2]>,
    },
}

pub(super) struct Node<T: Float> {
    pub(super) value: Tensor<T>,
    pub(super) kind: Kind<T>,
    pub(super) location: Loc,
}

impl<T: Float> Node<T> {
    pub(super) fn requires_grad(&self) -> bool {
        !matches!(self.kind, Kind::Constant)
    }

    pub(super) fn op_name(&self) -> &'static str {
        match &self.kind {
            Kind::Constant => "constant",
            Kind::Leaf => "var",
            Kind::Param(_) => "param",
            Kind::Op { op, .. } => op.as_ref().map_or("<running>", |o| o.name()),
        }
    }
}

/// The node list, in chunks of fixed capacity: pushing never moves recorded nodes, where
/// a growing `Vec` re-copied the whole tape at every doubling.
pub(super) struct NodeList<T: Float> {
    chunks: Vec<Vec<Node<T>>>,
    len: usize,
}

const CHUNK_BITS: usize = 10;
const CHUNK: usize = 1 << CHUNK_BITS;

impl<T: Float> Default for NodeList<T> {
    fn default() -> Self {
        NodeList {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Float> NodeList<T> {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn push(&mut self, node: Node<T>) {
        let c = self.len >> CHUNK_BITS;
        if c == self.chunks.len() {
            // Start small: most tapes in tests and examples hold a few dozen nodes.
            let cap = if c == 0 { 64 } else { CHUNK };
            self.chunks.push(Vec::with_capacity(cap));
        }
        self.chunks[c].push(node);
        self.len += 1;
    }

    /// Drops nodes from `n` on, keeping the chunks' memory for reuse.
    pub(super) fn truncate(&mut self, n: usize) {
        if n >= self.len {
            return;
        }
        let first = n >> CHUNK_BITS;
        self.chunks[first].truncate(n & (CHUNK - 1));
        for c in &mut self.chunks[first + 1..] {
            c.clear();
        }
        self.len = n;
    }

    pub(super) fn clear(&mut self) {
        self.truncate(0);
    }
}

impl<T: Float> std::ops::Index<usize> for NodeList<T> {
    type Output = Node<T>;
    #[inline]
    fn index(&self, i: usize) -> &Node<T> {
        &self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

impl<T: Float> std::ops::IndexMut<usize> for NodeList<T> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut Node<T> {
        &mut self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}
