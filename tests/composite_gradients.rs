//! Every composite of the builder (written from primitives) passes gradcheck, and its
//! forward value matches a direct f64 formula.

mod common;

use common::{Rng, assert_gradcheck, inputs, output, weighted_loss};
use wgrad::{Builder, DType, Tensor, Type, Value};

/// Checks `Σ f(a) · weights` for an elementwise or row-wise composite `f` on `a[3,5]`.
fn check_unary_composite(
    f: impl Fn(&mut Builder, Value) -> Value,
    reference: impl Fn(&[f64]) -> Vec<f64>,
) {
    for seed in 0..4 {
        let mut rng = Rng::new(seed);
        let a = Tensor::new(
            Type::f32(&[3, 5]),
            (0..15)
                .map(|_| rng.away_from_zero(-3.0, 3.0, 0.1))
                .collect(),
        )
        .unwrap();
        let mut ins = inputs(vec![("a", a.clone())]);
        let mut b = Builder::new();
        let x = b.input("a", Type::f32(&[3, 5])).unwrap();
        let y = f(&mut b, x);
        b.output("y", y).unwrap();
        let g = weighted_loss(b, y, &mut rng, &mut ins);
        assert_gradcheck(&g, &["a"], &ins);
        let out = wgrad::eval(&g, &ins).unwrap();
        let got = &output(&out, "y").data;
        let want = reference(&a.data);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                "{got:?} vs {want:?}"
            );
        }
    }
}

/// Applies `f` to each row of 5 elements.
fn rows(a: &[f64], f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    a.chunks(5).flat_map(f).collect()
}

fn lse(r: &[f64]) -> f64 {
    let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + r.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

#[test]
fn relu() {
    check_unary_composite(
        |b, x| b.relu(x).unwrap(),
        |a| a.iter().map(|x| x.max(0.0)).collect(),
    );
}

#[test]
fn sigmoid() {
    check_unary_composite(
        |b, x| b.sigmoid(x).unwrap(),
        |a| a.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect(),
    );
}

#[test]
fn softplus() {
    check_unary_composite(
        |b, x| b.softplus(x).unwrap(),
        |a| a.iter().map(|x| (1.0 + x.exp()).ln()).collect(),
    );
}

#[test]
fn softmax() {
    check_unary_composite(
        |b, x| b.softmax(x, 1).unwrap(),
        |a| rows(a, |r| r.iter().map(|x| (x - lse(r)).exp()).collect()),
    );
}

#[test]
fn log_softmax() {
    check_unary_composite(
        |b, x| b.log_softmax(x, 1).unwrap(),
        |a| rows(a, |r| r.iter().map(|x| x - lse(r)).collect()),
    );
}

#[test]
fn logsumexp() {
    check_unary_composite(
        |b, x| b.logsumexp(x, 1).unwrap(),
        |a| a.chunks(5).map(lse).collect(),
    );
}

#[test]
fn mean() {
    check_unary_composite(
        |b, x| b.mean(x, &[0]).unwrap(),
        |a| {
            (0..5)
                .map(|j| (a[j] + a[5 + j] + a[10 + j]) / 3.0)
                .collect()
        },
    );
}

#[test]
fn cross_entropy_with_integer_labels() {
    let mut rng = Rng::new(3);
    let z = rng.tensor(&[4, 5], -3.0, 3.0);
    let labels = Tensor::new(Type::new(DType::I32, &[4]), vec![0.0, 4.0, 2.0, 2.0]).unwrap();
    let mut b = Builder::new();
    let x = b.input("z", Type::f32(&[4, 5])).unwrap();
    let l = b.input("labels", Type::new(DType::I32, &[4])).unwrap();
    let loss = b.cross_entropy(x, l).unwrap();
    b.output("loss", loss).unwrap();
    let g = b.finish().unwrap();
    let ins = inputs(vec![("z", z.clone()), ("labels", labels.clone())]);
    assert_gradcheck(&g, &["z"], &ins);
    let got = output(&wgrad::eval(&g, &ins).unwrap(), "loss").data[0];
    let want: f64 = z
        .data
        .chunks(5)
        .zip(&labels.data)
        .map(|(r, &c)| lse(r) - r[c as usize])
        .sum::<f64>()
        / 4.0;
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    // Labels are integers: asking for their gradient is an error that names them.
    let err = wgrad::grad(&g, None, &["labels"]).unwrap_err().to_string();
    assert!(err.contains("`labels`") && err.contains("i32"), "{err}");
}

#[test]
fn cross_entropy_with_dense_targets() {
    let mut rng = Rng::new(4);
    let z = rng.tensor(&[3, 5], -3.0, 3.0);
    let t = rng.tensor(&[3, 5], 0.0, 1.0);
    let mut b = Builder::new();
    let x = b.input("z", Type::f32(&[3, 5])).unwrap();
    let y = b.input("t", Type::f32(&[3, 5])).unwrap();
    let loss = b.cross_entropy_dense(x, y).unwrap();
    b.output("loss", loss).unwrap();
    let g = b.finish().unwrap();
    let ins = inputs(vec![("z", z.clone()), ("t", t.clone())]);
    assert_gradcheck(&g, &["z", "t"], &ins);
    let got = output(&wgrad::eval(&g, &ins).unwrap(), "loss").data[0];
    let want: f64 = -z
        .data
        .chunks(5)
        .zip(t.data.chunks(5))
        .map(|(r, tr)| r.iter().zip(tr).map(|(x, y)| y * (x - lse(r))).sum::<f64>())
        .sum::<f64>()
        / 3.0;
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
}

#[test]
fn mse_and_linear() {
    let mut rng = Rng::new(5);
    let ins = inputs(vec![
        ("x", rng.tensor(&[4, 3], -1.0, 1.0)),
        ("w", rng.tensor(&[3, 2], -1.0, 1.0)),
        ("b", rng.tensor(&[2], -1.0, 1.0)),
        ("target", rng.tensor(&[4, 2], -1.0, 1.0)),
    ]);
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[4, 3])).unwrap();
    let w = b.input("w", Type::f32(&[3, 2])).unwrap();
    let bias = b.input("b", Type::f32(&[2])).unwrap();
    let t = b.input("target", Type::f32(&[4, 2])).unwrap();
    let y = b.linear(x, w, bias).unwrap();
    let loss = b.mse(y, t).unwrap();
    b.output("loss", loss).unwrap();
    let g = b.finish().unwrap();
    assert_gradcheck(&g, &["x", "w", "b", "target"], &ins);
    let (xd, wd, bd, td) = (
        &ins["x"].data,
        &ins["w"].data,
        &ins["b"].data,
        &ins["target"].data,
    );
    let mut want = 0.0;
    for i in 0..4 {
        for j in 0..2 {
            let yij = (0..3).map(|k| xd[i * 3 + k] * wd[k * 2 + j]).sum::<f64>() + bd[j];
            want += (yij - td[i * 2 + j]).powi(2);
        }
    }
    want /= 8.0;
    let got = output(&wgrad::eval(&g, &ins).unwrap(), "loss").data[0];
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
}
