//! DTMF digits as RFC 4733 telephone-events: the `dtmf` attribute turned
//! into a schedule of 20 ms packet slots.
//!
//! Each digit is one event (one RTP timestamp, RFC 4733 §2.5.1.1) sent for
//! [`TONE_MS`]: a packet per slot with a growing duration, the first with
//! the marker bit; then three end packets (E bit, final duration; §2.5.1.4
//! retransmits the end) and silence until [`DIGIT_MS`] has passed. A `,` is
//! [`PAUSE_MS`] of silence.

/// Slot length in milliseconds (one packet per slot, `ptime` 20).
pub const SLOT_MS: u32 = 20;
/// How long each digit's tone lasts.
pub const TONE_MS: u32 = 100;
/// From one digit's start to the next one's.
pub const DIGIT_MS: u32 = 200;
/// A `,` in the attribute.
pub const PAUSE_MS: u32 = 500;
/// Volume field of the events: the power level is -10 dBm0 (RFC 4733
/// §2.3.4 gives 0 to -63; DTMF senders use about -10).
pub const VOLUME: u8 = 10;
/// End packets sent per event.
pub const END_PACKETS: usize = 3;

/// Errors of the `dtmf` attribute.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DtmfError {
    /// A character that is no DTMF digit nor `,`.
    #[error("`{0}` is not a DTMF digit: use 0-9, *, #, A-D and `,` for a 0.5 s pause")]
    BadChar(char),
}

/// The RFC 4733 §3.2 event code of a DTMF digit.
pub fn event_code(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(12 + (c as u8 - b'A')),
        'a'..='d' => Some(12 + (c as u8 - b'a')),
        _ => None,
    }
}

/// One 20 ms slot of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A telephone-event packet: its 4-byte payload (RFC 4733 §2.3), and
    /// whether it starts a new event (new timestamp, marker bit).
    Event {
        /// Event, E bit + volume, duration (network order).
        payload: [u8; 4],
        /// First packet of the event.
        first: bool,
    },
    /// No event: the stream carries silence.
    Gap,
}

/// Builds the slot schedule of a `dtmf` value.
pub fn schedule(digits: &str) -> Result<Vec<Slot>, DtmfError> {
    let samples_per_slot = 8 * SLOT_MS; // 8 kHz clock
    let mut out = Vec::new();
    for c in digits.chars() {
        if c == ',' {
            out.extend(std::iter::repeat_n(
                Slot::Gap,
                (PAUSE_MS / SLOT_MS) as usize,
            ));
            continue;
        }
        let code = event_code(c).ok_or(DtmfError::BadChar(c))?;
        let on = (TONE_MS / SLOT_MS) as usize;
        for i in 0..on {
            let d = (samples_per_slot * (i as u32 + 1)) as u16;
            out.push(Slot::Event {
                payload: payload(code, false, d),
                first: i == 0,
            });
        }
        let total = (samples_per_slot * on as u32) as u16;
        for _ in 0..END_PACKETS {
            out.push(Slot::Event {
                payload: payload(code, true, total),
                first: false,
            });
        }
        let gap = (DIGIT_MS / SLOT_MS) as usize - on - END_PACKETS;
        out.extend(std::iter::repeat_n(Slot::Gap, gap));
    }
    Ok(out)
}

/// The RFC 4733 §2.3 payload: event, E bit, R = 0, volume, duration.
fn payload(code: u8, end: bool, duration: u16) -> [u8; 4] {
    let d = duration.to_be_bytes();
    [code, if end { 0x80 } else { 0 } | VOLUME, d[0], d[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let all = "0123456789*#ABCD";
        let codes: Vec<u8> = all.chars().filter_map(event_code).collect();
        assert_eq!(codes, (0..16).collect::<Vec<u8>>());
        assert_eq!(event_code('d'), Some(15));
        assert_eq!(event_code('E'), None);
        assert_eq!(schedule("12x"), Err(DtmfError::BadChar('x')));
    }

    #[test]
    fn one_digit() {
        let s = schedule("5").expect("valid");
        assert_eq!(s.len(), (DIGIT_MS / SLOT_MS) as usize);
        let events: Vec<([u8; 4], bool)> = s
            .iter()
            .filter_map(|x| match x {
                Slot::Event { payload, first } => Some((*payload, *first)),
                Slot::Gap => None,
            })
            .collect();
        assert_eq!(events.len(), 5 + END_PACKETS);
        assert!(events[0].1 && events[1..].iter().all(|e| !e.1));
        let durations: Vec<u16> = events
            .iter()
            .map(|(p, _)| u16::from_be_bytes([p[2], p[3]]))
            .collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800, 800]);
        for (i, (p, _)) in events.iter().enumerate() {
            assert_eq!(p[0], 5);
            assert_eq!(p[1] & 0x3f, VOLUME);
            assert_eq!(p[1] & 0x40, 0, "R bit clear");
            assert_eq!(p[1] & 0x80 != 0, i >= 5, "E bit on the end packets only");
        }
    }

    #[test]
    fn pauses() {
        let s = schedule(",,1").expect("valid");
        assert!(s[..50].iter().all(|x| *x == Slot::Gap), "two commas: 1 s");
        assert!(matches!(s[50], Slot::Event { first: true, .. }));
        assert_eq!(s.len(), 60);
        assert_eq!(schedule("").expect("empty"), vec![]);
    }
}
