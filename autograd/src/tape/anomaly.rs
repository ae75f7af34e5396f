//! Anomaly mode: the first op whose forward value or backward gradient is not finite
//! becomes an error naming that op and the line that recorded it.

use crate::error::{Error, Loc, Phase, Result};
use crate::tensor::{Float, Tensor};

use super::{Inner, Tape};

impl<T: Float> Inner<T> {
    /// In anomaly mode, records the first op whose forward value is not finite. Scratch
    /// ops inside a backward rule are not checked: a non-finite gradient is the rule's
    /// fault, reported against the rule's op once it returns (see `check_gradient`).
    pub(super) fn check_forward(&mut self, op: &'static str, value: &Tensor<T>, location: Loc) {
        if self.anomaly && self.anomaly_err.is_none() && self.in_rule == 0 {
            if let Some(index) = value.first_non_finite() {
                self.anomaly_err = Some(Error::Anomaly {
                    op,
                    phase: Phase::Forward,
                    index,
                    shape: value.shape().clone(),
                    location,
                });
            }
        }
    }

    /// Checks a gradient a backward rule of `op` produced for node `p`: its shape must be
    /// the node's ([`Error::BadBackward`] otherwise), and in anomaly mode the first
    /// non-finite gradient is recorded against `op`.
    pub(super) fn check_gradient(
        &mut self,
        op: &'static str,
        location: Loc,
        p: usize,
        g: &Tensor<T>,
    ) -> Result<()> {
        let ps = self.nodes[p].value.shape();
        if g.shape() != ps {
            return Err(Error::BadBackward {
                op,
                reason: format!(
                    "a gradient of shape {} for an input of shape {ps}",
                    g.shape()
                ),
                location,
            });
        }
        if self.anomaly && self.anomaly_err.is_none() {
            if let Some(index) = g.first_non_finite() {
                self.anomaly_err = Some(Error::Anomaly {
                    op,
                    phase: Phase::Backward,
                    index,
                    shape: g.shape().clone(),
                    location,
                });
            }
        }
        Ok(())
    }
}

impl<T: Float> Tape<T> {
    /// Turns anomaly mode on or off. When on, the first op whose forward value or backward
    /// gradient holds a NaN or infinity is reported as [`Error::Anomaly`], naming the op and
    /// the line that recorded it: by [`Tape::apply`] when it is that op, and otherwise by the
    /// next [`Var::backward`](crate::Var::backward), [`Tape::grad`], [`Tape::vjp`] or [`Tape::check_anomaly`].
    /// (Built-in ops return their `Var` as usual, so expressions need no extra `?`.) A
    /// non-finite gradient is blamed on the op whose backward rule produced it, not on the
    /// scratch ops inside that rule.
    pub fn set_anomaly_mode(&self, on: bool) {
        self.inner.borrow_mut().anomaly = on;
    }

    /// The anomaly seen so far, if any (it stays reported until [`Tape::reset`]).
    ///
    /// # Errors
    /// The first [`Error::Anomaly`] recorded in anomaly mode.
    pub fn check_anomaly(&self) -> Result<()> {
        match &self.inner.borrow().anomaly_err {
            Some(Error::Anomaly {
                op,
                phase,
                index,
                shape,
                location,
            }) => Err(Error::Anomaly {
                op,
                phase: *phase,
                index: *index,
                shape: shape.clone(),
                location,
            }),
            _ => Ok(()),
        }
    }
}
