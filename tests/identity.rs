//! `tern id`: this machine's identity, made on first use in the config folder, readable by its
//! owner only, and the same fingerprint on every run.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, ensure};

use common::tern_bin;

fn id(config: &Path) -> anyhow::Result<Output> {
    Command::new(tern_bin())
        .arg("id")
        .env("TERN_CONFIG_DIR", config)
        .env("TERN_LOG_DIR", config.join("logs"))
        .output()
        .context("running tern id")
}

/// The first line of a successful `tern id`.
fn fingerprint(config: &Path) -> anyhow::Result<String> {
    let out = id(config)?;
    ensure!(out.status.success(), "tern id failed: {out:?}");
    let stdout = String::from_utf8(out.stdout)?;
    Ok(stdout.lines().next().unwrap_or_default().to_string())
}

fn looks_like_a_fingerprint(line: &str) -> bool {
    let groups: Vec<&str> = line.split('-').collect();
    groups.len() == 5
        && groups.iter().all(|g| {
            g.len() == 4
                && g.chars()
                    .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
        })
}

#[test]
fn the_fingerprint_is_made_once_and_the_same_on_every_run() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("config");
    let first = fingerprint(&config)?;
    ensure!(looks_like_a_fingerprint(&first), "{first:?}");
    for _ in 0..3 {
        ensure!(fingerprint(&config)? == first);
    }
    let other = tempfile::tempdir()?;
    ensure!(
        fingerprint(other.path())? != first,
        "another config folder is another machine"
    );
    let key = std::fs::read_to_string(config.join("identity"))?;
    ensure!(
        !key.contains(&first),
        "the file holds the key, not the fingerprint"
    );
    Ok(())
}

#[cfg(unix)]
#[test]
fn the_key_file_is_readable_by_its_owner_only() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir()?;
    let first = fingerprint(tmp.path())?;
    let path = tmp.path().join("identity");
    let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
    ensure!(mode == 0o600, "mode {mode:o}");
    // Opened up by someone: made private again, the same key.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    ensure!(fingerprint(tmp.path())? == first);
    let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
    ensure!(mode == 0o600, "mode {mode:o} after a run");
    Ok(())
}

#[test]
fn processes_starting_together_agree_on_one_identity() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("fresh");
    let children: Vec<_> = (0..6)
        .map(|_| {
            Command::new(tern_bin())
                .arg("id")
                .env("TERN_CONFIG_DIR", &config)
                .env("TERN_LOG_DIR", tmp.path().join("logs"))
                .stdout(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    let mut seen = std::collections::BTreeSet::new();
    for child in children {
        let out = child.wait_with_output()?;
        ensure!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8(out.stdout)?;
        seen.insert(stdout.lines().next().unwrap_or_default().to_string());
    }
    ensure!(seen.len() == 1, "{seen:?}");
    ensure!(
        seen.first()
            .is_some_and(|f| *f == fingerprint(&config).unwrap_or_default())
    );
    Ok(())
}

#[test]
fn a_file_that_is_not_an_identity_is_refused_and_kept() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("identity");
    std::fs::write(&path, "something else entirely\n")?;
    let out = id(tmp.path())?;
    ensure!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(stderr.contains("is not a tern identity"), "{stderr}");
    ensure!(out.stdout.is_empty(), "nothing on stdout: {out:?}");
    ensure!(std::fs::read_to_string(&path)? == "something else entirely\n");
    Ok(())
}
