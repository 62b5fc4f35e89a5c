//! `tern peers`: who answers on the LAN within a moment, one line (or JSON object) each, as
//! they answer; and when nobody does, what was tried and why that may be.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;

use crate::net::discovery::{self, Found};

/// `mine`: this machine's fingerprint (its own listeners are not listed).
pub async fn peers(
    ifaces: Vec<String>,
    mine: Option<String>,
    wait: Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (found, tried) = discovery::look(ifaces, mine, wait, |f| {
        print(f, json);
        false
    })
    .await
    .map_err(anyhow::Error::msg)?;
    if found.is_empty() {
        eprintln!(
            "tern: no tern answered within {} s.\n{}",
            wait.as_secs_f64(),
            tried.explain()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print(f: &Found, json: bool) {
    if json {
        super::json::print(&json!({
            "name": crate::text::Shown::new(f.name.as_str()).to_string(),
            "addr": f.addr.to_string(),
            "port": f.port,
            "fingerprint": f.fingerprint,
            "version": f.version,
        }));
    } else {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        // Flushed line by line: a script reads each peer as it answers. A closed stdout is
        // not worth dying for.
        let _ = writeln!(out, "{}", discovery::line(f)).and_then(|()| out.flush());
    }
}
