//! Gradient buckets: parameters grouped into flat buffers of bounded size, each reduced with
//! one collective call.

/// Where one parameter's gradient lives in a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    /// Index into the model's parameter list.
    pub param: usize,
    /// Offset of the first element in the bucket.
    pub offset: usize,
    /// Number of elements.
    pub numel: usize,
}

/// Parameters reduced together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bucket {
    pub slots: Vec<Slot>,
    /// Elements of gradients (the last bucket carries the step's status after them).
    pub len: usize,
}

/// Groups parameters of `numels` elements into buckets of at most `cap` elements (a
/// parameter larger than `cap` gets a bucket of its own), in reverse parameter order as
/// PyTorch's DDP does: backward produces the last layers' gradients first, so those are the
/// first to be ready. Never returns an empty list: a model without parameters still has one
/// (empty) bucket, which carries the step's status.
pub(crate) fn plan(numels: &[usize], cap: usize) -> Vec<Bucket> {
    let mut buckets = vec![Bucket::default()];
    for (param, &numel) in numels.iter().enumerate().rev() {
        let last = buckets
            .last_mut()
            .expect("internal: buckets start non-empty");
        if last.len > 0 && last.len + numel > cap {
            buckets.push(Bucket::default());
        }
        let last = buckets
            .last_mut()
            .expect("internal: buckets start non-empty");
        last.slots.push(Slot {
            param,
            offset: last.len,
            numel,
        });
        last.len += numel;
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_respect_the_cap_and_cover_every_parameter_once_in_reverse_order() {
        let numels = [100, 3, 40, 40, 7, 200, 1];
        let buckets = plan(&numels, 64);
        // reverse order: 1, 200 (own bucket: larger than the cap), 7+40, 40+3, 100
        let params: Vec<Vec<usize>> = buckets
            .iter()
            .map(|b| b.slots.iter().map(|s| s.param).collect())
            .collect();
        assert_eq!(params, [vec![6], vec![5], vec![4, 3], vec![2, 1], vec![0]]);
        for b in &buckets {
            assert!(b.len <= 64 || b.slots.len() == 1);
            let mut offset = 0;
            for s in &b.slots {
                assert_eq!(s.offset, offset);
                assert_eq!(s.numel, numels[s.param]);
                offset += s.numel;
            }
            assert_eq!(b.len, offset);
        }
    }

    #[test]
    fn a_model_without_parameters_still_has_one_bucket() {
        assert_eq!(plan(&[], 10), vec![Bucket::default()]);
        assert_eq!(plan(&[5, 5], usize::MAX).len(), 1);
    }
}
