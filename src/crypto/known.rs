//! The peers this machine has met, by key: trust on first use, as ssh's `known_hosts`. The first
//! contact with a key is recorded with the name and address it came with; a different key under
//! a name *and* address already known is a changed key, which the UIs refuse to trust until the
//! user says so. Kept in the config folder, one JSON object per line, rewritten whole (written
//! aside, then renamed over the old file), so a crash leaves the old file or the new one.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::identity::Fingerprint;

/// The file's name in the config folder.
pub const FILE_NAME: &str = "known_peers";
/// Peers kept, at most: past this, the one seen longest ago goes.
const MAX_PEERS: usize = 10_000;
/// Longest line read: a line past this is not one tern wrote.
const MAX_LINE: usize = 4096;

/// One peer met.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    pub key: [u8; 32],
    pub name: String,
    /// Its address when last seen (no port: a peer that dials us comes from a new port every
    /// time).
    pub ip: Option<IpAddr>,
    pub first_seen: String,
    pub last_seen: String,
    /// Its authentication string was read and matched (`/verify`).
    pub verified: bool,
}

impl Known {
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.key)
    }
}

/// What a peer's key means here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A key never seen: trusted on first use.
    FirstContact,
    /// A key seen before (verified or not).
    Known { verified: bool },
    /// Another key was seen before under this name and address: maybe a reinstalled machine,
    /// maybe someone in the middle. Nothing is sent to it or accepted from it until the user
    /// trusts the new key.
    KeyChanged { previous: Fingerprint },
}

#[derive(Debug, thiserror::Error)]
pub enum KnownError {
    #[error("cannot read the known peers {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the known peers {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct KnownPeers {
    path: PathBuf,
    peers: Vec<Known>,
    /// Lines that were not a peer: kept as they were, said once in the log.
    skipped: usize,
}

impl KnownPeers {
    /// The file at `path`; none there is no peer known yet.
    pub fn open(path: &Path) -> Result<Self, KnownError> {
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(KnownError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let mut peers = Vec::new();
        let mut skipped = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match parse(line) {
                Some(peer) => peers.push(peer),
                None => skipped += 1,
            }
        }
        if skipped > 0 {
            tracing::warn!(path = %path.display(), skipped, "lines of the known peers that are not peers were skipped");
        }
        Ok(Self {
            path: path.to_path_buf(),
            peers,
            skipped,
        })
    }

    pub fn peers(&self) -> &[Known] {
        &self.peers
    }

    /// Lines of the file that were not peers.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<&Known> {
        self.peers.iter().find(|p| &p.key == key)
    }

    /// What `key`, presented under `name` from `ip`, means.
    pub fn check(&self, key: &[u8; 32], name: &str, ip: Option<IpAddr>) -> Verdict {
        if let Some(peer) = self.get(key) {
            return Verdict::Known {
                verified: peer.verified,
            };
        }
        let before = self
            .peers
            .iter()
            .filter(|p| p.name == name && ip.is_some() && p.ip == ip)
            .max_by(|a, b| a.last_seen.cmp(&b.last_seen));
        match before {
            Some(p) => Verdict::KeyChanged {
                previous: p.fingerprint(),
            },
            None => Verdict::FirstContact,
        }
    }

    /// `key` was seen now under `name` from `ip`: recorded (first contact) or brought up to
    /// date, and the file written. A changed key is not recorded here: see [`Self::trust`].
    pub fn seen(
        &mut self,
        key: &[u8; 32],
        name: &str,
        ip: Option<IpAddr>,
        now: &str,
    ) -> Result<(), KnownError> {
        match self.peers.iter_mut().find(|p| &p.key == key) {
            Some(peer) => {
                peer.name = name.to_string();
                peer.ip = ip.or(peer.ip);
                peer.last_seen = now.to_string();
            }
            None => {
                if let Verdict::KeyChanged { .. } = self.check(key, name, ip) {
                    return Ok(());
                }
                self.add(key, name, ip, now);
            }
        }
        self.save()
    }

    /// The user trusts `key` for `name` at `ip`: the keys it replaces under that name and
    /// address are forgotten.
    pub fn trust(
        &mut self,
        key: &[u8; 32],
        name: &str,
        ip: Option<IpAddr>,
        now: &str,
    ) -> Result<(), KnownError> {
        self.peers
            .retain(|p| &p.key == key || !(p.name == name && p.ip == ip));
        if self.get(key).is_none() {
            self.add(key, name, ip, now);
        }
        self.save()
    }

    /// Both users read the same authentication string: `key` is verified.
    pub fn verify(&mut self, key: &[u8; 32]) -> Result<bool, KnownError> {
        let Some(peer) = self.peers.iter_mut().find(|p| &p.key == key) else {
            return Ok(false);
        };
        peer.verified = true;
        self.save()?;
        Ok(true)
    }

    fn add(&mut self, key: &[u8; 32], name: &str, ip: Option<IpAddr>, now: &str) {
        if self.peers.len() >= MAX_PEERS
            && let Some(oldest) = self
                .peers
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.last_seen.cmp(&b.1.last_seen))
                .map(|(i, _)| i)
        {
            self.peers.remove(oldest);
        }
        self.peers.push(Known {
            key: *key,
            name: name.to_string(),
            ip,
            first_seen: now.to_string(),
            last_seen: now.to_string(),
            verified: false,
        });
    }

    fn save(&self) -> Result<(), KnownError> {
        let write_error = |source| KnownError::Write {
            path: self.path.clone(),
            source,
        };
        let mut text = String::new();
        for peer in &self.peers {
            text.push_str(&line(peer).to_string());
            text.push('\n');
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(write_error)?;
        }
        let aside = self
            .path
            .with_extension(format!("{}.new", std::process::id()));
        std::fs::write(&aside, text.as_bytes())
            .and_then(|()| std::fs::rename(&aside, &self.path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&aside);
                write_error(e)
            })
    }
}

fn line(peer: &Known) -> Value {
    json!({
        "key": data_encoding::BASE64.encode(&peer.key),
        "fingerprint": peer.fingerprint().to_string(),
        "name": peer.name,
        "ip": peer.ip.map(|ip| ip.to_string()),
        "first_seen": peer.first_seen,
        "last_seen": peer.last_seen,
        "verified": peer.verified,
    })
}

fn parse(line: &str) -> Option<Known> {
    if line.len() > MAX_LINE {
        return None;
    }
    let value: Value = serde_json::from_str(line).ok()?;
    let key = data_encoding::BASE64
        .decode(value["key"].as_str()?.as_bytes())
        .ok()?
        .try_into()
        .ok()?;
    Some(Known {
        key,
        name: value["name"].as_str()?.to_string(),
        ip: value["ip"].as_str().and_then(|ip| ip.parse().ok()),
        first_seen: value["first_seen"].as_str().unwrap_or_default().to_string(),
        last_seen: value["last_seen"].as_str().unwrap_or_default().to_string(),
        verified: value["verified"].as_bool().unwrap_or(false),
    })
}

/// Where the known peers live: beside the identity.
pub fn default_path() -> Option<PathBuf> {
    super::identity::default_dir().map(|dir| dir.join(FILE_NAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANA: [u8; 32] = [1; 32];
    const ANA_NEW: [u8; 32] = [2; 32];
    const BO: [u8; 32] = [3; 32];

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 168, 1, last]))
    }

    #[test]
    fn a_key_is_trusted_on_first_use_and_known_after_a_restart() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(FILE_NAME);
        let mut known = KnownPeers::open(&path)?;
        assert_eq!(known.check(&ANA, "ana", ip(5)), Verdict::FirstContact);
        known.seen(&ANA, "ana", ip(5), "2026-12-05T00:00:00Z")?;
        let known = KnownPeers::open(&path)?;
        assert_eq!(
            known.check(&ANA, "ana", ip(5)),
            Verdict::Known { verified: false }
        );
        // The same key from anywhere, under any name, is the same peer.
        assert_eq!(
            known.check(&ANA, "ana-laptop", ip(77)),
            Verdict::Known { verified: false }
        );
        Ok(())
    }

    #[test]
    fn another_key_under_a_known_name_and_address_is_a_changed_key_until_trusted()
    -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(FILE_NAME);
        let mut known = KnownPeers::open(&path)?;
        known.seen(&ANA, "ana", ip(5), "t1")?;
        let changed = known.check(&ANA_NEW, "ana", ip(5));
        assert_eq!(
            changed,
            Verdict::KeyChanged {
                previous: Fingerprint::of(&ANA)
            }
        );
        // Seeing it does not make it trusted.
        known.seen(&ANA_NEW, "ana", ip(5), "t2")?;
        assert_eq!(
            KnownPeers::open(&path)?.check(&ANA_NEW, "ana", ip(5)),
            changed
        );
        // Another name, or another address, is another machine: a first contact.
        assert_eq!(known.check(&ANA_NEW, "ana", ip(6)), Verdict::FirstContact);
        assert_eq!(known.check(&ANA_NEW, "anna", ip(5)), Verdict::FirstContact);
        // The user trusts the new key: the old one is forgotten for that name and address.
        known.trust(&ANA_NEW, "ana", ip(5), "t3")?;
        let known = KnownPeers::open(&path)?;
        assert_eq!(
            known.check(&ANA_NEW, "ana", ip(5)),
            Verdict::Known { verified: false }
        );
        assert!(known.get(&ANA).is_none());
        Ok(())
    }

    #[test]
    fn verified_is_kept_and_other_peers_are_untouched() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(FILE_NAME);
        let mut known = KnownPeers::open(&path)?;
        known.seen(&ANA, "ana", ip(5), "t1")?;
        known.seen(&BO, "bo", ip(6), "t1")?;
        assert!(known.verify(&ANA)?);
        assert!(
            !known.verify(&ANA_NEW)?,
            "an unknown key cannot be verified"
        );
        let known = KnownPeers::open(&path)?;
        assert_eq!(
            known.check(&ANA, "ana", ip(5)),
            Verdict::Known { verified: true }
        );
        assert_eq!(
            known.check(&BO, "bo", ip(6)),
            Verdict::Known { verified: false }
        );
        assert_eq!(known.peers().len(), 2);
        Ok(())
    }

    #[test]
    fn lines_that_are_not_peers_are_skipped_not_fatal() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(FILE_NAME);
        let mut known = KnownPeers::open(&path)?;
        known.seen(&ANA, "ana", ip(5), "t1")?;
        let mut text = std::fs::read_to_string(&path)?;
        text.push_str("not json\n{\"key\":\"short\",\"name\":\"x\"}\n");
        text.push_str(&"x".repeat(MAX_LINE + 1));
        text.push('\n');
        std::fs::write(&path, text)?;
        let known = KnownPeers::open(&path)?;
        assert_eq!(known.peers().len(), 1);
        assert_eq!(known.skipped(), 3);
        Ok(())
    }

    #[test]
    fn the_list_stays_bounded() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut known = KnownPeers::open(&dir.path().join(FILE_NAME))?;
        for i in 0..MAX_PEERS + 5 {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_be_bytes());
            known.add(&key, "p", None, &format!("{i:08}"));
        }
        assert_eq!(known.peers().len(), MAX_PEERS);
        assert!(
            known
                .peers()
                .iter()
                .all(|p| p.last_seen.as_str() >= "00000005")
        );
        Ok(())
    }
}
