//! One session driven to its end: its events printed (stderr, stdout, or `--json` lines) and
//! counted, lines from stdin said, and the session closed when its work is done.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::json;
use super::lines::Lines;
use super::notes::{BATCHING, flush_notes, note, show_progress};
use crate::crypto::Fingerprint;
use crate::crypto::known::Verdict;
use crate::history::{History, Recorder};
use crate::session::{Command, FailureKind, Session, SessionEvent, SessionHandle};
use crate::text::Encoding;
use crate::transfer::{Direction, TransferId, TransferState, TransferUpdate, human_size};

/// How one session ended, for the exit code.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) error: Option<String>,
    pub(super) failed: usize,
    pub(super) verified: usize,
    /// The peer was identified (a handshake failure is not worth retrying).
    pub(super) connected: bool,
    /// The peer's key changed since it was last met, and this driver does not talk to such a
    /// peer (`tern send`): nothing was sent, and trying again would not change that.
    pub(super) untrusted: bool,
    pub(super) interrupted: bool,
    /// Final state of each outgoing file, by relative path.
    pub(super) outgoing: HashMap<String, TransferState>,
}

impl Outcome {
    pub(super) fn exit_code(&self) -> ExitCode {
        if self.error.is_none() && self.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// Drive one session (`tern send`'s) until it closes, printing as we go: it is closed once
/// stdin has ended and every offered file is settled (a raw peer's, once it closes).
/// `expect_outgoing`: how many files we offered, so the session is not closed before their
/// first events have even arrived. `stop` is the session's own token (see `Session::start`).
pub(super) async fn drive(
    session: Session,
    lines: &mut Lines,
    expect_outgoing: usize,
    style: Style,
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
    let mut driver = Driver::new(style);
    // One command at a time waits for room in the session's queue, taken with `reserve` in the
    // select below, so events keep being read meanwhile (never block on a full queue).
    let mut pending: Option<Command> = None;
    let mut close_sent = false;
    loop {
        let settled = driver.outgoing_settled >= expect_outgoing && driver.open == 0;
        let input_done = lines.ended && pending.is_none();
        let done = driver.connected && !driver.raw_peer && input_done && settled;
        // A raw peer has no goodbye: like nc at the end of its input, stop sending (a TCP
        // half-close, which a peer reading until EOF waits for) and print what it still says
        // until it closes. The session does that once every handle to it is gone.
        let half_close = driver.raw_peer && input_done;
        if half_close && !driver.outcome.interrupted && handle.take().is_some() {
            driver.note("stdin ended: nothing more to send; waiting for the peer to close");
        }
        let leave = driver.outcome.interrupted || driver.outcome.untrusted;
        if (done || leave) && pending.is_none() && !close_sent {
            if handle.is_some() {
                pending = Some(Command::Close);
            } else {
                stop.cancel();
            }
            close_sent = true;
        }
        let commands = handle.as_ref();
        tokio::select! {
            () = shutdown.cancelled(), if !driver.outcome.interrupted => driver.interrupted(),
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
                        if let Command::Text(line) = &command {
                            driver.said(line);
                        }
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

/// What a peer's key means here, in words.
pub(super) fn standing(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::FirstContact => "new here (first contact)",
        Verdict::Known { verified: true } => "known and verified",
        Verdict::Known { verified: false } => "known (not verified)",
        Verdict::KeyChanged { .. } => "NOT the key it had before",
    }
}

/// Events handled in one turn of the drive loop, at most.
pub(super) const EVENT_BURST: usize = 512;

/// How a driver reports and records what happens.
#[derive(Clone, Default)]
pub(super) struct Style {
    /// `--json`: every event as a JSON line on stdout, messages included.
    pub(super) json: bool,
    /// How many peers are connected (`tern recv`): while more than one is, notes about a
    /// session name its peer. With one, lines read as they always have.
    pub(super) connected: Option<Arc<AtomicUsize>>,
    /// Where messages and transfers are kept, unless `--no-history`.
    pub(super) history: Option<History>,
    /// How our lines are encoded, until the session says otherwise.
    pub(super) encoding: Encoding,
    /// Leave a peer whose key changed at once (`tern send`, which has no one to ask), rather
    /// than stay with everything held back (`tern recv`).
    pub(super) leave_changed_key: bool,
}

/// What is known about one session so far: what it printed, what it counted. `drive` runs one
/// session with it; `tern recv` keeps one per peer of the connection layer.
#[derive(Default)]
pub(super) struct Driver {
    style: Style,
    /// The peer's name (its address for a raw peer) and address, once connected.
    peer: String,
    addr: String,
    /// What the history keeps of this session.
    recorder: Recorder,
    pub(super) outcome: Outcome,
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
    pub(super) fn new(style: Style) -> Self {
        Self {
            recorder: Recorder::new(style.history.clone(), style.encoding),
            style,
            ..Self::default()
        }
    }

    /// A note about this session: naming its peer when several may be connected.
    pub(super) fn note(&self, message: impl std::fmt::Display) {
        let several = self
            .style
            .connected
            .as_ref()
            .is_some_and(|n| n.load(Ordering::Relaxed) > 1);
        if several && !self.peer.is_empty() {
            note(format!("{}: {message}", self.peer));
        } else {
            note(message);
        }
    }

    /// We were asked to end (a signal): the session closes, and that is a failure.
    pub(super) fn interrupted(&mut self) {
        self.note("interrupted: closing the session");
        self.outcome
            .error
            .get_or_insert_with(|| "interrupted".into());
        self.outcome.interrupted = true;
    }

    /// Say it loudly: this may be someone else under a known peer's name and address.
    fn key_changed(&mut self, name: &str, previous: &Fingerprint, now: &Fingerprint) {
        let action = if self.style.leave_changed_key {
            "Nothing was sent to it; tern send leaves"
        } else {
            "Nothing is sent to it and no file is accepted from it until the new key is trusted \
             (/trust in the terminal UI)"
        };
        note(format!(
            "WARNING: {name} ({}) presents a different key than before!\n\
             tern:   before: {previous}\n\
             tern:   now:    {now}\n\
             tern: Someone may be pretending to be {name}, or {name} reinstalled tern. Ask {name} \
             for the fingerprint `tern id` prints there. {action}.",
            self.addr
        ));
        if self.style.leave_changed_key {
            self.outcome.untrusted = true;
            self.outcome.error.get_or_insert_with(|| {
                format!("{name}'s key changed (it was {previous}, it is {now}): nothing was sent")
            });
        }
    }

    /// A line of ours went to the session.
    fn said(&mut self, line: &str) {
        self.recorder.said(line);
    }

    /// Print and count one event; `true` when the session has closed.
    pub(super) fn on_event(&mut self, event: SessionEvent) -> bool {
        self.recorder.on_event(&event);
        match event {
            SessionEvent::Connected(peer) => {
                self.connected = true;
                self.outcome.connected = true;
                self.raw_peer = peer.raw;
                self.addr = peer.addr.map(|a| a.to_string()).unwrap_or_default();
                self.peer = if peer.raw {
                    self.addr.clone()
                } else {
                    peer.name.to_string()
                };
                match &peer.key {
                    _ if peer.raw => note(format!(
                        "connected to raw peer {} (plain bytes, no framing, not encrypted)",
                        self.addr
                    )),
                    None => note(format!(
                        "connected to {} ({}), not encrypted (--insecure)",
                        peer.name, self.addr
                    )),
                    Some(key) => {
                        note(format!(
                            "connected to {} ({}), encrypted; its key {} is {}",
                            peer.name,
                            self.addr,
                            key.fingerprint,
                            standing(&key.standing)
                        ));
                        if let Verdict::KeyChanged { previous } = &key.standing {
                            self.key_changed(&peer.name, previous, &key.fingerprint);
                        }
                    }
                }
                if self.style.json {
                    json::print(&json::connected(&self.peer, &self.addr, &peer));
                }
            }
            SessionEvent::Text {
                text,
                encoding,
                lossy,
            } => {
                // A pipe gets the message byte for byte (the netcat contract); a terminal gets
                // it cleaned, one line, so a peer cannot drive the terminal.
                let text = if *STDOUT_IS_TERMINAL {
                    text.shown().to_string()
                } else {
                    text.raw().to_string()
                };
                if self.style.json {
                    json::print(&json::message(&self.peer, &self.addr, &text, encoding));
                } else {
                    let mut out = std::io::stdout().lock();
                    // At once, for chat; a closed stdout (its reader gone) is not worth dying
                    // for.
                    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
                }
                if lossy {
                    self.note(
                        "the last message had bytes invalid in its encoding (shown as \u{fffd})",
                    );
                }
            }
            SessionEvent::EncodingChanged(encoding) => {
                self.note(format!("replying in {encoding}"));
            }
            SessionEvent::PeerRenamed(name) => {
                self.note(format!("the peer is now called {name}"));
                if !self.raw_peer {
                    self.peer = name.to_string();
                }
            }
            SessionEvent::Notice(text) => self.note(text),
            SessionEvent::Transfer(update) => self.on_transfer(update),
            SessionEvent::Closed { error } => {
                if let Some(error) = &error {
                    self.note(error);
                }
                if self.style.json && self.connected {
                    json::print(&json::left(&self.peer, &self.addr, error.as_ref()));
                }
                if let Some(error) = &error
                    && error.kind == FailureKind::Untrusted
                {
                    self.outcome.untrusted = true;
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
        self.report(&update, before.is_none());
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

impl Driver {
    /// Say what became of a transfer: on stderr, and with `--json` on stdout. `new`: its first
    /// update.
    fn report(&self, update: &TransferUpdate, new: bool) {
        if self.style.json {
            self.report_json(update, new);
        }
        let started = self.started.get(&update.id);
        let size = human_size(update.progress.total);
        let path = &update.path;
        // Starts are news for big files; for thousands of small ones, the ends say it all.
        let big = update.progress.total >= 1 << 20;
        match (&update.state, update.id.direction) {
            (TransferState::Offered, _) if big => self.note(format!("offering {path} ({size})")),
            (TransferState::AwaitingDecision, _) => self.note(format!("offer: {path} ({size})")),
            (TransferState::Transferring, Direction::Outgoing) if big => {
                self.note(format!("sending {path}"));
            }
            (TransferState::Transferring, Direction::Incoming) if big => {
                self.note(format!("receiving {path} ({size})"));
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
                        self.note(format!(
                            "received {path} ({size}{rate}), verified, saved as {}",
                            saved.display()
                        ));
                    }
                    _ => self.note(format!(
                        "sent {path} ({size}{rate}), verified by the receiver"
                    )),
                }
            }
            (TransferState::Rejected(why), Direction::Incoming) => {
                self.note(format!("declined {path}: {why}"))
            }
            (TransferState::Rejected(why), Direction::Outgoing) => {
                self.note(format!("the receiver declined {path}: {why}"));
            }
            (state, _) => self.note(format!("{path}: {state}")),
        }
    }

    /// The `--json` line for a transfer's update, if it is news to a script: an offer, a
    /// verified file, a failure.
    fn report_json(&self, update: &TransferUpdate, new: bool) {
        let incoming = update.id.direction == Direction::Incoming;
        let (name, size) = (update.path.as_str(), update.progress.total);
        let line = match &update.state {
            state if new && incoming && !state.is_final() => json::offer(&self.peer, name, size),
            TransferState::Verified => json::verified(&self.peer, update, incoming),
            TransferState::Failed(_) | TransferState::Cancelled(_) | TransferState::Rejected(_) => {
                json::failed(&self.peer, name, &update.state.to_string(), incoming)
            }
            _ => return,
        };
        json::print(&line);
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::Progress;

    fn update(id: TransferId, state: TransferState) -> SessionEvent {
        SessionEvent::Transfer(TransferUpdate {
            id,
            path: "f".into(),
            saved_as: None,
            hash: None,
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
