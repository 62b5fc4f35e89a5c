//! The connection layer: the listener, dialling, and every session, each keyed by a
//! [`PeerId`]. The only place that knows how many peers there are. A UI drives it with
//! [`Order`]s and reads [`Report`]s, one bounded channel each way; every report names its peer.
//!
//! Each session is served by a task of its own (`peer::serve`) that forwards its events and
//! feeds it commands in order, so one peer whose link is stalled holds up nobody else's
//! commands, and the reports of all peers share the one channel in turn.
//!
//! `discovery` finds the terns on the LAN and says this one is there; it never connects.

pub mod discovery;
mod peer;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::history::History;
use crate::session::{self, Command, PeerId, Role, SessionConfig, SessionEvent};
use crate::text::Encoding;

pub use peer::COMMANDS_PER_PEER;

/// What the UI asks of the connection layer.
#[derive(Debug)]
pub enum Order {
    /// Connect to `HOST[:PORT]`; the session that results is `peer` (chosen by the caller, so
    /// it can show the attempt at once).
    Dial { peer: PeerId, target: String },
    /// A command for one peer's session.
    To(PeerId, Command),
    /// End one peer's session (a goodbye, then the connection closes).
    Close(PeerId),
    /// Sessions started from now on use this name, and this encoding (forced: no detection
    /// for raw peers), each when given.
    Defaults {
        name: Option<String>,
        encoding: Option<Encoding>,
    },
}

/// What happened to one peer.
#[derive(Debug)]
pub struct Report {
    pub peer: PeerId,
    pub what: PeerReport,
}

#[derive(Debug)]
pub enum PeerReport {
    /// Someone connected to our listener; the session is identifying it.
    Accepted(SocketAddr),
    /// A dial reached this address; the session is identifying the peer.
    Reached(SocketAddr),
    /// A dial failed: nobody answered, the name does not resolve, it timed out.
    DialFailed(String),
    /// A command could not be queued: that peer's session takes none (its link is stalled,
    /// or it has ended).
    Refused(Command),
    /// The session's own event. `SessionEvent::Closed` is the last report about this peer.
    Event(SessionEvent),
}

/// Sessions served at once, at most: each holds buffers and a disk thread. Beyond, new
/// connections wait in the system's queue until one ends.
pub const MAX_SESSIONS: usize = 64;
/// Reports waiting for the UI before the sessions' tasks wait for it.
const REPORTS: usize = 64;
/// Orders waiting for the connection layer.
const ORDERS: usize = 256;
/// A dial that has not connected by then has failed.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long sessions have to say goodbye when the layer shuts down.
const GOODBYE: Duration = Duration::from_secs(3);

/// The UI's side of the connection layer.
pub struct Net {
    pub orders: mpsc::Sender<Order>,
    pub reports: mpsc::Receiver<Report>,
    task: tokio::task::JoinHandle<()>,
}

impl Net {
    /// Start serving `listener` (if any) with sessions made from `config`; what is said and
    /// received goes to `history` (if any).
    pub fn start(
        listener: Option<TcpListener>,
        config: SessionConfig,
        history: Option<History>,
    ) -> Net {
        let (orders_tx, orders_rx) = mpsc::channel(ORDERS);
        let (reports_tx, reports_rx) = mpsc::channel(REPORTS);
        let layer = Layer {
            listener,
            config,
            history,
            reports: reports_tx,
            peers: std::collections::HashMap::new(),
            tasks: JoinSet::new(),
            root: CancellationToken::new(),
        };
        Net {
            orders: orders_tx,
            reports: reports_rx,
            task: tokio::spawn(layer.run(orders_rx)),
        }
    }

    /// Close every session (each says goodbye, within a few seconds) and wait for the layer to
    /// end.
    pub async fn shut_down(self) {
        let Net {
            orders,
            reports,
            task,
        } = self;
        drop(orders);
        // Nobody reads reports any more: let the sessions' tasks finish instead of waiting.
        drop(reports);
        let _ = task.await;
    }
}

struct Layer {
    listener: Option<TcpListener>,
    config: SessionConfig,
    history: Option<History>,
    reports: mpsc::Sender<Report>,
    /// Each served peer's command queue.
    peers: std::collections::HashMap<PeerId, mpsc::Sender<Command>>,
    tasks: JoinSet<PeerId>,
    root: CancellationToken,
}

impl Layer {
    async fn run(mut self, mut orders: mpsc::Receiver<Order>) {
        loop {
            tokio::select! {
                accepted = accept(&self.listener), if self.tasks.len() < MAX_SESSIONS => {
                    match accepted {
                        Ok((stream, addr)) => {
                            let peer = PeerId::next();
                            tracing::info!(%addr, %peer, "accepted");
                            let served = self.served(peer);
                            self.tasks.spawn(async move {
                                served.run(stream, Role::Listener, PeerReport::Accepted(addr)).await;
                                peer
                            });
                        }
                        // Out of descriptors, a connection reset before it was taken: the
                        // others go on, and the next try waits a moment rather than spin.
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                order = orders.recv() => match order {
                    Some(order) => self.obey(order).await,
                    None => break,
                },
                Some(done) = self.tasks.join_next() => {
                    match done {
                        Ok(peer) => { self.peers.remove(&peer); }
                        Err(e) => tracing::error!(error = %e, "a peer's task failed"),
                    }
                }
            }
        }
        self.shut_down().await;
    }

    /// A command queue for `peer`, and what its task needs to serve it.
    fn served(&mut self, peer: PeerId) -> Served {
        let (tx, commands) = mpsc::channel(COMMANDS_PER_PEER);
        self.peers.insert(peer, tx);
        Served {
            peer,
            commands,
            config: self.config.clone(),
            root: self.root.clone(),
            reports: self.reports.clone(),
            history: self.history.clone(),
        }
    }

    async fn obey(&mut self, order: Order) {
        match order {
            Order::Dial { peer, target } => {
                let why = if self.peers.contains_key(&peer) {
                    Some(format!("{peer} is taken: a dial needs a new PeerId"))
                } else if self.tasks.len() >= MAX_SESSIONS {
                    Some(format!("{MAX_SESSIONS} sessions are open already"))
                } else {
                    None
                };
                if let Some(why) = why {
                    self.report(peer, PeerReport::DialFailed(why)).await;
                    return;
                }
                let served = self.served(peer);
                self.tasks.spawn(async move {
                    let dialled = tokio::time::timeout(
                        DIAL_TIMEOUT,
                        session::connect(&target, crate::cli::DEFAULT_PORT),
                    )
                    .await
                    .unwrap_or_else(|_| {
                        Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "timed out",
                        ))
                    });
                    match dialled {
                        Ok(stream) => {
                            let addr = stream
                                .peer_addr()
                                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                            served
                                .run(stream, Role::Connector, PeerReport::Reached(addr))
                                .await;
                        }
                        Err(e) => {
                            let what =
                                PeerReport::DialFailed(format!("cannot connect to {target}: {e}"));
                            let _ = served.reports.send(Report { peer, what }).await;
                        }
                    }
                    peer
                });
            }
            Order::To(peer, command) => self.to(peer, command).await,
            Order::Close(peer) => self.to(peer, Command::Close).await,
            Order::Defaults { name, encoding } => {
                if let Some(name) = name {
                    self.config.name = name;
                }
                if encoding.is_some() {
                    self.config.encoding = encoding;
                }
            }
        }
    }

    async fn to(&mut self, peer: PeerId, command: Command) {
        let refused = match self.peers.get(&peer) {
            Some(tx) => match tx.try_send(command) {
                Ok(()) => None,
                Err(mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c)) => {
                    Some(c)
                }
            },
            None => Some(command),
        };
        if let Some(command) = refused {
            tracing::debug!(%peer, ?command, "command refused");
            self.report(peer, PeerReport::Refused(command)).await;
        }
    }

    async fn report(&self, peer: PeerId, what: PeerReport) {
        let _ = self.reports.send(Report { peer, what }).await;
    }

    /// Every session says goodbye; those that have not ended within [`GOODBYE`] are cut.
    async fn shut_down(mut self) {
        for tx in self.peers.values() {
            let _ = tx.try_send(Command::Close);
        }
        self.peers.clear();
        let wait = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(GOODBYE, wait).await.is_err() {
            self.root.cancel();
            while self.tasks.join_next().await.is_some() {}
        }
    }
}

/// One peer's task, before its connection is up.
struct Served {
    peer: PeerId,
    commands: mpsc::Receiver<Command>,
    config: SessionConfig,
    root: CancellationToken,
    reports: mpsc::Sender<Report>,
    history: Option<History>,
}

impl Served {
    /// Start the session on `stream`, say `first` (how it came), and serve it to its end, even
    /// when nobody listens any more: its goodbye is still said, and its task ends with the
    /// layer's.
    async fn run(self, stream: tokio::net::TcpStream, role: Role, first: PeerReport) {
        let Served {
            peer,
            commands,
            config,
            root,
            reports,
            history,
        } = self;
        let encoding = config.encoding.unwrap_or_default();
        let session = session::Session::start(stream, role, config, &root);
        let _ = reports.send(Report { peer, what: first }).await;
        peer::serve(peer, session, commands, reports, history, encoding).await;
    }
}

async fn accept(
    listener: &Option<TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}
