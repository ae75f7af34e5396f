//! One rank of a scenario, chosen by `GRADLAB_DIST_SCENARIO`.

use std::process::ExitCode;
use std::time::Duration;

use distributed::{launch, main_println, BoxError, Ddp, DdpOptions, LossReduction, World};
use nn::{Linear, Module};
use optim::{Optim, Sgd};
use rand::SeedableRng;

/// The environment variable naming the scenario.
pub const SCENARIO_ENV: &str = "GRADLAB_DIST_SCENARIO";

pub fn run() -> ExitCode {
    let scenario = std::env::var(SCENARIO_ENV).unwrap_or_else(|_| "train".into());
    launch(|world| -> Result<(), BoxError> {
        match scenario.as_str() {
            "train" => train(world),
            "mismatch" => mismatch(world),
            "panic-outside" => outside(world, true),
            "error-outside" => outside(world, false),
            "hang" => hang(world),
            "early-exit" => early_exit(world),
            "step-error" => step_error(world),
            other => Err(format!("unknown scenario {other:?}").into()),
        }
    })
}

fn train(world: &World) -> Result<(), BoxError> {
    main_println!(world, "{} ranks", world.size());
    let (passed, failed) = super::checks::all(world);
    main_println!(world, "{passed} passed, {failed} failed");
    if failed > 0 {
        return Err(format!("{failed} checks failed").into());
    }
    Ok(())
}

/// The wrapped one-layer model of the failure scenarios.
type Tiny<'w> = Ddp<'w, f64, Linear<f64>, Optim<Sgd, f64>>;

/// A one-layer model with `inputs` inputs.
fn tiny(world: &World, inputs: usize) -> Result<Tiny<'_>, BoxError> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let model = Linear::<f64>::new(inputs, 8, &mut rng)?;
    let opt = Optim::new(model.parameters(), 0.1, Sgd::default())?;
    Ok(Ddp::new(world, model, opt, DdpOptions::default())?)
}

/// One step of a squared-output loss on ones.
fn step(ddp: &mut Tiny<'_>, fail: bool) -> Result<(), BoxError> {
    ddp.step(LossReduction::mean(1), |m| -> Result<(), BoxError> {
        if fail {
            return Err("deliberate failure in the step".into());
        }
        let tape = autograd::Tape::new();
        let n = m.weight.shape().dims()[1];
        let x = tape.constant(autograd::Tensor::ones([1, n]).unwrap());
        let y = nn::Ctx::new(&tape).call(m, x)?;
        y.square().sum().backward()?;
        Ok(())
    })?;
    Ok(())
}

/// The last rank's model has 9 inputs instead of 8.
fn mismatch(world: &World) -> Result<(), BoxError> {
    let inputs = if world.rank() == world.size() - 1 {
        9
    } else {
        8
    };
    let mut ddp = tiny(world, inputs)?;
    step(&mut ddp, false)
}

/// The last rank fails before any collective; the others wait in a barrier.
fn outside(world: &World, panic: bool) -> Result<(), BoxError> {
    if world.rank() == world.size() - 1 {
        if panic {
            panic!("deliberate panic outside any collective");
        }
        return Err("deliberate error outside any collective".into());
    }
    world.barrier();
    Ok(())
}

/// The last rank never arrives at the first step.
fn hang(world: &World) -> Result<(), BoxError> {
    let mut ddp = tiny(world, 8)?;
    if world.rank() == world.size() - 1 {
        std::thread::sleep(Duration::from_secs(600));
    }
    step(&mut ddp, false)
}

/// The last rank stops after one step, the others take three.
fn early_exit(world: &World) -> Result<(), BoxError> {
    let mut ddp = tiny(world, 8)?;
    let steps = if world.rank() == world.size() - 1 {
        1
    } else {
        3
    };
    for _ in 0..steps {
        step(&mut ddp, false)?;
    }
    Ok(())
}

/// The last rank's step fails: every rank returns the step's error and exits cleanly.
fn step_error(world: &World) -> Result<(), BoxError> {
    let mut ddp = tiny(world, 8)?;
    step(&mut ddp, false)?;
    step(&mut ddp, world.rank() == world.size() - 1)
}
