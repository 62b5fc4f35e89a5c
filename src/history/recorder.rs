//! What a session's events mean for the history: one recorder per session, fed every event
//! and every line of ours, handing records to the writer. Used alike by headless mode and the
//! UI.

use super::{Direction, History, Record, now};
use crate::session::SessionEvent;
use crate::text::Encoding;
use crate::transfer::{self, TransferUpdate};

/// Lines said before the peer is known, kept until it is: at most this many.
const UNATTRIBUTED: usize = 1024;

#[derive(Default)]
pub struct Recorder {
    history: Option<History>,
    /// The peer's name (its address for a raw peer) and address, once connected.
    peer: Option<(String, String)>,
    /// How our lines are encoded, until the session says otherwise.
    encoding: Encoding,
    /// Our lines said before the handshake named the peer.
    unattributed: Vec<String>,
}

impl Recorder {
    /// `history`: `None` keeps nothing (`--no-history`, or no store could be opened).
    pub fn new(history: Option<History>, encoding: Encoding) -> Self {
        Self {
            history,
            peer: None,
            encoding,
            unattributed: Vec::new(),
        }
    }

    /// The peer's name as kept, once connected.
    pub fn peer(&self) -> Option<&str> {
        self.peer.as_ref().map(|(name, _)| name.as_str())
    }

    /// A line of ours went to the session.
    pub fn said(&mut self, line: &str) {
        if self.peer.is_some() {
            self.message(Direction::Out, line, self.encoding);
        } else if self.unattributed.len() < UNATTRIBUTED {
            self.unattributed.push(line.to_string());
        }
    }

    pub fn on_event(&mut self, event: &SessionEvent) {
        match event {
            SessionEvent::Connected(info) => {
                let addr = info.addr.map(|a| a.to_string()).unwrap_or_default();
                let name = if info.raw {
                    addr.clone()
                } else {
                    info.name.to_string()
                };
                self.peer = Some((name, addr));
                self.record(|peer, addr| Record::Seen {
                    time: now(),
                    peer,
                    addr,
                });
                for line in std::mem::take(&mut self.unattributed) {
                    self.message(Direction::Out, &line, self.encoding);
                }
            }
            SessionEvent::Text { text, encoding, .. } => {
                self.message(Direction::In, text.raw(), *encoding);
            }
            SessionEvent::EncodingChanged(encoding) => self.encoding = *encoding,
            SessionEvent::Transfer(update) if update.state.is_final() => self.transfer(update),
            _ => {}
        }
    }

    fn message(&self, direction: Direction, text: &str, encoding: Encoding) {
        self.record(|peer, addr| Record::Message {
            time: now(),
            peer,
            addr,
            direction,
            encoding: encoding.name().into(),
            text: text.into(),
        });
    }

    fn transfer(&self, update: &TransferUpdate) {
        let direction = match update.id.direction {
            transfer::Direction::Incoming => Direction::In,
            transfer::Direction::Outgoing => Direction::Out,
        };
        self.record(|peer, addr| Record::Transfer {
            time: now(),
            peer,
            addr,
            direction,
            name: update.path.to_string(),
            size: update.progress.total,
            blake3: update
                .hash
                .map(|h| blake3::Hash::from(h).to_hex().to_string()),
            saved_path: update
                .saved_as
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            outcome: update.state.to_string(),
        });
    }

    /// Hand the writer the record `make` builds for the peer, if it is known.
    fn record(&self, make: impl FnOnce(String, Option<String>) -> Record) {
        if let (Some(history), Some((peer, addr))) = (&self.history, &self.peer) {
            history.record(make(peer.clone(), Some(addr.clone())));
        }
    }
}
