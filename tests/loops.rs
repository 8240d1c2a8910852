//! Structured loops: a program with a `loop` prints, parses back, verifies and runs on
//! the interpreter; differentiating through one is a clear error until loops get
//! derivative rules.

mod common;

use common::{Rng, inputs, output};
use wgrad::{Builder, Type};

fn normalize_loop() -> wgrad::Graph {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/programs/normalize_loop.wg"
    );
    wgrad::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_loop_program_round_trips_verifies_and_runs() {
    let g = normalize_loop();
    wgrad::verify(&g).unwrap();
    let printed = wgrad::print(&g);
    assert!(
        printed.contains("loop") && printed.contains("trips=8 carried=1 {"),
        "{printed}"
    );
    let again = wgrad::parse(&printed).unwrap();
    assert_eq!(wgrad::print(&again), printed);
    assert_eq!(again, g);

    let mut rng = Rng::new(1);
    let x = rng.tensor(&[8], -1.0, 1.0);
    let c = rng.tensor(&[8], -1.0, 1.0);
    let out = wgrad::eval(&g, &inputs(vec![("x", x.clone()), ("c", c.clone())])).unwrap();
    let norm = x.data.iter().map(|v| v * v).sum::<f64>().sqrt();
    let want: f64 = x.data.iter().zip(&c.data).map(|(a, b)| a / norm * b).sum();
    let got = output(&out, "loss").data[0];
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
}

#[test]
fn differentiating_through_a_loop_is_a_clear_error() {
    let g = normalize_loop();
    for err in [
        wgrad::grad(&g, None, &["x"]).unwrap_err(),
        wgrad::jvp(&g, None, &["x"]).unwrap_err(),
        wgrad::vjp(&g, None, &["x", "c"]).unwrap_err(),
    ] {
        let msg = err.to_string();
        assert!(
            msg.contains("loop") && msg.contains("not supported"),
            "{msg}"
        );
    }
}

#[test]
fn a_loop_off_the_differentiated_path_does_not_matter() {
    // y = Σ x² + (a loop over z that x does not reach): the gradient wrt x ignores it.
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[3])).unwrap();
    let z = b.input("z", Type::f32(&[3])).unwrap();
    let r = b
        .loop_(4, &[z], &[], |body, _i, carried, _| {
            let two = body.full_like(2.0, carried[0])?;
            Ok(vec![body.mul(carried[0], two)?])
        })
        .unwrap();
    let sq = b.mul(x, x).unwrap();
    let s = b.sum_all(sq).unwrap();
    let zr = b.sum_all(r[0]).unwrap();
    let total = b.add(s, zr).unwrap();
    b.output("y", total).unwrap();
    let g = wgrad::grad(&b.finish().unwrap(), None, &["x"]).unwrap();
    let t = |v: Vec<f64>| wgrad::Tensor::new(Type::f32(&[3]), v).unwrap();
    let out = wgrad::eval(
        &g,
        &inputs(vec![
            ("x", t(vec![1.0, 2.0, 3.0])),
            ("z", t(vec![1.0, 1.0, 1.0])),
        ]),
    )
    .unwrap();
    assert_eq!(output(&out, "grad.x").data, vec![2.0, 4.0, 6.0]);
    assert_eq!(output(&out, "y").data, vec![14.0 + 48.0]);
}

#[test]
fn a_gradient_that_avoids_the_loop_is_allowed() {
    // d loss / d c = out, which the loop computes but nothing differentiates through.
    let g = wgrad::grad(&normalize_loop(), None, &["c"]).unwrap();
    assert!(g.output("grad.c").is_ok());
}
