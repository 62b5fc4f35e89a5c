//! Scheduling hints for tern's threads, so that a chat line is never stuck behind file data
//! waiting for a CPU.
//!
//! On a busy machine (a transfer keeps both cores of a small box busy) the session thread wakes
//! for each message, but the scheduler lets whatever runs finish its time slice first: traced
//! here with `perf sched timehist`, a woken session thread waited 2–4 ms for a CPU while the
//! disk and reader threads ran, and that made most of the chat latency tail. So:
//!
//! - the session thread (and what it spawns before the bulk threads) asks for a short slice,
//!   0.1 ms: with EEVDF (Linux 6.12 and later) a waking task with a shorter slice preempts the
//!   running one;
//! - the bulk threads (disk, reader) go back to the default slice, which they would otherwise
//!   inherit from the session thread that spawns them.
//!
//! The bulk threads are not niced. At nice 10 they lost the CPU to every runnable session
//! thread, and the disk thread (the busiest) starved while both ends shared two cores: 1 GiB
//! took 12 % longer (interleaved runs, medians 748 against 655 ms), and chat was slower too,
//! since the lines wait for the same starved pipeline (p99 over 8 runs of 1 GiB: 8.1 against
//! 1.5 ms).
//!
//! Both are best effort: an older kernel ignores the slice, and a failure is only logged.
//!
//! macOS and Windows get no hint: neither has a per-thread slice to ask for (macOS's QoS
//! classes and Windows' priority boosts act on whole threads' priority, which starved the bulk
//! threads when tried as nice values above). There a chat line may wait longer for a CPU
//! while a transfer keeps every core busy; nothing else changes.

/// The slice the session thread asks for: the shortest Linux accepts.
#[cfg(target_os = "linux")]
const INTERACTIVE_SLICE_NS: u64 = 100_000;

/// For the thread that runs the session and the user interface.
pub fn interactive_thread() {
    #[cfg(target_os = "linux")]
    set_fair(0, INTERACTIVE_SLICE_NS, "interactive");
}

/// For threads that read, hash and write file data.
pub fn bulk_thread() {
    // A slice of 0 is the kernel's default: the bulk threads are spawned by the session thread
    // and would otherwise inherit its short one.
    #[cfg(target_os = "linux")]
    set_fair(0, 0, "bulk");
}

/// The normal (fair) policy for the calling thread, with `nice` and a requested slice.
#[cfg(target_os = "linux")]
fn set_fair(nice: i32, slice_ns: u64, what: &str) {
    let attr = libc::sched_attr {
        size: std::mem::size_of::<libc::sched_attr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_flags: 0,
        sched_nice: nice,
        sched_priority: 0,
        sched_runtime: slice_ns,
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: `attr` is a live, fully initialised `sched_attr` whose size is in its `size`
    // field; pid 0 is the calling thread; the kernel only reads the struct. Hand-written
    // because neither rustix nor libc wraps `sched_setattr` (libc has the struct and number).
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, std::ptr::from_ref(&attr), 0) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), what, "sched_setattr");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn sched_field(name: &str) -> Option<String> {
        let text = std::fs::read_to_string("/proc/thread-self/sched").ok()?;
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_string())
    }

    fn kernel_at_least(major: u32, minor: u32) -> bool {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut parts = release
            .trim()
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        found >= (major, minor)
    }

    #[test]
    fn bulk_threads_run_at_nice_0_with_the_default_slice() -> anyhow::Result<()> {
        let slices = std::thread::spawn(|| {
            interactive_thread();
            let short = sched_field("se.slice");
            // What a bulk thread spawned from the interactive one ends up with.
            let bulk = std::thread::spawn(|| {
                bulk_thread();
                let nice = rustix::process::getpriority_process(None);
                (nice, sched_field("se.slice"))
            })
            .join();
            (short, bulk)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("thread panicked"))?;
        let (short, bulk) = slices;
        let (nice, bulk_slice) = bulk.map_err(|_| anyhow::anyhow!("thread panicked"))?;
        assert_eq!(nice?, 0);
        // Custom slices for normal threads came with Linux 6.12; older kernels ignore them.
        if let (true, Some(short), Some(bulk_slice)) = (kernel_at_least(6, 12), short, bulk_slice) {
            let short: u64 = short.parse()?;
            let bulk_slice: u64 = bulk_slice.parse()?;
            assert_eq!(short, INTERACTIVE_SLICE_NS);
            assert!(bulk_slice > short, "bulk slice {bulk_slice} ns");
        }
        Ok(())
    }
}
