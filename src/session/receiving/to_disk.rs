//! The disk thread's side: jobs handed to it in batches, and what it reports back.

use super::*;

impl Receiving {
    /// File data waiting for the disk: past a bound, the actor stops reading the socket.
    pub(in crate::session) fn disk_backed_up(&self) -> bool {
        self.disk
            .as_ref()
            .is_some_and(|d| d.backlog() >= MAX_DISK_BACKLOG)
    }

    /// Queue a job for the disk thread, starting it on first use. Jobs go out in batches
    /// (`flush_disk`): a wake-up per job would cost more than the job for small files.
    pub(super) fn disk(&mut self, job: DiskJob) -> Result<(), String> {
        if self.disk.is_none() {
            let worker = DiskWorker::start(self.download_dir.clone(), self.disk_tx.clone())
                .map_err(|e| format!("cannot start the disk thread: {e}"))?;
            self.disk = Some(worker);
        }
        self.disk_jobs.push(job);
        Ok(())
    }

    /// Hand the gathered jobs to the disk thread, in order. If the thread is gone, every
    /// transfer they touch fails.
    pub(in crate::session) fn flush_disk(&mut self, out: &mut BytesMut, events: &mut EventQueue) {
        if self.disk_jobs.is_empty() {
            return;
        }
        let jobs = std::mem::take(&mut self.disk_jobs);
        let tids: Vec<TransferId> = jobs.iter().map(DiskJob::tid).collect();
        if !self.disk.as_ref().is_some_and(|worker| worker.send(jobs)) {
            for tid in tids {
                if let Some(id) = self.live(tid) {
                    self.fail_and_stop(id, "the disk thread stopped".into(), out, events);
                }
            }
        }
    }

    /// What the disk thread did, in order.
    pub(in crate::session) fn on_disk(
        &mut self,
        batch: Vec<DiskEvent>,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        for event in batch {
            self.on_disk_event(event, out, events);
        }
    }

    pub(super) fn on_disk_event(
        &mut self,
        event: DiskEvent,
        out: &mut BytesMut,
        events: &mut EventQueue,
    ) {
        match event {
            DiskEvent::Ready { tid, offset } => {
                let Some(id) = self.live(tid) else {
                    return;
                };
                let Some(t) = self.incoming.get(&id).filter(|t| t.awaiting_offset) else {
                    return;
                };
                if offset > 0 {
                    events.push(SessionEvent::Notice(Shown::new(format!(
                        "{}: {} already here from an earlier attempt; resuming",
                        t.path,
                        human_size(offset)
                    ))));
                }
                self.start_at(id, offset, out);
                self.emit(id, events);
            }
            DiskEvent::Written { tid, total } => {
                let Some(id) = self.current(tid) else {
                    return;
                };
                let Some(t) = self.incoming.get_mut(&id) else {
                    return;
                };
                // One thread writes and reports in order; a total no larger than the last is
                // nothing new.
                if total <= t.written {
                    return;
                }
                self.credit.written(&mut t.credit, total - t.written);
                t.written = total;
                if t.state.is_final() {
                    return;
                }
                if t.last_event.elapsed() >= PROGRESS_EVERY {
                    self.emit(id, events);
                }
            }
            DiskEvent::Saved { tid, path } => {
                let message = path
                    .strip_prefix(&self.download_dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                // Only a transfer whose gate let it be saved: it cannot have ended otherwise.
                let Some(id) = self.current(tid) else {
                    return;
                };
                let Some(t) = self.incoming.get_mut(&id) else {
                    return;
                };
                t.state = TransferState::Verified;
                t.written = t.size;
                t.saved_as = Some(path);
                push_frame(
                    out,
                    &Frame::Verdict {
                        id,
                        ok: true,
                        message: short(message),
                    },
                );
                self.emit(id, events);
            }
            DiskEvent::Failed { tid, reason } => {
                let Some(id) = self.live(tid) else {
                    return;
                };
                let finishing = self.incoming.get(&id).is_some_and(|t| t.finishing);
                if finishing {
                    self.verdict_fail(id, reason, out, events);
                } else {
                    self.fail_and_stop(id, reason, out, events);
                }
            }
        }
    }
}
