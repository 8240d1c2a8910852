//! Loops that run on the device.
//!
//! A loop that stays a loop after optimization (a true recurrence) and is too big to
//! unroll ([`Options::unroll_limit`]) is not unrolled: its body is compiled once, as a
//! program of its own, and its kernels are dispatched once per iteration inside the
//! run's one compute pass, with no host round trip.
//!
//! The program around the loops is cut into stretches: stretch `m` runs after the
//! first `m` loops, and each value goes in the last stretch its readers allow (a loop
//! reads its operands from the stretches before it) but never before the results it
//! depends on. Each stretch and each body is compiled by [`compile`](super::compile) (so a loop
//! nested in a body is handled the same way), and the pieces are linked into one
//! [`Program`] whose [`Program::schedule`] says what runs when:
//!
//! - **The iteration index** lives in a one-element counter buffer that a kernel sets to
//!   0 before the loop and advances at the end of every iteration; body kernels read it
//!   like any input. A body that never reads the index gets neither kernel.
//! - **A carried value the body updates only in a window** (its next value is
//!   `dynamic_update_slice(carried, update, starts…)`) lives in one buffer updated in
//!   place: the body computes the update and the starts, and a kernel writes the
//!   window at the end of the iteration (after every read of the old value), costing
//!   the window rather than a copy of the whole tensor.
//! - **Other carried values** alternate between two buffers: even iterations read the
//!   first and write the second, odd ones (the same kernels, bound the other way round)
//!   the reverse, so no iteration copies them.
//! - **Invariants** are read where the stretch before the loop left them.
//!
//! Carried values start as copies of the loop's operands. Buffers are not shared across
//! pieces, and body temporaries are never shared, so a swapped binding cannot alias a
//! temporary.

use super::memory;
use super::program::{Buffer, BufferId, BufferRole, IoBinding, Kernel, KernelBinding, Step};
use super::validate::validate_wgsl;
use super::{Compiled, Options, PassDump, Piece, Report, compile_sided, io_bindings, state_pairs};
use crate::error::{Error, Result};
use crate::ir::{Builder, Graph, Node, Op, OpClass, Side, Type, Value};
use std::collections::HashMap;

/// Compiles `g`, whose top-level loops all stay loops, into one linked program.
pub(super) fn compile(g: Graph, options: &Options, dumps: Vec<PassDump>) -> Result<Compiled> {
    let mut l = Linker::default();
    for (name, v) in g.inputs() {
        let id = l.add(Buffer {
            ty: g.ty(*v).clone(),
            bytes: bytes_of(g.ty(*v)),
            role: BufferRole::Input(name.clone()),
        });
        l.value_buffer.insert(*v, id);
    }
    let loops: Vec<Value> = g
        .values()
        .filter(|v| g.node(*v).op.as_loop().is_some())
        .collect();
    let number: HashMap<Value, usize> = loops.iter().enumerate().map(|(j, v)| (*v, j)).collect();
    // A value's level: how many of the loops (in order) it waits for.
    let mut level = vec![0usize; g.len()];
    for v in g.values() {
        let node = g.node(v);
        level[v.index()] = match node.op {
            Op::Get { .. } => number[&node.args[0]] + 1,
            _ => node
                .args
                .iter()
                .map(|a| level[a.index()])
                .max()
                .unwrap_or(0),
        };
    }
    let in_stretch = |v: Value| {
        !matches!(
            g.node(v).op,
            Op::Input { .. } | Op::Loop { .. } | Op::Get { .. }
        )
    };
    // Each value goes in the last stretch its readers allow (at least its level): what
    // only the code after a loop reads is computed there, not computed before the loop
    // and kept in a buffer across it.
    let mut seg = level.clone();
    let mut need = vec![usize::MAX; g.len()];
    for (_, v) in g.outputs() {
        need[v.index()] = loops.len();
    }
    for u in g.values().rev() {
        let node = g.node(u);
        if in_stretch(u) && need[u.index()] != usize::MAX {
            seg[u.index()] = need[u.index()].max(level[u.index()]);
        }
        let mine = match node.op.as_loop() {
            Some(_) => number[&u],
            None => seg[u.index()],
        };
        for a in operands_read(&g, u) {
            need[a.index()] = need[a.index()].min(mine);
        }
    }
    let mut exported = vec![false; g.len()];
    for u in g.values() {
        for a in operands_read(&g, u) {
            // A stretch recomputes what is free to compute (a constant, a re-indexing of
            // an input) rather than receiving it in a buffer.
            let recomputed = in_stretch(u) && cheap(&g, *a);
            if in_stretch(*a) && !recomputed && (!in_stretch(u) || seg[u.index()] != seg[a.index()])
            {
                exported[a.index()] = true;
            }
        }
    }
    for (_, v) in g.outputs() {
        if in_stretch(*v) {
            exported[v.index()] = true;
        }
    }

    let mut segments = Vec::new();
    for m in 0..=loops.len() {
        let members: Vec<Value> = g
            .values()
            .filter(|v| in_stretch(*v) && seg[v.index()] == m)
            .collect();
        segments.push(members);
    }
    for (m, members) in segments.iter().enumerate() {
        l.stretch(&g, m, members, &exported, options)?;
        if let Some(&lp) = loops.get(m) {
            l.looped(&g, m, g.node(lp), lp, options)?;
        }
    }

    let inputs = io_bindings(&g, g.inputs(), |v| l.value_buffer.get(&v).copied())?;
    let outputs = io_bindings(&g, g.outputs(), |v| l.value_buffer.get(&v).copied())?;
    let state = state_pairs(&inputs, &outputs);
    let mut holds_primal = vec![false; l.buffers.len()];
    for (k, side) in l.kernels.iter().zip(&l.sides) {
        for b in k.bindings.iter().filter(|b| b.writable) {
            holds_primal[b.buffer.0 as usize] |= *side == Side::Primal;
        }
    }
    let residual = memory::residual_bytes(&l.buffers, &l.kernels, &l.sides, &holds_primal);
    let mut stats = memory::statistics(&l.buffers, &l.kernels, &outputs, residual);
    stats.kernels = 0;
    stats.matmul_kernels = 0;
    stats.flops = 0;
    stats.bytes_moved = 0;
    for step in &l.schedule {
        step.count(&mut |k, n| {
            let kernel = &l.kernels[k];
            stats.kernels += n;
            if kernel.variant.starts_with("matmul") {
                stats.matmul_kernels += n;
            }
            stats.flops += kernel.flops * n;
            stats.bytes_moved += kernel.bytes_moved * n;
        });
    }
    Ok(Compiled {
        program: super::Program {
            graph: g,
            target: options.target.clone(),
            buffers: l.buffers,
            kernels: l.kernels,
            schedule: l.schedule,
            inputs,
            outputs,
            state,
            stats,
            quick: None,
        },
        report: Report {
            passes: dumps,
            residency: Vec::new(),
            plan: Default::default(),
            pieces: l.pieces,
            loops: l.notes,
        },
        sides: l.sides,
    })
}

/// The linked program as it grows, piece by piece.
#[derive(Default)]
struct Linker {
    buffers: Vec<Buffer>,
    kernels: Vec<Kernel>,
    sides: Vec<Side>,
    schedule: Vec<Step>,
    /// The buffer holding each value of the top-level graph computed so far.
    value_buffer: HashMap<Value, BufferId>,
    pieces: Vec<Piece>,
    /// What became of each loop, for `--explain`.
    notes: Vec<String>,
}

impl Linker {
    fn add(&mut self, buffer: Buffer) -> BufferId {
        self.buffers.push(buffer);
        BufferId(self.buffers.len() as u32 - 1)
    }

    fn kernel(&mut self, kernel: Kernel, side: Side) -> usize {
        self.kernels.push(kernel);
        self.sides.push(side);
        self.kernels.len() - 1
    }

    /// Adds the kernels and buffers of `c` under `prefix`: its buffers listed in `bound`
    /// are the linked buffers given, the others new ones. Returns the linked buffer of
    /// each of its buffers and its steps. `side` overrides its kernels' sides.
    fn link(
        &mut self,
        prefix: &str,
        c: Compiled,
        bound: &HashMap<BufferId, BufferId>,
        side: Option<Side>,
    ) -> (Vec<BufferId>, Vec<Step>) {
        let Compiled {
            program,
            report,
            sides,
        } = c;
        let map: Vec<BufferId> = program
            .buffers
            .iter()
            .enumerate()
            .map(|(i, b)| match bound.get(&BufferId(i as u32)) {
                Some(id) => *id,
                None => self.add(Buffer {
                    role: BufferRole::Computed,
                    ..b.clone()
                }),
            })
            .collect();
        let base = self.kernels.len();
        let steps = program
            .steps()
            .iter()
            .map(|s| renumber(s, &|k| base + k))
            .collect();
        for (kernel, s) in program.kernels.iter().zip(sides) {
            let mut kernel = kernel.clone();
            kernel.name = format!("{prefix}.{}", kernel.name);
            for b in &mut kernel.bindings {
                b.buffer = map[b.buffer.0 as usize];
            }
            self.kernel(kernel, side.unwrap_or(s));
        }
        self.pieces.push(Piece {
            name: prefix.to_string(),
            graph: program.graph,
            report,
        });
        (map, steps)
    }

    /// Compiles and links stretch `m`: the values `members` of `g`.
    fn stretch(
        &mut self,
        g: &Graph,
        m: usize,
        members: &[Value],
        exported: &[bool],
        options: &Options,
    ) -> Result<()> {
        let outputs: Vec<Value> = members
            .iter()
            .copied()
            .filter(|v| exported[v.index()])
            .collect();
        if outputs.is_empty() {
            return Ok(());
        }
        let input_name: HashMap<Value, &str> =
            g.inputs().iter().map(|(n, v)| (*v, n.as_str())).collect();
        let mut b = Builder::new();
        let mut map: HashMap<Value, Value> = HashMap::new();
        let mut inputs: Vec<(String, Value)> = Vec::new();
        for &v in members {
            let node = g.node(v);
            let mut args = Vec::with_capacity(node.args.len());
            for a in &node.args {
                if !map.contains_key(a) && cheap(g, *a) {
                    // Computed here again, with what it reads, in arena order.
                    let mut chain = vec![*a];
                    let mut at = 0;
                    while at < chain.len() {
                        for x in &g.node(chain[at]).args {
                            if !map.contains_key(x) && !chain.contains(x) {
                                chain.push(*x);
                            }
                        }
                        at += 1;
                    }
                    chain.sort_unstable();
                    for x in chain {
                        let xn = g.node(x);
                        if matches!(xn.op, Op::Input { .. }) {
                            continue;
                        }
                        let xargs = xn
                            .args
                            .iter()
                            .map(|y| self_input(&mut b, &mut map, &mut inputs, &input_name, g, *y))
                            .collect::<Result<Vec<_>>>()?;
                        b.set_side(xn.side);
                        let y = b.push(xn.op.clone(), &xargs)?;
                        map.insert(x, y);
                    }
                }
                args.push(self_input(
                    &mut b,
                    &mut map,
                    &mut inputs,
                    &input_name,
                    g,
                    *a,
                )?);
            }
            b.set_side(node.side);
            let x = b.push(node.op.clone(), &args)?;
            map.insert(v, x);
        }
        for v in &outputs {
            b.output(&format!("v{}", v.0), map[v])?;
        }
        let piece = b.finish()?;
        let c = compile_sided(&piece, options)?;
        let mut bound = HashMap::new();
        for (name, v) in &inputs {
            let io = find(&c.program.inputs, name)?;
            bound.insert(io.buffer, self.buffer_of(*v)?);
        }
        let outs: Vec<(Value, BufferId)> = outputs
            .iter()
            .map(|v| Ok((*v, find(&c.program.outputs, &format!("v{}", v.0))?.buffer)))
            .collect::<Result<_>>()?;
        let (map, steps) = self.link(&format!("seg{m}"), c, &bound, None);
        for (v, local) in outs {
            self.value_buffer.insert(v, map[local.0 as usize]);
        }
        self.schedule.extend(steps);
        Ok(())
    }

    fn buffer_of(&self, v: Value) -> Result<BufferId> {
        self.value_buffer
            .get(&v)
            .copied()
            .ok_or_else(|| Error::Internal(format!("{v} has no buffer")))
    }

    /// Compiles and links loop number `j`, the node `node` at `lp` in `g`.
    fn looped(
        &mut self,
        g: &Graph,
        j: usize,
        node: &Node,
        lp: Value,
        options: &Options,
    ) -> Result<()> {
        let (trips, n, region) = node
            .op
            .as_loop()
            .ok_or_else(|| Error::Compile(format!("{lp} is not a loop")))?;
        let prefix = format!("loop{j}");
        let side = node.side;
        let body = g.region(region);
        let (inits, invariants) = node.args.split_at(n);
        // Which carried values the body updates in a window.
        let mut piece = body.clone();
        // Per carried value updated in a window: the number of starts, and the update's
        // bit pattern when it is a splat constant (written without a buffer).
        let mut windows: Vec<Option<(usize, Option<u32>)>> = vec![None; n];
        piece.outputs.clear();
        for (k, window) in windows.iter_mut().enumerate() {
            let out = body.outputs()[k].1;
            let param = body.inputs()[1 + k].1;
            let o = body.node(out);
            if o.op == Op::DynamicUpdateSlice && o.args[0] == param && o.args[1] != param {
                let splat = crate::passes::rewrite::splat(body, o.args[1]).map(bits);
                *window = Some((o.args.len() - 2, splat));
                if splat.is_none() {
                    // A reshape keeps the elements in order: the window kernel reads
                    // its operand rather than a copy.
                    let mut update = o.args[1];
                    while let Op::Reshape { .. } = body.node(update).op {
                        update = body.node(update).args[0];
                    }
                    piece.outputs.push((format!("u{k}"), update));
                }
                for (d, s) in o.args[2..].iter().enumerate() {
                    if known_start(body, *s).is_none() {
                        piece.outputs.push((format!("s{k}_{d}"), *s));
                    }
                }
            } else {
                piece.outputs.push((format!("c{k}"), out));
            }
        }
        let mut body_options = options.clone();
        body_options.optimizations.reuse_buffers = false;
        let c = compile_sided(&piece, &body_options).map_err(|e| match e {
            Error::Compile(m) => Error::Compile(format!("the body of loop {lp}: {m}")),
            e => e,
        })?;
        let inputs = c.program.inputs.clone();
        let outputs = c.program.outputs.clone();
        let local_input = |k: usize| inputs[k].buffer;

        let mut bound = HashMap::new();
        let counter = self.add(Buffer {
            ty: Type::i32(&[]),
            bytes: 4,
            role: BufferRole::Computed,
        });
        bound.insert(local_input(0), counter);
        let mut carry = Vec::with_capacity(n);
        for (k, init) in inits.iter().enumerate() {
            let ty = g.ty(*init).clone();
            let id = self.add(Buffer {
                bytes: bytes_of(&ty),
                ty,
                role: BufferRole::Computed,
            });
            bound.insert(local_input(1 + k), id);
            carry.push(id);
        }
        for (q, x) in invariants.iter().enumerate() {
            bound.insert(local_input(1 + n + q), self.buffer_of(*x)?);
        }
        let mut uses_index = c
            .program
            .kernels
            .iter()
            .any(|k| k.bindings.iter().any(|b| b.buffer == local_input(0)));
        let (map, body_steps) = self.link(&prefix, c, &bound, Some(side));
        let linked =
            |name: &str| -> Result<BufferId> { Ok(map[find(&outputs, name)?.buffer.0 as usize]) };

        // Before the loop: carried values start as copies of the operands.
        for k in 0..n {
            let ty = g.ty(inits[k]);
            let name = format!("{prefix}.init{k}");
            let kernel = match splat_bits(g, inits[k]) {
                Some(bits) => fill_kernel(&name, bits, carry[k], ty, options)?,
                None => copy_kernel(&name, self.buffer_of(inits[k])?, carry[k], ty, options)?,
            };
            if let Some(kernel) = kernel {
                let id = self.kernel(kernel, side);
                self.schedule.push(Step::Kernel(id));
            }
        }
        let mut even = body_steps;
        let mut swaps: Vec<(BufferId, BufferId)> = Vec::new();
        let mut results = Vec::with_capacity(n);
        let mut copied = vec![false; n];
        for k in 0..n {
            let ty = g.ty(inits[k]).clone();
            match windows[k] {
                Some((rank, splat)) => {
                    let out = body.node(body.outputs()[k].1);
                    let starts = (0..rank)
                        .map(|d| match known_start(body, out.args[2 + d]) {
                            Some(Known::Constant(c)) => Ok(Start::Constant(c)),
                            Some(Known::Index(c)) => Ok(Start::Buffer(counter, c)),
                            None => linked(&format!("s{k}_{d}")).map(|b| Start::Buffer(b, 0)),
                        })
                        .collect::<Result<Vec<_>>>()?;
                    uses_index |= starts
                        .iter()
                        .any(|s| matches!(s, Start::Buffer(b, _) if *b == counter));
                    let uty = body.ty(out.args[1]).clone();
                    let update = match splat {
                        Some(bits) => Update::Splat(bits),
                        None => Update::Buffer(linked(&format!("u{k}"))?),
                    };
                    let kernel = window_kernel(
                        &format!("{prefix}.window{k}"),
                        update,
                        &uty,
                        &starts,
                        carry[k],
                        &ty,
                        options,
                    )?;
                    if let Some(kernel) = kernel {
                        let id = self.kernel(kernel, side);
                        even.push(Step::Kernel(id));
                    }
                    results.push(carry[k]);
                }
                None => {
                    let out = linked(&format!("c{k}"))?;
                    let shared = out == counter
                        || carry.contains(&out)
                        || swaps.iter().any(|(_, b)| *b == out)
                        || invariants
                            .iter()
                            .any(|x| self.value_buffer.get(x) == Some(&out));
                    copied[k] = shared;
                    let next = if shared {
                        let id = self.add(Buffer {
                            bytes: bytes_of(&ty),
                            ty: ty.clone(),
                            role: BufferRole::Computed,
                        });
                        if let Some(kernel) =
                            copy_kernel(&format!("{prefix}.next{k}"), out, id, &ty, options)?
                        {
                            let kid = self.kernel(kernel, side);
                            even.push(Step::Kernel(kid));
                        }
                        id
                    } else {
                        out
                    };
                    swaps.push((carry[k], next));
                    results.push(if trips % 2 == 0 { carry[k] } else { next });
                }
            }
        }
        if uses_index && trips > 0 {
            let reset = counter_kernel(&format!("{prefix}.index_reset"), counter, "0i", options)?;
            let id = self.kernel(reset, side);
            self.schedule.push(Step::Kernel(id));
            let advance = counter_kernel(
                &format!("{prefix}.index_advance"),
                counter,
                "counter[0] + 1i",
                options,
            )?;
            let id = self.kernel(advance, side);
            even.push(Step::Kernel(id));
        }
        let odd = if swaps.is_empty() {
            even.clone()
        } else {
            let mut swap = HashMap::new();
            for (a, b) in &swaps {
                swap.insert(*a, *b);
                swap.insert(*b, *a);
            }
            let mut cloned = HashMap::new();
            even.iter()
                .map(|s| self.swapped(s, &swap, &mut cloned))
                .collect()
        };
        let mut dispatches = 0;
        for s in &even {
            s.count(&mut |_, c| dispatches += c);
        }
        self.notes.push(format!(
            "{prefix}: the loop {lp} of {trips} iterations runs on the device, {dispatches} dispatches per iteration"
        ));
        if trips > 0 {
            self.schedule.push(Step::Loop { trips, even, odd });
        }
        let mut gets: Vec<Option<Value>> = vec![None; n];
        for v in g.values() {
            let get = g.node(v);
            if let (Op::Get { index }, [of]) = (&get.op, get.args.as_slice())
                && *of == lp
            {
                self.value_buffer.insert(v, results[*index as usize]);
                gets[*index as usize] = Some(v);
            }
        }
        for k in 0..n {
            let ty = g.ty(inits[k]);
            let start = match splat_bits(g, inits[k]) {
                Some(_) => "filled with a constant".to_string(),
                None => format!("as a copy of {}", inits[k]),
            };
            let how = match windows[k] {
                Some(_) => {
                    let uty = body.ty(body.node(body.outputs()[k].1).args[1]);
                    // One row per iteration (or per iteration but the first).
                    let stack = uty.rank() > 0
                        && uty.shape[0] == 1
                        && trips > 1
                        && (ty.shape[0] == trips as usize || ty.shape[0] + 1 == trips as usize);
                    format!(
                        "updated in place, a {uty} window per iteration{}",
                        if stack { " (a stack: one row per iteration)" } else { "" }
                    )
                }
                None if copied[k] => "copied to a buffer of its own every iteration (the body returns a value that lives in another buffer)".into(),
                None => "alternating between two buffers".into(),
            };
            let readers: Vec<String> = match gets[k] {
                Some(get) => loop_readers(g, get),
                None => Vec::new(),
            };
            let read = if readers.is_empty() {
                String::new()
            } else {
                format!("; its final value is read by {}", readers.join(", "))
            };
            self.notes
                .push(format!("  carried {k} {ty}: starts {start}, {how}{read}"));
        }
        for (q, x) in invariants.iter().enumerate() {
            self.notes.push(format!(
                "  invariant {q} {}: {x}, read in place every iteration",
                g.ty(*x)
            ));
        }
        Ok(())
    }

    /// `step` with every kernel it dispatches cloned to bind the buffers of `swap` the
    /// other way round (each kernel cloned once, remembered in `cloned`).
    fn swapped(
        &mut self,
        step: &Step,
        swap: &HashMap<BufferId, BufferId>,
        cloned: &mut HashMap<usize, usize>,
    ) -> Step {
        match step {
            Step::Kernel(k) => {
                if let Some(c) = cloned.get(k) {
                    return Step::Kernel(*c);
                }
                let mut kernel = self.kernels[*k].clone();
                if !kernel.bindings.iter().any(|b| swap.contains_key(&b.buffer)) {
                    return Step::Kernel(*k);
                }
                for b in &mut kernel.bindings {
                    if let Some(other) = swap.get(&b.buffer) {
                        b.buffer = *other;
                    }
                }
                kernel.name.push_str(".odd");
                let side = self.sides[*k];
                let c = self.kernel(kernel, side);
                cloned.insert(*k, c);
                Step::Kernel(c)
            }
            Step::Loop { trips, even, odd } => Step::Loop {
                trips: *trips,
                even: even.iter().map(|s| self.swapped(s, swap, cloned)).collect(),
                odd: odd.iter().map(|s| self.swapped(s, swap, cloned)).collect(),
            },
        }
    }
}

/// The operands of `u` it reads from a buffer: all of them, but for a loop's carried
/// values that start as a constant (the loop fills them itself).
fn operands_read(g: &Graph, u: Value) -> impl Iterator<Item = &Value> + '_ {
    let node = g.node(u);
    let carried = node.op.as_loop().map_or(0, |(_, n, _)| n);
    node.args
        .iter()
        .enumerate()
        .filter(move |(k, a)| *k >= carried || splat_bits(g, **a).is_none())
        .map(|(_, a)| a)
}

/// The stretch's value for `a`: the one computed or received already, or a new input
/// receiving it.
fn self_input(
    b: &mut Builder,
    map: &mut HashMap<Value, Value>,
    inputs: &mut Vec<(String, Value)>,
    input_name: &HashMap<Value, &str>,
    g: &Graph,
    a: Value,
) -> Result<Value> {
    if let Some(x) = map.get(&a) {
        return Ok(*x);
    }
    let name = match input_name.get(&a) {
        Some(n) => n.to_string(),
        None => format!("v{}", a.0),
    };
    let x = b.input(&name, g.ty(a).clone())?;
    inputs.push((name, a));
    map.insert(a, x);
    Ok(x)
}

/// Whether `v` costs nothing to compute again where it is read: a constant or iota, or
/// a re-indexing (or `stop_gradient`) of a program input or of such a value.
fn cheap(g: &Graph, v: Value) -> bool {
    let mut x = v;
    loop {
        let node = g.node(x);
        match node.op.class() {
            OpClass::Generated => return true,
            OpClass::Reindex | OpClass::Identity => {
                let a = node.args[0];
                if matches!(g.node(a).op, Op::Input { .. }) {
                    return true;
                }
                x = a;
            }
            _ => return false,
        }
    }
}

/// The loops (`loop<ordinal>`) and other nodes that read `v`.
fn loop_readers(g: &Graph, v: Value) -> Vec<String> {
    let mut ordinal = 0;
    let mut out = Vec::new();
    let mut other = false;
    for u in g.values() {
        let node = g.node(u);
        let is_loop = node.op.as_loop().is_some();
        if node.args.contains(&v) {
            if is_loop {
                out.push(format!("loop{ordinal}"));
            } else {
                other = true;
            }
        }
        if is_loop {
            ordinal += 1;
        }
    }
    if other || g.outputs().iter().any(|(_, o)| *o == v) {
        out.push("the code after the loop".into());
    }
    out
}

/// `step` with kernel indices mapped by `f`.
fn renumber(step: &Step, f: &impl Fn(usize) -> usize) -> Step {
    match step {
        Step::Kernel(k) => Step::Kernel(f(*k)),
        Step::Loop { trips, even, odd } => Step::Loop {
            trips: *trips,
            even: even.iter().map(|s| renumber(s, f)).collect(),
            odd: odd.iter().map(|s| renumber(s, f)).collect(),
        },
    }
}

fn find<'a>(list: &'a [IoBinding], name: &str) -> Result<&'a IoBinding> {
    list.iter()
        .find(|io| io.name == name)
        .ok_or_else(|| Error::Internal(format!("a loop piece lost `{name}`")))
}

fn bytes_of(ty: &Type) -> u64 {
    (ty.numel() as u64).saturating_mul(4).max(4)
}

/// The first lines of a generated kernel: its bindings, each a name, whether it is
/// written, and its element type (every element is 4 bytes, so copies use `u32`).
fn bindings(list: &[(&str, bool, &str)]) -> String {
    let mut s = String::new();
    for (i, (name, writable, elem)) in list.iter().enumerate() {
        let access = if *writable { "read_write" } else { "read" };
        s.push_str(&format!(
            "@group(0) @binding({i}) var<storage, {access}> {name}: array<{elem}>;\n"
        ));
    }
    s
}

/// A finished generated kernel over `n` elements, validated.
#[allow(clippy::too_many_arguments)]
fn generated(
    name: &str,
    variant: &str,
    doc: &str,
    decls: String,
    body: &str,
    n: usize,
    buffers: &[(BufferId, bool)],
    options: &Options,
) -> Result<Kernel> {
    let target = &options.target;
    let wg = if n <= 1 { 1 } else { target.workgroup_size() };
    let [gx, gy] = target.grid_of(n.div_ceil(wg as usize), name)?;
    let wgsl = format!(
        "// Kernel {name}: {doc}\n{decls}\n@compute @workgroup_size({wg})\nfn main(@builtin(global_invocation_id) gid: vec3<u32>) {{\n    let i: u32 = gid.x + gid.y * {}u;\n    if i >= {n}u {{\n        return;\n    }}\n{body}}}\n",
        gx * wg as usize
    );
    validate_wgsl(name, &wgsl, target)?;
    target.check_bindings(buffers.len(), name)?;
    Ok(Kernel {
        name: name.to_string(),
        variant: variant.to_string(),
        wgsl,
        entry_point: "main".into(),
        bindings: buffers
            .iter()
            .enumerate()
            .map(|(i, (buffer, writable))| KernelBinding {
                binding: i as u32,
                buffer: *buffer,
                writable: *writable,
            })
            .collect(),
        workgroup_size: [wg, 1, 1],
        dispatch: [gx as u32, gy as u32, 1],
        flops: 0,
        bytes_moved: 8 * n as u64,
    })
}

/// A kernel copying `ty`'s elements from `from` to `to`; none for an empty tensor or
/// a buffer onto itself.
fn copy_kernel(
    name: &str,
    from: BufferId,
    to: BufferId,
    ty: &Type,
    options: &Options,
) -> Result<Option<Kernel>> {
    let n = ty.numel();
    if n == 0 || from == to {
        return Ok(None);
    }
    let decls = bindings(&[("src", false, "u32"), ("dst", true, "u32")]);
    generated(
        name,
        "copy",
        &format!("copies {ty}."),
        decls,
        "    dst[i] = src[i];\n",
        n,
        &[(from, false), (to, true)],
        options,
    )
    .map(Some)
}

/// A kernel writing the 32-bit pattern `bits` to every element of `ty` in `to`; none
/// for an empty tensor.
fn fill_kernel(
    name: &str,
    bits: u32,
    to: BufferId,
    ty: &Type,
    options: &Options,
) -> Result<Option<Kernel>> {
    let n = ty.numel();
    if n == 0 {
        return Ok(None);
    }
    let decls = bindings(&[("dst", true, "u32")]);
    generated(
        name,
        "fill",
        &format!("fills {ty} with one value."),
        decls,
        &format!("    dst[i] = {bits}u;\n"),
        n,
        &[(to, true)],
        options,
    )
    .map(Some)
}

/// The stored bit pattern of a value that is a splat constant.
fn splat_bits(g: &Graph, v: Value) -> Option<u32> {
    crate::passes::rewrite::splat(g, v).map(bits)
}

/// A one-invocation kernel setting the loop counter to `value`.
fn counter_kernel(name: &str, counter: BufferId, value: &str, options: &Options) -> Result<Kernel> {
    let decls = bindings(&[("counter", true, "i32")]);
    generated(
        name,
        "loop_index",
        "the iteration index of a loop on the device.",
        decls,
        &format!("    counter[0] = {value};\n"),
        1,
        &[(counter, true)],
        options,
    )
}

/// The value a window kernel writes.
#[derive(Clone, Copy)]
enum Update {
    /// The elements of a buffer.
    Buffer(BufferId),
    /// One 32-bit pattern everywhere.
    Splat(u32),
}

/// Where a window kernel reads one start index.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// A one-element `i32` buffer's value plus a constant.
    Buffer(BufferId, i32),
    /// A constant.
    Constant(i32),
}

/// The value of a start index that is a constant.
fn constant_start(body: &Graph, s: Value) -> Option<i32> {
    match crate::passes::rewrite::splat(body, s) {
        Some(crate::ir::Scalar::Int(c)) => Some(c),
        _ => None,
    }
}

/// A start index the window kernel computes itself.
enum Known {
    /// A constant.
    Constant(i32),
    /// The iteration index plus a constant: read from the counter.
    Index(i32),
}

/// What the window kernel can compute of the start index `s` without the body.
fn known_start(body: &Graph, s: Value) -> Option<Known> {
    constant_start(body, s)
        .map(Known::Constant)
        .or_else(|| index_offset(body, s).map(Known::Index))
}

/// `c` when the start index `s` is the iteration index plus the constant `c` (`i`,
/// `i + c`, `c + i` or `i - c`): the window kernel reads the counter itself.
fn index_offset(body: &Graph, s: Value) -> Option<i32> {
    let index = body.inputs().first()?.1;
    if s == index {
        return Some(0);
    }
    let node = body.node(s);
    match (&node.op, node.args.as_slice()) {
        (Op::Binary(crate::ir::BinaryOp::Add), [a, c]) if *a == index => constant_start(body, *c),
        (Op::Binary(crate::ir::BinaryOp::Add), [c, a]) if *a == index => constant_start(body, *c),
        (Op::Binary(crate::ir::BinaryOp::Sub), [a, c]) if *a == index => {
            constant_start(body, *c)?.checked_neg()
        }
        _ => None,
    }
}

/// The 32-bit pattern of a scalar as stored (`f32`, `i32`, `u32`, `bool` as `u32`).
fn bits(s: crate::ir::Scalar) -> u32 {
    use crate::ir::Scalar;
    match s {
        Scalar::Float(b) => (f64::from_bits(b) as f32).to_bits(),
        Scalar::Int(i) => i as u32,
        Scalar::Uint(u) => u,
        Scalar::Bool(b) => b as u32,
    }
}

/// A kernel writing `update` (of type `uty`) into `dst` (of type `ty`) at the window
/// starting at the `starts` (one `i32[]` buffer per axis, clamped into range as
/// `dynamic_update_slice` clamps them); none for an empty window.
fn window_kernel(
    name: &str,
    update: Update,
    uty: &Type,
    starts: &[Start],
    dst: BufferId,
    ty: &Type,
    options: &Options,
) -> Result<Option<Kernel>> {
    let n = uty.numel();
    if n == 0 {
        return Ok(None);
    }
    if uty.rank() != ty.rank() || starts.len() != ty.rank() {
        return Err(Error::Internal(format!(
            "{name}: a window of {uty} into {ty} with {} starts",
            starts.len()
        )));
    }
    // Each distinct buffer is bound once: the update (unless a splat), the starts, the
    // destination.
    let mut buffers: Vec<(BufferId, bool)> = Vec::new();
    let mut names: Vec<(String, bool, &str)> = Vec::new();
    let value = match update {
        Update::Buffer(b) => {
            buffers.push((b, false));
            names.push(("upd".into(), false, "u32"));
            "upd[i]".to_string()
        }
        Update::Splat(bits) => format!("{bits}u"),
    };
    let first_start = buffers.len();
    let mut start_expr = Vec::new();
    for s in starts {
        let s = match s {
            Start::Constant(c) => {
                start_expr.push(format!("{c}i"));
                continue;
            }
            Start::Buffer(s, c) => (*s, *c),
        };
        let (s, offset) = s;
        let at = match buffers.iter().position(|(b, _)| *b == s) {
            Some(at) if at >= first_start => at,
            _ => {
                buffers.push((s, false));
                names.push((format!("s{}", buffers.len() - 1), false, "i32"));
                buffers.len() - 1
            }
        };
        start_expr.push(if offset == 0 {
            format!("s{at}[0]")
        } else {
            format!("(s{at}[0] + {offset}i)")
        });
    }
    buffers.push((dst, true));
    names.push(("dst".into(), true, "u32"));
    let list: Vec<(&str, bool, &str)> =
        names.iter().map(|(n, w, e)| (n.as_str(), *w, *e)).collect();
    let decls = bindings(&list);
    let mut body = String::from("    var rest: u32 = i;\n");
    let rank = ty.rank();
    for d in (0..rank).rev() {
        body.push_str(&format!(
            "    let q{d}: u32 = rest % {}u;\n    rest = rest / {}u;\n",
            uty.shape[d].max(1),
            uty.shape[d].max(1)
        ));
    }
    let mut index = String::from("0u");
    let mut stride = 1usize;
    for d in (0..rank).rev() {
        let hi = ty.shape[d] - uty.shape[d];
        body.push_str(&format!(
            "    let o{d}: u32 = u32(clamp({}, 0i, {hi}i)) + q{d};\n",
            start_expr[d]
        ));
        index = format!("{index} + o{d} * {stride}u");
        stride *= ty.shape[d];
    }
    body.push_str(&format!("    dst[{index}] = {value};\n"));
    generated(
        name,
        "window",
        &format!("writes a {uty} window into {ty} in place."),
        decls,
        &body,
        n,
        &buffers,
        options,
    )
    .map(Some)
}
