//! Arbitrary text as an SDP offer (from A) and answer (from B) through
//! Mediator's offer/answer code: `mediator::hostile::sdp_offer_answer`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A SIP body reaches the SDP code only as UTF-8 (`sip::message::sdp_body`).
    if let Ok(text) = std::str::from_utf8(data) {
        mediator::hostile::sdp_offer_answer(text);
    }
});
