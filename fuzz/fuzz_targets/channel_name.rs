//! Fuzzes channel name validation: accepted names round-trip and have a namespace.
#![no_main]

use courtside_core::ChannelName;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(name) = ChannelName::parse(text) {
            assert_eq!(name.as_str(), text);
            assert!(!name.namespace().is_empty());
        }
    }
});
