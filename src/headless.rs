//! `tern send` and `tern recv`: a session driven by stdin and stdout, netcat-style.
//!
//! stdout carries only the peer's messages, one per line, flushed at once; everything else
//! (connection, offers, progress, errors) goes to stderr prefixed with `tern:`.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::session::{self, Command, Role, Session, SessionConfig, SessionEvent, SessionHandle};
use crate::text;
use crate::transfer::outgoing::{check_readable, collect_files};
use crate::transfer::{Direction, TransferId, TransferState, human_size};

/// Lines from stdin, shared by every session of a `tern recv`.
struct StdinLines {
    rx: mpsc::Receiver<String>,
    ended: bool,
}

impl StdinLines {
    /// Read stdin line by line in the background, a terminal included (as nc does: lines typed
    /// until Ctrl-D). A process started in the background (`tern recv &`) leaves the terminal
    /// alone: reading it would stop the process (SIGTTIN).
    fn start() -> Self {
        let (tx, rx) = mpsc::channel(64);
        let stdin = std::io::stdin();
        if stdin.is_terminal() && !crate::platform::process::in_terminal_foreground() {
            tracing::info!("started in the background: the terminal is not read");
            return Self { rx, ended: true };
        }
        // A thread of its own, not tokio's blocking pool: a read blocked on a terminal can be
        // neither cancelled nor waited for, and the runtime waits for its pool when it stops.
        let reader = std::thread::Builder::new()
            .name("tern-stdin".into())
            .spawn(move || read_lines(&tx));
        if let Err(e) = reader {
            tracing::warn!(error = %e, "cannot start the stdin reader");
            return Self { rx, ended: true };
        }
        Self { rx, ended: false }
    }
}

/// Send each line of stdin to `tx` until stdin or `tx` ends.
fn read_lines(tx: &mpsc::Sender<String>) {
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {
                let bytes = line.strip_suffix(b"\n").unwrap_or(&line);
                let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
                // Stdin may be GBK (a legacy file): UTF-8 if valid, else GBK.
                let decoded = text::decode_detected(bytes);
                if tx.blocking_send(decoded.text).is_err() {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading stdin");
                break;
            }
        }
    }
}

/// How one session ended, for the exit code.
#[derive(Debug, Default)]
struct Outcome {
    error: Option<String>,
    failed: usize,
    verified: usize,
    /// The peer was identified (a handshake failure is not worth retrying).
    connected: bool,
    interrupted: bool,
    /// Final state of each outgoing file, by relative path.
    outgoing: HashMap<String, TransferState>,
}

impl Outcome {
    fn exit_code(&self) -> ExitCode {
        if self.error.is_none() && self.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// A progress line is on stderr (a terminal) and must be cleared before the next note.
static PROGRESS_SHOWN: AtomicBool = AtomicBool::new(false);

/// Notes not yet written: a burst of them (ten thousand small files) goes out in one write.
static NOTES: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

fn note(message: impl std::fmt::Display) {
    let clear = if PROGRESS_SHOWN.swap(false, Ordering::Relaxed) {
        "\r\x1b[K"
    } else {
        ""
    };
    if let Ok(mut notes) = NOTES.lock() {
        notes.push_str(&format!("{clear}tern: {message}\n"));
        if BATCHING.load(Ordering::Relaxed) && notes.len() < 64 * 1024 {
            return;
        }
    }
    flush_notes();
}

/// Set while `drive` handles a burst of events; otherwise each note is written at once.
static BATCHING: AtomicBool = AtomicBool::new(false);

/// Write the notes gathered so far (`drive` calls this each turn, and at the end).
fn flush_notes() {
    let text = match NOTES.lock() {
        Ok(mut notes) if !notes.is_empty() => std::mem::take(&mut *notes),
        _ => return,
    };
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

fn stderr_is_terminal() -> bool {
    static TERMINAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TERMINAL.get_or_init(|| std::io::stderr().is_terminal())
}

/// Redraw the one-line progress of a moving file, when stderr is a terminal (a log file gets
/// only the notes).
fn show_progress(update: &crate::transfer::TransferUpdate, started: Option<&Instant>) {
    if !stderr_is_terminal() {
        return;
    }
    let p = update.progress;
    let rate = started
        .map(|t| t.elapsed().as_secs_f64())
        .filter(|s| *s > 0.2)
        .map(|s| format!(" {}/s", human_size((p.done as f64 / s) as u64)))
        .unwrap_or_default();
    let arrow = match update.id.direction {
        Direction::Outgoing => "↑",
        Direction::Incoming => "↓",
    };
    let line = format!(
        "\r\x1b[Ktern: {arrow} {} {:>3.0}% of {}{rate}",
        update.path,
        p.fraction() * 100.0,
        human_size(p.total)
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    PROGRESS_SHOWN.store(true, Ordering::Relaxed);
}

/// What ends a session from our side.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Finish {
    /// `tern send`: close once stdin has ended and every offered file is settled.
    WhenDone,
    /// `tern recv`, or a raw peer: keep going until the peer leaves.
    WhenPeerLeaves,
}

/// Drive one session until it closes, printing as we go.
/// `expect_outgoing`: how many files we offered, so the session is not closed before their
/// first events have even arrived. `stop` is the session's own token (see `Session::start`).
async fn drive(
    session: Session,
    lines: &mut StdinLines,
    finish: Finish,
    expect_outgoing: usize,
    shutdown: &CancellationToken,
    stop: &CancellationToken,
) -> Outcome {
    let Session {
        handle,
        mut events,
        task,
    } = session;
    // Dropped when a raw session has nothing more to send: see `half_close` below.
    let mut handle = Some(handle);
    let mut driver = Driver::default();
    // One command at a time waits for room in the session's queue, taken with `reserve` in the
    // select below, so events keep being read meanwhile (never block on a full queue).
    let mut pending: Option<Command> = None;
    let mut close_sent = false;
    loop {
        let settled = driver.outgoing_settled >= expect_outgoing && driver.open == 0;
        let input_done = lines.ended && pending.is_none();
        let done = finish == Finish::WhenDone
            && driver.connected
            && !driver.raw_peer
            && input_done
            && settled;
        // A raw peer has no goodbye: like nc at the end of its input, stop sending (a TCP
        // half-close, which a peer reading until EOF waits for) and print what it still says
        // until it closes. The session does that once every handle to it is gone.
        let half_close = finish == Finish::WhenDone && driver.raw_peer && input_done;
        if half_close && !driver.outcome.interrupted && handle.take().is_some() {
            note("stdin ended: nothing more to send; waiting for the peer to close");
        }
        if (done || driver.outcome.interrupted) && pending.is_none() && !close_sent {
            if handle.is_some() {
                pending = Some(Command::Close);
            } else {
                stop.cancel();
            }
            close_sent = true;
        }
        let commands = handle.as_ref();
        tokio::select! {
            () = shutdown.cancelled(), if !driver.outcome.interrupted => {
                note("interrupted: closing the session");
                driver.outcome.error.get_or_insert_with(|| "interrupted".into());
                driver.outcome.interrupted = true;
            }
            event = events.recv() => {
                let Some(event) = event else { break };
                BATCHING.store(true, Ordering::Relaxed);
                let mut closed = driver.on_event(event);
                // Whatever else is queued, in the same turn: one stderr write for the lot.
                for _ in 0..EVENT_BURST {
                    if closed {
                        break;
                    }
                    match events.try_recv() {
                        Ok(event) => closed = driver.on_event(event),
                        Err(_) => break,
                    }
                }
                BATCHING.store(false, Ordering::Relaxed);
                flush_notes();
                if closed {
                    break;
                }
            }
            line = lines.rx.recv(), if pending.is_none() && !lines.ended && !close_sent => match line {
                Some(line) => pending = Some(Command::Text(line)),
                None => lines.ended = true,
            },
            permit = reserve(commands), if pending.is_some() => match permit {
                Some(permit) => {
                    if let Some(command) = pending.take() {
                        permit.send(command);
                    }
                }
                None => pending = None,
            },
        }
    }
    flush_notes();
    drop(handle);
    let _ = task.await;
    driver.outcome
}

/// Room for one command, or `None` once the session (or our handle to it) is gone.
async fn reserve(handle: Option<&SessionHandle>) -> Option<mpsc::Permit<'_, Command>> {
    handle?.reserve().await.ok()
}

/// Whether stdout is a terminal, asked once.
static STDOUT_IS_TERMINAL: std::sync::LazyLock<bool> =
    std::sync::LazyLock::new(|| std::io::stdout().is_terminal());

/// The last transfers that ended, so a late update for one is not taken for a new transfer.
#[derive(Default)]
struct RecentlyEnded {
    order: std::collections::VecDeque<TransferId>,
    set: std::collections::HashSet<TransferId>,
}

impl RecentlyEnded {
    const KEEP: usize = 1024;

    fn contains(&self, id: &TransferId) -> bool {
        self.set.contains(id)
    }

    fn insert(&mut self, id: TransferId) {
        if self.set.insert(id) {
            self.order.push_back(id);
        }
        while self.order.len() > Self::KEEP {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

/// Events handled in one turn of the drive loop, at most.
const EVENT_BURST: usize = 512;

/// What `drive` knows about the session so far.
#[derive(Default)]
struct Driver {
    outcome: Outcome,
    /// Transfers not yet over.
    states: HashMap<TransferId, TransferState>,
    started: HashMap<TransferId, Instant>,
    ended: RecentlyEnded,
    // Kept as counts, not recomputed from `states`: ten thousand files mean ten thousand
    // events, and a scan per event would make the loop quadratic.
    open: usize,
    outgoing_settled: usize,
    raw_peer: bool,
    connected: bool,
}

impl Driver {
    /// Print and count one event; `true` when the session has closed.
    fn on_event(&mut self, event: SessionEvent) -> bool {
        match event {
            SessionEvent::Connected(peer) => {
                self.connected = true;
                self.outcome.connected = true;
                self.raw_peer = peer.raw;
                let addr = peer.addr.map(|a| a.to_string()).unwrap_or_default();
                if peer.raw {
                    note(format!(
                        "connected to raw peer {addr} (plain bytes, no framing)"
                    ));
                } else {
                    note(format!("connected to {} ({addr})", peer.name));
                }
            }
            SessionEvent::Text { text, lossy, .. } => {
                let mut out = std::io::stdout().lock();
                // A pipe gets the message byte for byte (the netcat contract); a terminal gets
                // it cleaned, one line, so a peer cannot drive the terminal.
                let written = if *STDOUT_IS_TERMINAL {
                    writeln!(out, "{}", text.shown())
                } else {
                    writeln!(out, "{}", text.raw())
                };
                // At once, for chat; a closed stdout (its reader gone) is not worth dying for.
                let _ = written.and_then(|()| out.flush());
                if lossy {
                    note("the last message had bytes invalid in its encoding (shown as \u{fffd})");
                }
            }
            SessionEvent::EncodingChanged(encoding) => note(format!("replying in {encoding}")),
            SessionEvent::PeerRenamed(name) => note(format!("the peer is now called {name}")),
            SessionEvent::Notice(text) => note(text),
            SessionEvent::Transfer(update) => self.on_transfer(update),
            SessionEvent::Closed { error } => {
                if let Some(error) = &error {
                    note(error);
                }
                if self.outcome.error.is_none() {
                    self.outcome.error = error.map(|e| e.to_string());
                }
                return true;
            }
        }
        false
    }

    fn on_transfer(&mut self, update: crate::transfer::TransferUpdate) {
        let id = update.id;
        if self.ended.contains(&id) {
            return;
        }
        let before = self.states.get(&id);
        if before == Some(&update.state) {
            if update.state == TransferState::Transferring {
                show_progress(&update, self.started.get(&id));
            }
            return;
        }
        report_transfer(&update, self.started.get(&id));
        let outgoing = id.direction == Direction::Outgoing;
        match (before.map(TransferState::is_final), update.state.is_final()) {
            (None, false) => self.open += 1,
            (None, true) => self.outgoing_settled += usize::from(outgoing),
            (Some(false), true) => {
                self.open -= 1;
                self.outgoing_settled += usize::from(outgoing);
            }
            (Some(true), false) => {
                self.open += 1;
                self.outgoing_settled -= usize::from(outgoing);
            }
            _ => {}
        }
        if update.state == TransferState::Transferring {
            self.started.insert(id, Instant::now());
        }
        if outgoing && update.state.is_final() {
            self.outcome
                .outgoing
                .insert(update.path.to_string(), update.state.clone());
        }
        match &update.state {
            TransferState::Verified => self.outcome.verified += 1,
            TransferState::Failed(_) | TransferState::Cancelled(_) => self.outcome.failed += 1,
            TransferState::Rejected(_) if outgoing => self.outcome.failed += 1,
            _ => {}
        }
        if update.state.is_final() {
            // Forgotten, but for a while remembered as ended: a session may run through
            // millions of transfers (or refused offers), and this table must not keep them.
            self.states.remove(&id);
            self.started.remove(&id);
            self.ended.insert(id);
        } else {
            self.states.insert(id, update.state);
        }
    }
}

fn report_transfer(update: &crate::transfer::TransferUpdate, started: Option<&Instant>) {
    let size = human_size(update.progress.total);
    let path = &update.path;
    // Starts are news for big files; for thousands of small ones, the ends say it all.
    let big = update.progress.total >= 1 << 20;
    match (&update.state, update.id.direction) {
        (TransferState::Offered, _) if big => note(format!("offering {path} ({size})")),
        (TransferState::AwaitingDecision, _) => note(format!("offer: {path} ({size})")),
        (TransferState::Transferring, Direction::Outgoing) if big => {
            note(format!("sending {path}"));
        }
        (TransferState::Transferring, Direction::Incoming) if big => {
            note(format!("receiving {path} ({size})"));
        }
        (TransferState::Queued | TransferState::Offered | TransferState::Transferring, _) => {}
        (TransferState::Verifying, _) => {}
        (TransferState::Verified, direction) => {
            let rate = started
                .map(|t| t.elapsed().as_secs_f64())
                .filter(|s| *s > 0.0 && update.progress.total >= 1 << 20)
                .map(|s| {
                    format!(
                        ", {}/s",
                        human_size((update.progress.total as f64 / s) as u64)
                    )
                })
                .unwrap_or_default();
            match (direction, &update.saved_as) {
                (Direction::Incoming, Some(saved)) => {
                    note(format!(
                        "received {path} ({size}{rate}), verified, saved as {}",
                        saved.display()
                    ));
                }
                _ => note(format!(
                    "sent {path} ({size}{rate}), verified by the receiver"
                )),
            }
        }
        (TransferState::Rejected(why), Direction::Incoming) => {
            note(format!("declined {path}: {why}"))
        }
        (TransferState::Rejected(why), Direction::Outgoing) => {
            note(format!("the receiver declined {path}: {why}"));
        }
        (state, _) => note(format!("{path}: {state}")),
    }
}

/// Cancel `token` when tern is asked to end (Ctrl-C, SIGTERM; on Windows also Ctrl-Break or
/// the console closing), so sessions can say goodbye.
fn watch_signals(token: CancellationToken) {
    tokio::spawn(async move {
        crate::platform::process::end_requested(false).await;
        token.cancel();
    });
}

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
    let mut lines = StdinLines::start();
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
            Finish::WhenDone,
            remaining.len(),
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

/// `tern recv [--bind ADDR] [--port N] [--once]`.
pub async fn recv(bind: SocketAddr, once: bool, config: SessionConfig) -> anyhow::Result<ExitCode> {
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
    let root = CancellationToken::new();
    let mut lines = StdinLines::start();
    let mut last = ExitCode::SUCCESS;
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => accepted.context("accepting a connection")?,
            () = shutdown.cancelled() => return Ok(last),
        };
        tracing::info!(%addr, "accepted");
        let stop = root.child_token();
        let session = Session::start(stream, Role::Listener, config.clone(), &stop);
        let outcome = drive(
            session,
            &mut lines,
            Finish::WhenPeerLeaves,
            0,
            &shutdown,
            &stop,
        )
        .await;
        note(format!("{addr} left"));
        last = outcome.exit_code();
        if once || shutdown.is_cancelled() {
            return Ok(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::{Progress, TransferUpdate};

    fn update(id: TransferId, state: TransferState) -> SessionEvent {
        SessionEvent::Transfer(TransferUpdate {
            id,
            path: "f".into(),
            saved_as: None,
            state,
            progress: Progress { done: 0, total: 1 },
        })
    }

    #[test]
    fn transfers_that_ended_are_not_kept() {
        let mut driver = Driver::default();
        let id = TransferId::incoming(1);
        driver.on_event(update(id, TransferState::Transferring));
        assert_eq!(driver.states.len(), 1);
        driver.on_event(update(id, TransferState::Verified));
        assert!(driver.states.is_empty() && driver.started.is_empty());
        // A late repeat of the end is not a new transfer.
        driver.on_event(update(id, TransferState::Verified));
        assert_eq!(driver.outcome.verified, 1);
        assert_eq!(driver.open, 0);
    }

    #[test]
    fn only_the_last_ended_transfers_are_remembered() {
        let mut ended = RecentlyEnded::default();
        let ids: Vec<TransferId> = (0..3 * RecentlyEnded::KEEP as u32)
            .map(TransferId::incoming)
            .collect();
        for &id in &ids {
            ended.insert(id);
        }
        assert_eq!(ended.set.len(), RecentlyEnded::KEEP);
        assert_eq!(ended.order.len(), RecentlyEnded::KEEP);
        assert!(!ended.contains(&ids[0]));
        assert!(ids.last().is_some_and(|id| ended.contains(id)));
    }
}
