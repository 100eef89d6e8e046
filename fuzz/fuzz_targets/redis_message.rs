//! Fuzzes the decoder of messages other nodes send over Redis: any bytes on a followed channel
//! must decode or be refused, never panic; and the origin node is read the same way both times.
#![no_main]

use courtside_core::channel::ChannelName;
use courtside_redis::codec::{decode, origin_node};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(channel) = ChannelName::parse("match:fuzz") else { return };
    let origin = origin_node(data).map(str::to_string);
    if let Ok(received) = decode(channel, data) {
        assert_eq!(origin, Ok(received.origin_node));
    }
});
