//! Page-aligned buffers for pieces held in memory.
//!
//! Why aligned: a verified piece is written to disk with `O_DIRECT`, which
//! wants the buffer's address (as well as the file offset and length)
//! aligned to the device's block size. A piece assembled in a page-aligned
//! buffer goes to the device as it is; one in a `Vec<u8>` would first be
//! copied to an aligned bounce buffer, one more pass over every downloaded
//! byte (0.1–0.4 CPU-seconds per GiB here, and the most variable part of a
//! download's CPU time).

use std::alloc::Layout;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Alignment of every buffer: a page, the largest logical block size in
/// use, so right for `O_DIRECT` on every device.
pub const ALIGN: usize = 4096;

/// An owned, zero-initialised, page-aligned byte buffer of a fixed
/// capacity whose length can change within it (like a `Vec<u8>` that never
/// moves).
pub struct PieceBuf {
    ptr: NonNull<u8>,
    /// Allocated bytes, a multiple of `ALIGN`; all initialised.
    capacity: usize,
    len: usize,
}

// SAFETY: `PieceBuf` owns its allocation exclusively, like a `Vec<u8>`;
// shared references only give out `&[u8]`.
unsafe impl Send for PieceBuf {}
unsafe impl Sync for PieceBuf {}

impl PieceBuf {
    /// A buffer of `len` zero bytes.
    pub fn zeroed(len: usize) -> Self {
        let capacity = len.max(1).div_ceil(ALIGN) * ALIGN;
        let layout = Self::layout(capacity);
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        PieceBuf { ptr, capacity, len }
    }

    /// A buffer holding a copy of `data`.
    pub fn from_slice(data: &[u8]) -> Self {
        let mut b = Self::zeroed(data.len());
        b.copy_from_slice(data);
        b
    }

    fn layout(capacity: usize) -> Layout {
        Layout::from_size_align(capacity, ALIGN).expect("buffer size fits a layout")
    }

    /// Bytes the buffer can hold without reallocating.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sets the length to `len`. Within the capacity the bytes keep what
    /// they held (every byte of a piece is overwritten before it is used);
    /// beyond it the buffer is replaced by a zeroed one.
    pub fn resize(&mut self, len: usize) {
        if len > self.capacity {
            *self = Self::zeroed(len);
        } else {
            self.len = len;
        }
    }
}

impl Deref for PieceBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` owns `capacity >= len` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for PieceBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, borrowed mutably through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for PieceBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.capacity)) }
    }
}

impl fmt::Debug for PieceBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PieceBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_zeroed_and_resizable_in_place() {
        for len in [0usize, 1, 4095, 4096, 4097, 1 << 20] {
            let b = PieceBuf::zeroed(len);
            assert_eq!(b.as_ptr() as usize % ALIGN, 0, "len {len}");
            assert_eq!(b.len(), len);
            assert!(b.capacity() >= len && b.capacity() % ALIGN == 0);
            assert!(b.iter().all(|&x| x == 0));
        }
        let mut b = PieceBuf::from_slice(&[7u8; 10000]);
        let at = b.as_ptr();
        b.resize(5000);
        assert_eq!((b.len(), b.as_ptr()), (5000, at), "shrinks in place");
        b.resize(12288);
        assert_eq!(b.as_ptr(), at, "grows in place within the capacity");
        assert!(b[..10000].iter().all(|&x| x == 7) && b[10000..].iter().all(|&x| x == 0));
        b.resize(12289);
        assert_eq!(b.len(), 12289);
        assert_eq!(b.as_ptr() as usize % ALIGN, 0);
        assert!(b.iter().all(|&x| x == 0), "a larger buffer starts zeroed");
    }
}
