//! Buffers for incoming file data, used again once the disk thread has written them.
//!
//! A fresh buffer per chunk costs a page fault per 4 KiB the first time it is filled (and the
//! allocator hands big blocks back to the kernel when they are freed on another thread): on a
//! 1 GiB transfer that was 8,000 to 65,000 faults and up to a fifth of the receiver's CPU. A
//! pooled buffer is already mapped. The pool keeps about one credit window's worth, which is
//! all the data that can be in flight.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};

/// Bytes of idle buffers kept; more are freed.
const KEEP_BYTES: usize = 6 * 1024 * 1024;
/// Smaller buffers come from the allocator's heap, which keeps them mapped anyway; pooling
/// them would let a few big buffers stand in for thousands of tiny chunks.
const POOLED_MIN: usize = 32 * 1024;

/// Cheap to clone: the clones share the buffers.
#[derive(Clone, Default)]
pub struct BufferPool {
    idle: Arc<Mutex<Idle>>,
}

#[derive(Default)]
struct Idle {
    buffers: Vec<BytesMut>,
    bytes: usize,
}

impl BufferPool {
    /// An empty buffer with room for at least `len` bytes (and not much more).
    pub fn take(&self, len: usize) -> BytesMut {
        if len >= POOLED_MIN {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            // Chunks are mostly one size, so the search ends at the last buffer back.
            let fits = |b: &BytesMut| (len..=2 * len).contains(&b.capacity());
            if let Some(i) = idle.buffers.iter().rposition(fits) {
                let buffer = idle.buffers.swap_remove(i);
                idle.bytes -= buffer.capacity();
                return buffer;
            }
        }
        BytesMut::with_capacity(len)
    }

    /// Freeze `buffer` (taken from this pool) into `Bytes`. A pooled one comes back to the
    /// pool when the last clone is dropped, on whatever thread that is.
    pub fn freeze(&self, buffer: BytesMut) -> Bytes {
        if buffer.capacity() < POOLED_MIN {
            return buffer.freeze();
        }
        Bytes::from_owner(Pooled {
            buffer,
            pool: self.clone(),
        })
    }

    fn give_back(&self, mut buffer: BytesMut) {
        buffer.clear();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        // The oldest make way: they are likeliest to be of a size no longer asked for.
        while idle.bytes + buffer.capacity() > KEEP_BYTES && !idle.buffers.is_empty() {
            let oldest = idle.buffers.remove(0);
            idle.bytes -= oldest.capacity();
        }
        if idle.bytes + buffer.capacity() <= KEEP_BYTES {
            idle.bytes += buffer.capacity();
            idle.buffers.push(buffer);
        }
    }

    #[cfg(test)]
    fn idle_bytes(&self) -> usize {
        self.idle.lock().expect("not poisoned").bytes
    }
}

/// The owner behind pooled `Bytes`.
struct Pooled {
    buffer: BytesMut,
    pool: BufferPool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_when_its_last_clone_is_dropped() {
        let pool = BufferPool::default();
        let mut buffer = pool.take(100_000);
        let address = buffer.as_ptr();
        buffer.extend_from_slice(&[7; 1000]);
        let bytes = pool.freeze(buffer);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(pool.idle_bytes(), 0, "a slice still holds it");
        assert_eq!(&slice[..], &[7; 10]);
        let on_another_thread = std::thread::spawn(move || drop(slice));
        on_another_thread.join().expect("dropped");
        assert!(pool.idle_bytes() >= 100_000);
        let again = pool.take(100_000);
        assert_eq!(
            again.as_ptr(),
            address,
            "the same memory, not a new allocation"
        );
        assert!(again.is_empty());
    }

    #[test]
    fn only_a_buffer_of_about_the_size_asked_is_handed_out() {
        let pool = BufferPool::default();
        drop(pool.freeze(pool.take(64 * 1024)));
        assert!(pool.take(100 * 1024).capacity() >= 100 * 1024, "too small");
        drop(pool.freeze(pool.take(1024 * 1024)));
        let small = pool.take(64 * 1024);
        assert!(small.capacity() < 1024 * 1024, "a 1 MiB buffer for 64 KiB");
        assert!(
            pool.idle_bytes() >= 1024 * 1024,
            "the big one stays for its own size"
        );
    }

    #[test]
    fn small_buffers_are_not_pooled() {
        let pool = BufferPool::default();
        let mut small = pool.take(4096);
        small.extend_from_slice(b"data");
        drop(pool.freeze(small));
        assert_eq!(pool.idle_bytes(), 0);
    }

    #[test]
    fn the_pool_keeps_no_more_than_its_limit() {
        let pool = BufferPool::default();
        let many: Vec<Bytes> = (0..40)
            .map(|_| pool.freeze(pool.take(1024 * 1024)))
            .collect();
        drop(many);
        assert!(pool.idle_bytes() <= KEEP_BYTES);
        assert!(pool.idle_bytes() >= KEEP_BYTES - 1024 * 1024);
    }
}
