//! One connection to one peer, driven by one actor task that alone owns the socket.
//!
//! The outside world (headless mode, the TUI) talks to it only through a [`SessionHandle`]
//! (bounded channel of [`Command`]s) and a bounded receiver of [`SessionEvent`]s. Depends on
//! `protocol`, `transfer` and `text`.

mod actor;
mod credit;
mod failure;
mod files;
mod handshake;
mod inbound;
mod outbox;
mod peer_id;
mod raw;
mod receiving;
mod retired;
mod sending;
mod socket;
mod trust;

pub use failure::{Failure, FailureKind};
pub use outbox::Events;
pub use peer_id::PeerId;
pub use receiving::MAX_OPEN_OFFERS;
pub use sending::OFFER_WINDOW;
pub use trust::{SharedKnown, lock as lock_known};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::crypto::known::Verdict;
use crate::crypto::noise::NoiseError;
use crate::crypto::{ExpectedFingerprint, Fingerprint, Identity};
use crate::protocol::ProtocolError;
use crate::text::{Encoding, PeerText, Shown};
use crate::transfer::outgoing::OutgoingFile;
use crate::transfer::{TransferId, TransferUpdate};

pub use handshake::Role;

/// What to do with file offers nobody has answered yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OfferPolicy {
    /// Wait for a `Command::Accept` or `Command::Reject` (the TUI).
    Ask,
    /// Accept every offer (`--yes`).
    AcceptAll,
    /// Decline every offer and tell the peer this reason (headless without `--yes`).
    DeclineAll(String),
}

/// Whether a session encrypts, and as whom.
#[derive(Clone)]
pub enum Security {
    /// Protocol version 2: the Noise handshake as this identity, then everything in records.
    Encrypted(Arc<Identity>),
    /// Protocol version 1: frames in clear (`--insecure`).
    Insecure,
}

impl Security {
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Security::Encrypted(identity) => Some(identity),
            Security::Insecure => None,
        }
    }
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Security::Encrypted(identity) => write!(f, "Encrypted({})", identity.fingerprint()),
            Security::Insecure => f.write_str("Insecure"),
        }
    }
}

/// Which peer keys a session accepts, and what it remembers of them.
#[derive(Clone, Default)]
pub struct Trust {
    /// Only this key (`--peer-fingerprint`): any other ends the session before anything is
    /// sent.
    pub only: Option<ExpectedFingerprint>,
    /// The peers met before (trust on first use). `None`: no memory of peers (the demo,
    /// tests).
    pub known: Option<SharedKnown>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("only", &self.only)
            .field("known", &self.known.is_some())
            .finish()
    }
}

/// How a session behaves; fixed for its lifetime except the outgoing encoding.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Our display name, sent in `Hello`.
    pub name: String,
    /// Forced outgoing encoding. `None`: UTF-8 to a tern, the detected encoding to a raw peer.
    pub encoding: Option<Encoding>,
    pub download_dir: PathBuf,
    pub offers: OfferPolicy,
    /// Skip the handshake: plain bytes both ways.
    pub raw: bool,
    /// Encrypted (the default) or `--insecure`.
    pub security: Security,
    pub trust: Trust,
    /// Data bytes per `Chunk`.
    pub chunk_len: usize,
    /// How long a listener waits for a silent peer's first byte before calling it raw.
    pub raw_silence: Duration,
    /// The whole handshake, from the connection to both `Hello`s, takes at most this long.
    pub handshake_timeout: Duration,
    /// Offers of larger files are refused up front.
    pub max_file_size: Option<u64>,
    /// Offers are refused once this many bytes were accepted in the session.
    pub max_total: Option<u64>,
    /// Silence after which we ping, and after which the peer is declared unresponsive.
    pub ping_after: Duration,
    pub dead_after: Duration,
}

impl SessionConfig {
    /// Encrypted as `identity`, remembering no peers.
    pub fn new(name: impl Into<String>, download_dir: PathBuf, identity: Arc<Identity>) -> Self {
        Self {
            name: name.into(),
            encoding: None,
            download_dir,
            offers: OfferPolicy::Ask,
            raw: false,
            security: Security::Encrypted(identity),
            trust: Trust::default(),
            chunk_len: 256 * 1024,
            raw_silence: Duration::from_millis(1000),
            handshake_timeout: Duration::from_secs(10),
            max_file_size: None,
            max_total: None,
            ping_after: Duration::from_secs(15),
            dead_after: Duration::from_secs(45),
        }
    }
}

/// What the UI asks the session to do.
#[derive(Debug)]
pub enum Command {
    /// Send one text message.
    Text(String),
    /// Offer these files (already expanded from folders).
    Offer(Vec<OutgoingFile>),
    /// Accept an incoming offer.
    Accept(TransferId),
    /// Decline an incoming offer, telling the peer why.
    Reject(TransferId, String),
    /// Stop a transfer in either direction.
    Cancel(TransferId),
    /// Change the outgoing text encoding.
    SetEncoding(Encoding),
    /// Change our display name, and tell the peer at once if it can hear it (`RENAME`).
    SetName(String),
    /// The user trusts the peer's changed key: what was held back goes out.
    Trust,
    /// Say goodbye once everything queued is written, then close.
    Close,
}

/// Who the peer is, once identified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// As the peer named itself, cleaned.
    pub name: Shown,
    pub addr: Option<SocketAddr>,
    /// A plain TCP peer without framing (`nc`, a Python socket).
    pub raw: bool,
    /// The key the peer proved it holds: `None` when nothing is encrypted (a raw peer, or
    /// `--insecure`).
    pub key: Option<PeerKey>,
}

/// What the encrypted handshake proved about the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerKey {
    pub key: [u8; 32],
    pub fingerprint: Fingerprint,
    /// The digits both users read to each other to rule out a man in the middle (`/verify`).
    pub authentication: String,
    /// What the key means here. With [`Verdict::KeyChanged`] the session holds back everything
    /// it would send, and declines files it would accept by itself, until [`Command::Trust`].
    pub standing: Verdict,
}

/// What the session tells the UI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// The handshake is done (or the peer was found to be raw).
    Connected(PeerInfo),
    /// A text message from the peer.
    Text {
        text: PeerText,
        encoding: Encoding,
        /// Some bytes were invalid in `encoding` and became U+FFFD.
        lossy: bool,
    },
    /// Our outgoing encoding changed (by command, or detected from a raw peer).
    EncodingChanged(Encoding),
    /// The peer now goes by this name.
    PeerRenamed(Shown),
    /// A transfer appeared or changed.
    Transfer(TransferUpdate),
    /// Something worth telling the user that does not end the session.
    Notice(Shown),
    /// The session is over. `error` is `None` for a normal goodbye.
    Closed { error: Option<Failure> },
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("protocol version mismatch: we speak version {ours}, the peer speaks version {theirs}")]
    VersionMismatch { ours: u16, theirs: u16 },
    #[error(
        "the peer is not a tern (it answered with other bytes); for nc or a plain socket, use --raw"
    )]
    NotTern,
    #[error("malformed handshake: {0}")]
    MalformedHandshake(String),
    #[error("the peer did not complete the handshake within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("the peer refused the session: {0}")]
    Refused(String),
    /// We turned the peer away; the words say why.
    #[error("{0}")]
    Refusing(String),
    #[error(transparent)]
    Noise(#[from] NoiseError),
    /// The peer's key is not the one required.
    #[error("{0}")]
    Untrusted(String),
    #[error("peer not responding (nothing heard for {0:?})")]
    PeerNotResponding(Duration),
}

/// What a session can run over: a TCP stream, or any other duplex byte stream.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// Capacity of the command and event channels: small, so a stuck side pushes back.
const CHANNEL_CAPACITY: usize = 64;

/// Cheap to clone; every method only queues a command for the actor.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    commands: mpsc::Sender<Command>,
    cancel: CancellationToken,
}

/// The closed command channel: the session has ended.
#[derive(Debug, thiserror::Error)]
#[error("the session has ended")]
pub struct SessionEnded;

impl SessionHandle {
    /// Queue a command, waiting while the actor is busy.
    pub async fn send(&self, command: Command) -> Result<(), SessionEnded> {
        self.commands.send(command).await.map_err(|_| SessionEnded)
    }

    /// Wait for room in the command queue. Cancel-safe, unlike `send` in a `select!`: nothing
    /// is lost if another branch wins.
    pub async fn reserve(&self) -> Result<mpsc::Permit<'_, Command>, SessionEnded> {
        self.commands.reserve().await.map_err(|_| SessionEnded)
    }

    /// Queue a command without waiting; `Err` gives it back when the queue is full or closed.
    pub fn try_send(&self, command: Command) -> Result<(), Command> {
        self.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
        })
    }

    /// Drop the connection now, without a goodbye.
    pub fn abort(&self) {
        self.cancel.cancel();
    }
}

/// A running session: its handle, its events, and the task to await at the end.
pub struct Session {
    pub handle: SessionHandle,
    pub events: Events,
    pub task: tokio::task::JoinHandle<()>,
}

impl Session {
    /// Start the actor for `stream`. It identifies the peer first (`Role` says who speaks
    /// first); commands sent before that wait in the channel until it is done. `cancel` is the
    /// parent token: cancelling it ends this session too.
    pub fn start(
        stream: TcpStream,
        role: Role,
        config: SessionConfig,
        cancel: &CancellationToken,
    ) -> Session {
        let addr = stream.peer_addr().ok();
        socket::tune(&stream);
        let unsent = socket::UnsentLimit::of(&stream);
        Self::spawn(stream, addr, unsent, role, config, cancel)
    }

    /// Like [`Session::start`] over any byte stream (an in-memory pipe in tests and fuzzing).
    pub fn start_with<S: Transport>(
        stream: S,
        addr: Option<SocketAddr>,
        role: Role,
        config: SessionConfig,
        cancel: &CancellationToken,
    ) -> Session {
        Self::spawn(
            stream,
            addr,
            socket::UnsentLimit::none(),
            role,
            config,
            cancel,
        )
    }

    fn spawn<S: Transport>(
        stream: S,
        addr: Option<SocketAddr>,
        unsent: socket::UnsentLimit,
        role: Role,
        config: SessionConfig,
        cancel: &CancellationToken,
    ) -> Session {
        let (cmd_tx, cmd_rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (ev_tx, ev_rx) = mpsc::channel(CHANNEL_CAPACITY);
        let event_bytes = Arc::default();
        let cancel = cancel.child_token();
        let handle = SessionHandle {
            commands: cmd_tx,
            cancel: cancel.clone(),
        };
        let link = actor::Link {
            stream,
            addr,
            unsent,
        };
        let queue = outbox::EventQueue::new(ev_tx, Arc::clone(&event_bytes));
        let task = tokio::spawn(actor::run(link, role, config, cmd_rx, queue, cancel));
        Session {
            handle,
            events: Events::new(ev_rx, event_bytes),
            task,
        }
    }
}

/// Resolve `HOST[:PORT]` (default port `default_port`) and connect. The error says what went
/// wrong and nothing more: the caller, which knows what it was doing, adds that once.
pub async fn connect(target: &str, default_port: u16) -> std::io::Result<TcpStream> {
    connect_to(&resolve(target, default_port).await?).await
}

/// The addresses `HOST[:PORT]` names. An error here does not go away by trying again: a port
/// that is not one, or a host name that does not resolve.
pub async fn resolve(target: &str, default_port: u16) -> std::io::Result<Vec<SocketAddr>> {
    let addr = with_default_port(target, default_port);
    let port = addr.rsplit_once(':').map_or("", |(_, port)| port);
    if !matches!(port.parse::<u16>(), Ok(1..)) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{port:?} is not a port (1 to 65535)"),
        ));
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&addr).await?.collect();
    if addrs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the host name has no address",
        ));
    }
    Ok(addrs)
}

/// Connect to the first of `addrs` that answers; the last error if none does.
pub async fn connect_to(addrs: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to connect to")
    }))
}

/// `host` → `host:port`; `host:p`, `[v6]:p` and `[v6]` are kept or completed as needed.
pub fn with_default_port(target: &str, default_port: u16) -> String {
    let target = target.trim();
    if let Some(rest) = target.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((_, after)) if after.starts_with(':') => target.to_string(),
            _ => format!("{target}:{default_port}"),
        };
    }
    match target.matches(':').count() {
        0 => format!("{target}:{default_port}"),
        1 => target.to_string(),
        // A bare IPv6 address.
        _ => format!("[{target}]:{default_port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{resolve, with_default_port};

    #[test]
    fn default_port_is_added_only_when_missing() {
        assert_eq!(with_default_port("10.0.0.2", 8989), "10.0.0.2:8989");
        assert_eq!(with_default_port("host:1234", 8989), "host:1234");
        assert_eq!(with_default_port("::1", 8989), "[::1]:8989");
        assert_eq!(with_default_port("[::1]:7", 8989), "[::1]:7");
        assert_eq!(with_default_port("[::1]", 8989), "[::1]:8989");
    }

    #[tokio::test]
    async fn a_port_that_is_not_one_is_refused_before_any_lookup() {
        for target in ["127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http", "[::1]:"] {
            let err = resolve(target, 8989).await.err();
            assert_eq!(
                err.map(|e| e.kind()),
                Some(std::io::ErrorKind::InvalidInput),
                "{target}"
            );
        }
    }
}
