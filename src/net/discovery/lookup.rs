//! Looking for peers without announcing: `tern peers`, and a name given where an address
//! would be (`tern send NAME`, `tern connect NAME`).

use std::time::Duration;

use tokio::time::Instant;

use super::{Discovery, Found, Settings, Sighting, Tried};

/// After a tern with the name looked for answers, others with the same name have this long to
/// answer too (answers to one probe come within milliseconds on a LAN).
const LINGER: Duration = Duration::from_millis(500);

/// The peers that answer within `wait`, handed to `each` as they answer (each once), then
/// what was tried. Once `each` says a peer is the one wanted, the look ends [`LINGER`] later.
pub async fn look(
    ifaces: Vec<String>,
    mine: Option<String>,
    wait: Duration,
    mut each: impl FnMut(&Found) -> bool,
) -> Result<(Vec<Found>, Tried), String> {
    let mut settings = Settings::new(ifaces, None, true);
    settings.mine = mine;
    let mut discovery = Discovery::start(settings)?;
    let mut deadline = Instant::now() + wait;
    let mut found: Vec<Found> = Vec::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            sighting = discovery.sightings.recv() => match sighting {
                Some(Sighting::Found(f)) if !found.iter().any(|g| g.instance == f.instance) => {
                    if each(&f) {
                        deadline = deadline.min(Instant::now() + LINGER);
                    }
                    found.push(f);
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    let tried = discovery.tried();
    discovery.stop().await;
    Ok((found, tried))
}

/// How long a look waits for answers: for a name, and after `/peers` before the UI explains
/// an empty LAN.
pub const LOOK: Duration = Duration::from_secs(2);

/// The tern on the LAN whose display name is `name` (as it is shown: exactly, else ignoring
/// case). An error lists several that match, or explains why none was found.
pub async fn named(name: &str, ifaces: Vec<String>, mine: Option<String>) -> Result<Found, String> {
    let folded = name.to_lowercase();
    let (found, tried) = look(ifaces, mine, LOOK, |f| shown(f).to_lowercase() == folded).await?;
    let exact: Vec<&Found> = found.iter().filter(|f| shown(f) == name).collect();
    let matches = if exact.is_empty() {
        found
            .iter()
            .filter(|f| shown(f).to_lowercase() == folded)
            .collect()
    } else {
        exact
    };
    let shown = crate::text::Shown::new(name);
    match matches[..] {
        [one] => Ok(one.clone()),
        [] => Err(format!(
            "no tern named {shown} answered on the LAN within {} s\n{}",
            LOOK.as_secs(),
            tried.explain()
        )),
        ref several => {
            let lines: Vec<String> = several.iter().map(|f| format!("  {}", line(f))).collect();
            Err(format!(
                "{} terns on the LAN are named {shown}; connect to one by its address:\n{}",
                several.len(),
                lines.join("\n")
            ))
        }
    }
}

/// The peer's name as a terminal shows it (what a user would type back).
fn shown(f: &Found) -> String {
    crate::text::Shown::new(f.name.as_str()).to_string()
}

/// `NAME  IP:PORT  FINGERPRINT`, the name cleaned for a terminal.
pub fn line(f: &Found) -> String {
    format!("{}  {}  {}", shown(f), f.target(), f.fingerprint)
}

/// A DNS answer slower than this counts as none: the name is then looked for on the LAN.
const DNS_WAIT: Duration = Duration::from_secs(5);

/// Where to connect for `target`: itself when it is an address or a host name that resolves
/// (or has a port that is not one, for the dial to refuse in its own words); else the
/// `IP:PORT` of the tern on the LAN with that display name.
pub async fn target(
    target: &str,
    ifaces: Vec<String>,
    mine: Option<String>,
) -> Result<String, String> {
    use crate::session;
    let resolved =
        tokio::time::timeout(DNS_WAIT, session::resolve(target, crate::cli::DEFAULT_PORT)).await;
    let why = match resolved {
        Ok(Ok(_)) => return Ok(target.to_string()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidInput => {
            return Ok(target.to_string());
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no DNS answer within {} s", DNS_WAIT.as_secs()),
    };
    tracing::info!(target, why, "not a host: looking for the name on the LAN");
    match named(target.trim(), ifaces, mine).await {
        Ok(found) => Ok(found.target()),
        Err(e) => Err(format!(
            "{}: {why}; and {e}",
            crate::text::Shown::new(session::with_default_port(target, crate::cli::DEFAULT_PORT))
        )),
    }
}
