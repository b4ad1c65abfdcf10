//! LazyFS (a FUSE file system from the Jepsen ecosystem, BSD-3, in `loadtest/lazyfs/`):
//! data written through its mount reaches the directory under it only when the writer
//! syncs that file, and `clear` drops every byte that was not synced: a power cut.
//! Creating, renaming and deleting files go straight through, so a missing directory
//! sync is not caught by it.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::Error;

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/lazyfs");

/// Builds LazyFS into `out_dir` unless it is there (about 2 minutes on one core; needs
/// Debian's libfuse3-dev fuse3 cmake g++ make pkg-config). Returns the binary.
pub fn ensure_built(out_dir: &Path) -> Result<PathBuf, Error> {
    let bin = out_dir.join("lazyfs");
    if bin.exists() {
        return Ok(bin);
    }
    let status = std::process::Command::new("bash")
        .arg(Path::new(SCRIPTS).join("build.sh"))
        .arg(out_dir)
        .env("JOBS", "2")
        .status()?;
    if !status.success() || !bin.exists() {
        return Err(format!(
            "building LazyFS failed ({status}); install libfuse3-dev fuse3 cmake g++ make pkg-config"
        )
        .into());
    }
    Ok(bin)
}

/// A mounted LazyFS: `dir` is the mount point to put the data dir in.
pub struct Mount {
    pub dir: PathBuf,
    state: PathBuf,
    bin: PathBuf,
    stopped: bool,
}

async fn script(bin: &Path, args: &[&Path]) -> Result<(), Error> {
    let output = Command::new("bash")
        .arg(Path::new(SCRIPTS).join("lazyfs.sh"))
        .args(args)
        .env("LAZYFS_BIN", bin)
        .output()
        .await?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "lazyfs.sh {:?}: {}{}",
            args,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into())
    }
}

impl Mount {
    /// Mounts LazyFS at `<work>/lazyfs-mnt` over `<work>/lazyfs-root`.
    pub async fn start(bin: &Path, work: &Path) -> Result<Self, Error> {
        let root = work.join("lazyfs-root");
        let dir = work.join("lazyfs-mnt");
        let state = work.join("lazyfs-state");
        let start = Path::new("start");
        script(bin, &[start, &root, &dir, &state]).await?;
        Ok(Self {
            dir,
            state,
            bin: bin.to_path_buf(),
            stopped: false,
        })
    }

    /// Drops every byte written since its file's last sync. Kill the server first.
    pub async fn power_cut(&self) -> Result<(), Error> {
        script(&self.bin, &[Path::new("clear"), &self.state]).await
    }

    pub async fn stop(mut self) {
        if let Err(err) = script(&self.bin, &[Path::new("stop"), &self.dir, &self.state]).await {
            eprintln!("torture: unmounting LazyFS: {err}; detaching it instead");
            self.detach();
        }
        self.stopped = true;
    }

    /// A lazy unmount: detached now, gone once nothing uses it; LazyFS then exits.
    fn detach(&self) {
        let _ = std::process::Command::new("fusermount3")
            .arg("-uz")
            .arg(&self.dir)
            .status();
    }
}

/// A mount left behind (a test that panicked) is unmounted, so its directory can go.
impl Drop for Mount {
    fn drop(&mut self) {
        if !self.stopped {
            self.detach();
        }
    }
}
