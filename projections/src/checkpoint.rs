//! Checkpoints: where a projection stopped, with its state, so it can start from there.
//!
//! Read models live in each instance's memory, so their checkpoints belong to the instance too:
//! [`FileCheckpointStore`] keeps one JSON file per projection under the data directory, written
//! atomically (temporary file, fsync, rename). Each checkpoint remembers the id of the event at
//! its position, so a checkpoint that does not belong to the log it is used with (a new
//! database, a restored backup) is recognised and discarded.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use portico_core::Position;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ProjectionError;

/// A stored projection state at a position of the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub name: String,
    pub version: u32,
    pub position: Position,
    /// The id of the event at `position` (`None` at position 0).
    pub event_id: Option<Uuid>,
    /// The serialised state (JSON).
    pub state: Box<serde_json::value::RawValue>,
}

/// Where checkpoints are kept.
pub trait CheckpointStore: Send + Sync + std::fmt::Debug {
    /// The stored checkpoint of projection `name`, if any.
    fn load(&self, name: &str) -> Result<Option<Checkpoint>, ProjectionError>;
    /// Replaces the checkpoint of `checkpoint.name`.
    fn save(&self, checkpoint: &Checkpoint) -> Result<(), ProjectionError>;
}

/// Keeps no checkpoint: every start replays from position 0.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCheckpoints;

impl CheckpointStore for NoCheckpoints {
    fn load(&self, _name: &str) -> Result<Option<Checkpoint>, ProjectionError> {
        Ok(None)
    }

    fn save(&self, _checkpoint: &Checkpoint) -> Result<(), ProjectionError> {
        Ok(())
    }
}

/// One JSON file per projection in a directory.
#[derive(Debug, Clone)]
pub struct FileCheckpointStore {
    dir: PathBuf,
}

impl FileCheckpointStore {
    /// Keeps checkpoints in `dir`, creating it if needed.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, ProjectionError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| ProjectionError::checkpoint(&dir, e))?;
        Ok(FileCheckpointStore { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }
}

impl CheckpointStore for FileCheckpointStore {
    fn load(&self, name: &str) -> Result<Option<Checkpoint>, ProjectionError> {
        let path = self.path(name);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ProjectionError::checkpoint(&path, e)),
        };
        match serde_json::from_slice(&bytes) {
            Ok(checkpoint) => Ok(Some(checkpoint)),
            Err(error) => {
                // A damaged checkpoint only costs a replay.
                tracing::warn!(path = %path.display(), %error, "ignoring unreadable checkpoint");
                Ok(None)
            }
        }
    }

    fn save(&self, checkpoint: &Checkpoint) -> Result<(), ProjectionError> {
        let path = self.path(&checkpoint.name);
        write_atomically(&path, checkpoint).map_err(|e| ProjectionError::checkpoint(&path, e))
    }
}

fn write_atomically(path: &Path, checkpoint: &Checkpoint) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let file = fs::File::create(&tmp)?;
        let mut out = std::io::BufWriter::new(file);
        serde_json::to_writer(&mut out, checkpoint)?;
        out.flush()?;
        out.get_ref().sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable.
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
