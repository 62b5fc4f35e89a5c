//! What the UI says about a peer's key, and `/trust` and `/verify`.
//!
//! Every connected peer has a standing the user can see (the peer list's mark, the status bar,
//! the pane title): verified, known, first contact, key changed, or not encrypted. A changed
//! key holds back everything we would send to it until `/trust`; `/verify` compares the short
//! authentication string both users read to each other.

use std::net::IpAddr;

use super::conversation::Link;
use super::{Action, App};
use crate::crypto::known::Verdict;
use crate::session::{Command, PeerInfo};

/// A connected peer's standing, as the UI names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Verified,
    Known,
    FirstContact,
    KeyChanged,
    NotEncrypted,
}

impl Standing {
    pub fn of(info: &PeerInfo) -> Self {
        info.key
            .as_ref()
            .map_or(Standing::NotEncrypted, |k| Self::of_verdict(&k.standing))
    }

    fn of_verdict(verdict: &Verdict) -> Self {
        match verdict {
            Verdict::Known { verified: true } => Standing::Verified,
            Verdict::Known { verified: false } => Standing::Known,
            Verdict::FirstContact => Standing::FirstContact,
            Verdict::KeyChanged { .. } => Standing::KeyChanged,
        }
    }

    /// A few words for the pane title (every standing but the last is encrypted).
    pub fn words(self) -> &'static str {
        match self {
            Standing::Verified => "verified",
            Standing::Known => "known",
            Standing::FirstContact => "first contact",
            Standing::KeyChanged => "KEY CHANGED",
            Standing::NotEncrypted => "not encrypted",
        }
    }
}

/// What `/trust` and `/verify` need of the open conversation's peer.
struct KeyedPeer {
    peer: crate::session::PeerId,
    name: String,
    ip: Option<IpAddr>,
    key: crate::session::PeerKey,
}

impl App {
    /// The open conversation's peer, if it has an encrypted session; else says why not.
    fn keyed_peer(&mut self, command: &str) -> Option<KeyedPeer> {
        let conv = self.conv();
        if conv.everyone {
            self.error(format!(
                "/{command} is about one peer: open its conversation first"
            ));
            return None;
        }
        let (Link::Connected(info), Some(peer)) = (&conv.link, conv.peer) else {
            self.error(format!("{} is not connected", conv.name));
            return None;
        };
        let Some(key) = info.key.clone() else {
            self.error(format!(
                "{} is not encrypted (a raw peer, or --insecure): there is no key to {command}",
                conv.name
            ));
            return None;
        };
        Some(KeyedPeer {
            peer,
            name: info.name.to_string(),
            ip: info.addr.map(|a| a.ip()),
            key,
        })
    }

    /// Set the open conversation's peer's standing.
    fn set_standing(&mut self, standing: Verdict) {
        let i = self.open;
        if let Link::Connected(info) = &mut self.conversations[i].link
            && let Some(key) = &mut info.key
        {
            key.standing = standing;
        }
    }

    /// `/trust`: take the open peer's changed key as its own from now on.
    pub(super) fn trust(&mut self) -> Vec<Action> {
        let Some(keyed) = self.keyed_peer("trust") else {
            return Vec::new();
        };
        if !matches!(keyed.key.standing, Verdict::KeyChanged { .. }) {
            self.system(format!(
                "{}'s key {} is already trusted ({})",
                keyed.name,
                keyed.key.fingerprint,
                Standing::of_verdict(&keyed.key.standing).words()
            ));
            return Vec::new();
        }
        self.set_standing(Verdict::Known { verified: false });
        self.system(format!(
            "trusted {}'s new key {}; what was held back goes out now (/verify to be sure it is theirs)",
            keyed.name, keyed.key.fingerprint
        ));
        vec![
            Action::Trust {
                key: keyed.key.key,
                name: keyed.name,
                ip: keyed.ip,
            },
            Action::Session(keyed.peer, Command::Trust),
        ]
    }

    /// `/verify`: show the digits to compare; `/verify DIGITS`: compare them.
    pub(super) fn verify(&mut self, typed: &str) -> Vec<Action> {
        let Some(keyed) = self.keyed_peer("verify") else {
            return Vec::new();
        };
        let ours: String = keyed.key.authentication.split_whitespace().collect();
        let theirs: String = typed.split_whitespace().collect();
        if theirs.is_empty() {
            self.system(format!(
                "read these digits to {name} (by voice, in person), and ask {name} to read theirs: {digits}. \
                 If they are the same, type /verify {digits}. {name}'s key: {fp}",
                name = keyed.name,
                digits = keyed.key.authentication,
                fp = keyed.key.fingerprint
            ));
            return Vec::new();
        }
        if theirs != ours {
            self.error(format!(
                "the digits do NOT match ({} here): someone may be between you and {}, reading \
                 everything. Do not trust this connection: /close it",
                keyed.key.authentication, keyed.name
            ));
            return Vec::new();
        }
        let mut actions = Vec::new();
        if matches!(keyed.key.standing, Verdict::KeyChanged { .. }) {
            actions.push(Action::Trust {
                key: keyed.key.key,
                name: keyed.name.clone(),
                ip: keyed.ip,
            });
            actions.push(Action::Session(keyed.peer, Command::Trust));
        }
        self.set_standing(Verdict::Known { verified: true });
        self.system(format!(
            "verified: {}'s key {} is theirs (the digits match)",
            keyed.name, keyed.key.fingerprint
        ));
        actions.push(Action::Verified { key: keyed.key.key });
        actions
    }
}
