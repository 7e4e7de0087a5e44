//! Server-sent events: splitting an upstream byte stream into complete events.

use bytes::{Bytes, BytesMut};

use super::LlmError;

/// Largest single SSE event accepted; a stream is relayed event by event, so memory stays
/// bounded by this however long the answer.
pub const MAX_EVENT_BYTES: usize = 4 << 20;

/// Splits a byte stream into complete SSE events (each returned with its blank-line ending).
#[derive(Debug, Default)]
pub struct SseSplitter {
    buffer: BytesMut,
}

impl SseSplitter {
    /// Adds bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Bytes>, LlmError> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = find_event_end(&self.buffer) {
            events.push(self.buffer.split_to(end).freeze());
        }
        if self.buffer.len() > MAX_EVENT_BYTES {
            return Err(LlmError::BadResponse(format!(
                "a stream event exceeded {MAX_EVENT_BYTES} bytes"
            )));
        }
        Ok(events)
    }

    /// Whatever is left when the stream ends (an event without its blank line).
    pub fn finish(&mut self) -> Option<Bytes> {
        let rest = self.buffer.split().freeze();
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }
}

/// The end (exclusive) of the first complete event: after `\n\n` or `\r\n\r\n`.
fn find_event_end(buffer: &[u8]) -> Option<usize> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_across_arbitrary_byte_boundaries() {
        let stream = b"data: {\"a\":1}\n\ndata: {\"b\":2}\r\n\r\ndata: [DONE]\n\n";
        for cut in 1..stream.len() {
            let mut splitter = SseSplitter::default();
            let mut events = splitter.push(&stream[..cut]).unwrap();
            events.extend(splitter.push(&stream[cut..]).unwrap());
            assert_eq!(events.len(), 3, "cut at {cut}");
            assert_eq!(&events[2][..], b"data: [DONE]\n\n");
            assert!(splitter.finish().is_none());
        }
    }
}
