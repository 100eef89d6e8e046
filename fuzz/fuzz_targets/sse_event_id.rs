//! Fuzzes the SSE `Last-Event-ID` parser: whatever a client sends back, parsing must not panic,
//! and what parses re-encodes to an id that parses to the same positions.
#![no_main]

use courtside_server::transport::sse::{format_event_id, parse_event_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let channels = text.split(',').count();
        if let Some(positions) = parse_event_id(text, channels) {
            assert_eq!(parse_event_id(&format_event_id(&positions), channels), Some(positions));
        }
    }
});
