//! Fresh loopback addresses and temporary directories.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::Error;

static NEXT_ADDR: AtomicUsize = AtomicUsize::new(0);
static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A free port on its own loopback address: 127.B.C.D with B and C from
/// our PID (two test binaries running at once use different addresses) and
/// C.D counting up, so each catalogue has an address of its own.
pub fn fresh_addr() -> String {
    let n = NEXT_ADDR.fetch_add(1, Ordering::Relaxed);
    let ip = format!(
        "127.{}.{}.{}",
        1 + std::process::id() % 200,
        // More of the PID here too: test binaries of several checkouts may
        // run at once, and two PIDs equal modulo 200 would otherwise walk
        // the same addresses in the same order.
        (std::process::id() as usize / 200 + n / 250) % 256,
        n % 250 + 2
    );
    let l = TcpListener::bind(format!("{ip}:0")).expect("bind a free loopback port");
    let port = l.local_addr().expect("bound address").port();
    format!("{ip}:{port}")
}

/// A directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory named after `tag`, this process and a counter.
    pub fn new(tag: &str) -> Result<TempDir, Error> {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let tag: String = tag
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let dir = std::env::temp_dir().join(format!("rarangi-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(Error::io(format!("create {}", dir.display())))?;
        Ok(TempDir(dir))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_directories_are_fresh() {
        let (a, b) = (fresh_addr(), fresh_addr());
        assert_ne!(a, b);
        assert!(a.starts_with("127."));
        let d = TempDir::new("x:y").unwrap();
        let path = d.path().to_owned();
        assert!(path.is_dir() && path.starts_with(std::env::temp_dir()));
        drop(d);
        assert!(!path.exists());
    }
}
