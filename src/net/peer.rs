//! One peer's task: its session's events out to the UI (and into the history), its commands in,
//! in order, one at a time as the session makes room.

use tokio::sync::mpsc;

use super::{PeerReport, Report};
use crate::history::{History, Recorder};
use crate::session::{Command, Failure, FailureKind, PeerId, Session, SessionEvent};
use crate::text::Encoding;

/// Commands queued for one peer beyond its session's own queue. Past this, a command is
/// refused (the UI says so) instead of growing memory behind a stalled link.
pub const COMMANDS_PER_PEER: usize = 1024;

/// Serve `session` until it ends. If the UI stops reading reports, the session is still
/// driven to its end (its goodbye and its last commands still go out).
pub(super) async fn serve(
    peer: PeerId,
    session: Session,
    mut commands: mpsc::Receiver<Command>,
    reports: mpsc::Sender<Report>,
    history: Option<History>,
    encoding: Encoding,
) {
    let Session {
        handle,
        mut events,
        task,
    } = session;
    let mut recorder = Recorder::new(history, encoding);
    let mut out = Out {
        peer,
        reports,
        listening: true,
    };
    // One command waits for room in the session's queue, taken with `reserve` (cancel-safe)
    // so events keep flowing meanwhile.
    let mut next: Option<Command> = None;
    let mut commands_open = true;
    // Our goodbye went to the session: it takes nothing more.
    let mut closing = false;
    loop {
        tokio::select! {
            event = events.recv() => {
                let (event, last) = match event {
                    Some(event) => {
                        let last = matches!(event, SessionEvent::Closed { .. });
                        (event, last)
                    }
                    // The actor ended without a word (it panicked): say so, as its last event.
                    None => (SessionEvent::Closed { error: Some(Failure::new(FailureKind::Abnormal, "the session ended abnormally")) }, true),
                };
                recorder.on_event(&event);
                out.send(PeerReport::Event(event)).await;
                if last {
                    break;
                }
            }
            permit = handle.reserve(), if next.is_some() => {
                let Some(command) = next.take() else { continue };
                match permit {
                    Ok(permit) if !closing => {
                        if let Command::Text(line) = &command {
                            recorder.said(line);
                        }
                        closing = matches!(command, Command::Close);
                        permit.send(command);
                    }
                    // The session is ending: its `Closed` event follows.
                    _ => out.send(PeerReport::Refused(command)).await,
                }
            }
            command = commands.recv(), if next.is_none() && commands_open => match command {
                Some(command) => next = Some(command),
                None => commands_open = false,
            },
        }
    }
    // What was still queued for the session is refused, so the UI can say it was not sent;
    // and from now on the layer's sends to this peer fail at once.
    commands.close();
    for command in next
        .into_iter()
        .chain(std::iter::from_fn(|| commands.try_recv().ok()))
    {
        out.send(PeerReport::Refused(command)).await;
    }
    drop(handle);
    let _ = task.await;
}

/// Reports about one peer, while the UI listens.
struct Out {
    peer: PeerId,
    reports: mpsc::Sender<Report>,
    listening: bool,
}

impl Out {
    async fn send(&mut self, what: PeerReport) {
        if self.listening {
            let report = Report {
                peer: self.peer,
                what,
            };
            self.listening = self.reports.send(report).await.is_ok();
        }
    }
}
