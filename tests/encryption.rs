//! Encrypted sessions, end to end, with real `tern send` / `tern recv` processes: what crosses
//! the wire (a packet capture in a network namespace of its own), a key that changed since the
//! last meeting, `--peer-fingerprint`, and a man in the middle built from tern's own pieces.
//!
//! Each process is a machine of its own (its own identity and known peers); a test that needs
//! a machine to keep its identity across runs gives it a config folder (`TERN_CONFIG_DIR`).

mod common;

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::Value;

use common::{
    Finished, Proc, TIMEOUT, ensure_same_file, list_tree, spawn_logged, spawn_recv_with,
    tern_command, write_file,
};

fn target(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// A string no test leaves anywhere by accident: `what`, this process and the time.
fn marker(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("tern-{what}-{}-{nanos}", std::process::id())
}

/// Start `tern ARGS` as the machine whose identity and known peers live in `config`.
fn spawn_as<I, S>(name: &str, config: &Path, args: I) -> anyhow::Result<Proc>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    spawn_logged(name, |log_dir| {
        let mut cmd = tern_command(log_dir, args);
        cmd.env("TERN_CONFIG_DIR", config);
        cmd
    })
}

/// `tern recv --once` on a free port as the machine in `config`, listening.
fn recv_as(name: &str, config: &Path, extra: &[&OsStr]) -> anyhow::Result<(Proc, u16)> {
    spawn_recv_with(name, extra, |name, args| spawn_as(name, config, args))
}

/// Run `tern ARGS` as the machine in `config` with `stdin` as its whole input, to its end.
fn run_as<I, S>(name: &str, config: &Path, args: I, stdin: &str) -> anyhow::Result<Finished>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut proc = spawn_as(name, config, args)?;
    if !stdin.is_empty() {
        proc.write_stdin(stdin.as_bytes())?;
    }
    proc.finish(TIMEOUT)
}

/// The fingerprint `tern id` prints (its first line) for the machine in `config`.
fn fingerprint_of(config: &Path) -> anyhow::Result<String> {
    common::fingerprint_printed(&run_as("tern id", config, ["id"], "")?)
}

/// Every `--json` event with `"event": kind` in `out`'s stdout.
fn events(out: &Finished, kind: &str) -> anyhow::Result<Vec<Value>> {
    let mut found = Vec::new();
    for line in out.stdout_text()?.lines() {
        let event: Value = serde_json::from_str(line)
            .with_context(|| format!("{}: a stdout line is not JSON: {line}\n{out}", out.name))?;
        if event["event"] == kind {
            found.push(event);
        }
    }
    Ok(found)
}

/// The one `connected` event in `out`'s `--json` stdout.
fn connected(out: &Finished) -> anyhow::Result<Value> {
    let mut all = events(out, "connected")?;
    ensure!(
        all.len() == 1,
        "{}: not one connected event\n{out}",
        out.name
    );
    Ok(all.remove(0))
}

/// Fail unless the download folder holds nothing at all (no file, no partial file, no folder).
fn ensure_empty(inbox: &Path, why: &str) -> anyhow::Result<()> {
    let tree = list_tree(inbox)?;
    ensure!(tree.is_empty(), "{why}: the download folder holds {tree:?}");
    Ok(())
}

/// `tern recv --once --yes --download-dir INBOX RECV_FLAGS` as the machine in `recv_config`
/// (its stdin closed), then `tern send SEND_FLAGS 127.0.0.1:PORT FILE` as the machine in
/// `send_config` with `line` on its stdin; both run to their end (recv's, then send's).
fn exchange(
    recv_config: &Path,
    recv_flags: &[&OsStr],
    send_config: &Path,
    send_flags: &[&OsStr],
    inbox: &Path,
    file: &Path,
    line: &str,
) -> anyhow::Result<(Finished, Finished)> {
    let mut extra = vec![os("--yes"), os("--download-dir"), inbox.as_os_str()];
    extra.extend_from_slice(recv_flags);
    let (mut recv, port) = recv_as("recv", recv_config, &extra)?;
    recv.close_stdin();
    let to = target(port);
    let mut args = vec![os("send")];
    args.extend_from_slice(send_flags);
    args.extend([os(&to), file.as_os_str()]);
    let send = run_as("send", send_config, args, line)?;
    let recv = recv.finish(TIMEOUT)?;
    Ok((recv, send))
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[cfg(target_os = "linux")]
mod capture {
    //! A network namespace of its own, tcpdump on its loopback, and what a capture shows.

    use std::io::{BufRead, BufReader};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc;
    use std::thread;
    use std::time::{Duration, Instant};

    use anyhow::{Context, bail};

    pub use crate::common::netns::Netns;
    use crate::common::netns::{self, tool_works};

    /// Whether this machine can run the capture test; if not, why not.
    pub fn unavailable() -> Option<String> {
        if let Some(why) = netns::unavailable() {
            return Some(why);
        }
        if !tool_works("tcpdump", "--version") {
            return Some("needs `tcpdump` (apt-get install tcpdump)".into());
        }
        None
    }

    /// tcpdump writing every packet on the namespace's loopback to a pcap file.
    pub struct Capture {
        child: Child,
        lines: mpsc::Receiver<String>,
        said: Vec<String>,
        path: PathBuf,
    }

    impl Capture {
        /// Start tcpdump and wait until it captures (its "listening on" line).
        pub fn start(ns: &Netns, path: &Path) -> anyhow::Result<Self> {
            let mut cmd = Command::new("tcpdump");
            // -Z root: tcpdump drops to a user of its own before it makes the file, which
            // could not then be made in a private temporary folder. --immediate-mode: each
            // packet reaches tcpdump at once; -U: and the file.
            cmd.args([
                "-i",
                "lo",
                "-n",
                "-U",
                "--immediate-mode",
                "-Z",
                "root",
                "-w",
            ])
            .arg(path);
            let mut child = ns
                .wrap(&cmd)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("starting tcpdump")?;
            let stderr = child.stderr.take().context("tcpdump's stderr")?;
            let (tx, lines) = mpsc::channel();
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            let mut capture = Self {
                child,
                lines,
                said: Vec::new(),
                path: path.to_path_buf(),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match capture.lines.recv_timeout(left) {
                    Ok(line) => {
                        let listening = line.contains("listening on");
                        capture.said.push(line);
                        if listening {
                            return Ok(capture);
                        }
                    }
                    Err(_) => bail!(
                        "tcpdump did not start capturing: {:?} (exit: {:?})",
                        capture.said,
                        capture.child.try_wait()
                    ),
                }
            }
        }

        /// Wait until the connection to `port` has ended both ways in the capture (tcpdump
        /// writes each packet as it comes), then stop tcpdump (SIGINT, as Ctrl-C) and return
        /// the whole capture.
        pub fn stop_after_close(&mut self, port: u16) -> anyhow::Result<Vec<u8>> {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let pcap = std::fs::read(&self.path).unwrap_or_default();
                let seen = tcp_on(&pcap, port);
                if seen.ends >= 2 {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "the capture never showed port {port}'s connection end: {seen:?}, {} \
                         bytes; tcpdump said {:?}",
                        pcap.len(),
                        self.said()
                    );
                }
                // Polling a file: it has no readiness to wait on.
                thread::sleep(Duration::from_millis(20));
            }
            let pid = i32::try_from(self.child.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw)
                .context("tcpdump's process id")?;
            // `ip netns exec` execs tcpdump: the child is tcpdump itself.
            rustix::process::kill_process(pid, rustix::process::Signal::INT)
                .context("interrupting tcpdump")?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.child.try_wait()?.is_none() {
                if Instant::now() >= deadline {
                    bail!("tcpdump did not stop on SIGINT: {:?}", self.said());
                }
                thread::sleep(Duration::from_millis(10));
            }
            std::fs::read(&self.path).with_context(|| format!("reading {}", self.path.display()))
        }

        fn said(&mut self) -> Vec<String> {
            self.said.extend(self.lines.try_iter());
            self.said.clone()
        }
    }

    impl Drop for Capture {
        fn drop(&mut self) {
            if let Ok(None) = self.child.try_wait() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }

    /// What a capture shows of the TCP connection to or from one port.
    #[derive(Debug, Default)]
    pub struct Tcp {
        pub packets: usize,
        /// TCP payload bytes, both ways.
        pub payload: usize,
        /// Segments with FIN or RST: 2 once both sides have closed.
        pub ends: usize,
    }

    /// Read a pcap file (loopback's link type is Ethernet) for the IPv4 TCP packets to or from
    /// `port`. A packet cut short (the file still being written) ends the reading.
    pub fn tcp_on(pcap: &[u8], port: u16) -> Tcp {
        let mut tcp = Tcp::default();
        let Some(magic) = pcap.get(..4) else {
            return tcp;
        };
        // a1b2c3d4 (microseconds) or a1b23c4d (nanoseconds), in the writer's byte order.
        let little = magic[0] == 0xd4 || magic[0] == 0x4d;
        let u32_at = |b: &[u8]| {
            let b = [b[0], b[1], b[2], b[3]];
            if little {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }
        };
        let be16 = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
        let mut at = 24;
        while let Some(header) = pcap.get(at..at + 16) {
            let len = u32_at(&header[8..12]) as usize;
            let Some(packet) = pcap.get(at + 16..at + 16 + len) else {
                break;
            };
            at += 16 + len;
            // Ethernet, then IPv4 carrying TCP.
            if packet.len() < 14 + 20 || packet[12..14] != [0x08, 0x00] {
                continue;
            }
            let ip = &packet[14..];
            let ip_len = usize::from(ip[0] & 0x0f) * 4;
            if ip[9] != 6 || ip.len() < ip_len + 20 {
                continue;
            }
            let segment = &ip[ip_len..];
            if be16(&segment[0..2]) != port && be16(&segment[2..4]) != port {
                continue;
            }
            let tcp_len = usize::from(segment[12] >> 4) * 4;
            tcp.packets += 1;
            tcp.payload += usize::from(be16(&ip[2..4])).saturating_sub(ip_len + tcp_len);
            // FIN or RST.
            if segment[13] & 0x05 != 0 {
                tcp.ends += 1;
            }
        }
        tcp
    }

    pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }
}

/// What the capture test sends, each part carrying a marker of its own.
#[cfg(target_os = "linux")]
struct Markers {
    message: String,
    file_name: String,
    content: String,
    name: String,
}

#[cfg(target_os = "linux")]
impl Markers {
    fn all(&self) -> [&str; 4] {
        [&self.message, &self.file_name, &self.content, &self.name]
    }
}

/// The size of the file the capture test sends.
#[cfg(target_os = "linux")]
const CAPTURED_FILE_LEN: usize = 256 * 1024;

/// One `tern send --name NAME FILE` → `tern recv --yes --once` session inside `ns`, a chat
/// line on stdin, while tcpdump captures the namespace's loopback; both exit 0 and the line
/// and the file arrive. The capture, once it shows the connection closed both ways.
#[cfg(target_os = "linux")]
fn captured_session(
    ns: &capture::Netns,
    work: &Path,
    insecure: bool,
    markers: &Markers,
) -> anyhow::Result<(Vec<u8>, u16)> {
    let label = if insecure { "insecure" } else { "encrypted" };
    let inbox = work.join(format!("inbox-{label}"));
    std::fs::create_dir_all(&inbox)?;
    let file = work.join(format!("src-{label}")).join(&markers.file_name);
    // Random bytes, and the content marker every 32 KiB.
    let mut content = vec![0u8; CAPTURED_FILE_LEN];
    common::XorShift::new(0xcafe).fill(&mut content);
    for at in (1000..CAPTURED_FILE_LEN - 100).step_by(32 * 1024) {
        content[at..at + markers.content.len()].copy_from_slice(markers.content.as_bytes());
    }
    write_file(&file, &content)?;

    let mut capture = capture::Capture::start(ns, &work.join(format!("{label}.pcap")))?;
    let security: &[&OsStr] = if insecure { &[os("--insecure")] } else { &[] };
    let mut extra = vec![os("--yes"), os("--download-dir"), inbox.as_os_str()];
    extra.extend_from_slice(security);
    let (mut recv, port) = spawn_recv_with(&format!("recv ({label})"), &extra, |name, args| {
        spawn_logged(name, |log_dir| ns.wrap(&tern_command(log_dir, args)))
    })?;
    recv.close_stdin();
    let send_target = target(port);
    let mut send_args = vec![
        os("send"),
        os("--name"),
        os(&markers.name),
        os(&send_target),
        file.as_os_str(),
    ];
    send_args.extend_from_slice(security);
    let mut send = spawn_logged(&format!("send ({label})"), |log_dir| {
        ns.wrap(&tern_command(log_dir, &send_args))
    })?;
    send.write_stdin(format!("{}\n", markers.message).as_bytes())?;
    let send = send.finish(TIMEOUT)?;
    let recv = recv.finish(TIMEOUT)?;
    send.ensure_success()?;
    recv.ensure_success()?;
    ensure!(
        recv.stdout_text()? == format!("{}\n", markers.message),
        "the receiver did not print the chat line\n{recv}"
    );
    ensure_same_file(&file, &inbox.join(&markers.file_name))?;
    Ok((capture.stop_after_close(port)?, port))
}

#[cfg(target_os = "linux")]
#[test]
fn a_capture_of_a_session_holds_no_marker_and_no_file_name() -> anyhow::Result<()> {
    const TEST: &str = "a_capture_of_a_session_holds_no_marker_and_no_file_name";
    if let Some(why) = capture::unavailable() {
        common::skip(TEST, &why);
        return Ok(());
    }
    let ns = capture::Netns::create(&common::netns::unique_name("cap"))?;
    let work = tempfile::tempdir()?;
    let markers = Markers {
        message: marker("message"),
        file_name: format!("{}.txt", marker("filename")),
        content: marker("content"),
        name: marker("name"),
    };

    let (pcap, port) = captured_session(&ns, work.path(), false, &markers)
        .with_context(|| format!("the encrypted session in {}", ns.name()))?;
    let tcp = capture::tcp_on(&pcap, port);
    ensure!(
        tcp.packets >= 10 && tcp.payload > CAPTURED_FILE_LEN,
        "the capture does not hold the encrypted session (the file is {CAPTURED_FILE_LEN} \
         bytes): {tcp:?} on port {port}, {} bytes in all",
        pcap.len()
    );
    ensure!(
        capture::contains(&pcap, &tern::protocol::MAGIC),
        "the capture lacks tern's preamble, which goes in clear"
    );
    for m in markers.all() {
        ensure!(
            !capture::contains(&pcap, m.as_bytes()),
            "{m:?} crossed the wire in clear in an encrypted session"
        );
    }

    // The control: the same session with --insecure shows every marker to the same capture.
    let (pcap, _) = captured_session(&ns, work.path(), true, &markers)
        .with_context(|| format!("the --insecure session in {}", ns.name()))?;
    for m in markers.all() {
        ensure!(
            capture::contains(&pcap, m.as_bytes()),
            "{m:?} is not in the capture of an --insecure session: the capture misses things"
        );
    }
    Ok(())
}

#[test]
fn a_changed_key_is_warned_and_its_files_refused_and_nothing_written() -> anyhow::Result<()> {
    // A sender that comes back as "ana" from the same address with another key.
    let recv_config = tempfile::tempdir()?;
    let (ana_before, ana_after) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let inbox = tempfile::tempdir()?;
    let src = tempfile::tempdir()?;
    let file = src.path().join("from-the-impostor.txt");
    write_file(&file, b"do not keep me\n")?;
    let recv_args = [
        os("--yes"),
        os("--json"),
        os("--download-dir"),
        inbox.path().as_os_str(),
    ];

    // First contact: the receiver's line reaches ana (so a line held back later means
    // something), and ana's key is recorded.
    let greeting = marker("greeting");
    let (mut recv, port) = recv_as("recv (first)", recv_config.path(), &recv_args)?;
    recv.write_stdin(format!("{greeting}\n").as_bytes())?;
    recv.close_stdin();
    let mut send = spawn_as(
        "send (ana)",
        ana_before.path(),
        ["send", "--name", "ana", &target(port)],
    )?;
    send.write_stdin(b"hello\n")?;
    send.wait_stdout("the receiver's line", TIMEOUT, |l| l == greeting)?;
    let send = send.finish(TIMEOUT)?;
    let recv = recv.finish(TIMEOUT)?;
    send.ensure_success()?;
    recv.ensure_success()?;
    ensure!(
        connected(&recv)?["trust"] == "first-contact",
        "ana was not a first contact\n{recv}"
    );
    let known = std::fs::read_to_string(recv_config.path().join("known_peers"))?;
    ensure!(known.contains("\"ana\""), "ana was not recorded: {known}");

    // Another key under the same name and address.
    let held = marker("held-back");
    let (mut recv, port) = recv_as("recv (again)", recv_config.path(), &recv_args)?;
    recv.write_stdin(format!("{held}\n").as_bytes())?;
    recv.close_stdin();
    let send = run_as(
        "send (ana, new key)",
        ana_after.path(),
        [
            os("send"),
            os("--name"),
            os("ana"),
            os(&target(port)),
            file.as_os_str(),
        ],
        "",
    )?;
    let recv = recv.finish(TIMEOUT)?;
    send.ensure_failure()?;
    ensure!(
        send.stderr
            .contains("the receiver declined from-the-impostor.txt"),
        "the sender was not told its file was declined\n{send}"
    );
    ensure!(
        !send.stdout_text()?.contains(&held),
        "the receiver said its line to a peer whose key changed\n{send}"
    );
    ensure!(
        recv.stderr.contains("WARNING: ana (127.0.0.1:")
            && recv
                .stderr
                .contains("presents a different key than before!"),
        "the receiver did not warn about ana's new key\n{recv}"
    );
    ensure!(
        recv.stderr.contains("declined from-the-impostor.txt"),
        "the receiver did not say it declined the file\n{recv}"
    );
    ensure!(
        recv.stderr.contains("held back: the peer's key changed"),
        "the receiver did not say its line was held back\n{recv}"
    );
    let seen = connected(&recv)?;
    ensure!(
        seen["trust"] == "key-changed" && seen["fingerprint"] == fingerprint_of(ana_after.path())?,
        "the connected event does not name the new key as changed: {seen}"
    );
    ensure!(
        events(&recv, "verified")?.is_empty(),
        "a file was verified\n{recv}"
    );
    ensure_empty(inbox.path(), "a file from a changed key was declined")?;

    // A listener that comes back as "bo" on the same address and port with another key:
    // `tern send` warns, sends nothing and fails.
    let sender = tempfile::tempdir()?;
    let (bo_before, bo_after) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let bo_inbox = tempfile::tempdir()?;
    let bo_args = [
        os("--name"),
        os("bo"),
        os("--yes"),
        os("--download-dir"),
        bo_inbox.path().as_os_str(),
    ];
    let (mut bo, port) = recv_as("recv (bo)", bo_before.path(), &bo_args)?;
    bo.close_stdin();
    let send = run_as("send", sender.path(), ["send", &target(port)], "hi bo\n")?;
    let bo = bo.finish(TIMEOUT)?;
    send.ensure_success()?;
    bo.ensure_success()?;
    let known = std::fs::read_to_string(sender.path().join("known_peers"))?;
    ensure!(known.contains("\"bo\""), "bo was not recorded: {known}");

    let port_arg = port.to_string();
    let mut args = vec![
        os("recv"),
        os("--once"),
        os("--bind"),
        os("127.0.0.1"),
        os("--port"),
        os(&port_arg),
    ];
    args.extend_from_slice(&bo_args);
    let mut bo = spawn_as("recv (bo, new key)", bo_after.path(), &args)?;
    bo.wait_stderr("the listening line", TIMEOUT, common::is_listening_line)?;
    bo.close_stdin();
    let secret = marker("secret");
    let send = run_as(
        "send (to the new bo)",
        sender.path(),
        [os("send"), os(&target(port)), file.as_os_str()],
        &format!("{secret}\n"),
    )?;
    let bo = bo.finish(TIMEOUT)?;
    send.ensure_failure()?;
    ensure!(
        send.stderr.contains(&format!(
            "WARNING: bo (127.0.0.1:{port}) presents a different key than before!"
        )) && send.stderr.contains("Nothing was sent to it"),
        "tern send did not warn about bo's new key\n{send}"
    );
    ensure!(
        bo.stderr.contains("connected to"),
        "the sender never reached the new listener\n{bo}"
    );
    ensure!(
        bo.stdout.is_empty(),
        "the listener with the new key got a message\n{bo}"
    );
    ensure_empty(bo_inbox.path(), "tern send sends nothing to a changed key")?;
    Ok(())
}

#[test]
fn a_wrong_peer_fingerprint_fails_with_nothing_sent() -> anyhow::Result<()> {
    let (recv_config, send_config, other) = (
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    );
    let (recv_fp, send_fp, other_fp) = (
        fingerprint_of(recv_config.path())?,
        fingerprint_of(send_config.path())?,
        fingerprint_of(other.path())?,
    );
    let src = tempfile::tempdir()?;
    let file = src.path().join("pinned.txt");
    write_file(&file, b"for the right key only\n")?;
    let secret = marker("secret");

    // tern send --peer-fingerprint of another machine.
    let inbox = tempfile::tempdir()?;
    let (recv, send) = exchange(
        recv_config.path(),
        &[],
        send_config.path(),
        &[os("--peer-fingerprint"), os(&other_fp)],
        inbox.path(),
        &file,
        &format!("{secret}\n"),
    )?;
    send.ensure_failure()?;
    ensure!(
        send.stderr.contains(&format!(
            "the peer's key is {recv_fp}, not {other_fp} as --peer-fingerprint requires"
        )),
        "tern send did not name the key it met and the one it wanted\n{send}"
    );
    ensure!(recv.stdout.is_empty(), "the receiver got a message\n{recv}");
    ensure_empty(inbox.path(), "send --peer-fingerprint OTHER")?;

    // tern recv --peer-fingerprint of another machine. The sender is refused in the handshake:
    // not worth another try (with the default --retries).
    let inbox = tempfile::tempdir()?;
    let (recv, send) = exchange(
        recv_config.path(),
        &[os("--peer-fingerprint"), os(&other_fp)],
        send_config.path(),
        &[],
        inbox.path(),
        &file,
        &format!("{secret}\n"),
    )?;
    recv.ensure_failure()?;
    send.ensure_failure()?;
    ensure!(
        send.stderr
            .contains("told to expect another key than yours")
            && !send.stderr.contains("retry"),
        "the refused sender did not say why, or tried again\n{send}"
    );
    ensure!(
        recv.stderr.contains(&format!(
            "the peer's key is {send_fp}, not {other_fp} as --peer-fingerprint requires"
        )),
        "tern recv did not name the key it met and the one it wanted\n{recv}"
    );
    ensure!(
        recv.stdout.is_empty(),
        "the receiver printed what a peer with the wrong key said\n{recv}"
    );
    ensure_empty(inbox.path(), "recv --peer-fingerprint OTHER")?;

    // Each side given the other's real fingerprint: all goes through.
    let inbox = tempfile::tempdir()?;
    let (recv, send) = exchange(
        recv_config.path(),
        &[os("--peer-fingerprint"), os(&send_fp)],
        send_config.path(),
        &[os("--peer-fingerprint"), os(&recv_fp)],
        inbox.path(),
        &file,
        &format!("{secret}\n"),
    )?;
    send.ensure_success()?;
    recv.ensure_success()?;
    ensure!(
        recv.stdout_text()? == format!("{secret}\n"),
        "the receiver did not print the line\n{recv}"
    );
    ensure_same_file(&file, &inbox.path().join("pinned.txt"))?;
    Ok(())
}

mod mitm {
    //! A man in the middle: it answers `tern send` as a listener and dials `tern recv` as a
    //! connector, one version 2 handshake with each, both with its own key; then it relays
    //! the frames between them in clear, keeping a copy of what the sender said.

    use std::net::SocketAddr;
    use std::sync::Arc;

    use anyhow::{bail, ensure};
    use bytes::{Buf, BytesMut};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use tern::crypto::Identity;
    use tern::crypto::noise::{Handshake, prologue};
    use tern::crypto::stream::{EncryptedReader, EncryptedWriter, split};
    use tern::protocol::{PREAMBLE_LEN, VERSION, preamble};

    /// Serve one connection on `listener`, relaying it to the receiver at `recv`. Returns the
    /// plaintext the sender sent (its frames, `Hello` first).
    pub async fn relay_one(
        listener: TcpListener,
        recv: SocketAddr,
        mallory: Arc<Identity>,
    ) -> anyhow::Result<Vec<u8>> {
        let (from_sender, _) = listener.accept().await?;
        let (sender_in, sender_out) = answer(from_sender, &mallory).await?;
        let to_recv = TcpStream::connect(recv).await?;
        let (recv_side, _recv_key) = tern::harness::encrypted_connector(to_recv, &mallory).await?;
        let (recv_in, recv_out) = tokio::io::split(recv_side);
        let down = tokio::spawn(pass(recv_in, sender_out));
        let said = pass(sender_in, recv_out).await;
        let _ = down.await;
        Ok(said)
    }

    type Halves = (
        EncryptedReader<tokio::io::ReadHalf<TcpStream>>,
        EncryptedWriter<tokio::io::WriteHalf<TcpStream>>,
    );

    /// The listener's side of the handshake (docs/PROTOCOL.md, section 5), as tern does it.
    async fn answer(mut stream: TcpStream, me: &Identity) -> anyhow::Result<Halves> {
        let mut buf = BytesMut::new();
        while buf.len() < PREAMBLE_LEN {
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("the sender left before its preamble");
            }
        }
        let theirs = buf.split_to(PREAMBLE_LEN);
        let ours = preamble(VERSION);
        ensure!(
            theirs[..] == ours[..],
            "the sender's preamble is {theirs:02x?}"
        );
        let mut handshake = Handshake::responder(me, &prologue(&theirs, &ours))?;
        handshake.read(&message(&mut stream, &mut buf).await?)?;
        let mut out = ours.to_vec();
        let reply = handshake.write()?;
        out.extend_from_slice(&u16::try_from(reply.len())?.to_be_bytes());
        out.extend_from_slice(&reply);
        stream.write_all(&out).await?;
        handshake.read(&message(&mut stream, &mut buf).await?)?;
        let secured = handshake.finish()?;
        // What came after the last handshake message (the sender's sealed Hello) is the first
        // of its records.
        Ok(split(stream, secured.sealer, secured.opener, buf))
    }

    /// One handshake message: a 2-byte length, then the message.
    async fn message(stream: &mut TcpStream, buf: &mut BytesMut) -> anyhow::Result<Vec<u8>> {
        loop {
            if buf.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
                if buf.len() >= 2 + len {
                    buf.advance(2);
                    return Ok(buf.split_to(len).to_vec());
                }
            }
            if stream.read_buf(buf).await? == 0 {
                bail!("the sender left during the handshake");
            }
        }
    }

    /// Copy `from` to `to` until `from` ends (or either fails), then end `to`; what passed.
    async fn pass(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin) -> Vec<u8> {
        let mut passed = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            passed.extend_from_slice(&buf[..n]);
            // Records are sealed as written: flush so nothing waits in the writer.
            if to.write_all(&buf[..n]).await.is_err() || to.flush().await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
        passed
    }
}

/// How one session through the man in the middle went.
struct ThroughMitm {
    send: Finished,
    recv: Finished,
    /// The plaintext the sender's frames carried, as the man in the middle read it.
    relayed: Vec<u8>,
    mallory: String,
}

/// `tern send SEND_EXTRA FILE` (a line `line` on stdin) to `tern recv --yes RECV_EXTRA` through
/// the man in the middle; the two machines' identities are in `send_config` and `recv_config`.
fn through_mitm(
    send_config: &Path,
    recv_config: &Path,
    inbox: &Path,
    file: &Path,
    line: &str,
    send_extra: &[&OsStr],
    recv_extra: &[&OsStr],
) -> anyhow::Result<ThroughMitm> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mallory = tern::harness::identity();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let mitm_port = listener.local_addr()?.port();

    let mut extra = vec![os("--yes"), os("--download-dir"), inbox.as_os_str()];
    extra.extend_from_slice(recv_extra);
    let (mut recv, recv_port) = recv_as("recv", recv_config, &extra)?;
    recv.close_stdin();
    let relay = runtime.spawn(mitm::relay_one(
        listener,
        std::net::SocketAddr::from(([127, 0, 0, 1], recv_port)),
        std::sync::Arc::clone(&mallory),
    ));
    // --retries 0: the man in the middle serves one connection.
    let mut args: Vec<OsString> = ["send", "--retries", "0"].map(OsString::from).to_vec();
    args.extend(send_extra.iter().map(|a| a.to_os_string()));
    args.push(target(mitm_port).into());
    args.push(file.as_os_str().to_os_string());
    let send = run_as("send", send_config, &args, &format!("{line}\n"))?;
    let recv = recv.finish(TIMEOUT)?;
    let relayed = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), relay).await })
        .context("the man in the middle did not finish")?
        .context("the man in the middle panicked")?
        .with_context(|| format!("the man in the middle failed\n{send}\n{recv}"))?;
    Ok(ThroughMitm {
        send,
        recv,
        relayed,
        mallory: mallory.fingerprint().to_string(),
    })
}

#[test]
fn a_man_in_the_middle_is_detected() -> anyhow::Result<()> {
    let (send_config, recv_config) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (send_fp, recv_fp) = (
        fingerprint_of(send_config.path())?,
        fingerprint_of(recv_config.path())?,
    );
    let src = tempfile::tempdir()?;
    let file = src.path().join(format!("{}.txt", marker("mitm-file")));
    write_file(&file, b"read on the way\n")?;
    let file_name = file
        .file_name()
        .and_then(|n| n.to_str())
        .context("the file's name")?
        .to_string();
    let secret = marker("secret");

    // Nobody checks a fingerprint: the session goes through, and the man in the middle reads
    // it all. What each side reports as its peer's key is his, not the real peer's.
    let inbox = tempfile::tempdir()?;
    let run = through_mitm(
        send_config.path(),
        recv_config.path(),
        inbox.path(),
        &file,
        &secret,
        &[os("--json")],
        &[os("--json")],
    )?;
    run.send.ensure_success()?;
    run.recv.ensure_success()?;
    ensure_same_file(&file, &inbox.path().join(&file_name))?;
    ensure!(
        common::list_files(inbox.path())?.len() == 1,
        "more than the one file arrived"
    );
    let messages = events(&run.recv, "message")?;
    ensure!(
        messages.len() == 1 && messages[0]["text"] == secret.as_str(),
        "the line did not arrive through the relay\n{}",
        run.recv
    );
    let relayed = String::from_utf8_lossy(&run.relayed);
    ensure!(
        relayed.contains(&secret) && relayed.contains(&file_name),
        "the man in the middle did not read the session in clear: the relay is not one"
    );
    let send_saw = connected(&run.send)?;
    let recv_saw = connected(&run.recv)?;
    ensure!(
        send_saw["fingerprint"] != recv_fp.as_str() && send_saw["fingerprint"] == run.mallory,
        "tern send reports {send_saw} for its peer: not the man in the middle's {}",
        run.mallory
    );
    ensure!(
        recv_saw["fingerprint"] != send_fp.as_str() && recv_saw["fingerprint"] == run.mallory,
        "tern recv reports {recv_saw} for its peer: not the man in the middle's {}",
        run.mallory
    );
    ensure!(
        send_saw["encrypted"] == true && recv_saw["encrypted"] == true,
        "both legs were encrypted: {send_saw} {recv_saw}"
    );

    // tern send --peer-fingerprint RECV: the key it meets is not recv's; nothing is sent, not
    // even to the man in the middle.
    let inbox = tempfile::tempdir()?;
    let run = through_mitm(
        send_config.path(),
        recv_config.path(),
        inbox.path(),
        &file,
        &secret,
        &[os("--peer-fingerprint"), os(&recv_fp)],
        &[],
    )?;
    run.send.ensure_failure()?;
    ensure!(
        run.send.stderr.contains(&format!(
            "the peer's key is {}, not {recv_fp} as --peer-fingerprint requires",
            run.mallory
        )),
        "tern send did not name the man in the middle's key\n{}",
        run.send
    );
    let relayed = String::from_utf8_lossy(&run.relayed);
    ensure!(
        !relayed.contains(&secret) && !relayed.contains(&file_name),
        "tern send sent its line or its offer to a key it was told not to trust: {relayed:?}"
    );
    ensure!(
        run.recv.stdout.is_empty(),
        "the receiver got a message\n{}",
        run.recv
    );
    ensure_empty(
        inbox.path(),
        "send --peer-fingerprint through a man in the middle",
    )?;

    // tern recv --peer-fingerprint SEND: the receiver meets the man in the middle's key and
    // ends, printing and keeping nothing.
    let inbox = tempfile::tempdir()?;
    let run = through_mitm(
        send_config.path(),
        recv_config.path(),
        inbox.path(),
        &file,
        &secret,
        &[],
        &[os("--peer-fingerprint"), os(&send_fp)],
    )?;
    run.recv.ensure_failure()?;
    run.send.ensure_failure()?;
    ensure!(
        run.recv.stderr.contains(&format!(
            "the peer's key is {}, not {send_fp} as --peer-fingerprint requires",
            run.mallory
        )),
        "tern recv did not name the man in the middle's key\n{}",
        run.recv
    );
    ensure!(
        run.recv.stdout.is_empty(),
        "the receiver printed what came through the man in the middle\n{}",
        run.recv
    );
    ensure_empty(
        inbox.path(),
        "recv --peer-fingerprint through a man in the middle",
    )?;
    Ok(())
}

/// `--insecure` on one side only: each refuses the other, naming the flag, and nothing is said
/// in clear; a connector is never talked down to plaintext.
#[test]
fn insecure_on_one_side_only_is_refused_naming_the_flag() -> anyhow::Result<()> {
    for (recv_flags, send_flags) in [(&["--insecure"][..], &[][..]), (&[], &["--insecure"])] {
        let inbox = tempfile::tempdir()?;
        let recv_config = tempfile::tempdir()?;
        let send_config = tempfile::tempdir()?;
        let file = inbox.path().with_extension("offered.txt");
        write_file(&file, b"never to arrive")?;
        let recv_flags: Vec<&OsStr> = recv_flags.iter().map(|f| os(f)).collect();
        let send_flags: Vec<&OsStr> = send_flags.iter().map(|f| os(f)).collect();
        let (recv, send) = exchange(
            recv_config.path(),
            &recv_flags,
            send_config.path(),
            &send_flags,
            inbox.path(),
            &file,
            "a line never said\n",
        )?;
        send.ensure_failure()?;
        recv.ensure_failure()?;
        for side in [&send, &recv] {
            ensure!(
                side.stderr.contains("--insecure"),
                "a side did not name --insecure (recv {recv_flags:?}, send {send_flags:?})\n{side}"
            );
        }
        ensure!(
            !send.stderr.contains("retry"),
            "a refusal is not worth another try\n{send}"
        );
        ensure!(
            recv.stdout.is_empty(),
            "the receiver printed a line\n{recv}"
        );
        ensure_empty(inbox.path(), "a refused session")?;
    }
    Ok(())
}
