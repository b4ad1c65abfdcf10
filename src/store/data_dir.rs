//! The data dir: its layout, the format stamp that says which build can read it, and the
//! one-time upgrade of a dir whose journal was in sled. Everything recovery relies on is
//! made durable before anything relies on it: the stamp is written to a temporary file,
//! synced, renamed into place, and the directory synced.
//!
//! Layout (formats 6 to 8): `holdfast.format` (one byte, the format), `journal/` (segment files,
//! see `segment`), `snapshots/` (sled).

use std::path::{Path, PathBuf};

use super::image::Image;
use super::segment::sync_dir;
use super::{legacy, snapshot};

/// The on-disk format this build reads and writes. Bump it when `Event`, the journal or
/// the snapshot layout changes shape (4: snapshots as generations of packed chunks; 5: in
/// their own store; 6: the journal in segment files of its own, the manifest with a
/// generation counter; 7: changes carry availability marks, snapshots each SKU's last;
/// 8: sales say what their SKUs do after the end, and can be deleted).
pub const DATA_FORMAT_VERSION: u8 = 8;
/// Formats this build reads as they are: formats 7 and 8 only added event and entry
/// variants at the end of their enums (the old ones still read), so a format 6 dir is
/// format 8 with no marks yet. It is restamped before anything is written (an older
/// build would not read the new variants, and is then refused cleanly by the stamp).
const RESTAMPED_FORMATS: [u8; 2] = [6, 7];
/// Formats this build upgrades in place: their journal is in sled.
const SLED_JOURNAL_FORMATS: [u8; 2] = [4, 5];
const FORMAT_FILE: &str = "holdfast.format";
const FORMAT_FILE_STAGED: &str = "holdfast.format.new";
pub const JOURNAL_DIR: &str = "journal";
pub const SNAPSHOT_DB_DIR: &str = "snapshots";
pub const SNAPSHOT_TREE: &str = "snapshots";
/// Where formats 4 and 5 kept the journal.
const SLED_JOURNAL_DIR: &str = "sled";

#[derive(Debug, thiserror::Error)]
#[error("data dir {path}: {reason}")]
pub struct DataDirError {
    pub path: PathBuf,
    pub reason: String,
}

fn error(path: &Path, reason: impl Into<String>) -> DataDirError {
    DataDirError {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// What `check` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The current format, possibly stamped just now (an empty dir, or format 6).
    Current,
    /// A format whose journal is in sled: to be upgraded before it is opened.
    SledJournal(u8),
}

/// Refuses a data dir this build does not understand (changing nothing); stamps an empty
/// one, durably.
pub fn check(data_dir: &Path) -> Result<Found, DataDirError> {
    let io = |e: std::io::Error| error(data_dir, e.to_string());
    std::fs::create_dir_all(data_dir).map_err(io)?;
    match std::fs::read(data_dir.join(FORMAT_FILE)) {
        Ok(bytes) if bytes == [DATA_FORMAT_VERSION] => {
            ensure_dir(&data_dir.join(JOURNAL_DIR)).map_err(io)?;
            Ok(Found::Current)
        }
        Ok(bytes) if bytes.len() == 1 && RESTAMPED_FORMATS.contains(&bytes[0]) => {
            stamp(data_dir).map_err(io)?;
            tracing::info!(
                from = bytes[0],
                to = DATA_FORMAT_VERSION,
                "Data dir restamped; its files are read as they are."
            );
            ensure_dir(&data_dir.join(JOURNAL_DIR)).map_err(io)?;
            Ok(Found::Current)
        }
        Ok(bytes) if bytes.len() == 1 && SLED_JOURNAL_FORMATS.contains(&bytes[0]) => {
            Ok(Found::SledJournal(bytes[0]))
        }
        Ok(bytes) => Err(error(
            data_dir,
            format!("format version {bytes:?} is not {DATA_FORMAT_VERSION}, the version this build reads; nothing was changed"),
        )),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            // A stamp staged by a start that crashed before its rename is not data.
            let has_data = std::fs::read_dir(data_dir)
                .map_err(io)?
                .filter_map(Result::ok)
                .any(|entry| entry.file_name() != FORMAT_FILE_STAGED);
            if has_data {
                return Err(error(
                    data_dir,
                    format!("has files but no {FORMAT_FILE}; it is not a holdfast data dir, nothing was changed"),
                ));
            }
            stamp(data_dir).map_err(io)?;
            ensure_dir(&data_dir.join(JOURNAL_DIR)).map_err(io)?;
            Ok(Found::Current)
        }
        Err(err) => Err(io(err)),
    }
}

/// Writes the format stamp durably: a temporary file, synced, renamed, directory synced.
fn stamp(data_dir: &Path) -> std::io::Result<()> {
    let staged = data_dir.join(FORMAT_FILE_STAGED);
    let mut file = std::fs::File::create(&staged)?;
    std::io::Write::write_all(&mut file, &[DATA_FORMAT_VERSION])?;
    file.sync_all()?;
    std::fs::rename(&staged, data_dir.join(FORMAT_FILE))?;
    sync_dir(data_dir)
}

/// Creates a directory if missing, durably.
fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Upgrades a dir whose journal is in sled: everything it holds is recovered as the
/// earlier build would, written as one durable snapshot, the dir stamped with the new
/// format, and the sled journal removed. A crash at any point leaves either the old
/// format, which upgrades again from the start, or the new one, complete.
pub fn upgrade(
    data_dir: &Path,
    from: u8,
    snapshot_db: &sled::Db,
    snapshot_tree: &sled::Tree,
) -> Result<Image, DataDirError> {
    let sled_dir = data_dir.join(SLED_JOURNAL_DIR);
    let mut image =
        legacy::recover(&sled_dir, snapshot_tree).map_err(|e| error(data_dir, e.to_string()))?;
    snapshot::write_merged(
        snapshot_db,
        snapshot_tree.clone(),
        &data_dir.join(SNAPSHOT_DB_DIR),
        &mut image,
    )
    .map_err(|e| error(data_dir, format!("writing the upgraded snapshot: {e}")))?;
    let io = |e: std::io::Error| error(data_dir, format!("upgrading from format {from}: {e}"));
    ensure_dir(&data_dir.join(JOURNAL_DIR)).map_err(io)?;
    stamp(data_dir).map_err(io)?;
    std::fs::remove_dir_all(&sled_dir).map_err(io)?;
    sync_dir(data_dir).map_err(io)?;
    tracing::info!(
        from,
        to = DATA_FORMAT_VERSION,
        seq = image.seq,
        "Data dir upgraded: the journal moved out of sled into segment files."
    );
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_dir_is_stamped_and_a_crashed_stamp_is_not_data() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join(FORMAT_FILE_STAGED), [9]).expect("staged");
        assert_eq!(check(dir.path()).expect("fresh"), Found::Current);
        assert_eq!(
            std::fs::read(dir.path().join(FORMAT_FILE)).expect("stamp"),
            [DATA_FORMAT_VERSION]
        );
        assert!(!dir.path().join(FORMAT_FILE_STAGED).exists());
        assert!(dir.path().join(JOURNAL_DIR).is_dir());
    }

    /// Format 6 is read as it is (format 7 only added variants) once restamped.
    #[test]
    fn format_6_is_restamped() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join(FORMAT_FILE), [6]).expect("format 6");
        assert_eq!(check(dir.path()).expect("accepted"), Found::Current);
        assert_eq!(
            std::fs::read(dir.path().join(FORMAT_FILE)).expect("stamp"),
            [DATA_FORMAT_VERSION]
        );
    }

    #[test]
    fn unknown_formats_and_foreign_dirs_are_refused_untouched() {
        let dir = tempfile::tempdir().expect("dir");
        let future = DATA_FORMAT_VERSION + 1;
        std::fs::write(dir.path().join(FORMAT_FILE), [future]).expect("future");
        assert!(check(dir.path()).is_err());
        assert_eq!(
            std::fs::read(dir.path().join(FORMAT_FILE)).expect("kept"),
            [future]
        );
        assert!(!dir.path().join(JOURNAL_DIR).exists());
        let foreign = tempfile::tempdir().expect("dir");
        std::fs::write(foreign.path().join("notes.txt"), b"x").expect("file");
        assert!(check(foreign.path()).is_err());
        assert!(!foreign.path().join(FORMAT_FILE).exists());
    }
}
