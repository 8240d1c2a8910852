//! Where an adapter's tuning file lives, and reading it into the runtime's target.
//!
//! `wgrad tune` writes one file per adapter and driver version (the compiler's
//! [`TuningFile`] format) into the user's cache directory; a [`Runtime`](crate::Runtime)
//! reads it when it opens its device, so loading a program costs no measurement. A
//! file that cannot be read, is corrupt, was measured on another adapter or driver
//! version, or names a tile this version does not have is ignored with a warning that
//! names it: the preset applies then, never a wrong result.

use std::path::{Path, PathBuf};

use crate::adapter::AdapterSummary;
use crate::runtime::TuningSource;
use wgrad_compiler::lower::{Tuning, TuningFile};

/// The environment variable that overrides where the tuning file is.
pub const TUNING_FILE_VAR: &str = "WGRAD_TUNING_FILE";

/// Where the tuning file of `adapter` is by default: `wgrad/tuning/<adapter and
/// driver version>.txt` in `$XDG_CACHE_HOME`, or else in `$HOME/.cache`; `None` when
/// neither is set.
pub fn default_tuning_file(adapter: &AdapterSummary) -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    let mut slug = String::new();
    for c in format!("{} {}", adapter.name, adapter.driver_info).chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    Some(
        cache
            .join("wgrad")
            .join("tuning")
            .join(format!("{slug}.txt")),
    )
}

/// The tuning file a runtime reads: `explicit` (from
/// [`TuningSource::File`]), else
/// [`TUNING_FILE_VAR`], else [`default_tuning_file`].
pub fn tuning_file_for(explicit: Option<&Path>, adapter: &AdapterSummary) -> Option<PathBuf> {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os(TUNING_FILE_VAR)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| default_tuning_file(adapter))
}

/// The tuning file `source` names for `adapter` (none when tuning is off), its tiles
/// and what became of it.
pub(crate) fn resolve(
    source: &TuningSource,
    adapter: &AdapterSummary,
) -> (Option<PathBuf>, Tuning, String) {
    let explicit = match source {
        TuningSource::Off => {
            return (
                None,
                Tuning::default(),
                "tuning off: preset tiles".to_string(),
            );
        }
        TuningSource::File(p) => Some(p.as_path()),
        TuningSource::Default => None,
    };
    let path = tuning_file_for(explicit, adapter);
    let (tuning, status) = read_tuning(path.as_deref(), adapter);
    (path, tuning, status)
}

/// Reads the tuning file at `path` for `adapter`: its tiles, and a line saying what
/// became of it (for `wgrad adapter` and the log). No file is not an error; anything
/// else wrong with it is a warning, and no tiles.
pub fn read_tuning(path: Option<&Path>, adapter: &AdapterSummary) -> (Tuning, String) {
    let Some(path) = path else {
        return (
            Tuning::default(),
            "no tuning file (no cache directory: set XDG_CACHE_HOME or WGRAD_TUNING_FILE)"
                .to_string(),
        );
    };
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (
                Tuning::default(),
                format!("no tuning file at {shown} (`wgrad tune` writes one); preset tiles"),
            );
        }
        Err(e) => return ignored(format!("tuning file {shown} ignored: cannot read it: {e}")),
    };
    let file = match TuningFile::parse(&text) {
        Ok(file) => file,
        Err(e) => return ignored(format!("tuning file {shown} ignored: {e}")),
    };
    if let Err(e) = file.applies_to(&adapter.name, &adapter.driver, &adapter.driver_info) {
        return ignored(format!(
            "tuning file {shown} ignored: {e} (run `wgrad tune` again)"
        ));
    }
    let tuning = file.tuning(&shown.to_string());
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let line = format!(
        "tuning file {shown}: {} product tile{}, {} row kernel mode{}, {} reduction split{}",
        tuning.products.len(),
        plural(tuning.products.len()),
        tuning.rows.len(),
        plural(tuning.rows.len()),
        tuning.reductions.len(),
        plural(tuning.reductions.len())
    );
    (tuning, line)
}

/// No tiles, and `message`, logged as a warning.
fn ignored(message: String) -> (Tuning, String) {
    log::warn!("wgrad: {message}");
    (Tuning::default(), message)
}
