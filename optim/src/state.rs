//! Saving and restoring optimiser (and schedule) state, so that training resumes
//! bit-identically.
//!
//! # Format
//!
//! A [safetensors](https://huggingface.co/docs/safetensors) file, written and read by the
//! one codec of the workspace ([`autograd::io`]), crash-safely. Parameters are keyed by
//! their **position in the optimiser's parameter list** (groups in order, parameters in
//! order within a group; [`Optim::params`]), because `ParamId`s are only unique within one
//! process. Rebuild the optimiser over the same parameters in the same order before loading.
//!
//! Tensors:
//!
//! | name | dtype | what |
//! | --- | --- | --- |
//! | `"{i}.{state}"` | the optimiser's (`F32`/`F64`) | a state tensor of parameter `i` (`"0.exp_avg"`, `"3.momentum_buffer"`) |
//! | `"{i}.{scalar}"` | `F64`, 0-d | a scalar state value (`"0.mu_product"`) |
//! | `"optimizer.{state}"` | the optimiser's, or `F64` 0-d for scalars | the state of a closure rule ([`ClosureOptim`]: `"optimizer.d"`, `"optimizer.n_iter"`) |
//!
//! Metadata (all strings; floats in Rust's shortest round-trip form):
//!
//! | key | value |
//! | --- | --- |
//! | `format` | `gradlab.optim/v1` |
//! | `optimizer` | the rule's `NAME` (`"adam"`) |
//! | `dtype` | `F32` or `F64` |
//! | `step_count` | times [`Optimizer::step`](crate::Optimizer::step) ran |
//! | `groups` | number of parameter groups |
//! | `group.{g}.params` | parameters in group `g` |
//! | `group.{g}.lr` | group `g`'s learning rate (restored on load, as PyTorch does) |
//! | `group.{g}.weight_decay`, `.momentum`, `.initial_lr` | group `g`'s own settings, absent when it has none |
//! | `{i}.step` | updates parameter `i` has had; absent when it has no state yet |
//! | `optimizer.state` | `present` once a closure rule has state |
//! | `scheduler.{key}` | the schedule's state ([`Optimizer::save_with_scheduler`](crate::Optimizer::save_with_scheduler)) |
//!
//! Hyper-parameters of the rule itself are not stored: they are part of the code that
//! builds the optimiser. Loading checks every value as a constructor would (a negative
//! weight decay, a NaN moment or a step count past 2⁵³ is [`Error::InvalidState`]) and
//! changes nothing unless all of it fits.

use std::collections::{BTreeMap, HashMap, HashSet};

use autograd::io::StoredTensor;
use autograd::{DType, Float, ParamId, Tensor};

use crate::closure::{self, ClosureOptim, ClosureRule};
use crate::common::{check_state_scalar, MAX_STEP};
use crate::driver::{self, Entry, Optim};
use crate::error::{Error, Result};
use crate::optimizer::{check_settings, Groups, Meta, ParamGroup};
use crate::rule::{RuleState, UpdateRule};
use crate::schedule::{LrScheduler, SchedulerState};

/// An optimiser's state in memory: exactly what the safetensors file holds (see the
/// [module docs](self) for the names). It is the workspace's one tensor-file type,
/// [`autograd::io::TensorFile`], with `to_bytes`/`from_bytes`/`save`/`load`.
pub type StateDict = autograd::io::TensorFile;

/// A tensor in a [`StateDict`], in its stored element type.
pub type StateTensor = StoredTensor;

/// The `format` metadata value this version writes and reads.
pub const FORMAT: &str = "gradlab.optim/v1";

const SCHEDULER_PREFIX: &str = "scheduler.";
const CLOSURE_PREFIX: &str = "optimizer";

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "F32",
        DType::F64 => "F64",
    }
}

/// The metadata every optimiser writes: format, name, dtype, step count and groups.
fn export_groups<T: Float>(name: &str, core: &Groups<T>) -> StateDict {
    let mut sd = StateDict::default();
    let m = &mut sd.metadata;
    m.insert("format".into(), FORMAT.into());
    m.insert("optimizer".into(), name.into());
    m.insert("dtype".into(), dtype_name(T::DTYPE).into());
    m.insert("step_count".into(), core.step_count.to_string());
    m.insert("groups".into(), core.groups.len().to_string());
    for (g, group) in core.groups.iter().enumerate() {
        m.insert(format!("group.{g}.params"), group.params.len().to_string());
        // `{:?}` prints the shortest string that parses back to the same f64.
        m.insert(format!("group.{g}.lr"), format!("{:?}", group.lr));
        let optional = [
            ("weight_decay", group.weight_decay),
            ("momentum", group.momentum),
            ("initial_lr", group.initial_lr),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                m.insert(format!("group.{g}.{key}"), format!("{v:?}"));
            }
        }
    }
    sd
}

/// Adds a rule state's tensors and scalars under `prefix`.
fn export_rule_state<T: Float, S: RuleState<T>>(sd: &mut StateDict, prefix: &str, state: &S) {
    for (name, t) in state.tensors() {
        sd.tensors
            .insert(format!("{prefix}.{name}"), StoredTensor::from_float(t));
    }
    for (name, x) in state.scalars() {
        sd.tensors.insert(
            format!("{prefix}.{name}"),
            StoredTensor::F64(Tensor::scalar(x)),
        );
    }
}

/// Builds the [`StateDict`] of `opt`.
pub(crate) fn export<R: UpdateRule<T>, T: Float>(opt: &Optim<R, T>) -> StateDict {
    let mut sd = export_groups(R::NAME, &opt.core);
    for (i, p) in opt.params().enumerate() {
        let Some(entry) = opt.state.get(&p.id()) else {
            continue;
        };
        sd.metadata
            .insert(format!("{i}.step"), entry.step.to_string());
        export_rule_state(&mut sd, &i.to_string(), &entry.state);
    }
    sd
}

/// Builds the [`StateDict`] of a closure-rule optimiser.
pub(crate) fn export_closure<R: ClosureRule<T>, T: Float>(opt: &ClosureOptim<R, T>) -> StateDict {
    let mut sd = export_groups(R::NAME, &opt.core);
    if let Some(state) = &opt.state {
        sd.metadata
            .insert(format!("{CLOSURE_PREFIX}.state"), "present".into());
        export_rule_state(&mut sd, CLOSURE_PREFIX, state);
    }
    sd
}

/// One group's settings as loaded.
pub(crate) struct LoadedGroup {
    pub(crate) lr: f64,
    pub(crate) weight_decay: Option<f64>,
    pub(crate) momentum: Option<f64>,
    pub(crate) initial_lr: Option<f64>,
}

fn optional_f64(sd: &StateDict, key: &str) -> Result<Option<f64>> {
    match sd.metadata.contains_key(key) {
        true => Ok(Some(sd.meta_parse::<f64>(key)?)),
        false => Ok(None),
    }
}

/// Checks the format, name, layout, dtype, step count and group settings of `sd` against
/// an optimiser with `core` and `meta`.
fn import_groups<T: Float>(
    sd: &StateDict,
    core: &Groups<T>,
    meta: &Meta,
) -> Result<(u64, Vec<LoadedGroup>)> {
    let format = sd.meta("format")?;
    if format != FORMAT {
        return Err(autograd::io::Error::Metadata {
            key: "format".into(),
            problem: format!("is {format:?}, expected {FORMAT:?}"),
        }
        .into());
    }
    let name = sd.meta("optimizer")?;
    if name != meta.name {
        return Err(Error::StateKind {
            expected: meta.name,
            found: name.to_owned(),
        });
    }
    let groups: usize = sd.meta_parse("groups")?;
    layout("groups".into(), core.groups.len(), groups)?;
    let mut loaded = Vec::with_capacity(groups);
    for (g, group) in core.groups.iter().enumerate() {
        let n: usize = sd.meta_parse(&format!("group.{g}.params"))?;
        layout(format!("group {g} size"), group.params.len(), n)?;
        let key = |k: &str| format!("group.{g}.{k}");
        let l = LoadedGroup {
            lr: sd.meta_parse(&key("lr"))?,
            weight_decay: optional_f64(sd, &key("weight_decay"))?,
            momentum: optional_f64(sd, &key("momentum"))?,
            initial_lr: optional_f64(sd, &key("initial_lr"))?,
        };
        // The same checks a constructed group passes, one setting at a time so the error
        // names the file's key.
        let settings = [
            ("lr", Some(l.lr)),
            ("weight_decay", l.weight_decay),
            ("momentum", l.momentum),
            ("initial_lr", l.initial_lr),
        ];
        for (name, value) in settings {
            let Some(value) = value else { continue };
            let mut one = ParamGroup::<T>::new(Vec::new(), 0.0);
            match name {
                "lr" => one.lr = value,
                "weight_decay" => one.weight_decay = Some(value),
                "momentum" => one.momentum = Some(value),
                _ => one.initial_lr = Some(value),
            }
            check_settings(&one, meta).map_err(|e| match e {
                Error::InvalidHyperparameter { value, reason, .. } => Error::InvalidState {
                    key: key(name),
                    value,
                    reason,
                },
                other => other,
            })?;
        }
        loaded.push(l);
    }
    let dtype = sd.meta("dtype")?;
    if dtype != dtype_name(T::DTYPE) {
        return Err(autograd::io::Error::Metadata {
            key: "dtype".into(),
            problem: format!("is {dtype:?}, this optimizer is {}", dtype_name(T::DTYPE)),
        }
        .into());
    }
    let step_count: u64 = sd.meta_parse("step_count")?;
    check_state_scalar(
        "step_count",
        step_count as f64,
        |_| step_count <= MAX_STEP,
        "must be at most 2^53",
    )?;
    Ok((step_count, loaded))
}

/// Fills `state` (fresh from `init`) from the tensors named `"{prefix}.{name}"`, recording
/// each name used.
fn fill_rule_state<T: Float, S: RuleState<T>>(
    sd: &StateDict,
    prefix: &str,
    state: &mut S,
    used: &mut HashSet<String>,
) -> Result<()> {
    let mut accepted = Vec::new();
    for (name, slot) in state.tensors() {
        let key = format!("{prefix}.{name}");
        let t = sd.get(&key)?;
        accepted.push((key, t, slot.dims().to_vec(), name));
    }
    // Shapes are checked against the fresh state before anything is replaced.
    for (key, t, fresh, name) in &accepted {
        if !state.accepts_shape(name, fresh, t.dims()) {
            t.expect_dims(key, fresh)?;
        }
    }
    let loaded: Vec<Tensor<T>> = accepted
        .iter()
        .map(|(key, t, ..)| t.to_float::<T>(key))
        .collect::<Result<_, _>>()?;
    for ((_, slot), value) in state.tensors_mut().into_iter().zip(loaded) {
        *slot = value;
    }
    for (key, ..) in accepted {
        used.insert(key);
    }
    for (name, slot) in state.scalars_mut() {
        let key = format!("{prefix}.{name}");
        let t = sd.get(&key)?;
        t.expect_dims(&key, &[])?;
        *slot = t.to_float::<f64>(&key)?.item()?;
        used.insert(key);
    }
    Ok(())
}

/// What loading produces: the new state map, the step count, and the groups' settings.
pub(crate) type Imported<S> = (HashMap<ParamId, Entry<S>>, u64, Vec<LoadedGroup>);

/// Checks `sd` against `opt` and builds the state to install, without touching `opt`.
pub(crate) fn import<R: UpdateRule<T>, T: Float>(
    opt: &Optim<R, T>,
    sd: &StateDict,
) -> Result<Imported<R::State>> {
    let (step_count, groups) = import_groups(sd, &opt.core, &driver::meta_of(&opt.rule))?;
    let mut used = HashSet::new();
    let mut entries = HashMap::new();
    for (i, p) in opt.params().enumerate() {
        let key = format!("{i}.step");
        if !sd.metadata.contains_key(&key) {
            continue;
        }
        let step: u64 = sd.meta_parse(&key)?;
        check_state_scalar(
            &key,
            step as f64,
            |_| (1..=step_count).contains(&step),
            "must be between 1 and the optimizer's step_count",
        )?;
        let prefix = i.to_string();
        let mut state = opt.rule.init(&p.value());
        fill_rule_state(sd, &prefix, &mut state, &mut used)?;
        opt.rule
            .validate_state(&state)
            .map_err(|e| e.in_state(&prefix))?;
        entries.insert(p.id(), Entry { step, state });
    }
    check_no_extra(sd, &used)?;
    Ok((entries, step_count, groups))
}

/// As [`import`], for a closure-rule optimiser.
pub(crate) fn import_closure<R: ClosureRule<T>, T: Float>(
    opt: &ClosureOptim<R, T>,
    sd: &StateDict,
) -> Result<(Option<R::State>, u64, Vec<LoadedGroup>)> {
    let (step_count, groups) = import_groups(sd, &opt.core, &closure::meta_of(&opt.rule))?;
    let mut used = HashSet::new();
    let state = match sd.metadata.contains_key(&format!("{CLOSURE_PREFIX}.state")) {
        false => None,
        true => {
            let mut state = opt.rule.init(opt.numel())?;
            fill_rule_state(sd, CLOSURE_PREFIX, &mut state, &mut used)?;
            opt.rule
                .validate_state(&state)
                .map_err(|e| e.in_state(CLOSURE_PREFIX))?;
            Some(state)
        }
    };
    check_no_extra(sd, &used)?;
    Ok((state, step_count, groups))
}

fn check_no_extra(sd: &StateDict, used: &HashSet<String>) -> Result<()> {
    Ok(sd.check_no_extra(|k| used.contains(k))?)
}

fn layout(what: String, expected: usize, found: usize) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::StateLayout {
            what,
            expected,
            found,
        })
    }
}

/// Adds a schedule's state to `sd` (metadata `scheduler.*`), replacing any there: what
/// [`Optimizer::save_with_scheduler`](crate::Optimizer::save_with_scheduler) writes, for
/// callers that keep the state dict in a file of their own (a whole-run checkpoint).
pub fn insert_scheduler(sd: &mut StateDict, scheduler: &dyn LrScheduler) {
    sd.metadata.retain(|k, _| !k.starts_with(SCHEDULER_PREFIX));
    for (k, v) in scheduler.state().into_entries() {
        sd.metadata.insert(format!("{SCHEDULER_PREFIX}{k}"), v);
    }
}

/// The schedule state stored in `sd` by [`insert_scheduler`], for
/// [`LrScheduler::load_state`].
///
/// # Errors
/// [`Error::StateFile`] (metadata) when `sd` has none.
pub fn scheduler_state(sd: &StateDict) -> Result<SchedulerState> {
    let entries: BTreeMap<String, String> = sd
        .metadata
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(SCHEDULER_PREFIX)
                .map(|k| (k.to_owned(), v.clone()))
        })
        .collect();
    if entries.is_empty() {
        return Err(autograd::io::Error::Metadata {
            key: format!("{SCHEDULER_PREFIX}*"),
            problem: "is missing: the file holds no schedule state".into(),
        }
        .into());
    }
    Ok(SchedulerState::from_entries(entries))
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
