//! A mutation fuzzer that keeps wgrad's contract: whatever text and JSON it is given,
//! every stage ends in a result or a clear error — never a panic, an internal error,
//! a broken round trip or a hang.
//!
//! Each case starts from a seed program (the example programs) and mutates it: tokens
//! replaced by other tokens of the program, by op and type names, or by extreme numbers
//! and extents; lines deleted, duplicated or swapped. Its JSON inputs are generated
//! from the declared input types (with extreme values now and then) and sometimes
//! mutated as text. The case then runs, in process, the stages of the command line:
//! `print` (and parsing the printed text back), `grad`, `jvp`, `vmap` over every input,
//! `eval` of the program and of its gradient within a small interpreter [`Budget`], and
//! `stats` (lowering the program, its gradient and its batched form for one of the
//! target presets, with naga validation of every kernel).
//!
//! Cases are numbered and each draws from its own generator seeded by the run's seed
//! and its number, so a finding is reproduced by its number alone, whatever the number
//! of threads. The test suite runs a bounded number of cases; `examples/fuzz.rs` runs
//! as many as asked.

use crate::compiler::Error as CompilerError;
use crate::ir::Budget;
use crate::json::{self, Precision};
use crate::lower::{Options, Target};
use crate::{DType, Graph, Tensor, Type};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A program the fuzzer mutates, with the JSON inputs that go with it, if any.
#[derive(Clone, Debug)]
pub struct Seed {
    /// Where it came from, for reports.
    pub name: String,
    /// The program's text.
    pub program: String,
    /// JSON inputs written for it.
    pub inputs: Option<String>,
}

/// Reads every `*.wg` program of `dir`, with `NAME.inputs.json` beside it as its inputs.
pub fn seeds_from_dir(dir: &Path) -> std::io::Result<Vec<Seed>> {
    let mut seeds = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wg"))
        .collect();
    paths.sort();
    for path in paths {
        let inputs = path.with_extension("inputs.json");
        seeds.push(Seed {
            name: path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            program: std::fs::read_to_string(&path)?,
            inputs: std::fs::read_to_string(inputs).ok(),
        });
    }
    Ok(seeds)
}

/// How a run goes.
#[derive(Clone, Debug)]
pub struct FuzzOptions {
    /// Cases to run.
    pub cases: usize,
    /// The run's seed: with a case's number, it decides everything about the case.
    pub seed: u64,
    /// The first case's number (to resume or repeat a run).
    pub first: usize,
    /// Worker threads.
    pub threads: usize,
    /// A case taking longer than this is a finding (a hang, when it never ends).
    pub case_time: Duration,
    /// The interpreter's budget for each evaluation.
    pub budget: Budget,
}

impl Default for FuzzOptions {
    /// 1,000 cases from seed 0 on one thread, 10 s per case, and an interpreter budget of
    /// 2²⁰ elements per tensor and 2²⁴ element operations per run.
    fn default() -> FuzzOptions {
        FuzzOptions {
            cases: 1000,
            seed: 0,
            first: 0,
            threads: 1,
            case_time: Duration::from_secs(10),
            budget: Budget {
                max_elements: 1 << 20,
                max_work: 1 << 24,
            },
        }
    }
}

/// A case that broke the contract.
#[derive(Clone, Debug)]
pub struct Finding {
    /// The case's number.
    pub case: usize,
    /// The stage that broke it: `parse`, `round trip`, `grad`, `jvp`, `inputs`, `eval`,
    /// `stats`, or `case` for a case that took too long.
    pub stage: &'static str,
    /// What happened.
    pub what: String,
    /// The program's text.
    pub program: String,
    /// The JSON inputs, if the case had any.
    pub inputs: Option<String>,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "case {} ({}): {}", self.case, self.stage, self.what)?;
        writeln!(f, "--- program ---\n{}", self.program)?;
        if let Some(inputs) = &self.inputs {
            writeln!(f, "--- inputs ---\n{inputs}")?;
        }
        Ok(())
    }
}

/// What one case reached: each stage it ran to a result (not an error).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reached {
    /// The program parsed (and printed back to the same text).
    pub parsed: bool,
    /// Its gradient or JVP was taken.
    pub differentiated: bool,
    /// It, or its gradient, was evaluated.
    pub evaluated: bool,
    /// It, or its gradient, was compiled.
    pub compiled: bool,
}

/// A run's outcome.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Cases run.
    pub cases: usize,
    /// Cases whose program parsed.
    pub parsed: usize,
    /// Cases differentiated.
    pub differentiated: usize,
    /// Cases evaluated.
    pub evaluated: usize,
    /// Cases compiled.
    pub compiled: usize,
    /// Cases that broke the contract.
    pub findings: Vec<Finding>,
    /// The slowest case's number and time.
    pub slowest: (usize, Duration),
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} cases in {:.1} s: {} parsed, {} differentiated, {} evaluated, {} compiled; \
             slowest case {} ({:.2} s); {} findings",
            self.cases,
            self.elapsed.as_secs_f64(),
            self.parsed,
            self.differentiated,
            self.evaluated,
            self.compiled,
            self.slowest.0,
            self.slowest.1.as_secs_f64(),
            self.findings.len()
        )
    }
}

/// Runs `options.cases` cases mutated from `seeds`, on `options.threads` threads;
/// `progress` is called with the number of cases done so far, now and then.
pub fn run(seeds: &[Seed], options: &FuzzOptions, mut progress: impl FnMut(usize)) -> Report {
    let clock = Instant::now();
    let mut report = Report::default();
    if seeds.is_empty() || options.cases == 0 {
        return report;
    }
    let threads = options.threads.clamp(1, 64);
    let (tx, rx) = mpsc::channel::<(usize, Result<Reached, Finding>, Duration)>();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Cases claimed by a worker and not reported yet: what a hang is stuck in.
    let running = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    for _ in 0..threads {
        let (tx, next, seeds, options, running) = (
            tx.clone(),
            std::sync::Arc::clone(&next),
            seeds.to_vec(),
            options.clone(),
            std::sync::Arc::clone(&running),
        );
        // Stages recurse over expressions as the command line does: give the worker
        // the main thread's stack, not a spawned thread's default.
        let spawned = std::thread::Builder::new()
            .name("fuzz".into())
            .stack_size(8 << 20)
            .spawn(move || {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if k >= options.cases {
                        break;
                    }
                    let case = options.first + k;
                    lock(&running).insert(case);
                    let start = Instant::now();
                    // Whatever panics outside a stage (printing, say) is a finding too,
                    // not a worker lost with its case.
                    let outcome =
                        catch_unwind(AssertUnwindSafe(|| run_numbered(&seeds, &options, case)))
                            .unwrap_or_else(|p| {
                                let (program, inputs) =
                                    catch_unwind(|| case_text(&seeds, &options, case))
                                        .unwrap_or_default();
                                Err(Finding {
                                    case,
                                    stage: "case",
                                    what: format!("panic: {}", panic_text(&p)),
                                    program,
                                    inputs,
                                })
                            });
                    lock(&running).remove(&case);
                    if tx.send((case, outcome, start.elapsed())).is_err() {
                        break;
                    }
                }
            });
        if spawned.is_err() {
            break;
        }
    }
    drop(tx);
    let mut done = 0;
    // A worker stuck in one case stops sending: wait for it a while past the case
    // limit, then report what is known as a hang.
    let patience = options.case_time * 3 + Duration::from_secs(5);
    while done < options.cases {
        match rx.recv_timeout(patience) {
            Ok((case, outcome, took)) => {
                done += 1;
                report.cases += 1;
                if took > report.slowest.1 {
                    report.slowest = (case, took);
                }
                match outcome {
                    Ok(r) => {
                        report.parsed += usize::from(r.parsed);
                        report.differentiated += usize::from(r.differentiated);
                        report.evaluated += usize::from(r.evaluated);
                        report.compiled += usize::from(r.compiled);
                        if took > options.case_time {
                            let (program, inputs) = case_text(seeds, options, case);
                            report.findings.push(Finding {
                                case,
                                stage: "case",
                                what: format!("took {:.1} s", took.as_secs_f64()),
                                program,
                                inputs,
                            });
                        }
                    }
                    Err(f) => report.findings.push(f),
                }
                if done % 100 == 0 {
                    progress(done);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                for &case in lock(&running).iter() {
                    let (program, inputs) = case_text(seeds, options, case);
                    report.findings.push(Finding {
                        case,
                        stage: "case",
                        what: format!(
                            "no case finished in {:.0} s: a hang",
                            patience.as_secs_f64()
                        ),
                        program,
                        inputs,
                    });
                }
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if report.cases < options.cases && report.findings.is_empty() {
        report.findings.push(Finding {
            case: options.first + report.cases,
            stage: "case",
            what: format!(
                "only {} of {} cases reported back",
                report.cases, options.cases
            ),
            program: String::new(),
            inputs: None,
        });
    }
    report.findings.sort_by_key(|f| f.case);
    report.elapsed = clock.elapsed();
    report
}

/// The program and inputs of case `case`.
pub fn case_text(seeds: &[Seed], options: &FuzzOptions, case: usize) -> (String, Option<String>) {
    let mut rng = case_rng(options.seed, case);
    let seed = &seeds[rng.random_range(0..seeds.len())];
    let program = if rng.random_bool(0.9) {
        mutate_program(&seed.program, &mut rng)
    } else {
        seed.program.clone()
    };
    let inputs = match crate::parse(&program) {
        Ok(g) => match &seed.inputs {
            Some(text) if rng.random_bool(0.3) => Some(text.clone()),
            _ => inputs_for(&g, &mut rng),
        },
        Err(_) => seed.inputs.clone(),
    };
    let inputs = match inputs {
        Some(text) if rng.random_bool(0.25) => Some(mutate_json(&text, &mut rng)),
        other => other,
    };
    (program, inputs)
}

fn case_rng(seed: u64, case: usize) -> StdRng {
    StdRng::seed_from_u64(seed ^ (case as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn run_numbered(seeds: &[Seed], options: &FuzzOptions, case: usize) -> Result<Reached, Finding> {
    let (program, inputs) = match catch_unwind(|| case_text(seeds, options, case)) {
        Ok(t) => t,
        Err(p) => {
            return Err(Finding {
                case,
                stage: "parse",
                what: format!("panic while preparing the case: {}", panic_text(&p)),
                program: String::new(),
                inputs: None,
            });
        }
    };
    check_case(&program, inputs.as_deref(), &options.budget).map_err(|(stage, what)| Finding {
        case,
        stage,
        what,
        program,
        inputs,
    })
}

/// Runs every stage on one program and its inputs: `Err((stage, what))` when one
/// breaks the contract. What the fuzzer runs for each case, and what a regression case
/// in the test suite runs.
pub fn check_case(
    program: &str,
    inputs: Option<&str>,
    budget: &Budget,
) -> Result<Reached, (&'static str, String)> {
    let mut reached = Reached::default();
    let Some(g) = stage("parse", || {
        crate::parse(program).map_err(CompilerError::from)
    })?
    else {
        return Ok(reached);
    };
    let printed = crate::print(&g);
    match stage("round trip", || {
        crate::parse(&printed).map_err(CompilerError::from)
    })? {
        Some(again) if crate::print(&again) == printed => {}
        Some(again) => {
            return Err((
                "round trip",
                format!(
                    "printed text parses to a different program:\n{printed}\n---\n{}",
                    crate::print(&again)
                ),
            ));
        }
        None => return Err(("round trip", "printed text does not parse".into())),
    }
    reached.parsed = true;
    let names = crate::float_inputs(&g);
    let wrt: Vec<&str> = names.iter().map(String::as_str).collect();
    let dg = stage("grad", || crate::grad(&g, None, &wrt))?;
    let tangent = stage("jvp", || crate::jvp(&g, None, &wrt))?;
    reached.differentiated = dg.is_some() || tangent.is_some();
    // Batched over every input: a clear error or a program that compiles.
    let all: Vec<&str> = g.inputs().iter().map(|(n, _)| n.as_str()).collect();
    let batched = stage("vmap", || crate::batch::vmap(&g, &all, 2))?;
    let ins = match inputs {
        Some(text) => stage("inputs", || json::parse_tensors(text))?,
        None => None,
    };
    if let Some(ins) = &ins {
        for graph in std::iter::once(&g).chain(&dg) {
            if stage("inputs", || json::check_inputs(graph, ins))?.is_some()
                && stage("eval", || crate::ir::eval_with(graph, ins, *budget))?.is_some()
            {
                reached.evaluated = true;
            }
        }
    }
    // The presets take turns (by the text's length, so a case always compiles for the
    // same one): the software preset's 16×16 register tiles take 20 times longer to
    // validate than the others' 4×4, and the others' binding limits and row workgroups exercise other paths.
    let target = match program.len() % 8 {
        0 => Target::software_vulkan(),
        1..=3 => Target::discrete_gpu(),
        _ => Target::portable(),
    };
    let options = Options::new(target);
    for graph in std::iter::once(&g).chain(&dg).chain(&batched) {
        if stage("stats", || crate::lower::compile(graph, &options))?.is_some() {
            reached.compiled = true;
        }
    }
    Ok(reached)
}

/// Runs one stage: `Ok(Some(value))`, `Ok(None)` for a clear error, and `Err` for a
/// panic, an internal error or an error without a message.
fn stage<T>(
    name: &'static str,
    f: impl FnOnce() -> crate::compiler::Result<T>,
) -> Result<Option<T>, (&'static str, String)> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(Some(v)),
        Ok(Err(CompilerError::Internal(m))) => Err((name, format!("internal error: {m}"))),
        Ok(Err(e)) if e.to_string().trim().is_empty() => {
            Err((name, format!("an error without a message: {e:?}")))
        }
        Ok(Err(_)) => Ok(None),
        Err(p) => Err((name, format!("panic: {}", panic_text(&p)))),
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Numbers that find the edges: zero and signs, the ends of each integer type and of
/// f32, the driver's loop limit, and values that overflow a size.
const EXTREME_NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "7",
    "-0.0",
    "0.5",
    "1e-45",
    "3.4028235e38",
    "3.5e38",
    "1e308",
    "nan",
    "inf",
    "-inf",
    "255",
    "65535",
    "65536",
    "100000",
    "2147483647",
    "2147483648",
    "-2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551616",
];

/// Extents that find the edges of shapes: empty, single, the loop limit, and products
/// that overflow 32 and 64 bits.
const EXTREME_EXTENTS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "65535",
    "65536",
    "70000",
    "4294967296",
    "2147483648",
    "4611686018427387904",
];

/// Words of the text format a mutation may put anywhere.
const WORDS: &[&str] = &[
    "input",
    "output",
    "constant",
    "add",
    "mul",
    "sub",
    "div",
    "neg",
    "exp",
    "log",
    "tanh",
    "sqrt",
    "max",
    "select",
    "dot",
    "reduce_sum",
    "reduce_max",
    "broadcast",
    "reshape",
    "transpose",
    "slice",
    "pad",
    "concat",
    "gather",
    "scatter_add",
    "one_hot",
    "iota",
    "dynamic_slice",
    "dynamic_update_slice",
    "loop",
    "get",
    "stop_gradient",
    "f32",
    "i32",
    "u32",
    "bool",
    "f32[]",
    "i32[4]",
    "f32[0]",
    "f32[65536,65536]",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    "=",
    "%0",
    "%1",
    "%99999",
    "dims=[]",
    "axes=[0]",
    "axis=1",
    "trips=100000",
    "carried=1",
    "",
];

/// One, two or four mutations of a program's text.
pub fn mutate_program(text: &str, rng: &mut impl Rng) -> String {
    let mut out = text.to_string();
    // Mostly one mutation, so that many cases still parse and reach the later stages.
    let count = match rng.random_range(0..20) {
        0..=11 => 1,
        12..=16 => 2,
        _ => 4,
    };
    for _ in 0..count {
        out = match rng.random_range(0..10) {
            0..=4 => mutate_token(&out, rng),
            5..=6 => mutate_extent(&out, rng),
            _ => mutate_line(&out, rng),
        };
    }
    out
}

/// Splits text into tokens (runs of word characters, or single other characters),
/// keeping every character, so that joining the tokens gives the text back.
fn tokens(text: &str) -> Vec<&str> {
    let word = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '%' | '-' | '+');
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if word(c) {
            while let Some(&(_, d)) = chars.peek() {
                if !word(d) {
                    break;
                }
                chars.next();
            }
            let end = chars.peek().map_or(text.len(), |&(j, _)| j);
            out.push(&text[i..end]);
            start = end;
        } else {
            let end = i + c.len_utf8();
            out.push(&text[i..end]);
            start = end;
        }
    }
    debug_assert_eq!(start, text.len());
    out
}

fn mutate_token(text: &str, rng: &mut impl Rng) -> String {
    let toks = tokens(text);
    let solid: Vec<usize> = (0..toks.len())
        .filter(|&i| !toks[i].trim().is_empty())
        .collect();
    if solid.is_empty() {
        return text.to_string();
    }
    let at = solid[rng.random_range(0..solid.len())];
    let replacement: String = match rng.random_range(0..6) {
        0 => toks[solid[rng.random_range(0..solid.len())]].to_string(),
        1 | 2 => EXTREME_NUMBERS[rng.random_range(0..EXTREME_NUMBERS.len())].to_string(),
        3 => WORDS[rng.random_range(0..WORDS.len())].to_string(),
        4 => String::new(),
        _ => format!("{} {}", toks[at], toks[at]),
    };
    let mut out = String::with_capacity(text.len() + 16);
    for (i, t) in toks.iter().enumerate() {
        out.push_str(if i == at { &replacement } else { t });
    }
    out
}

/// Replaces a number inside a `[...]` (a shape, or an attribute list) by an extreme
/// extent.
fn mutate_extent(text: &str, rng: &mut impl Rng) -> String {
    let toks = tokens(text);
    let mut depth = 0i32;
    let mut inside = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        match *t {
            "[" => depth += 1,
            "]" => depth -= 1,
            t if depth > 0 && t.bytes().all(|b| b.is_ascii_digit()) => inside.push(i),
            _ => {}
        }
    }
    if inside.is_empty() {
        return mutate_token(text, rng);
    }
    let at = inside[rng.random_range(0..inside.len())];
    let extent = EXTREME_EXTENTS[rng.random_range(0..EXTREME_EXTENTS.len())];
    toks.iter()
        .enumerate()
        .map(|(i, t)| if i == at { extent } else { t })
        .collect()
}

fn mutate_line(text: &str, rng: &mut impl Rng) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return text.to_string();
    }
    let i = rng.random_range(0..lines.len());
    let j = rng.random_range(0..lines.len());
    match rng.random_range(0..4) {
        0 => {
            lines.remove(i);
        }
        1 => lines.insert(j, lines[i]),
        2 => lines.swap(i, j),
        _ => {
            let line = lines.remove(i);
            lines.insert(j.min(lines.len()), line);
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// One to three token mutations of JSON text, with extreme numbers among them.
pub fn mutate_json(text: &str, rng: &mut impl Rng) -> String {
    let mut out = text.to_string();
    for _ in 0..rng.random_range(1..=3) {
        out = mutate_token(&out, rng);
    }
    out
}

/// JSON inputs for every input `g` declares (`None` when one is too large to write):
/// floats mostly in [-2, 2] with an extreme value now and then, small integers (valid
/// labels, mostly), alternating bools.
pub fn inputs_for(g: &Graph, rng: &mut impl Rng) -> Option<String> {
    let mut tensors = Vec::new();
    for (name, v) in g.inputs() {
        let ty: &Type = g.ty(*v);
        let n = ty.numel();
        if n > 1 << 16 {
            return None;
        }
        let data: Vec<f64> = (0..n)
            .map(|i| match ty.dtype {
                DType::F32 if rng.random_bool(0.02) => {
                    [0.0, -0.0, 1e38, -1e38, f64::NAN, f64::INFINITY, 1e-45][rng.random_range(0..7)]
                }
                DType::F32 => rng.random_range(-2.0..2.0),
                DType::I32 => f64::from(rng.random_range(-1..12)),
                DType::U32 => f64::from(rng.random_range(0..12)),
                DType::Bool => (i % 2) as f64,
            })
            .collect();
        tensors.push((name.clone(), Tensor::new(ty.clone(), data).ok()?));
    }
    Some(json::format_tensors(&tensors, Precision::F64))
}

#[cfg(test)]
mod tests {
    use super::tokens;

    #[test]
    fn tokens_join_back_to_the_text() {
        let text = "%3 = dot %1, %2 lhs_batch=[] : f32[2,3]\n  output y = %3\n";
        assert_eq!(tokens(text).concat(), text);
        assert!(tokens(text).contains(&"lhs_batch"));
        assert!(tokens(text).contains(&"%3"));
    }
}
