//! The tuning file: the kernel variants `wgrad tune` measured fastest on one adapter
//! (products' tiles, loads and splits, row kernels' invocations per row, reductions'
//! stages), as plain text a person can read and diff.
//!
//! ```text
//! # wgrad tuning file: kernel variants measured on this adapter by `wgrad tune`.
//! adapter = llvmpipe (LLVM 15.0.6, 256 bits)
//! driver = llvmpipe
//! driver_info = Mesa 22.3.6 (LLVM 15.0.6)
//! product batch=1 m=256 k=784 n=512 a=row b=row tile=16x8 loads=shared  # 16x8 7.1 ms, 16x16 7.9 ms; A's loads own 9.5 ms
//! row rows=1024 len=1000 sums=3 threads=1  # 1 4.6 ms, 64 12.3 ms
//! reduce trips=131072 outputs=1 stages=2 run=4096  # 4096 0.31 ms, 1024 0.35 ms, 256 0.52 ms
//! ```
//!
//! The three keys say which adapter, driver and driver version the measurements hold
//! for: a file written elsewhere does not apply ([`TuningFile::applies_to`]). Each
//! `product` line names a product shape as [`Tiling`] does and its tile, one of
//! [`PRODUCT_TILES`], and may say whether a subgroup shares A's loads (`loads=shared`)
//! or every invocation loads its own (`loads=own`), and into how many parts its
//! contraction is split (`split=1`, or one of [`SPLITS`]); each `row` line names a row kernel's shape as [`RowShape`] does
//! and its invocations per row, one of [`ROW_MODES`]; each `reduce` line names a
//! reduction's shape as [`ReductionShape`] does and its stages: `stages=1`, or
//! `stages=2 run=N` with N one of [`REDUCTION_RUNS`]; what follows `#` is a comment
//! (the times measured).

use super::fuse_products::Tiling;
use super::target::{
    PRODUCT_TILES, REDUCTION_RUNS, ROW_MODES, ReductionShape, ReductionStages, RowShape, SPLITS,
    Tuning,
};
use std::fmt::Write;

/// A parsed tuning file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TuningFile {
    /// The adapter's name.
    pub adapter: String,
    /// The driver's name.
    pub driver: String,
    /// The driver's version and build.
    pub driver_info: String,
    /// Each product shape and its tile, with the comment written after it.
    pub products: Vec<(Tiling, [u32; 2], String)>,
    /// The product shapes whose lines say `loads=`, and whether it is `shared`.
    pub loads: Vec<(Tiling, bool)>,
    /// The product shapes whose lines say `split=`, and its parts.
    pub splits: Vec<(Tiling, usize)>,
    /// Each reduction shape and its stages, with the comment.
    pub reductions: Vec<(ReductionShape, ReductionStages, String)>,
    /// Each row kernel shape and its invocations per row, with the comment.
    pub rows: Vec<(RowShape, usize, String)>,
}

impl TuningFile {
    /// Parses a tuning file. Fails with `line N: what is wrong` at the first line that
    /// is not a key, a product line, a comment or blank, at a tile outside
    /// [`PRODUCT_TILES`] (a variant this version does not have), and when a key is
    /// missing.
    pub fn parse(text: &str) -> Result<TuningFile, String> {
        let mut file = TuningFile::default();
        let (mut adapter, mut driver, mut info) = (false, false, false);
        for (i, line) in text.lines().enumerate() {
            let at = |m: String| format!("line {}: {m}", i + 1);
            let (code, comment) = match line.split_once('#') {
                Some((c, rest)) => (c.trim(), rest.trim()),
                None => (line.trim(), ""),
            };
            if code.is_empty() {
                continue;
            }
            if let Some(rest) = code.strip_prefix("product ") {
                let (tiling, tile, loads, split) = product(rest).map_err(at)?;
                if let Some(shared) = loads {
                    file.loads.push((tiling, shared));
                }
                if let Some(parts) = split {
                    if parts != 1 && !SPLITS.contains(&parts) {
                        return Err(at(format!(
                            "split={parts} is not a split of this version (splits: 1, {})",
                            SPLITS.map(|s| s.to_string()).join(", ")
                        )));
                    }
                    file.splits.push((tiling, parts));
                }
                if !PRODUCT_TILES.contains(&tile) {
                    return Err(at(format!(
                        "tile {}x{} is not a variant of this version (tiles: {})",
                        tile[0],
                        tile[1],
                        tiles()
                    )));
                }
                file.products.push((tiling, tile, comment.to_string()));
                continue;
            }
            if let Some(rest) = code.strip_prefix("row ") {
                let (shape, threads) = row(rest).map_err(at)?;
                if !ROW_MODES.contains(&threads) {
                    return Err(at(format!(
                        "threads={threads} is not a row kernel mode of this version (modes: {})",
                        ROW_MODES.map(|t| t.to_string()).join(", ")
                    )));
                }
                file.rows.push((shape, threads, comment.to_string()));
                continue;
            }
            if let Some(rest) = code.strip_prefix("reduce ") {
                let (shape, stages) = reduce(rest).map_err(at)?;
                file.reductions.push((shape, stages, comment.to_string()));
                continue;
            }
            let Some((key, value)) = code.split_once('=') else {
                return Err(at(format!(
                    "expected `key = value`, `product …`, `row …` or `reduce …`, got `{code}`"
                )));
            };
            let value = value.trim().to_string();
            match key.trim() {
                "adapter" => (file.adapter, adapter) = (value, true),
                "driver" => (file.driver, driver) = (value, true),
                "driver_info" => (file.driver_info, info) = (value, true),
                other => return Err(at(format!("unknown key `{other}`"))),
            }
        }
        for (seen, key) in [
            (adapter, "adapter"),
            (driver, "driver"),
            (info, "driver_info"),
        ] {
            if !seen {
                return Err(format!("no `{key} = …` line"));
            }
        }
        Ok(file)
    }

    /// The file's text, which [`TuningFile::parse`] reads back.
    pub fn print(&self) -> String {
        let mut s = String::from(
            "# wgrad tuning file: kernel variants measured on this adapter by `wgrad tune`.\n",
        );
        let _ = writeln!(s, "adapter = {}", self.adapter);
        let _ = writeln!(s, "driver = {}", self.driver);
        let _ = writeln!(s, "driver_info = {}", self.driver_info);
        for (t, tile, comment) in &self.products {
            let layout = |transposed: bool| if transposed { "transposed" } else { "row" };
            let _ = write!(
                s,
                "product batch={} m={} k={} n={} a={} b={} tile={}x{}",
                t.batch,
                t.m,
                t.k,
                t.n,
                layout(t.a_transposed),
                layout(t.b_transposed),
                tile[0],
                tile[1]
            );
            if let Some((_, shared)) = self.loads.iter().find(|(l, _)| l == t) {
                s.push_str(if *shared {
                    " loads=shared"
                } else {
                    " loads=own"
                });
            }
            if let Some((_, parts)) = self.splits.iter().find(|(l, _)| l == t) {
                let _ = write!(s, " split={parts}");
            }
            end_line(&mut s, comment);
        }
        for (r, threads, comment) in &self.rows {
            let _ = write!(
                s,
                "row rows={} len={} sums={} threads={threads}",
                r.rows, r.len, r.sums
            );
            end_line(&mut s, comment);
        }
        for (r, stages, comment) in &self.reductions {
            let _ = write!(s, "reduce trips={} outputs={}", r.trips, r.outputs);
            let _ = match stages {
                ReductionStages::One => write!(s, " stages=1"),
                ReductionStages::Two(run) => write!(s, " stages=2 run={run}"),
            };
            end_line(&mut s, comment);
        }
        s
    }

    /// `Ok` when the file was measured on this adapter, driver and driver version;
    /// otherwise what differs.
    pub fn applies_to(&self, adapter: &str, driver: &str, driver_info: &str) -> Result<(), String> {
        for (what, ours, theirs) in [
            ("adapter", adapter, &self.adapter),
            ("driver", driver, &self.driver),
            ("driver version", driver_info, &self.driver_info),
        ] {
            if ours != theirs {
                return Err(format!(
                    "it was measured on {what} `{theirs}`, this is `{ours}`"
                ));
            }
        }
        Ok(())
    }

    /// The tiles as a target's [`Tuning`], read from `source`.
    pub fn tuning(&self, source: &str) -> Tuning {
        Tuning {
            source: source.to_string(),
            products: self
                .products
                .iter()
                .map(|(t, tile, _)| (*t, *tile))
                .collect(),
            rows: self.rows.iter().map(|(r, t, _)| (*r, *t)).collect(),
            loads: self.loads.clone(),
            splits: self.splits.clone(),
            reductions: self
                .reductions
                .iter()
                .map(|(r, stages, _)| (*r, *stages))
                .collect(),
        }
    }
}

/// Ends a line of the file, with its comment when there is one.
fn end_line(s: &mut String, comment: &str) {
    if comment.is_empty() {
        s.push('\n');
    } else {
        let _ = writeln!(s, "  # {comment}");
    }
}

/// The fields `key=N` of a line, each a positive integer and one of `keys`: their
/// values in the order of `keys` (`None` where a key is absent).
fn numbers<const K: usize>(rest: &str, keys: [&str; K]) -> Result<[Option<usize>; K], String> {
    let mut values = [None; K];
    for field in rest.split_whitespace() {
        let Some((key, value)) = field.split_once('=') else {
            return Err(format!("expected `key=value`, got `{field}`"));
        };
        let Some(slot) = keys.iter().position(|k| *k == key) else {
            return Err(format!("unknown field `{key}`"));
        };
        let n = value
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{key}` must be a positive integer, got `{value}`"))?;
        values[slot] = Some(n);
    }
    Ok(values)
}

/// The value of required field `key` of a `what` line, read by [`numbers`].
fn required(value: Option<usize>, what: &str, key: &str) -> Result<usize, String> {
    value.ok_or_else(|| format!("the {what} has no `{key}=`"))
}

/// A row line after `row `: `rows=… len=… sums=… threads=…`.
fn row(rest: &str) -> Result<(RowShape, usize), String> {
    const KEYS: [&str; 4] = ["rows", "len", "sums", "threads"];
    let values = numbers(rest, KEYS)?;
    let [rows, len, sums, threads] = [0, 1, 2, 3].map(|i| required(values[i], "row", KEYS[i]));
    Ok((
        RowShape {
            rows: rows?,
            len: len?,
            sums: sums?,
        },
        threads?,
    ))
}

/// A reduction line after `reduce `: `trips=… outputs=… stages=1`, or `stages=2
/// run=N` with N one of [`REDUCTION_RUNS`].
fn reduce(rest: &str) -> Result<(ReductionShape, ReductionStages), String> {
    const KEYS: [&str; 4] = ["trips", "outputs", "stages", "run"];
    let [trips, outputs, stages, run] = numbers(rest, KEYS)?;
    let trips = required(trips, "reduction", "trips")?;
    let outputs = required(outputs, "reduction", "outputs")?;
    let stages = match (required(stages, "reduction", "stages")?, run) {
        (1, None) => ReductionStages::One,
        (1, Some(_)) => return Err("`run=` goes with `stages=2` only".to_string()),
        (2, Some(run)) if REDUCTION_RUNS.contains(&run) => ReductionStages::Two(run),
        (2, Some(run)) => {
            return Err(format!(
                "run={run} is not a reduction run of this version (runs: {})",
                REDUCTION_RUNS.map(|r| r.to_string()).join(", ")
            ));
        }
        (2, None) => return Err("`stages=2` needs `run=`".to_string()),
        (n, _) => return Err(format!("`stages` must be 1 or 2, got {n}")),
    };
    Ok((ReductionShape { trips, outputs }, stages))
}

/// The tiles of [`PRODUCT_TILES`], as `4x4, 4x8, …`.
fn tiles() -> String {
    PRODUCT_TILES
        .iter()
        .map(|[r, c]| format!("{r}x{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A product line after `product `: `batch=1 m=… k=… n=… a=row b=row tile=RxC`, and
/// perhaps `loads=shared` or `loads=own`, and `split=N`.
#[allow(clippy::type_complexity)]
fn product(rest: &str) -> Result<(Tiling, [u32; 2], Option<bool>, Option<usize>), String> {
    let mut t = Tiling {
        a_transposed: false,
        b_transposed: false,
        m: 0,
        n: 0,
        k: 0,
        batch: 0,
    };
    let (mut tile, mut loads, mut split) = (None, None, None);
    let mut seen = Vec::new();
    for field in rest.split_whitespace() {
        let Some((key, value)) = field.split_once('=') else {
            return Err(format!("expected `key=value`, got `{field}`"));
        };
        let number = || {
            value
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`{key}` must be a positive integer, got `{value}`"))
        };
        let layout = || match value {
            "row" => Ok(false),
            "transposed" => Ok(true),
            _ => Err(format!(
                "`{key}` must be `row` or `transposed`, got `{value}`"
            )),
        };
        match key {
            "batch" => t.batch = number()?,
            "m" => t.m = number()?,
            "k" => t.k = number()?,
            "n" => t.n = number()?,
            "a" => t.a_transposed = layout()?,
            "b" => t.b_transposed = layout()?,
            "tile" => {
                let parsed = value
                    .split_once('x')
                    .and_then(|(r, c)| Some([r.parse().ok()?, c.parse().ok()?]));
                tile =
                    Some(parsed.ok_or_else(|| format!("`tile` must be like 16x8, got `{value}`"))?);
            }
            "split" => split = Some(number()?),
            "loads" => {
                loads = Some(match value {
                    "shared" => true,
                    "own" => false,
                    _ => {
                        return Err(format!("`loads` must be `shared` or `own`, got `{value}`"));
                    }
                });
            }
            other => return Err(format!("unknown field `{other}`")),
        }
        seen.push(key);
    }
    for key in ["batch", "m", "k", "n", "a", "b", "tile"] {
        if !seen.contains(&key) {
            return Err(format!("the product has no `{key}=`"));
        }
    }
    Ok((t, tile.unwrap_or_default(), loads, split))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# a comment\n\
        adapter = llvmpipe (LLVM 15.0.6, 256 bits)\n\
        driver = llvmpipe\n\
        driver_info = Mesa 22.3.6 (LLVM 15.0.6)\n\
        product batch=1 m=256 k=784 n=512 a=row b=row tile=16x8  # 16x8 7.1 ms\n\
        product batch=2 m=8 k=16 n=4 a=transposed b=transposed tile=4x4 loads=own split=4\n\
        row rows=1024 len=1000 sums=3 threads=1  # 1 4.6 ms, 64 12.3 ms\n\
        reduce trips=131072 outputs=1 stages=2 run=4096  # 4096 0.3 ms\n\
        reduce trips=1024 outputs=1 stages=1\n";

    #[test]
    fn a_tuning_file_parses_prints_and_parses_back() {
        let f = TuningFile::parse(FILE).unwrap();
        assert_eq!(f.adapter, "llvmpipe (LLVM 15.0.6, 256 bits)");
        assert_eq!(f.products.len(), 2);
        assert_eq!(f.products[0].1, [16, 8]);
        assert_eq!(f.products[0].2, "16x8 7.1 ms");
        assert!(f.products[1].0.a_transposed && f.products[1].0.b_transposed);
        assert_eq!(f.loads, [(f.products[1].0, false)]);
        assert_eq!(f.splits, [(f.products[1].0, 4)]);
        assert_eq!(
            f.reductions
                .iter()
                .map(|(r, s, _)| (r.trips, r.outputs, *s))
                .collect::<Vec<_>>(),
            [
                (131072, 1, ReductionStages::Two(4096)),
                (1024, 1, ReductionStages::One)
            ]
        );
        assert_eq!(
            f.rows,
            [(
                RowShape {
                    rows: 1024,
                    len: 1000,
                    sums: 3
                },
                1,
                "1 4.6 ms, 64 12.3 ms".to_string()
            )]
        );
        assert_eq!(TuningFile::parse(&f.print()).unwrap(), f);
        assert!(
            f.applies_to(
                "llvmpipe (LLVM 15.0.6, 256 bits)",
                "llvmpipe",
                "Mesa 22.3.6 (LLVM 15.0.6)"
            )
            .is_ok()
        );
        let e = f
            .applies_to("llvmpipe (LLVM 15.0.6, 256 bits)", "llvmpipe", "Mesa 23.0")
            .unwrap_err();
        assert!(
            e.contains("driver version `Mesa 22.3.6 (LLVM 15.0.6)`"),
            "{e}"
        );
    }

    #[test]
    fn a_corrupt_tuning_file_is_an_error_naming_the_line() {
        for (text, expect) in [
            (
                "adapter = a\ndriver = b\ndriver_info = c\nproduct batch=1 m=2 k=3 n=4 a=row b=row tile=3x5\n",
                "line 4: tile 3x5 is not a variant",
            ),
            (
                "adapter = a\ndriver = b\ndriver_info = c\nproduct batch=1 m=2 k=3 a=row b=row tile=4x4\n",
                "line 4: the product has no `n=`",
            ),
            (
                "adapter = a\ndriver = b\ndriver_info = c\nproduct batch=1 m=-2 k=3 n=4 a=row b=row tile=4x4\n",
                "line 4: `m` must be a positive integer",
            ),
            (
                "adapter = a\ndriver = b\nproduct batch=1 m=2 k=3 n=4 a=row b=row tile=4x4\n",
                "no `driver_info = …` line",
            ),
            (
                "adapter = a\n\u{0}\u{1}garbage\n",
                "line 2: expected `key = value`",
            ),
            ("colour = blue\n", "line 1: unknown key `colour`"),
            (
                "adapter = a\ndriver = b\ndriver_info = c\nrow rows=4 len=8 sums=1 threads=7\n",
                "line 4: threads=7 is not a row kernel mode",
            ),
            (
                "adapter = a\ndriver = b\ndriver_info = c\nrow rows=4 len=8 threads=1\n",
                "line 4: the row has no `sums=`",
            ),
            (
                "adapter = a\ndriver = b\ndriver_info = c\nproduct batch=1 m=2 k=3 n=4 a=row b=row tile=4x4 loads=lent\n",
                "line 4: `loads` must be `shared` or `own`, got `lent`",
            ),
            (
                "adapter = a\ndriver = b\ndriver_info = c\nproduct batch=1 m=2 k=3 n=4 a=row b=row tile=4x4 split=3\n",
                "line 4: split=3 is not a split of this version",
            ),
            (
                "adapter = a\ndriver = b\ndriver_info = c\nreduce trips=8 outputs=1 stages=2 run=100\n",
                "line 4: run=100 is not a reduction run of this version",
            ),
            (
                "adapter = a\ndriver = b\ndriver_info = c\nreduce trips=8 outputs=1 stages=2\n",
                "line 4: `stages=2` needs `run=`",
            ),
            (
                "adapter = a\ndriver = b\ndriver_info = c\nreduce trips=8 stages=1\n",
                "line 4: the reduction has no `outputs=`",
            ),
            (
                "adapter = a\ndriver = b\ndriver_info = c\nreduce trips=8 outputs=1 stages=3\n",
                "line 4: `stages` must be 1 or 2, got 3",
            ),
        ] {
            let e = TuningFile::parse(text).unwrap_err();
            assert!(e.contains(expect), "{e}");
        }
    }
}
