//! The `wgrad` command line: differentiate, print and evaluate programs in the text
//! format.
//!
//! Exit codes: 0 on success, 1 for a user error (a bad program or bad inputs), 2 for bad
//! usage. Every derivative command prints an ordinary program that the same commands
//! accept again, so derivatives of any order compose through pipes.

use clap::{Args, Parser, Subcommand};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use wgrad::batch;
use wgrad::json::Precision;
use wgrad::passes::Optimizations;
use wgrad::{Error, Graph, Options, Runtime, RuntimeOptions, Target, Tensor, json};

#[derive(Parser)]
#[command(
    name = "wgrad",
    version,
    about = "A gradient compiler for tensor programs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the program extended with one output `grad.<w>` per `w`: the gradient of
    /// the scalar output `--of`.
    Grad {
        /// The program file (`-` reads standard input).
        file: String,
        /// Comma-separated inputs to differentiate with respect to.
        #[arg(long, value_delimiter = ',', required = true)]
        wrt: Vec<String>,
        /// The output to differentiate (default: the only output).
        #[arg(long)]
        of: Option<String>,
    },
    /// Print the program extended with inputs `tan.<w>` and the output `tan.<of>`: the
    /// Jacobian-vector product.
    Jvp {
        /// The program file (`-` reads standard input).
        file: String,
        /// Comma-separated inputs the tangents perturb.
        #[arg(long, value_delimiter = ',', required = true)]
        wrt: Vec<String>,
        /// The output to differentiate (default: the only output).
        #[arg(long)]
        of: Option<String>,
        /// Take K tangents at once: each `tan.<w>` is `[K, …w]` and `tan.<of>` is
        /// `[K, …of]`, row i along the i-th tangents.
        #[arg(long, value_name = "K", conflicts_with = "order")]
        directions: Option<usize>,
        /// Derivatives of every order up to K (at most 12) along one tangent `tan.<w>`
        /// (one `--wrt` input): outputs `d1.<of>` … `dK.<of>`.
        #[arg(long, value_name = "K")]
        order: Option<usize>,
    },
    /// Print the program extended with an input `ct.<of>` and outputs `grad.<w>` for
    /// every float input: the vector-Jacobian product.
    Vjp {
        /// The program file (`-` reads standard input).
        file: String,
        /// The output to differentiate (default: the only output).
        #[arg(long)]
        of: Option<String>,
        /// Take K cotangents at once: `ct.<of>` is `[K, …of]` and each `grad.<w>` is
        /// `[K, …w]`.
        #[arg(long, value_name = "K")]
        directions: Option<usize>,
    },
    /// Print the program extended with the output `jac.<w>` of type `[…of, …w]`: the
    /// Jacobian, as one batched program (the mode used is printed on stderr).
    Jacobian {
        /// The program file (`-` reads standard input).
        file: String,
        /// The input to differentiate with respect to.
        #[arg(long)]
        wrt: String,
        /// The output to differentiate (default: the only output).
        #[arg(long)]
        of: Option<String>,
        /// Forward mode (one JVP per input element), reverse mode (one VJP per output
        /// element), or whichever needs fewer.
        #[arg(long, default_value = "auto", value_parser = ["auto", "forward", "reverse"])]
        mode: String,
    },
    /// Print the program extended with `grad.<w>` and `hessian.<w>` of type `[…w, …w]`:
    /// the Hessian of a scalar output, forward over reverse, as one program.
    Hessian {
        /// The program file (`-` reads standard input).
        file: String,
        /// The input to differentiate with respect to.
        #[arg(long)]
        wrt: String,
        /// The output to differentiate (default: the only output).
        #[arg(long)]
        of: Option<String>,
    },
    /// Print the program over a batch: the inputs `--over` gain a leading axis of extent
    /// `--size`, and so does every output that depends on them.
    Vmap {
        /// The program file (`-` reads standard input).
        file: String,
        /// Comma-separated inputs that differ per example.
        #[arg(long, value_delimiter = ',', required = true)]
        over: Vec<String>,
        /// The number of examples.
        #[arg(long)]
        size: usize,
    },
    /// Run the program (or, with `--wrt`, its gradient) on the f64 reference
    /// interpreter and print every output as JSON.
    Eval {
        #[command(flatten)]
        source: Source,
        /// The inputs: a JSON file mapping each name to {"shape", "dtype", "data"}
        /// (`-` for standard input), a `.npz` archive or a `.safetensors` file of
        /// arrays named after the inputs, or a directory of NAME.npy files.
        #[arg(long)]
        inputs: String,
        /// Write the outputs to this file instead of printing them: `.npz`,
        /// `.safetensors`, or JSON for any other name.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Run the program (or, with `--wrt`, its gradient) on the GPU and print every output
    /// as JSON, like `eval`.
    Run {
        #[command(flatten)]
        source: Source,
        /// The inputs: a JSON file mapping each name to {"shape", "dtype", "data"}
        /// (`-` for standard input), a `.npz` archive or a `.safetensors` file of
        /// arrays named after the inputs, or a directory of NAME.npy files.
        #[arg(long)]
        inputs: String,
        /// Write the outputs to this file instead of printing them: `.npz`,
        /// `.safetensors`, or JSON for any other name.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Compile a program (or, with `--wrt`, its gradient) to WGSL kernels for a target;
    /// print the kernels and statistics, and with `--dump` write every pass's IR, each
    /// kernel, the buffer plan and `stats.json`.
    Compile {
        #[command(flatten)]
        source: Source,
        #[command(flatten)]
        lowering: Lowering,
        /// Write the dump into this directory.
        #[arg(long)]
        dump: Option<PathBuf>,
        /// Print, for every forward value, whether the backward pass keeps it,
        /// recomputes it or drops it, and why.
        #[arg(long)]
        explain: bool,
    },
    /// Print the statistics of the compiled program (or, with `--wrt`, its gradient):
    /// kernels, matmul kernels, flops, bytes moved, peak, temporary and residual bytes.
    Stats {
        #[command(flatten)]
        source: Source,
        #[command(flatten)]
        lowering: Lowering,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Measure the product tiles and row kernel modes of programs on this adapter and
    /// write its tuning file, which every later run reads (`wgrad adapter` shows whether
    /// one applies)
    Tune {
        /// Programs whose products and row kernels to tune (default: the gradients of
        /// W1, W2 and W3a, and a 1024³ product).
        files: Vec<String>,
        /// Tune the gradients of the programs with respect to these comma-separated
        /// inputs.
        #[arg(long, value_delimiter = ',')]
        wrt: Option<Vec<String>>,
        /// Stop measuring after this many seconds (shapes not reached keep the preset).
        #[arg(long, default_value_t = 30.0)]
        budget: f64,
        /// Where to write the tuning file (default: this adapter's in the user's cache
        /// directory, which the runtime reads; `WGRAD_TUNING_FILE` overrides both).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the adapter the runtime chooses (honouring WGPU_BACKEND and
    /// WGPU_ADAPTER_NAME) and the target it describes.
    Adapter,
    /// Parse, verify and print a program back in canonical form.
    Print {
        /// The program file (`-` reads standard input).
        file: String,
    },
}

/// A program, or (with `--wrt`) its gradient.
#[derive(Args)]
struct Source {
    /// The program file (`-` reads standard input).
    file: String,
    /// With --wrt: the output to differentiate (default: the only output).
    #[arg(long, requires = "wrt")]
    of: Option<String>,
    /// Use the gradient with respect to these comma-separated inputs.
    #[arg(long, value_delimiter = ',')]
    wrt: Option<Vec<String>>,
}

/// What to compile for, and which optimizations to leave out.
#[derive(Args)]
struct Lowering {
    /// The target preset.
    #[arg(long, default_value = "software-vulkan", value_parser = Target::PRESETS)]
    target: String,
    /// Switch an optimization off (repeatable), to measure what it buys.
    #[arg(long, value_parser = Optimizations::NAMES)]
    without: Vec<String>,
    /// Unroll a loop only when its trip count times its body's size is at most this
    /// many nodes; larger loops run on the device (0: every loop on the device).
    #[arg(long, value_name = "NODES", default_value_t = wgrad::lower::DEFAULT_UNROLL_LIMIT)]
    unroll_limit: usize,
}

/// What a command prints on success.
enum Output {
    /// Text, printed as it is.
    Text(String),
    /// Named tensors, written as JSON element by element.
    Tensors(Vec<(String, Tensor)>, Precision),
}

/// How an internal error (`Error::Internal`, or a panic) introduces itself.
const INTERNAL: &str = "internal error (this is a bug in wgrad)";

fn main() -> ExitCode {
    // SAFETY: the first statement of `main`, before any other thread starts.
    unsafe { wgrad::runtime::skip_display_device_selection() };
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,wgpu_hal=off"),
    )
    .init();
    // A panic is a bug in wgrad: say so, and exit 3 like any internal error.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: {INTERNAL} {info}");
        eprintln!("Please report it with the program and the command that triggered it.");
        std::process::exit(3);
    }));
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(output) => {
            let mut out = std::io::stdout().lock();
            let written = match output {
                Output::Text(text) => out.write_all(text.as_bytes()).and_then(|()| out.flush()),
                Output::Tensors(tensors, precision) => {
                    json::write_tensors(&mut out, &tensors, precision)
                }
            };
            match written {
                Ok(()) => ExitCode::SUCCESS,
                // The reader stopped reading (`wgrad eval … | head`): nothing to report.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write the output: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Err(message) if message.contains(INTERNAL) => {
            eprintln!("error: {message}");
            eprintln!("Please report it with the program and the command that triggered it.");
            ExitCode::from(3)
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

fn run(command: Command) -> Result<Output, String> {
    match command {
        Command::Grad { file, wrt, of } => {
            let g = load(&file)?;
            let wrt: Vec<&str> = wrt.iter().map(String::as_str).collect();
            let d = wgrad::grad(&g, of.as_deref(), &wrt).map_err(user)?;
            Ok(Output::Text(wgrad::print(&d)))
        }
        Command::Jvp {
            file,
            wrt,
            of,
            directions,
            order,
        } => {
            let g = load(&file)?;
            let wrt: Vec<&str> = wrt.iter().map(String::as_str).collect();
            let d = match (directions, order) {
                (Some(k), _) => batch::jvp_directions(&g, of.as_deref(), &wrt, k),
                (None, Some(k)) => match wrt.as_slice() {
                    [w] => batch::directional(&g, of.as_deref(), w, k),
                    _ => return Err("--order takes one --wrt input".into()),
                },
                (None, None) => wgrad::jvp(&g, of.as_deref(), &wrt),
            }
            .map_err(user)?;
            Ok(Output::Text(wgrad::print(&d)))
        }
        Command::Vjp {
            file,
            of,
            directions,
        } => {
            let g = load(&file)?;
            let names = wgrad::float_inputs(&g);
            let wrt: Vec<&str> = names.iter().map(String::as_str).collect();
            let d = match directions {
                Some(k) => batch::vjp_directions(&g, of.as_deref(), &wrt, k),
                None => wgrad::vjp(&g, of.as_deref(), &wrt),
            }
            .map_err(user)?;
            Ok(Output::Text(wgrad::print(&d)))
        }
        Command::Jacobian {
            file,
            wrt,
            of,
            mode,
        } => {
            let g = load(&file)?;
            let mode = match mode.as_str() {
                "forward" => batch::JacobianMode::Forward,
                "reverse" => batch::JacobianMode::Reverse,
                _ => batch::JacobianMode::Auto,
            };
            let d = batch::jacobian(&g, of.as_deref(), &wrt, mode).map_err(user)?;
            eprintln!(
                "{}: {} mode, {} directions in one program",
                d.output,
                d.mode.name(),
                d.directions
            );
            Ok(Output::Text(wgrad::print(&d.graph)))
        }
        Command::Hessian { file, wrt, of } => {
            let g = load(&file)?;
            let d = batch::hessian(&g, of.as_deref(), &wrt).map_err(user)?;
            Ok(Output::Text(wgrad::print(&d.graph)))
        }
        Command::Vmap { file, over, size } => {
            let g = load(&file)?;
            let over: Vec<&str> = over.iter().map(String::as_str).collect();
            let d = batch::vmap(&g, &over, size).map_err(user)?;
            Ok(Output::Text(wgrad::print(&d)))
        }
        Command::Eval {
            source,
            inputs,
            out,
        } => {
            let g = load_derived(&source, &Optimizations::ALL)?;
            let inputs = read_inputs(&g, &inputs)?;
            let results = wgrad::eval(&g, &inputs).map_err(user)?;
            write_results(results, Precision::F64, out.as_deref())
        }
        Command::Run {
            source,
            inputs,
            out,
        } => {
            let g = load_derived(&source, &Optimizations::ALL)?;
            let inputs = read_inputs(&g, &inputs)?;
            let rt = Runtime::new(&RuntimeOptions::default()).map_err(user)?;
            let program = wgrad::compile(&g, &Options::new(rt.target().clone())).map_err(user)?;
            let results = rt
                .load(&program)
                .and_then(|mut exe| exe.run(&inputs))
                .map_err(user)?;
            write_results(results, Precision::F32, out.as_deref())
        }
        Command::Compile {
            source,
            lowering,
            dump,
            explain,
        } => {
            let mut stages = Vec::new();
            let (g, options) = prepare_traced(&source, &lowering, &mut stages)?;
            let (program, report) = wgrad::lower::compile(&g, &options).map_err(user)?;
            if let Some(dir) = dump {
                wgrad::dump::write_staged(&dir, &stages, &program, &report)
                    .map_err(|e| format!("cannot write the dump to `{}`: {e}", dir.display()))?;
            }
            let mut text = String::new();
            // Columns as wide as their longest entry, so long names stay aligned.
            let name_width = program.kernels.iter().map(|k| k.name.len()).max();
            let variant_width = program.kernels.iter().map(|k| k.variant.len()).max();
            let (nw, vw) = (name_width.unwrap_or(0), variant_width.unwrap_or(0));
            for k in &program.kernels {
                let bindings = k.bindings.len();
                text.push_str(&format!(
                    "{:<nw$}  {:<vw$}  dispatch {:?}, {bindings} binding{}\n",
                    k.name,
                    k.variant,
                    k.dispatch,
                    if bindings == 1 { "" } else { "s" },
                ));
            }
            text.push_str(&wgrad::dump::stats_json(&program));
            if explain {
                // What the optimizer hoists out of loops, before differentiating.
                if lowering.without.iter().all(|w| w != "licm") && source.file != "-" {
                    let lines = wgrad::passes::licm::explain(&load(&source.file)?);
                    if !lines.is_empty() {
                        text.push_str("# loop-invariant code motion\n");
                        for line in lines {
                            text.push_str(&line);
                            text.push('\n');
                        }
                    }
                }
                text.push_str(&wgrad::dump::explain(&report));
            }
            Ok(Output::Text(text))
        }
        Command::Stats {
            source,
            lowering,
            json,
        } => {
            let (g, options) = prepare(&source, &lowering)?;
            let program = wgrad::compile(&g, &options).map_err(user)?;
            if json {
                return Ok(Output::Text(wgrad::dump::stats_json(&program)));
            }
            let s = &program.stats;
            Ok(Output::Text(format!(
                "kernels         {}\nmatmul_kernels  {}\nflops           {}\nbytes_moved     {}\npeak_bytes      {}\ntemp_bytes      {}\nresidual_bytes  {}\nallocated_bytes {}\n",
                s.kernels,
                s.matmul_kernels,
                s.flops,
                s.bytes_moved,
                s.peak_bytes,
                s.temp_bytes,
                s.residual_bytes,
                s.allocated_bytes
            )))
        }
        Command::Tune {
            files,
            wrt,
            budget,
            out,
        } => {
            if !(budget.is_finite() && budget > 0.0) {
                return Err(format!(
                    "--budget must be a positive number of seconds, got {budget}"
                ));
            }
            let mut programs = Vec::new();
            for file in &files {
                let mut g = load(file)?;
                if let Some(wrt) = &wrt {
                    let wrt: Vec<&str> = wrt.iter().map(String::as_str).collect();
                    g = wgrad::grad(&g, None, &wrt).map_err(|e| format!("{file}: {e}"))?;
                }
                programs.push((file.clone(), g));
            }
            if programs.is_empty() {
                programs = wgrad::tune::default_programs().map_err(user)?;
            }
            let rt = Runtime::new(&RuntimeOptions {
                timestamps: true,
                tiers: false,
                ..RuntimeOptions::default()
            })
            .map_err(user)?;
            let path = match out.or_else(|| rt.tuning_file().map(PathBuf::from)) {
                Some(path) => path,
                None => return Err("no cache directory for the tuning file (set XDG_CACHE_HOME or HOME, or give --out)".to_string()),
            };
            eprintln!(
                "tuning the products of {} program{} on {} (budget {budget} s)…",
                programs.len(),
                if programs.len() == 1 { "" } else { "s" },
                rt.adapter()
            );
            let started = std::time::Instant::now();
            let options = wgrad::tune::TuneOptions {
                budget: std::time::Duration::from_secs_f64(budget),
                ..Default::default()
            };
            let report = wgrad::tune::tune(&rt, &programs, &options, |line| eprintln!("  {line}"))
                .map_err(user)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("{}: cannot create the directory: {e}", dir.display()))?;
            }
            wgrad::io::write_text(&path, &report.file.print()).map_err(user)?;
            let skipped = report.variants.iter().filter(|v| v.2.is_err()).count()
                + report.row_variants.iter().filter(|v| v.2.is_err()).count()
                + report
                    .reduction_variants
                    .iter()
                    .filter(|v| v.2.is_err())
                    .count()
                + report.load_variants.iter().filter(|v| v.2.is_err()).count()
                + report
                    .split_variants
                    .iter()
                    .filter(|v| v.2.is_err())
                    .count();
            let plural = |n: usize| if n == 1 { "" } else { "s" };
            let reductions = match report.file.reductions.len() {
                0 => String::new(),
                n => format!(", {n} reduction split{}", plural(n)),
            };
            let mut text = format!(
                "wrote {}: {} product tile{}, {} row kernel mode{}{reductions} measured in {:.1} s ({}){}\n",
                path.display(),
                report.file.products.len(),
                plural(report.file.products.len()),
                report.file.rows.len(),
                plural(report.file.rows.len()),
                started.elapsed().as_secs_f64(),
                if report.timestamps {
                    "kernel times from timestamp queries"
                } else {
                    "wall clock per run"
                },
                if skipped > 0 {
                    format!("; {skipped} variants skipped")
                } else {
                    String::new()
                }
            );
            for (count, what, keep) in [
                (
                    report.not_reached.len(),
                    "product",
                    "the preset tile (or the one chosen by shape)",
                ),
                (report.rows_not_reached.len(), "row", "the preset mode"),
                (
                    report.reductions_not_reached.len(),
                    "reduction",
                    "the preset stages",
                ),
            ] {
                if count > 0 {
                    text.push_str(&format!(
                        "the budget ended before {count} {what} shape{}; they keep {keep}\n",
                        plural(count)
                    ));
                }
            }
            for (t, tile, comment) in &report.file.products {
                text.push_str(&format!(
                    "  {t}: {}x{}{} ({comment})\n",
                    tile[0],
                    tile[1],
                    product_choices(&report.file.loads, &report.file.splits, t)
                ));
            }
            for (r, threads, comment) in &report.file.rows {
                text.push_str(&format!("  {r}: {threads} per row ({comment})\n"));
            }
            for (r, stages, comment) in &report.file.reductions {
                text.push_str(&format!("  {r}: {stages} ({comment})\n"));
            }
            Ok(Output::Text(text))
        }
        Command::Adapter => {
            let rt = Runtime::new(&RuntimeOptions::default()).map_err(user)?;
            let t = rt.target();
            let quick = match t.quick_tile {
                Some([r, c]) => format!(
                    "; kernels compile at their first dispatch, so programs with larger tiles \
                     first run a quick tier with {r}x{c} tiles"
                ),
                None => String::new(),
            };
            Ok(Output::Text(format!(
                "{}\ntarget: class {}, {} storage buffers per stage, {} invocations per workgroup, \
                 {} bytes per storage binding, matmul tile {}x{}{}{quick}\n{}\n",
                rt.adapter(),
                t.class.name(),
                t.max_storage_buffers_per_shader_stage,
                t.max_compute_invocations_per_workgroup,
                t.max_storage_buffer_binding_size,
                t.matmul_tile[0],
                t.matmul_tile[1],
                match t.load_sharing_width() {
                    Some(w) if t.shares_loads_by_default() => {
                        format!("; a subgroup of {w} shares the loads of a product's A operand")
                    }
                    Some(w) => format!(
                        "; subgroups of {w}, which share a product's loads where the tuning file says"
                    ),
                    None => String::new(),
                },
                tuned_lines(&rt)
            )))
        }
        Command::Print { file } => Ok(Output::Text(wgrad::print(&load(&file)?))),
    }
}

/// Loads a program and, when `--wrt` is given, replaces it by its gradient, taken with
/// the `enabled` optimizations.
fn load_derived(source: &Source, enabled: &Optimizations) -> Result<Graph, String> {
    load_traced(source, enabled, &mut Vec::new())
}

/// [`load_derived`], recording differentiation's stages as `(stage, IR text)`.
fn load_traced(
    source: &Source,
    enabled: &Optimizations,
    stages: &mut Vec<(String, String)>,
) -> Result<Graph, String> {
    let g = load(&source.file)?;
    match &source.wrt {
        Some(wrt) => {
            let wrt: Vec<&str> = wrt.iter().map(String::as_str).collect();
            let mut trace = |stage: &str, g: &Graph| {
                stages.push((stage.to_string(), wgrad::print(g)));
            };
            wgrad::autodiff::grad_traced(&g, source.of.as_deref(), &wrt, enabled, &mut trace)
                .map_err(user)
        }
        None => Ok(g),
    }
}

/// The program (or its gradient) and the compile options, with the named optimizations
/// switched off in both differentiation and lowering.
fn prepare(source: &Source, lowering: &Lowering) -> Result<(Graph, Options), String> {
    prepare_traced(source, lowering, &mut Vec::new())
}

/// [`prepare`], recording differentiation's stages as `(stage, IR text)`.
fn prepare_traced(
    source: &Source,
    lowering: &Lowering,
    stages: &mut Vec<(String, String)>,
) -> Result<(Graph, Options), String> {
    let enabled = disabled(&lowering.without)?;
    let g = load_traced(source, &enabled, stages)?;
    let target = Target::preset(&lowering.target)
        .ok_or_else(|| format!("unknown target `{}`", lowering.target))?;
    Ok((
        g,
        Options {
            optimizations: enabled,
            unroll_limit: lowering.unroll_limit,
            ..Options::new(target)
        },
    ))
}

/// Every optimization but the named ones.
fn disabled(without: &[String]) -> Result<Optimizations, String> {
    without.iter().try_fold(Optimizations::ALL, |o, name| {
        o.without(name)
            .ok_or_else(|| format!("unknown optimization `{name}`"))
    })
}

/// The message of a user error, whether the compiler or the runtime reported it.
/// What `wgrad adapter` says of the tuning file: whether one applies, and its tiles.
fn tuned_lines(rt: &Runtime) -> String {
    let mut s = rt.tuning_status().to_string();
    let tuning = &rt.target().tuning;
    for (t, tile) in &tuning.products {
        s.push_str(&format!(
            "\n  {t}: {}x{}{}",
            tile[0],
            tile[1],
            product_choices(&tuning.loads, &tuning.splits, t)
        ));
    }
    for (r, threads) in &tuning.rows {
        s.push_str(&format!("\n  {r}: {threads} per row"));
    }
    for (r, stages) in &tuning.reductions {
        s.push_str(&format!("\n  {r}: {stages}"));
    }
    s
}

/// What a tuning file says of product shape `t` besides its tile: how it loads A (`,
/// A's loads shared` or `own`) and into how many parts it splits K; empty when it says
/// neither.
fn product_choices(
    loads: &[(wgrad::lower::Tiling, bool)],
    splits: &[(wgrad::lower::Tiling, usize)],
    t: &wgrad::lower::Tiling,
) -> String {
    let mut s = match loads.iter().find(|(l, _)| l == t) {
        Some((_, true)) => ", A's loads shared".to_string(),
        Some((_, false)) => ", A's loads own".to_string(),
        None => String::new(),
    };
    match splits.iter().find(|(l, _)| l == t) {
        Some((_, 1)) => s.push_str(", K not split"),
        Some((_, parts)) => s.push_str(&format!(", K in {parts} parts")),
        None => {}
    }
    s
}

fn user(e: impl Into<Error>) -> String {
    e.into().to_string()
}

/// Reads the inputs at `path` (JSON on standard input for `-`; see `wgrad::io` for the
/// file forms), streaming JSON, and checks them against the program's inputs; errors
/// name the file.
fn read_inputs(g: &Graph, path: &str) -> Result<HashMap<String, Tensor>, String> {
    let inputs = if path == "-" {
        json::read_tensors(std::io::stdin().lock()).map_err(|e| format!("<stdin>: {e}"))?
    } else {
        wgrad::io::read_inputs(path).map_err(user)?
    };
    let name = if path == "-" { "<stdin>" } else { path };
    json::check_inputs(g, &inputs).map_err(|e| format!("{name}: {e}"))?;
    Ok(inputs)
}

/// Prints results as JSON, or writes them to `out` in the form its name asks for.
fn write_results(
    results: Vec<(String, Tensor)>,
    precision: Precision,
    out: Option<&std::path::Path>,
) -> Result<Output, String> {
    match out {
        None => Ok(Output::Tensors(results, precision)),
        Some(path) => {
            wgrad::io::write_outputs(path, &results, precision).map_err(user)?;
            Ok(Output::Text(String::new()))
        }
    }
}

/// Reads a file, or standard input for `-`.
fn read(path: &str) -> Result<String, String> {
    let mut s = if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read `{path}`: {e}"))?
    };
    // Editors on some systems start UTF-8 files with a byte-order mark.
    if let Some(rest) = s.strip_prefix('\u{feff}') {
        s = rest.to_string();
    }
    Ok(s)
}

/// Reads and parses a program; parse errors carry the file name and line:column.
fn load(path: &str) -> Result<Graph, String> {
    let text = read(path)?;
    let name = if path == "-" { "<stdin>" } else { path };
    if text.trim().is_empty() {
        // Most often the failed first stage of a pipe.
        return Err(format!("{name}: the program is empty"));
    }
    wgrad::parse(&text).map_err(|e| format!("{name}:{e}"))
}
