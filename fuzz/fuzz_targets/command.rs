//! Fuzzes the protocol v1 command decoder: any bytes must decode or be refused, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for frame in text.split('\n') {
            let _ = courtside_server::protocol::decode_command(frame);
        }
    }
});
