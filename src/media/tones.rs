//! Ring-back tones by the destination's country (ITU-T E.180 supplement 2
//! "Various tones used in national networks"), generated at 8 kHz.

use super::audio::RATE;

/// A ring-back tone: one or two frequencies summed, switched on and off
/// by a repeating cadence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneSpec {
    /// Frequencies in Hz; a second of 0.0 means a single tone.
    pub freqs: [f32; 2],
    /// Alternating on/off durations in milliseconds, starting with on;
    /// repeats.
    pub cadence: &'static [u32],
}

/// North American (NANP) ring-back: 440 + 480 Hz, 2 s on, 4 s off.
pub const NANP: ToneSpec = ToneSpec {
    freqs: [440.0, 480.0],
    cadence: &[2000, 4000],
};

/// United Kingdom ring-back: 400 + 450 Hz, 0.4 s on, 0.2 s off, 0.4 s on,
/// 2 s off.
pub const UK: ToneSpec = ToneSpec {
    freqs: [400.0, 450.0],
    cadence: &[400, 200, 400, 2000],
};

/// The ITU-T recommended ring-back (most of continental Europe): 425 Hz,
/// 1 s on, 4 s off. Also used where the table has no entry.
pub const ITU: ToneSpec = ToneSpec {
    freqs: [425.0, 0.0],
    cadence: &[1000, 4000],
};

/// Countries (ISO 3166 alpha-2) whose ring-back differs from [`ITU`].
const TABLE: &[(&str, ToneSpec)] = &[
    ("US", NANP),
    ("CA", NANP),
    ("PR", NANP),
    ("GB", UK),
    ("IE", UK),
    (
        "AU",
        ToneSpec {
            freqs: [400.0, 450.0],
            cadence: &[400, 200, 400, 2000],
        },
    ),
    (
        "NZ",
        ToneSpec {
            freqs: [400.0, 450.0],
            cadence: &[400, 200, 400, 2000],
        },
    ),
    (
        "FR",
        ToneSpec {
            freqs: [440.0, 0.0],
            cadence: &[1500, 3500],
        },
    ),
    (
        "JP",
        ToneSpec {
            freqs: [400.0, 0.0],
            cadence: &[1000, 2000],
        },
    ),
    (
        "IN",
        ToneSpec {
            freqs: [400.0, 425.0],
            cadence: &[400, 200, 400, 2000],
        },
    ),
];

/// The ring-back for a destination number (E.164 digits, no `+`): by its
/// country, [`ITU`] when unknown.
pub fn for_number(e164: &str) -> ToneSpec {
    let region = phonenumber::parse(None, format!("+{e164}"))
        .ok()
        .and_then(|n| n.country().id())
        .map(|id| id.as_ref().to_string());
    for_region(region.as_deref().unwrap_or(""))
}

/// The ring-back for an ISO 3166 alpha-2 country code.
pub fn for_region(region: &str) -> ToneSpec {
    TABLE
        .iter()
        .find(|(r, _)| r.eq_ignore_ascii_case(region))
        .map(|(_, t)| *t)
        .unwrap_or(ITU)
}

/// Amplitude of each frequency, as a fraction of full scale (about
/// -19 dBm0 each, in the range national tone plans give).
const AMPLITUDE: f32 = 0.11;

/// Generates a tone's samples, frame by frame, without end.
#[derive(Debug, Clone)]
pub struct ToneGen {
    spec: ToneSpec,
    /// Samples produced so far.
    n: u64,
    period: u64,
}

impl ToneGen {
    /// A generator starting at the beginning of the cadence (tone on).
    pub fn new(spec: ToneSpec) -> ToneGen {
        let period = spec.cadence.iter().map(|&ms| ms_samples(ms)).sum::<u64>();
        ToneGen {
            spec,
            n: 0,
            period: period.max(1),
        }
    }

    fn on_at(&self, n: u64) -> bool {
        let mut t = n % self.period;
        for (i, &ms) in self.spec.cadence.iter().enumerate() {
            let len = ms_samples(ms);
            if t < len {
                return i % 2 == 0;
            }
            t -= len;
        }
        false
    }

    /// Fills `out` with the next samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        let tau = 2.0 * std::f64::consts::PI / f64::from(RATE);
        for s in out.iter_mut() {
            let n = self.n;
            self.n += 1;
            if !self.on_at(n) {
                *s = 0;
                continue;
            }
            let t = (n % (u64::from(RATE) * 100)) as f64 * tau;
            let mut v = (t * f64::from(self.spec.freqs[0])).sin();
            if self.spec.freqs[1] > 0.0 {
                v += (t * f64::from(self.spec.freqs[1])).sin();
            }
            *s = (v * f64::from(AMPLITUDE) * 32767.0) as i16;
        }
    }
}

fn ms_samples(ms: u32) -> u64 {
    u64::from(ms) * u64::from(RATE) / 1000
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Power of `hz` in `x` (Goertzel), normalised by length; shared
    /// by the media unit tests.
    pub(crate) fn power(x: &[i16], hz: f32) -> f32 {
        let w = 2.0 * std::f32::consts::PI * hz / RATE as f32;
        let c = 2.0 * w.cos();
        let (mut s1, mut s2) = (0f32, 0f32);
        for &v in x {
            let s = v as f32 / 32768.0 + c * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        (s1 * s1 + s2 * s2 - c * s1 * s2) / (x.len() as f32).powi(2)
    }

    #[test]
    fn country_table() {
        assert_eq!(for_number("15162065300"), NANP);
        assert_eq!(for_number("442079460000"), UK);
        assert_eq!(for_number("4930123456"), ITU);
        assert_eq!(for_number("not a number"), ITU);
        assert_eq!(for_region("fr").freqs, [440.0, 0.0]);
    }

    /// On/off per 20 ms frame over one period, and the frequencies.
    fn frames(spec: ToneSpec) -> Vec<bool> {
        let mut g = ToneGen::new(spec);
        let total: u32 = spec.cadence.iter().sum();
        let mut on = Vec::new();
        for _ in 0..total / 20 {
            let mut f = [0i16; 160];
            g.fill(&mut f);
            on.push(f.iter().any(|&s| s != 0));
            if on.len() == 5 {
                for hz in spec.freqs.iter().filter(|&&h| h > 0.0) {
                    assert!(power(&f, *hz) > 1e-4, "{hz} Hz present");
                }
                assert!(power(&f, 1000.0) < 1e-5);
            }
        }
        on
    }

    #[test]
    fn nanp_cadence() {
        let on = frames(NANP);
        assert_eq!(on.len(), 300);
        assert!(on[..100].iter().all(|&b| b));
        assert!(on[100..].iter().all(|&b| !b));
    }

    #[test]
    fn uk_cadence() {
        let on = frames(UK);
        assert_eq!(on.len(), 150);
        assert!(on[..20].iter().all(|&b| b));
        assert!(on[20..30].iter().all(|&b| !b));
        assert!(on[30..50].iter().all(|&b| b));
        assert!(on[50..].iter().all(|&b| !b));
    }
}
