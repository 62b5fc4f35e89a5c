//! `tern send`: connect, offer the files, say stdin, and retry a connection that fails or
//! drops while it can help.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::driver::{Style, drive};
use super::lines::Lines;
use super::notes::note;
use super::watch_signals;
use crate::history::History;
use crate::session::{self, Command, Role, Session, SessionConfig};
use crate::transfer::outgoing::{check_readable, collect_files};
use crate::transfer::{TransferState, human_size};

/// Wait before retry `attempt` (1-based): 1 s, 2 s, 4 s, ... at most 10 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(3)).min(Duration::from_secs(10))
}

/// Whether a failed connection attempt may succeed later: nobody listening yet, a reset, a
/// network that is down for now. Not a refusal by permission or anything about the address.
fn worth_retrying(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | TimedOut
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
            | Interrupted
    )
}

/// `tern send HOST[:PORT] [PATH...]`. A connection that fails or drops is retried up to
/// `retries` times when trying again can help; each attempt offers only the files not yet
/// verified, and the receiver resumes each from the `.part` it kept.
pub async fn send(
    target: &str,
    paths: Vec<PathBuf>,
    config: SessionConfig,
    retries: u32,
    json: bool,
    history: Option<History>,
) -> anyhow::Result<ExitCode> {
    if config.raw && !paths.is_empty() {
        anyhow::bail!("files cannot be sent to a raw peer (--raw): it speaks no tern protocol");
    }
    // Every file is found and opened once before we connect: a path that is missing or
    // unreadable fails here, naming it, not after the peer has been asked to take it.
    let files = tokio::task::spawn_blocking(move || collect_files(&paths))
        .await
        .context("walking the paths to send")??;
    if !files.is_empty() {
        let total: u64 = files.iter().map(|f| f.size).sum();
        note(format!(
            "{} file(s), {} to send",
            files.len(),
            human_size(total)
        ));
    }
    let addr = session::with_default_port(target, crate::cli::DEFAULT_PORT);
    // Resolved once: a bad port or a name that does not resolve is not retried.
    let addrs = session::resolve(target, crate::cli::DEFAULT_PORT)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {addr}: {e}"))?;
    let shutdown = CancellationToken::new();
    watch_signals(shutdown.clone());
    let root = CancellationToken::new();
    let mut lines = Lines::stdin();
    let mut remaining = files;
    let mut refused = 0usize;
    let mut unreadable = 0usize;
    let mut attempt = 0u32;
    loop {
        let can_retry = attempt < retries && !config.raw && !shutdown.is_cancelled();
        let stream = match session::connect_to(&addrs).await {
            Ok(stream) => stream,
            Err(e) if can_retry && worth_retrying(&e) => {
                attempt += 1;
                let wait = backoff(attempt);
                note(format!(
                    "cannot connect to {addr}: {e}; retry {attempt}/{retries} in {}s",
                    wait.as_secs()
                ));
                tokio::time::sleep(wait).await;
                continue;
            }
            Err(e) => anyhow::bail!("cannot connect to {addr}: {e}"),
        };
        let stop = root.child_token();
        let session = Session::start(stream, Role::Connector, config.clone(), &stop);
        if !remaining.is_empty() {
            // Queued now; the actor takes it once the handshake is done.
            let _ = session.handle.send(Command::Offer(remaining.clone())).await;
        }
        let outcome = drive(
            session,
            &mut lines,
            remaining.len(),
            Style {
                json,
                connected: None,
                history: history.clone(),
                encoding: config.encoding.unwrap_or_default(),
                leave_changed_key: true,
            },
            &shutdown,
            &stop,
        )
        .await;
        remaining.retain(|f| match outcome.outgoing.get(&f.rel_path) {
            Some(TransferState::Verified) => false,
            Some(TransferState::Rejected(_)) => {
                refused += 1;
                false
            }
            _ => true,
        });
        if outcome.untrusted {
            return Ok(ExitCode::FAILURE);
        }
        let broken = outcome.error.is_some() || !remaining.is_empty();
        if broken && can_retry && outcome.connected && !outcome.interrupted {
            // A file that cannot be read now will not be by the next session either.
            remaining.retain(|f| match check_readable(f) {
                Ok(()) => true,
                Err(e) => {
                    note(format!("not retried: {e}"));
                    unreadable += 1;
                    false
                }
            });
            if outcome.error.is_some() || !remaining.is_empty() {
                attempt += 1;
                let wait = backoff(attempt);
                note(format!(
                    "{} file(s) left; reconnecting, retry {attempt}/{retries} in {}s",
                    remaining.len(),
                    wait.as_secs()
                ));
                tokio::time::sleep(wait).await;
                continue;
            }
        }
        let failed = remaining.len() + refused + unreadable;
        if failed > 0 {
            note(format!("{failed} file(s) were not delivered"));
        }
        let ok = failed == 0 && outcome.error.is_none();
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
}
