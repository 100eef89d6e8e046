//! Fuzzes the decoder of messages other nodes send over Redis: any bytes on a followed channel
//! must decode or be refused, never panic; the origin node is read the same way both times; and
//! a decoded publication (event name included) encodes back to one that decodes the same.
#![no_main]

use courtside_core::broker::relay::Relayed;
use courtside_core::channel::ChannelName;
use courtside_redis::codec::{decode, encode, origin_node};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(channel) = ChannelName::parse("match:fuzz") else { return };
    let origin = origin_node(data).map(str::to_string);
    if let Ok(received) = decode(channel.clone(), data) {
        assert_eq!(origin, Ok(received.origin_node.clone()));
        if let Relayed::Publication(publication) = &received.relayed {
            let message = encode(&received.origin_node, &received.relayed).expect("a decoded publication encodes");
            let again = decode(channel, &message).expect("an encoded publication decodes");
            let Relayed::Publication(again) = again.relayed else { panic!("a publication came back as presence") };
            assert_eq!(&again, publication);
        }
    }
});
