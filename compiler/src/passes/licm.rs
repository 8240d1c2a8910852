//! Loop-invariant code motion: work in a loop body that depends on no carried value and
//! not on the index is computed once, before the loop, and enters the body as one more
//! invariant operand.
//!
//! This is what makes differentiating *after* optimizing pay: Enzyme's normalize
//! recomputes `sqrt(Σ x·x)` in every iteration; hoisted, the norm is computed once and
//! its derivative is taken once, so the gradient stays O(N) rather than O(N²). The pass
//! runs in [`super::optimize`], before differentiation. Constants and iotas stay in the
//! body (they cost nothing there); everything else that is invariant moves out, and
//! only the invariant values the rest of the body reads (the *frontier*) become new
//! operands. Nested loops are treated from the inside out.

use crate::error::{Error, Result};
use crate::ir::{Builder, Graph, Op, OpClass, Side, Value};

/// Hoists loop-invariant work out of every loop. Returns whether anything moved.
pub fn run(graph: &mut Graph) -> Result<bool> {
    if !has_work(graph) {
        return Ok(false);
    }
    *graph = super::rewrite::rebuild_loops(graph, |b, g, node, args| {
        let (trips, carried, body) = node
            .op
            .as_loop()
            .ok_or_else(|| Error::Compile("not a loop".into()))?;
        hoist(b, g.region(body), trips, carried, args, node.side)
    })?;
    Ok(true)
}

/// What [`run`] would hoist, one line per loop that has invariant work: the loop, its
/// trip count, and each value computed once before it instead of every iteration.
/// Loops nested in bodies are named by their body's numbering.
pub fn explain(g: &Graph) -> Vec<String> {
    let mut lines = Vec::new();
    for v in g.values() {
        let Some((trips, carried, body)) = g.node(v).op.as_loop() else {
            continue;
        };
        let body = g.region(body);
        let a = analyze(body, carried);
        let hoisted: Vec<String> = body
            .values()
            .filter(|x| a.hoisted[x.index()])
            .map(|x| format!("{x} {} {}", body.node(x).op.name(), body.ty(x)))
            .collect();
        if !hoisted.is_empty() {
            lines.push(format!(
                "loop {v} ({trips} iterations) hoists its body values {}: they read no carried value and not the index, so they are computed once, before the loop",
                hoisted.join(", ")
            ));
        }
        lines.extend(
            explain(body)
                .into_iter()
                .map(|l| format!("  in the body of {v}: {l}")),
        );
    }
    lines
}

/// Whether any loop of `g`, at any depth, has work to hoist.
fn has_work(g: &Graph) -> bool {
    g.nodes.iter().any(|node| match &node.op {
        Op::Loop { body, carried, .. } => {
            let body = g.region(*body);
            has_work(body) || analyze(body, *carried as usize).frontier.iter().any(|&f| f)
        }
        _ => false,
    })
}

/// What a loop body computes per iteration and what it could compute once.
struct Analysis {
    /// Whether the value depends on the index or a carried value.
    variant: Vec<bool>,
    /// Whether the value moves before the loop: invariant, and neither an input nor a
    /// constant.
    hoisted: Vec<bool>,
    /// Whether a hoisted value is read by the body that stays (or is an output), and so
    /// becomes an operand of the loop.
    frontier: Vec<bool>,
}

fn analyze(body: &Graph, carried: usize) -> Analysis {
    let n = body.len();
    let mut variant = vec![false; n];
    let mut hoisted = vec![false; n];
    for (i, node) in body.nodes.iter().enumerate() {
        variant[i] = match &node.op {
            // Inputs: the index, then the carried values, then the invariants.
            Op::Input { index } => (*index as usize) <= carried,
            // A loop nested in the body stays there, whatever it reads.
            Op::Loop { .. } | Op::Get { .. } => true,
            _ => node.args.iter().any(|a| variant[a.index()]),
        };
        hoisted[i] = !variant[i] && !matches!(node.op.class(), OpClass::Input | OpClass::Generated);
    }
    let mut frontier = vec![false; n];
    for (i, node) in body.nodes.iter().enumerate() {
        if variant[i] {
            for a in &node.args {
                frontier[a.index()] |= hoisted[a.index()];
            }
        }
    }
    for (_, v) in &body.outputs {
        frontier[v.index()] |= hoisted[v.index()];
    }
    Analysis {
        variant,
        hoisted,
        frontier,
    }
}

/// The loop over `body` with operands `args` (carried values, then invariants), its
/// invariant work computed before it in `b`; returns its final carried values.
fn hoist(
    b: &mut Builder,
    body: &Graph,
    trips: u32,
    carried: usize,
    args: &[Value],
    side: Side,
) -> Result<Vec<Value>> {
    let a = analyze(body, carried);
    // Before the loop: every hoisted value (and the constants they read), with the
    // body's invariant inputs bound to the loop's invariant operands.
    let mut outside: Vec<Option<Value>> = vec![None; body.len()];
    for (i, node) in body.nodes.iter().enumerate() {
        outside[i] = match &node.op {
            Op::Input { index } if !a.variant[i] => Some(args[*index as usize - 1]),
            _ if a.hoisted[i] || (!a.variant[i] && node.op.class() == OpClass::Generated) => {
                b.set_side(node.side);
                let operands = mapped(&outside, &node.args)?;
                Some(b.push(node.op.clone(), &operands)?)
            }
            _ => None,
        };
    }
    b.set_side(side);
    let frontier: Vec<usize> = (0..body.len()).filter(|&i| a.frontier[i]).collect();
    let mut invariants: Vec<Value> = args[carried..].to_vec();
    let old_invariants = invariants.len();
    invariants.extend(frontier.iter().filter_map(|&i| outside[i]));
    b.loop_(
        trips,
        &args[..carried],
        &invariants,
        |inner, i, params, inv| {
            // The body that stays: variant values, the constants they read, and the
            // hoisted values they read as new inputs.
            let mut inputs = vec![i];
            inputs.extend(params);
            inputs.extend(&inv[..old_invariants]);
            let mut map: Vec<Option<Value>> = vec![None; body.len()];
            for (k, &f) in frontier.iter().enumerate() {
                map[f] = Some(inv[old_invariants + k]);
            }
            for (j, node) in body.nodes.iter().enumerate() {
                if map[j].is_some() || a.hoisted[j] {
                    continue;
                }
                inner.set_side(node.side);
                map[j] = Some(match &node.op {
                    Op::Input { index } => inputs[*index as usize],
                    Op::Loop {
                        trips,
                        carried,
                        body: nested,
                    } => {
                        // A nested loop's own result is a tuple; its `get`s read it.
                        let operands = mapped(&map, &node.args)?;
                        let finals = hoist(
                            inner,
                            body.region(*nested),
                            *trips,
                            *carried as usize,
                            &operands,
                            node.side,
                        )?;
                        nested_results(&mut map, body, j, &finals);
                        continue;
                    }
                    op => {
                        let operands = mapped(&map, &node.args)?;
                        inner.push(op.clone(), &operands)?
                    }
                });
            }
            let outputs: Vec<Value> = body.outputs.iter().map(|(_, v)| *v).collect();
            mapped(&map, &outputs)
        },
    )
}

/// The values `map` gives `xs`; an error (a compiler bug) for one it does not give.
fn mapped(map: &[Option<Value>], xs: &[Value]) -> Result<Vec<Value>> {
    xs.iter()
        .map(|x| {
            map[x.index()]
                .ok_or_else(|| Error::Internal(format!("loop-invariant code motion lost {x}")))
        })
        .collect()
}

/// Binds the `get`s of the nested loop at `j` in `body` to the loop's final values.
fn nested_results(map: &mut [Option<Value>], body: &Graph, j: usize, finals: &[Value]) {
    for (k, node) in body.nodes.iter().enumerate().skip(j + 1) {
        if let Op::Get { index } = node.op
            && node.args[0].index() == j
        {
            map[k] = finals.get(index as usize).copied();
        }
    }
}
