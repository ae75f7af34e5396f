//! What a failed gradient check reports: [`GradcheckReport`] and the types it is made of.
//!
//! They live apart from [`gradcheck`](mod@crate::gradcheck), which produces them, so that the
//! crate's [`Error`](crate::Error) can carry a report without depending on the checker.

use std::fmt;

use crate::error::Loc;
use crate::tensor::Shape;

/// How a check compared the Jacobian with finite differences.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every entry of the Jacobian.
    Full,
    /// `projections` random projections `uᵀJv` per input (with ±1 entries, so a single
    /// wrong entry enters each projection at full size), then a full check of an input
    /// that fails one.
    Fast {
        /// Projections per input.
        projections: usize,
    },
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Full => f.write_str("full Jacobian"),
            Mode::Fast { projections } => {
                write!(f, "fast mode, {projections} random projections per input")
            }
        }
    }
}

/// Which of the two reverse sweeps computed the wrong gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sweep {
    /// [`Tape::grad`](crate::Tape::grad) / [`Tape::vjp`](crate::Tape::vjp): every op's
    /// differentiable rule, [`Op::backward`](crate::Op::backward).
    Grad,
    /// [`Var::backward`](crate::Var::backward), what training runs: an op's first-order
    /// fast path [`Op::backward_values`](crate::Op::backward_values) where it has one.
    Backward,
}

impl fmt::Display for Sweep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sweep::Grad => "Tape::grad (the ops' backward rules)",
            Sweep::Backward => {
                "Var::backward (the ops' backward_values fast paths, where they have one)"
            }
        })
    }
}

/// The part of an op found wrong by a local check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Its backward rule, [`Op::backward`](crate::Op::backward), to first order.
    Backward,
    /// Its first-order fast path, [`Op::backward_values`](crate::Op::backward_values).
    BackwardValues,
    /// The derivative of its backward rule with respect to the op's inputs (second
    /// order): the rule has the right value but is not the right function of the inputs,
    /// e.g. it treats as a constant something that depends on them.
    SecondOrder,
}

/// An op whose own rule disagrees with finite differences of its forward (or, for
/// [`Rule::SecondOrder`], of its rule).
#[derive(Clone, Debug)]
pub struct Blame {
    /// The op's name.
    pub op: &'static str,
    /// Where it was recorded.
    pub location: Loc,
    /// What of the op is wrong.
    pub rule: Rule,
    /// Which of its inputs.
    pub input: usize,
    /// The worst element of that input.
    pub index: Vec<usize>,
    /// Finite-difference value.
    pub numerical: f64,
    /// The rule's value.
    pub analytical: f64,
}

/// Where and by how much a gradient check failed.
#[derive(Clone, Debug)]
pub struct GradcheckReport {
    /// 1 for [`gradcheck`](crate::gradcheck()), 2 for
    /// [`gradgradcheck`](crate::gradgradcheck()).
    pub order: u8,
    /// How the Jacobian was compared.
    pub mode: Mode,
    /// The sweep whose gradient is wrong.
    pub sweep: Sweep,
    /// Index of the input whose gradient is wrong.
    pub input: usize,
    /// That input's shape.
    pub input_shape: Shape,
    /// Flat index into the output of the worst entry (`None` for a projection).
    pub output_index: Option<usize>,
    /// Multi-index into the input of the worst entry (empty for a projection).
    pub element: Vec<usize>,
    /// Finite-difference value.
    pub numerical: f64,
    /// Reverse-mode value.
    pub analytical: f64,
    /// Tolerances used.
    pub atol: f64,
    /// Relative tolerance used.
    pub rtol: f64,
    /// The last op of the function (what produced its output) and its line.
    pub output_op: Option<(&'static str, Loc)>,
    /// The first recorded op whose own rule fails a local check, if one does.
    pub blame: Option<Blame>,
    /// Whether this came from a fast-mode projection that a full re-check did not confirm
    /// element-wise.
    pub projection_only: bool,
}

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.order == 1 {
            "gradcheck"
        } else {
            "gradgradcheck"
        };
        let err = (self.numerical - self.analytical).abs();
        let allowed = self.atol + self.rtol * self.numerical.abs();
        writeln!(
            f,
            "{kind} ({}): the Jacobian of the output with respect to input {} (shape {}) is wrong",
            self.mode, self.input, self.input_shape
        )?;
        writeln!(f, "  computed by {}", self.sweep)?;
        if self.projection_only {
            writeln!(
                f,
                "  random projection uᵀJv (no single entry fails the full re-check):"
            )?;
        } else {
            write!(f, "  worst entry: input element {:?}", self.element)?;
            if let Some(o) = self.output_index {
                write!(f, ", output element {o}")?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "  numerical {:.10e}, analytical {:.10e}: |diff| {:.3e} > atol + rtol·|numerical| = {:.3e}",
            self.numerical, self.analytical, err, allowed
        )?;
        if let Some((op, loc)) = self.output_op {
            writeln!(f, "  output produced by `{op}` at {loc}")?;
        }
        match &self.blame {
            Some(b) => {
                let what = match b.rule {
                    Rule::Backward => "its backward rule gives",
                    Rule::BackwardValues => "its backward_values fast path gives",
                    Rule::SecondOrder => "the derivative of its backward rule gives",
                };
                let of = match b.rule {
                    Rule::SecondOrder => "finite differences of the rule",
                    _ => "finite differences",
                };
                write!(
                    f,
                    "  culprit: `{}` recorded at {} — {what} {:.10e} for input {} element {:?}, {of} {:.10e}",
                    b.op, b.location, b.analytical, b.input, b.index, b.numerical
                )
            }
            None => write!(
                f,
                "  no single op fails a local check (look at how the ops are combined)"
            ),
        }
    }
}
