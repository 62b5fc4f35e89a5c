//! `tern recv`: serve any number of peers at once through the connection layer, printing each
//! one's events as they come and saying each line of stdin to every connected peer.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::driver::{Driver, EVENT_BURST, Style};
use super::lines::Lines;
use super::notes::{BATCHING, flush_notes, note};
use super::watch_signals;
use crate::history::History;
use crate::net::discovery::{Discovery, Wanted};
use crate::net::{COMMANDS_PER_PEER, Net, Order, PeerReport, Report};
use crate::session::{Command, PeerId, SessionConfig};

/// Lines typed while no peer is connected, kept for the next to connect (as when stdin waited
/// for the one peer a `tern recv` served), the oldest dropped first. A connected peer's share
/// is bounded by the connection layer ([`COMMANDS_PER_PEER`]): a peer that takes none (its
/// link is stalled) misses what is typed beyond, and stderr says so; the others are not held
/// up.
const HELD_LINES: usize = 1024;
/// How long peers have to say goodbye once we are asked to end.
const GOODBYE: Duration = Duration::from_secs(3);

/// A peer being served: where it came from, and what its session printed and counted.
struct Served {
    addr: SocketAddr,
    driver: Driver,
}

/// `tern recv [--bind ADDR] [--port N] [--once] [--json]`.
pub async fn recv(
    bind: SocketAddr,
    once: bool,
    json: bool,
    config: SessionConfig,
    history: Option<History>,
    wanted: Wanted,
) -> anyhow::Result<ExitCode> {
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let local = listener.local_addr()?;
    let mut discovery = if wanted.announce && !config.raw {
        let settings = wanted.listener(&config, local, 0, false);
        Discovery::start_or_say(settings, note).map_err(anyhow::Error::msg)?
    } else {
        None
    };
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
        // The connection layer keeps the history.
        history: None,
        encoding: config.encoding.unwrap_or_default(),
        leave_changed_key: false,
    };
    let mut net = Net::start(Some(listener), config, history);
    let mut server = Server {
        style,
        connected,
        peers: HashMap::new(),
        held: VecDeque::new(),
        first: None,
        first_left: false,
        failed: false,
        mismatch: false,
    };
    let mut stdin = Lines::stdin();
    let mut stopping: Option<tokio::time::Instant> = None;
    loop {
        if server.mismatch && !shutdown.is_cancelled() {
            note("a peer presented another key than --peer-fingerprint requires: stopping");
            shutdown.cancel();
        }
        if server.peers.is_empty() && (stopping.is_some() || (once && server.first_left)) {
            break;
        }
        tokio::select! {
            report = net.reports.recv() => {
                let Some(report) = report else { break };
                BATCHING.store(true, Ordering::Relaxed);
                let mut orders = server.on_report(report);
                // Whatever else is queued, in the same turn: one stderr write for the lot.
                for _ in 0..EVENT_BURST {
                    match net.reports.try_recv() {
                        Ok(report) => orders.extend(server.on_report(report)),
                        Err(_) => break,
                    }
                }
                BATCHING.store(false, Ordering::Relaxed);
                flush_notes();
                for order in orders {
                    if net.orders.send(order).await.is_err() {
                        break;
                    }
                }
            }
            line = stdin.rx.recv(), if !stdin.ended => match line {
                Some(line) => {
                    for order in server.say_to_all(line) {
                        if net.orders.send(order).await.is_err() {
                            break;
                        }
                    }
                }
                // Each peer's session goes on: a receiver serves until its peers leave.
                None => stdin.ended = true,
            },
            // Every peer is asked to close; the loop waits for them, a while.
            () = shutdown.cancelled(), if stopping.is_none() => {
                stopping = Some(tokio::time::Instant::now() + GOODBYE);
                // Peers on the LAN forget us now, not once our sessions have closed.
                if let Some(discovery) = discovery.take() {
                    discovery.stop().await;
                }
                for (peer, served) in &mut server.peers {
                    served.driver.interrupted();
                    let _ = net.orders.send(Order::Close(*peer)).await;
                }
                flush_notes();
            }
            () = sleep_until(stopping) => break,
        }
    }
    flush_notes();
    if let Some(discovery) = discovery.take() {
        discovery.stop().await;
    }
    net.shut_down().await;
    Ok(if server.failed || !server.peers.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What `recv` keeps across its peers.
struct Server {
    style: Style,
    /// `peers.len()`, for the drivers' notes, which name their peer while several are
    /// connected.
    connected: Arc<AtomicUsize>,
    peers: HashMap<PeerId, Served>,
    held: VecDeque<String>,
    /// The first peer to connect (for `--once`), and whether it has left.
    first: Option<PeerId>,
    first_left: bool,
    failed: bool,
    /// A peer presented another key than `--peer-fingerprint`'s: the receiver ends.
    mismatch: bool,
}

impl Server {
    /// Print what `report` says; returns what to tell the connection layer.
    fn on_report(&mut self, report: Report) -> Vec<Order> {
        let Report { peer, what } = report;
        match what {
            PeerReport::Accepted(addr) => {
                tracing::info!(%addr, %peer, "accepted");
                self.first.get_or_insert(peer);
                self.peers.insert(
                    peer,
                    Served {
                        addr,
                        driver: Driver::new(self.style.clone()),
                    },
                );
                self.connected.store(self.peers.len(), Ordering::Relaxed);
                // What was typed while nobody was there goes to the first who comes.
                self.held
                    .drain(..)
                    .map(|line| Order::To(peer, Command::Text(line)))
                    .collect()
            }
            PeerReport::Event(event) => {
                let closed = match self.peers.get_mut(&peer) {
                    Some(served) => served.driver.on_event(event),
                    None => false,
                };
                if closed && let Some(served) = self.peers.remove(&peer) {
                    self.connected.store(self.peers.len(), Ordering::Relaxed);
                    note(format!("{} left", served.addr));
                    self.failed |= served.driver.outcome.exit_code() != ExitCode::SUCCESS;
                    self.mismatch |= served.driver.outcome.untrusted;
                    self.first_left |= self.first == Some(peer);
                }
                Vec::new()
            }
            PeerReport::Refused(Command::Text(_)) => {
                if let Some(served) = self.peers.get(&peer) {
                    note(format!(
                        "a line was not said to {}: it has {COMMANDS_PER_PEER} waiting already",
                        served.addr
                    ));
                }
                Vec::new()
            }
            // Only a listener's peers are served here: no dials, nothing else is ordered.
            PeerReport::Reached(_) | PeerReport::DialFailed(_) | PeerReport::Refused(_) => {
                Vec::new()
            }
        }
    }

    /// `line` for every connected peer, or held for the next to connect.
    fn say_to_all(&mut self, line: String) -> Vec<Order> {
        if self.peers.is_empty() {
            if self.held.len() == HELD_LINES {
                self.held.pop_front();
            }
            self.held.push_back(line);
            return Vec::new();
        }
        self.peers
            .keys()
            .map(|&peer| Order::To(peer, Command::Text(line.clone())))
            .collect()
    }
}
