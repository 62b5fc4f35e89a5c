//! The peer's file frames: data chunks, a file's end, a cancel.

use super::*;

impl Receiving {
    pub(in crate::session) fn on_chunk(
        &mut self,
        id: u32,
        offset: u64,
        data: Bytes,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        let flow = self.flow;
        let Some(t) = self.incoming.get_mut(&id) else {
            events.push(SessionEvent::Notice(Shown::new(format!(
                "the peer sent data for unknown transfer #{id}; ignored"
            ))));
            let reason = "data for a transfer that was never offered".into();
            return push_frame(
                out,
                &Frame::Cancel {
                    id,
                    by_sender: false,
                    reason,
                },
            );
        };
        if t.state.is_final() {
            // Chunks already in flight when we cancelled or failed it.
            return;
        }
        if t.state != TransferState::Transferring || t.awaiting_offset || t.finishing {
            let reason = "data arrived before the offer was accepted".to_string();
            return self.fail_and_stop(id, reason, out, events);
        }
        let end = t.received + data.len() as u64;
        let problem = if offset != t.received {
            Some(format!("chunk at offset {offset}, expected {}", t.received))
        } else if end > t.size {
            Some(format!(
                "the peer sent more than the {} it offered",
                human_size(t.size)
            ))
        } else if flow && end > t.credit.granted() {
            Some(format!(
                "the peer sent past its credit (byte {end} of {})",
                t.credit.granted()
            ))
        } else {
            None
        };
        if let Some(reason) = problem {
            return self.fail_and_stop(id, reason, out, events);
        }
        t.received = end;
        let tid = t.tid;
        if let Err(reason) = self.disk(DiskJob::Write { tid, data }) {
            self.fail_and_stop(id, reason, out, events);
        }
    }

    pub(in crate::session) fn on_file_end(
        &mut self,
        id: u32,
        hash: [u8; 32],
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        let Some(t) = self.incoming.get_mut(&id) else {
            return;
        };
        if t.state != TransferState::Transferring || t.awaiting_offset || t.finishing {
            return;
        }
        if t.received != t.size {
            let reason = format!(
                "truncated: the peer sent {} of {} bytes",
                t.received, t.size
            );
            let tid = t.tid;
            let _ = self.disk(DiskJob::Abandon {
                tid,
                discard: false,
            });
            return self.verdict_fail(id, reason, out, events);
        }
        t.finishing = true;
        t.hash = Some(hash);
        let tid = t.tid;
        if let Err(reason) = self.disk(DiskJob::Finish { tid, hash }) {
            self.verdict_fail(id, reason, out, events);
        }
    }

    /// The sender stopped its transfer: the partial file goes. Too late once every byte is
    /// here and the file is being named.
    pub(in crate::session) fn on_cancel(
        &mut self,
        id: u32,
        reason: String,
        events: &mut EventQueue,
    ) {
        let Some(t) = self.incoming.get_mut(&id) else {
            return;
        };
        if t.state.is_final() {
            return;
        }
        if t.too_late_to_stop() {
            events.push(SessionEvent::Notice(Shown::new(format!(
                "{}: the peer cancelled it after every byte had arrived; it is kept",
                t.path
            ))));
            return;
        }
        let started = t.state != TransferState::AwaitingDecision;
        t.state = TransferState::cancelled(reason);
        let tid = t.tid;
        if started {
            let _ = self.disk(DiskJob::Abandon { tid, discard: true });
        }
        self.emit(id, events);
    }
}
