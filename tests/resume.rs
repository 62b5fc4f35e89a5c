//! A transfer cut at about half way resumes on the next connection: `tern send --retries`
//! reconnects by itself, the receiver answers with the size of the `.part` it kept, and only the
//! rest crosses the wire. A proxy inside the test cuts the first connection and counts bytes.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::Context;
use common::{ensure_same_file, is_listening_line, spawn_tern, write_random_file};
use tern::transfer::incoming::PARTIAL_SUFFIX;

const SIZE: usize = 64 << 20;
const CHUNK: u64 = 256 << 10;
const TIMEOUT: Duration = Duration::from_secs(60);

/// Forward 127.0.0.1:(its port) → `upstream`. The first connection is cut once `cut_after`
/// bytes went upstream; every connection's upstream byte count is recorded when it ends.
struct CuttingProxy {
    port: u16,
    upstream_bytes: Arc<Mutex<Vec<u64>>>,
}

impl CuttingProxy {
    fn start(upstream: u16, cut_after: u64) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let upstream_bytes = Arc::new(Mutex::new(Vec::new()));
        let counts = Arc::clone(&upstream_bytes);
        thread::spawn(move || {
            for (index, client) in listener.incoming().enumerate() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    return;
                };
                let limit = (index == 0).then_some(cut_after);
                let counts = Arc::clone(&counts);
                thread::spawn(move || forward(client, server, limit, &counts));
            }
        });
        Ok(Self {
            port,
            upstream_bytes,
        })
    }

    fn counts(&self) -> Vec<u64> {
        self.upstream_bytes
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }
}

fn forward(client: TcpStream, server: TcpStream, limit: Option<u64>, counts: &Mutex<Vec<u64>>) {
    let (Ok(mut client_r), Ok(mut server_w)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let (Ok(mut server_r), Ok(mut client_w)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    // What the receiver says is read to its end even once the sender is cut off: closing a
    // socket with unread data resets the connection, and a reset throws away what the proxy
    // still had queued for the receiver, bytes this test has already counted as delivered.
    let down = thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut client_open = true;
        while let Ok(n @ 1..) = server_r.read(&mut buf) {
            client_open = client_open && client_w.write_all(&buf[..n]).is_ok();
        }
        let _ = client_w.shutdown(Shutdown::Write);
    });
    let mut sent = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client_r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if server_w.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
        if limit.is_some_and(|l| sent >= l) {
            // The cable is pulled: the sender loses the connection at once; the receiver gets
            // every byte counted, then the end of the stream.
            let _ = client.shutdown(Shutdown::Both);
            break;
        }
    }
    let _ = server_w.shutdown(Shutdown::Write);
    let _ = down.join();
    if let Ok(mut c) = counts.lock() {
        c.push(sent);
    }
}

#[test]
fn a_transfer_cut_half_way_resumes_and_resends_at_most_one_chunk_extra() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("big.bin");
    write_random_file(&src, SIZE, 42)?;
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox)?;

    let mut recv = spawn_tern(
        "recv",
        [
            "recv".as_ref(),
            "--yes".as_ref(),
            "--bind".as_ref(),
            "127.0.0.1".as_ref(),
            "--port".as_ref(),
            "0".as_ref(),
            "--download-dir".as_ref(),
            inbox.as_os_str(),
        ],
    )?;
    let line = recv.wait_stderr("the listening line", TIMEOUT, is_listening_line)?;
    let port: u16 = line
        .split(';')
        .next()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.trim().parse().ok())
        .with_context(|| format!("no port in {line:?}"))?;

    let proxy = CuttingProxy::start(port, SIZE as u64 / 2)?;
    let target = format!("127.0.0.1:{}", proxy.port);
    let mut send = spawn_tern(
        "send",
        [
            "send".as_ref(),
            "--retries".as_ref(),
            "3".as_ref(),
            target.as_ref(),
            src.as_os_str(),
        ],
    )?;
    let finished = send.finish(TIMEOUT)?;
    finished.ensure_success()?;
    ensure_same_file(&src, &inbox.join("big.bin"))?;
    let partial = |e: std::io::Result<std::fs::DirEntry>| {
        e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(PARTIAL_SUFFIX))
    };
    assert!(
        !std::fs::read_dir(&inbox)?.any(partial),
        "no partial file left"
    );

    // The first connection carried about half; the second only the rest.
    let counts = {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let c = proxy.counts();
            if c.len() >= 2 || std::time::Instant::now() > deadline {
                break c;
            }
            thread::sleep(Duration::from_millis(20));
        }
    };
    anyhow::ensure!(
        counts.len() == 2,
        "expected two connections, saw {counts:?}\n{finished}"
    );
    let second = counts[1];
    // Frame headers and the handshake add a few KiB on top of the data itself.
    let overhead = 16 * 1024;
    let bound = SIZE as u64 / 2 + CHUNK + overhead;
    eprintln!(
        "resume: first connection {} bytes, second {} bytes (bound {bound})",
        counts[0], second
    );
    anyhow::ensure!(
        second <= bound,
        "the second connection re-sent {second} bytes, over half the file plus one chunk ({bound})\n{finished}"
    );
    anyhow::ensure!(
        finished.stderr.contains("resuming"),
        "the sender did not say it resumed\n{finished}"
    );
    drop(recv);
    Ok(())
}
