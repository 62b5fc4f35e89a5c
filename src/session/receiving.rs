//! Offers from the peer: checking names and limits, accepting or declining, and passing the
//! accepted data to the disk thread, granting credit as the disk takes it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::credit::{Account, Credit};
use super::files::{PROGRESS_EVERY, push_frame, short};
use super::outbox::EventQueue;
use super::retired::Retired;
use super::{OfferPolicy, SessionConfig, SessionEvent};
use crate::protocol::Frame;
use crate::text::Shown;
use crate::transfer::disk::{DiskEvent, DiskJob, DiskWorker};
use crate::transfer::names::SafePath;
use crate::transfer::{Progress, TransferId, TransferState, TransferUpdate, human_size};

mod frames;
mod incoming;
mod to_disk;

use incoming::Incoming;

/// File data the sender may have in flight or queued for our disk, all transfers together,
/// while nobody is chatting: enough to keep a fast disk busy. Measured (benches/compare.sh,
/// 2 cores): 4 MiB moves a 1 GiB file ~10 % faster than 1 MiB, and a 4 GiB one ~35 % faster
/// once writeback starts.
const BULK_WINDOW: u64 = 4 * 1024 * 1024;
/// The window while messages flow: a chat line waits behind what is in the connection, and
/// 1 MiB keeps that under a millisecond of file data here (4 MiB doubled the p99).
const CHAT_WINDOW: u64 = 1024 * 1024;
/// How long after the last message, either way, the connection still counts as a chat.
const CHAT_QUIET: Duration = Duration::from_secs(3);
/// The peer's offers open at once (awaiting a decision or moving); offers beyond are refused.
/// Each open offer holds its name and state here, and in the UI: without a limit, a peer could
/// fill our memory with offers it never means to send. tern's sender keeps at most
/// `sending::OFFER_WINDOW` (1024) open, so only another implementation can meet the limit.
pub const MAX_OPEN_OFFERS: usize = 4096;
/// File data handed to the disk thread and not yet written, past which the socket is not read
/// (without FLOW, nothing else stops a peer faster than our disk from filling our memory).
const MAX_DISK_BACKLOG: usize = 8 * 1024 * 1024;
/// Characters of an offered path kept for the screen.
const MAX_SHOWN_PATH: usize = 300;

pub(super) struct Receiving {
    download_dir: PathBuf,
    offers: OfferPolicy,
    max_file_size: Option<u64>,
    max_total: Option<u64>,
    resume: bool,
    flow: bool,
    /// Bytes of every offer accepted so far.
    accepted_total: u64,
    /// The last message sent or received: while a conversation goes on, file data is given
    /// the smaller credit window.
    last_chat: Option<Instant>,
    credit: Credit,
    /// By the peer's id: live offers and recently ended ones, whose ids may not be used again.
    incoming: HashMap<u32, Incoming>,
    /// Offers in `incoming` not yet ended.
    open: usize,
    retired: Retired,
    /// Offers over `MAX_OPEN_OFFERS` are being refused; the user was told once.
    refusing: bool,
    /// The peer's key changed and is not trusted yet: nothing is accepted by itself.
    held: bool,
    disk: Option<DiskWorker>,
    /// Jobs gathered while handling a burst of frames, sent together by `flush_disk`.
    disk_jobs: Vec<DiskJob>,
    disk_tx: mpsc::UnboundedSender<Vec<DiskEvent>>,
    /// What the disk thread reports; the actor selects on it.
    pub(super) disk_events: mpsc::UnboundedReceiver<Vec<DiskEvent>>,
}

impl Receiving {
    pub(super) fn new(config: &SessionConfig, resume: bool, flow: bool) -> Self {
        let (disk_tx, disk_events) = mpsc::unbounded_channel();
        Self {
            download_dir: config.download_dir.clone(),
            offers: config.offers.clone(),
            max_file_size: config.max_file_size,
            max_total: config.max_total,
            resume,
            flow,
            accepted_total: 0,
            last_chat: None,
            credit: Credit::default(),
            incoming: HashMap::new(),
            open: 0,
            retired: Retired::default(),
            refusing: false,
            held: false,
            disk: None,
            disk_jobs: Vec::new(),
            disk_tx,
            disk_events,
        }
    }

    pub(super) fn unsettled(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .incoming
            .iter()
            .filter(|(_, t)| !t.state.is_final())
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Files whose hash the disk thread is still checking.
    pub(super) fn finishing(&self) -> usize {
        let busy = |t: &&Incoming| t.finishing && !t.state.is_final();
        self.incoming.values().filter(busy).count()
    }

    /// A message went out or came in.
    pub(super) fn note_chat(&mut self) {
        self.last_chat = Some(Instant::now());
    }

    /// Messages went either way in the last `CHAT_QUIET`: file data gives way to them.
    pub(super) fn chatting(&self) -> bool {
        self.last_chat.is_some_and(|at| at.elapsed() < CHAT_QUIET)
    }

    fn credit_window(&self) -> u64 {
        if self.chatting() {
            CHAT_WINDOW
        } else {
            BULK_WINDOW
        }
    }

    /// The peer's id of `tid` if that very transfer is still in the table: a row of an
    /// earlier connection, or a disk report about a transfer forgotten since, names none,
    /// whatever its number.
    fn current(&self, tid: TransferId) -> Option<u32> {
        let t = self.incoming.get(&tid.id)?;
        (t.tid == tid).then_some(tid.id)
    }

    /// As [`Self::current`], while the transfer is not over.
    fn live(&self, tid: TransferId) -> Option<u32> {
        self.current(tid)
            .filter(|id| self.incoming.get(id).is_some_and(|t| !t.state.is_final()))
    }

    /// Report a transfer's state. Every change of state ends here, so this is also where an
    /// ended transfer gives its credit back.
    fn emit(&mut self, id: u32, events: &mut EventQueue) {
        let mut ended = false;
        if let Some(t) = self.incoming.get_mut(&id) {
            if t.state.is_final() {
                self.credit.close(&mut t.credit);
                if !t.ended {
                    t.ended = true;
                    ended = true;
                    self.open -= 1;
                }
            }
            t.last_event = Instant::now();
            let done = if t.state.is_success() {
                t.size
            } else {
                t.written
            };
            events.push(SessionEvent::Transfer(TransferUpdate {
                id: t.tid,
                path: t.path.clone(),
                saved_as: t.saved_as.clone(),
                hash: t.hash.filter(|_| t.state.is_success()),
                state: t.state.clone(),
                progress: Progress {
                    done,
                    total: t.size,
                },
            }));
        }
        if ended {
            self.retired
                .retire(id, &mut self.incoming, |t: &Incoming| t.ended);
        }
    }

    /// Why an offer of `size` bytes must be refused, if it must.
    fn over_limit(&self, size: u64) -> Option<String> {
        if let Some(max) = self.max_file_size
            && size > max
        {
            return Some(format!(
                "the file ({}) is over the receiver's limit of {} per file",
                human_size(size),
                human_size(max)
            ));
        }
        if let Some(max) = self.max_total
            && self.accepted_total.saturating_add(size) > max
        {
            return Some(format!(
                "the receiver's limit of {} per session would be exceeded",
                human_size(max)
            ));
        }
        None
    }

    pub(super) fn on_offer(
        &mut self,
        id: u32,
        size: u64,
        path: String,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        if let Some(existing) = self.incoming.get(&id) {
            // Whatever it carries must never be taken for the transfer that had the id.
            let (notice, reason) = if existing.state.is_final() {
                ("ended recently", "this id was used for an earlier offer")
            } else {
                ("is still open", "an offer with this id is already open")
            };
            events.push(SessionEvent::Notice(Shown::new(format!(
                "the peer offered #{id} again, while its first offer {notice}; \
                 the second offer ({path}) was refused"
            ))));
            let reason = reason.into();
            return push_frame(out, &Frame::Reject { id, reason });
        }
        if self.open >= MAX_OPEN_OFFERS {
            // Kept out of the table and the UI: the point is to hold nothing more.
            if !self.refusing {
                self.refusing = true;
                events.push(SessionEvent::Notice(Shown::new(format!(
                    "the peer has {MAX_OPEN_OFFERS} offers open; further offers are refused \
                     until some finish"
                ))));
            }
            let reason = format!("too many offers open at once (at most {MAX_OPEN_OFFERS})");
            return push_frame(out, &Frame::Reject { id, reason });
        }
        if self.open < MAX_OPEN_OFFERS / 2 {
            self.refusing = false;
        }
        let (safe, state) = match SafePath::for_download(&path, &self.download_dir) {
            Ok(safe) => match self.over_limit(size) {
                None => (Some(safe), TransferState::AwaitingDecision),
                Some(reason) => (Some(safe), TransferState::rejected(reason)),
            },
            Err(e) => (
                None,
                TransferState::rejected(format!("unsafe file name: {e}")),
            ),
        };
        let refused = match &state {
            TransferState::Rejected(reason) => Some(reason.as_str().to_string()),
            _ => None,
        };
        self.incoming.insert(
            id,
            Incoming {
                tid: TransferId::incoming(id),
                path: Shown::new(path).truncated(MAX_SHOWN_PATH),
                safe,
                size,
                state,
                received: 0,
                written: 0,
                credit: Account::default(),
                awaiting_offset: false,
                finishing: false,
                hash: None,
                saved_as: None,
                last_event: Instant::now(),
                ended: false,
                gate: Arc::default(),
            },
        );
        self.open += 1;
        if let Some(reason) = refused {
            push_frame(out, &Frame::Reject { id, reason });
            return self.emit(id, events);
        }
        // Announced as waiting only when someone will decide; otherwise the decision is the news.
        match self.offers.clone() {
            OfferPolicy::Ask => self.emit(id, events),
            OfferPolicy::AcceptAll if self.held => self.reject_id(
                id,
                "not accepted: the receiver has not trusted your new key".into(),
                out,
                events,
            ),
            OfferPolicy::AcceptAll => self.accept_id(id, out, events),
            OfferPolicy::DeclineAll(reason) => self.reject_id(id, reason, out, events),
        }
    }

    /// While the peer's changed key is not trusted, offers are never accepted by themselves.
    pub(super) fn hold(&mut self, held: bool) {
        self.held = held;
    }

    /// The user accepts the offer `tid`.
    pub(super) fn accept(&mut self, tid: TransferId, out: &mut BytesMut, events: &mut EventQueue) {
        match self.current(tid) {
            Some(id) => self.accept_id(id, out, events),
            None => events.push(SessionEvent::Notice(Shown::new(format!(
                "no offer #{} is waiting",
                tid.id
            )))),
        }
    }

    fn accept_id(&mut self, id: u32, out: &mut BytesMut, events: &mut EventQueue) {
        let Some((size, safe, tid, gate)) = self
            .incoming
            .get(&id)
            .filter(|t| t.state == TransferState::AwaitingDecision)
            .and_then(|t| Some((t.size, t.safe.clone()?, t.tid, Arc::clone(&t.gate))))
        else {
            events.push(SessionEvent::Notice(Shown::new(format!(
                "no offer #{id} is waiting"
            ))));
            return;
        };
        if let Some(reason) = self.over_limit(size) {
            return self.reject_id(id, reason, out, events);
        }
        self.accepted_total = self.accepted_total.saturating_add(size);
        // The disk thread says where to start (0 unless a partial file is there to resume);
        // `Accept` waits for that.
        let resume = self.resume;
        if let Err(reason) = self.disk(DiskJob::Begin {
            tid,
            path: safe,
            size,
            resume,
            gate,
        }) {
            return self.reject_id(id, reason, out, events);
        }
        let Some(t) = self.incoming.get_mut(&id) else {
            return;
        };
        t.state = TransferState::Transferring;
        t.awaiting_offset = resume;
        if !resume {
            self.start_at(id, 0, out);
        }
        self.emit(id, events);
    }

    /// Tell the sender to go from `offset`; its credit follows from the pool.
    fn start_at(&mut self, id: u32, offset: u64, out: &mut BytesMut) {
        let Some(t) = self.incoming.get_mut(&id) else {
            return;
        };
        t.received = offset;
        t.written = offset;
        t.awaiting_offset = false;
        push_frame(out, &Frame::Accept { id, offset });
        if self.flow {
            // Whatever an earlier start held goes back first: the pool must never leak.
            self.credit.close(&mut t.credit);
            t.credit = self.credit.open(id, offset, t.size);
        }
    }

    /// Grant the sender what the credit pool has free (once per turn of the actor, after the
    /// frames and disk events that returned some).
    pub(super) fn refill_credit(&mut self, out: &mut BytesMut) {
        if self.flow {
            let pool = self.credit_window();
            self.credit.refill(pool, &mut self.incoming, |id, upto| {
                push_frame(out, &Frame::Credit { id, upto });
            });
        }
    }

    /// The user declines the offer `tid`, telling the peer why.
    pub(super) fn reject(
        &mut self,
        tid: TransferId,
        reason: String,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        if let Some(id) = self.current(tid) {
            self.reject_id(id, reason, out, events);
        }
    }

    fn reject_id(&mut self, id: u32, reason: String, out: &mut BytesMut, events: &mut EventQueue) {
        let Some(t) = self.incoming.get_mut(&id) else {
            return;
        };
        if t.state != TransferState::AwaitingDecision {
            return;
        }
        let reason = short(reason);
        t.state = TransferState::rejected(&reason);
        push_frame(out, &Frame::Reject { id, reason });
        self.emit(id, events);
    }

    /// We stop the transfer `tid`: its partial file goes too. `shown` is for our user,
    /// `told` for the peer.
    pub(super) fn cancel(
        &mut self,
        tid: TransferId,
        shown: &str,
        told: &str,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        if let Some(id) = self.current(tid) {
            self.cancel_id(id, shown, told, out, events);
        }
    }

    pub(super) fn cancel_id(
        &mut self,
        id: u32,
        shown: &str,
        told: &str,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        if self.incoming.get(&id).is_some_and(|t| !t.state.is_final()) {
            self.stop_with(id, TransferState::cancelled(shown), true, told, out, events);
        }
    }

    /// The connection is gone. The partial file stays for a later resume.
    pub(super) fn fail(&mut self, id: u32, reason: &str, events: &mut EventQueue) {
        let Some(t) = self.incoming.get_mut(&id) else {
            return;
        };
        if t.too_late_to_stop() {
            // Every byte is here and the file is being named: that is how it ends.
            return;
        }
        t.state = TransferState::failed(reason);
        let tid = t.tid;
        let _ = self.disk(DiskJob::Abandon {
            tid,
            discard: false,
        });
        self.emit(id, events);
    }

    /// Fail a transfer and tell the sender to stop; the partial file stays for a resume.
    fn fail_and_stop(
        &mut self,
        id: u32,
        reason: String,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        let reason = short(reason);
        let end = TransferState::failed(&reason);
        self.stop_with(id, end, false, &reason, out, events);
    }

    /// End a transfer in state `end`, close its file (removing the partial with `discard`)
    /// and tell the sender, with `told` as the reason. A transfer whose every byte arrived and
    /// whose file is being named already cannot be stopped: it ends as the disk says.
    fn stop_with(
        &mut self,
        id: u32,
        end: TransferState,
        discard: bool,
        told: &str,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        let Some(t) = self.incoming.get_mut(&id) else {
            return;
        };
        if t.too_late_to_stop() {
            events.push(SessionEvent::Notice(Shown::new(format!(
                "{}: every byte had arrived and the file is being saved; too late to stop it",
                t.path
            ))));
            return;
        }
        let started = t.state != TransferState::AwaitingDecision;
        t.state = end;
        let tid = t.tid;
        if started {
            let _ = self.disk(DiskJob::Abandon { tid, discard });
        }
        push_frame(
            out,
            &Frame::Cancel {
                id,
                by_sender: false,
                reason: short(told),
            },
        );
        self.emit(id, events);
    }

    /// Fail a transfer whose sender is waiting for the verdict.
    fn verdict_fail(
        &mut self,
        id: u32,
        reason: String,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        let reason = short(reason);
        if let Some(t) = self.incoming.get_mut(&id) {
            t.state = TransferState::failed(&reason);
        }
        push_frame(
            out,
            &Frame::Verdict {
                id,
                ok: false,
                message: reason,
            },
        );
        self.emit(id, events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_flow_a_disk_that_falls_behind_stops_the_intake() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let mut config =
            SessionConfig::new("rx", tmp.path().to_path_buf(), crate::harness::identity());
        config.offers = OfferPolicy::AcceptAll;
        let mut receiving = Receiving::new(&config, false, false);
        let (tx, _rx) = tokio::sync::mpsc::channel(1024);
        let mut events = EventQueue::new(tx, Arc::default());
        let mut out = BytesMut::new();
        let size = 64 << 20;
        receiving.on_offer(1, size, "big.bin".into(), &mut out, &mut events);
        receiving.flush_disk(&mut out, &mut events);
        // Messages flowing: appends go to the disk thread, which is held up here.
        receiving.note_chat();
        let Some(stalled) = receiving.disk.as_ref().map(DiskWorker::stall) else {
            anyhow::bail!("no disk thread");
        };
        let mut offset = 0;
        let mut accepted = 0;
        while offset < size && !receiving.disk_backed_up() {
            let chunk = Bytes::from(vec![0u8; 1 << 20]);
            receiving.on_chunk(1, offset, chunk, &mut out, &mut events);
            receiving.flush_disk(&mut out, &mut events);
            offset += 1 << 20;
            accepted += 1;
        }
        assert!(receiving.disk_backed_up(), "{accepted} MiB taken in");
        assert!(
            accepted <= MAX_DISK_BACKLOG >> 20,
            "{accepted} MiB taken in"
        );
        drop(stalled);
        Ok(())
    }
}
