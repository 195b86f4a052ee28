//! Reusable packet buffers for the per-packet path: what a driver read (TUN packet, ESP datagram or UDP
//! GRO burst) on its way to the node, and what the node wants written ([`crate::node::Output::Udp`],
//! `RawEsp`, `Tun`).
//!
//! A [`PacketBuf`] is a fixed-size, initialised block of one of two size classes ([`SMALL`]: one packet at
//! any MTU this appliance configures; [`LARGE`]: a 64 KiB GRO burst) with the length of the bytes in it.
//! Dropping it puts the block back on its class's free list (at most [`KEEP_SMALL`] / [`KEEP_LARGE`] kept),
//! so once the lists hold the working set, reading a packet, passing it over the driver channel, sealing or
//! opening it and writing the result allocate nothing (`daemon::tests::steady_state_packet_path_does_not_allocate`).
//!
//! The free lists are process-wide behind a `Mutex` that is never held across anything but a `Vec`
//! push/pop: uncontended in the daemon (one thread runs the node loop and the readers).
//! Control-plane payloads (IKE, SIP) are wrapped with [`PacketBuf::from_vec`] and are not pooled unless they
//! happen to be a block of a class size.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// One packet: the largest inner or ESP packet at the MTUs Lifeline sets (a TUN device's MTU is its
/// tunnel's IP MTU, at most 1500 on an Ethernet underlay) with room to spare.
pub const SMALL: usize = 4096;
/// A UDP GRO burst (up to 64 KiB) or an unusually large packet.
pub const LARGE: usize = 65536;
/// Free blocks kept per class; more are freed. Covers the driver channel (1024 messages) plus the node's
/// output queue of one burst.
pub const KEEP_SMALL: usize = 4096;
pub const KEEP_LARGE: usize = 64;

/// Free blocks of one size class.
type FreeList = Mutex<Vec<Box<[u8]>>>;

static FREE_SMALL: FreeList = Mutex::new(Vec::new());
static FREE_LARGE: FreeList = Mutex::new(Vec::new());
/// Blocks allocated because a free list was empty (a warm-up or a burst above the high-water mark).
static FRESH: AtomicU64 = AtomicU64::new(0);

fn list(size: usize) -> Option<(&'static FreeList, usize)> {
    match size {
        SMALL => Some((&FREE_SMALL, KEEP_SMALL)),
        LARGE => Some((&FREE_LARGE, KEEP_LARGE)),
        _ => None,
    }
}

fn take_block(size: usize) -> Box<[u8]> {
    if let Some((l, _)) = list(size)
        && let Some(b) = l.lock().unwrap_or_else(|e| e.into_inner()).pop()
    {
        return b;
    }
    FRESH.fetch_add(1, Ordering::Relaxed);
    vec![0u8; size].into_boxed_slice()
}

/// How many blocks were allocated because a free list was empty, since the process started.
#[cfg(test)]
pub fn fresh_blocks() -> u64 {
    FRESH.load(Ordering::Relaxed)
}

/// Bytes of one packet (or one GRO burst) in a pooled block; derefs to the bytes.
pub struct PacketBuf {
    block: Box<[u8]>,
    len: usize,
}

impl PacketBuf {
    /// An empty buffer whose [`PacketBuf::space_mut`] holds at least `room` bytes.
    pub fn with_room(room: usize) -> PacketBuf {
        let size = if room <= SMALL {
            SMALL
        } else if room <= LARGE {
            LARGE
        } else {
            room
        };
        PacketBuf {
            block: take_block(size),
            len: 0,
        }
    }

    /// A buffer holding a copy of `bytes`.
    pub fn copy_from(bytes: &[u8]) -> PacketBuf {
        let mut b = PacketBuf::with_room(bytes.len());
        b.block[..bytes.len()].copy_from_slice(bytes);
        b.len = bytes.len();
        b
    }

    /// Wrap an owned payload (control plane: IKE, SIP). Not copied.
    pub fn from_vec(v: Vec<u8>) -> PacketBuf {
        let len = v.len();
        PacketBuf {
            block: v.into_boxed_slice(),
            len,
        }
    }

    /// The whole block, to read into; then [`PacketBuf::set_len`].
    pub fn space_mut(&mut self) -> &mut [u8] {
        &mut self.block
    }

    /// The first `len` bytes of the block are the packet (clamped to the block).
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.block.len());
    }
}

impl std::ops::Deref for PacketBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.block[..self.len]
    }
}

impl std::ops::DerefMut for PacketBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.block[..self.len]
    }
}

impl std::fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PacketBuf({} bytes)", self.len)
    }
}

impl Drop for PacketBuf {
    fn drop(&mut self) {
        let Some((l, keep)) = list(self.block.len()) else {
            return;
        };
        let block = std::mem::take(&mut self.block);
        let mut free = l.lock().unwrap_or_else(|e| e.into_inner());
        if free.capacity() == 0 {
            free.reserve_exact(keep);
        }
        if free.len() < keep {
            free.push(block);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_come_back_and_classes_fit() {
        let a = PacketBuf::copy_from(&[1, 2, 3]);
        assert_eq!(&a[..], &[1, 2, 3]);
        assert_eq!(a.block.len(), SMALL);
        let big = PacketBuf::with_room(SMALL + 1);
        assert_eq!(big.block.len(), LARGE);
        assert_eq!(big.len(), 0);
        let huge = PacketBuf::with_room(LARGE + 1);
        assert_eq!(huge.block.len(), LARGE + 1);
        drop((a, big, huge));
        let mut b = PacketBuf::with_room(10);
        b.space_mut()[..2].copy_from_slice(&[9, 9]);
        b.set_len(SMALL + 100);
        assert_eq!(b.len(), SMALL, "clamped to the block");
        let v = PacketBuf::from_vec(vec![5; 7]);
        assert_eq!(&v[..], &[5; 7]);
    }
}
