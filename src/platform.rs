//! What differs between Linux, macOS and Windows, one module per concern. Everything else in
//! tern is written once; where a system lacks something, the module says what stands in for it
//! and what still holds.
//!
//! - [`files`]: renaming without replacing, setting disk space aside, reading file data into
//!   a buffer without zeroing it first.
//! - [`process`]: signals and the controlling terminal.
//! - [`sched`]: scheduling hints for the session and bulk threads (Linux).
//!
//! The socket options a session sets live with the session, in `session::socket`.

pub mod files;
pub mod process;
pub mod sched;
