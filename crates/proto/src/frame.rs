//! Client-port framing: `int32 len` then `len` bytes. Two phases, as mini-redis does it:
//! [`check`] says whether a whole frame is buffered (or that the length is unacceptable),
//! then the caller splits it off and parses it. Needing more bytes is not an error.

/// Default `jute.maxbuffer`: the largest frame body ZooKeeper accepts (0xfffff bytes).
pub const JUTE_MAXBUFFER_BYTES_DEFAULT: usize = 0xfffff;

/// Four-letter words are recognised only as the first 4 bytes of a fresh connection.
pub const FOUR_LETTER_WORD_BYTES: usize = 4;

/// Outcome of looking at the front of a receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameCheck {
    /// Not enough bytes for the length prefix or the body yet.
    Incomplete,
    /// A whole frame is present: the body is `buf[4..4 + len]`.
    Complete { len: usize },
    /// The length is negative or above the limit; ZooKeeper closes the connection.
    TooLarge { len: i64 },
}

/// Looks at `buf` and reports whether a whole frame of at most `max_bytes` is present.
pub fn check(buf: &[u8], max_bytes: usize) -> FrameCheck {
    if buf.len() < 4 {
        return FrameCheck::Incomplete;
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 0 || len as usize > max_bytes {
        return FrameCheck::TooLarge { len: len as i64 };
    }
    let len = len as usize;
    if buf.len() < 4 + len {
        FrameCheck::Incomplete
    } else {
        FrameCheck::Complete { len }
    }
}
