#!/usr/bin/env python3
"""Writes assets/confirm-prompt.wav, the default prompt a dialout plays to
stage one when `use_call_confirmation` is set and its own audio cannot be
used: "Press 1 to accept this call." spoken by espeak-ng (GPL-3 program;
its output is not covered by the program's licence), resampled here to
8 kHz, 16-bit mono PCM (a windowed-sinc low-pass at 3.6 kHz, then
linear interpolation) and normalised to -3 dBFS.
Needs espeak-ng (apt-get install -y espeak-ng).
Run: python3 scripts/make-prompt.py [OUT]"""
import array
import io
import math
import subprocess
import sys
import wave

TEXT = "Press 1 to accept this call."
RATE = 8000


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "assets/confirm-prompt.wav"
    raw = subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "150", "--stdout", TEXT],
        check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(raw)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, "espeak-ng: 16-bit mono expected"
        rate = w.getframerate()
        src = array.array("h", w.readframes(w.getnframes()))
    # Low-pass below the new Nyquist frequency so nothing aliases.
    taps, fc = 63, 3600.0 / rate
    h = []
    for k in range(taps):
        m = k - (taps - 1) / 2
        sinc = 2 * fc if m == 0 else math.sin(2 * math.pi * fc * m) / (math.pi * m)
        h.append(sinc * (0.54 - 0.46 * math.cos(2 * math.pi * k / (taps - 1))))
    half = taps // 2
    src = [sum(h[k] * src[i + k - half] for k in range(taps) if 0 <= i + k - half < len(src))
           for i in range(len(src))]
    n = int(len(src) * RATE / rate)
    res = []
    for i in range(n):
        x = i * rate / RATE
        j = int(x)
        f = x - j
        a = src[j]
        b = src[j + 1] if j + 1 < len(src) else a
        res.append(a + (b - a) * f)
    peak = max(1.0, max(abs(v) for v in res))
    gain = 0.707 * 32767 / peak
    pcm = array.array("h", (int(max(-32768, min(32767, v * gain))) for v in res))
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    print(f"{out}: {n / RATE:.2f} s at {RATE} Hz")


if __name__ == "__main__":
    main()
