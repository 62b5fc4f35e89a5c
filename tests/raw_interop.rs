//! `tern` against plain sockets: the tutorial's Python GBK client and server, and raw peers
//! written inline (Python or a std `TcpStream`).
//!
//! Built for Windows too (run under wine in CI), where only the tests with a std peer run:
//! wine cannot spawn the Linux `python3` with pipes, so the Python tests are Unix-only and
//! leave their helpers unused there. `tests/windows_peer.rs` puts the Windows build against
//! the Python peers from the Linux side.
#![cfg_attr(windows, allow(dead_code, unused_imports))]

mod common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use common::tutorial::{GREETING, ensure_greeting_answered, gbk_server, hex, line_value};
use common::{
    Proc, TIMEOUT, peers_dir, run_tern, spawn_python, spawn_recv, spawn_tern, write_file,
};

fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, had_errors) = encoding_rs::GBK.encode(text);
    assert!(!had_errors, "{text:?} is not representable in GBK");
    bytes.into_owned()
}

/// `tern recv --once` on a free port, stdin `stdin` (then closed), downloads to a temp folder.
fn recv_with_stdin(stdin: &[u8], inbox: &tempfile::TempDir) -> anyhow::Result<(Proc, u16)> {
    let (mut recv, port) = spawn_recv(
        "tern recv",
        &[OsStr::new("--download-dir"), inbox.path().as_os_str()],
    )?;
    if !stdin.is_empty() {
        recv.write_stdin(stdin)?;
    }
    recv.close_stdin();
    Ok((recv, port))
}

#[cfg(unix)]
#[test]
fn the_tutorial_gbk_client_gets_a_gbk_answer_from_recv() -> anyhow::Result<()> {
    let inbox = tempfile::tempdir()?;
    let (mut recv, port) = recv_with_stdin("问题已收到\n".as_bytes(), &inbox)?;
    let mut client = spawn_python(
        "gbk_client.py",
        [
            peers_dir().join("gbk_client.py").into_os_string(),
            port.to_string().into(),
        ],
    )?;
    let client = client.finish(TIMEOUT)?;
    let recv = recv.finish(TIMEOUT)?;
    client.ensure_success()?;
    recv.ensure_success()?;

    let client_out = client.stdout_text()?;
    ensure!(
        line_value(&client_out, "REPLY:")?.contains("问题已收到"),
        "the client did not print tern's answer\n{client}\n{recv}"
    );
    // Without --encoding, tern answered the GBK peer in GBK, ending the line with \n.
    ensure!(
        line_value(&client_out, "HEX:")? == hex(&gbk("问题已收到\n")),
        "tern's answer is not 问题已收到\\n in GBK\n{client}\n{recv}"
    );
    ensure!(
        recv.stdout_text()? == format!("{GREETING}\n"),
        "tern recv did not print exactly the greeting\n{recv}"
    );
    Ok(())
}

#[cfg(unix)]
#[test]
fn send_raw_gbk_talks_to_the_tutorial_gbk_server() -> anyhow::Result<()> {
    let reply = "你好客户端,我是服务端小白!";
    let (server, port) = gbk_server(reply, TIMEOUT)?;
    let send = spawn_tern(
        "tern send",
        [
            "send",
            "--raw",
            "--encoding",
            "gbk",
            &format!("127.0.0.1:{port}"),
        ],
    )?;
    ensure_greeting_answered(server, send, reply, TIMEOUT)
}

/// A raw peer speaking UTF-8: sends `你好\n`, reads tern's answer up to its `\n`, prints it as
/// hex and strictly decoded as UTF-8.
const UTF8_CLIENT: &str = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall("你好\n".encode("utf-8"))
data = b""
while not data.endswith(b"\n"):
    chunk = s.recv(1024)
    if not chunk:
        break
    data += chunk
sys.stdout.write("HEX:" + data.hex() + "\n")
sys.stdout.write("TEXT:" + data.decode("utf-8").rstrip("\n") + "\n")
sys.stdout.flush()
s.close()
"#;

#[cfg(unix)]
#[test]
fn recv_answers_a_utf8_raw_peer_in_utf8() -> anyhow::Result<()> {
    let inbox = tempfile::tempdir()?;
    let answer = "好的，收到";
    let (mut recv, port) = recv_with_stdin(format!("{answer}\n").as_bytes(), &inbox)?;
    let mut client = spawn_python("utf-8 client", ["-c", UTF8_CLIENT, &port.to_string()])?;
    let client = client.finish(TIMEOUT)?;
    let recv = recv.finish(TIMEOUT)?;
    client.ensure_success()?;
    recv.ensure_success()?;

    let client_out = client.stdout_text()?;
    ensure!(
        line_value(&client_out, "HEX:")? == hex(format!("{answer}\n").as_bytes()),
        "tern's answer is not {answer}\\n in UTF-8\n{client}\n{recv}"
    );
    ensure!(
        line_value(&client_out, "TEXT:")? == answer,
        "the client decoded something else\n{client}"
    );
    ensure!(
        recv.stdout_text()? == "你好\n",
        "tern recv did not print exactly 你好\n{recv}"
    );
    Ok(())
}

/// Read from `stream` until a `\n` (included) or EOF, failing at `deadline`.
fn read_line(stream: &mut TcpStream, deadline: Instant) -> anyhow::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("no full line before the deadline; got {got:02x?}");
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) => bail!("EOF before a full line; got {got:02x?}"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e).context(format!("reading; got {got:02x?} so far")),
        }
    }
    Ok(got)
}

#[test]
fn a_silent_raw_peer_gets_stdin_lines_as_plain_bytes() -> anyhow::Result<()> {
    let inbox = tempfile::tempdir()?;
    let line = "plain line for nc, 你好";
    let (mut recv, port) = recv_with_stdin(format!("{line}\n").as_bytes(), &inbox)?;

    let mut peer = TcpStream::connect(("127.0.0.1", port))?;
    let connected = Instant::now();
    let got = read_line(&mut peer, connected + Duration::from_secs(10))
        .with_context(|| recv.describe())?;
    let elapsed = connected.elapsed();
    drop(peer);
    let recv = recv.finish(TIMEOUT)?;

    ensure!(
        got == format!("{line}\n").as_bytes(),
        "the silent peer got {:?} ({got:02x?}), not the stdin line\n{recv}",
        String::from_utf8_lossy(&got)
    );
    ensure!(
        elapsed < Duration::from_secs(3),
        "the line took {elapsed:?} to reach a silent peer\n{recv}"
    );
    recv.ensure_success()?;
    ensure!(recv.stdout.is_empty(), "nothing was said to tern\n{recv}");
    Ok(())
}

#[test]
fn invalid_bytes_from_a_raw_peer_become_replacement_characters() -> anyhow::Result<()> {
    let inbox = tempfile::tempdir()?;
    let (mut recv, port) = recv_with_stdin(b"", &inbox)?;

    let mut peer = TcpStream::connect(("127.0.0.1", port))?;
    peer.write_all(b"\xff\xfe\xfd\n")?;
    peer.shutdown(Shutdown::Write)?;
    // tern has nothing to say; it closes once it has seen our end.
    peer.set_read_timeout(Some(TIMEOUT))?;
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest)
        .with_context(|| recv.describe())?;
    drop(peer);
    let recv = recv.finish(TIMEOUT)?;

    recv.ensure_success()?;
    let out = recv.stdout_text()?;
    ensure!(
        out.lines().count() == 1 && out.contains('\u{fffd}'),
        "expected one line with U+FFFD, got {out:?}\n{recv}"
    );
    ensure!(rest.is_empty(), "tern sent {rest:02x?} unasked");
    Ok(())
}

#[test]
fn send_raw_refuses_to_send_files() -> anyhow::Result<()> {
    // A real listener, so the only thing wrong is the file.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("a.txt");
    write_file(&file, b"hello\n")?;
    let out = run_tern(
        [
            OsStr::new("send"),
            OsStr::new("--raw"),
            OsStr::new(&format!("127.0.0.1:{port}")),
            file.as_os_str(),
        ],
        b"",
        TIMEOUT,
    )?;
    out.ensure_failure()?;
    ensure!(
        out.stderr.contains("files cannot be sent to a raw peer"),
        "stderr does not say files cannot go to a raw peer\n{out}"
    );
    Ok(())
}

/// A server that reads until the client closes its sending side, then answers with what it
/// got, and closes: the shape of many one-shot request scripts.
const READS_UNTIL_EOF_SERVER: &str = r#"
import socket, sys
srv = socket.create_server(("127.0.0.1", 0))
srv.settimeout(30)
print("PORT:%d" % srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
conn.settimeout(30)
data = b""
while True:
    chunk = conn.recv(4096)
    if not chunk:
        break
    data += chunk
print("GOT:" + data.hex(), flush=True)
conn.sendall(b"got %d bytes\n" % len(data))
conn.close()
"#;

#[cfg(unix)]
#[test]
fn send_raw_half_closes_at_the_end_of_stdin_and_exits_when_the_peer_closes() -> anyhow::Result<()> {
    let mut server = spawn_python("reads-until-EOF server", ["-c", READS_UNTIL_EOF_SERVER])?;
    let port_line = server.wait_stdout("the PORT line", TIMEOUT, |l| l.starts_with("PORT:"))?;
    let port = port_line["PORT:".len()..].trim().to_string();
    let request = "first line\n第二行\n";
    let mut send = spawn_tern("tern send", ["send", "--raw", &format!("127.0.0.1:{port}")])?;
    send.write_stdin(request.as_bytes())?;
    let send = send.finish(TIMEOUT)?;
    let server = server.finish(TIMEOUT)?;
    server.ensure_success()?;
    send.ensure_success()?;
    ensure!(
        line_value(&server.stdout_text()?, "GOT:")? == hex(request.as_bytes()),
        "the server did not get exactly the stdin lines\n{server}\n{send}"
    );
    ensure!(
        send.stdout_text()? == format!("got {} bytes\n", request.len()),
        "tern send did not print exactly the server's answer\n{send}"
    );
    Ok(())
}
