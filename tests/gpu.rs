//! The GPU path: every primitive, every derivative rule and every composite runs on the
//! adapter and matches the f64 interpreter within the tolerance table of
//! `tests/common/gpu.rs`; random programs do too; results are bit-identical across
//! runs. Without an adapter these tests skip, except under `CI=true`, where they fail.

mod common;

use common::cases::{CASES, case};
use common::gpu::{assert_gpu_matches, assert_gpu_matches_for};
use common::{Rng, inputs};
use proptest::prelude::*;
use std::sync::OnceLock;
use wgrad::runtime::{Runtime, testing::runtime_or_skip};
use wgrad::{Builder, DType, Options, Tensor, Type};

/// One runtime for the whole test binary: adapters are slow to open.
fn rt() -> Option<&'static Runtime> {
    static RT: OnceLock<Option<Runtime>> = OnceLock::new();
    RT.get_or_init(runtime_or_skip).as_ref()
}

#[test]
fn every_primitive_and_its_derivatives_match_the_interpreter() {
    let Some(rt) = rt() else { return };
    for which in 0..CASES {
        for seed in 0..2 {
            let c = case(which, seed);
            assert_gpu_matches(rt, &c.graph, &c.inputs);
            let vjp = wgrad::grad(&c.graph, Some("loss"), &c.wrt).unwrap();
            assert_gpu_matches(rt, &vjp, &c.inputs);
            let jvp = wgrad::jvp(&c.graph, Some("loss"), &c.wrt).unwrap();
            let mut ins = c.inputs.clone();
            let mut rng = Rng::new(seed);
            for w in &c.wrt {
                ins.insert(
                    format!("tan.{w}"),
                    rng.tensor(&c.inputs[*w].ty.shape, -1.0, 1.0),
                );
            }
            assert_gpu_matches(rt, &jvp, &ins);
        }
    }
}

#[test]
fn composites_and_their_gradients_match_the_interpreter() {
    let Some(rt) = rt() else { return };
    let mut rng = Rng::new(9);
    let z = rng.tensor(&[4, 5], -3.0, 3.0);
    let t = rng.tensor(&[4, 5], 0.0, 1.0);
    let labels = Tensor::new(Type::new(DType::I32, &[4]), vec![0.0, 4.0, 2.0, 2.0]).unwrap();
    let mut b = Builder::new();
    let x = b.input("z", Type::f32(&[4, 5])).unwrap();
    let y = b.input("t", Type::f32(&[4, 5])).unwrap();
    let l = b.input("labels", Type::new(DType::I32, &[4])).unwrap();
    let parts = [
        b.relu(x).unwrap(),
        b.sigmoid(x).unwrap(),
        b.softplus(x).unwrap(),
        b.softmax(x, 1).unwrap(),
        b.log_softmax(x, 1).unwrap(),
    ];
    let mut total = b.scalar(0.0).unwrap();
    for p in parts {
        let p = b.mul(p, y).unwrap();
        let s = b.sum_all(p).unwrap();
        total = b.add(total, s).unwrap();
    }
    let lse = b.logsumexp(x, 1).unwrap();
    let lse = b.sum_all(lse).unwrap();
    let ce = b.cross_entropy(x, l).unwrap();
    let ced = b.cross_entropy_dense(x, y).unwrap();
    let mse = b.mse(x, y).unwrap();
    for v in [lse, ce, ced, mse] {
        total = b.add(total, v).unwrap();
    }
    b.output("loss", total).unwrap();
    let g = b.finish().unwrap();
    let ins = inputs(vec![("z", z), ("t", t), ("labels", labels)]);
    assert_gpu_matches(rt, &g, &ins);
    assert_gpu_matches(rt, &wgrad::grad(&g, None, &["z", "t"]).unwrap(), &ins);
}

fn example(name: &str) -> wgrad::Graph {
    let path = format!("{}/examples/programs/{name}", env!("CARGO_MANIFEST_DIR"));
    wgrad::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn example_programs_and_their_gradients_match_the_interpreter() {
    let Some(rt) = rt() else { return };
    let mlp_inputs = wgrad::json::parse_tensors(
        &std::fs::read_to_string(format!(
            "{}/examples/programs/mlp.inputs.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let mlp = example("mlp.wg");
    assert_gpu_matches(rt, &mlp, &mlp_inputs);
    assert_gpu_matches(
        rt,
        &wgrad::grad(&mlp, None, &["w1", "b1", "w2", "b2"]).unwrap(),
        &mlp_inputs,
    );

    let mut rng = Rng::new(3);
    let sm = example("softmax_regression.wg");
    let ins = inputs(vec![
        ("x", rng.tensor(&[4, 5], -1.0, 1.0)),
        ("w", rng.tensor(&[5, 3], -1.0, 1.0)),
        (
            "onehot",
            Tensor::new(
                Type::f32(&[4, 3]),
                vec![1., 0., 0., 0., 1., 0., 0., 0., 1., 1., 0., 0.],
            )
            .unwrap(),
        ),
    ]);
    assert_gpu_matches(rt, &wgrad::grad(&sm, None, &["w"]).unwrap(), &ins);

    let w5 = example("w5.wg");
    let g = wgrad::grad(&w5, None, &["x"]).unwrap();
    let hvp = wgrad::jvp(&g, Some("grad.x"), &["x"]).unwrap();
    let ins = inputs(vec![
        ("x", rng.tensor(&[4], -2.0, 2.0)),
        ("tan.x", rng.tensor(&[4], -1.0, 1.0)),
    ]);
    assert_gpu_matches(rt, &hvp, &ins);

    let lp = example("normalize_loop.wg");
    let ins = inputs(vec![
        ("x", rng.tensor(&[8], -1.0, 1.0)),
        ("c", rng.tensor(&[8], -1.0, 1.0)),
    ]);
    assert_gpu_matches(rt, &lp, &ins);
}

#[test]
fn repeated_runs_are_bit_identical() {
    let Some(rt) = rt() else { return };
    let mlp = example("mlp.wg");
    let g = wgrad::grad(&mlp, None, &["w1", "b1", "w2", "b2"]).unwrap();
    let ins = common::gpu::as_f32(
        &wgrad::json::parse_tensors(
            &std::fs::read_to_string(format!(
                "{}/examples/programs/mlp.inputs.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap(),
    );
    let program = wgrad::compile(&g, &Options::new(rt.target().clone())).unwrap();
    let mut exe = rt.load(&program).unwrap();
    let first = exe.run(&ins).unwrap();
    for _ in 0..5 {
        let again = exe.run(&ins).unwrap();
        for ((n, a), (_, b)) in first.iter().zip(&again) {
            let bits = |t: &Tensor| {
                t.data
                    .iter()
                    .map(|x| (*x as f32).to_bits())
                    .collect::<Vec<u32>>()
            };
            assert_eq!(bits(a), bits(b), "output `{n}` changed between runs");
        }
    }
    // A second executable of the same program reuses every cached pipeline (on a
    // runtime of its own: the shared one is filling its cache from other tests).
    let own = runtime_or_skip().unwrap();
    let _first = own.load(&program).unwrap();
    let cached = own.cached_pipelines();
    assert!(cached > 0);
    let _second = own.load(&program).unwrap();
    assert_eq!(own.cached_pipelines(), cached);
}

#[test]
fn large_dispatches_split_into_a_two_dimensional_grid() {
    let Some(rt) = rt() else { return };
    // A target allowing only 4 workgroups per dimension forces a 2-D grid on 4096
    // elements (16 workgroups of 256).
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[4096])).unwrap();
    let two = b.full_like(2.0, x).unwrap();
    let y = b.mul(x, two).unwrap();
    b.output("y", y).unwrap();
    let g = b.finish().unwrap();
    let mut target = rt.target().clone();
    target.max_compute_workgroups_per_dimension = 4;
    let program = wgrad::compile(&g, &Options::new(target)).unwrap();
    assert_eq!(program.kernels[0].dispatch, [4, 4, 1]);
    let data: Vec<f64> = (0..4096).map(f64::from).collect();
    let mut exe = rt.load(&program).unwrap();
    let out = exe
        .run(&inputs(vec![(
            "x",
            Tensor::new(Type::f32(&[4096]), data.clone()).unwrap(),
        )]))
        .unwrap();
    let want: Vec<f64> = data.iter().map(|x| 2.0 * x).collect();
    assert_eq!(out[0].1.data, want);
}

/// A random program of elementwise, broadcast, reduction and product ops with inputs
/// kept in the transcendental ranges of the tolerance table.
fn random_program(seed: u64) -> (wgrad::Graph, std::collections::HashMap<String, Tensor>) {
    let mut rng = Rng::new(seed);
    let (m, n) = (1 + rng.below(4), 1 + rng.below(4));
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[m, n])).unwrap();
    let y = b.input("y", Type::f32(&[n])).unwrap();
    let mut pool = vec![x, y];
    for _ in 0..(2 + rng.below(6)) {
        let a = pool[rng.below(pool.len())];
        let c = pool[rng.below(pool.len())];
        // Squash each new value into (-1, 1) so later transcendental ops stay in range.
        let v = match rng.below(9) {
            0 => b.add(a, c).unwrap(),
            1 => b.mul(a, c).unwrap(),
            2 => b.sub(a, c).unwrap(),
            3 => b.sin(a).unwrap(),
            4 => b.exp(a).unwrap(),
            5 => b.max(a, c).unwrap(),
            6 => {
                let r = b.ty(a).rank();
                let s = b.sum(a, &[0][..r.min(1)]).unwrap();
                b.mul(s, c).unwrap()
            }
            7 => {
                if b.ty(a).rank() == 2 {
                    let t = b.transpose(a, &[1, 0]).unwrap();
                    let p = b.matmul(a, t).unwrap();
                    let r = b.reduce_max(p, &[1]).unwrap();
                    b.reshape(r, &[m, 1]).unwrap()
                } else {
                    b.neg(a).unwrap()
                }
            }
            _ => b.sigmoid(a).unwrap(),
        };
        pool.push(b.tanh(v).unwrap());
    }
    let last = *pool.last().unwrap();
    let s = b.sum_all(last).unwrap();
    b.output("out", s).unwrap();
    let g = b.finish().unwrap();
    let ins = inputs(vec![
        ("x", rng.tensor(&[m, n], -1.0, 1.0)),
        ("y", rng.tensor(&[n], -1.0, 1.0)),
    ]);
    (g, ins)
}

/// A random program over rows: elementwise work on `[R, C]` values, reductions along
/// the rows (sum, max, min), per-row values broadcast back along the rows, and
/// per-element and per-row outputs, which lowering turns into row kernels. Rows up to
/// 80 long cross the 64 invocations a GPU-class row kernel shares a row between.
fn random_row_program(seed: u64) -> (wgrad::Graph, std::collections::HashMap<String, Tensor>) {
    let mut rng = Rng::new(seed);
    let (r, c) = (1 + rng.below(5), 1 + rng.below(80));
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[r, c])).unwrap();
    let y = b.input("y", Type::f32(&[r, c])).unwrap();
    let mut elements = vec![x, y];
    let x_max = b.reduce_max(x, &[1]).unwrap();
    let mut rows = vec![x_max];
    for _ in 0..(3 + rng.below(6)) {
        let a = elements[rng.below(elements.len())];
        let e = elements[rng.below(elements.len())];
        let v = match rng.below(5) {
            0 => b.mul(a, e).unwrap(),
            1 => b.exp(a).unwrap(),
            2 => {
                let kind = [
                    wgrad::ir::ReduceKind::Sum,
                    wgrad::ir::ReduceKind::Max,
                    wgrad::ir::ReduceKind::Min,
                ][rng.below(3)];
                let v = b.reduce(kind, a, &[1]).unwrap();
                rows.push(b.tanh(v).unwrap());
                continue;
            }
            3 => b.add(a, e).unwrap(),
            _ => {
                let p = rows[rng.below(rows.len())];
                let pb = b.broadcast_in_dim(p, &[r, c], &[0]).unwrap();
                b.sub(a, pb).unwrap()
            }
        };
        elements.push(b.tanh(v).unwrap());
    }
    // The last element value reads the last per-row value, so a row kernel forms.
    let p = *rows.last().unwrap();
    let pb = b.broadcast_in_dim(p, &[r, c], &[0]).unwrap();
    let v = b.sub(*elements.last().unwrap(), pb).unwrap();
    let last = b.tanh(v).unwrap();
    let total = b.sum_all(last).unwrap();
    b.output("total", total).unwrap();
    b.output("element", last).unwrap();
    b.output("row", p).unwrap();
    let g = b.finish().unwrap();
    let ins = inputs(vec![
        ("x", rng.tensor(&[r, c], -1.0, 1.0)),
        ("y", rng.tensor(&[r, c], -1.0, 1.0)),
    ]);
    (g, ins)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn random_row_programs_and_gradients_match_the_interpreter(seed in any::<u64>()) {
        let Some(rt) = rt() else { return Ok(()) };
        let (g, ins) = random_row_program(seed);
        let gpu = wgrad::Target::discrete_gpu();
        let program = wgrad::compile(&g, &Options::new(rt.target().clone())).unwrap();
        prop_assert!(program.kernels.iter().any(|k| k.variant == "row"));
        assert_gpu_matches(rt, &g, &ins);
        assert_gpu_matches_for(rt, &gpu, &g, &ins);
        // The gradient of the total only: the other outputs need no cotangent.
        let d = wgrad::grad(&g, Some("total"), &["x", "y"]).unwrap();
        assert_gpu_matches(rt, &d, &ins);
        assert_gpu_matches_for(rt, &gpu, &d, &ins);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_programs_and_gradients_match_the_interpreter(seed in any::<u64>()) {
        let Some(rt) = rt() else { return Ok(()) };
        let (g, ins) = random_program(seed);
        assert_gpu_matches(rt, &g, &ins);
        let d = wgrad::grad(&g, None, &["x", "y"]).unwrap();
        assert_gpu_matches(rt, &d, &ins);
    }
}

#[test]
fn integer_bool_and_index_ops_match_the_interpreter_exactly() {
    let Some(rt) = rt() else { return };
    let i32s = |v: &[i64]| {
        Tensor::new(
            Type::new(DType::I32, &[v.len()]),
            v.iter().map(|&x| x as f64).collect(),
        )
        .unwrap()
    };
    let u32s = |v: &[u64]| {
        Tensor::new(
            Type::new(DType::U32, &[v.len()]),
            v.iter().map(|&x| x as f64).collect(),
        )
        .unwrap()
    };
    let n = 8;
    let mut b = Builder::new();
    let a = b.input("a", Type::new(DType::I32, &[n])).unwrap();
    let c = b.input("c", Type::new(DType::I32, &[n])).unwrap();
    let u = b.input("u", Type::new(DType::U32, &[n])).unwrap();
    let v = b.input("v", Type::new(DType::U32, &[n])).unwrap();
    let f = b.input("f", Type::f32(&[n])).unwrap();
    let mut outs = Vec::new();
    for (name, x, y) in [("i", a, c), ("u", u, v)] {
        outs.push((format!("{name}.add"), b.add(x, y).unwrap()));
        outs.push((format!("{name}.sub"), b.sub(x, y).unwrap()));
        outs.push((format!("{name}.mul"), b.mul(x, y).unwrap()));
        outs.push((format!("{name}.div"), b.div(x, y).unwrap()));
        outs.push((format!("{name}.max"), b.max(x, y).unwrap()));
        outs.push((format!("{name}.min"), b.min(x, y).unwrap()));
        outs.push((format!("{name}.neg"), b.neg(x).unwrap()));
        outs.push((format!("{name}.abs"), b.abs(x).unwrap()));
        outs.push((format!("{name}.sign"), b.sign(x).unwrap()));
        outs.push((format!("{name}.lt"), b.lt(x, y).unwrap()));
        outs.push((format!("{name}.eq"), b.eq(x, y).unwrap()));
        outs.push((format!("{name}.sum"), b.sum(x, &[0]).unwrap()));
    }
    outs.push(("f.to_i32".into(), b.cast(f, DType::I32).unwrap()));
    outs.push(("f.to_u32".into(), b.cast(f, DType::U32).unwrap()));
    outs.push(("i.to_u32".into(), b.cast(a, DType::U32).unwrap()));
    outs.push(("u.to_i32".into(), b.cast(u, DType::I32).unwrap()));
    outs.push(("i.to_f32".into(), b.cast(a, DType::F32).unwrap()));
    outs.push(("i.to_bool".into(), b.cast(a, DType::Bool).unwrap()));
    let onehot_idx = b.input("k", Type::new(DType::I32, &[4])).unwrap();
    outs.push((
        "one_hot".into(),
        b.one_hot(onehot_idx, 3, DType::F32).unwrap(),
    ));
    outs.push(("iota".into(), b.iota(DType::I32, &[2, 3], 1).unwrap()));
    let lt = b.lt(a, c).unwrap();
    outs.push(("select".into(), b.select(lt, u, v).unwrap()));
    for (name, v) in &outs {
        b.output(name, *v).unwrap();
    }
    let g = b.finish().unwrap();
    let min = i32::MIN as i64;
    let ins = inputs(vec![
        ("a", i32s(&[7, -7, min, min, 2147483647, 5, 0, -3])),
        ("c", i32s(&[2, 2, -1, 1, 1, 0, 0, 3])),
        ("u", u32s(&[7, 0, 4294967295, 1, 3, 5, 0, 100])),
        ("v", u32s(&[2, 1, 2, 4294967295, 3, 0, 0, 7])),
        (
            "f",
            Tensor::new(
                Type::f32(&[n]),
                vec![1.9, -1.9, 3e9, -3e9, 0.0, -0.5, 2147483520.0, 7.0],
            )
            .unwrap(),
        ),
        ("k", i32s(&[0, 2, -1, 3])),
    ]);
    let got = assert_gpu_matches(rt, &g, &ins);
    // Integer and bool results (and f32 ones computed exactly) agree bit for bit.
    let want = wgrad::eval(&g, &common::gpu::as_f32(&ins)).unwrap();
    for ((name, a), (_, b)) in got.iter().zip(&want) {
        if name != "i.to_f32" {
            assert_eq!(a.data, b.data, "output `{name}`");
        }
    }
}

#[test]
fn long_reductions_run_in_two_deterministic_stages() {
    let Some(rt) = rt() else { return };
    // Σ exp(x)·x over 10000 elements and a max: partial runs of 1024, then a fold.
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[100, 100])).unwrap();
    let e = b.exp(x).unwrap();
    let p = b.mul(e, x).unwrap();
    let s = b.sum_all(p).unwrap();
    let m = b.reduce_max(p, &[0, 1]).unwrap();
    b.output("s", s).unwrap();
    b.output("m", m).unwrap();
    let g = b.finish().unwrap();
    let variants = |options: &Options| -> Vec<String> {
        let program = wgrad::compile(&g, options).unwrap();
        program.kernels.iter().map(|k| k.variant.clone()).collect()
    };
    // The sum and the max are siblings: one first stage computes exp(x)·x once per
    // element for both, one final stage folds both.
    let options = Options::new(rt.target().clone());
    assert_eq!(variants(&options), ["reduce_partial", "reduce_final"]);
    // Without sibling fusion, exp(x)·x is cheap elementwise work on an input: each
    // reduction recomputes it in its own pair of kernels.
    let mut apart = options.clone();
    apart.optimizations = apart.optimizations.without("siblings").unwrap();
    assert_eq!(
        variants(&apart),
        [
            "reduce_partial",
            "reduce_final",
            "reduce_partial",
            "reduce_final"
        ]
    );
    let mut rng = Rng::new(2);
    let ins = inputs(vec![("x", rng.tensor(&[100, 100], -1.0, 1.0))]);
    assert_gpu_matches(rt, &g, &ins);
    common::gpu::assert_gpu_matches_with(rt, &apart, &g, &ins);
}

#[test]
fn shared_weight_products_with_prologues_match_the_interpreter() {
    let Some(rt) = rt() else { return };
    // W3a and W3b at a small size: (x1 + x2) is computed as the products load it.
    let mut rng = Rng::new(4);
    for shared_sum in [true, false] {
        let mut b = Builder::new();
        let x1 = b.input("x1", Type::f32(&[8, 16])).unwrap();
        let x2 = b.input("x2", Type::f32(&[8, 16])).unwrap();
        let w = b.input("w", Type::f32(&[16, 12])).unwrap();
        let p1 = b.matmul(x1, w).unwrap();
        let p2 = b.matmul(x2, w).unwrap();
        let loss = if shared_sum {
            let s = b.add(p1, p2).unwrap();
            let t = b.tanh(s).unwrap();
            b.sum_all(t).unwrap()
        } else {
            let t1 = b.tanh(p1).unwrap();
            let t2 = b.tanh(p2).unwrap();
            let s1 = b.sum_all(t1).unwrap();
            let s2 = b.sum_all(t2).unwrap();
            b.add(s1, s2).unwrap()
        };
        b.output("loss", loss).unwrap();
        let g = b.finish().unwrap();
        let d = wgrad::grad(&g, None, &["w"]).unwrap();
        let program = wgrad::compile(&d, &Options::new(rt.target().clone())).unwrap();
        if shared_sum {
            assert!(program.kernels.iter().any(|k| k.wgsl.contains("fn load_a")));
        }
        let ins = inputs(vec![
            ("x1", rng.tensor(&[8, 16], -1.0, 1.0)),
            ("x2", rng.tensor(&[8, 16], -1.0, 1.0)),
            ("w", rng.tensor(&[16, 12], -0.5, 0.5)),
        ]);
        assert_gpu_matches(rt, &d, &ins);
    }
}

#[test]
fn products_in_every_operand_layout_match_the_interpreter() {
    let Some(rt) = rt() else { return };
    // A row-major or transposed, B row-major or transposed; K a multiple of 4 or not;
    // M a multiple of 4 (a transposed A is read as vec4 along M) or not; N a multiple of
    // 4 (B's rows read as vec4, and then a row-major A as vec4 along K) or not. Each
    // with A's loads shared by a subgroup (where the adapter's subgroups have one
    // width) and without: the last shapes need several subgroups and workgroups, with
    // lanes outside the product beside lanes inside.
    let mut rng = Rng::new(8);
    let shared = rt.target().clone();
    let mut own = shared.clone();
    own.features.subgroup_size = None;
    for (lhs_contract, rhs_contract) in [(1, 0), (1, 1), (0, 0), (0, 1)] {
        for ((k, m, n), target) in [
            (8, 5, 6),
            (7, 5, 6),
            (8, 20, 6),
            (7, 36, 6),
            (8, 5, 8),
            (12, 20, 40),
            (12, 76, 92),
            (9, 150, 70),
        ]
        .into_iter()
        .flat_map(|shape| [(shape, &shared), (shape, &own)])
        {
            let lhs = if lhs_contract == 1 { [m, k] } else { [k, m] };
            let rhs = if rhs_contract == 0 { [k, n] } else { [n, k] };
            let mut b = Builder::new();
            let a = b.input("a", Type::f32(&lhs)).unwrap();
            let c = b.input("b", Type::f32(&rhs)).unwrap();
            let dims = wgrad::ir::DotDims {
                lhs_batch: vec![],
                rhs_batch: vec![],
                lhs_contract: vec![lhs_contract],
                rhs_contract: vec![rhs_contract],
            };
            let y = b.dot(a, c, dims).unwrap();
            b.output("y", y).unwrap();
            let g = b.finish().unwrap();
            let program = wgrad::compile(&g, &Options::new(target.clone())).unwrap();
            let variant = &program.kernels[0].variant;
            assert!(variant.starts_with("matmul_tiled"));
            assert_eq!(
                variant.ends_with("_shared"),
                target
                    .shared_loads(&wgrad::lower::Tiling {
                        a_transposed: lhs_contract == 0,
                        b_transposed: rhs_contract == 1,
                        m,
                        n,
                        k,
                        batch: 1,
                    })
                    .is_some(),
                "{variant}"
            );
            let ins = inputs(vec![
                ("a", rng.tensor(&lhs, -1.0, 1.0)),
                ("b", rng.tensor(&rhs, -1.0, 1.0)),
            ]);
            assert_gpu_matches_for(rt, target, &g, &ins);
        }
    }
}

/// The kernels of `program` that write buffer `b`.
fn writers(program: &wgrad::Program, b: wgrad::lower::BufferId) -> Vec<&str> {
    program
        .kernels
        .iter()
        .filter(|k| k.bindings.iter().any(|x| x.buffer == b && x.writable))
        .map(|k| k.name.as_str())
        .collect()
}

#[test]
fn a_literal_softmax_log_loss_gradient_runs_as_one_row_kernel() {
    let Some(rt) = rt() else { return };
    // W2 at a small size, written literally: -Σ y·log(exp(z) / Σ_row exp(z)). Rows of
    // 70 classes: more than a row kernel computes a product for inline.
    let mut rng = Rng::new(11);
    let (n, f, c) = (13, 7, 70);
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[n, f])).unwrap();
    let w = b.input("w", Type::f32(&[f, c])).unwrap();
    let y = b.input("y", Type::f32(&[n, c])).unwrap();
    let z = b.matmul(x, w).unwrap();
    let e = b.exp(z).unwrap();
    let s = b.sum(e, &[1]).unwrap();
    let sb = b.broadcast_in_dim(s, &[n, c], &[0]).unwrap();
    let p = b.div(e, sb).unwrap();
    let lp = b.log(p).unwrap();
    let t = b.mul(y, lp).unwrap();
    let total = b.sum_all(t).unwrap();
    let loss = b.neg(total).unwrap();
    b.output("loss", loss).unwrap();
    let d = wgrad::grad(&b.finish().unwrap(), None, &["w"]).unwrap();
    let program = wgrad::compile(&d, &Options::new(rt.target().clone())).unwrap();
    let variants: Vec<&str> = program.kernels.iter().map(|k| k.variant.as_str()).collect();
    assert_eq!(variants.len(), 4, "{variants:?}");
    assert_eq!(variants[1], "row");
    // dz overwrites the logits: the row kernel writes the buffer the product wrote.
    let row = &program.kernels[1];
    let z_buffer = program.kernels[0].bindings[0].buffer;
    assert!(
        row.bindings
            .iter()
            .any(|x| x.buffer == z_buffer && x.writable)
    );
    assert_eq!(writers(&program, z_buffer).len(), 2);
    let mut targets = vec![0.0; n * c];
    for r in 0..n {
        targets[r * c + (r * 5) % c] = 1.0;
    }
    let ins = inputs(vec![
        ("x", rng.tensor(&[n, f], -1.0, 1.0)),
        ("w", rng.tensor(&[f, c], -1.0, 1.0)),
        ("y", Tensor::new(Type::f32(&[n, c]), targets).unwrap()),
    ]);
    assert_gpu_matches(rt, &d, &ins);
    // The GPU variant of the row kernel (a workgroup per row) gives the same results.
    let gpu = wgrad::Target::discrete_gpu();
    let program_gpu = wgrad::compile(&d, &Options::new(gpu.clone())).unwrap();
    assert!(program_gpu.kernels[1].wgsl.contains("workgroupBarrier"));
    assert_gpu_matches_for(rt, &gpu, &d, &ins);
    // With logits of magnitude about 1e3 (where exp overflows f32) the loss and the
    // gradient stay finite: the row kernel subtracts each row's maximum.
    let mut big = common::gpu::as_f32(&ins);
    let w = big.get_mut("w").unwrap();
    w.data.iter_mut().for_each(|v| *v *= 1000.0);
    let mut exe = rt.load(&program).unwrap();
    let out = exe.run(&big).unwrap();
    let largest = out[1].1.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(largest > 1.0, "the gradient is not trivially zero");
    for (name, t) in &out {
        assert!(t.data.iter().all(|v| v.is_finite()), "{name} is not finite");
    }
}

#[test]
fn bias_gradients_computed_beside_weight_gradients_match_the_interpreter() {
    let Some(rt) = rt() else { return };
    // W1's shape at a small size, with hidden widths that take the scalar and the vec4
    // path of the tiled product, and a batch that is not a multiple of the tile.
    let mut rng = Rng::new(12);
    for hidden in [9, 8] {
        let (n, f, c) = (19, 6, 5);
        let mut b = Builder::new();
        let x = b.input("x", Type::f32(&[n, f])).unwrap();
        let labels = b.input("labels", Type::new(DType::I32, &[n])).unwrap();
        let w1 = b.input("w1", Type::f32(&[f, hidden])).unwrap();
        let b1 = b.input("b1", Type::f32(&[hidden])).unwrap();
        let w2 = b.input("w2", Type::f32(&[hidden, c])).unwrap();
        let b2 = b.input("b2", Type::f32(&[c])).unwrap();
        let h = b.linear(x, w1, b1).unwrap();
        let h = b.relu(h).unwrap();
        let z = b.linear(h, w2, b2).unwrap();
        let loss = b.cross_entropy(z, labels).unwrap();
        b.output("loss", loss).unwrap();
        let d = wgrad::grad(&b.finish().unwrap(), None, &["w1", "b1", "w2", "b2"]).unwrap();
        let program = wgrad::compile(&d, &Options::new(rt.target().clone())).unwrap();
        let beside = program
            .kernels
            .iter()
            .filter(|k| k.wgsl.contains("Also computes"))
            .count();
        assert_eq!(beside, 2, "both bias gradients ride along with a product");
        let label_data: Vec<f64> = (0..n).map(|r| ((r * 3) % c) as f64).collect();
        let ins = inputs(vec![
            ("x", rng.tensor(&[n, f], -1.0, 1.0)),
            (
                "labels",
                Tensor::new(Type::new(DType::I32, &[n]), label_data).unwrap(),
            ),
            ("w1", rng.tensor(&[f, hidden], -0.5, 0.5)),
            ("b1", rng.tensor(&[hidden], -0.5, 0.5)),
            ("w2", rng.tensor(&[hidden, c], -0.5, 0.5)),
            ("b2", rng.tensor(&[c], -0.5, 0.5)),
        ]);
        assert_gpu_matches(rt, &d, &ins);
        assert_gpu_matches_for(rt, &wgrad::Target::discrete_gpu(), &d, &ins);
    }
}

#[test]
fn row_kernels_over_several_leading_axes_store_per_row_and_per_element_results() {
    let Some(rt) = rt() else { return };
    // Rows indexed by [2,3], 150 long (more than the 64 invocations a GPU's workgroup
    // shares a row between): max and min in one pass, then a normalization, a
    // comparison (bool) and the per-row maximum, all stored by one kernel.
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[2, 3, 150])).unwrap();
    let hi = b.reduce_max(x, &[2]).unwrap();
    let lo = b.reduce(wgrad::ir::ReduceKind::Min, x, &[2]).unwrap();
    let range = b.sub(hi, lo).unwrap();
    let hib = b.broadcast_in_dim(hi, &[2, 3, 150], &[0, 1]).unwrap();
    let rb = b.broadcast_in_dim(range, &[2, 3, 150], &[0, 1]).unwrap();
    let shifted = b.sub(x, hib).unwrap();
    let scaled = b.div(shifted, rb).unwrap();
    let top = b.compare(wgrad::ir::CmpOp::Ge, x, hib).unwrap();
    b.output("scaled", scaled).unwrap();
    b.output("top", top).unwrap();
    b.output("hi", hi).unwrap();
    let g = b.finish().unwrap();
    let program = wgrad::compile(&g, &Options::new(rt.target().clone())).unwrap();
    let variants: Vec<&str> = program.kernels.iter().map(|k| k.variant.as_str()).collect();
    assert_eq!(variants, ["row"]);
    let mut rng = Rng::new(13);
    let ins = inputs(vec![("x", rng.tensor(&[2, 3, 150], -2.0, 2.0))]);
    assert_gpu_matches(rt, &g, &ins);
    assert_gpu_matches_for(rt, &wgrad::Target::discrete_gpu(), &g, &ins);
}

#[test]
fn operands_computed_four_at_a_time_as_the_product_loads_them_match_the_interpreter() {
    let Some(rt) = rt() else { return };
    // A = op(p, q) is computed inside the product, as vec4 along K (A row-major) or
    // along M (A transposed), for every op that path takes, with and without a constant.
    let mut rng = Rng::new(14);
    let ops = [
        "add %0, %1",
        "sub %0, %1",
        "mul %0, %5",
        "div %0, %5",
        "neg %0",
        "exp %0",
        "log %1",
    ];
    for op in ops {
        for transposed in [false, true] {
            let (a, contract) = if transposed {
                ([8, 12], 0)
            } else {
                ([12, 8], 1)
            };
            let text = format!(
                "%0 = input p : f32[{a0},{a1}]\n%1 = input q : f32[{a0},{a1}]\n%2 = input b : f32[8,16]\n\
                 %5 = constant 0.75 : f32[{a0},{a1}]\n%3 = {op} : f32[{a0},{a1}]\n\
                 %4 = dot %3, %2 lhs_batch=[] rhs_batch=[] lhs_contract=[{contract}] rhs_contract=[0] : f32[12,16]\n\
                 output y = %4\n",
                a0 = a[0],
                a1 = a[1],
            );
            let g = wgrad::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let program = wgrad::compile(&g, &Options::new(rt.target().clone())).unwrap();
            assert_eq!(program.kernels.len(), 1, "{text}");
            assert!(program.kernels[0].wgsl.contains("fn load_a4"), "{op}");
            let ins = inputs(vec![
                ("p", rng.tensor(&a, -1.0, 1.0)),
                ("q", rng.tensor(&a, 0.5, 2.0)),
                ("b", rng.tensor(&[8, 16], -1.0, 1.0)),
            ]);
            assert_gpu_matches(rt, &g, &ins);
        }
    }
}

#[test]
fn bias_gradients_of_weights_stored_out_by_in_ride_along_with_their_products() {
    let Some(rt) = rt() else { return };
    // y = x·Wᵀ + b with W stored [out, in]: the weight gradient is dyᵀ·x, and the bias
    // gradient Σ_rows dy is the sum of that product's A over K.
    let mut rng = Rng::new(15);
    for (n, f, h) in [(19, 6, 9), (16, 8, 12)] {
        let mut b = Builder::new();
        let x = b.input("x", Type::f32(&[n, f])).unwrap();
        let w = b.input("w", Type::f32(&[h, f])).unwrap();
        let bias = b.input("b", Type::f32(&[h])).unwrap();
        let dims = wgrad::ir::DotDims {
            lhs_batch: vec![],
            rhs_batch: vec![],
            lhs_contract: vec![1],
            rhs_contract: vec![1],
        };
        let xw = b.dot(x, w, dims).unwrap();
        let bb = b.broadcast_in_dim(bias, &[n, h], &[1]).unwrap();
        let z = b.add(xw, bb).unwrap();
        let t = b.tanh(z).unwrap();
        let loss = b.sum_all(t).unwrap();
        b.output("loss", loss).unwrap();
        let d = wgrad::grad(&b.finish().unwrap(), None, &["w", "b"]).unwrap();
        let program = wgrad::compile(&d, &Options::new(rt.target().clone())).unwrap();
        assert!(
            program
                .kernels
                .iter()
                .any(|k| k.wgsl.contains("reduce_sum of A over K")),
            "{}",
            program
                .kernels
                .iter()
                .map(|k| k.wgsl.lines().next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let ins = inputs(vec![
            ("x", rng.tensor(&[n, f], -1.0, 1.0)),
            ("w", rng.tensor(&[h, f], -0.5, 0.5)),
            ("b", rng.tensor(&[h], -0.5, 0.5)),
        ]);
        assert_gpu_matches(rt, &d, &ins);
    }
}

#[test]
fn a_loss_summed_by_the_product_that_computes_it_matches_the_interpreter() {
    let Some(rt) = rt() else { return };
    // loss = Σ tanh(x·W) over 64×72 elements, enough for the product kernel of the
    // gradient program (which stores tanh(x·W) for the backward pass) to sum its result
    // too; the grid is larger than the product, so some invocations have nothing to add.
    let mut rng = Rng::new(16);
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[64, 40])).unwrap();
    let w = b.input("w", Type::f32(&[40, 72])).unwrap();
    let z = b.matmul(x, w).unwrap();
    let t = b.tanh(z).unwrap();
    let loss = b.sum_all(t).unwrap();
    b.output("loss", loss).unwrap();
    let g = b.finish().unwrap();
    let d = wgrad::grad(&g, None, &["w"]).unwrap();
    {
        let compiled = wgrad::compile(&d, &Options::new(rt.target().clone())).unwrap();
        assert!(
            compiled.kernels[0].wgsl.contains("Also sums its result"),
            "{}",
            compiled.kernels[0].wgsl.lines().next().unwrap_or("")
        );
        assert_eq!(compiled.kernels[1].variant, "reduce_final");
    }
    let ins = inputs(vec![
        ("x", rng.tensor(&[64, 40], -1.0, 1.0)),
        ("w", rng.tensor(&[40, 72], -0.3, 0.3)),
    ]);
    assert_gpu_matches(rt, &g, &ins);
    assert_gpu_matches(rt, &d, &ins);
}

#[test]
fn a_gradient_split_to_fit_few_bindings_matches_the_interpreter() {
    // The gradient of a chain of 60 ops, computed apart from its loss, reads more
    // forward values than the portable preset's 8 storage buffers: its kernels are
    // split to fit, and still compute the same gradient.
    let Some(rt) = rt() else { return };
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[64])).unwrap();
    let mut v = x;
    for i in 0..60 {
        v = match i % 4 {
            0 => b.tanh(v),
            1 => b.sin(v),
            2 => b.mul(v, x),
            _ => b.add(v, x),
        }
        .unwrap();
    }
    let loss = b.sum_all(v).unwrap();
    b.output("loss", loss).unwrap();
    let g = wgrad::grad(&b.finish().unwrap(), None, &["x"]).unwrap();
    let target = wgrad::Target::portable();
    // With sibling fusion the derivative is computed beside the loss's sum from x
    // alone, reading one buffer; without it, the forward values it reads are stored,
    // and the kernel reading them must be split.
    let mut apart = Options::new(target.clone());
    apart.optimizations = apart.optimizations.without("siblings").unwrap();
    let program = wgrad::compile(&g, &apart).unwrap();
    assert!(program.kernels.len() > 2, "the gradient is split");
    assert!(program.max_bindings() <= target.max_storage_buffers_per_shader_stage);
    let mut rng = Rng::new(11);
    let ins = inputs(vec![("x", rng.tensor(&[64], -1.0, 1.0))]);
    common::gpu::assert_gpu_matches_with(rt, &apart, &g, &ins);
    let together = wgrad::compile(&g, &Options::new(target.clone())).unwrap();
    assert!(
        together.kernels.len() <= 2,
        "{} kernels",
        together.kernels.len()
    );
    assert_gpu_matches_for(rt, &target, &g, &ins);
}

/// A random row program whose gradient goes through `1 - y·y` of a saturated `tanh`
/// (`tanh(7.29)`, where `1 - y·y` is 1.87e-6 and one f32 rounding of `y` moves it by
/// 6e-8): no f32 implementation gets that element's gradient to more than a digit or
/// two, so a program-wide tolerance either fails it or is far too loose everywhere
/// else. The per-element rounding spread widens it there alone.
#[test]
fn a_cancelling_derivative_is_held_to_the_rounding_it_amplifies() {
    let (g, ins) = random_row_program(4284684054835922346);
    let d = wgrad::grad(&g, Some("total"), &["x", "y"]).unwrap();
    let ins = common::gpu::as_f32(&ins);
    let want = wgrad::eval(&d, &ins).unwrap();
    let spread = common::gpu::rounding_spread(&d, &ins, &want);
    let (abs, rel) = common::gpu::tolerance(&d);
    let at = |name: &str, k: usize| {
        let i = want.iter().position(|(n, _)| n == name).unwrap();
        (spread[i][k], abs + rel * want[i].1.data[k].abs())
    };
    // Element 28 (row 1) cancels: its spread exceeds the program-wide tolerance.
    let (s, tol) = at("grad.x", 28);
    assert!(s > tol, "{s} vs {tol}");
    // The forward total does not: its spread stays well inside it.
    let (s, tol) = at("total", 0);
    assert!(s < tol / 4.0, "{s} vs {tol}");
    let Some(rt) = rt() else { return };
    assert_gpu_matches(rt, &d, &ins);
}

#[test]
fn a_function_and_four_derivatives_in_one_pair_of_kernels_match_the_interpreter() {
    let Some(rt) = rt() else { return };
    let n = 1 << 16;
    let text = format!(
        "%x = input x : f32[{n}]\n%t = tanh %x : f32[{n}]\n%s = sin %x : f32[{n}]\n%p = mul %t, %s : f32[{n}]\n%f = reduce_sum %p axes=[0] : f32[]\noutput f = %f\n"
    );
    let g = wgrad::batch::directional(&wgrad::parse(&text).unwrap(), None, "x", 4).unwrap();
    let program = wgrad::compile(&g, &Options::new(rt.target().clone())).unwrap();
    assert_eq!(program.stats.kernels, 2);
    let mut rng = Rng::new(7);
    let ins = inputs(vec![
        ("x", rng.tensor(&[n], -2.0, 2.0)),
        ("tan.x", rng.tensor(&[n], -1.0, 1.0)),
    ]);
    assert_gpu_matches(rt, &g, &ins);
}

#[test]
fn an_elementwise_gradient_beside_its_loss_matches_the_interpreter() {
    let Some(rt) = rt() else { return };
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[256])).unwrap();
    let mut v = x;
    for i in 0..40 {
        v = match i % 4 {
            0 => b.tanh(v),
            1 => b.sin(v),
            2 => b.exp(v),
            _ => b.cos(v),
        }
        .unwrap();
    }
    let loss = b.sum_all(v).unwrap();
    b.output("loss", loss).unwrap();
    let d = wgrad::grad(&b.finish().unwrap(), None, &["x"]).unwrap();
    let program = wgrad::compile(&d, &Options::new(rt.target().clone())).unwrap();
    assert_eq!(program.stats.residual_bytes, 0);
    let mut rng = Rng::new(40);
    let ins = inputs(vec![("x", rng.tensor(&[256], -1.0, 1.0))]);
    assert_gpu_matches(rt, &d, &ins);
}

#[test]
fn lgamma_and_digamma_hold_their_documented_accuracy() {
    // On (0, 1e4] and at negative non-integers, within 4e-6·(1 + |exact|) of the f64
    // values; at the poles lgamma is +inf and digamma NaN, on both sides.
    let Some(rt) = rt() else { return };
    let mut xs: Vec<f64> = (1..=400).map(|k| k as f64 * 0.025).collect(); // (0, 10]
    xs.extend((1..=200).map(|k| 10.0 * 1.04f64.powi(k))); // (10, 1e4]
    xs.extend([-0.5, -1.5, -2.25, -3.7, 1e-3, 0.999, 1.001, 1.999, 2.001]);
    let xs: Vec<f64> = xs
        .into_iter()
        .filter(|x| *x <= 1e4)
        .map(|x| x as f32 as f64)
        .collect();
    let n = xs.len();
    let mut b = Builder::new();
    let x = b.input("x", Type::f32(&[n])).unwrap();
    let l = b.lgamma(x).unwrap();
    let d = b.digamma(x).unwrap();
    b.output("l", l).unwrap();
    b.output("d", d).unwrap();
    let g = b.finish().unwrap();
    let program = wgrad::compile(&g, &Options::new(rt.target().clone())).unwrap();
    let mut exe = rt.load(&program).unwrap();
    let ins = inputs(vec![(
        "x",
        Tensor::new(Type::f32(&[n]), xs.clone()).unwrap(),
    )]);
    let got = exe.run(&ins).unwrap();
    let exact_values = wgrad::eval(&g, &ins).unwrap();
    let mut worst: f64 = 0.0;
    for (k, &xv) in xs.iter().enumerate() {
        for j in 0..2 {
            let exact = exact_values[j].1.data[k];
            let err = (got[j].1.data[k] - exact).abs() / (1.0 + exact.abs());
            worst = worst.max(err);
            assert!(
                err <= 4e-6,
                "{}({xv}) = {} on the device, {exact} exact",
                got[j].0,
                got[j].1.data[k]
            );
        }
    }
    eprintln!("worst error of lgamma and digamma, relative to 1 + |exact|: {worst:.2e}");
    let poles = inputs(vec![(
        "x",
        Tensor::new(Type::f32(&[n]), (0..n).map(|k| -((k % 4) as f64)).collect()).unwrap(),
    )]);
    let got = exe.run(&poles).unwrap();
    assert!(got[0].1.data.iter().all(|v| *v == f64::INFINITY));
    assert!(got[1].1.data.iter().all(|v| v.is_nan()));
    let want = wgrad::eval(&g, &poles).unwrap();
    assert!(want[0].1.data.iter().all(|v| *v == f64::INFINITY));
    assert!(want[1].1.data.iter().all(|v| v.is_nan()));
}

#[test]
fn dense_literals_and_triangular_factors_match_the_interpreter() {
    let Some(rt) = rt() else { return };
    let g = wgrad::parse(
        "%x = input x : f32[2,3]\n%t = constant [[1, -0.5, inf], [2, 3, -0]] : f32[2,3]\n%y = mul %x, %t : f32[2,3]\n%i = constant [2, -2147483648, 0] : i32[3]\n%u = constant [[true, false, true]] : bool[1,3]\n%d = input diag : f32[4,3]\n%l = input lower : f32[4,3]\noutput y = %y\noutput i = %i\noutput u = %u\noutput d = %d\noutput l = %l\n",
    )
    .unwrap();
    let mut b = Builder::from_graph(g);
    let (d, l) = (
        b.graph().input("diag").unwrap(),
        b.graph().input("lower").unwrap(),
    );
    let q = b.lower_triangular(d, l).unwrap();
    b.output("q", q).unwrap();
    let g = b.finish().unwrap();
    let mut rng = Rng::new(3);
    let ins = inputs(vec![
        ("x", rng.tensor(&[2, 3], 0.5, 1.0)),
        ("diag", rng.tensor(&[4, 3], -1.0, 1.0)),
        ("lower", rng.tensor(&[4, 3], -1.0, 1.0)),
    ]);
    // Literals are buffers the runtime fills at load, not arrays in the shaders.
    let program = wgrad::compile(&g, &Options::new(rt.target().clone())).unwrap();
    let constants = program
        .buffers
        .iter()
        .filter(|b| matches!(b.role, wgrad::lower::BufferRole::Constant(_)))
        .count();
    assert!(constants >= 3, "{constants} constant buffers");
    assert!(
        program
            .kernels
            .iter()
            .all(|k| !k.wgsl.contains("array<u32, "))
    );
    let got = assert_gpu_matches(rt, &g, &ins);
    // Q[k] = [[d0, 0, 0], [l0, d1, 0], [l1, l2, d2]]: the lower entries column by column.
    let q = &got.iter().find(|(n, _)| n == "q").unwrap().1;
    assert_eq!(q.ty, Type::f32(&[4, 3, 3]));
    let (dg, lw) = (&ins["diag"].data, &ins["lower"].data);
    let f = |x: f64| x as f32 as f64;
    for k in 0..4 {
        let want = [
            dg[3 * k],
            0.0,
            0.0,
            lw[3 * k],
            dg[3 * k + 1],
            0.0,
            lw[3 * k + 1],
            lw[3 * k + 2],
            dg[3 * k + 2],
        ];
        let row: Vec<f64> = q.data[9 * k..9 * k + 9].to_vec();
        assert_eq!(row, want.map(f).to_vec(), "component {k}");
    }
}

#[test]
fn tanh_keeps_its_digits_near_zero_on_the_device() {
    let Some(rt) = rt() else { return };
    // Drivers that compute tanh from exponentials return 0 for tanh(1e-8); the
    // kernels' tanh is within a few f32 ulp of the f64 value everywhere, and keeps the
    // ordering of tiny values (a minimum's gradient goes to the true argmin).
    let xs = [
        1e-30, -1e-8, 1e-7, 3e-6, -1e-5, 1e-3, 0.01, -0.05, 0.0626, 0.3, -0.5499, 0.5501, 0.7,
        -1.0, 4.0, 8.99, 9.5, -30.0,
    ];
    let n = xs.len();
    let g = wgrad::parse(&format!(
        "%x = input x : f32[{n}]\n%t = tanh %x : f32[{n}]\noutput t = %t\n"
    ))
    .unwrap();
    let program = wgrad::compile(&g, &Options::new(rt.target().clone())).unwrap();
    let ins = inputs(vec![(
        "x",
        Tensor::new(
            Type::f32(&[n]),
            xs.iter().map(|&x| x as f32 as f64).collect(),
        )
        .unwrap(),
    )]);
    let got = rt.load(&program).unwrap().run(&ins).unwrap();
    for (x, t) in xs.iter().zip(&got[0].1.data) {
        let want = (*x as f32 as f64).tanh();
        assert!(
            (t - want).abs() <= 4.0 * f64::from(f32::EPSILON) * want.abs(),
            "tanh({x}): device {t}, f64 {want}"
        );
    }
}

#[test]
fn products_split_along_k_match_the_interpreter() {
    let Some(rt) = rt() else { return };
    // Each part computes the product over its share of K; a second kernel adds the
    // parts and applies the epilogue. Every operand layout, K a multiple of 4 or not,
    // a batch, an epilogue, and (without a batch) A computed as it is loaded (a shared
    // weight's sum).
    let mut rng = Rng::new(21);
    for (lhs_contract, rhs_contract) in [(1, 0), (1, 1), (0, 0), (0, 1)] {
        for (batch, m, k, n) in [(1, 20, 1100, 12), (1, 9, 1027, 40), (3, 8, 1024, 8)] {
            let nb = usize::from(batch > 1);
            let shape = |x: usize, y: usize| {
                let mut s = if batch > 1 { vec![batch] } else { vec![] };
                s.extend([x, y]);
                s
            };
            let lhs = if lhs_contract == 1 {
                shape(m, k)
            } else {
                shape(k, m)
            };
            let rhs = if rhs_contract == 0 {
                shape(k, n)
            } else {
                shape(n, k)
            };
            let mut b = Builder::new();
            let a1 = b.input("a1", Type::f32(&lhs)).unwrap();
            let mut ins = vec![("a1", rng.tensor(&lhs, -1.0, 1.0))];
            let a = if batch == 1 {
                let a2 = b.input("a2", Type::f32(&lhs)).unwrap();
                ins.push(("a2", rng.tensor(&lhs, -1.0, 1.0)));
                b.add(a1, a2).unwrap()
            } else {
                a1
            };
            let c = b.input("b", Type::f32(&rhs)).unwrap();
            ins.push(("b", rng.tensor(&rhs, -1.0, 1.0)));
            let dims = wgrad::ir::DotDims {
                lhs_batch: (0..nb).collect(),
                rhs_batch: (0..nb).collect(),
                lhs_contract: vec![lhs_contract + nb],
                rhs_contract: vec![rhs_contract + nb],
            };
            let y = b.dot(a, c, dims).unwrap();
            let t = b.tanh(y).unwrap();
            b.output("t", t).unwrap();
            let g = b.finish().unwrap();
            let tiling = wgrad::lower::Tiling {
                a_transposed: lhs_contract == 0,
                b_transposed: rhs_contract == 1,
                m,
                n,
                k,
                batch,
            };
            let ins = inputs(ins);
            for parts in wgrad::lower::SPLITS {
                let mut target = rt.target().clone();
                target.tuning.splits = vec![(tiling, parts)];
                let program = wgrad::compile(&g, &Options::new(target.clone())).unwrap();
                let fold = format!("adding the {parts} partial products");
                assert!(
                    program.kernels.iter().any(|k| k.variant == "reduce_final"
                        && k.wgsl.lines().next().unwrap().contains(&fold)),
                    "{tiling} in {parts} parts: {:?}",
                    program.kernels.iter().map(|k| &k.name).collect::<Vec<_>>()
                );
                assert_gpu_matches_for(rt, &target, &g, &ins);
            }
        }
    }
}
