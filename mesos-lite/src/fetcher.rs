//! The Mesos fetcher: brings a task's URIs into its sandbox before launch, in order.
//!
//! Local paths and `file://` are copied, `http(s)://` downloaded; `executable` sets the
//! mode to 0755 without extracting; otherwise archives (`.tar`, `.tgz`, `.tar.gz`,
//! `.zip`, and `.tbz2`/`.tar.bz2`/`.txz`/`.tar.xz` through the system `tar`) are unpacked
//! into the sandbox and kept, and a bare `.gz` is gunzipped without the suffix.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use tokio::io::AsyncWriteExt;

/// One URI of a `CommandInfo`.
#[derive(Debug, Clone, Default)]
pub struct FetchUri {
    /// The URI or local path.
    pub value: String,
    /// chmod 0755, never extract.
    pub executable: bool,
    /// Unpack recognised archives (Mesos default: true).
    pub extract: bool,
    /// Name in the sandbox instead of the URI's basename (relative, may contain dirs).
    pub output_file: Option<String>,
}

/// Fetches every URI into `sandbox`, in order; the first failure stops the fetch.
pub async fn fetch_all(client: &reqwest::Client, uris: &[FetchUri], sandbox: &Path) -> Result<()> {
    for uri in uris {
        fetch_one(client, uri, sandbox)
            .await
            .with_context(|| format!("Failed to fetch '{}'", uri.value))?;
    }
    Ok(())
}

async fn fetch_one(client: &reqwest::Client, uri: &FetchUri, sandbox: &Path) -> Result<()> {
    let name = match uri.output_file.as_deref().filter(|s| !s.is_empty()) {
        Some(out) => out.to_string(),
        None => basename(&uri.value)?,
    };
    let dest = confined(sandbox, &name)?;
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let lower = uri.value.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        download(client, &uri.value, &dest).await?;
    } else {
        let source = local_path(&uri.value)?;
        tokio::fs::copy(&source, &dest)
            .await
            .with_context(|| format!("copy from '{}'", source.display()))?;
    }
    if uri.executable {
        set_mode(&dest, 0o755)?;
        return Ok(());
    }
    if uri.extract {
        let dest2 = dest.clone();
        let dir = sandbox.to_path_buf();
        tokio::task::spawn_blocking(move || extract(&dest2, &dir)).await??;
    }
    Ok(())
}

fn basename(uri: &str) -> Result<String> {
    let without_query = uri.split(['?', '#']).next().unwrap_or(uri);
    let name = without_query
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    if name.is_empty() || name == "." || name == ".." {
        bail!("cannot determine a file name");
    }
    Ok(name.to_string())
}

fn local_path(uri: &str) -> Result<PathBuf> {
    if let Some(rest) = uri.strip_prefix("file://") {
        // file:///abs/path or file://localhost/abs/path
        let rest = rest.strip_prefix("localhost").unwrap_or(rest);
        return Ok(PathBuf::from(rest));
    }
    if uri.contains("://") {
        bail!("unsupported URI scheme");
    }
    Ok(PathBuf::from(uri))
}

/// Joins a relative name under `dir`, refusing absolute paths and `..`.
fn confined(dir: &Path, name: &str) -> Result<PathBuf> {
    let rel = Path::new(name);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        bail!("output file '{name}' must be a relative path inside the sandbox");
    }
    Ok(dir.join(rel))
}

async fn download(client: &reqwest::Client, url: &str, dest: &Path) -> Result<()> {
    let mut response = client.get(url).send().await?;
    let status = response.status();
    if !status.is_success() {
        bail!("HTTP {status}");
    }
    let mut file = tokio::fs::File::create(dest).await?;
    while let Some(chunk) = response.chunk().await? {
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn extract(archive: &Path, dir: &Path) -> Result<()> {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        let gz = flate2::read::GzDecoder::new(BufReader::new(File::open(archive)?));
        tar::Archive::new(gz)
            .unpack(dir)
            .context("extract tar.gz")?;
    } else if name.ends_with(".tar") {
        tar::Archive::new(BufReader::new(File::open(archive)?))
            .unpack(dir)
            .context("extract tar")?;
    } else if name.ends_with(".zip") {
        let mut zip = zip::ZipArchive::new(BufReader::new(File::open(archive)?))?;
        zip.extract(dir).context("extract zip")?;
    } else if [".tbz2", ".tar.bz2", ".txz", ".tar.xz"]
        .iter()
        .any(|s| name.ends_with(s))
    {
        let status = std::process::Command::new("tar")
            .arg("-C")
            .arg(dir)
            .arg("-xf")
            .arg(archive)
            .status()
            .context("run tar")?;
        if !status.success() {
            bail!("tar exited with {status}");
        }
    } else if let Some(stem) = name.strip_suffix(".gz") {
        let target = archive.with_file_name(stem);
        let mut gz = flate2::read::GzDecoder::new(BufReader::new(File::open(archive)?));
        let mut out = File::create(&target)?;
        io::copy(&mut gz, &mut out).context("gunzip")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() -> Result<()> {
        assert_eq!(basename("http://h/a/b.tar.gz?x=1")?, "b.tar.gz");
        assert_eq!(basename("/tmp/x")?, "x");
        assert!(basename("http://h/").is_err() || basename("http://h/")? == "h");
        assert!(confined(Path::new("/s"), "../x").is_err());
        assert!(confined(Path::new("/s"), "/etc/passwd").is_err());
        assert_eq!(
            confined(Path::new("/s"), "conf/a.json")?,
            PathBuf::from("/s/conf/a.json")
        );
        Ok(())
    }
}
