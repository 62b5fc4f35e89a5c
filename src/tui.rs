//! The terminal UI: one async loop merging terminal events, the connection layer's reports and
//! background results into `App::update`, drawing only when something changed.
//!
//! Depends on `net` (its orders and reports) and on `session`'s types, nothing below.

pub mod app;
pub mod input;
pub mod keymap;
pub mod paste;
pub mod terminal;
pub mod transcript;
pub mod view;
pub mod wrap;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crossterm::event::{Event, KeyEventKind, MouseEventKind};
use futures::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::layout::{Position, Rect};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::crypto::known::{KnownError, KnownPeers};
use crate::history::History;
use crate::net::discovery::Discovery;
use crate::net::{Net, Order, PeerReport};
use crate::session::{SessionConfig, SessionEvent, SharedKnown, lock_known};
use crate::transfer::outgoing::collect_files;
use app::{Action, App, Msg};

/// How the UI starts. The listener is bound before the terminal is taken over, so a port in
/// use is a plain error on a normal screen.
#[derive(Debug)]
pub enum Start {
    Listen(TcpListener),
    Connect(String),
}

pub struct TuiOptions {
    pub start: Start,
    pub config: SessionConfig,
    /// False under NO_COLOR.
    pub color: bool,
    /// Where conversations are kept (`None`: `--no-history`, or none could be opened), and the
    /// file, read for a peer's earlier messages when it connects.
    pub history: Option<(History, PathBuf)>,
    /// Discovery, started (so an `--iface` that does not exist is a plain error before the
    /// terminal is taken over); `None` when off.
    pub discovery: Option<Discovery>,
}

/// Peers from the history listed at start, at most (the most recently seen).
const KNOWN_SHOWN: usize = 32;

/// Earlier messages shown when a peer connects, at most.
const PAST_SHOWN: usize = 50;

/// Input-driven redraws wait at least this long after the last one.
const MIN_DRAW_GAP: Duration = Duration::from_millis(16);
/// Redraws caused only by the session (progress) wait at least this long.
const SESSION_DRAW_GAP: Duration = Duration::from_millis(100);

/// Run the UI in the real terminal until the user quits.
pub async fn run(options: TuiOptions) -> anyhow::Result<()> {
    let mut term = terminal::enter()?;
    let events = crossterm::event::EventStream::new();
    let result = run_loop(&mut term, events, options, &mut Stdout).await;
    terminal::restore();
    result
}

/// The addresses a peer could reach us at, best first.
pub fn local_addresses(bind: SocketAddr) -> Vec<String> {
    if !bind.ip().is_unspecified() {
        return vec![bind.ip().to_string()];
    }
    // The address the default route would use; nothing is sent.
    let routed = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip().to_string())
        .ok();
    let mut out: Vec<String> = routed.into_iter().collect();
    // Every LAN interface's too: a host with no default route has none above, and one with
    // two networks is reached from each at another address.
    let lan = crate::net::discovery::interfaces::candidates()
        .ok()
        .and_then(|all| crate::net::discovery::interfaces::choose(&all, &[]).ok());
    for iface in lan.map(|c| c.used).unwrap_or_default() {
        let ip = iface.ip.to_string();
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out.push("127.0.0.1".to_string());
    out
}

/// What the loop tells the terminal beyond drawing: the bell, and the window's title.
pub trait Chrome {
    fn bell(&mut self);
    fn title(&mut self, title: &str);
}

/// The real terminal's bell and title.
pub struct Stdout;

impl Chrome for Stdout {
    fn bell(&mut self) {
        use std::io::Write;
        let mut out = io::stdout();
        let _ = out.write_all(b"\x07").and_then(|()| out.flush());
    }

    fn title(&mut self, title: &str) {
        let _ = crossterm::execute!(io::stdout(), crossterm::terminal::SetTitle(title));
    }
}

/// Write what the user decided about a key to the known peers, off the UI thread.
fn remember(
    known: Option<SharedKnown>,
    tx: &mpsc::Sender<Msg>,
    change: impl FnOnce(&mut KnownPeers, &str) -> Result<(), KnownError> + Send + 'static,
) {
    let Some(known) = known else {
        return;
    };
    let tx = tx.clone();
    tokio::spawn(async move {
        let written = tokio::task::spawn_blocking(move || {
            let now = crate::history::now();
            change(&mut lock_known(&known), &now)
        })
        .await;
        let failed = match written {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(error = %failed, "the known peers could not be written");
        let _ = tx
            .send(Msg::Failed(format!(
                "{failed}: this decision holds for this session only"
            )))
            .await;
    });
}

/// The loop, generic over the backend and the event source so it can run without a terminal.
pub async fn run_loop<B, S>(
    terminal: &mut Terminal<B>,
    mut events: S,
    options: TuiOptions,
    chrome: &mut dyn Chrome,
) -> anyhow::Result<()>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    S: Stream<Item = io::Result<Event>> + Unpin,
{
    let TuiOptions {
        start,
        config,
        color,
        history,
        mut discovery,
    } = options;
    let (history, history_path) = history.unzip();
    let (listener, target) = match start {
        Start::Listen(l) => (Some(l), None),
        Start::Connect(target) => (None, Some(target)),
    };
    let listening = match &listener {
        Some(l) => {
            let addr = l.local_addr()?;
            Some(app::Listening {
                addresses: local_addresses(addr),
                port: addr.port(),
            })
        }
        None => None,
    };
    let mut app = App::new(
        config.name.clone(),
        config.encoding.unwrap_or_default(),
        listening,
        app::local_clock,
    );
    app.color = color;
    app.discovering = discovery.is_some();
    let known = config.trust.known.clone();
    let mut net = Net::start(listener, config, history);
    let (bg_tx, mut bg_rx) = mpsc::channel::<Msg>(32);
    if let Some(path) = &history_path {
        read_known(path.clone(), &bg_tx);
    }
    let mut pending_actions = match target {
        Some(target) => app.connect(target),
        None => Vec::new(),
    };
    let shutdown = CancellationToken::new();
    watch_signals(shutdown.clone());

    let mut dirty = true;
    let mut urgent = true;
    let mut last_draw = Instant::now() - SESSION_DRAW_GAP;
    let mut title = String::new();
    // After `/peers`: when to explain an empty LAN, if it still is.
    let mut quiet_check: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut quit = false;
        for action in std::mem::take(&mut pending_actions) {
            match action {
                Action::Quit => quit = true,
                Action::Session(peer, command) => order(&net, Order::To(peer, command)),
                Action::Dial { peer, target } => order(&net, Order::Dial { peer, target }),
                Action::Close(peer) => order(&net, Order::Close(peer)),
                Action::Defaults { name, encoding } => {
                    if let (Some(name), Some(discovery)) = (&name, &discovery) {
                        discovery.rename(name.clone());
                    }
                    order(&net, Order::Defaults { name, encoding });
                }
                Action::Refresh => {
                    if let Some(discovery) = &discovery {
                        discovery.refresh();
                        quiet_check = Some(Instant::now() + crate::net::discovery::LOOK);
                    }
                }
                Action::Collect { to, paths } => {
                    let tx = bg_tx.clone();
                    tokio::spawn(async move {
                        let result = tokio::task::spawn_blocking(move || collect_files(&paths))
                            .await
                            .map_err(|e| e.to_string())
                            .and_then(|r| r.map_err(|e| e.to_string()));
                        let _ = tx.send(Msg::Collected { to, result }).await;
                    });
                }
                Action::Search(query) => search(history_path.clone(), query, &bg_tx),
                Action::Trust { key, name, ip } => {
                    remember(known.clone(), &bg_tx, move |known, now| {
                        known.trust(&key, &name, ip, now)
                    });
                }
                Action::Verified { key } => {
                    remember(known.clone(), &bg_tx, move |known, _| {
                        known.verify(&key).map(drop)
                    });
                }
                Action::ReadPast { to, peer } => {
                    if let Some(path) = &history_path {
                        read_past(path.clone(), to, peer, &bg_tx);
                    }
                }
            }
        }
        if quit {
            break;
        }
        let gap = if urgent {
            MIN_DRAW_GAP
        } else {
            SESSION_DRAW_GAP
        };
        if dirty && last_draw.elapsed() >= gap {
            draw(terminal, &mut app)?;
            if std::mem::take(&mut app.bell) {
                chrome.bell();
            }
            let now = app.title();
            if now != title {
                chrome.title(&now);
                title = now;
            }
            last_draw = Instant::now();
            dirty = false;
            urgent = false;
        }
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => {
                    if let Some(msg) = to_msg(event, terminal, &app) {
                        pending_actions = app.update(msg);
                    }
                    dirty = true;
                    urgent = true;
                }
                // The terminal is gone: nothing more can be asked of the user.
                Some(Err(_)) | None => break,
            },
            report = net.reports.recv() => {
                let Some(report) = report else { break };
                let connection = !matches!(report.what, PeerReport::Event(SessionEvent::Transfer(_)));
                pending_actions = app.update(Msg::Peer(report));
                dirty = true;
                urgent |= connection;
            },
            Some(sighting) = lan(&mut discovery) => {
                pending_actions = app.update(Msg::Lan(sighting));
                dirty = true;
            },
            () = crate::net::discovery::sleep_until(quiet_check) => {
                quiet_check = None;
                if let Some(discovery) = &discovery {
                    let why = discovery.tried().explain_then(
                        "Discovery is only a convenience: /connect HOST[:PORT] reaches a peer \
                         by address or host name.",
                    );
                    pending_actions = app.update(Msg::LanQuiet(why));
                    dirty = true;
                }
            },
            Some(msg) = bg_rx.recv() => {
                pending_actions = app.update(msg);
                dirty = true;
                urgent = true;
            },
            _ = tick.tick(), if app.has_active_transfers() => {
                app.update(Msg::Tick(std::time::Instant::now()));
                dirty = true;
            },
            () = tokio::time::sleep_until(last_draw + gap), if dirty => {},
            () = shutdown.cancelled() => break,
        }
    }
    // Peers on the LAN forget us; every session says goodbye (cancelling what is still
    // moving), but none hangs the exit.
    if let Some(discovery) = discovery {
        discovery.stop().await;
    }
    net.shut_down().await;
    Ok(())
}

/// What discovery heard next; never, when it is off.
async fn lan(discovery: &mut Option<Discovery>) -> Option<crate::net::discovery::Sighting> {
    match discovery {
        Some(d) => d.sightings.recv().await,
        None => std::future::pending().await,
    }
}

/// Hand the connection layer an order without blocking keys: when its queue is full, the
/// order waits in a task of its own.
fn order(net: &Net, order: Order) {
    if let Err(mpsc::error::TrySendError::Full(order)) = net.orders.try_send(order) {
        let orders = net.orders.clone();
        tokio::spawn(async move { orders.send(order).await });
    }
}

/// Messages searched for: at most this many shown.
const FOUND_SHOWN: usize = 100;

/// Run `read` on the history at `path` on the blocking pool (SQLite is disk I/O: never on
/// the loop); its error, or the task's, as words.
async fn query_history<T: Send + 'static>(
    path: PathBuf,
    read: impl FnOnce(&crate::history::Store) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(move || crate::history::Store::open(&path).and_then(|s| read(&s)))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
}

/// Search the history off the loop, and hand the UI what matches.
fn search(path: Option<PathBuf>, query: String, tx: &mpsc::Sender<Msg>) {
    let tx = tx.clone();
    tokio::spawn(async move {
        let result = match path {
            None => Err("this run keeps no history (--no-history)".to_string()),
            Some(path) => {
                let q = query.clone();
                query_history(path, move |store| store.search(&q, FOUND_SHOWN)).await
            }
        };
        let _ = tx.send(Msg::Found { query, result }).await;
    });
}

/// Read what the history holds of `peer` off the loop, and hand it to the UI.
fn read_past(path: PathBuf, to: app::ConvId, name: String, tx: &mpsc::Sender<Msg>) {
    let tx = tx.clone();
    tokio::spawn(async move {
        match query_history(path, move |store| store.entries(Some(&name), PAST_SHOWN)).await {
            Ok(entries) => {
                let _ = tx.send(Msg::Past { to, entries }).await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the history"),
        }
    });
}

/// Peers the history knows, for the peer list, read off the loop.
fn read_known(path: PathBuf, tx: &mpsc::Sender<Msg>) {
    let tx = tx.clone();
    tokio::spawn(async move {
        match query_history(path, |store| store.peers(KNOWN_SHOWN)).await {
            Ok(peers) => {
                let _ = tx.send(Msg::Known(peers)).await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the history's peers"),
        }
    });
}

fn screen<B: Backend>(terminal: &Terminal<B>) -> Rect {
    terminal
        .size()
        .map(|s| Rect::new(0, 0, s.width, s.height))
        .unwrap_or_default()
}

fn draw<B>(terminal: &mut Terminal<B>, app: &mut App) -> anyhow::Result<()>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
{
    if let Some(areas) = view::areas(screen(terminal), app.conv().queue.len()) {
        let (w, h) = view::inner(areas.messages);
        app.set_viewport(w, h);
        app.queue_rows = view::inner(areas.queue).1;
        app.sidebar = areas.peers.is_some();
        // The list folded away under the focus: the keys go back to the input line.
        if !app.sidebar && app.focus == keymap::Focus::Peers {
            app.focus = keymap::Focus::Input;
        }
    }
    terminal.draw(|frame| view::draw(app, frame))?;
    Ok(())
}

fn to_msg<B: Backend>(event: Event, terminal: &Terminal<B>, app: &App) -> Option<Msg> {
    match event {
        Event::Key(key) if key.kind != KeyEventKind::Release => Some(Msg::Key(key)),
        Event::Paste(text) => Some(Msg::Paste(text)),
        Event::Mouse(mouse) => {
            let up = match mouse.kind {
                MouseEventKind::ScrollUp => true,
                MouseEventKind::ScrollDown => false,
                _ => return None,
            };
            let over_queue = view::areas(screen(terminal), app.conv().queue.len())
                .is_some_and(|a| a.queue.contains(Position::new(mouse.column, mouse.row)));
            Some(Msg::Wheel { up, over_queue })
        }
        _ => None,
    }
}

/// Cancel `token` when tern is asked to end (SIGTERM, SIGHUP, a Ctrl-C signal; on Windows
/// Ctrl-Break or the console closing) so the loop ends and the terminal is restored.
fn watch_signals(token: CancellationToken) {
    tokio::spawn(async move {
        crate::platform::process::end_requested(true).await;
        token.cancel();
    });
}
