//! Byte buffers the request path reuses: a per-thread free list, so that a request's buffers (its access
//! line, the bytes it sends to a backend) come from the previous requests' instead of the allocator.
//! A buffer goes back to the list of the thread that drops it; the list is bounded in count and in what each
//! buffer may hold, so an odd huge request does not pin its memory.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// Buffers kept per thread.
const KEEP: usize = 64;
/// A buffer with more room than this is freed, not kept.
const MAX_KEPT: usize = 64 * 1024;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty byte buffer with room for at least `capacity` bytes, from this thread's free list when it has
/// one; it goes back to the list when dropped.
pub(crate) fn take(capacity: usize) -> Buf {
    let mut v = FREE
        .try_with(|f| f.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default();
    v.reserve(capacity);
    Buf(v)
}

/// A byte buffer from [`take`]: a `Vec<u8>` that returns to this thread's free list when dropped.
#[derive(Debug, Default)]
pub(crate) struct Buf(Vec<u8>);

impl From<Vec<u8>> for Buf {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl Deref for Buf {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let mut v = std::mem::take(&mut self.0);
        if v.capacity() == 0 || v.capacity() > MAX_KEPT {
            return;
        }
        v.clear();
        // A thread being torn down has no list left: the buffer is then simply freed.
        let _ = FREE.try_with(|f| {
            let mut f = f.borrow_mut();
            if f.len() < KEEP {
                f.push(v);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_empty_and_bounded() {
        let mut a = take(100);
        a.extend_from_slice(b"hello");
        let ptr = a.as_ptr();
        drop(a);
        let b = take(10);
        assert!(b.is_empty(), "a reused buffer comes back empty");
        assert_eq!(b.as_ptr(), ptr, "the dropped buffer is the one reused");
        assert!(b.capacity() >= 100);
        drop(b);
        // Too large to keep: freed, not listed.
        let kept = FREE.with(|f| f.borrow().len());
        let mut big = take(MAX_KEPT + 1);
        big.push(1);
        drop(big);
        assert_eq!(FREE.with(|f| f.borrow().len()), kept.saturating_sub(1));
        // At most KEEP buffers stay on the list.
        let many: Vec<Buf> = (0..KEEP + 10).map(|_| take(8)).collect();
        drop(many);
        assert_eq!(FREE.with(|f| f.borrow().len()), KEEP);
    }
}
