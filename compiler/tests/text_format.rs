//! The text format: printing and parsing round-trip, and bad text gives located errors.
//!
//! Random graphs built with the [`Builder`] must print, parse back to the same graph and
//! print identically; random and mutated text must parse or fail, never panic; each kind
//! of mistake is reported at its line and column with a message saying what was expected.

mod common;

use common::Rng;
use proptest::prelude::*;
use wgrad_compiler::Result;
use wgrad_compiler::ir::{
    BinaryOp, Builder, CmpOp, DType, DotDims, Graph, Op, ReduceKind, Scalar, Type, UnaryOp, Value,
    parse, print, verify,
};

// ---- Helpers ----------------------------------------------------------------------

/// Parses `input`, checks that it verifies, and compares its canonical print with `expect`.
fn check(input: &str, expect: &str) {
    let graph = match parse(input) {
        Ok(g) => g,
        Err(e) => panic!("parse failed at {e}\n{input}"),
    };
    verify(&graph).expect("a parsed graph verifies");
    assert_eq!(print(&graph), expect);
}

/// Parses `input`, expecting an error at `line:column` whose message contains each of
/// `parts`.
fn check_err(input: &str, line: usize, column: usize, parts: &[&str]) {
    let e = match parse(input) {
        Ok(g) => panic!("expected an error, parsed:\n{}", print(&g)),
        Err(e) => e,
    };
    assert_eq!(
        (e.line, e.column),
        (line, column),
        "wrong position for `{}`",
        e.message
    );
    for part in parts {
        assert!(
            e.message.contains(part),
            "message `{}` lacks `{part}`",
            e.message
        );
    }
}

/// The proptest configuration: `PROPTEST_CASES` if set, otherwise a quick 64 cases.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 64;
    }
    config
}

// ---- Random graphs ----------------------------------------------------------------

fn random_dtype(r: &mut Rng) -> DType {
    match r.below(10) {
        0..=5 => DType::F32,
        6 | 7 => DType::I32,
        8 => DType::U32,
        _ => DType::Bool,
    }
}

fn random_shape(r: &mut Rng) -> Vec<usize> {
    let rank = r.below(4);
    (0..rank)
        .map(|_| if r.chance(5) { 0 } else { 1 + r.below(4) })
        .collect()
}

/// A literal of `dtype`, favoring edge cases: NaN, infinities, signed zero, subnormals.
fn random_scalar(r: &mut Rng, dtype: DType) -> Scalar {
    match dtype {
        DType::F32 => {
            let x = match r.below(16) {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => f64::NEG_INFINITY,
                3 => -0.0,
                4 => 5e-324,
                5 => f64::MIN_POSITIVE,
                6 => -3e-7,
                7 => 1e300,
                8 => f64::MAX,
                9 => 0.1,
                10 => 2.0,
                11 => -1.5,
                _ => {
                    // Any bit pattern; NaN payloads do not survive text, so use NaN itself.
                    let x = f64::from_bits(r.next_u64());
                    if x.is_nan() { f64::NAN } else { x }
                }
            };
            Scalar::float(x)
        }
        DType::I32 => Scalar::Int(match r.below(4) {
            0 => i32::MIN,
            1 => i32::MAX,
            _ => r.next_u64() as i32 % 100,
        }),
        DType::U32 => Scalar::Uint(if r.chance(25) {
            u32::MAX
        } else {
            r.next_u64() as u32 % 100
        }),
        DType::Bool => Scalar::Bool(r.chance(50)),
    }
}

/// A value of exactly type `ty`: an existing one from `pool`, or a new constant.
fn partner(b: &mut Builder, pool: &[Value], r: &mut Rng, ty: &Type) -> Result<Value> {
    let same: Vec<Value> = pool.iter().copied().filter(|&v| b.ty(v) == ty).collect();
    if !same.is_empty() && r.chance(70) {
        return Ok(r.pick(&same));
    }
    let value = random_scalar(r, ty.dtype);
    b.constant(value, &ty.shape)
}

/// An integer index tensor of `shape`.
fn indices(b: &mut Builder, r: &mut Rng, shape: &[usize]) -> Result<Value> {
    let dtype = if r.chance(50) { DType::I32 } else { DType::U32 };
    if shape.is_empty() {
        return b.constant(Scalar::of(dtype, r.below(4) as f64), &[]);
    }
    b.iota(dtype, shape, r.below(shape.len()))
}

/// One random builder step over `pool`, returning the new values. Type errors (an op
/// applied to an unsuitable operand) are expected and simply skip the step.
fn step(b: &mut Builder, pool: &[Value], r: &mut Rng, depth: usize) -> Result<Vec<Value>> {
    let a = r.pick(pool);
    let ty = b.ty(a).clone();
    let rank = ty.rank();
    let v = match r.below(if depth < 2 { 21 } else { 20 }) {
        0 => b.push(Op::Unary(r.pick(&UnaryOp::ALL)), &[a])?,
        1 => {
            let c = partner(b, pool, r, &ty)?;
            b.push(Op::Binary(r.pick(&BinaryOp::ALL)), &[a, c])?
        }
        2 => {
            // The builder broadcasts a scalar partner with explicit nodes.
            let c = b.constant(random_scalar(r, ty.dtype), &[])?;
            b.binary(r.pick(&BinaryOp::ALL), a, c)?
        }
        3 => {
            let c = partner(b, pool, r, &ty)?;
            b.push(Op::Compare(r.pick(&CmpOp::ALL)), &[a, c])?
        }
        4 => {
            let c = partner(b, pool, r, &ty)?;
            let cond = b.lt(a, c)?;
            b.select(cond, a, c)?
        }
        5 => b.cast(a, random_dtype(r))?,
        6 => {
            let at = r.below(rank + 1);
            let mut shape: Vec<usize> = ty
                .shape
                .iter()
                .map(|&d| {
                    if d == 1 && r.chance(50) {
                        1 + r.below(3)
                    } else {
                        d
                    }
                })
                .collect();
            shape.insert(at, 1 + r.below(3));
            let dims: Vec<usize> = (0..rank + 1).filter(|&i| i != at).collect();
            b.broadcast_in_dim(a, &shape, &dims)?
        }
        7 => {
            let shape: Vec<usize> = match r.below(3) {
                0 => vec![ty.numel()],
                1 => ty.shape.iter().rev().copied().collect(),
                _ => [vec![1], ty.shape.clone()].concat(),
            };
            b.push(Op::Reshape { shape }, &[a])?
        }
        8 => {
            let mut perm: Vec<usize> = (0..rank).collect();
            for i in (1..rank).rev() {
                perm.swap(i, r.below(i + 1));
            }
            b.transpose(a, &perm)?
        }
        9 => {
            let start: Vec<usize> = ty.shape.iter().map(|&d| r.below(d + 1)).collect();
            let limit: Vec<usize> = ty
                .shape
                .iter()
                .zip(&start)
                .map(|(&d, &s)| s + r.below(d - s + 1))
                .collect();
            b.slice(a, &start, &limit)?
        }
        10 => {
            let c = partner(b, pool, r, &ty)?;
            let xs = [a, c, a];
            b.concat(&xs[..1 + r.below(3)], r.below(rank.max(1)))?
        }
        11 => {
            let low: Vec<usize> = (0..rank).map(|_| r.below(3)).collect();
            let high: Vec<usize> = (0..rank).map(|_| r.below(3)).collect();
            b.pad(a, &low, &high, random_scalar(r, ty.dtype))?
        }
        12 => {
            let axes: Vec<usize> = (0..rank).filter(|_| r.chance(50)).collect();
            b.reduce(r.pick(&ReduceKind::ALL), a, &axes)?
        }
        13 => {
            // Each axis of `a` is a batch, contracted or free axis of a product with a
            // partner of the same type.
            let c = partner(b, pool, r, &ty)?;
            let mut dims = DotDims::default();
            for axis in 0..rank {
                match r.below(3) {
                    0 => dims.lhs_batch.push(axis),
                    1 => dims.lhs_contract.push(axis),
                    _ => {}
                }
            }
            dims.rhs_batch = dims.lhs_batch.clone();
            dims.rhs_contract = dims.lhs_contract.clone();
            b.dot(a, c, dims)?
        }
        14 => {
            let shape = random_shape(r);
            let dtype = r.pick(&[DType::F32, DType::I32, DType::U32]);
            b.iota(dtype, &shape, r.below(shape.len().max(1)))?
        }
        15 => {
            let idx = indices(b, r, &ty.shape)?;
            b.one_hot(idx, r.below(4), random_dtype(r))?
        }
        16 => {
            let axis = r.below(rank.max(1));
            let mut shape = ty.shape.clone();
            if let Some(d) = shape.get_mut(axis) {
                *d = r.below(4);
            }
            let idx = indices(b, r, &shape)?;
            b.gather(a, idx, axis)?
        }
        17 => {
            let idx = indices(b, r, &ty.shape)?;
            b.scatter_add(a, idx, r.below(rank.max(1)), r.below(5))?
        }
        18 => b.stop_gradient(a)?,
        19 => {
            let shape = random_shape(r);
            let dtype = random_dtype(r);
            b.constant(random_scalar(r, dtype), &shape)?
        }
        _ => return random_loop(b, pool, r, depth),
    };
    Ok(vec![v])
}

/// A loop over one or two carried values and maybe an invariant, whose body is itself a
/// few random steps (possibly another loop).
fn random_loop(b: &mut Builder, pool: &[Value], r: &mut Rng, depth: usize) -> Result<Vec<Value>> {
    let carried: Vec<Value> = (0..1 + r.below(2)).map(|_| r.pick(pool)).collect();
    let invariants: Vec<Value> = (0..r.below(2)).map(|_| r.pick(pool)).collect();
    let trips = r.below(4) as u32;
    let seeds: Vec<u64> = (0..1 + r.below(4)).map(|_| r.next_u64()).collect();
    b.loop_(trips, &carried, &invariants, |inner, i, params, inv| {
        let mut pool: Vec<Value> = [i].iter().chain(params).chain(inv).copied().collect();
        for &seed in &seeds {
            if let Ok(vs) = step(inner, &pool, &mut Rng::new(seed), depth + 1) {
                pool.extend(vs);
            }
        }
        // Each next carried value is the latest of its type, or the value unchanged.
        Ok(params
            .iter()
            .map(|&p| {
                let ty = inner.ty(p);
                pool.iter()
                    .rev()
                    .copied()
                    .find(|&v| inner.ty(v) == ty)
                    .unwrap_or(p)
            })
            .collect())
    })
}

/// A graph of one to three inputs and the given random steps, with two outputs.
fn random_graph(seed: u64, steps: &[u64]) -> Graph {
    let mut r = Rng::new(seed);
    let mut b = Builder::new();
    let mut pool = Vec::new();
    for i in 0..1 + r.below(3) {
        let ty = Type::new(random_dtype(&mut r), &random_shape(&mut r));
        pool.push(b.input(&format!("in{i}"), ty).expect("a fresh input"));
    }
    for &s in steps {
        if let Ok(vs) = step(&mut b, &pool, &mut Rng::new(s), 0) {
            pool.extend(vs);
        }
    }
    let last = pool[pool.len() - 1];
    b.output("out", last).expect("a fresh output");
    b.output("aux.0", r.pick(&pool)).expect("a fresh output");
    b.finish().expect("a built graph verifies")
}

fn graphs() -> impl Strategy<Value = Graph> {
    (any::<u64>(), prop::collection::vec(any::<u64>(), 0..24))
        .prop_map(|(seed, steps)| random_graph(seed, &steps))
}

/// Applies edits to `text`: delete, insert or replace a character, or truncate.
fn mutate(text: &str, edits: &[(u8, usize, char)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for &(kind, at, c) in edits {
        let at = at % (chars.len() + 1);
        match kind % 4 {
            0 if at < chars.len() => {
                chars.remove(at);
            }
            1 => chars.insert(at, c),
            2 if at < chars.len() => chars[at] = c,
            3 => chars.truncate(at),
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// Characters that matter to the format, plus a few that never do.
fn interesting_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec![
            '%', '=', ',', ':', '[', ']', '{', '}', '(', ')', '#', '\n', ' ', '0', '1', '9',
            '-', '+', '.', 'e', 'x', '_',
        ]),
        1 => any::<char>(),
    ]
}

/// Whatever `text` is, parsing returns; an accepted program verifies and prints to a
/// fixpoint.
fn parses_or_fails_cleanly(text: &str) -> std::result::Result<(), TestCaseError> {
    if let Ok(g) = parse(text) {
        prop_assert!(verify(&g).is_ok());
        let printed = print(&g);
        let again = parse(&printed).map_err(|e| TestCaseError::fail(format!("{e}\n{printed}")))?;
        prop_assert_eq!(print(&again), printed);
    }
    Ok(())
}

// ---- Properties -------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Printing is a fixpoint of parsing, and parsing restores the graph exactly.
    #[test]
    fn random_graphs_round_trip(g in graphs()) {
        let text = print(&g);
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(print(&parsed), text);
        // Builder graphs store regions in order of appearance, as the parser does.
        prop_assert_eq!(parsed, g);
    }

    /// Mutated programs parse or fail with an error; they never panic.
    #[test]
    fn mutated_programs_never_panic(
        g in graphs(),
        edits in prop::collection::vec((any::<u8>(), any::<usize>(), interesting_char()), 1..6),
    ) {
        parses_or_fails_cleanly(&mutate(&print(&g), &edits))?;
    }

    /// Random text over the format's alphabet never makes the parser panic.
    #[test]
    fn random_text_never_panics(
        text in "([%=,:\\[\\]{}() \n#_.+-]|[0-9]|[a-z]|%[0-9]|f32\\[|loop|input|output){0,60}",
    ) {
        parses_or_fails_cleanly(&text)?;
    }

    /// Arbitrary Unicode text never makes the parser panic.
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        parses_or_fails_cleanly(&text)?;
    }
}

// ---- Programs ---------------------------------------------------------------------

const MATMUL: &str = "\
%0 = input x : f32[4,3]
%1 = input w : f32[3,2]
%2 = dot %0, %1 lhs_batch=[] rhs_batch=[] lhs_contract=[1] rhs_contract=[0] : f32[4,2]
%3 = constant 0.5 : f32[4,2]
%4 = mul %2, %3 : f32[4,2]
%5 = reduce_sum %4 axes=[0,1] : f32[]
output loss = %5
";

const LOOP: &str = "\
%0 = input a : f32[3]
%1 = input b : f32[3]
%2 = input s : f32[]
%3 = exp %0 : f32[3]
%4 = neg %2 : f32[]
%5 = constant 0.0 : f32[3]
%6 = loop %3, %4, %1 trips=10 carried=2 {
  %0 = input i : i32[]
  %1 = input c0 : f32[3]
  %2 = input c1 : f32[]
  %3 = input x0 : f32[3]
  %4 = add %1, %3 : f32[3]
  output c0 = %4
  output c1 = %2
} : (f32[3], f32[])
%7 = get %6 index=0 : f32[3]
%8 = get %6 index=1 : f32[]
output y = %7
output z = %8
";

#[test]
fn canonical_programs_print_back_identically() {
    check(MATMUL, MATMUL);
    check(LOOP, LOOP);
}

#[test]
fn loop_program_builds_a_region_with_its_own_scope() {
    let g = parse(LOOP).expect("the loop program parses");
    verify(&g).expect("the loop program verifies");
    assert_eq!(g.regions().len(), 1);
    let body = &g.regions()[0];
    assert_eq!(body.inputs().len(), 4);
    assert_eq!(body.outputs().len(), 2);
    assert!(matches!(
        g.node(Value(6)).op,
        Op::Loop {
            trips: 10,
            carried: 2,
            ..
        }
    ));
}

#[test]
fn nested_loops_print_indented() {
    let text = "\
%0 = input x : f32[]
%1 = loop %0 trips=2 carried=1 {
  %0 = input i : i32[]
  %1 = input c0 : f32[]
  %2 = loop %1 trips=3 carried=1 {
    %0 = input i : i32[]
    %1 = input c0 : f32[]
    %2 = sin %1 : f32[]
    output c0 = %2
  } : (f32[])
  %3 = get %2 index=0 : f32[]
  output c0 = %3
} : (f32[])
%2 = get %1 index=0 : f32[]
output y = %2
";
    check(text, text);
}

#[test]
fn comments_free_spacing_and_any_value_names_are_accepted() {
    // Value names are kept (as debug names); spacing is canonical; comments go.
    check(
        "# a comment line\n\
         \n\
         %x = input x : f32[2]   # trailing comment\n\
         %y.1=  exp   %x :f32[ 2 ]\n\
         output early = %x\n\
         %_z = add %y.1 ,%x : f32[2]\n\
         output late = %_z\n",
        "%x = input x : f32[2]\n\
         %y.1 = exp %x : f32[2]\n\
         %_z = add %y.1, %x : f32[2]\n\
         output early = %x\n\
         output late = %_z\n",
    );
    // Positions are not names: `%7` prints as the value's index.
    check(
        "%7 = input x : f32[2]\n%3 = exp %7 : f32[2]\noutput y = %3\n",
        "%0 = input x : f32[2]\n%1 = exp %0 : f32[2]\noutput y = %1\n",
    );
}

#[test]
fn value_names_survive_differentiation_and_duplicates_print_apart() {
    use wgrad_compiler::autodiff::grad;
    let f = parse(
        "%x = input x : f32[3]\n%w = input w : f32[3]\n%h = mul %x, %w : f32[3]\n\
         %t = tanh %h : f32[3]\n%loss = reduce_sum %t axes=[0] : f32[]\noutput loss = %loss\n",
    )
    .unwrap();
    let df = grad(&f, None, &["w"]).unwrap();
    let printed = print(&df);
    for line in ["%h = mul %x, %w", "%t = tanh %h", "%loss = reduce_sum %t"] {
        assert!(printed.contains(line), "`{line}` missing from\n{printed}");
    }
    assert_eq!(print(&parse(&printed).unwrap()), printed);

    // An unrolled loop's body copies keep the body's names, told apart by a suffix.
    let mut g = parse(
        "%x = input x : f32[2]\n\
         %l = loop %x trips=3 carried=1 {\n  %i = input i : i32[]\n  %c = input c : f32[2]\n  \
         %n = exp %c : f32[2]\n  output c = %n\n} : (f32[2])\n\
         %y = get %l index=0 : f32[2]\noutput y = %y\n",
    )
    .unwrap();
    wgrad_compiler::passes::unroll::run_where(&mut g, |_, _| true).unwrap();
    let printed = print(&g);
    assert!(
        printed.contains("%n = exp %x")
            && printed.contains("%n.2 = exp %n :")
            && printed.contains("%n.3 = exp %n.2"),
        "{printed}"
    );
    assert_eq!(print(&parse(&printed).unwrap()), printed);
}

#[test]
fn parameters_come_from_the_annotation() {
    let text = "\
%0 = input x : f32[2,3]
%1 = reshape %0 : f32[3,2]
%2 = broadcast %1 dims=[0,1] : f32[3,2]
%3 = broadcast %2 dims=[1,2] : f32[4,3,2]
%4 = cast %3 : i32[4,3,2]
%5 = one_hot %4 depth=2 : bool[4,3,2,2]
%6 = iota axis=1 : u32[2,5]
%7 = constant -inf : f32[]
%8 = constant nan : f32[1]
%9 = constant 7 : u32[]
%10 = constant -3 : i32[2]
%11 = constant true : bool[]
%12 = constant 5e-324 : f32[]
";
    check(text, text);
    // An integer literal is accepted for a float, and prints as a float.
    check("%0 = constant 2 : f32[]\n", "%0 = constant 2.0 : f32[]\n");
}

#[test]
fn every_attribute_form_round_trips() {
    let text = "\
%0 = input x : f32[2,3]
%1 = input i : i32[2,3]
%2 = transpose %0 perm=[1,0] : f32[3,2]
%3 = slice %0 start=[0,1] limit=[2,3] : f32[2,2]
%4 = concat %0, %0, %0 axis=1 : f32[2,9]
%5 = pad %0 low=[1,0] high=[0,2] value=-0.5 : f32[3,5]
%6 = pad %1 low=[0,0] high=[1,1] value=-3 : i32[3,4]
%7 = reduce_max %0 axes=[1] : f32[2]
%8 = reduce_min %0 axes=[] : f32[2,3]
%9 = gather %0, %1 axis=1 : f32[2,3]
%10 = scatter_add %0, %1 axis=1 size=4 : f32[2,4]
%11 = ge %0, %0 : bool[2,3]
%12 = select %11, %0, %0 : f32[2,3]
%13 = stop_gradient %12 : f32[2,3]
%14 = pow %13, %0 : f32[2,3]
output y = %14
";
    check(text, text);
}

// ---- Errors -----------------------------------------------------------------------

#[test]
fn unknown_op_is_reported_at_its_mnemonic() {
    check_err(
        "%0 = input x : f32[2]\n%1 = frobnicate %0 : f32[2]\n",
        2,
        6,
        &["unknown op `frobnicate`"],
    );
}

#[test]
fn undefined_and_redefined_values() {
    check_err(
        "%0 = input x : f32[2]\n%1 = add %0, %7 : f32[2]\n",
        2,
        14,
        &["undefined value %7"],
    );
    check_err(
        "%0 = input x : f32[2]\n%0 = exp %0 : f32[2]\n",
        2,
        1,
        &["value %0 defined twice", "line 1"],
    );
    // A use before the definition is undefined too.
    check_err(
        "%1 = exp %0 : f32[2]\n%0 = input x : f32[2]\n",
        1,
        10,
        &["undefined value %0"],
    );
}

#[test]
fn a_loop_body_cannot_see_outer_values() {
    check_err(
        "%0 = input x : f32[]\n\
         %1 = loop %0 trips=1 carried=1 {\n\
         \x20 %0 = input i : i32[]\n\
         \x20 %1 = input c0 : f32[]\n\
         \x20 %a = add %1, %q : f32[]\n\
         \x20 output c0 = %a\n\
         } : (f32[])\n\
         %q = constant 1.0 : f32[]\n",
        5,
        16,
        &["undefined value %q"],
    );
}

#[test]
fn annotation_must_match_the_inferred_type() {
    check_err(
        "%0 = input x : f32[3]\n%1 = exp %0 : f32[2]\n",
        2,
        15,
        &["type annotation f32[2] does not match inferred f32[3]"],
    );
    check_err(
        "%0 = input x : f32[3]\n%1 = cast %0 : i32[2]\n",
        2,
        16,
        &["type annotation i32[2] does not match inferred i32[3]"],
    );
}

#[test]
fn inference_errors_name_the_op_and_shapes() {
    check_err(
        "%0 = input a : f32[2]\n%1 = input b : f32[3]\n%2 = add %0, %1 : f32[2]\n",
        3,
        6,
        &["`add`", "f32[2]", "f32[3]"],
    );
    check_err(
        "%0 = input a : f32[6]\n%1 = reshape %0 : f32[4]\n",
        2,
        6,
        &["`reshape`", "f32[6]", "[4]"],
    );
}

#[test]
fn bad_types_say_what_a_type_looks_like() {
    check_err(
        "%0 = input x : f64[2]\n",
        1,
        16,
        &["expected a type like f32[2,3]", "`f64`"],
    );
    check_err(
        "%0 = input x : [2]\n",
        1,
        16,
        &["expected a type like f32[2,3]", "`[`"],
    );
    check_err(
        "%0 = input x : f32[2,-1]\n",
        1,
        22,
        &["non-negative integer"],
    );
    check_err("%0 = input x : f32[99999999999]\n", 1, 20, &["too large"]);
    check_err(
        "%0 = input x : f32[4000000000,4000000000,4000000000]\n",
        1,
        16,
        &["more than wgrad counts"],
    );
}

#[test]
fn missing_punctuation_is_named() {
    check_err("%0 = input x f32[2]\n", 1, 14, &["expected `:`"]);
    check_err(
        "%0 = input x : f32[2]\n%1 exp %0 : f32[2]\n",
        2,
        4,
        &["expected `=`"],
    );
    check_err(
        "%0 = input x : f32[2]\n%1 = exp %0\n",
        2,
        12,
        &["expected `:`", "end of line"],
    );
    check_err(
        "%0 = input x : f32[2] extra\n",
        1,
        23,
        &["expected end of line", "`extra`"],
    );
}

#[test]
fn unterminated_loop_body_points_at_its_brace() {
    check_err(
        "%0 = input x : f32[]\n\
         %1 = loop %0 trips=1 carried=1 {\n\
         \x20 %0 = input i : i32[]\n\
         \x20 %1 = input c0 : f32[]\n\
         \x20 output c0 = %1\n",
        2,
        32,
        &["unterminated loop body"],
    );
    check_err("}\n", 1, 1, &["outside a loop body"]);
}

#[test]
fn attributes_are_checked() {
    let x = "%0 = input x : f32[2,3]\n";
    check_err(
        &format!("{x}%1 = transpose %0 prem=[1,0] : f32[3,2]\n"),
        2,
        19,
        &["unknown attribute `prem`", "perm"],
    );
    check_err(
        &format!("{x}%1 = transpose %0 : f32[3,2]\n"),
        2,
        19,
        &["`transpose` needs the attribute `perm=...`"],
    );
    check_err(
        &format!("{x}%1 = reduce_sum %0 axes=[0] axes=[1] : f32[2]\n"),
        2,
        29,
        &["attribute `axes` given twice"],
    );
    check_err(
        &format!("{x}%1 = exp %0 axis=1 : f32[2,3]\n"),
        2,
        13,
        &["unknown attribute `axis`", "it takes none"],
    );
    check_err(
        &format!("{x}%1 = pad %0 low=[0,0] high=[0,0] value=abc : f32[2,3]\n"),
        2,
        40,
        &["expected f32 literal"],
    );
    check_err(
        "%0 = constant 3000000000 : i32[]\n",
        1,
        15,
        &["does not fit in i32"],
    );
    check_err(
        "%0 = constant 1e999 : f32[]\n",
        1,
        15,
        &["beyond f32's range"],
    );
    // Finite in f64 but not in f32: `eval` gave 3.5e38 and the device inf.
    check_err(
        "%0 = constant 3.5e38 : f32[]\n",
        1,
        15,
        &["beyond f32's range", "inf"],
    );
    check_err(
        "%0 = constant -3.5e38 : f32[]\n",
        1,
        15,
        &["beyond f32's range"],
    );
    assert!(parse("%0 = constant 3.4e38 : f32[]\noutput y = %0\n").is_ok());
}

#[test]
fn names_and_outputs_are_checked() {
    check_err(
        "%0 = input x : f32[]\n%1 = input x : f32[]\n",
        2,
        12,
        &["input `x` declared twice"],
    );
    check_err(
        "%0 = input x : f32[]\noutput y = %0\noutput y = %0\n",
        3,
        8,
        &["output `y` declared twice"],
    );
    check_err(
        "%0 = input 1x : f32[]\n",
        1,
        12,
        &["not a valid input name"],
    );
    check_err(
        "%0 = input x : f32[]\n\
         %1 = loop %0 trips=1 carried=1 {\n\
         \x20 %0 = input i : i32[]\n\
         \x20 %1 = input c0 : f32[]\n\
         \x20 output c0 = %1\n\
         } : (f32[])\n\
         output t = %1\n",
        7,
        12,
        &["loop tuple"],
    );
}

#[test]
fn bad_characters_and_deep_nesting_are_errors() {
    check_err(
        "%0 = input x : f32[2] $\n",
        1,
        23,
        &["unexpected character `$`"],
    );
    check_err(
        "%0 = input x : f32[2]\n% = exp %0 : f32[2]\n",
        2,
        1,
        &["after `%`"],
    );
    let mut text = String::from("%c = input x : f32[]\n");
    for depth in 0..70 {
        text.push_str(&format!(
            "%l = loop %c trips=1 carried=1 {{ # level {depth}\n%i = input i : i32[]\n%c = input c0 : f32[]\n"
        ));
    }
    let e = parse(&text).expect_err("too deep");
    assert!(e.message.contains("deeper than 64"), "{e}");
    assert_eq!((e.line, e.column), (2 + 3 * 64, 32));
}

#[test]
fn adjoint_tags_round_trip() {
    // Differentiation tags the nodes it emits; the tag survives printing and parsing,
    // so a derivative program read back from text still knows its two sides.
    let text = "%0 = input x : f32[2]\n%1 = sin %0 : f32[2]\n%2 = cos %0 : f32[2] adjoint\noutput y = %1\noutput d = %2\n";
    let g = parse(text).unwrap();
    assert_eq!(g.nodes()[1].side, wgrad_compiler::ir::Side::Primal);
    assert_eq!(g.nodes()[2].side, wgrad_compiler::ir::Side::Adjoint);
    assert_eq!(print(&g), text);
    let err = parse("%0 = input x : f32[2]\n%1 = sin %0 : f32[2] backward\n").unwrap_err();
    assert!(err.message.contains("end of line"), "{err}");
}

#[test]
fn forward_mode_tags_its_nodes_tangent_and_reverse_mode_adjoint() {
    use wgrad_compiler::autodiff::{grad, jvp};
    use wgrad_compiler::ir::Side;
    let f = parse("%0 = input x : f32[2]\n%1 = sin %0 : f32[2]\n%2 = reduce_sum %1 axes=[0] : f32[]\noutput y = %2\n").unwrap();
    let sides = |g: &wgrad_compiler::ir::Graph| -> Vec<Side> {
        g.nodes()
            .iter()
            .filter(|n| !matches!(n.op, wgrad_compiler::ir::Op::Input { .. }))
            .map(|n| n.side)
            .collect()
    };
    let t = jvp(&f, None, &["x"]).unwrap();
    assert!(sides(&t).contains(&Side::Tangent) && !sides(&t).contains(&Side::Adjoint));
    let printed = print(&t);
    assert!(
        printed.contains(" tangent\n") && !printed.contains("adjoint"),
        "{printed}"
    );
    assert_eq!(print(&parse(&printed).unwrap()), printed);
    // Forward over reverse: the gradient's nodes stay adjoint, the new ones are tangent.
    let hvp = jvp(&grad(&f, None, &["x"]).unwrap(), Some("grad.x"), &["x"]).unwrap();
    assert!(sides(&hvp).contains(&Side::Tangent) && sides(&hvp).contains(&Side::Adjoint));
}

#[test]
fn dynamic_slices_and_updates_print_and_parse_back() {
    let text = "%x = input x : f32[8,4]\n\
                %i = input i : i32[]\n\
                %z = constant 0 : i32[]\n\
                %row = dynamic_slice %x, %i, %z sizes=[1,4] : f32[1,4]\n\
                %two = constant 2.0 : f32[1,4]\n\
                %d = mul %row, %two : f32[1,4]\n\
                %y = dynamic_update_slice %x, %d, %i, %z : f32[8,4]\n\
                output y = %y\n";
    let g = wgrad_compiler::ir::parse(text).unwrap();
    let printed = wgrad_compiler::ir::print(&g);
    assert_eq!(
        wgrad_compiler::ir::print(&wgrad_compiler::ir::parse(&printed).unwrap()),
        printed
    );
    assert!(
        printed.contains("dynamic_slice %x, %i, %z sizes=[1,4] : f32[1,4]"),
        "{printed}"
    );
    let e = wgrad_compiler::ir::parse(
        "%x = input x : f32[8]\n%y = dynamic_slice %x sizes=[2] : f32[2]\noutput y = %y\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("one start index per axis"), "{e}");
}

#[test]
fn dense_literals_round_trip_nested_as_their_shape() {
    check(
        "%t = constant [[1, 0], [2, 3.5]] : f32[2,2]\n%i = constant [0, -2, 2147483647] : i32[3]\n%b = constant [[[true], [false]]] : bool[1,2,1]\noutput t = %t\noutput i = %i\noutput b = %b\n",
        "%t = constant [[1.0, 0.0], [2.0, 3.5]] : f32[2,2]\n%i = constant [0, -2, 2147483647] : i32[3]\n%b = constant [[[true], [false]]] : bool[1,2,1]\noutput t = %t\noutput i = %i\noutput b = %b\n",
    );
    // The splat form is unchanged.
    check(
        "%c = constant 0.5 : f32[2]\noutput c = %c\n",
        "%c = constant 0.5 : f32[2]\noutput c = %c\n",
    );
    // The builder's literal prints in the same form, and parses back equal.
    let mut b = Builder::new();
    let t = b
        .literal(&Type::f32(&[2, 3]), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        .unwrap();
    b.output("t", t).unwrap();
    let g = b.finish().unwrap();
    let text = print(&g);
    assert!(
        text.contains("constant [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]] : f32[2,3]"),
        "{text}"
    );
    assert_eq!(parse(&text).unwrap(), g);
}

#[test]
fn dense_literals_that_disagree_with_their_type_are_errors() {
    check_err(
        "%t = constant [1, 2, 3] : f32[2,2]\n",
        1,
        15,
        &["a list of 3 elements along axis 0 of f32[2,2], which has 2"],
    );
    check_err(
        "%t = constant [[1, 2], [3]] : f32[2,2]\n",
        1,
        24,
        &["a list of 1 elements along axis 1"],
    );
    check_err(
        "%t = constant [1, 2] : f32[2,1]\n",
        1,
        16,
        &["`1` where a list along axis 1"],
    );
    check_err(
        "%t = constant [[1], [2]] : f32[2]\n",
        1,
        16,
        &["nested deeper than the 1 axes"],
    );
    check_err(
        "%t = constant [1.5, 2] : i32[2]\n",
        1,
        16,
        &["expected i32 literal"],
    );
    check_err(
        "%t = constant [1, 2 : f32[2]\n",
        1,
        21,
        &["`,` or `]` in a literal"],
    );
    check_err(
        "%t = constant [1] : f32[]\n",
        1,
        15,
        &["a list for a scalar"],
    );
    let deep = format!(
        "%t = constant {}1{} : f32[1]\n",
        "[".repeat(100),
        "]".repeat(100)
    );
    assert!(
        parse(&deep)
            .unwrap_err()
            .message
            .contains("nests deeper than 64 levels")
    );
    // The builder checks the element count too.
    let mut b = Builder::new();
    let e = b
        .literal(&Type::f32(&[2, 2]), &[1.0, 2.0, 3.0])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("a literal of 3 elements for shape [2,2], which holds 4"),
        "{e}"
    );
}
