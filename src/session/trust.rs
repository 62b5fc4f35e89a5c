//! What a proven key means for a session: what the known peers say of it (trust on first use).
//! The file is written off the session's thread.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::{PeerKey, Trust};
use crate::crypto::known::{KnownPeers, Verdict};
use crate::crypto::noise::Secured;
use crate::text::Shown;

/// The peer's key and what the known peers say of it. (The key `--peer-fingerprint` requires
/// is checked in the handshake, before anything of ours is sent.)
pub(super) fn judge(
    trust: &Trust,
    name: &Shown,
    addr: Option<SocketAddr>,
    secured: &Secured,
) -> PeerKey {
    let standing = match &trust.known {
        Some(known) => lock(known).check(&secured.peer_key, name, addr.map(|a| a.ip())),
        None => Verdict::FirstContact,
    };
    PeerKey {
        key: secured.peer_key,
        fingerprint: secured.peer_fingerprint(),
        authentication: secured.authentication_string(),
        standing,
    }
}

/// A peer met with a key that is not in dispute: recorded, or brought up to date.
pub(super) fn remember(trust: &Trust, name: &Shown, addr: Option<SocketAddr>, key: &PeerKey) {
    if matches!(key.standing, Verdict::KeyChanged { .. }) {
        return;
    }
    let Some(known) = trust.known.clone() else {
        return;
    };
    let (peer, name, ip) = (key.key, name.to_string(), addr.map(|a| a.ip()));
    tokio::task::spawn_blocking(move || {
        let now = crate::history::now();
        if let Err(e) = lock(&known).seen(&peer, &name, ip, &now) {
            tracing::warn!(error = %e, "the known peers could not be written");
        }
    });
}

/// The table, even if a thread panicked holding it: it is written whole or not at all.
pub fn lock(known: &Mutex<KnownPeers>) -> std::sync::MutexGuard<'_, KnownPeers> {
    known
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Shared by the sessions of one process.
pub type SharedKnown = Arc<Mutex<KnownPeers>>;
