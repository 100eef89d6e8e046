//! Fuzzes the Socket.IO transport's decoders with whatever a client may send: Engine.IO packets
//! and polling payloads, Socket.IO packets, and the resume position sent back on reconnect.
//! Nothing may panic; a resume position that decodes re-encodes to the same text.
#![no_main]

use courtside_server::transport::socketio::{eio, recovery, sio};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = eio::decode_payload(text);
    if let Ok(eio::EioPacket::Message(message)) = eio::EioPacket::decode(text) {
        let _ = sio::SioPacket::decode(message);
    }
    let _ = sio::SioPacket::decode(text);
    if let Ok(positions) = recovery::decode(text, 256) {
        let mut encoded = Vec::new();
        recovery::encode(&mut encoded, positions.iter().map(|(channel, position)| (channel, position)));
        let again = recovery::decode(std::str::from_utf8(&encoded).expect("ASCII"), 256).expect("re-decodes");
        assert_eq!(again, positions);
    }
});
