//! What mesos-lite keeps in `<work_dir>/meta/master.json` across restarts: the master
//! id (so agent ids, `<master>-S<n>`, stay the same) and the framework counter (so new
//! framework ids never collide with ones a scheduler may still hold).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The persisted master identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MasterMeta {
    /// Master id (UUID).
    pub master_id: String,
    /// Next framework counter.
    pub next_framework: u64,
    /// How many times this work_dir has been started; offer ids of run `r` start at
    /// `r * 1_000_000_000`, so an offer id held over a restart never names a new offer.
    #[serde(default)]
    pub runs: u64,
}

fn path(work_dir: &Path) -> PathBuf {
    work_dir.join("meta").join("master.json")
}

/// Loads the identity, or creates a fresh one.
pub fn load_or_create(work_dir: &Path) -> Result<MasterMeta> {
    let p = path(work_dir);
    if let Ok(text) = std::fs::read_to_string(&p) {
        if let Ok(mut meta) = serde_json::from_str::<MasterMeta>(&text) {
            meta.runs += 1;
            save(work_dir, &meta)?;
            return Ok(meta);
        }
        tracing::warn!(path = %p.display(), "unreadable master metadata; starting with a new master id");
    }
    let meta = MasterMeta {
        master_id: uuid::Uuid::new_v4().to_string(),
        next_framework: 0,
        runs: 0,
    };
    save(work_dir, &meta)?;
    Ok(meta)
}

/// Writes the identity atomically.
pub fn save(work_dir: &Path, meta: &MasterMeta) -> Result<()> {
    let p = path(work_dir);
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let tmp = p.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(meta)?)?;
    std::fs::rename(&tmp, &p)?;
    Ok(())
}
