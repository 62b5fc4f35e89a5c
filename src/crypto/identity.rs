//! This machine's long-term key pair (X25519, Noise's static key), kept in the user's config
//! folder, made on first use, and its fingerprint: what two people read to each other to know
//! they talk to the right machine.
//!
//! The file holds the private key alone (the public key is derived from it, so the two can
//! never disagree), readable by its owner only. Nothing prints or logs the private key: the
//! type has no `Display`, and its `Debug` shows the fingerprint.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};

/// The file's name in the config folder.
pub const FILE_NAME: &str = "identity";
/// The file's first line, so that a stray file is not taken for a key.
const MAGIC: &str = "tern-identity 1";
const KEY_LEN: usize = 32;
/// Characters of a fingerprint (base32: 5 bits each, 100 bits in all).
const FINGERPRINT_CHARS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read the identity {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the identity {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a tern identity ({why}); it was left as it is: move it away to make a new one (peers that know this machine will see a new key)"
    )]
    Malformed { path: PathBuf, why: &'static str },
    #[error("cannot make a key pair: {0}")]
    Crypto(String),
}

/// The key pair. Its private half never leaves this process except into the handshake.
pub struct Identity {
    private: [u8; KEY_LEN],
    public: [u8; KEY_LEN],
}

impl Identity {
    /// A new random key pair.
    pub fn generate() -> Result<Self, IdentityError> {
        let mut dh = x25519()?;
        let mut rng = DefaultResolver
            .resolve_rng()
            .ok_or_else(|| IdentityError::Crypto("no random number generator".into()))?;
        dh.generate(rng.as_mut())
            .map_err(|e| IdentityError::Crypto(e.to_string()))?;
        Self::from_private(dh.privkey())
    }

    fn from_private(private: &[u8]) -> Result<Self, IdentityError> {
        let mut dh = x25519()?;
        let private: [u8; KEY_LEN] = private
            .try_into()
            .map_err(|_| IdentityError::Crypto("a private key of the wrong length".into()))?;
        dh.set(&private);
        let public = dh
            .pubkey()
            .try_into()
            .map_err(|_| IdentityError::Crypto("a public key of the wrong length".into()))?;
        Ok(Self { private, public })
    }

    /// The identity in `dir`, if one was made there.
    pub fn load(dir: &Path) -> Result<Option<Self>, IdentityError> {
        match read(&dir.join(FILE_NAME)) {
            Ok(identity) => Ok(Some(identity)),
            Err(IdentityError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The identity in `dir`, made (and the folder with it) if there is none. `true` with it
    /// when it was made now. Two processes starting at once end up with the same one.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool), IdentityError> {
        if let Some(identity) = Self::load(dir)? {
            return Ok((identity, false));
        }
        let path = dir.join(FILE_NAME);
        let identity = Self::generate()?;
        let write_error = |source| IdentityError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(write_error)?;
        if crate::platform::files::create_private(&path, identity.file_text().as_bytes())
            .map_err(write_error)?
        {
            Ok((identity, true))
        } else {
            // Another process made it first: theirs is the one.
            Ok((read(&path)?, false))
        }
    }

    /// The public key, as the peer sees it in the handshake.
    pub fn public(&self) -> &[u8; KEY_LEN] {
        &self.public
    }

    /// The private key, for the handshake alone.
    pub fn private(&self) -> &[u8; KEY_LEN] {
        &self.private
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.public)
    }

    fn file_text(&self) -> String {
        format!(
            "{MAGIC}\n# This machine's private key for tern. Anyone who has this file can pass for this machine: keep it to yourself.\n{}\n",
            data_encoding::BASE64.encode(&self.private)
        )
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

fn x25519() -> Result<Box<dyn snow::types::Dh>, IdentityError> {
    DefaultResolver
        .resolve_dh(&DHChoice::Curve25519)
        .ok_or_else(|| IdentityError::Crypto("no X25519 implementation".into()))
}

fn read(path: &Path) -> Result<Identity, IdentityError> {
    let read_error = |source| IdentityError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(4096).read_to_string(&mut text))
        .map_err(read_error)?;
    let malformed = |why| IdentityError::Malformed {
        path: path.to_path_buf(),
        why,
    };
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some(MAGIC) {
        return Err(malformed("its first line is not \"tern-identity 1\""));
    }
    let key = lines
        .find(|l| !l.starts_with('#'))
        .ok_or_else(|| malformed("it holds no key"))?;
    let private = data_encoding::BASE64
        .decode(key.as_bytes())
        .map_err(|_| malformed("its key is not base64"))?;
    if private.len() != KEY_LEN {
        return Err(malformed("its key is not 32 bytes"));
    }
    crate::platform::files::keep_private(path).map_err(read_error)?;
    Identity::from_private(&private)
}

/// A public key's fingerprint: 100 bits of BLAKE3 over the key, in base32, in five groups of
/// four (`K7QX-M2PA-9DWE-...`). Base32 uses no 0 or 1, so an O or an I cannot be misread.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 13]);

impl Fingerprint {
    pub fn of(public: &[u8]) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("tern 2026-12 identity fingerprint");
        hasher.update(public);
        let mut out = [0u8; 13];
        hasher.finalize_xof().fill(&mut out);
        Self(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = data_encoding::BASE32_NOPAD.encode(&self.0);
        let chars: Vec<char> = text.chars().take(FINGERPRINT_CHARS).collect();
        for (i, group) in chars.chunks(4).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            for c in group {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A fingerprint as a person gives it (`--peer-fingerprint`): its 20 characters, any case,
/// with or without the dashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedFingerprint(String);

impl std::str::FromStr for ExpectedFingerprint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let chars: String = text
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let alphabet = |c: char| c.is_ascii_uppercase() || ('2'..='7').contains(&c);
        if chars.chars().count() != FINGERPRINT_CHARS || !chars.chars().all(alphabet) {
            return Err(format!(
                "{text:?} is not a fingerprint: {FINGERPRINT_CHARS} characters of A-Z and 2-7, \
                 as `tern id` prints them (XXXX-XXXX-XXXX-XXXX-XXXX)"
            ));
        }
        Ok(Self(chars))
    }
}

impl ExpectedFingerprint {
    pub fn matches(&self, fingerprint: &Fingerprint) -> bool {
        fingerprint.to_string().replace('-', "") == self.0
    }
}

impl fmt::Display for ExpectedFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chars: Vec<char> = self.0.chars().collect();
        let groups: Vec<String> = chars.chunks(4).map(|g| g.iter().collect()).collect();
        f.write_str(&groups.join("-"))
    }
}

/// Where the identity lives: `$TERN_CONFIG_DIR`, else the user's config folder
/// (`$XDG_CONFIG_HOME/tern` on Linux, `~/Library/Application Support/tern` on macOS,
/// `%APPDATA%\tern\config` on Windows).
pub fn default_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TERN_CONFIG_DIR") {
        return Some(PathBuf::from(dir));
    }
    let dirs = directories::ProjectDirs::from("", "", "tern")?;
    Some(dirs.config_dir().to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_file_gives_the_same_keys_and_fingerprint() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (made, created) = Identity::load_or_create(dir.path())?;
        assert!(created);
        let (again, created) = Identity::load_or_create(dir.path())?;
        assert!(!created);
        assert_eq!(made.public(), again.public());
        assert_eq!(made.private(), again.private());
        assert_eq!(made.fingerprint(), again.fingerprint());
        Ok(())
    }

    #[test]
    fn a_typed_fingerprint_matches_in_any_case_with_or_without_dashes() -> anyhow::Result<()> {
        let ours = Identity::generate()?.fingerprint();
        let other = Identity::generate()?.fingerprint();
        let text = ours.to_string();
        for typed in [
            text.clone(),
            text.to_lowercase(),
            text.replace('-', ""),
            text.replace('-', " "),
        ] {
            let expected: ExpectedFingerprint = typed.parse().map_err(anyhow::Error::msg)?;
            assert!(expected.matches(&ours), "{typed}");
            assert!(!expected.matches(&other), "{typed}");
            assert_eq!(expected.to_string(), text);
        }
        for bad in ["", "ABCD", &format!("{text}A"), &text.replace('A', "0")] {
            if bad.contains('0') || bad.len() != text.len() {
                assert!(bad.parse::<ExpectedFingerprint>().is_err(), "{bad}");
            }
        }
        Ok(())
    }

    #[test]
    fn two_identities_differ() -> anyhow::Result<()> {
        let a = Identity::generate()?;
        let b = Identity::generate()?;
        assert_ne!(a.public(), b.public());
        assert_ne!(a.fingerprint(), b.fingerprint());
        Ok(())
    }

    #[test]
    fn a_fingerprint_is_five_groups_of_four_base32_characters() {
        let text = Fingerprint::of(&[7u8; 32]).to_string();
        let groups: Vec<&str> = text.split('-').collect();
        assert_eq!(groups.len(), 5, "{text}");
        for g in groups {
            assert_eq!(g.len(), 4, "{text}");
            assert!(
                g.chars()
                    .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)),
                "{text}"
            );
        }
        assert_ne!(Fingerprint::of(&[7u8; 32]), Fingerprint::of(&[8u8; 32]));
    }

    #[test]
    fn neither_debug_nor_the_fingerprint_shows_the_private_key() -> anyhow::Result<()> {
        let identity = Identity::generate()?;
        let shown = format!("{identity:?}");
        let private = data_encoding::BASE64.encode(identity.private());
        let hex: String = identity
            .private()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            !shown.contains(&private) && !shown.contains(&hex),
            "{shown}"
        );
        assert!(shown.contains(&identity.fingerprint().to_string()));
        Ok(())
    }

    #[test]
    fn a_file_that_is_not_an_identity_is_refused_and_left_alone() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(FILE_NAME);
        for text in [
            "hello\n",
            "tern-identity 1\n",
            "tern-identity 1\nnot*base64\n",
            "tern-identity 1\nAAAA\n",
        ] {
            std::fs::write(&path, text)?;
            let e = Identity::load_or_create(dir.path()).expect_err(text);
            assert!(
                matches!(e, IdentityError::Malformed { .. }),
                "{text:?}: {e}"
            );
            assert_eq!(std::fs::read_to_string(&path)?, text, "untouched");
        }
        Ok(())
    }

    #[test]
    fn the_derived_public_key_is_the_one_noise_uses() -> anyhow::Result<()> {
        let identity = Identity::generate()?;
        let params: snow::params::NoiseParams = "Noise_XX_25519_AESGCM_SHA256".parse()?;
        let builder = snow::Builder::new(params);
        let keypair = builder.generate_keypair()?;
        let from_noise = Identity::from_private(&keypair.private)?;
        assert_eq!(from_noise.public().as_slice(), keypair.public.as_slice());
        assert_ne!(identity.public(), from_noise.public());
        Ok(())
    }
}
