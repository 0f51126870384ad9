//! Arbitrary bytes as one SIP packet (UDP datagram or TCP stream chunk)
//! through rsipstack's parser and Mediator's per-request header handling:
//! `mediator::hostile::sip_message`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mediator::hostile::sip_message(data);
});
