//! `tern demo`: a built-in peer in the same process, so one person on one machine can see
//! every feature: it greets, answers messages, offers files and accepts the files it is sent.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::crypto::Identity;
use crate::session::{Command, OfferPolicy, Role, Security, Session, SessionConfig, SessionEvent};
use crate::text::width;
use crate::transfer::outgoing::collect_files;
use crate::transfer::{Direction, TransferState, human_size};

const WELCOME: &str = include_str!("../assets/demo-welcome.txt");

/// A running demo peer.
pub struct DemoPeer {
    pub addr: SocketAddr,
    /// Its temporary folder (files it offers, files it receives).
    pub dir: PathBuf,
}

/// Start the demo peer on 127.0.0.1, in `dir` (created; the caller removes it).
/// It speaks as the UI does (`security`: encrypted or `--insecure`); encrypted, it has a key of
/// its own for this run alone.
pub async fn start(
    dir: PathBuf,
    security: Security,
    cancel: &CancellationToken,
) -> io::Result<DemoPeer> {
    let outbox = dir.join("outbox");
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&outbox)?;
    std::fs::create_dir_all(&inbox)?;
    std::fs::write(outbox.join("welcome.txt"), WELCOME)?;
    write_sample(&outbox.join("sample-32MiB.bin"), 32 << 20)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let cancel = cancel.child_token();
    let identity = Identity::generate().map_err(io::Error::other)?;
    let mut config = SessionConfig::new("tern-demo", inbox.clone(), Arc::new(identity));
    if let Security::Insecure = security {
        config.security = Security::Insecure;
    }
    config.offers = OfferPolicy::AcceptAll;
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "demo peer: accept failed");
                        return;
                    }
                },
                () = cancel.cancelled() => return,
            };
            let session = Session::start(stream, Role::Listener, config.clone(), &cancel);
            converse(session, &outbox, &inbox).await;
        }
    });
    Ok(DemoPeer { addr, dir })
}

/// Pseudo-random bytes, so the sample is not trivially compressible and looks like real data.
fn write_sample(path: &Path, len: usize) -> io::Result<()> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, data)
}

async fn converse(mut session: Session, outbox: &Path, inbox: &Path) {
    let say = |text: &str| Command::Text(text.to_string());
    while let Some(event) = session.events.recv().await {
        let reply = match event {
            SessionEvent::Connected(_) => {
                for line in [
                    "Hi! I am tern's demo peer, running inside this same process.",
                    "你好！中文消息按字符宽度换行，一个汉字占两格，不会被切成两半。",
                    "Type a message and I will answer. Drag a file into this window (or /send PATH) and I will take it.",
                    "I am offering you two files now: press Tab until the Files pane is lit, then a to accept or d to decline.",
                ] {
                    let _ = session.handle.send(say(line)).await;
                }
                let files = [outbox.join("welcome.txt"), outbox.join("sample-32MiB.bin")];
                match collect_files(&files) {
                    Ok(files) => Some(Command::Offer(files)),
                    Err(e) => Some(say(&format!("(could not offer my files: {e})"))),
                }
            }
            SessionEvent::Text { text, .. } => {
                let text = text.raw();
                Some(say(&format!(
                    "You said “{text}”: {} characters, {} cells wide.",
                    text.chars().count(),
                    width(text)
                )))
            }
            SessionEvent::Transfer(update) if update.state == TransferState::Verified => {
                match update.id.direction {
                    Direction::Incoming => Some(say(&format!(
                        "Got {} ({}), BLAKE3 verified. It is in {}.",
                        update.path,
                        human_size(update.progress.total),
                        inbox.display()
                    ))),
                    Direction::Outgoing => Some(say(&format!(
                        "You have {} now, verified on your side.",
                        update.path
                    ))),
                }
            }
            SessionEvent::Transfer(update) => match (&update.state, update.id.direction) {
                (TransferState::Rejected(_), Direction::Outgoing) => {
                    Some(say(&format!("No problem, I will keep {}.", update.path)))
                }
                _ => None,
            },
            SessionEvent::Closed { .. } => break,
            _ => None,
        };
        if let Some(command) = reply
            && session.handle.send(command).await.is_err()
        {
            break;
        }
    }
    let _ = session.task.await;
}
