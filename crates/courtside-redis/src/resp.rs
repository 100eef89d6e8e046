//! Reading RESP2 frames, the replies a Redis connection in subscribed mode receives: arrays of
//! bulk strings and integers (`message`, `smessage`, subscription confirmations, `pong`), simple
//! strings and errors. Incremental: [`parse_frame`] reports `None` until a whole frame is
//! buffered, so a reader can feed it whatever the socket returned.
//!
//! Every length is checked before anything is allocated for it, and nesting is bounded: bytes
//! from the network never make the parser panic, allocate without limit or recurse deeply.

use bytes::Bytes;

/// Deepest array nesting accepted (subscribed mode uses one level).
const NESTING_MAX: usize = 4;
/// Longest bulk string accepted: a publication is far smaller (the server caps messages).
pub const BULK_LEN_MAX: usize = 64 * 1024 * 1024;
/// Most elements in one array.
const ARRAY_LEN_MAX: usize = 1024 * 1024;
/// Longest line (type byte, number, simple string or error text) before its CRLF.
const LINE_LEN_MAX: usize = 64 * 1024;

/// One RESP2 value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Bytes),
    Null,
    Array(Vec<Frame>),
}

/// Why the bytes are not RESP2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    #[error("unknown RESP type byte {0:#04x}")]
    UnknownType(u8),
    #[error("a line is longer than {LINE_LEN_MAX} bytes")]
    LineTooLong,
    #[error("a length or integer is not a number")]
    BadNumber,
    #[error("a bulk string of {0} bytes is over the limit")]
    BulkTooLong(i64),
    #[error("an array of {0} elements is over the limit")]
    ArrayTooLong(i64),
    #[error("arrays nested deeper than {NESTING_MAX}")]
    TooDeep,
    #[error("a bulk string does not end with CRLF")]
    MissingCrlf,
    #[error("a simple string or error is not UTF-8")]
    NotUtf8,
}

/// Parses the frame at the start of `buffer`: `Ok(Some((frame, bytes used)))`, or `Ok(None)`
/// if more bytes are needed.
pub fn parse_frame(buffer: &[u8]) -> Result<Option<(Frame, usize)>, RespError> {
    let mut parser = Parser { buffer, at: 0 };
    match parser.frame(0)? {
        Some(frame) => Ok(Some((frame, parser.at))),
        None => Ok(None),
    }
}

struct Parser<'a> {
    buffer: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    /// The next line without its CRLF, or `None` if it is not all buffered yet.
    fn line(&mut self) -> Result<Option<&[u8]>, RespError> {
        let rest = &self.buffer[self.at..];
        let window = &rest[..rest.len().min(LINE_LEN_MAX + 2)];
        match window.windows(2).position(|pair| pair == b"\r\n") {
            Some(end) => {
                self.at += end + 2;
                Ok(Some(&rest[..end]))
            }
            None if window.len() > LINE_LEN_MAX + 1 => Err(RespError::LineTooLong),
            None => Ok(None),
        }
    }

    fn number(line: &[u8]) -> Result<i64, RespError> {
        std::str::from_utf8(line).ok().and_then(|text| text.parse().ok()).ok_or(RespError::BadNumber)
    }

    fn text(line: &[u8]) -> Result<String, RespError> {
        std::str::from_utf8(line).map(str::to_string).map_err(|_| RespError::NotUtf8)
    }

    fn frame(&mut self, depth: usize) -> Result<Option<Frame>, RespError> {
        let Some(&kind) = self.buffer.get(self.at) else { return Ok(None) };
        self.at += 1;
        let Some(line) = self.line()? else { return Ok(None) };
        match kind {
            b'+' => Ok(Some(Frame::Simple(Self::text(line)?))),
            b'-' => Ok(Some(Frame::Error(Self::text(line)?))),
            b':' => Ok(Some(Frame::Integer(Self::number(line)?))),
            b'$' => {
                let len = Self::number(line)?;
                if len == -1 {
                    return Ok(Some(Frame::Null));
                }
                let len = usize::try_from(len).ok().filter(|len| *len <= BULK_LEN_MAX).ok_or(RespError::BulkTooLong(len))?;
                let rest = &self.buffer[self.at..];
                if rest.len() < len + 2 {
                    return Ok(None);
                }
                if &rest[len..len + 2] != b"\r\n" {
                    return Err(RespError::MissingCrlf);
                }
                self.at += len + 2;
                Ok(Some(Frame::Bulk(Bytes::copy_from_slice(&rest[..len]))))
            }
            b'*' => {
                let len = Self::number(line)?;
                if len == -1 {
                    return Ok(Some(Frame::Null));
                }
                let len =
                    usize::try_from(len).ok().filter(|len| *len <= ARRAY_LEN_MAX).ok_or(RespError::ArrayTooLong(len))?;
                if depth >= NESTING_MAX {
                    return Err(RespError::TooDeep);
                }
                // Each element takes at least 3 bytes: never reserve more than the buffer backs.
                let mut elements = Vec::with_capacity(len.min((self.buffer.len() - self.at) / 3));
                for _ in 0..len {
                    match self.frame(depth + 1)? {
                        Some(element) => elements.push(element),
                        None => return Ok(None),
                    }
                }
                Ok(Some(Frame::Array(elements)))
            }
            other => Err(RespError::UnknownType(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn subscribed_mode_replies_parse() {
        let message = b"*3\r\n$8\r\nsmessage\r\n$5\r\ncs:ch\r\n$5\r\n\x01\r\n\x00\xff\r\n";
        let (frame, used) = parse_frame(message).unwrap().unwrap();
        assert_eq!(used, message.len());
        assert_eq!(
            frame,
            Frame::Array(vec![bulk("smessage"), bulk("cs:ch"), Frame::Bulk(Bytes::from_static(b"\x01\r\n\x00\xff"))])
        );
        let confirmation = b"*3\r\n$10\r\nssubscribe\r\n$2\r\nch\r\n:1\r\n";
        assert_eq!(
            parse_frame(confirmation).unwrap(),
            Some((Frame::Array(vec![bulk("ssubscribe"), bulk("ch"), Frame::Integer(1)]), confirmation.len()))
        );
        assert_eq!(parse_frame(b"-ERR unknown command 'SSUBSCRIBE'\r\n").unwrap().unwrap().0, Frame::Error("ERR unknown command 'SSUBSCRIBE'".into()));
        assert_eq!(parse_frame(b"+OK\r\n").unwrap().unwrap().0, Frame::Simple("OK".into()));
        assert_eq!(parse_frame(b"$-1\r\n").unwrap().unwrap().0, Frame::Null);
    }

    #[test]
    fn every_prefix_of_a_frame_asks_for_more() {
        let message = b"*3\r\n$7\r\nmessage\r\n$5\r\ncs:ch\r\n$3\r\nabc\r\n";
        for len in 0..message.len() {
            assert_eq!(parse_frame(&message[..len]), Ok(None), "cut at {len}");
        }
        let mut two = message.to_vec();
        two.extend_from_slice(b"+PONG\r\n");
        let (_, used) = parse_frame(&two).unwrap().unwrap();
        assert_eq!(parse_frame(&two[used..]).unwrap().unwrap().0, Frame::Simple("PONG".into()));
    }

    #[test]
    fn bad_input_is_refused_without_allocating() {
        assert_eq!(parse_frame(b"?x\r\n"), Err(RespError::UnknownType(b'?')));
        assert_eq!(parse_frame(b"$abc\r\n"), Err(RespError::BadNumber));
        assert_eq!(parse_frame(b"$99999999999\r\n"), Err(RespError::BulkTooLong(99_999_999_999)));
        assert_eq!(parse_frame(b"*-5\r\n"), Err(RespError::ArrayTooLong(-5)));
        assert_eq!(parse_frame(b"*4000000000\r\n"), Err(RespError::ArrayTooLong(4_000_000_000)));
        assert_eq!(parse_frame(b"$3\r\nabcde"), Err(RespError::MissingCrlf));
        assert_eq!(parse_frame(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"), Err(RespError::TooDeep));
        assert_eq!(parse_frame(&vec![b'+'; LINE_LEN_MAX + 10]), Err(RespError::LineTooLong));
        // A huge announced array with few bytes behind it reserves little and waits.
        assert_eq!(parse_frame(b"*1000000\r\n:1\r\n"), Ok(None));
    }
}
