//! Dumps: what a compiled program became, as files a person reads.
//!
//! A dump directory holds `ir/NN_<pass>.wg` (differentiation's stages when the program
//! is a gradient, then the program as lowering got it and the IR after every lowering
//! pass that changed it), `plan.txt` (every kernel in dispatch order
//! with the decisions that shaped it), `kernels/NNN_<name>.wgsl` (each kernel, as
//! validated), `buffers.txt` (the buffer plan and which kernels read and write each
//! buffer), `explain.txt` (what the backward pass keeps of the forward one, and why),
//! `stats.json`, and `kernels.dot` (a Graphviz picture: kernels as nodes with their
//! fused ops and share of the bytes moved, and the values between them as edges
//! labelled with their buffers).

use crate::lower::{BufferRole, Program, Report, Step};
use std::fmt::Write;
use std::path::Path;

/// Writes the dump of `program` into `dir`, creating it.
pub fn write(dir: &Path, program: &Program, report: &Report) -> std::io::Result<()> {
    write_staged(dir, &[], program, report)
}

/// [`write()`], with the stages that made the program before lowering — differentiation's
/// (`autodiff::grad_traced`), as `(stage, IR text)` — first in `ir/`, numbered in order
/// with the lowering passes after them (`00_grad.source.wg`, …).
pub fn write_staged(
    dir: &Path,
    stages: &[(String, String)],
    program: &Program,
    report: &Report,
) -> std::io::Result<()> {
    let ir = dir.join("ir");
    let kernels = dir.join("kernels");
    std::fs::create_dir_all(&ir)?;
    std::fs::create_dir_all(&kernels)?;
    // Files of an earlier dump would read as part of this one.
    remove_files(&ir, "wg")?;
    remove_files(&kernels, "wgsl")?;
    for (k, (stage, text)) in stages.iter().enumerate() {
        std::fs::write(ir.join(format!("{k:02}_grad.{stage}.wg")), text)?;
    }
    write_passes(&ir, "", stages.len(), report)?;
    for k in &program.kernels {
        std::fs::write(kernels.join(format!("{}.wgsl", k.name)), &k.wgsl)?;
    }
    std::fs::write(dir.join("plan.txt"), plan(program, report))?;
    std::fs::write(dir.join("buffers.txt"), buffer_plan(program))?;
    std::fs::write(dir.join("stats.json"), stats_json(program))?;
    std::fs::write(dir.join("explain.txt"), explain(report))?;
    std::fs::write(dir.join("kernels.dot"), kernels_dot(program))?;
    Ok(())
}

/// The program as a Graphviz digraph: a node per kernel (its name, variant, what it
/// computes as its header says, and its share of the bytes moved), a node per input and
/// output, and an edge from the kernel (or input) whose value a kernel reads to that
/// kernel, labelled with the buffer holding it (its type and size). `dot -Tsvg
/// kernels.dot` draws it.
pub fn kernels_dot(program: &Program) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let total: u64 = program.kernels.iter().map(|k| k.bytes_moved).sum();
    let mut s = String::from(
        "digraph kernels {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n  edge [fontname=\"monospace\", fontsize=9];\n",
    );
    for (id, what, list) in [
        ("in", "input", &program.inputs),
        ("out", "output", &program.outputs),
    ] {
        for (i, io) in list.iter().enumerate() {
            let _ = writeln!(
                s,
                "  {id}{i} [shape=ellipse, label=\"{what} {}\\n{}\"];",
                quote(&io.name),
                io.ty
            );
        }
    }
    for (i, k) in program.kernels.iter().enumerate() {
        // The kernel's own header says what it computes and what is fused into it.
        let what: Vec<String> = k
            .wgsl
            .lines()
            .take_while(|l| l.starts_with("//"))
            .map(|l| quote(l.trim_start_matches("//").trim()))
            .collect();
        let share = if total == 0 {
            0.0
        } else {
            100.0 * k.bytes_moved as f64 / total as f64
        };
        let mut label = format!("{}\\n{}", quote(&k.name), quote(&k.variant));
        for line in &what {
            label.push_str("\\l");
            label.push_str(line);
        }
        let _ = writeln!(
            s,
            "  k{i} [label=\"{label}\\l{:.1}% of bytes moved ({} bytes)\\l\"];",
            share, k.bytes_moved
        );
    }
    for (b, buffer) in program.buffers.iter().enumerate() {
        let label = format!("b{b}: {}, {} bytes", buffer.ty, buffer.bytes);
        let binds = |k: &crate::lower::Kernel, writable: bool| {
            k.bindings
                .iter()
                .any(|x| x.buffer.0 as usize == b && x.writable == writable)
        };
        let readers: Vec<usize> = (0..program.kernels.len())
            .filter(|&i| binds(&program.kernels[i], false))
            .collect();
        let writers: Vec<usize> = (0..program.kernels.len())
            .filter(|&i| binds(&program.kernels[i], true))
            .collect();
        // A buffer is reused once its value is dead: a reader reads what the last
        // kernel before it wrote (or the input, when none did).
        let input = program
            .inputs
            .iter()
            .position(|io| io.buffer.0 as usize == b);
        for &r in &readers {
            match (writers.iter().rev().find(|&&w| w < r), input) {
                (Some(w), _) => {
                    let _ = writeln!(s, "  k{w} -> k{r} [label=\"{label}\"];");
                }
                (None, Some(i)) => {
                    let _ = writeln!(s, "  in{i} -> k{r} [label=\"{label}\"];");
                }
                (None, None) => {}
            }
        }
        for (o, io) in program.outputs.iter().enumerate() {
            if let (true, Some(w)) = (io.buffer.0 as usize == b, writers.last()) {
                let _ = writeln!(s, "  k{w} -> out{o} [label=\"{label}\"];");
            }
        }
    }
    s.push_str("}\n");
    s
}

/// The IR after every pass, the pieces' (of a program with loops on the device) after
/// the program's, named `<piece>.NN_<pass>.wg`.
fn write_passes(ir: &Path, prefix: &str, first: usize, report: &Report) -> std::io::Result<()> {
    for (k, p) in report.passes.iter().enumerate() {
        let n = first + k;
        std::fs::write(ir.join(format!("{prefix}{n:02}_{}.wg", p.pass)), &p.ir)?;
    }
    for piece in &report.pieces {
        write_passes(ir, &format!("{prefix}{}.", piece.name), 0, &piece.report)?;
    }
    Ok(())
}

/// The plan: every kernel in dispatch order with the decisions that shaped it. For a
/// program with loops on the device, the schedule (which kernels run when, and how
/// often), then each piece's plan.
pub fn plan(program: &Program, report: &Report) -> String {
    if report.pieces.is_empty() {
        return report.plan.print(&program.graph);
    }
    let mut s = String::from("# schedule\n");
    schedule(&mut s, program, &program.schedule, 0);
    pieces(&mut s, report);
    s
}

fn pieces(s: &mut String, report: &Report) {
    for piece in &report.pieces {
        let _ = writeln!(s, "\n# piece {}", piece.name);
        if piece.report.pieces.is_empty() {
            s.push_str(&piece.report.plan.print(&piece.graph));
        } else {
            pieces(s, &piece.report);
        }
    }
}

fn schedule(s: &mut String, program: &Program, steps: &[Step], depth: usize) {
    let pad = "  ".repeat(depth);
    for step in steps {
        match step {
            Step::Kernel(k) => {
                let _ = writeln!(s, "{pad}{}", program.kernels[*k].name);
            }
            Step::Loop { trips, even, odd } => {
                let _ = writeln!(s, "{pad}loop of {trips} iterations, even ones:");
                schedule(s, program, even, depth + 1);
                if odd != even {
                    let _ = writeln!(
                        s,
                        "{pad}odd ones (carried values' buffers bound the other way round):"
                    );
                    schedule(s, program, odd, depth + 1);
                }
            }
        }
    }
}

fn remove_files(dir: &Path, extension: &str) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == extension) {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// The buffer plan as text: one line per buffer with its role, type, size, and the
/// kernels that write and read it.
pub fn buffer_plan(program: &Program) -> String {
    let mut s = format!(
        "# target {} ({}), {} buffers, {} kernels\n",
        program.target.name,
        program.target.class.name(),
        program.buffers.len(),
        program.kernels.len()
    );
    for (i, b) in program.buffers.iter().enumerate() {
        let role = match &b.role {
            BufferRole::Input(name) => format!("input `{name}`"),
            BufferRole::Computed => "computed".to_string(),
            BufferRole::Constant(data) => format!("constant ({} elements)", data.len()),
        };
        let outputs: Vec<&str> = program
            .outputs
            .iter()
            .filter(|o| o.buffer.0 as usize == i)
            .map(|o| o.name.as_str())
            .collect();
        let users = |writable: bool| -> Vec<&str> {
            program
                .kernels
                .iter()
                .filter(|k| {
                    k.bindings
                        .iter()
                        .any(|bd| bd.buffer.0 as usize == i && bd.writable == writable)
                })
                .map(|k| k.name.as_str())
                .collect()
        };
        let _ = write!(s, "buffer {i:3}: {} {} bytes, {role}", b.ty, b.bytes);
        if !outputs.is_empty() {
            let _ = write!(s, ", output {}", outputs.join(", "));
        }
        let (w, r) = (users(true), users(false));
        if !w.is_empty() {
            let _ = write!(s, "; written by {}", w.join(", "));
        }
        if !r.is_empty() {
            let _ = write!(s, "; read by {}", r.join(", "));
        }
        s.push('\n');
    }
    s
}

/// What `explain` says of a program without forward values.
const NO_FORWARD: &str = "# no forward values: the program has no primal computation\n";

/// For every forward value, one line: kept, recomputed or dropped by the backward
/// pass, and why.
pub fn explain(report: &Report) -> String {
    let mut s = String::new();
    for r in &report.residency {
        let _ = writeln!(s, "{r}");
    }
    if !report.loops.is_empty() {
        s.push_str("# loops on the device\n");
        for line in &report.loops {
            let _ = writeln!(s, "{line}");
        }
    }
    for piece in &report.pieces {
        let inner = explain(&piece.report);
        if !inner.starts_with(NO_FORWARD) {
            let _ = write!(s, "# piece {}\n{inner}", piece.name);
        }
    }
    if s.is_empty() {
        s.push_str(NO_FORWARD);
    }
    s
}

/// The statistics as a JSON object with fixed keys.
pub fn stats_json(program: &Program) -> String {
    let s = &program.stats;
    let v = serde_json::json!({
        "target": program.target.name,
        "kernels": s.kernels,
        "matmul_kernels": s.matmul_kernels,
        "flops": s.flops,
        "bytes_moved": s.bytes_moved,
        "peak_bytes": s.peak_bytes,
        "temp_bytes": s.temp_bytes,
        "residual_bytes": s.residual_bytes,
        "allocated_bytes": s.allocated_bytes,
    });
    let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
    text.push('\n');
    text
}
