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
//! push/pop. In front of the [`SMALL`] list each thread keeps up to [`LOCAL_SMALL`] blocks of its own, so
//! the data-plane worker threads (`crate::workers`), which take and drop their blocks on one thread, do not
//! contend for that lock per packet; blocks that cross threads (a worker's message to the node loop)
//! reach the shared list when the dropping thread's cache is full.
//! Control-plane payloads (IKE, SIP) are wrapped with [`PacketBuf::from_vec`] and are not pooled unless they
//! happen to be a block of a class size.

use std::cell::RefCell;
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

/// [`SMALL`] blocks each thread keeps for itself in front of the shared list.
pub const LOCAL_SMALL: usize = 256;

thread_local! {
    static LOCAL: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

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
    if size == SMALL
        && let Ok(Some(b)) = LOCAL.try_with(|l| l.borrow_mut().pop())
    {
        return b;
    }
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

/// Room kept free in front of a packet read for a GRE tunnel: the largest GRE header (16) plus the ESP
/// header and IV of transport-mode protection ([`dataplane::HEADROOM`]), so both are written in place.
pub const GRE_HEADROOM: usize = 16 + dataplane::HEADROOM;

/// Bytes of one packet (or one GRO burst) in a pooled block; derefs to the bytes. The bytes start
/// `start` bytes into the block: the room in front ([`PacketBuf::prepend`]) takes a header in place.
pub struct PacketBuf {
    block: Box<[u8]>,
    start: usize,
    len: usize,
}

impl PartialEq for PacketBuf {
    fn eq(&self, other: &PacketBuf) -> bool {
        self[..] == other[..]
    }
}

impl Eq for PacketBuf {}

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
            start: 0,
            len: 0,
        }
    }

    /// An empty buffer with `headroom` bytes free in front and at least `room` bytes after them.
    pub fn with_headroom(headroom: usize, room: usize) -> PacketBuf {
        let mut b = PacketBuf::with_room(headroom + room);
        b.start = headroom;
        b
    }

    /// A copy of `bytes` with `headroom` bytes free in front of them.
    pub fn copy_with_headroom(headroom: usize, bytes: &[u8]) -> PacketBuf {
        let mut b = PacketBuf::with_headroom(headroom, bytes.len());
        b.block[headroom..headroom + bytes.len()].copy_from_slice(bytes);
        b.len = bytes.len();
        b
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
            start: 0,
            len,
        }
    }

    /// The block from the packet's start on, to read into; then [`PacketBuf::set_len`].
    pub fn space_mut(&mut self) -> &mut [u8] {
        &mut self.block[self.start..]
    }

    /// The first `len` bytes from the packet's start are the packet (clamped to the block).
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.block.len() - self.start);
    }

    /// Bytes free in front of the packet.
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Drops the first `n` bytes (an outer header): they become headroom.
    pub fn advance(&mut self, n: usize) {
        let n = n.min(self.len);
        self.start += n;
        self.len -= n;
    }

    /// Grows the packet by `n` bytes in front, taken from the headroom, and returns them (to write a header
    /// into); `None` when the headroom is shorter.
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let start = self.start.checked_sub(n)?;
        self.start = start;
        self.len += n;
        Some(&mut self.block[start..start + n])
    }

    /// The whole block and where the packet is in it, for in-place transforms that need room around the
    /// packet (ESP seal and open); then [`PacketBuf::set_range`].
    pub fn block_mut(&mut self) -> (&mut [u8], std::ops::Range<usize>) {
        let r = self.start..self.start + self.len;
        (&mut self.block, r)
    }

    /// The packet is now `range` of the block (clamped to the block).
    pub fn set_range(&mut self, range: std::ops::Range<usize>) {
        let end = range.end.min(self.block.len());
        self.start = range.start.min(end);
        self.len = end - self.start;
    }
}

impl std::ops::Deref for PacketBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.block[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for PacketBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.block[self.start..self.start + self.len]
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
        let mut block = std::mem::take(&mut self.block);
        if block.len() == SMALL {
            // This thread's cache first (none while the thread is being torn down).
            let kept = LOCAL.try_with(|c| {
                let mut c = c.borrow_mut();
                if c.len() >= LOCAL_SMALL {
                    return Some(block);
                }
                if c.capacity() == 0 {
                    c.reserve_exact(LOCAL_SMALL);
                }
                c.push(block);
                None
            });
            match kept {
                Ok(None) => return,
                Ok(Some(b)) => block = b,
                Err(_) => return,
            }
        }
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

    #[test]
    fn headroom_takes_headers_in_place() {
        let mut p = PacketBuf::copy_with_headroom(8, &[1, 2, 3]);
        assert_eq!(p.headroom(), 8);
        p.prepend(4).unwrap().copy_from_slice(&[9, 9, 9, 9]);
        assert_eq!(&p[..], &[9, 9, 9, 9, 1, 2, 3]);
        assert!(p.prepend(5).is_none(), "only 4 bytes of headroom are left");
        assert_eq!(p.len(), 7);
        p.advance(5);
        assert_eq!(&p[..], &[2, 3]);
        let (block, r) = p.block_mut();
        assert_eq!(r, 9..11);
        block[11] = 4;
        p.set_range(9..12);
        assert_eq!(&p[..], &[2, 3, 4]);
        p.set_len(SMALL);
        assert_eq!(p.len(), SMALL - 9, "clamped to the block");
    }
}
