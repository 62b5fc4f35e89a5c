//! One `tern recv` and several peers at once, each a real `tern send` process on 127.0.0.1:
//! sessions run side by side (one peer staying connected does not hold up another), every
//! event is attributed to the right peer in `--json`, stdin is said to every connected peer,
//! and `--once` waits for the last peer after the first has left.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use anyhow::{Context, ensure};
use serde_json::Value;

use common::{Proc, TIMEOUT, ensure_same_file, spawn_recv, spawn_tern, write_random_file};

fn target(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// `tern recv --once --json --yes` into `inbox`.
fn json_recv(inbox: &Path) -> anyhow::Result<(Proc, u16)> {
    spawn_recv(
        "recv",
        &[
            OsStr::new("--json"),
            OsStr::new("--yes"),
            OsStr::new("--download-dir"),
            inbox.as_os_str(),
        ],
    )
}

/// `tern send --json --name NAME` to `port`, sending `files`; stdin stays open.
fn json_send(name: &str, port: u16, files: &[&Path]) -> anyhow::Result<Proc> {
    let mut args = vec![
        OsStr::new("send"),
        OsStr::new("--json"),
        OsStr::new("--name"),
        OsStr::new(name),
    ];
    let target = target(port);
    args.push(OsStr::new(&target));
    args.extend(files.iter().map(|f| f.as_os_str()));
    spawn_tern(name, args)
}

/// The JSON events `proc` prints on stdout, read into `seen` until `done(seen)` holds.
fn events_until(
    proc: &mut Proc,
    seen: &mut Vec<Value>,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> anyhow::Result<()> {
    if done(seen) {
        return Ok(());
    }
    let mut bad = None;
    proc.wait_stdout(what, TIMEOUT, |line| {
        match serde_json::from_str::<Value>(line) {
            Ok(event) => seen.push(event),
            Err(e) => bad = Some(format!("{line:?}: {e}")),
        }
        bad.is_some() || done(seen)
    })?;
    if let Some(bad) = bad {
        anyhow::bail!("a stdout line is not JSON: {bad}");
    }
    Ok(())
}

fn count(seen: &[Value], event: &str, peer: &str) -> usize {
    seen.iter()
        .filter(|e| e["event"] == event && e["peer"] == peer)
        .count()
}

#[test]
fn three_peers_send_and_chat_at_once_and_every_event_names_its_peer() -> anyhow::Result<()> {
    let src = tempfile::tempdir()?;
    let inbox = tempfile::tempdir()?;
    let (mut recv, port) = json_recv(inbox.path())?;
    let names = ["ana", "bo", "chen"];
    let mut senders = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let file = src.path().join(format!("from-{name}.bin"));
        write_random_file(&file, 3 << 20, i as u64 + 7)?;
        senders.push((*name, file.clone(), json_send(name, port, &[&file])?));
    }
    // All three connected at once before anyone says a word or leaves.
    let mut seen = Vec::new();
    events_until(&mut recv, &mut seen, "three connected events", |seen| {
        names.iter().all(|n| count(seen, "connected", n) == 1)
    })?;
    for (name, _, send) in &mut senders {
        send.write_stdin(format!("hello from {name}, 你好\n").as_bytes())?;
    }
    for (name, file, send) in &mut senders {
        let out = send.finish(TIMEOUT)?;
        out.ensure_success()?;
        let events: Vec<Value> = out
            .stdout_text()?
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .with_context(|| format!("{name}'s stdout\n{out}"))?;
        let file_name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        ensure!(
            events.iter().any(|e| e["event"] == "verified"
                && e["name"] == file_name
                && e["direction"] == "out"),
            "{name} does not report its file verified\n{out}"
        );
    }
    let recv_out = recv.finish(TIMEOUT)?;
    recv_out.ensure_success()?;
    // Every line it printed, the ones read above included.
    let seen: Vec<Value> = recv_out
        .stdout_text()?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("recv's stdout\n{recv_out}"))?;
    for (name, file, _) in &senders {
        let file_name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let message: Vec<&Value> = seen
            .iter()
            .filter(|e| e["event"] == "message" && e["peer"] == *name)
            .collect();
        ensure!(
            message.len() == 1 && message[0]["text"] == format!("hello from {name}, 你好"),
            "{name}'s message: {message:?}\n{recv_out}"
        );
        ensure!(message[0]["encoding"] == "utf-8" && message[0]["addr"].is_string());
        let verified: Vec<&Value> = seen
            .iter()
            .filter(|e| e["event"] == "verified" && e["peer"] == *name)
            .collect();
        ensure!(
            verified.len() == 1 && verified[0]["name"] == file_name,
            "{name}'s file: {verified:?}\n{recv_out}"
        );
        let saved = verified[0]["path"].as_str().context("a saved path")?;
        ensure_same_file(file, Path::new(saved))?;
        let hash = blake3::hash(&std::fs::read(file)?).to_hex().to_string();
        ensure!(verified[0]["blake3"] == hash, "{:?}", verified[0]);
        ensure!(
            count(&seen, "offer", name) == 1 && count(&seen, "left", name) == 1,
            "{name}: one offer and one left expected\n{recv_out}"
        );
    }
    Ok(())
}

#[test]
fn a_peer_that_stays_connected_holds_up_no_other() -> anyhow::Result<()> {
    let src = tempfile::tempdir()?;
    let inbox = tempfile::tempdir()?;
    let (mut recv, port) = json_recv(inbox.path())?;
    let mut seen = Vec::new();
    // The first stays, saying nothing, its stdin open.
    let mut stays = json_send("stays", port, &[])?;
    events_until(&mut recv, &mut seen, "the first peer", |s| {
        count(s, "connected", "stays") == 1
    })?;
    // A second one comes, delivers a file and leaves while the first is still there.
    let file = src.path().join("quick.bin");
    write_random_file(&file, 1 << 20, 3)?;
    let mut quick = json_send("quick", port, &[&file])?;
    quick.close_stdin();
    events_until(
        &mut recv,
        &mut seen,
        "the second peer's file and goodbye",
        |s| count(s, "verified", "quick") == 1 && count(s, "left", "quick") == 1,
    )?;
    quick.finish(TIMEOUT)?.ensure_success()?;
    ensure!(count(&seen, "left", "stays") == 0, "{seen:?}");
    // With two connected, a note on stderr names the peer it is about.
    recv.wait_stderr("a note naming the peer", TIMEOUT, |l| {
        l.starts_with("tern: quick: received quick.bin")
    })?;
    // A line typed at the receiver reaches the peer still connected.
    recv.write_stdin("still here?\n".as_bytes())?;
    stays.wait_stdout("the receiver's line", TIMEOUT, |line| {
        serde_json::from_str::<Value>(line)
            .is_ok_and(|e| e["event"] == "message" && e["text"] == "still here?")
    })?;
    stays.write_stdin(b"yes\n")?;
    events_until(&mut recv, &mut seen, "the first peer's answer", |s| {
        s.iter()
            .any(|e| e["event"] == "message" && e["peer"] == "stays" && e["text"] == "yes")
    })?;
    stays.finish(TIMEOUT)?.ensure_success()?;
    // `--once`: the first peer has left and no other is connected.
    let out = recv.finish(TIMEOUT)?;
    out.ensure_success()?;
    Ok(())
}

#[test]
fn once_waits_for_the_others_after_the_first_leaves_and_stdin_reaches_them_all()
-> anyhow::Result<()> {
    let inbox = tempfile::tempdir()?;
    let (mut recv, port) = json_recv(inbox.path())?;
    let mut seen = Vec::new();
    let mut first = json_send("first", port, &[])?;
    events_until(&mut recv, &mut seen, "the first peer", |s| {
        count(s, "connected", "first") == 1
    })?;
    let mut second = json_send("second", port, &[])?;
    events_until(&mut recv, &mut seen, "the second peer", |s| {
        count(s, "connected", "second") == 1
    })?;
    recv.write_stdin("to everyone\n".as_bytes())?;
    for peer in [&mut first, &mut second] {
        peer.wait_stdout("the line said to every peer", TIMEOUT, |line| {
            serde_json::from_str::<Value>(line)
                .is_ok_and(|e| e["event"] == "message" && e["text"] == "to everyone")
        })?;
    }
    first.finish(TIMEOUT)?.ensure_success()?;
    events_until(&mut recv, &mut seen, "the first peer leaving", |s| {
        count(s, "left", "first") == 1
    })?;
    // Still serving the second: its line arrives after the first has gone.
    second.write_stdin(b"last word\n")?;
    events_until(&mut recv, &mut seen, "the second peer's line", |s| {
        s.iter()
            .any(|e| e["event"] == "message" && e["peer"] == "second" && e["text"] == "last word")
    })?;
    second.finish(TIMEOUT)?.ensure_success()?;
    let out = recv.finish(TIMEOUT)?;
    out.ensure_success()?;
    ensure!(
        out.stdout_text()?.contains(r#""event":"left""#),
        "the second peer's leaving is reported\n{out}"
    );
    Ok(())
}

#[test]
fn a_peer_that_vanishes_mid_transfer_is_reported_left_with_the_reason() -> anyhow::Result<()> {
    let src = tempfile::tempdir()?;
    let inbox = tempfile::tempdir()?;
    let (mut recv, port) = json_recv(inbox.path())?;
    let mut seen = Vec::new();
    let mut calm = json_send("calm", port, &[])?;
    events_until(&mut recv, &mut seen, "the calm peer", |s| {
        count(s, "connected", "calm") == 1
    })?;
    // Big enough to be still moving when it is killed.
    let file = src.path().join("big.bin");
    write_random_file(&file, 512 << 20, 9)?;
    let mut gone = json_send("gone", port, &[&file])?;
    events_until(&mut recv, &mut seen, "the offer", |s| {
        count(s, "offer", "gone") == 1
    })?;
    gone.kill9()?;
    events_until(&mut recv, &mut seen, "the vanished peer's end", |s| {
        count(s, "left", "gone") == 1
    })?;
    let left = seen
        .iter()
        .find(|e| e["event"] == "left" && e["peer"] == "gone")
        .cloned()
        .unwrap_or_default();
    ensure!(left["reason"] == "lost", "{left}");
    ensure!(
        left["error"]
            .as_str()
            .is_some_and(|e| e.contains("connection")),
        "{left}"
    );
    ensure!(count(&seen, "left", "calm") == 0, "{seen:?}");
    calm.close_stdin();
    calm.finish(TIMEOUT)?.ensure_success()?;
    let out = recv.finish(TIMEOUT)?;
    ensure!(
        !out.status.success(),
        "a transfer failed: recv exits 1\n{out}"
    );
    Ok(())
}
