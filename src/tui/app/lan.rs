//! Peers found on the LAN by discovery: listed (◇) beside the conversations, dialled with
//! Enter, gone again when they say goodbye or fall silent, unless something was said with
//! them.

use super::conversation::{Conversation, Link};
use super::{Action, App, MAX_CONVERSATIONS};
use crate::net::discovery::{Found, Sighting};
use crate::protocol::discovery::Instance;
use crate::text::Shown;

impl App {
    pub(super) fn on_sighting(&mut self, sighting: Sighting) -> Vec<Action> {
        match sighting {
            Sighting::Found(found) | Sighting::Changed(found) => self.seen(found),
            Sighting::Gone(instance) => self.gone(instance),
        }
        Vec::new()
    }

    fn index_of_lan(&self, instance: Instance) -> Option<usize> {
        (1..self.conversations.len()).find(|&i| {
            self.conversations[i]
                .lan
                .as_ref()
                .is_some_and(|f| f.instance == instance)
        })
    }

    /// A peer heard on the LAN: its conversation (the one with its key, or one under its name
    /// without a session), else a new one at the end of the list.
    fn seen(&mut self, found: Found) {
        let name = Shown::new(found.name.as_str()).to_string();
        let i = self.index_of_lan(found.instance).or_else(|| {
            (1..self.conversations.len()).find(|&j| {
                let c = &self.conversations[j];
                c.lan.is_none() && (has_key(c, &found) || (c.name == name && !c.link.is_live()))
            })
        });
        let i = match i {
            Some(i) => i,
            // A full list keeps what it has: a LAN full of terns (or of made-up announces)
            // does not push out conversations.
            None if self.conversations.len() >= MAX_CONVERSATIONS => return,
            None => {
                let mut conv = Conversation::new(name.clone(), Link::Idle);
                conv.from_lan = true;
                self.conversations.push(conv);
                self.conversations.len() - 1
            }
        };
        let conv = &mut self.conversations[i];
        if !conv.link.is_live() {
            conv.target = Some(found.target());
            if conv.is_blank() {
                conv.name = name;
            }
        }
        conv.lan = Some(found);
    }

    /// A peer left the LAN: an entry only discovery made goes, unless it has a session or a
    /// transcript, or is open.
    fn gone(&mut self, instance: Instance) {
        let Some(i) = self.index_of_lan(instance) else {
            return;
        };
        let conv = &mut self.conversations[i];
        conv.lan = None;
        if conv.from_lan && i != self.open && conv.link == Link::Idle && conv.is_blank() {
            self.remove_at(i);
        }
    }

    /// `/peers`: what discovery has found, and a fresh look.
    pub(super) fn list_lan(&mut self) -> Vec<Action> {
        if !self.discovering {
            self.error(
                "discovery is off in this run: /connect HOST[:PORT] reaches a peer by address",
            );
            return Vec::new();
        }
        let found: Vec<String> = self
            .conversations
            .iter()
            .filter_map(|c| c.lan.as_ref().map(|f| (c, f)))
            .map(|(c, f)| {
                let state = if c.link.is_live() {
                    "connected"
                } else {
                    "Enter connects"
                };
                format!("{} at {} ({state})", c.name, f.target())
            })
            .collect();
        if found.is_empty() {
            self.system("no tern found on the LAN yet; asking again…");
        } else {
            self.system(format!("on the LAN: {}; asking again…", found.join(", ")));
        }
        vec![Action::Refresh]
    }

    /// A `/peers` look has had its time: with nobody found, say what was tried and why
    /// nobody may have answered (`why`, several lines).
    pub(super) fn on_quiet_lan(&mut self, why: &str) -> Vec<Action> {
        if self.conversations.iter().any(|c| c.lan.is_some()) {
            return Vec::new();
        }
        self.system(format!(
            "no tern answered within {} s:",
            crate::net::discovery::LOOK.as_secs()
        ));
        for line in why.lines() {
            self.system(line.trim_start());
        }
        Vec::new()
    }
}

/// `c`'s connected peer is the one `found` announced: it has that key, or, with neither
/// having a key (`--insecure`), the same address.
fn has_key(c: &Conversation, found: &Found) -> bool {
    match &c.link {
        Link::Connected(info) => match &info.key {
            Some(k) => k.fingerprint.to_string() == found.fingerprint,
            None => {
                found.fingerprint.is_empty()
                    && info
                        .addr
                        .is_some_and(|a| a.ip() == std::net::IpAddr::V4(found.addr))
            }
        },
        _ => false,
    }
}
