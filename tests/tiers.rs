//! Programs loaded in two tiers: on an adapter that compiles kernels at their first
//! dispatch, a program whose products use a large register tile first runs a quick
//! tier, compiled with small tiles, and switches to its own kernels once they are
//! compiled. The two tiers give the same numbers, state moves from one to the other,
//! and a program whose kernels are already compiled loads in one tier.

#[path = "../examples/common/momentum.rs"]
mod momentum;

use std::collections::HashMap;
use wgrad::runtime::testing::{runtime_or_skip, runtime_with_options_or_skip};
use wgrad::{Builder, DType, Graph, Options, Runtime, RuntimeOptions, Tensor, Tier, Type};

const PARAMS: [&str; 4] = ["w1", "b1", "w2", "b2"];

/// One SGD-with-momentum step of a two-layer MLP on `x[256, 128]`: the first layer's
/// products are large enough for the preset's 16×16 tile (the 16-class layer's get
/// smaller tiles by shape).
fn training_step() -> Graph {
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[256, 128])).unwrap();
    let labels = b.input("labels", Type::new(DType::I32, &[256])).unwrap();
    let w1 = b.input("w1", Type::f32(&[128, 256])).unwrap();
    let b1 = b.input("b1", Type::f32(&[256])).unwrap();
    let w2 = b.input("w2", Type::f32(&[256, 16])).unwrap();
    let b2 = b.input("b2", Type::f32(&[16])).unwrap();
    let h = b.linear(x, w1, b1).unwrap();
    let h = b.relu(h).unwrap();
    let z = b.linear(h, w2, b2).unwrap();
    let loss = b.cross_entropy(z, labels).unwrap();
    b.output("loss", loss).unwrap();
    let forward = b.finish().unwrap();
    let with_grad = wgrad::grad(&forward, None, &PARAMS).unwrap();
    momentum::with_momentum_update(&with_grad, &PARAMS, 0.05, 0.9).unwrap()
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f64 / (1u64 << 24) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn batch(seed: u64) -> HashMap<String, Tensor> {
    let x = Tensor::new(Type::f32(&[256, 128]), values(256 * 128, seed)).unwrap();
    let labels: Vec<f64> = (0..256)
        .map(|i| ((i * 7 + seed as usize) % 16) as f64)
        .collect();
    let labels = Tensor::new(Type::new(DType::I32, &[256]), labels).unwrap();
    HashMap::from([("x".to_string(), x), ("labels".to_string(), labels)])
}

fn set_parameters(exe: &mut wgrad::Executable<'_>) {
    for (i, (name, shape)) in [
        ("w1", vec![128, 256]),
        ("b1", vec![256]),
        ("w2", vec![256, 16]),
        ("b2", vec![16]),
    ]
    .into_iter()
    .enumerate()
    {
        let n = shape.iter().product();
        let scale: Vec<f64> = values(n, 100 + i as u64).iter().map(|v| v * 0.2).collect();
        exe.set(name, &Tensor::new(Type::f32(&shape), scale).unwrap())
            .unwrap();
        exe.set(&format!("m.{name}"), &Tensor::zeros(&Type::f32(&shape)))
            .unwrap();
    }
}

fn tiered_runtime() -> Option<Runtime> {
    runtime_with_options_or_skip(&RuntimeOptions {
        tuning: wgrad::runtime::TuningSource::Off,
        ..RuntimeOptions::default()
    })
}

#[test]
fn a_program_with_large_tiles_carries_a_quick_tier_with_small_ones() {
    let step = training_step();
    let program = wgrad::compile(&step, &Options::default()).unwrap();
    assert!(program.tiles().any(|t| t == [16, 16]));
    let quick = program.quick.as_ref().expect("a quick tier");
    assert!(quick.tiles().count() > 0);
    assert!(quick.tiles().all(|t| t == wgrad::lower::QUICK_TILE));
    assert!(quick.quick.is_none());
    assert_eq!(quick.inputs.len(), program.inputs.len());
    assert_eq!(quick.state, program.state);

    // No quick tier where pipelines compile up front, nor without products.
    let gpu = Options::new(wgrad::Target::discrete_gpu());
    assert!(wgrad::compile(&step, &gpu).unwrap().quick.is_none());
    let f = wgrad::parse("%x = input x : f32[4]\n%y = exp %x : f32[4]\noutput y = %y\n").unwrap();
    assert!(
        wgrad::compile(&f, &Options::default())
            .unwrap()
            .quick
            .is_none()
    );
}

#[test]
fn a_training_step_gives_the_same_numbers_in_either_tier_and_its_state_moves_over() {
    let (Some(tiered), Some(single)) = (tiered_runtime(), runtime_or_skip()) else {
        return;
    };
    if tiered.target().quick_tile.is_none() {
        eprintln!("skipping: this adapter compiles pipelines up front (no quick tier)");
        return;
    }
    let program = wgrad::compile(&training_step(), &Options::new(tiered.target().clone())).unwrap();
    assert!(program.quick.is_some());
    let mut two = tiered.load(&program).unwrap();
    let mut one = single.load(&program).unwrap();
    assert_eq!(two.tier(), Tier::Quick);
    assert_eq!(one.tier(), Tier::Final);
    set_parameters(&mut two);
    set_parameters(&mut one);

    // Steps on the quick tier, then on the final one after the switch: every output and
    // every parameter bit for bit the same as on a runtime that loads in one tier.
    for step in 0..4u64 {
        if step == 2 {
            two.wait_final_tier().unwrap();
            assert_eq!(two.tier(), Tier::Final);
        }
        let inputs = batch(step);
        let a = two.run(&inputs).unwrap();
        let b = one.run(&inputs).unwrap();
        assert_eq!(a.len(), b.len());
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            assert_eq!(
                x.data, y.data,
                "step {step}: `{name}` differs between the tiers"
            );
        }
        for p in PARAMS {
            assert_eq!(
                two.read(p).unwrap().data,
                one.read(p).unwrap().data,
                "step {step}: parameter `{p}` differs between the tiers"
            );
        }
    }
}

#[test]
fn a_program_whose_kernels_are_compiled_loads_in_one_tier() {
    let Some(rt) = tiered_runtime() else { return };
    if rt.target().quick_tile.is_none() {
        return;
    }
    let program = wgrad::compile(&training_step(), &Options::new(rt.target().clone())).unwrap();
    // The async load path tiers the same way.
    let mut first = futures::executor::block_on(rt.load_async(&program)).unwrap();
    assert_eq!(first.tier(), Tier::Quick);
    // Waiting before any run starts the final tier at once.
    first.wait_final_tier().unwrap();
    assert_eq!(first.tier(), Tier::Final);
    drop(first);
    let second = rt.load(&program).unwrap();
    assert_eq!(second.tier(), Tier::Final);
    let third = futures::executor::block_on(rt.load_async(&program)).unwrap();
    assert_eq!(third.tier(), Tier::Final);
}

#[test]
fn an_executable_dropped_on_its_quick_tier_stops_the_final_one() {
    let Some(rt) = tiered_runtime() else { return };
    if rt.target().quick_tile.is_none() {
        return;
    }
    let program = wgrad::compile(&training_step(), &Options::new(rt.target().clone())).unwrap();
    let mut exe = rt.load(&program).unwrap();
    set_parameters(&mut exe);
    for _ in 0..2 {
        let out = exe.run(&batch(0)).unwrap();
        assert!(out[0].1.data[0].is_finite());
    }
    // The second run started the final tier's thread; dropping stops and joins it.
    assert_eq!(exe.tier(), Tier::Quick);
    drop(exe);
    // The runtime stays usable, and the kernels the dropped thread did not get to are
    // compiled by the next load's own tier.
    let mut again = rt.load(&program).unwrap();
    set_parameters(&mut again);
    again.wait_final_tier().unwrap();
    let out = again.run(&batch(0)).unwrap();
    assert!(out[0].1.data[0].is_finite());
}
