#!/usr/bin/env python3
"""End-to-end tests of Mediator's own media (issue 5): announcements,
ring-back, silence, music on hold, passthrough and DTMF, checked by what
the receiving side hears, decoded here independently of Mediator's code.

A scripted caller (A) and callee (B, at the trunk address) speak SIP over
UDP and record the RTP they receive; a local HTTP server serves the audio
sources (WAV 44.1 kHz stereo, MP3, a 404, one over the size cap, one that
never answers); one URL points at a private address that config refuses.
G.711 is decoded here, the ring-back is checked with Goertzel filters and
its cadence, the announcement by correlation with the source signal, DTMF
by parsing the RFC 4733 events.

Usage: media_test.py MEDIATOR_BIN [ONLY_REGEX]
Ports (all 127.0.0.1, see docs/media.md): Mediator SIP 36060, REST 36088,
relay RTP 36100-36499; caller SIP 36070 and RTP 36600; callee SIP 36080 and
RTP 36700; HTTP audio server 36090.
Last line: "N passed, M failed".
"""
import http.server
import json
import math
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import wave
import base64

HOST = "127.0.0.1"
SIP_PORT, API_PORT, HTTP_PORT = 36060, 36088, 36090
A_SIP, A_RTP, B_SIP, B_RTP = 36070, 36600, 36080, 36700
RTP_LOW, RTP_HIGH = 36100, 36499
LOGIN, PASSWORD = "mediatest", "mediatest-password"
DIDS = [str(15162065310 + i) for i in range(20)]
CALLER = "12127361299"
US_DEST, UK_DEST = "15162065399", "442079460123"
A_TE, B_TE = 101, 96

# --- G.711 and signal analysis, independent of Mediator -------------------


def ulaw_decode(b):
    b = ~b & 0xFF
    sign, exp, mant = b & 0x80, (b >> 4) & 7, b & 0x0F
    v = ((mant << 3) + 0x84) << exp
    v -= 0x84
    return -v if sign else v


ULAW = [ulaw_decode(i) for i in range(256)]


def ulaw_encode(s):
    s = max(-32635, min(32635, int(s)))
    sign = 0x80 if s < 0 else 0
    s = abs(s) + 0x84
    exp = 7
    for e in range(8):
        if s <= (0xFF << e) | 0xFF and s < (1 << (e + 8)):
            exp = e
            break
    mant = (s >> (exp + 3)) & 0x0F
    return ~(sign | (exp << 4) | mant) & 0xFF


def goertzel(x, hz, rate=8000):
    w = 2 * math.pi * hz / rate
    c = 2 * math.cos(w)
    s1 = s2 = 0.0
    for v in x:
        s1, s2 = v / 32768.0 + c * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - c * s1 * s2) / (len(x) ** 2)


def rms(x):
    return math.sqrt(sum(v * v for v in x) / max(1, len(x)))


def ncc(a, b):
    n = min(len(a), len(b))
    if n == 0:
        return 0.0
    sab = sum(a[i] * b[i] for i in range(n))
    saa = sum(a[i] * a[i] for i in range(n))
    sbb = sum(b[i] * b[i] for i in range(n))
    return sab / math.sqrt(saa * sbb) if saa and sbb else 0.0


def best_ncc(received, ref, max_lag):
    """Peak normalised correlation of ref against received, over lags."""
    best = (0.0, 0)
    for lag in range(0, max_lag, 8):
        best = max(best, (ncc(received[lag:], ref), lag))
    _, lag0 = best
    for lag in range(max(0, lag0 - 8), lag0 + 9):
        best = max(best, (ncc(received[lag:], ref), lag))
    return best


# --- the announcement source: band-limited, so its ideal 8 kHz version is
# the same function sampled at 8 kHz ----------------------------------------
random.seed(5)
NOTES = [random.choice([300, 350, 420, 500, 610, 700, 830, 950, 1100, 1300]) for _ in range(15)]
ANN_SECS = 1.5


def ann_signal(t):
    i = min(int(t / 0.1), len(NOTES) - 1)
    f = NOTES[i]
    return 0.3 * math.sin(2 * math.pi * f * t) + 0.15 * math.sin(2 * math.pi * 2.1 * f * t + 1.0)


def write_wav(path, rate, channels, secs, fn):
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = bytearray()
        for i in range(int(rate * secs)):
            v = int(fn(i / rate) * 32767)
            frames += struct.pack("<h", v) * channels
        w.writeframes(bytes(frames))


REF8K = [ann_signal(i / 8000) * 32767 for i in range(int(8000 * ANN_SECS))]

# --- HTTP server for audio sources ----------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    root = ""

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path.startswith("/slow"):
            time.sleep(12)
            return
        if self.path == "/big.wav":
            self.send_response(200)
            self.send_header("Content-Length", str(11 * 1024 * 1024))
            self.end_headers()
            try:
                self.wfile.write(b"\0" * (11 * 1024 * 1024))
            except OSError:
                pass
            return
        path = os.path.join(self.root, self.path.lstrip("/"))
        if not os.path.isfile(path):
            self.send_error(404)
            return
        data = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", '"%d"' % len(data))
        self.end_headers()
        self.wfile.write(data)


# --- SIP over UDP -----------------------------------------------------------


def parse(data):
    text = data.decode("utf-8", "replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    hdrs = []
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            hdrs.append((k.strip().lower(), v.strip()))
    return {"start": lines[0], "headers": hdrs, "body": body}


def hget(m, name, all_=False):
    vals = [v for k, v in m["headers"] if k == name]
    return vals if all_ else (vals[0] if vals else "")


def status_of(m):
    s = m["start"]
    return int(s.split()[1]) if s.startswith("SIP/2.0") else 0


class Endpoint:
    def __init__(self, sip_port, rtp_port):
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind((HOST, sip_port))
        self.sip.settimeout(0.2)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((HOST, rtp_port))
        self.rtp.settimeout(0.2)
        self.port, self.rtp_port = sip_port, rtp_port
        self.packets = []  # (arrival, bytes)
        self.stop = False
        self.t = threading.Thread(target=self._rtp_loop, daemon=True)
        self.t.start()

    def _rtp_loop(self):
        while not self.stop:
            try:
                d, _ = self.rtp.recvfrom(2048)
                self.packets.append((time.monotonic(), d))
            except socket.timeout:
                pass
            except OSError:
                return

    def recv(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                d, src = self.sip.recvfrom(65535)
                return parse(d), src
            except socket.timeout:
                pass
        return None, None

    def send(self, text, dest=(HOST, SIP_PORT)):
        self.sip.sendto(text.encode(), dest)

    def close(self):
        self.stop = True
        self.t.join()
        self.sip.close()
        self.rtp.close()


def sdp(port, formats, maps):
    return ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP {formats}\r\n{maps}")


def response(req, code, reason, to_tag, body=""):
    hdrs = "".join(f"Via: {v}\r\n" for v in hget(req, "via", True))
    to = hget(req, "to")
    if "tag=" not in to:
        to += f";tag={to_tag}"
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    return (f"SIP/2.0 {code} {reason}\r\n{hdrs}From: {hget(req, 'from')}\r\nTo: {to}\r\n"
            f"Call-ID: {hget(req, 'call-id')}\r\nCSeq: {hget(req, 'cseq')}\r\n"
            f"Contact: <sip:b@{HOST}:{B_SIP}>\r\n{ctype}Content-Length: {len(body.encode())}\r\n\r\n{body}")


def rtp_packet(pt, seq, ts, ssrc, payload, marker=False):
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def media_target(body):
    m = re.search(r"m=audio (\d+)", body)
    c = re.search(r"c=IN IP4 (\S+)", body)
    return (c.group(1), int(m.group(1))) if m and c else None


class Callee(threading.Thread):
    """B: 180 (or 183 with SDP and a 1 kHz early-media tone), then 200 after
    `answer_after` seconds; sends 600 Hz audio after answer; answers BYE."""

    def __init__(self, ep, answer_after, early183=False, talk=True):
        super().__init__(daemon=True)
        self.ep, self.answer_after, self.early183, self.talk = ep, answer_after, early183, talk
        self.invite_at = None
        self.error = None
        self.done = threading.Event()

    def run(self):
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - reported by the case
            self.error = repr(e)
        self.done.set()

    def _run(self):
        ep = self.ep
        inv, src = ep.recv(15)
        if not inv or not inv["start"].startswith("INVITE"):
            self.error = "no INVITE at the trunk"
            return
        self.invite_at = time.monotonic()
        target = media_target(inv["body"])
        answer = sdp(B_RTP, f"0 {B_TE}", f"a=rtpmap:0 PCMU/8000\r\na=rtpmap:{B_TE} telephone-event/8000\r\na=fmtp:{B_TE} 0-16\r\n")
        ep.send(response(inv, 100, "Trying", "btag"), src)
        ssrc, seq, ts = random.getrandbits(32), random.getrandbits(16), random.getrandbits(32)
        end = time.monotonic() + self.answer_after
        if self.early183:
            ep.send(response(inv, 183, "Session Progress", "btag", answer), src)
            n = 0
            while time.monotonic() < end:
                pay = bytes(ulaw_encode(8000 * math.sin(2 * math.pi * 1000 * (n * 160 + i) / 8000)) for i in range(160))
                ep.rtp.sendto(rtp_packet(0, seq, ts, ssrc, pay, n == 0), target)
                seq, ts, n = seq + 1, ts + 160, n + 1
                time.sleep(0.02)
        else:
            ep.send(response(inv, 180, "Ringing", "btag"), src)
            time.sleep(max(0, end - time.monotonic()))
        ok = response(inv, 200, "OK", "btag", answer)
        ep.send(ok, src)
        t_next = time.monotonic() + 0.5
        n = 0
        while True:
            m, s2 = ep.recv(0.02)
            if m and m["start"].startswith("INVITE"):
                ep.send(ok, s2)
            if m and m["start"].startswith("BYE"):
                ep.send(response(m, 200, "OK", "btag"), s2)
                return
            if self.talk and time.monotonic() > t_next:
                pay = bytes(ulaw_encode(8000 * math.sin(2 * math.pi * 600 * (n * 160 + i) / 8000)) for i in range(160))
                ep.rtp.sendto(rtp_packet(0, seq, ts, ssrc, pay, n == 0), target)
                seq, ts, n = seq + 1, ts + 160, n + 1
                t_next += 0.02
            if time.monotonic() > end + 60:
                self.error = "no BYE"
                return


def call(did, answer_after, hold_after_200=1.5, early183=False, max_wait=30):
    """Places a call from A to `did`; B answers after `answer_after` s.
    Returns (responses [(time, code, has_sdp)], A's packets, B's packets,
    invite time, callee error)."""
    a = Endpoint(A_SIP, A_RTP)
    b = Endpoint(B_SIP, B_RTP)
    callee = Callee(b, answer_after, early183)
    callee.start()
    try:
        cid = f"media-{random.getrandbits(40)}@{HOST}"
        offer = sdp(A_RTP, f"0 {A_TE}", f"a=rtpmap:0 PCMU/8000\r\na=rtpmap:{A_TE} telephone-event/8000\r\na=fmtp:{A_TE} 0-16\r\n")
        branch = f"z9hG4bK{random.getrandbits(40)}"
        invite = (f"INVITE sip:{did}@{HOST}:{SIP_PORT} SIP/2.0\r\nVia: SIP/2.0/UDP {HOST}:{A_SIP};branch={branch};rport\r\n"
                  f"From: <sip:{CALLER}@{HOST}>;tag=atag\r\nTo: <sip:{did}@{HOST}>\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\n"
                  f"Contact: <sip:{CALLER}@{HOST}:{A_SIP}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n"
                  f"Content-Length: {len(offer)}\r\n\r\n{offer}")
        t0 = time.monotonic()
        a.send(invite)
        resps = []
        final = None
        while time.monotonic() < t0 + max_wait and final is None:
            m, _ = a.recv(0.5)
            if not m or hget(m, "call-id") != cid:
                continue
            code = status_of(m)
            if code:
                resps.append((time.monotonic() - t0, code, bool(m["body"].strip())))
                if code >= 200:
                    final = m
        if final is None:
            return resps, a.packets, b.packets, t0, "no final response"
        to = hget(final, "to")
        # RFC 3261 17.1.1.3: the ACK to a non-2xx has the INVITE's branch.
        ack_branch = f"z9hG4bK{random.getrandbits(40)}" if status_of(final) < 300 else branch
        ack = (f"ACK sip:{did}@{HOST}:{SIP_PORT} SIP/2.0\r\nVia: SIP/2.0/UDP {HOST}:{A_SIP};branch={ack_branch};rport\r\n"
               f"From: <sip:{CALLER}@{HOST}>;tag=atag\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        a.send(ack)
        if status_of(final) == 200:
            time.sleep(hold_after_200)
            bye = (f"BYE sip:{did}@{HOST}:{SIP_PORT} SIP/2.0\r\nVia: SIP/2.0/UDP {HOST}:{A_SIP};branch=z9hG4bK{random.getrandbits(40)};rport\r\n"
                   f"From: <sip:{CALLER}@{HOST}>;tag=atag\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
            a.send(bye)
            a.recv(2)
            callee.done.wait(5)
        return resps, list(a.packets), list(b.packets), t0, callee.error
    finally:
        a.close()
        b.close()
        callee.done.wait(1)


def rtp_fields(d):
    b1 = d[1]
    return {"m": bool(b1 & 0x80), "pt": b1 & 0x7F, "seq": struct.unpack("!H", d[2:4])[0],
            "ts": struct.unpack("!I", d[4:8])[0], "ssrc": struct.unpack("!I", d[8:12])[0], "pay": d[12:]}


def audio_of(packets, t_from=None, t_to=None):
    out = []
    for t, d in packets:
        if (t_from is not None and t < t_from) or (t_to is not None and t > t_to):
            continue
        f = rtp_fields(d)
        if f["pt"] == 0:
            out.extend(ULAW[x] for x in f["pay"])
    return out


# --- harness ------------------------------------------------------------------
PASS, FAIL = 0, 0
MEDLOG = None


def result(name, ok, why=""):
    global PASS, FAIL
    if ok:
        PASS += 1
        print(f"PASS {name}", flush=True)
    else:
        FAIL += 1
        print(f"FAIL {name}: {why}", flush=True)


def api(method, path, body=None):
    req = urllib.request.Request(f"http://{HOST}:{API_PORT}/mediator/v1{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode())
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


NEXT_DID = iter(DIDS)


def binding(dest, attributes=None, dtmf=None):
    did = next(NEXT_DID)
    body = {"destination_did": dest, "redirect_did": did, "attributes": attributes or {}}
    if dtmf is not None:
        body["dtmf"] = dtmf
    code, v = api("POST", "/bindings", body)
    if code != 200:
        raise RuntimeError(f"POST /bindings {body}: {code} {v}")
    return did


def log_text():
    return open(MEDLOG, encoding="utf-8", errors="replace").read()


def one_stream(packets):
    """One SSRC, sequence numbers by one; returns (ok, why, markers idx)."""
    fs = [rtp_fields(d) for _, d in packets]
    if not fs:
        return False, "no packets", []
    ssrcs = {f["ssrc"] for f in fs}
    if len(ssrcs) != 1:
        return False, f"{len(ssrcs)} SSRCs", []
    for x, y in zip(fs, fs[1:]):
        if (y["seq"] - x["seq"]) & 0xFFFF != 1:
            return False, f"sequence {x['seq']} -> {y['seq']}", []
        if (y["ts"] - x["ts"]) & 0xFFFFFFFF > 0x7FFFFFFF:
            return False, f"timestamp back {x['ts']} -> {y['ts']}", []
    return True, "", [i for i, f in enumerate(fs) if f["m"]]


def case_announce(name, url, max_lag, threshold):
    did = binding(US_DEST, {"announce": url})
    resps, a_pk, _, t0, err = call(did, answer_after=0.5, hold_after_200=1.5)
    codes = [c for _, c, _ in resps]
    t200 = next((t for t, c, _ in resps if c == 200), None)
    if err or t200 is None:
        return result(name, False, f"call failed: {codes} {err}")
    if 183 not in codes or not next(s for _, c, s in resps if c == 183):
        return result(name, False, f"no 183 with SDP: {resps}")
    if t200 < ANN_SECS:
        return result(name, False, f"200 at {t200:.2f} s, before the announcement ended")
    first = a_pk[0][0] if a_pk else None
    if first is None:
        return result(name, False, "no RTP to the caller")
    rec = audio_of(a_pk, t_to=t0 + t200)
    c, lag = best_ncc(rec, REF8K, max_lag)
    ok, why, markers = one_stream(a_pk)
    relayed = audio_of(a_pk, t_from=t0 + t200 + 0.7)
    heard_b = relayed and goertzel(relayed[:1600], 600) > 20 * goertzel(relayed[:1600], 1000)
    if c < threshold:
        return result(name, False, f"correlation with the source {c:.3f} (lag {lag}) < {threshold}")
    if not ok or len(markers) < 2:
        return result(name, False, f"stream across the switch: {why} markers {markers}")
    if not heard_b:
        return result(name, False, "B's audio not relayed after the announcement")
    print(f"   correlation {c:.3f} at lag {lag}, 200 at {t200:.2f} s, markers at packets {markers}")
    result(name, True)


def case_failed_source(name, url, why_re):
    did = binding(US_DEST, {"announce": url})
    before = len(re.findall("audio source not played", log_text()))
    resps, _, _, _, err = call(did, answer_after=0.5, hold_after_200=0.5)
    codes = [c for _, c, _ in resps]
    after = log_text()
    if 200 not in codes or err:
        return result(name, False, f"the call did not go on: {codes} {err}")
    logged = len(re.findall("audio source not played", after)) > before
    if not logged or not re.search(why_re, after):
        return result(name, False, f"failure not logged as {why_re!r}")
    result(name, True)


def tone_frames(samples):
    """Per 20 ms frame: (energy, 440/480 power, 400/450 power, other)."""
    out = []
    for i in range(0, len(samples) - 159, 160):
        f = samples[i:i + 160]
        out.append((rms(f), goertzel(f, 440) + goertzel(f, 480), goertzel(f, 400) + goertzel(f, 450), goertzel(f, 1000)))
    return out


def case_ringback(name, dest, on_off, want_hz, not_hz):
    did = binding(dest, {"announce": f"http://{HOST}:{HTTP_PORT}/short.wav"})
    ring_secs = sum(on_off) / 1000 + 1.5
    resps, a_pk, _, t0, err = call(did, answer_after=0.6 + ring_secs, hold_after_200=0.3)
    t183 = next((t for t, c, _ in resps if c == 183), None)
    if err or t183 is None:
        return result(name, False, f"call: {resps} {err}")
    samples = audio_of(a_pk)
    # Skip the 0.5 s announcement: the tone starts at the first frame after it.
    frames = tone_frames(samples)[25:]
    on = [e > 500 for e, *_ in frames]
    if True not in on:
        return result(name, False, "no ring-back heard")
    start = on.index(True)
    runs, cur, n = [], on[start], 0
    for v in on[start:]:
        if v == cur:
            n += 1
        else:
            runs.append((cur, n * 20))
            cur, n = v, 1
    runs.append((cur, n * 20))
    want = list(on_off)
    got = [ms for _, ms in runs[:len(want)]]
    if len(got) < len(want) or any(abs(g - w) > 60 for g, w in zip(got, want)):
        return result(name, False, f"cadence {runs[:6]} != {want}")
    # The first burst (0.4 s: 2.5 Hz resolution) by Goertzel: both wanted
    # frequencies present, the other country's (and 350 Hz) absent.
    first = 25 * 160 + start * 160
    burst = samples[first + 160:first + 160 + 3040]
    p = {hz: goertzel(burst, hz) for hz in want_hz + not_hz + (350,)}
    low = min(p[h] for h in want_hz)
    high = max(p[h] for h in not_hz + (350,))
    if low < 20 * high:
        return result(name, False, f"frequencies: {p}")
    print(f"   cadence {got} ms")
    result(name, True)


def case_silence(name):
    did = binding(US_DEST, {"ringback": "false"})
    resps, a_pk, _, t0, err = call(did, answer_after=2.0, hold_after_200=0.2)
    t200 = next((t for t, c, _ in resps if c == 200), None)
    has183 = any(c == 183 and s for _, c, s in resps)
    if err or t200 is None or not has183 or any(c == 180 for _, c, _ in resps):
        return result(name, False, f"responses {resps} {err}")
    early = audio_of(a_pk, t_to=t0 + t200 - 0.05)
    if len(early) < 8000:
        return result(name, False, f"only {len(early)} samples of early media")
    if rms(early) > 50:
        return result(name, False, f"not silence: rms {rms(early):.1f}")
    result(name, True)


def case_moh(name):
    did = binding(US_DEST, {"ringback": "moh"})
    resps, a_pk, _, t0, err = call(did, answer_after=3.0, hold_after_200=0.2)
    t200 = next((t for t, c, _ in resps if c == 200), None)
    if err or t200 is None or not any(c == 183 and s for _, c, s in resps):
        return result(name, False, f"responses {resps} {err}")
    early = audio_of(a_pk, t_to=t0 + t200 - 0.05)
    frames = [rms(early[i:i + 1600]) for i in range(0, len(early) - 1599, 1600)]
    if len(frames) < 10 or sum(f > 500 for f in frames) < 0.8 * len(frames):
        return result(name, False, f"no music: 200 ms rms {[int(f) for f in frames]}")
    # Music, not a ring-back tone: energy spread over several notes.
    peaks = set()
    for i in range(0, len(early) - 799, 800):
        blk = early[i:i + 800]
        p = max(range(200, 1200, 25), key=lambda hz: goertzel(blk, hz))
        peaks.add(p)
    if len(peaks) < 3:
        return result(name, False, f"one pitch only: {peaks}")
    result(name, True)


def case_passthrough(name):
    did = binding(US_DEST, {"ringback": "passthrough"})
    resps, a_pk, _, t0, err = call(did, answer_after=1.5, hold_after_200=0.2, early183=True)
    t200 = next((t for t, c, _ in resps if c == 200), None)
    if err or t200 is None or not any(c == 183 and s for _, c, s in resps):
        return result(name, False, f"responses {resps} {err}")
    early = audio_of(a_pk, t_to=t0 + t200 - 0.05)
    if len(early) < 4000 or goertzel(early[-4000:], 1000) < 20 * goertzel(early[-4000:], 440):
        return result(name, False, f"B's early media not relayed ({len(early)} samples)")
    result(name, True)


def case_dtmf(name):
    digits = "1,2#"
    did = binding(US_DEST, dtmf=digits)
    resps, _, b_pk, t0, err = call(did, answer_after=0.3, hold_after_200=2.5)
    if err or 200 not in [c for _, c, _ in resps]:
        return result(name, False, f"responses {resps} {err}")
    ev = [(t, rtp_fields(d)) for t, d in b_pk if rtp_fields(d)["pt"] == B_TE]
    others = {rtp_fields(d)["pt"] for _, d in b_pk} - {0, B_TE}
    if others:
        return result(name, False, f"unexpected payload types {others}")
    events = {}
    for t, f in ev:
        p = f["pay"]
        events.setdefault(f["ts"], []).append((t, p[0], bool(p[1] & 0x80), p[1] & 0x3F, struct.unpack("!H", p[2:4])[0], f["m"]))
    got = []
    for ts, pk in sorted(events.items(), key=lambda kv: kv[1][0][0]):
        codes = {x[1] for x in pk}
        ends = [x for x in pk if x[2]]
        durs = [x[4] for x in pk if not x[2]]
        if len(codes) != 1 or len(ends) != 3 or durs != sorted(durs) or len(set(durs)) != len(durs):
            return result(name, False, f"event at ts {ts}: codes {codes}, {len(ends)} end packets, durations {durs}")
        if not pk[0][5] or any(x[5] for x in pk[1:]):
            return result(name, False, f"marker bits {[x[5] for x in pk]}")
        if {x[3] for x in pk} != {10}:
            return result(name, False, f"volume {[x[3] for x in pk]}")
        got.append((pk[0][0], codes.pop(), ends[0][4]))
    names = "0123456789*#ABCD"
    heard = "".join(names[c] for _, c, _ in got)
    if heard != "12#":
        return result(name, False, f"digits heard {heard!r}")
    gap = got[1][0] - got[0][0]
    if gap < 0.65:
        return result(name, False, f"the pause: only {gap:.2f} s between 1 and 2")
    if any(d < 400 for _, _, d in got):
        return result(name, False, f"durations {[d for _, _, d in got]}")
    print(f"   digits {heard}, pause {gap:.2f} s, durations {[d for _, _, d in got]} samples, PT {B_TE}")
    result(name, True)


def main():
    global MEDLOG
    binary = sys.argv[1]
    only = re.compile(sys.argv[2] if len(sys.argv) > 2 else ".")
    tmp = tempfile.mkdtemp(prefix="mediator-media-")
    www = os.path.join(tmp, "www")
    os.mkdir(www)
    write_wav(os.path.join(www, "ann.wav"), 44100, 2, ANN_SECS, ann_signal)
    write_wav(os.path.join(www, "short.wav"), 44100, 2, 0.5, ann_signal)
    if not shutil.which("lame"):
        print("missing tool: lame (apt-get install -y lame)")
        print("0 passed, 1 failed")
        sys.exit(1)
    subprocess.run(["lame", "--quiet", "-b", "128", os.path.join(www, "ann.wav"), os.path.join(www, "ann.mp3")], check=True)
    Handler.root = www
    httpd = http.server.ThreadingHTTPServer((HOST, HTTP_PORT), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    conf = os.path.join(tmp, "mediator.toml")
    with open(conf, "w") as f:
        f.write(f"""[api]
listen = "{HOST}:{API_PORT}"

[sip]
listen = ["udp:{HOST}:{SIP_PORT}"]
advertised_host = "{HOST}"
trunk = "sip:{HOST}:{B_SIP}"
trusted = ["127.0.0.1/32"]
ring_timeout_secs = 30

[media]
advertised_ip = "{HOST}"
bind_ip = "{HOST}"
rtp_ports = "{RTP_LOW}-{RTP_HIGH}"
audio_fetch_allow = ["127.0.0.1/32"]

[database]
url = "sqlite://{tmp}/mediator.db"

[[accounts]]
name = "media tests"
login = "{LOGIN}"
password = "{PASSWORD}"
dids = [{", ".join(f'"{d}"' for d in DIDS)}]
""")
    MEDLOG = os.path.join(tmp, "mediator.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIATOR_")}
    env["MEDIATOR_LOG"] = "info,rsipstack=warn"
    med = subprocess.Popen([binary, "serve", "--config", conf], stdout=open(MEDLOG, "w"), stderr=subprocess.STDOUT, env=env)
    try:
        for _ in range(300):
            try:
                if api("GET", "/dids?limit=1")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            print(log_text()[-2000:])
            print("0 passed, 1 failed")
            sys.exit(1)
        base = f"http://{HOST}:{HTTP_PORT}"
        cases = [
            ("announce-wav-44k1-stereo", lambda n: case_announce(n, f"{base}/ann.wav", 400, 0.9)),
            ("announce-mp3", lambda n: case_announce(n, f"{base}/ann.mp3", 1200, 0.8)),
            ("announce-404-call-goes-on", lambda n: case_failed_source(n, f"{base}/missing.wav", r"HTTP 404")),
            ("announce-timeout-call-goes-on", lambda n: case_failed_source(n, f"{base}/slow.wav", r"audio fetch failed")),
            ("announce-over-size-cap-call-goes-on", lambda n: case_failed_source(n, f"{base}/big.wav", r"larger than")),
            ("announce-private-address-refused", lambda n: case_failed_source(n, "http://10.255.255.1/a.wav", r"address refused")),
            ("ringback-tone-nanp-after-announcement", lambda n: case_ringback(n, US_DEST, (2000, 4000, 2000), (440, 480), (400,))),
            ("ringback-tone-uk-after-announcement", lambda n: case_ringback(n, UK_DEST, (400, 200, 400, 2000, 400), (400, 450), (480,))),
            ("ringback-false-silence", case_silence),
            ("ringback-moh-music", case_moh),
            ("ringback-passthrough-early-media", case_passthrough),
            ("dtmf-rfc4733-to-b", case_dtmf),
        ]
        for name, fn in cases:
            if only.search(name):
                try:
                    fn(name)
                except Exception as e:  # noqa: BLE001 - a case that crashes fails
                    result(name, False, repr(e))
    finally:
        med.terminate()
        try:
            med.wait(10)
        except subprocess.TimeoutExpired:
            med.kill()
        httpd.shutdown()
        if os.environ.get("KEEP", "") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")
    print(f"{PASS} passed, {FAIL} failed")
    sys.exit(1 if FAIL else 0)


if __name__ == "__main__":
    main()
