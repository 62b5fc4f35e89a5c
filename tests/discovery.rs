//! LAN discovery on a real network: hosts are network namespaces plugged into Linux bridges (one
//! bridge per segment, all in a "switch" namespace of their own), each running real `tern`
//! processes. Nothing touches the machine's own network.
//!
//! A LAN is `10.N.SEGMENT.0/24` (N unique to the test); a host's interface on segment S is
//! `lanI` in its namespace (a name discovery does not skip) with the address `10.N.S.H`, the
//! same H on every segment, and no default route (a LAN with no way out). Each host is a
//! machine of its own: its identity, home and XDG folders are its own, so `tern id` there is
//! what others must list for it.
//!
//! Needs root and iproute2; without them each test says `SKIPPED: TEST: WHY` (CI fails on it).
#![cfg(target_os = "linux")]

mod common;

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use common::netns::{self, Netns, unique_name};
use common::pty::{Launch, Tui, list_row};
use common::{
    DISCOVERY_PORT_VAR, Finished, Proc, TIMEOUT, ensure_same_file, is_listening_line, list_tree,
    spawn_logged, tern_command, write_file,
};

/// The multicast group discovery uses.
const GROUP: &str = "224.0.0.189";
/// The default port, which every listener here uses unless a test says otherwise.
const PORT: u64 = 8989;
/// How long `tern peers` may take beyond its `--wait` (starting, probing, printing).
const SLACK: Duration = Duration::from_millis(1500);
/// A peer that answers is listed within this of `tern peers` starting.
const FOUND_WITHIN: Duration = Duration::from_secs(2);

/// A switch: a namespace holding one bridge per segment (`br1`, `br2`), and the ports of the
/// hosts plugged into it. Dropped after its hosts (declare it first).
struct Lan {
    /// The second octet of every address on this LAN.
    net: u8,
    switch: Netns,
    /// The switch's side of each host's cable (`pK`), in the order they were plugged.
    ports: Vec<String>,
    /// Hosts made so far; the next one's last octet is 10 more.
    hosts: u8,
}

/// Segments every LAN has.
const SEGMENTS: [u8; 2] = [1, 2];

impl Lan {
    /// A switch with its bridges up; `None` (having said `SKIPPED`) where this machine cannot
    /// make namespaces.
    fn new(test: &str) -> Result<Option<Self>> {
        if let Some(why) = netns::unavailable() {
            common::skip(test, &why);
            return Ok(None);
        }
        static NEXT: AtomicU8 = AtomicU8::new(0);
        let net = 1 + NEXT.fetch_add(1, Ordering::Relaxed) % 250;
        let switch = Netns::create(&unique_name("sw"))?;
        for segment in SEGMENTS {
            switch.ip(&format!("link add br{segment} type bridge"))?;
            switch.ip(&format!("link set br{segment} up"))?;
        }
        Ok(Some(Self {
            net,
            switch,
            ports: Vec::new(),
            hosts: 0,
        }))
    }

    /// A host called `name` (its `--name`), with one interface on each of `segments`.
    fn host(&mut self, name: &str, segments: &[u8]) -> Result<Host> {
        let ns = Netns::create(&unique_name("h"))?;
        let number = 10 + self.hosts;
        self.hosts += 1;
        let mut ifaces = Vec::new();
        for (i, &segment) in segments.iter().enumerate() {
            let port = format!("p{}", self.ports.len());
            let iface = format!("lan{i}");
            let addr = Ipv4Addr::new(10, self.net, segment, number);
            let sw = &self.switch;
            sw.ip(&format!(
                "link add {port} type veth peer name {iface} netns {}",
                ns.name()
            ))?;
            self.ports.push(port.clone());
            sw.ip(&format!("link set {port} master br{segment} up"))?;
            // `brd +`: a subnet broadcast address, as DHCP gives one.
            ns.ip(&format!("addr add {addr}/24 brd + dev {iface}"))?;
            ns.ip(&format!("link set {iface} up"))?;
            ifaces.push(Iface {
                name: iface,
                segment,
                addr,
            });
        }
        let mut host = Host {
            ns,
            name: name.to_string(),
            home: tempfile::tempdir().context("a home for a host")?,
            ifaces,
            env: Vec::new(),
            fingerprint: String::new(),
        };
        host.fingerprint = host.tern_id()?;
        Ok(host)
    }

    /// Turn on port isolation on every port (as an access point's client isolation does):
    /// no host reaches another through the switch any more, broadcast and multicast included.
    fn isolate_ports(&self) -> Result<()> {
        for port in &self.ports {
            self.switch.ip(&format!(
                "link set dev {port} type bridge_slave isolated on"
            ))?;
        }
        Ok(())
    }
}

struct Iface {
    name: String,
    segment: u8,
    addr: Ipv4Addr,
}

/// One machine on a [`Lan`]: a namespace, an identity and a home of its own.
struct Host {
    ns: Netns,
    /// Its display name (`--name`) when it listens.
    name: String,
    /// HOME, the XDG folders and `TERN_CONFIG_DIR` (its identity).
    home: tempfile::TempDir,
    ifaces: Vec<Iface>,
    /// Environment of its own for every tern it runs.
    env: Vec<(String, String)>,
    /// What `tern id` prints here.
    fingerprint: String,
}

impl Host {
    /// Every tern this host runs gets `key=value` in its environment.
    fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Its interface on `segment` (a test asks only for one it made).
    fn on(&self, segment: u8) -> &Iface {
        self.ifaces
            .iter()
            .find(|i| i.segment == segment)
            .unwrap_or_else(|| panic!("{} has no interface on segment {segment}", self.name))
    }

    fn addr(&self, segment: u8) -> Ipv4Addr {
        self.on(segment).addr
    }

    fn iface(&self, segment: u8) -> &str {
        &self.on(segment).name
    }

    fn config_dir(&self) -> PathBuf {
        self.home.path().join("config")
    }

    /// The environment every tern on this host gets beyond [`tern_command`]'s: its identity,
    /// its home, and what the test gave it.
    fn environment(&self) -> Vec<(OsString, OsString)> {
        let home = self.home.path();
        let mut env: Vec<(OsString, OsString)> = vec![
            ("TERN_CONFIG_DIR".into(), self.config_dir().into()),
            // The real port: each host is a namespace of its own (other tests' terns get a
            // port each, see `lonely_discovery_port`).
            (DISCOVERY_PORT_VAR.into(), "8989".into()),
            ("HOME".into(), home.into()),
            ("XDG_CONFIG_HOME".into(), home.join(".config").into()),
            ("XDG_DATA_HOME".into(), home.join(".local/share").into()),
            ("XDG_STATE_HOME".into(), home.join(".local/state").into()),
            ("XDG_CACHE_HOME".into(), home.join(".cache").into()),
        ];
        env.extend(self.env.iter().map(|(k, v)| (k.into(), v.into())));
        env
    }

    /// Start `tern ARGS` on this host.
    fn spawn(&self, label: &str, args: &[&str]) -> Result<Proc> {
        let label = format!("{} ({label})", self.name);
        spawn_logged(&label, |log_dir| {
            let mut cmd = tern_command(log_dir, args);
            cmd.current_dir(self.home.path());
            cmd.envs(self.environment());
            self.ns.wrap(&cmd)
        })
    }

    /// `tern ARGS` on this host, to its end (`stdin` its whole input).
    fn run(&self, label: &str, args: &[&str], stdin: &str) -> Result<Finished> {
        let mut proc = self.spawn(label, args)?;
        if !stdin.is_empty() {
            proc.write_stdin(stdin.as_bytes())?;
        }
        proc.finish(TIMEOUT)
    }

    fn tern_id(&self) -> Result<String> {
        common::fingerprint_printed(&self.run("tern id", &["id"], "")?)
    }

    /// `tern recv --name NAME EXTRA...` on this host, waited for until it listens (stdin stays
    /// open: it runs until killed).
    fn listen(&self, extra: &[&str]) -> Result<Proc> {
        let mut args = vec!["recv", "--name", &self.name];
        args.extend_from_slice(extra);
        let mut recv = self.spawn("recv", &args)?;
        recv.wait_stderr("the listening line", TIMEOUT, is_listening_line)?;
        Ok(recv)
    }

    /// `tern peers --json --wait WAIT EXTRA...` on this host, to its end; it must exit 0 within
    /// its wait and [`SLACK`].
    fn peers(&self, wait: &str, extra: &[&str]) -> Result<Peers> {
        let mut args = vec!["peers", "--json", "--wait", wait];
        args.extend_from_slice(extra);
        let wait_for: Duration = Duration::from_secs_f64(wait.parse()?);
        let start = Instant::now();
        let mut proc = self.spawn("peers", &args)?;
        // Each line as it comes, to know when: until stdout ends (or a deadline far past the
        // wait, after which `finish` reports the hang).
        let deadline = start + wait_for + Duration::from_secs(15);
        let mut lines = Vec::new();
        while let Ok(line) = proc.wait_stdout(
            "a peer",
            deadline.saturating_duration_since(Instant::now()),
            |_| true,
        ) {
            lines.push((line, start.elapsed()));
        }
        let run = proc.finish(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1)),
        )?;
        let took = start.elapsed();
        run.ensure_success()?;
        let mut listed = Vec::new();
        for (line, at) in lines {
            let peer: Value = serde_json::from_str(&line).with_context(|| {
                format!("a line of tern peers --json is not JSON: {line}\n{run}")
            })?;
            for (key, is_right) in [
                ("name", Value::is_string as fn(&Value) -> bool),
                ("addr", Value::is_string),
                ("port", Value::is_u64),
                ("fingerprint", Value::is_string),
                ("version", Value::is_u64),
            ] {
                ensure!(
                    is_right(&peer[key]),
                    "{line}: no {key:?} of the right type\n{run}"
                );
            }
            listed.push(Listed { peer, at });
        }
        ensure!(
            took <= wait_for + SLACK,
            "tern peers --wait {wait} took {took:?}\n{run}"
        );
        Ok(Peers {
            on: self.name.clone(),
            listed,
            run,
        })
    }

    /// `tern ARGS` in a 120×36 pseudo-terminal on this host.
    fn tui(&self, args: &[&str]) -> Result<Tui> {
        let launch = Launch {
            wrapper: ["ip", "netns", "exec", self.ns.name()]
                .map(OsString::from)
                .to_vec(),
            env: self.environment(),
            data: None,
        };
        Tui::launch(&self.name, args.iter().copied(), 120, 36, &launch)
    }
}

/// One peer `tern peers --json` printed, and when (after it started).
struct Listed {
    peer: Value,
    at: Duration,
}

/// What one `tern peers` run found.
struct Peers {
    /// The host it ran on.
    on: String,
    listed: Vec<Listed>,
    run: Finished,
}

impl Peers {
    /// The peers listed under `name`.
    fn named(&self, name: &str) -> Vec<&Listed> {
        self.listed
            .iter()
            .filter(|l| l.peer["name"] == name)
            .collect()
    }

    /// Fail unless `host` is listed once, at its address on `segment`, with `port`, its
    /// fingerprint and `version`, within [`FOUND_WITHIN`].
    fn ensure_lists(&self, host: &Host, segment: u8, port: u64, version: u64) -> Result<()> {
        let found = self.named(&host.name);
        ensure!(
            found.len() == 1,
            "{} listed {} {} times, not once\n{}",
            self.on,
            host.name,
            found.len(),
            self.run
        );
        let Listed { peer, at } = found[0];
        let addr = host.addr(segment).to_string();
        // An --insecure tern (version 1) proves no key: what it gives as its fingerprint is
        // nothing to check.
        let fingerprint_right = version == 1 || peer["fingerprint"] == host.fingerprint.as_str();
        ensure!(
            peer["addr"] == addr.as_str()
                && peer["port"] == port
                && fingerprint_right
                && peer["version"] == version,
            "{} listed {peer}; expected {} at {addr} port {port}, fingerprint {}, version \
             {version}\n{}",
            self.on,
            host.name,
            host.fingerprint,
            self.run
        );
        ensure!(
            *at <= FOUND_WITHIN,
            "{} listed {} only {at:?} after it started\n{}",
            self.on,
            host.name,
            self.run
        );
        Ok(())
    }

    /// Fail if `host` is listed (`why` it must not be).
    fn ensure_omits(&self, host: &Host, why: &str) -> Result<()> {
        ensure!(
            self.named(&host.name).is_empty(),
            "{} listed {}, though {why}\n{}",
            self.on,
            host.name,
            self.run
        );
        Ok(())
    }

    /// Fail unless `n` peers are listed (a host's own listener never is).
    fn ensure_others(&self, n: usize) -> Result<()> {
        let others = self.listed.len();
        ensure!(
            others == n,
            "{} listed {others} other peers, expected {n}\n{}",
            self.on,
            self.run
        );
        Ok(())
    }
}

/// Fail unless `stderr` explains why nobody was found as `tern peers` does: the usual causes
/// (client isolation, a firewall, another subnet), that `tern connect HOST` needs no discovery,
/// the interfaces tried (`tried`, by name) and the group, and loopback skipped.
fn ensure_explains(stderr: &str, tried: &[&str], who: &str) -> Result<()> {
    let lower = stderr.to_lowercase();
    for word in ["isolat", "firewall", "subnet", "tern connect", GROUP] {
        ensure!(
            lower.contains(word),
            "{who}'s explanation lacks {word:?}:\n{stderr}"
        );
    }
    let words: Vec<&str> = stderr
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .collect();
    for iface in tried.iter().chain(&["lo"]) {
        ensure!(
            words.contains(iface),
            "{who}'s explanation does not name the interface {iface}:\n{stderr}"
        );
    }
    ensure!(
        lower.contains("loopback"),
        "{who}'s explanation does not say why lo was skipped:\n{stderr}"
    );
    Ok(())
}

/// Send `signal` to `proc`.
fn signal(proc: &Proc, signal: rustix::process::Signal) -> Result<()> {
    let pid = i32::try_from(proc.pid())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .context("a child's process id")?;
    rustix::process::kill_process(pid, signal).context("signalling a child")
}

// ---------------------------------------------------------------------------------------------
// tern peers

#[test]
fn three_hosts_on_one_switch_each_list_the_other_two() -> Result<()> {
    const TEST: &str = "three_hosts_on_one_switch_each_list_the_other_two";
    let Some(mut lan) = Lan::new(TEST)? else {
        return Ok(());
    };
    let hosts = [
        lan.host("ann", &[1])?,
        lan.host("ben", &[1])?,
        lan.host("cat", &[1])?,
    ];
    let _recv = hosts
        .iter()
        .map(|h| h.listen(&[]))
        .collect::<Result<Vec<_>>>()?;
    for host in &hosts {
        let peers = host.peers("2", &[])?;
        for other in hosts.iter().filter(|o| o.name != host.name) {
            peers.ensure_lists(other, 1, PORT, 2)?;
        }
        peers.ensure_omits(host, "that is its own listener")?;
        peers.ensure_others(2)?;
    }
    Ok(())
}

#[test]
fn hosts_that_share_one_key_still_list_each_other_but_not_themselves() -> Result<()> {
    const TEST: &str = "hosts_that_share_one_key_still_list_each_other_but_not_themselves";
    let Some(mut lan) = Lan::new(TEST)? else {
        return Ok(());
    };
    let ann = lan.host("ann", &[1])?;
    // ben runs with ann's identity (a copied config folder, or one home for every host).
    let config = ann.config_dir();
    let mut ben = lan
        .host("ben", &[1])?
        .with_env("TERN_CONFIG_DIR", &config.to_string_lossy());
    ben.fingerprint = ben.tern_id()?;
    ensure!(
        ben.fingerprint == ann.fingerprint,
        "ben does not have ann's key"
    );
    let _recv = [ann.listen(&[])?, ben.listen(&[])?];
    for (host, other) in [(&ann, &ben), (&ben, &ann)] {
        let peers = host.peers("2", &[])?;
        peers.ensure_lists(other, 1, PORT, 2)?;
        peers.ensure_omits(host, "that is its own listener")?;
        peers.ensure_others(1)?;
    }
    Ok(())
}

#[test]
fn a_listener_whose_address_comes_later_is_found_once_it_has_one() -> Result<()> {
    const TEST: &str = "a_listener_whose_address_comes_later_is_found_once_it_has_one";
    let Some(mut lan) = Lan::new(TEST)? else {
        return Ok(());
    };
    let ann = lan.host("ann", &[1])?;
    let ben = lan
        .host("ben", &[1])?
        .with_env("TERN_ANNOUNCE_INTERVAL", "1");
    // ben starts with no address, as a laptop before DHCP answers.
    ben.ns.ip(&format!("addr flush dev {}", ben.iface(1)))?;
    let _recv = ben.listen(&[])?;
    ann.peers("1", &[])?.ensure_others(0)?;
    ben.ns.ip(&format!(
        "addr add {}/24 brd + dev {}",
        ben.addr(1),
        ben.iface(1)
    ))?;
    // Its next announce (within a second) goes out on the interface it has now.
    let peers = ann.peers("3", &[])?;
    peers.ensure_lists(&ben, 1, PORT, 2)?;
    Ok(())
}

#[test]
fn peers_prints_name_address_and_fingerprint_as_text() -> Result<()> {
    const TEST: &str = "peers_prints_name_address_and_fingerprint_as_text";
    let Some(mut lan) = Lan::new(TEST)? else {
        return Ok(());
    };
    let ann = lan.host("ann", &[1])?;
    let ben = lan.host("ben", &[1])?;
    let _recv = ben.listen(&["--port", "9000"])?;
    let peers = ann.run("peers", &["peers", "--wait", "1"], "")?;
    peers.ensure_success()?;
    let expected = format!("ben  {}:9000  {}\n", ben.addr(1), ben.fingerprint);
    ensure!(
        peers.stdout_text()? == expected,
        "tern peers did not print {expected:?}\n{peers}"
    );
    Ok(())
}

#[test]
fn a_host_on_another_switch_is_not_listed() -> Result<()> {
    const TEST: &str = "a_host_on_another_switch_is_not_listed";
    let Some(mut lan) = Lan::new(TEST)? else {
        return Ok(());
    };
    let ann = lan.host("ann", &[1])?;
    let ben = lan.host("ben", &[1])?;
    let dan = lan.host("dan", &[2])?;
    let _recv = [ann.listen(&[])?, ben.listen(&[])?, dan.listen(&[])?];

    let peers = ann.peers("2", &[])?;
    peers.ensure_lists(&ben, 1, PORT, 2)?;
    peers.ensure_omits(&dan, "dan is on another switch")?;
    peers.ensure_others(1)?;

    let peers = dan.peers("2", &[])?;
    peers.ensure_others(0)?;
    Ok(())
}

/// ann on switch 1, dan on switch 2, mid on both; each listening.
struct TwoSwitches {
    _recv: [Proc; 3],
    ann: Host,
    mid: Host,
    dan: Host,
    _lan: Lan,
}

fn two_switches(test: &str) -> Result<Option<TwoSwitches>> {
    let Some(mut lan) = Lan::new(test)? else {
        return Ok(None);
    };
    let ann = lan.host("ann", &[1])?;
    let mid = lan.host("mid", &[1, 2])?;
    let dan = lan.host("dan", &[2])?;
    Ok(Some(TwoSwitches {
        _recv: [ann.listen(&[])?, mid.listen(&[])?, dan.listen(&[])?],
        ann,
        mid,
        dan,
        _lan: lan,
    }))
}

#[test]
fn a_host_on_two_switches_is_found_on_each_at_its_address_there() -> Result<()> {
    const TEST: &str = "a_host_on_two_switches_is_found_on_each_at_its_address_there";
    let Some(TwoSwitches { ann, mid, dan, .. }) = &two_switches(TEST)? else {
        return Ok(());
    };
    let peers = ann.peers("2", &[])?;
    peers.ensure_lists(mid, 1, PORT, 2)?;
    peers.ensure_others(1)?;

    let peers = dan.peers("2", &[])?;
    peers.ensure_lists(mid, 2, PORT, 2)?;
    peers.ensure_others(1)?;

    // And the host in the middle finds each on its own side.
    let peers = mid.peers("2", &[])?;
    peers.ensure_lists(ann, 1, PORT, 2)?;
    peers.ensure_lists(dan, 2, PORT, 2)?;
    peers.ensure_others(2)?;
    Ok(())
}

#[test]
fn a_listener_bound_to_one_address_is_announced_only_there() -> Result<()> {
    const TEST: &str = "a_listener_bound_to_one_address_is_announced_only_there";
    let Some(mut lan) = Lan::new(TEST)? else {
        return Ok(());
    };
    let ann = lan.host("ann", &[1])?;
    let mid = lan.host("mid", &[1, 2])?;
    let dan = lan.host("dan", &[2])?;
    // Reachable on segment 2 only: announcing it on segment 1 would list an address that
    // refuses connections.
    let bound = mid.addr(2).to_string();
    let _recv = mid.listen(&["--bind", &bound])?;
    let peers = dan.peers("2", &[])?;
    peers.ensure_lists(&mid, 2, PORT, 2)?;
    let peers = ann.peers("2", &[])?;
    peers.ensure_omits(&mid, "it listens only on its segment-2 address")?;
    peers.ensure_others(0)?;
    Ok(())
}

#[test]
fn peers_with_iface_looks_on_that_interface_only() -> Result<()> {
    const TEST: &str = "peers_with_iface_looks_on_that_interface_only";
    let Some(TwoSwitches { ann, mid, dan, .. }) = &two_switches(TEST)? else {
        return Ok(());
    };
    let peers = mid.peers("2", &["--iface", mid.iface(2)])?;
    peers.ensure_lists(dan, 2, PORT, 2)?;
    peers.ensure_omits(ann, "ann is on the other interface")?;
    peers.ensure_others(1)?;
    Ok(())
}

#[test]
fn isolated_ports_find_no_one_and_say_why() -> Result<()> {
    const TEST: &str = "isolated_ports_find_no_one_and_say_why";
    let Some(mut lan) = Lan::new(TEST)? else {
        return Ok(());
    };
    let ann = lan.host("ann", &[1])?;
    let ben = lan.host("ben", &[1])?;
    let cat = lan.host("cat", &[1])?;
    let _recv = [ben.listen(&[])?, cat.listen(&[])?];
    // The control: before isolation, ann finds them.
    let before = ann.peers("2", &[])?;
    before.ensure_lists(&ben, 1, PORT, 2)?;
    before.ensure_lists(&cat, 1, PORT, 2)?;

    lan.isolate_ports()?;
    let peers = ann.peers("2", &[])?;
    peers.ensure_others(0)?;
    ensure!(
        peers.run.stderr.contains("no tern answered"),
        "tern peers did not say no tern answered\n{}",
        peers.run
    );
    ensure_explains(&peers.run.stderr, &[ann.iface(1)], "tern peers")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// tern send NAME

/// A file to send, in a folder of its own.
fn file_to_send(dir: &Path) -> Result<PathBuf> {
    let file = dir.join("found-by-name.txt");
    write_file(&file, b"sent to a name, not an address\n")?;
    Ok(file)
}

/// `tern recv --yes --download-dir INBOX` on `host`.
fn receive_into(host: &Host, inbox: &Path) -> Result<Proc> {
    let inbox = inbox.to_str().context("a UTF-8 temporary folder")?;
    host.listen(&["--yes", "--download-dir", inbox])
}

/// Two receivers (`recv --yes`, each into an inbox of its own) called `first` and `second`,
/// and sam, with a file to send them. Fields drop in order: the processes, then the hosts,
/// then the switch.
struct ByName {
    _recv: [Proc; 2],
    receivers: [Host; 2],
    inboxes: [tempfile::TempDir; 2],
    sam: Host,
    file: PathBuf,
    _outbox: tempfile::TempDir,
    _lan: Lan,
}

fn by_name(test: &str, first: &str, second: &str) -> Result<Option<ByName>> {
    let Some(mut lan) = Lan::new(test)? else {
        return Ok(None);
    };
    let receivers = [lan.host(first, &[1])?, lan.host(second, &[1])?];
    let sam = lan.host("sam", &[1])?;
    let inboxes = [tempfile::tempdir()?, tempfile::tempdir()?];
    let outbox = tempfile::tempdir()?;
    let _recv = [
        receive_into(&receivers[0], inboxes[0].path())?,
        receive_into(&receivers[1], inboxes[1].path())?,
    ];
    let file = file_to_send(outbox.path())?;
    Ok(Some(ByName {
        _recv,
        receivers,
        inboxes,
        sam,
        file,
        _outbox: outbox,
        _lan: lan,
    }))
}

#[test]
fn send_to_a_name_delivers_the_file_to_that_receiver() -> Result<()> {
    const TEST: &str = "send_to_a_name_delivers_the_file_to_that_receiver";
    let Some(ByName {
        inboxes: [inbox, other_inbox],
        sam,
        file,
        ..
    }) = &by_name(TEST, "rita", "otto")?
    else {
        return Ok(());
    };
    let file_arg = file.to_str().context("a UTF-8 temporary folder")?;

    let send = sam.run("send", &["send", "rita", file_arg], "")?;
    send.ensure_success()?;
    ensure_same_file(file, &inbox.path().join("found-by-name.txt"))?;
    // Typed in other case, the one name still finds her (the second copy is numbered).
    let send = sam.run("send", &["send", "RITA", file_arg], "")?;
    send.ensure_success()?;
    let got = list_tree(inbox.path())?;
    ensure!(got.len() == 2, "RITA did not reach rita: {got:?}\n{send}");
    let elsewhere = list_tree(other_inbox.path())?;
    ensure!(
        elsewhere.is_empty(),
        "a receiver of another name got {elsewhere:?}"
    );
    Ok(())
}

#[test]
fn send_to_a_name_two_receivers_share_fails_listing_both() -> Result<()> {
    const TEST: &str = "send_to_a_name_two_receivers_share_fails_listing_both";
    let Some(ByName {
        receivers,
        inboxes,
        sam,
        file,
        ..
    }) = &by_name(TEST, "twin", "twin")?
    else {
        return Ok(());
    };
    let file_arg = file.to_str().context("a UTF-8 temporary folder")?;

    let send = sam.run("send", &["send", "twin", file_arg], "a line never said\n")?;
    send.ensure_failure()?;
    for host in receivers {
        let addr = host.addr(1).to_string();
        ensure!(
            send.stderr.contains(&addr) && send.stderr.contains(&host.fingerprint),
            "tern send did not list the twin at {addr} (fingerprint {})\n{send}",
            host.fingerprint
        );
    }
    for inbox in inboxes {
        let got = list_tree(inbox.path())?;
        ensure!(
            got.is_empty(),
            "a twin got {got:?} though the name was ambiguous"
        );
    }
    Ok(())
}

#[test]
fn send_to_a_name_nobody_has_fails_saying_why() -> Result<()> {
    const TEST: &str = "send_to_a_name_nobody_has_fails_saying_why";
    let Some(mut lan) = Lan::new(TEST)? else {
        return Ok(());
    };
    let rita = lan.host("rita", &[1])?;
    let sam = lan.host("sam", &[1])?;
    let (inbox, outbox) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let _recv = receive_into(&rita, inbox.path())?;
    let file = file_to_send(outbox.path())?;
    let file_arg = file.to_str().context("a UTF-8 temporary folder")?;

    let send = sam.run("send", &["send", "rota", file_arg], "")?;
    send.ensure_failure()?;
    ensure!(
        send.stderr.contains("rota"),
        "tern send did not name what it looked for\n{send}"
    );
    ensure_explains(&send.stderr, &[sam.iface(1)], "tern send")?;
    let got = list_tree(inbox.path())?;
    ensure!(got.is_empty(), "a receiver of another name got {got:?}");
    Ok(())
}

#[test]
fn connect_to_a_name_opens_the_tui_connected_to_that_peer() -> Result<()> {
    const TEST: &str = "connect_to_a_name_opens_the_tui_connected_to_that_peer";
    let Some(mut lan) = Lan::new(TEST)? else {
        return Ok(());
    };
    let rita = lan.host("rita", &[1])?;
    let sam = lan.host("sam", &[1])?;
    let mut recv = rita.listen(&[])?;
    let mut tui = sam.tui(&["connect", "rita", "--name", "sam"])?;
    wait_screen(
        &mut tui,
        "connected to rita",
        Duration::from_secs(10),
        |s| s.contains("connected to rita"),
    )?;
    recv.wait_stderr("rita's recv connected to sam", TIMEOUT, |l| {
        l.contains("connected to sam")
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// What a listener announces

#[test]
fn a_listener_on_another_port_is_listed_with_that_port() -> Result<()> {
    const TEST: &str = "a_listener_on_another_port_is_listed_with_that_port";
    let Some(mut lan) = Lan::new(TEST)? else {
        return Ok(());
    };
    let ann = lan.host("ann", &[1])?;
    let ben = lan.host("ben", &[1])?;
    let _recv = ann.listen(&["--port", "9000"])?;
    let peers = ben.peers("2", &[])?;
    peers.ensure_lists(&ann, 1, 9000, 2)?;
    peers.ensure_others(1)?;
    Ok(())
}

#[test]
fn a_no_announce_listener_is_not_listed_yet_accepts_connections() -> Result<()> {
    const TEST: &str = "a_no_announce_listener_is_not_listed_yet_accepts_connections";
    let Some(mut lan) = Lan::new(TEST)? else {
        return Ok(());
    };
    let ann = lan.host("ann", &[1])?;
    let quiet = lan.host("quiet", &[1])?;
    let ben = lan.host("ben", &[1])?;
    let _ann = ann.listen(&[])?;
    let mut quiet_recv = quiet.listen(&["--no-announce"])?;

    let peers = ben.peers("2", &[])?;
    // The control: discovery works on this LAN.
    peers.ensure_lists(&ann, 1, PORT, 2)?;
    peers.ensure_omits(&quiet, "quiet listens with --no-announce")?;
    peers.ensure_others(1)?;

    let target = quiet.addr(1).to_string();
    let send = ben.run("send", &["send", &target], "heard though silent\n")?;
    send.ensure_success()?;
    quiet_recv.wait_stdout("the line sent to its address", TIMEOUT, |l| {
        l == "heard though silent"
    })?;
    Ok(())
}

#[test]
fn an_insecure_listener_is_listed_with_version_1() -> Result<()> {
    const TEST: &str = "an_insecure_listener_is_listed_with_version_1";
    let Some(mut lan) = Lan::new(TEST)? else {
        return Ok(());
    };
    let plain = lan.host("plain", &[1])?;
    let ben = lan.host("ben", &[1])?;
    let _recv = plain.listen(&["--insecure"])?;
    let peers = ben.peers("2", &[])?;
    peers.ensure_lists(&plain, 1, PORT, 1)?;
    peers.ensure_others(1)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The TUI's peer list

/// Whether the list shows `peer` as discovered, not connected (`◇`).
fn shows_discovered(screen: &str, peer: &str) -> bool {
    list_row(screen, peer).is_some_and(|row| row.split(' ').any(|w| w == "◇"))
}

/// Wait (at most `within`) until the screen satisfies `pred`; how long it took.
fn wait_screen(
    tui: &mut Tui,
    what: &str,
    within: Duration,
    pred: impl Fn(&str) -> bool,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if pred(&tui.screen_text()) {
            return Ok(start.elapsed());
        }
        if let Some(status) = tui.exit_status() {
            bail!("{what}: tern exited ({status:?})\n{}", tui.report());
        }
        if start.elapsed() >= within {
            bail!("{what}: not within {within:?}\n{}", tui.report());
        }
        thread::sleep(common::pty::POLL);
    }
}

/// A LAN with a host running the TUI (`tern listen --name watch`), listening and showing the
/// peer list, and `peer` (its announce interval `interval` seconds, or the default) listening
/// and shown as discovered.
fn watching(test: &str, peer: &str, interval: Option<&str>) -> Result<Option<Watching>> {
    let Some(mut lan) = Lan::new(test)? else {
        return Ok(None);
    };
    let watch = lan.host("watch", &[1])?;
    let mut seen = lan.host(peer, &[1])?;
    if let Some(secs) = interval {
        seen = seen.with_env("TERN_ANNOUNCE_INTERVAL", secs);
    }
    let mut tui = watch.tui(&["listen", "--name", "watch"])?;
    tui.wait_for("the TUI listening", |s| s.contains("listening on"))?;
    let recv = seen.listen(&[])?;
    wait_screen(
        &mut tui,
        &format!("{peer} in the peer list, marked ◇"),
        Duration::from_secs(10),
        |s| shows_discovered(s, peer),
    )?;
    Ok(Some(Watching {
        recv,
        tui,
        _seen: seen,
        _watch: watch,
        _lan: lan,
    }))
}

/// Fields drop in order: the processes, then their hosts, then the switch.
struct Watching {
    recv: Proc,
    tui: Tui,
    _seen: Host,
    _watch: Host,
    _lan: Lan,
}

#[test]
fn a_killed_peer_leaves_the_tui_list_when_it_expires() -> Result<()> {
    const TEST: &str = "a_killed_peer_leaves_the_tui_list_when_it_expires";
    // Announcing every second: expired 3 s after its last announce.
    let Some(mut w) = watching(TEST, "kay", Some("1"))? else {
        return Ok(());
    };
    // SIGKILL: no goodbye.
    w.recv.kill9()?;
    let took = wait_screen(
        &mut w.tui,
        "kay gone from the list after it was killed",
        Duration::from_secs(8),
        |s| list_row(s, "kay").is_none(),
    )?;
    ensure!(
        took <= Duration::from_secs(5),
        "kay left the list {took:?} after it was killed (its announces said every 1 s: \
         expired after 3 s)\n{}",
        w.tui.report()
    );
    Ok(())
}

#[test]
fn a_peer_that_stops_leaves_the_tui_list_at_once() -> Result<()> {
    const TEST: &str = "a_peer_that_stops_leaves_the_tui_list_at_once";
    // The default interval: it would expire only after 90 s or more.
    let Some(mut w) = watching(TEST, "gus", None)? else {
        return Ok(());
    };
    signal(&w.recv, rustix::process::Signal::TERM)?;
    let took = wait_screen(
        &mut w.tui,
        "gus gone from the list after it said goodbye",
        Duration::from_secs(10),
        |s| list_row(s, "gus").is_none(),
    )?;
    ensure!(
        took <= Duration::from_secs(2),
        "gus left the list {took:?} after SIGTERM: not at once\n{}",
        w.tui.report()
    );
    let gone = w.recv.finish(Duration::from_secs(10))?;
    gone.ensure_success()?;
    Ok(())
}

#[test]
fn enter_on_a_discovered_peer_connects_to_it() -> Result<()> {
    const TEST: &str = "enter_on_a_discovered_peer_connects_to_it";
    let Some(mut w) = watching(TEST, "dee", None)? else {
        return Ok(());
    };
    // Shift-Tab: focus the peer list; Down: from Everyone to dee, whose conversation opens.
    w.tui.write("\x1b[Z")?;
    w.tui.write("\x1b[B")?;
    wait_screen(&mut w.tui, "dee selected", Duration::from_secs(10), |s| {
        s.contains("Messages · dee")
    })?;
    w.tui.write("\r")?;
    wait_screen(
        &mut w.tui,
        "connected to dee",
        Duration::from_secs(10),
        |s| s.contains("connected to dee"),
    )?;
    w.recv
        .wait_stderr("dee's recv connected to watch", TIMEOUT, |l| {
            l.contains("connected to watch")
        })?;
    Ok(())
}

#[test]
fn peers_command_in_the_tui_lists_a_listener_already_running() -> Result<()> {
    const TEST: &str = "peers_command_in_the_tui_lists_a_listener_already_running";
    let Some(mut lan) = Lan::new(TEST)? else {
        return Ok(());
    };
    let watch = lan.host("watch", &[1])?;
    let early = lan.host("early", &[1])?;
    // Listening before the TUI starts, its start-up announces long done; its next is 30 s or
    // more away.
    let _recv = early.listen(&[])?;
    let mut tui = watch.tui(&["listen", "--name", "watch"])?;
    tui.wait_for("the TUI listening", |s| s.contains("listening on"))?;
    tui.write("/peers\r")?;
    wait_screen(
        &mut tui,
        "early in the peer list after /peers",
        FOUND_WITHIN + SLACK,
        |s| shows_discovered(s, "early"),
    )?;
    // Someone answered: the look's end explains nothing.
    thread::sleep(tern::net::discovery::LOOK + Duration::from_secs(1));
    let screen = tui.screen_text();
    ensure!(
        !screen.contains("no tern answered"),
        "an explanation though early answered:\n{}",
        tui.report()
    );
    Ok(())
}

#[test]
fn peers_command_in_the_tui_says_why_when_nobody_answers() -> Result<()> {
    const TEST: &str = "peers_command_in_the_tui_says_why_when_nobody_answers";
    let Some(mut lan) = Lan::new(TEST)? else {
        return Ok(());
    };
    let watch = lan.host("watch", &[1])?;
    let other = lan.host("other", &[1])?;
    let _recv = other.listen(&[])?;
    lan.isolate_ports()?;
    let mut tui = watch.tui(&["listen", "--name", "watch"])?;
    tui.wait_for("the TUI listening", |s| s.contains("listening on"))?;
    tui.write("/peers\r")?;
    wait_screen(
        &mut tui,
        "the explanation after a quiet /peers",
        tern::net::discovery::LOOK + SLACK,
        |s| {
            s.contains("no tern answered within 2 s:")
                && s.contains("interfaces tried:")
                && s.contains("Usual causes:")
                && s.contains("only a convenience: /connect")
        },
    )?;
    ensure!(
        !shows_discovered(&tui.screen_text(), "other"),
        "other was found through isolated ports\n{}",
        tui.report()
    );
    Ok(())
}
