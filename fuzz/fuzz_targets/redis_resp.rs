//! Fuzzes the RESP2 frame parser of the Redis broker's receiving connection: whatever Redis (or
//! something posing as it) sends, parsing must not panic, never claim more bytes than it was
//! given, and parse the same frame again from exactly the bytes it used.
#![no_main]

use courtside_redis::resp::parse_frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((frame, used))) = parse_frame(data) {
        assert!(used <= data.len());
        assert_eq!(parse_frame(&data[..used]), Ok(Some((frame, used))));
    }
});
