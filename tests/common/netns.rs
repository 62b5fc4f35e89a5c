//! Network namespaces for tests that need a network of their own: a namespace with its loopback
//! up, deleted on drop, and the `ip` commands that wire namespaces together. Needs root and
//! iproute2; [`unavailable`] says why a machine cannot run such a test.
//!
//! Names are unique to this process and to each call ([`unique_name`]), so tests running at
//! once, or test binaries running side by side, never meet each other's namespaces.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, ensure};

/// Whether this machine can make network namespaces; if not, why not.
pub fn unavailable() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root (network namespaces)".into());
    }
    if !tool_works("ip", "-V") {
        return Some("needs `ip` (apt-get install iproute2)".into());
    }
    None
}

/// Whether `tool ARG` runs and exits 0.
pub fn tool_works(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Run `cmd` to its end; fail with what it printed unless it exits 0.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `ip ARGS` (split at whitespace: no argument here holds a space), run to its end.
pub fn ip(args: &str) -> anyhow::Result<()> {
    run(Command::new("ip").args(args.split_whitespace()))
}

/// A name no other namespace of this process (or of another process) has: `tPID-NTAG`, at
/// most 15 characters (an interface's limit, kept for namespaces too) with a `tag` of up to 3.
pub fn unique_name(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % 1000;
    format!("t{}-{n}{tag}", std::process::id())
}

/// A network namespace with its loopback up, deleted on drop.
pub struct Netns(String);

impl Netns {
    pub fn create(name: &str) -> anyhow::Result<Self> {
        // One left behind by a run killed under this process id is in the way.
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .status();
        ip(&format!("netns add {name}"))?;
        let ns = Self(name.to_string());
        ns.ip("link set lo up")?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    /// `ip -n NS ARGS` (done inside the namespace; ARGS split at whitespace), run to its end.
    pub fn ip(&self, args: &str) -> anyhow::Result<()> {
        run(Command::new("ip")
            .args(["-n", &self.0])
            .args(args.split_whitespace()))
    }

    /// `cmd` run inside the namespace, with its arguments and environment. `ip netns exec`
    /// execs the program: the child is the program itself (its pid, its signals).
    pub fn wrap(&self, cmd: &Command) -> Command {
        let mut inside = Command::new("ip");
        inside
            .args(["netns", "exec", &self.0])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (key, value) in cmd.get_envs() {
            match value {
                Some(value) => inside.env(key, value),
                None => inside.env_remove(key),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            inside.current_dir(dir);
        }
        inside
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Its interfaces go with it (a veth's other end too); a process still inside keeps the
        // namespace alive until it exits, but no longer under this name.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}
