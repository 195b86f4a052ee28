//! Message framing for stream transports (TCP, TLS): the driver pushes received bytes and takes
//! complete messages out, then hands each to `handle_input` like a datagram.
//!
//! Sans-io; the socket (and the TLS session) belong to the driver.

//= https://www.rfc-editor.org/rfc/rfc3261#section-18.3
//# In the case of stream-oriented transports such as TCP, the Content-Length header field
//# indicates the size of the body. All SIP implementations MUST use the Content-Length header
//# field for messages sent over stream-oriented transports.

use crate::msg::MAX_MESSAGE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("message larger than the framing limit")]
    TooLarge,
    #[error("no valid Content-Length on a stream transport")]
    ContentLength,
}

/// Reassembles SIP messages from a byte stream. After an error the stream is unusable (close
/// the connection).
#[derive(Debug, Default, Clone)]
pub struct StreamFramer {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for the end of the header (so a peer that sends one byte
    /// at a time costs linear, not quadratic, work).
    scanned: usize,
    /// The whole message's length once its header is complete.
    want: Option<usize>,
}

impl StreamFramer {
    pub fn new() -> StreamFramer {
        StreamFramer::default()
    }

    /// Append received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes held that do not yet form a message.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete message, if one is buffered. CRLF keep-alives between messages
    /// (RFC 5626 §3.5.1) are skipped.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let total = match self.want {
            Some(total) => total,
            None => {
                let lead = self
                    .buf
                    .iter()
                    .take_while(|b| **b == b'\r' || **b == b'\n')
                    .count();
                if lead > 0 {
                    self.buf.drain(..lead);
                    self.scanned = 0;
                }
                let from = self.scanned.saturating_sub(3);
                let Some(head_end) = self.buf[from..]
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map(|p| p + from)
                else {
                    self.scanned = self.buf.len();
                    if self.buf.len() > MAX_MESSAGE {
                        return Err(FrameError::TooLarge);
                    }
                    return Ok(None);
                };
                let total = Self::message_len(&self.buf[..head_end])?
                    .checked_add(head_end + 4)
                    .ok_or(FrameError::TooLarge)?;
                if total > MAX_MESSAGE {
                    return Err(FrameError::TooLarge);
                }
                self.want = Some(total);
                total
            }
        };
        if self.buf.len() < total {
            return Ok(None);
        }
        self.want = None;
        self.scanned = 0;
        let rest = self.buf.split_off(total);
        Ok(Some(std::mem::replace(&mut self.buf, rest)))
    }

    /// The Content-Length of a header block (start line and header fields, without the blank line).
    fn message_len(head: &[u8]) -> Result<usize, FrameError> {
        let head = String::from_utf8_lossy(head);
        let mut cl = None;
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim();
            if name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("l") {
                let v = value.trim();
                if cl.is_some() || v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(FrameError::ContentLength);
                }
                cl = Some(v.parse::<usize>().map_err(|_| FrameError::ContentLength)?);
            }
        }
        cl.ok_or(FrameError::ContentLength)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M1: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 5\r\n\r\nhello";
    const M2: &[u8] = b"SIP/2.0 200 OK\r\nl: 0\r\n\r\n";

    #[test]
    fn splits_two_messages_from_one_read_and_skips_keepalives() {
        let mut f = StreamFramer::new();
        f.push(b"\r\n\r\n");
        f.push(M1);
        f.push(b"\r\n");
        f.push(M2);
        assert_eq!(f.next_message().unwrap().as_deref(), Some(M1));
        assert_eq!(f.next_message().unwrap().as_deref(), Some(M2));
        assert_eq!(f.next_message().unwrap(), None);
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn reassembles_byte_by_byte() {
        let mut f = StreamFramer::new();
        let mut got = Vec::new();
        for b in M1.iter().chain(M2) {
            f.push(&[*b]);
            while let Some(m) = f.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![M1.to_vec(), M2.to_vec()]);
    }

    #[test]
    fn missing_or_duplicate_content_length_is_an_error() {
        let mut f = StreamFramer::new();
        f.push(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n");
        assert_eq!(f.next_message(), Err(FrameError::ContentLength));
        let mut f = StreamFramer::new();
        f.push(b"SIP/2.0 200 OK\r\nContent-Length: 1\r\nl: 1\r\n\r\nx");
        assert_eq!(f.next_message(), Err(FrameError::ContentLength));
        let mut f = StreamFramer::new();
        f.push(b"SIP/2.0 200 OK\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(f.next_message(), Err(FrameError::ContentLength));
    }

    #[test]
    fn oversize_is_refused() {
        let mut f = StreamFramer::new();
        f.push(b"SIP/2.0 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n");
        assert!(f.next_message().is_err());
        let mut f = StreamFramer::new();
        f.push(&vec![b'a'; MAX_MESSAGE + 1]);
        assert_eq!(f.next_message(), Err(FrameError::TooLarge));
    }
}
