//! `rarangi man DIR`: man pages generated from the clap definitions, for
//! packaging (`rarangi.1` and one `rarangi-COMMAND.1` per subcommand, like
//! git's). Hidden: operators read the pages, they do not make them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Writes `rarangi.1` and the subcommands' pages into `dir` (created if
/// missing); returns the files written.
pub(crate) fn write_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    pages.sort();
    Ok(pages)
}
