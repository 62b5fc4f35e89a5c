//! `tern recv`: serve any number of peers at once, each in a task of its own; say each line of
//! stdin to every connected peer.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::driver::{Finish, Outcome, Style, drive};
use super::lines::Lines;
use super::notes::note;
use super::watch_signals;
use crate::history::History;
use crate::session::{PeerId, Role, Session, SessionConfig};

/// Lines waiting for one peer's session to take them. A peer that takes none (its link is
/// stalled) misses what is typed beyond, and stderr says so; the others are not held up. Also
/// how many lines typed while no peer is connected are kept for the next to connect (as when
/// stdin waited for the one peer a `tern recv` served), the oldest dropped first.
const PEER_LINES: usize = 1024;
/// Sessions served at once, at most: each holds buffers and a disk thread, and a flood of
/// connections must not take every byte of memory. Beyond, connections wait in the system's
/// queue until one ends.
const MAX_SESSIONS: usize = 64;

/// `tern recv [--bind ADDR] [--port N] [--once] [--json]`.
pub async fn recv(
    bind: SocketAddr,
    once: bool,
    json: bool,
    config: SessionConfig,
    history: Option<History>,
) -> anyhow::Result<ExitCode> {
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let local = listener.local_addr()?;
    note(format!(
        "listening on {local}; files go to {}",
        config.download_dir.display()
    ));
    let shutdown = CancellationToken::new();
    watch_signals(shutdown.clone());
    let connected = Arc::new(AtomicUsize::new(0));
    let style = Style {
        json,
        connected: Some(Arc::clone(&connected)),
        history,
        encoding: config.encoding.unwrap_or_default(),
    };
    let mut stdin = Lines::stdin();
    let mut held: VecDeque<String> = VecDeque::new();
    // Each connected peer's share of stdin, by peer.
    let mut peers: HashMap<PeerId, (SocketAddr, mpsc::Sender<String>)> = HashMap::new();
    let mut sessions: JoinSet<(PeerId, SocketAddr, Outcome)> = JoinSet::new();
    let mut first: Option<PeerId> = None;
    let mut first_left = false;
    let mut failed = false;
    let mut stopping = false;
    loop {
        if stopping && sessions.is_empty() {
            break;
        }
        if once && first_left && sessions.is_empty() {
            break;
        }
        tokio::select! {
            accepted = listener.accept(), if !shutdown.is_cancelled() && sessions.len() < MAX_SESSIONS => {
                let (stream, addr) = match accepted {
                    Ok(accepted) => accepted,
                    // Out of descriptors, a connection reset before it was taken: the others
                    // go on, and the next try waits a moment rather than spin.
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        note(format!("cannot accept a connection: {e}"));
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let peer = PeerId::next();
                connected.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%addr, %peer, "accepted");
                first.get_or_insert(peer);
                let (tx, mut lines) = Lines::channel(PEER_LINES);
                // What was typed while nobody was there goes to the first who comes.
                for line in held.drain(..) {
                    if tx.try_send(line).is_err() {
                        break;
                    }
                }
                if stdin.ended {
                    // Its share ends with what was held.
                    drop(tx);
                } else {
                    peers.insert(peer, (addr, tx));
                }
                let stop = shutdown.child_token();
                let session = Session::start(stream, Role::Listener, config.clone(), &stop);
                let shutdown = shutdown.clone();
                let style = style.clone();
                sessions.spawn(async move {
                    let outcome = drive(
                        session,
                        &mut lines,
                        Finish::WhenPeerLeaves,
                        0,
                        style,
                        &shutdown,
                        &stop,
                    )
                    .await;
                    (peer, addr, outcome)
                });
            }
            line = stdin.rx.recv(), if !stdin.ended => match line {
                Some(line) => say_to_all(&mut peers, &mut held, line),
                None => {
                    stdin.ended = true;
                    // Each session sees its share end once it has said what is queued; what is
                    // held still goes to the next peer.
                    peers.clear();
                }
            },
            Some(done) = sessions.join_next() => {
                connected.fetch_sub(1, Ordering::Relaxed);
                let (peer, addr, outcome) = match done {
                    Ok(done) => done,
                    Err(e) => {
                        tracing::error!(error = %e, "a session task failed");
                        note(format!("a session ended abnormally: {e}"));
                        failed = true;
                        continue;
                    }
                };
                peers.remove(&peer);
                note(format!("{addr} left"));
                failed |= outcome.exit_code() != ExitCode::SUCCESS;
                first_left |= first == Some(peer);
            }
            // Every session closes on the same token: the loop waits for them, then ends.
            () = shutdown.cancelled(), if !stopping => stopping = true,
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Queue `line` for every connected peer, or hold it for the next to connect.
fn say_to_all(
    peers: &mut HashMap<PeerId, (SocketAddr, mpsc::Sender<String>)>,
    held: &mut VecDeque<String>,
    line: String,
) {
    if peers.is_empty() {
        if held.len() == PEER_LINES {
            held.pop_front();
        }
        held.push_back(line);
        return;
    }
    for (addr, tx) in peers.values() {
        match tx.try_send(line.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                note(format!(
                    "a line was not said to {addr}: it has {PEER_LINES} waiting already"
                ));
            }
            // Its session is ending; `join_next` removes it.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}
