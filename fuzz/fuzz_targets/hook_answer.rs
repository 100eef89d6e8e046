//! Fuzzes the reader of an app hook's answer (what the app's backend sends back): any bytes must
//! be read as an answer or refused with a reason, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = courtside_server::hooks::Answer::parse(data);
});
