//! Why a session ended badly, as it crosses to the UIs: a kind that code can act on, and the
//! words for the user. Nothing outside the session reads meaning out of the words.

use crate::text::Shown;

/// What went wrong, for code (the words are for people).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The peer was never identified: a timeout, another protocol version, not a tern, a
    /// refusal.
    Handshake,
    /// The peer's key is not the one required (`--peer-fingerprint`).
    Untrusted,
    /// The connection broke, or the peer went silent.
    Lost,
    /// The peer sent what the protocol does not allow.
    Protocol,
    /// The peer left with a reason, or while files were still moving.
    PeerLeft,
    /// We were asked to stop before the session could end by itself.
    Cancelled,
    /// The session's task ended without a word (a bug).
    Abnormal,
}

impl FailureKind {
    /// A short name for scripts (`--json`'s `reason`).
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Handshake => "handshake",
            FailureKind::Untrusted => "untrusted",
            FailureKind::Lost => "lost",
            FailureKind::Protocol => "protocol",
            FailureKind::PeerLeft => "peer-left",
            FailureKind::Cancelled => "cancelled",
            FailureKind::Abnormal => "abnormal",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct Failure {
    pub kind: FailureKind,
    pub text: Shown,
}

impl Failure {
    pub fn new(kind: FailureKind, text: impl AsRef<str>) -> Self {
        Self {
            kind,
            text: Shown::new(text),
        }
    }
}
