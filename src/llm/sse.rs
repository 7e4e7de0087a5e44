//! Server-sent events: splitting an upstream byte stream into complete events, in one pass.
//!
//! Lines end with CRLF, LF or a lone CR, as the SSE specification allows, and an event ends
//! with a blank line. Each byte is examined once however the stream is cut into chunks (the
//! scan resumes where the previous chunk stopped), so a large event costs linear time. The
//! events are returned as the exact bytes received, terminators included: concatenated they
//! are the upstream stream, so relaying them changes nothing.

use bytes::{Bytes, BytesMut};

use super::LlmError;

/// Largest single SSE event accepted (README, "Failure behaviour"); a stream is relayed event
/// by event, so memory stays bounded by this however long the answer. Beyond it the stream
/// ends with an error event, `error.type=bad_response`.
pub const MAX_EVENT_BYTES: usize = 4 << 20;

/// Splits a byte stream into complete SSE events (each returned with its blank-line ending).
#[derive(Debug)]
pub struct SseSplitter {
    /// The bytes of the event in progress.
    buffer: BytesMut,
    /// How much of `buffer` has been scanned already.
    scanned: usize,
    /// The last byte scanned ended a line: a line terminator now is a blank line.
    at_line_start: bool,
    /// The last byte scanned was CR: an LF now completes that CRLF (it may arrive in the next
    /// chunk, and even after the event the CR ended has been handed out).
    after_cr: bool,
}

impl Default for SseSplitter {
    fn default() -> Self {
        Self {
            buffer: BytesMut::new(),
            scanned: 0,
            at_line_start: true,
            after_cr: false,
        }
    }
}

impl SseSplitter {
    /// Adds bytes; returns the events they complete, or an error once the event in progress
    /// exceeds [`MAX_EVENT_BYTES`].
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Bytes>, LlmError> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut i = self.scanned;
        while i < self.buffer.len() {
            let byte = self.buffer[i];
            i += 1;
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                continue; // the second half of a CRLF
            }
            match byte {
                b'\r' | b'\n' => {
                    self.after_cr = byte == b'\r';
                    if self.at_line_start {
                        // A blank line: the event ends here, with the LF of a CRLF if it has
                        // arrived (if not, it will lead the next event, and is skipped there).
                        if self.after_cr && self.buffer.get(i) == Some(&b'\n') {
                            self.after_cr = false;
                            i += 1;
                        }
                        if i > MAX_EVENT_BYTES {
                            return Err(too_large());
                        }
                        events.push(self.buffer.split_to(i).freeze());
                        i = 0;
                    }
                    self.at_line_start = true;
                }
                _ => self.at_line_start = false,
            }
        }
        self.scanned = i;
        if self.buffer.len() > MAX_EVENT_BYTES {
            return Err(too_large());
        }
        Ok(events)
    }

    /// Whatever is left when the stream ends (an event without its blank line).
    pub fn finish(&mut self) -> Option<Bytes> {
        self.scanned = 0;
        let rest = self.buffer.split().freeze();
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }
}

fn too_large() -> LlmError {
    LlmError::BadResponse(format!("a stream event exceeded {MAX_EVENT_BYTES} bytes"))
}

/// The lines of an event, split at CRLF, LF or a lone CR (terminators removed).
pub fn lines(event: &str) -> impl Iterator<Item = &str> {
    let mut rest = event;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
        let line = &rest[..end];
        let terminator = match rest.as_bytes().get(end..end + 2) {
            Some(b"\r\n") => 2,
            _ if end < rest.len() => 1,
            _ => 0,
        };
        rest = &rest[end + terminator..];
        Some(line)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way of cutting `stream` in two gives the same events, and they add up to it.
    fn split_every_way(stream: &[u8]) -> Vec<Vec<u8>> {
        let mut whole = SseSplitter::default();
        let expected: Vec<Vec<u8>> = whole
            .push(stream)
            .unwrap()
            .iter()
            .map(|e| e.to_vec())
            .collect();
        for cut in 1..stream.len() {
            let mut splitter = SseSplitter::default();
            let mut events = splitter.push(&stream[..cut]).unwrap();
            events.extend(splitter.push(&stream[cut..]).unwrap());
            let rest = splitter.finish();
            let mut joined: Vec<u8> = events.iter().flat_map(|e| e.to_vec()).collect();
            joined.extend(rest.as_deref().unwrap_or_default());
            assert_eq!(
                joined, stream,
                "cut at {cut}: the bytes relayed are the bytes received"
            );
            // A cut between the CR and LF of an event's last CRLF moves that LF to the start of
            // the next event; the events are otherwise the same.
            let events: Vec<Vec<u8>> = events
                .iter()
                .map(|e| e.strip_prefix(b"\n").unwrap_or(e).to_vec())
                .filter(|e| e.iter().any(|b| !b.is_ascii_whitespace()))
                .collect();
            let nonblank: Vec<Vec<u8>> = expected
                .iter()
                .map(|e| e.strip_suffix(b"\n").unwrap_or(e).to_vec())
                .filter(|e| e.iter().any(|b| !b.is_ascii_whitespace()))
                .collect();
            let events: Vec<Vec<u8>> = events
                .iter()
                .map(|e| e.strip_suffix(b"\n").unwrap_or(e).to_vec())
                .collect();
            assert_eq!(events, nonblank, "cut at {cut}");
        }
        expected
    }

    #[test]
    fn splits_events_across_arbitrary_byte_boundaries() {
        let stream = b"data: {\"a\":1}\n\ndata: {\"b\":2}\r\n\r\ndata: [DONE]\n\n";
        let events = split_every_way(stream);
        assert_eq!(events.len(), 3);
        assert_eq!(&events[2][..], b"data: [DONE]\n\n");
    }

    #[test]
    fn a_lone_cr_and_mixed_line_endings_end_lines_and_events() {
        let stream =
            b"data: 1\r\rdata: 2\ndata: 2b\r\n\r\nevent: x\rdata: 3\n\r\ndata: [DONE]\r\n\n";
        let events = split_every_way(stream);
        let texts: Vec<&str> = events
            .iter()
            .map(|e| std::str::from_utf8(e).unwrap())
            .collect();
        assert_eq!(
            texts,
            [
                "data: 1\r\r",
                "data: 2\ndata: 2b\r\n\r\n",
                "event: x\rdata: 3\n\r\n",
                "data: [DONE]\r\n\n"
            ]
        );
        let lines: Vec<&str> = lines(texts[2]).collect();
        assert_eq!(lines, ["event: x", "data: 3", ""]);
    }

    #[test]
    fn an_event_over_the_limit_is_an_error_and_one_at_it_is_not() {
        let mut splitter = SseSplitter::default();
        let body = vec![b'x'; MAX_EVENT_BYTES - 8];
        assert!(splitter.push(b"data: ").unwrap().is_empty());
        assert!(splitter.push(&body).unwrap().is_empty());
        assert_eq!(splitter.push(b"\n\n").unwrap().len(), 1);
        assert!(splitter.push(b"data: ").unwrap().is_empty());
        assert!(splitter.push(&vec![b'x'; MAX_EVENT_BYTES]).is_err());

        // Whole in one read, blank line included: still refused.
        let mut one_read = b"data: ".to_vec();
        one_read.resize(MAX_EVENT_BYTES + 10, b'x');
        one_read.extend_from_slice(b"\n\n");
        assert!(SseSplitter::default().push(&one_read).is_err());
    }
}
