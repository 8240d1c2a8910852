//! The row kernel: one kernel for a row group (`fuse_rows`), specialized from
//! `shaders/row.wgsl`.
//!
//! Each value the kernel computes has a *pass*: the number of reductions along the row
//! it waits for. A reduction whose operand is of pass `p` folds during pass `p` over
//! the row, and its result is available from pass `p + 1` on. Per-row values are
//! computed once between passes; per-element values are computed inside the passes
//! that need them (an exponential read by a sum in one pass and by the gradient in the
//! next is evaluated in both, rather than stored). Results other kernels read are
//! stored: per-element ones in the last pass, per-row ones at the end.
//!
//! On CPU adapters one invocation takes a row. On GPUs a workgroup of
//! `plan::ROW_THREADS` does: each invocation folds every `ROW_THREADS`-th element, and
//! after each pass the partial results are combined by a tree in workgroup memory of
//! fixed shape, so the sums are still the same from run to run.

use super::Context;
use super::expr::{Emitter, fill, reduce_parts, wgsl_type};
use crate::error::{Error, Result};
use crate::ir::{Graph, Op, Value};
use crate::lower::plan::{KernelPlan, RowPlan};
use crate::lower::program::{BufferId, Kernel};
use std::collections::HashMap;
use std::fmt::Write;

const TEMPLATE: &str = include_str!("../../../../shaders/row.wgsl");

/// The row kernel of plan `k`, as `r` says, numbered `index`.
pub fn emit(cx: &Context<'_>, k: &KernelPlan, r: &RowPlan, index: usize) -> Result<Kernel> {
    let (g, head) = (cx.g, k.root);
    let (rows, members, computed, threads) = (&r.rows, &r.members, &r.computed, r.threads);
    let reductions: Vec<Value> = computed
        .iter()
        .copied()
        .filter(|v| matches!(g.node(*v).op, Op::Reduce { .. }))
        .collect();
    let count = rows.count();
    let len = rows.len;
    let passes = passes(g, computed);
    let pass = |v: Value| passes.get(&v).copied().unwrap_or(0);
    let element_shape: Vec<usize> = rows.prefix.iter().copied().chain([len]).collect();
    let stored: Vec<(Value, BufferId)> = members
        .iter()
        .filter_map(|&m| cx.buffer_of[m.index()].map(|b| (m, b)))
        .collect();
    let (per_element, per_row): (Vec<(Value, BufferId)>, Vec<_>) = stored
        .iter()
        .partition(|(m, _)| g.ty(*m).shape == element_shape);
    if let Some((m, _)) = per_row.iter().find(|(m, _)| g.ty(*m).shape != rows.prefix) {
        return Err(Error::Compile(format!(
            "row kernel {head}: {m} is neither per row nor per element"
        )));
    }
    let last = reductions
        .iter()
        .map(|r| pass(g.node(*r).args[0]))
        .chain(per_element.iter().map(|(m, _)| pass(*m)))
        .max()
        .unwrap_or(0);

    let mut shared = String::new();
    let mut e = Emitter::new(g, cx.place, cx.buffer_of).with_inline(members.clone());
    let pc = e.unravel("i", &rows.prefix, "p");
    let ec: Vec<String> = pc.iter().cloned().chain(["c".to_string()]).collect();
    // Per-row values, each computed once, as soon as the passes it waits for are done.
    let mut row_values: Vec<Value> = computed
        .iter()
        .copied()
        .filter(|&v| {
            g.ty(v).shape == rows.prefix
                && !matches!(
                    g.node(v).op,
                    Op::Reduce { .. } | Op::Constant { .. } | Op::Literal { .. } | Op::Iota { .. }
                )
        })
        .collect();
    let mut row_ops = 0u64;
    let mut flops = 0u64;
    let mut per_row_values = |e: &mut Emitter<'_>, upto: usize, row_ops: &mut u64| -> Result<()> {
        let (now, later): (Vec<Value>, Vec<Value>) =
            row_values.iter().partition(|&&v| pass(v) <= upto);
        for v in now {
            e.ops = 0;
            e.at(v, &pc)?;
            *row_ops += e.ops;
        }
        row_values = later;
        Ok(())
    };
    for p in 0..=last {
        per_row_values(&mut e, p, &mut row_ops)?;
        let folds: Vec<Value> = reductions
            .iter()
            .copied()
            .filter(|r| pass(g.node(*r).args[0]) == p)
            .collect();
        let stores: &[(Value, BufferId)] = if p == last { &per_element } else { &[] };
        if folds.is_empty() && stores.is_empty() {
            continue;
        }
        e.line(format!("// Pass {} over the row.", p + 1));
        let (accs, fold_fns) = accumulators(&mut e, &folds)?;
        let saved = if threads == 1 {
            e.open(format!("for (var c: u32 = 0u; c < {len}u; c = c + 1u)"))
        } else {
            e.open(format!(
                "for (var c: u32 = lid; c < {len}u; c = c + {threads}u)"
            ))
        };
        e.ops = 0;
        for ((&r, acc), fold) in folds.iter().zip(&accs).zip(&fold_fns) {
            let x = e.at(g.node(r).args[0], &ec)?;
            e.line(fold(acc, &x));
            e.ops += 1;
        }
        // Every value is computed before any is stored: a result may overwrite an
        // operand that another result still reads at this element.
        let mut results = Vec::new();
        for &(m, buffer) in stores {
            results.push((m, buffer, e.at(m, &ec)?));
        }
        for (m, buffer, x) in results {
            let out = e.bind(buffer, g.ty(m), true);
            e.store(&out, &format!("i * {len}u + c"), g.ty(m).dtype, &x);
        }
        flops += e.ops * len as u64;
        e.close(saved);
        if threads > 1 && !folds.is_empty() {
            combine(&mut e, &folds, &accs, &fold_fns, threads, &mut shared);
        }
        for (&r, acc) in folds.iter().zip(&accs) {
            e.seed(r, &pc, acc);
        }
    }
    per_row_values(&mut e, usize::MAX, &mut row_ops)?;
    for &(m, buffer) in &per_row {
        let x = e.at(m, &pc)?;
        let out = e.bind(buffer, g.ty(m), true);
        if threads == 1 {
            e.store(&out, "i", g.ty(m).dtype, &x);
        } else {
            let saved = e.open("if lid == 0u");
            e.store(&out, "i", g.ty(m).dtype, &x);
            e.close(saved);
        }
    }
    flops = (flops + row_ops) * count as u64;

    let name = format!("{index:03}_row_{}", g.node(head).op.name());
    let mut header = format!(
        "// Kernel {name}: {} per row of {} makes {} passes over it ({}{}).",
        if threads == 1 {
            "one invocation".to_string()
        } else {
            format!("a workgroup of {threads}")
        },
        g.ty(g.node(reductions[0]).args[0]),
        last + 1,
        r.shape,
        if r.tuned {
            "; mode from the tuning file"
        } else {
            ""
        }
    );
    let list = |vs: &mut dyn Iterator<Item = Value>| {
        vs.map(|v| format!("{} {}", cx.label(v), g.node(v).op.name()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = write!(
        header,
        "\n// Stores: {}.",
        list(&mut stored.iter().map(|(m, _)| *m))
    );
    let _ = write!(
        header,
        "\n// Computes: {}.",
        list(&mut k.values.iter().copied())
    );
    assemble(cx, k, r, &e, &shared, name, header, flops)
}

/// The pass each computed value is available in: the number of reductions along the
/// row it waits for (0 for what is read from buffers).
fn passes(g: &Graph, computed: &[Value]) -> HashMap<Value, usize> {
    let mut passes: HashMap<Value, usize> = HashMap::new();
    for &v in computed {
        let after = g
            .node(v)
            .args
            .iter()
            .map(|a| passes.get(a).copied().unwrap_or(0))
            .max();
        let reduce = usize::from(matches!(g.node(v).op, Op::Reduce { .. }));
        passes.insert(v, after.unwrap_or(0) + reduce);
    }
    passes
}

/// Declares one accumulator per reduction folded in a pass; returns their names and
/// folds.
#[allow(clippy::type_complexity)]
fn accumulators(
    e: &mut Emitter<'_>,
    folds: &[Value],
) -> Result<(Vec<String>, Vec<fn(&str, &str) -> String>)> {
    let g = e.graph();
    let mut accs = Vec::new();
    let mut fold_fns = Vec::new();
    for &r in folds {
        let Op::Reduce { kind, .. } = g.node(r).op else {
            return Err(Error::Internal(format!(
                "row kernel: {r} is not a reduction"
            )));
        };
        let d = g.ty(r).dtype;
        let (init, fold) = reduce_parts(e, kind, d);
        let acc = format!("acc{}", r.0);
        e.line(format!("var {acc}: {} = {init};", wgsl_type(d)));
        accs.push(acc);
        fold_fns.push(fold);
    }
    Ok((accs, fold_fns))
}

/// Combines the invocations' partial results of a pass: a tree of fixed shape over
/// workgroup memory (declared in `shared`), so sums are the same from run to run.
fn combine(
    e: &mut Emitter<'_>,
    folds: &[Value],
    accs: &[String],
    fold_fns: &[fn(&str, &str) -> String],
    threads: usize,
    shared: &mut String,
) {
    let g = e.graph();
    for (&r, acc) in folds.iter().zip(accs) {
        let d = wgsl_type(g.ty(r).dtype);
        let _ = writeln!(shared, "var<workgroup> part{}: array<{d}, {threads}>;", r.0);
        e.line(format!("part{}[lid] = {acc};", r.0));
    }
    e.line("workgroupBarrier();");
    let saved = e.open(format!(
        "for (var s: u32 = {}u; s > 0u; s = s >> 1u)",
        threads / 2
    ));
    let inner = e.open("if lid < s");
    for (&r, fold) in folds.iter().zip(fold_fns) {
        let part = format!("part{}", r.0);
        e.line(fold(&format!("{part}[lid]"), &format!("{part}[lid + s]")));
    }
    e.close(inner);
    e.line("workgroupBarrier();");
    e.close(saved);
    for (&r, acc) in folds.iter().zip(accs) {
        e.line(format!("{acc} = part{}[0];", r.0));
    }
}

/// The kernel from its body: the grid (one invocation or one workgroup per row), the
/// bindings and the template.
#[allow(clippy::too_many_arguments)]
fn assemble(
    cx: &Context<'_>,
    k: &KernelPlan,
    r: &RowPlan,
    e: &Emitter<'_>,
    shared: &str,
    name: String,
    header: String,
    flops: u64,
) -> Result<Kernel> {
    let (target, head, count, threads) = (cx.target, k.root, r.rows.count(), r.threads);
    target.check_bindings(e.bindings.len(), &name)?;
    let (wg, [gx, gy], params, row_index) = if threads == 1 {
        let wg = target.workgroup_size();
        let [gx, gy] = target.grid(count, &head.to_string())?;
        let row = gx * wg as usize;
        (
            wg,
            [gx, gy],
            "@builtin(global_invocation_id) gid: vec3<u32>".to_string(),
            format!("    let i: u32 = gid.x + gid.y * {row}u;"),
        )
    } else {
        let [gx, gy] = target.grid_of(count, &head.to_string())?;
        (
            threads as u32,
            [gx, gy],
            "@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32"
                .to_string(),
            format!("    let i: u32 = wid.x + wid.y * {gx}u;"),
        )
    };
    let bindings = format!("{}\n{shared}", e.declarations().trim_end());
    let wgsl = fill(
        TEMPLATE,
        &name,
        &[
            ("HEADER", &header),
            ("BINDINGS", bindings.trim_end()),
            ("WG", &wg.to_string()),
            ("PARAMS", &params),
            ("ROW_INDEX", &row_index),
            ("COUNT", &count.to_string()),
            ("BODY", e.body().trim_end()),
        ],
    )?;
    Ok(Kernel {
        name,
        variant: "row".into(),
        wgsl,
        entry_point: "main".into(),
        bindings: e.kernel_bindings(),
        workgroup_size: [wg, 1, 1],
        dispatch: [gx as u32, gy as u32, 1],
        flops,
        bytes_moved: e.bytes_bound(),
    })
}
