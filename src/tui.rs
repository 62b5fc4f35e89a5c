//! The terminal UI: one async loop merging terminal events, session events and background
//! results into `App::update`, drawing only when something changed.
//!
//! Depends on `session` (through `Command`, `SessionEvent`, `SessionHandle`) and nothing below.

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
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::history::{History, Recorder};
use crate::session::{self, Role, Session, SessionConfig, SessionEvent};
use crate::transfer::outgoing::collect_files;
use app::{Action, App, Link, Msg};

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
}

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
    let result = run_loop(&mut term, events, options).await;
    terminal::restore();
    result
}

/// Results of work done off the loop.
enum Background {
    Msg(Msg),
    Dialled(String, io::Result<TcpStream>),
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
    out.push("127.0.0.1".to_string());
    out
}

/// The loop, generic over the backend and the event source so it can run without a terminal.
pub async fn run_loop<B, S>(
    terminal: &mut Terminal<B>,
    mut events: S,
    options: TuiOptions,
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
    } = options;
    let (history, history_path) = history.unzip();
    let new_recorder = |encoding| Recorder::new(history.clone(), encoding);
    let mut recorder = new_recorder(config.encoding.unwrap_or_default());
    let initial_link = match &start {
        Start::Listen(l) => {
            let addr = l.local_addr()?;
            Link::Listening {
                addresses: local_addresses(addr),
                port: addr.port(),
            }
        }
        Start::Connect(target) => Link::Connecting(target.clone()),
    };
    let mut app = App::new(
        config.name.clone(),
        config.encoding.unwrap_or_default(),
        initial_link,
        app::local_clock,
    );
    app.color = color;
    let (bg_tx, mut bg_rx) = mpsc::channel::<Background>(32);
    let root = CancellationToken::new();
    let mut session: Option<Session> = None;
    let listener = match start {
        Start::Listen(l) => Some(l),
        Start::Connect(target) => {
            dial(target, &bg_tx);
            None
        }
    };
    let shutdown = CancellationToken::new();
    watch_signals(shutdown.clone());

    let mut dirty = true;
    let mut urgent = true;
    let mut last_draw = Instant::now() - SESSION_DRAW_GAP;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let gap = if urgent {
            MIN_DRAW_GAP
        } else {
            SESSION_DRAW_GAP
        };
        if dirty && last_draw.elapsed() >= gap {
            draw(terminal, &mut app)?;
            last_draw = Instant::now();
            dirty = false;
            urgent = false;
        }
        let mut actions = Vec::new();
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => {
                    if let Some(msg) = to_msg(event, terminal, &app) {
                        actions = app.update(msg);
                    }
                    dirty = true;
                    urgent = true;
                }
                // The terminal is gone: nothing more can be asked of the user.
                Some(Err(_)) | None => break,
            },
            event = next_event(&mut session) => {
                let closed = matches!(event, Some(SessionEvent::Closed { .. }) | None);
                if let Some(event) = event {
                    let known = recorder.peer().is_some();
                    recorder.on_event(&event);
                    if let (false, Some(peer), Some(path)) = (known, recorder.peer(), &history_path) {
                        read_past(path.clone(), peer.to_string(), &bg_tx);
                    }
                    actions = app.update(Msg::Session(event));
                }
                if closed {
                    if let Some(s) = session.take() {
                        let _ = s.task.await;
                    }
                    if let Some(l) = &listener {
                        let port = l.local_addr().map(|a| a.port()).unwrap_or_default();
                        let addresses = match &app.link {
                            Link::Listening { addresses, .. } => addresses.clone(),
                            _ => local_addresses(l.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], port)))),
                        };
                        app.update(Msg::Link(Link::Listening { addresses, port }));
                    }
                }
                dirty = true;
            },
            accepted = accept(&listener), if session.is_none() && !matches!(app.link, Link::Connecting(_)) => {
                match accepted {
                    Ok((stream, addr)) => {
                                        app.update(Msg::Link(Link::Handshaking(addr.to_string())));
                        recorder = new_recorder(app.encoding);
                        session = Some(Session::start(stream, Role::Listener, session_config(&config, &app), &root));
                    }
                    Err(e) => tracing::warn!(error = %e, "accept failed"),
                }
                dirty = true;
                urgent = true;
            },
            bg = bg_rx.recv() => {
                match bg {
                    Some(Background::Msg(msg)) => actions = app.update(msg),
                    Some(Background::Dialled(target, Ok(stream))) if session.is_none() => {
                        app.update(Msg::Link(Link::Handshaking(target)));
                        recorder = new_recorder(app.encoding);
                        session = Some(Session::start(stream, Role::Connector, session_config(&config, &app), &root));
                    }
                    // Someone connected to us while we dialled: keep that session.
                    Some(Background::Dialled(_, Ok(_))) => {}
                    Some(Background::Dialled(target, Err(e))) => {
                        let back = if listener.is_some() { " (still listening)" } else { "" };
                        app.update(Msg::Link(Link::Disconnected(format!(
                            "cannot connect to {target}: {e}{back}; /connect HOST[:PORT] to try again"
                        ))));
                        if let Some(l) = &listener {
                            let port = l.local_addr().map(|a| a.port()).unwrap_or_default();
                            app.link = Link::Listening { addresses: local_addresses(SocketAddr::from(([0, 0, 0, 0], port))), port };
                        }
                    }
                    None => {}
                }
                dirty = true;
                urgent = true;
            },
            _ = tick.tick(), if app.has_active_transfers() => {
                app.update(Msg::Tick);
                dirty = true;
            },
            () = tokio::time::sleep_until(last_draw + gap), if dirty => {},
            () = shutdown.cancelled() => break,
        }
        let mut quit = false;
        for action in actions {
            match action {
                Action::Quit => quit = true,
                Action::Session(command) => match &session {
                    Some(s) => {
                        if let session::Command::Text(line) = &command {
                            recorder.said(line);
                        }
                        if let Err(command) = s.handle.try_send(command) {
                            // The queue is full: wait in the background rather than block keys.
                            let handle = s.handle.clone();
                            tokio::spawn(async move { handle.send(command).await });
                        }
                    }
                    None => tracing::debug!(?command, "no session for command"),
                },
                Action::Collect(paths) => {
                    let tx = bg_tx.clone();
                    tokio::spawn(async move {
                        let result = tokio::task::spawn_blocking(move || collect_files(&paths))
                            .await
                            .map_err(|e| e.to_string())
                            .and_then(|r| r.map_err(|e| e.to_string()));
                        let _ = tx.send(Background::Msg(Msg::Collected(result))).await;
                    });
                }
                Action::Search(query) => search(history_path.clone(), query, &bg_tx),
                Action::Connect(target) => {
                    if session.is_none() {
                        app.update(Msg::Link(Link::Connecting(target.clone())));
                        dial(target, &bg_tx);
                    }
                }
            }
        }
        if quit {
            break;
        }
    }
    if let Some(s) = session.take() {
        // Say goodbye (cancels what is still moving), but never hang on a dead peer.
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            s.handle.send(session::Command::Close),
        )
        .await;
        if tokio::time::timeout(Duration::from_secs(3), s.task)
            .await
            .is_err()
        {
            root.cancel();
        }
    }
    Ok(())
}

fn session_config(base: &SessionConfig, app: &App) -> SessionConfig {
    let mut config = base.clone();
    config.name = app.name.clone();
    config.encoding = Some(app.encoding);
    config
}

/// Messages searched for: at most this many shown.
const FOUND_SHOWN: usize = 100;

/// Search the history off the loop, and hand the UI what matches.
fn search(path: Option<PathBuf>, query: String, tx: &mpsc::Sender<Background>) {
    let tx = tx.clone();
    tokio::spawn(async move {
        let result = match path {
            None => Err("this run keeps no history (--no-history)".to_string()),
            Some(path) => {
                let q = query.clone();
                tokio::task::spawn_blocking(move || {
                    crate::history::Store::open(&path).and_then(|s| s.search(&q, FOUND_SHOWN))
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
            }
        };
        let _ = tx.send(Background::Msg(Msg::Found { query, result })).await;
    });
}

/// Read what the history holds of `peer` off the loop, and hand it to the UI.
fn read_past(path: PathBuf, peer: String, tx: &mpsc::Sender<Background>) {
    let tx = tx.clone();
    tokio::spawn(async move {
        let read = {
            let peer = peer.clone();
            tokio::task::spawn_blocking(move || {
                crate::history::Store::open(&path)
                    .and_then(|store| store.entries(Some(&peer), PAST_SHOWN))
            })
        };
        match read.await {
            Ok(Ok(entries)) => {
                let _ = tx.send(Background::Msg(Msg::Past { peer, entries })).await;
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the history"),
            Err(e) => tracing::warn!(error = %e, "reading the history failed"),
        }
    });
}

fn dial(target: String, tx: &mpsc::Sender<Background>) {
    let tx = tx.clone();
    tokio::spawn(async move {
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            session::connect(&target, crate::cli::DEFAULT_PORT),
        )
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")));
        let _ = tx.send(Background::Dialled(target, result)).await;
    });
}

async fn next_event(session: &mut Option<Session>) -> Option<SessionEvent> {
    match session {
        Some(s) => s.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn accept(listener: &Option<TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
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
    if let Some(areas) = view::areas(screen(terminal), app.queue.len()) {
        let (w, h) = view::inner(areas.messages);
        app.set_viewport(w, h);
        app.queue_rows = view::inner(areas.queue).1;
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
            let over_queue = view::areas(screen(terminal), app.queue.len())
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
