#!/usr/bin/env python3
"""Writes assets/moh.wav, Mediator's default music on hold: a 12-second
synthesized melody (8 kHz, 16-bit mono PCM), generated here from nothing
but this script. Dedicated to the public domain (CC0 1.0): no rights
reserved. Run: python3 scripts/make-moh.py [OUT]"""
import math
import struct
import sys
import wave

RATE = 8000
BPM = 100
BEAT = 60.0 / BPM
# A calm I-vi-IV-V progression in C major, arpeggiated, with a melody on top.
CHORDS = [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)]
MELODY = [72, 71, 69, 67, 69, 72, 71, 67, 65, 67, 69, 71, 74, 72, 71, 72]


def hz(note):
    return 440.0 * 2 ** ((note - 69) / 12.0)


def tone(freq, secs, amp):
    n = int(secs * RATE)
    out = []
    for i in range(n):
        t = i / RATE
        env = min(1.0, i / (0.02 * RATE)) * math.exp(-3.0 * t / secs)
        v = math.sin(2 * math.pi * freq * t) + 0.3 * math.sin(4 * math.pi * freq * t)
        out.append(amp * env * v)
    return out


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "assets/moh.wav"
    total = int(len(CHORDS) * 4 * BEAT * RATE * 2)
    mix = [0.0] * total
    pos = 0
    for rep in range(2):
        for chord in CHORDS:
            for k in range(4):
                note = chord[k % 3] - 12
                for j, v in enumerate(tone(hz(note), BEAT, 0.18)):
                    if pos + j < total:
                        mix[pos + j] += v
                pos += int(BEAT * RATE)
    pos = 0
    for note in MELODY * 1:
        for j, v in enumerate(tone(hz(note), 2 * BEAT, 0.22)):
            if pos + j < total:
                mix[pos + j] += v
        pos += int(2 * BEAT * RATE)
    peak = max(abs(v) for v in mix) or 1.0
    data = b"".join(struct.pack("<h", int(v / peak * 0.6 * 32767)) for v in mix)
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(data)


if __name__ == "__main__":
    main()
