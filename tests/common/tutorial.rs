//! The Python socket tutorial tern grew from, as a peer: its GBK server, its greeting, and
//! reading what its scripts print. Shared by the Linux build's tests and the Windows build's.

use std::time::Duration;

use anyhow::{Context, ensure};

use super::{Proc, peers_dir, spawn_python};

/// The tutorial client's greeting (`tests/peers/gbk_client.py`).
pub const GREETING: &str = "你好服务端,我是客户端小黑!";

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of the first `PREFIX...` line in `text`.
pub fn line_value<'a>(text: &'a str, prefix: &str) -> anyhow::Result<&'a str> {
    text.lines()
        .find_map(|line| line.strip_prefix(prefix))
        .with_context(|| format!("no {prefix} line in {text:?}"))
}

/// The tutorial's GBK server (`tests/peers/gbk_server.py`) answering `reply`, and its port.
pub fn gbk_server(reply: &str, timeout: Duration) -> anyhow::Result<(Proc, u16)> {
    let mut server = spawn_python(
        "gbk_server.py",
        [
            peers_dir().join("gbk_server.py").into_os_string(),
            reply.into(),
        ],
    )?;
    let port_line = server.wait_stdout("the PORT line", timeout, |l| l.starts_with("PORT:"))?;
    let port: u16 = port_line["PORT:".len()..]
        .trim()
        .parse()
        .with_context(|| format!("bad port line {port_line:?}"))?;
    Ok((server, port))
}

/// `send` (a `tern send --raw --encoding gbk` to the server) says the greeting; both end well,
/// the server got the greeting and `send` printed exactly its `reply`.
pub fn ensure_greeting_answered(
    mut server: Proc,
    mut send: Proc,
    reply: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    send.write_stdin(format!("{GREETING}\n").as_bytes())?;
    let send = send.finish(timeout)?;
    let server = server.finish(timeout)?;
    server.ensure_success()?;
    send.ensure_success()?;
    ensure!(
        line_value(&server.stdout_text()?, "GOT:")? == GREETING,
        "the server did not get the greeting\n{server}\n{send}"
    );
    ensure!(
        send.stdout_text()? == format!("{reply}\n"),
        "tern send did not print exactly the server's reply\n{send}"
    );
    Ok(())
}
