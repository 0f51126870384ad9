#!/usr/bin/env python3
"""End-to-end tests of dialouts (issue 6): the release binary places a
dialout made through the REST API (POST /dialouts, delay 0), and a scripted
user agent at the trunk address answers both stages over UDP or TCP and
checks what each party is sent and hears.

The trunk UA (one socket, as the trunk is one address) tells the stages
apart by the Request-URI user. It records who was called when and with
which From, can challenge INVITEs (401/407, the digest answer checked here
with the configured credentials), answers busy, presses keys as RFC 4733
events or SIP INFO, and records the RTP each stage receives. G.711 is
decoded and analysed with the helpers of sip-tests/media/media_test.py
(Goertzel for the NANP ring-back's 440+480 Hz, RMS for the prompt's
energy), independently of Mediator's code.

Usage: dialout_test.py MEDIATOR_BIN udp|tcp [ONLY_REGEX]
Ports (127.0.0.1): PORT_BASE (default 21000) + 0 Mediator SIP, + 1 REST,
+ 2 trunk UA; RTP: RTP_THOUSANDS (default 43) * 1000 + 0..499 relay,
+ 600 stage one, + 700 stage two.
Last line: "N passed, M failed".
"""
import base64
import hashlib
import json
import math
import os
import random
import re
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "media"))
import media_test as mt  # noqa: E402  (G.711, Goertzel, SIP parsing helpers)


HOST = "127.0.0.1"
BASE = int(os.environ.get("PORT_BASE", "21000"))
RTPK = int(os.environ.get("RTP_THOUSANDS", "43")) * 1000
SIP_PORT, API_PORT, TRUNK_PORT = BASE, BASE + 1, BASE + 2
RTP_LOW, RTP_HIGH = RTPK, RTPK + 499
ONE_RTP, TWO_RTP = RTPK + 600, RTPK + 700
LOGIN, PASSWORD = "dialtest", "dialtest-password"
TRUNK_USER, TRUNK_PASS = "mediator", "trunk-secret"
DIDS = [str(15162065360 + i) for i in range(20)]
TE = 101
ONE_HZ, TWO_HZ = 1000, 600  # what each stage says
CONFIRM_SECS = 2  # sip.confirm_timeout_secs in the test config
ANN_HZ, PROMPT_HZ = 800, 1200  # the announcement's and the custom prompt's tones
EARLY_HZ = 1400  # stage two's early media with ringback passthrough
RING_SECS = 6  # sip.ring_timeout_secs in the test config
DRAIN_SECS = 2  # sip.drain_secs in the test config

# --- the trunk user agent ------------------------------------------------------


class Transport:
    """The trunk's one address over UDP, or a TCP listener (Mediator
    connects; responses and our requests go back on that connection)."""

    def __init__(self, proto):
        self.proto = proto
        self.inbox = []
        self.lock = threading.Lock()
        self.stop = False
        if proto == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind((HOST, TRUNK_PORT))
            self.sock.settimeout(0.1)
            threading.Thread(target=self._udp, daemon=True).start()
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((HOST, TRUNK_PORT))
            self.sock.listen(8)
            self.sock.settimeout(0.1)
            self.conns = []
            threading.Thread(target=self._accept, daemon=True).start()

    def _udp(self):
        while not self.stop:
            try:
                d, src = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.inbox.append((mt.parse(d), src))

    def _accept(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._tcp, args=(c,), daemon=True).start()

    def _tcp(self, c):
        buf = b""
        c.settimeout(0.2)
        while not self.stop:
            try:
                d = c.recv(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if not d:
                return
            buf += d
            while True:
                buf = buf.lstrip(b"\r\n")  # keep-alives
                head, sep, rest = buf.partition(b"\r\n\r\n")
                if not sep:
                    break
                m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
                n = int(m.group(1)) if m else 0
                if len(rest) < n:
                    break
                with self.lock:
                    self.inbox.append((mt.parse(head + sep + rest[:n]), c))
                buf = rest[n:]

    def recv(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if self.inbox:
                    return self.inbox.pop(0)
            time.sleep(0.005)
        return None, None

    def send(self, text, to):
        data = text.encode()
        if self.proto == "udp":
            self.sock.sendto(data, to)
        else:
            to.sendall(data)

    def default_dest(self):
        """Where our own in-dialog requests go: Mediator's SIP port (UDP)
        or the connection Mediator opened (TCP)."""
        if self.proto == "udp":
            return (HOST, SIP_PORT)
        return self.conns[-1]

    def close(self):
        self.stop = True
        self.sock.close()
        for c in getattr(self, "conns", []):
            c.close()


class Leg:
    """One call the trunk UA received (one stage)."""

    def __init__(self, invite, src, beh):
        self.invite, self.src, self.beh = invite, src, beh
        self.user = re.match(r"INVITE sip:([^@;>]+)@", invite["start"]).group(1)
        self.from_user = re.search(r"sip:([^@;>]+)@", mt.hget(invite, "from")).group(1)
        self.display = mt.hget(invite, "from").split("<")[0].strip().strip('"')
        self.headers = invite["headers"]
        self.cid = mt.hget(invite, "call-id")
        self.tag = f"t{random.getrandbits(32)}"
        self.invited = time.monotonic()
        self.answered = self.ended = None
        self.acked = None
        self.cancelled = None  # when Mediator's CANCEL came
        self.bye_answer = None  # the status Mediator gave our BYE
        self.answer_at = None  # on_cancel: when to answer the cancelled INVITE
        self.final = None
        self.bye_from_mediator = None
        self.target = mt.media_target(invite["body"])
        self.rtp_port = beh["rtp"]
        self.packets = []
        self.rtp = None
        self.cseq = 1
        self.stop = False


def digest_ok(req, challenge_hdr):
    """Checks the Authorization/Proxy-Authorization of `req` against our
    trunk credentials (RFC 2617, MD5, no qop)."""
    name = "authorization" if challenge_hdr == 401 else "proxy-authorization"
    v = mt.hget(req, name)
    if not v.lower().startswith("digest"):
        return False
    f = dict((k.lower(), w.strip('"')) for k, w in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', v))
    ha1 = hashlib.md5(f"{TRUNK_USER}:{f.get('realm')}:{TRUNK_PASS}".encode()).hexdigest()
    ha2 = hashlib.md5(f"INVITE:{f.get('uri')}".encode()).hexdigest()
    want = hashlib.md5(f"{ha1}:{f.get('nonce')}:{ha2}".encode()).hexdigest()
    return f.get("username") == TRUNK_USER and f.get("response") == want


class Trunk(threading.Thread):
    """Answers INVITEs per number as `behaviours[number]` says:
    answer_after (s, 180 meanwhile), busy (486), challenge (401 or 407),
    press (a key as RFC 4733, 'info:1' as SIP INFO, at press_at s after
    answer), rtp (its port), hz (the tone it sends after answer),
    early_hz / early_sdp (183 with SDP, with that tone / silence, before
    the answer), sdp_in_200 (False: the 200 has no SDP, the 183's stands),
    on_cancel (s: a CANCEL gets its 200 but no 487; the INVITE is answered
    200 that long after it, as when the answer crosses the CANCEL)."""

    def __init__(self, proto, behaviours):
        super().__init__(daemon=True)
        self.tr = Transport(proto)
        self.beh = behaviours
        self.legs = {}
        self.order = []
        self.challenged = []  # (number, code, verified on retry)
        self.errors = []
        self.stop = False

    def reply(self, leg_or_req, src, code, reason, tag, body=""):
        self.tr.send(mt.response(leg_or_req, code, reason, tag, body), src)

    def run(self):
        while not self.stop:
            m, src = self.tr.recv(0.02)
            if m:
                try:
                    self.on_message(m, src)
                except Exception as e:  # noqa: BLE001 - reported by the case
                    self.errors.append(repr(e))
            for leg in list(self.legs.values()):
                self.tick(leg)

    def on_message(self, m, src):
        start = m["start"]
        cid = mt.hget(m, "call-id")
        leg = self.legs.get(cid)
        if start.startswith("INVITE"):
            if leg and mt.hget(m, "to").find("tag=") >= 0:
                # a re-INVITE (session refresh): answer with our SDP
                self.reply(m, src, 200, "OK", leg.tag, self.sdp(leg))
                return
            user = re.match(r"INVITE sip:([^@;>]+)@", start).group(1)
            beh = self.beh.get(user)
            if beh is None:
                self.reply(m, src, 404, "Not Found", "x")
                return
            ch = beh.get("challenge")
            if ch:
                hdr = "authorization" if ch == 401 else "proxy-authorization"
                if not mt.hget(m, hdr):
                    self.challenged.append([user, ch, None])
                    name = "WWW-Authenticate" if ch == 401 else "Proxy-Authenticate"
                    resp = mt.response(m, ch, "Unauthorized" if ch == 401 else "Proxy Authentication Required", "c")
                    resp = resp.replace("Content-Length: 0", f'{name}: Digest realm="trunk.test", nonce="{random.getrandbits(64):x}", algorithm=MD5\r\nContent-Length: 0')
                    self.tr.send(resp, src)
                    return
                if self.challenged and self.challenged[-1][0] == user:
                    self.challenged[-1][2] = digest_ok(m, ch)
            if leg:
                return  # a retransmission
            leg = Leg(m, src, beh)
            self.legs[cid] = leg
            self.order.append(leg)
            self.reply(m, src, 100, "Trying", leg.tag)
            if beh.get("busy"):
                leg.final = 486
                leg.ended = time.monotonic()
                self.reply(m, src, 486, "Busy Here", leg.tag)
                return
            if beh.get("early_hz") or beh.get("early_sdp"):
                # 183 with SDP and early media (a tone) until the answer
                self.reply(m, src, 183, "Session Progress", leg.tag, self.sdp(leg))
                leg.rtp = RtpPeer(leg)
            else:
                self.reply(m, src, 180, "Ringing", leg.tag)
        elif start.startswith("ACK"):
            if leg and leg.answered and not leg.acked:
                leg.acked = time.monotonic()
            return
        elif start.startswith("CANCEL"):
            self.reply(m, src, 200, "OK", leg.tag if leg else "x")
            if leg and not leg.cancelled:
                leg.cancelled = time.monotonic()
            if leg and leg.final is None and leg.beh.get("on_cancel") is not None:
                leg.answer_at = time.monotonic() + leg.beh["on_cancel"]
            elif leg and leg.final is None:
                leg.final = 487
                leg.ended = time.monotonic()
                self.reply(leg.invite, leg.src, 487, "Request Terminated", leg.tag)
        elif start.startswith("BYE"):
            self.reply(m, src, 200, "OK", leg.tag if leg else "x")
            if leg:
                leg.bye_from_mediator = time.monotonic()
                leg.ended = leg.ended or time.monotonic()
                leg.stop = True
        elif start.startswith("SIP/2.0"):
            # responses to our BYE/INFO
            if leg and mt.hget(m, "cseq").upper().endswith("BYE") and leg.bye_answer is None:
                code = int(start.split()[1])
                if code >= 200:
                    leg.bye_answer = code
            return
        else:
            self.reply(m, src, 200, "OK", leg.tag if leg else "x")

    def sdp(self, leg):
        return mt.sdp(leg.rtp_port, f"0 {TE}", f"a=rtpmap:0 PCMU/8000\r\na=rtpmap:{TE} telephone-event/8000\r\na=fmtp:{TE} 0-16\r\n")

    def tick(self, leg):
        now = time.monotonic()
        due = leg.invited + leg.beh.get("answer_after", 0.2)
        if leg.answer_at is not None:
            due = min(due, leg.answer_at)
        if leg.final is None and now >= due:
            leg.final = 200
            leg.answered = now
            leg.rtp = leg.rtp or RtpPeer(leg)
            body = self.sdp(leg) if leg.beh.get("sdp_in_200", True) else ""
            self.reply(leg.invite, leg.src, 200, "OK", leg.tag, body)
        p = leg.beh.get("press")
        if p and leg.answered and not leg.ended and now >= leg.answered + leg.beh.get("press_at", 3.6):
            leg.beh["press"] = None
            if p.startswith("info:"):
                self.request(leg, "INFO", "application/dtmf-relay", f"Signal={p[5:]}\r\nDuration=160\r\n")
            else:
                leg.rtp.press(p)
            if leg.beh.get("bye_with_press"):
                self.hang_up(leg)

    def request(self, leg, method, ctype="", body=""):
        """Sends a request in the leg's dialog (we are its UAS)."""
        inv = leg.invite
        leg.cseq += 1
        contact = re.search(r"<([^>]+)>", mt.hget(inv, "contact")).group(1)
        via_proto = "TCP" if self.tr.proto == "tcp" else "UDP"
        ct = f"Content-Type: {ctype}\r\n" if ctype else ""
        text = (f"{method} {contact} SIP/2.0\r\nVia: SIP/2.0/{via_proto} {HOST}:{TRUNK_PORT};branch=z9hG4bK{random.getrandbits(40)};rport\r\n"
                f"From: {mt.hget(inv, 'to')};tag={leg.tag}\r\nTo: {mt.hget(inv, 'from')}\r\nCall-ID: {leg.cid}\r\n"
                f"CSeq: {leg.cseq} {method}\r\nMax-Forwards: 70\r\n{ct}Content-Length: {len(body)}\r\n\r\n{body}")
        self.tr.send(text, self.tr.default_dest())

    def hang_up(self, leg):
        leg.ended = time.monotonic()
        leg.stop = True
        self.request(leg, "BYE")

    def leg_for(self, number):
        return next((leg for leg in self.order if leg.user == number), None)

    def close(self):
        self.stop = True
        for leg in self.order:
            leg.stop = True
        self.tr.close()


class RtpPeer:
    """A stage's RTP: sends its tone every 20 ms after answer, records what
    it receives, sends RFC 4733 events when asked."""

    def __init__(self, leg):
        self.leg = leg
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, leg.rtp_port))
        self.sock.settimeout(0.005)
        self.ssrc, self.seq, self.ts = random.getrandbits(32), random.getrandbits(16), random.getrandbits(32)
        self.pending = []
        threading.Thread(target=self.run, daemon=True).start()

    def press(self, key):
        code = "0123456789*#".index(key)
        ts = self.ts
        # RFC 4733 §2.5: growing durations on one timestamp, three end packets.
        for i, dur in enumerate((160, 320, 480, 640, 800)):
            self.pending.append((True, struct.pack("!BBH", code, 10, dur), ts, i == 0))
        for _ in range(3):
            self.pending.append((True, struct.pack("!BBH", code, 0x80 | 10, 800), ts, False))

    def run(self):
        leg = self.leg
        n, t_next = 0, time.monotonic()
        while not leg.stop:
            try:
                d, _ = self.sock.recvfrom(2048)
                leg.packets.append((time.monotonic(), d))
            except socket.timeout:
                pass
            except OSError:
                break
            if time.monotonic() >= t_next and leg.target:
                t_next += 0.02
                if self.pending:
                    _, pay, ts, mark = self.pending.pop(0)
                    pkt = mt.rtp_packet(TE, self.seq, ts, self.ssrc, pay, mark)
                else:
                    hz = leg.beh.get("hz", 0) if leg.answered else leg.beh.get("early_hz", 0)
                    pay = bytes(mt.ulaw_encode(6000 * math.sin(2 * math.pi * hz * (n * 160 + i) / 8000)) for i in range(160))
                    pkt = mt.rtp_packet(0, self.seq, self.ts, self.ssrc, pay, n == 0)
                    n += 1
                    self.ts += 160
                self.sock.sendto(pkt, leg.target)
                self.seq += 1
        self.sock.close()


# --- the REST API and the harness -------------------------------------------------
PASS, FAIL = 0, 0
LOG = None
NEXT = iter(range(100))


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


def log_text():
    return open(LOG, encoding="utf-8", errors="replace").read()


def numbers():
    i = next(NEXT)
    return f"1516555{i:04d}", f"1516666{i:04d}", DIDS[i % len(DIDS)]


def outcome_of(sid, within=40):
    """The outcome the call logged for the dialout ("dialout ended")."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        text = log_text()
        start = text.find(f"dialout={sid}")
        if start >= 0:
            m = re.search(r"dialout ended.*?outcome=\"?(\w+)", text[start:])
            if m:
                return m.group(1)
        time.sleep(0.2)
    return None


def place(one, two, redirect, attributes=None):
    code, v = api("POST", "/dialouts", {"stage_one_destination_did": one, "stage_two_destination_did": two,
                                       "redirect_did": redirect, "delay": 0, "attributes": attributes or {}})
    if code != 200:
        raise RuntimeError(f"POST /dialouts: {code} {v}")
    return v.get("body", v)["dialout_sid"]


def energy(packets, t0, t1):
    x = mt.audio_of(packets, t0, t1)
    return mt.rms(x), x


def check_gone(sid):
    code, _ = api("GET", f"/dialouts/{sid}")
    return code == 404, f"GET /dialouts/{sid}: {code}, not 404"


def check_records(sid, trunk, outcome):
    """GET /calls has one `dialout` record per stage the trunk saw, stage
    one first, each with the dialout's outcome and the leg's final status."""
    end = time.monotonic() + 5
    while True:
        code, v = api("GET", f"/calls?filter=dialout_sid+eq+{sid}&limit=10")
        items = (v.get("body") or {}).get("items", []) if code == 200 else []
        if len(items) >= len(trunk.order) or time.monotonic() > end:
            break
        time.sleep(0.2)
    items.sort(key=lambda r: r.get("date_start") or "")
    got = [(r.get("number_dst"), r.get("sip_status"), r.get("outcome"), r.get("type")) for r in items]
    want = [(leg.user, leg.beh.get("record_status", leg.final), outcome, "dialout") for leg in trunk.order]
    return got == want, f"records {got}, want {want}"


def run_case(proto, name, one_beh, two_beh, attributes, check, hang_up_after=2.0):
    one, two, redirect = numbers()
    one_beh.setdefault("rtp", ONE_RTP)
    one_beh.setdefault("hz", ONE_HZ)
    two_beh.setdefault("rtp", TWO_RTP)
    two_beh.setdefault("hz", TWO_HZ)
    trunk = Trunk(proto, {one: one_beh, two: two_beh})
    trunk.start()
    try:
        t_post = time.monotonic()
        sid = place(one, two, redirect, attributes)
        # Bridged: stage one hangs up after a while; otherwise wait for the end.
        end = time.monotonic() + 45
        bye_sent = False
        while time.monotonic() < end:
            l1, l2 = trunk.leg_for(one), trunk.leg_for(two)
            if l1 and l2 and l2.answered and not bye_sent and time.monotonic() > l2.answered + hang_up_after:
                trunk.hang_up(l1)
                bye_sent = True
            early = one_beh.get("bye_while_two_rings")
            if l1 and l2 and early and not bye_sent and not l2.answered and time.monotonic() > l2.invited + early:
                trunk.hang_up(l1)
                bye_sent = True
            if re.search(rf"dialout={sid}[\s\S]*dialout ended", log_text()):
                break
            time.sleep(0.05)
        time.sleep(0.5)
        outcome = outcome_of(sid, 2)
        ok, why = check(trunk, one, two, redirect, outcome, t_post)
        if ok:
            ok, why = check_gone(sid)
        if ok:
            ok, why = check_records(sid, trunk, outcome)
        if trunk.errors:
            ok, why = False, f"trunk UA: {trunk.errors}"
        result(f"{proto}-{name}", ok, why)
    finally:
        trunk.close()
        time.sleep(0.3)


def calls_seen(trunk):
    return [(leg.user, leg.from_user, leg.final) for leg in trunk.order]


def ringback_ok(l1, l2):
    """Stage one heard the NANP ring-back (440+480 Hz, not 350/600/1000)
    while stage two rang."""
    _, x = energy(l1.packets, l2.invited + 0.3, l2.invited + 1.6)
    if len(x) < 4000:
        return False, f"stage one heard {len(x)} samples while stage two rang"
    p = {hz: mt.goertzel(x, hz) for hz in (440, 480, 350, 600, 1000)}
    if min(p[440], p[480]) < 20 * max(p[350], p[600], p[1000]):
        return False, f"ring-back frequencies {p}"
    return True, ""


def bridged_ok(l1, l2):
    """After the bridge each stage hears the other's tone."""
    if not (l2.answered and l1.ended):
        return False, "not bridged"
    _, x1 = energy(l1.packets, l2.answered + 0.4, l1.ended - 0.1)
    _, x2 = energy(l2.packets, l2.answered + 0.4, l1.ended - 0.1)
    if len(x1) < 4000 or len(x2) < 4000:
        return False, f"after the bridge: {len(x1)} samples at stage one, {len(x2)} at stage two"
    p1 = (mt.goertzel(x1, TWO_HZ), mt.goertzel(x1, 440))
    p2 = (mt.goertzel(x2, ONE_HZ), mt.goertzel(x2, TWO_HZ))
    if p1[0] < 20 * p1[1] or p2[0] < 20 * p2[1]:
        return False, f"tones after the bridge: stage one {p1}, stage two {p2}"
    if not l2.bye_from_mediator:
        return False, "stage two got no BYE after stage one hung up"
    return True, ""


def connected_checks(trunk, one, two, redirect, outcome, want_from=None, confirm=False):
    l1, l2 = trunk.leg_for(one), trunk.leg_for(two)
    seen = calls_seen(trunk)
    if outcome != "connected":
        return False, f"outcome {outcome}, calls {seen}"
    if not l1 or not l2 or trunk.order[0] is not l1:
        return False, f"calls {seen}"
    f1, f2 = want_from or (redirect, redirect)
    if (l1.from_user, l2.from_user) != (f1, f2):
        return False, f"From users {l1.from_user}, {l2.from_user}; want {f1}, {f2}"
    if l2.invited < l1.answered:
        return False, "stage two called before stage one answered"
    if confirm:
        # The prompt's speech reached stage one before stage two was called.
        rms, x = energy(l1.packets, l1.answered + 0.3, l1.answered + 2.2)
        if rms < 300:
            return False, f"prompt energy {rms:.0f} ({len(x)} samples)"
        if l2.invited < l1.answered + 3.0:
            return False, f"stage two called {l2.invited - l1.answered:.1f} s after answer, before the key"
    ok, why = ringback_ok(l1, l2)
    if not ok:
        return ok, why
    return bridged_ok(l1, l2)


def not_confirmed_checks(trunk, one, two, outcome, min_secs):
    l1 = trunk.leg_for(one)
    if outcome != "not_confirmed":
        return False, f"outcome {outcome}, calls {calls_seen(trunk)}"
    if trunk.leg_for(two):
        return False, "stage two was called"
    if not l1 or not l1.bye_from_mediator:
        return False, "stage one got no BYE"
    if l1.bye_from_mediator - l1.answered < min_secs:
        return False, f"BYE {l1.bye_from_mediator - l1.answered:.1f} s after answer"
    rms, _ = energy(l1.packets, l1.answered + 0.3, l1.answered + 2.2)
    if rms < 300:
        return False, f"prompt energy {rms:.0f}"
    return True, ""


def cases(proto):
    c = []

    def add(name, one_beh, two_beh, attrs, check, **kw):
        c.append((name, lambda n: run_case(proto, n, one_beh, two_beh, attrs, check, **kw)))

    add("connected-no-confirmation", {"answer_after": 0.3}, {"answer_after": 2.0}, {},
        lambda t, o, w, r, out, _: connected_checks(t, o, w, r, out))
    add("confirm-rfc4733-1", {"answer_after": 0.3, "press": "1", "press_at": 3.2}, {"answer_after": 2.0},
        {"use_call_confirmation": "true"},
        lambda t, o, w, r, out, _: connected_checks(t, o, w, r, out, confirm=True))
    add("confirm-info-1", {"answer_after": 0.3, "press": "info:1", "press_at": 3.2}, {"answer_after": 2.0},
        {"use_call_confirmation": "http://127.0.0.1:9/unreachable.wav"},
        lambda t, o, w, r, out, _: connected_checks(t, o, w, r, out, confirm=True))
    add("confirm-pressed-2", {"answer_after": 0.3, "press": "2", "press_at": 3.2}, {"answer_after": 1.0},
        {"use_call_confirmation": "true"},
        lambda t, o, w, r, out, _: not_confirmed_checks(t, o, w, out, 3.0))
    add("confirm-never-pressed", {"answer_after": 0.3}, {"answer_after": 1.0},
        {"use_call_confirmation": "true"},
        lambda t, o, w, r, out, _: not_confirmed_checks(t, o, w, out, 2 * (2.4 + CONFIRM_SECS) - 0.5))

    def busy_check(t, o, w, r, out, _):
        l1, l2 = t.leg_for(o), t.leg_for(w)
        if out != "stage_two_busy" or not l2 or l2.final != 486:
            return False, f"outcome {out}, calls {calls_seen(t)}"
        if not l1.bye_from_mediator:
            return False, "stage one got no BYE"
        return True, ""
    add("stage-two-busy", {"answer_after": 0.3}, {"busy": True}, {}, busy_check)

    def stage_one_busy(t, o, w, r, out, _):
        if out != "stage_one_busy" or t.leg_for(w):
            return False, f"outcome {out}, calls {calls_seen(t)}"
        return True, ""
    add("stage-one-busy", {"busy": True}, {"answer_after": 0.3}, {}, stage_one_busy)

    for code in (401, 407):
        def auth_check(t, o, w, r, out, _, code=code):
            if [(u, ch, v) for u, ch, v in t.challenged] != [[o, code, True], [w, code, True]] and \
                    [tuple(x) for x in t.challenged] != [(o, code, True), (w, code, True)]:
                return False, f"challenges {t.challenged}"
            return connected_checks(t, o, w, r, out)
        add(f"trunk-challenge-{code}", {"answer_after": 0.3, "challenge": code},
            {"answer_after": 2.0, "challenge": code}, {}, auth_check)

    def hung_up_check(t, o, w, r, out, _):
        l2 = t.leg_for(w)
        if out != "stage_one_hung_up" or not l2 or l2.final != 487 or l2.answered:
            return False, f"outcome {out}, calls {calls_seen(t)}"
        return ringback_ok(t.leg_for(o), l2)
    add("stage-one-hangs-up-while-stage-two-rings", {"answer_after": 0.3, "bye_while_two_rings": 1.8},
        {"answer_after": 30}, {}, hung_up_check)

    def moh_check(t, o, w, r, out, _):
        l1, l2 = t.leg_for(o), t.leg_for(w)
        if out != "connected":
            return False, f"outcome {out}, calls {calls_seen(t)}"
        rms, x = energy(l1.packets, l2.invited + 0.3, l2.invited + 1.6)
        p = {hz: mt.goertzel(x, hz) for hz in (440, 480)}
        if rms < 300 or len(x) < 4000:
            return False, f"music while stage two rang: rms {rms:.0f}, {len(x)} samples"
        if p[440] > 0.5 * sum(mt.goertzel(x, hz) for hz in range(200, 2000, 50)):
            return False, f"a ring-back tone, not music: {p}"
        return bridged_ok(l1, l2)
    add("ringback-moh", {"answer_after": 0.3}, {"answer_after": 2.0}, {"ringback": "moh"}, moh_check)

    def silence_check(t, o, w, r, out, _):
        l1, l2 = t.leg_for(o), t.leg_for(w)
        if out != "connected":
            return False, f"outcome {out}, calls {calls_seen(t)}"
        rms, x = energy(l1.packets, l2.invited + 0.3, l2.invited + 1.6)
        if rms > 50:
            return False, f"not silent while stage two rang: rms {rms:.0f}"
        return bridged_ok(l1, l2)
    add("ringback-false-silence", {"answer_after": 0.3}, {"answer_after": 2.0}, {"ringback": "false"}, silence_check)

    def tone_at(leg, t0, t1, hz, others=(440, 480, 600, 1000)):
        _, x = energy(leg.packets, t0, t1)
        p = {f: mt.goertzel(x, f) for f in (hz,) + others}
        return len(x) >= 2400 and p[hz] > 20 * max(p[f] for f in others), f"{len(x)} samples, {p}"

    def announce_check(t, o, w, r, out, _):
        l1, l2 = t.leg_for(o), t.leg_for(w)
        if out != "connected":
            return False, f"outcome {out}, calls {calls_seen(t)}"
        ok, why = tone_at(l1, l1.answered + 0.2, l1.answered + 0.8, ANN_HZ)
        if not ok:
            return False, f"announcement ({ANN_HZ} Hz) not heard by stage one: {why}"
        if l2.invited < l1.answered + 0.9:
            return False, f"stage two called {l2.invited - l1.answered:.2f} s after answer, during the announcement"
        return connected_checks(t, o, w, r, out)
    add("announce-before-stage-two", {"answer_after": 0.3}, {"answer_after": 2.0}, {"announce": "ann.wav"},
        announce_check)

    def custom_prompt_check(t, o, w, r, out, _):
        l1 = t.leg_for(o)
        ok, why = tone_at(l1, l1.answered + 0.2, l1.answered + 1.2, PROMPT_HZ)
        if not ok:
            return False, f"custom prompt ({PROMPT_HZ} Hz) not heard: {why}"
        return connected_checks(t, o, w, r, out)
    add("confirm-custom-prompt", {"answer_after": 0.3, "press": "1", "press_at": 2.0}, {"answer_after": 2.0},
        {"use_call_confirmation": "prompt.wav"}, custom_prompt_check)

    def passthrough_check(t, o, w, r, out, _):
        l1, l2 = t.leg_for(o), t.leg_for(w)
        if out != "connected":
            return False, f"outcome {out}, calls {calls_seen(t)}"
        ok, why = tone_at(l1, l2.invited + 0.4, l2.invited + 1.6, EARLY_HZ)
        if not ok:
            return False, f"stage two's early media ({EARLY_HZ} Hz) not heard by stage one: {why}"
        return bridged_ok(l1, l2)
    add("ringback-passthrough-early-media", {"answer_after": 0.3}, {"answer_after": 2.0, "early_hz": EARLY_HZ},
        {"ringback": "passthrough"}, passthrough_check)

    def no_answer_check(t, o, w, r, out, _):
        l1, l2 = t.leg_for(o), t.leg_for(w)
        if out != "stage_two_no_answer" or not l2 or l2.final != 487:
            return False, f"outcome {out}, calls {calls_seen(t)}"
        if not l1.bye_from_mediator or l2.ended - l2.invited < RING_SECS - 0.5:
            return False, f"stage two cancelled after {l2.ended - l2.invited:.1f} s; BYE to stage one {l1.bye_from_mediator}"
        return True, ""
    add("stage-two-no-answer", {"answer_after": 0.3}, {"answer_after": 60}, {}, no_answer_check)

    def shown_check(t, o, w, r, out, _):
        for leg in (t.leg_for(o), t.leg_for(w)):
            if leg and (leg.display != "Acme Clinic" or mt.hget(leg.invite, "x-campaign") != "c42"):
                return False, f"display {leg.display!r}, X-Campaign {mt.hget(leg.invite, 'x-campaign')!r}"
        return connected_checks(t, o, w, r, out, want_from=(w, o))
    add("hide-false-cnam-x-header", {"answer_after": 0.3}, {"answer_after": 2.0},
        {"hide_origination_did": "false", "cnam": "Acme Clinic", "sip_header_X-Campaign": "c42"}, shown_check)

    # RFC 3261 §13.2.1 / field cases: a trunk that puts its answer in a 183
    # and sends the 200 without SDP. Both stages: the early answer stands,
    # audio flows both ways after the bridge.
    add("early-answer-200-without-sdp", {"answer_after": 0.6, "early_sdp": True, "sdp_in_200": False},
        {"answer_after": 2.0, "early_sdp": True, "sdp_in_200": False}, {},
        lambda t, o, w, r, out, _: connected_checks(t, o, w, r, out))

    def wait_bye(leg, secs):
        end = time.monotonic() + secs
        while time.monotonic() < end and not leg.bye_from_mediator:
            time.sleep(0.05)
        return leg.bye_from_mediator

    def crossed_check(t, o, w, r, out, _):
        # RFC 3261 §9.1/§15: the 200 that crossed our CANCEL at the ring
        # timeout is ACKed and ended with BYE; stage two did not answer.
        l1, l2 = t.leg_for(o), t.leg_for(w)
        if out != "stage_two_no_answer" or not l2 or l2.final != 200:
            return False, f"outcome {out}, calls {calls_seen(t)}"
        if not l2.acked or not wait_bye(l2, 3):
            return False, f"stage two's crossing 200: ACK {l2.acked}, BYE {l2.bye_from_mediator}"
        if not l1.bye_from_mediator:
            return False, "stage one got no BYE"
        return True, ""
    add("stage-two-answer-crosses-ring-timeout-cancel", {"answer_after": 0.3},
        {"answer_after": 60, "on_cancel": 0}, {}, crossed_check)

    def late_check(t, o, w, r, out, _):
        # A 200 that comes long after the CANCEL (the dialout has ended and
        # is recorded): still ACKed and ended with BYE, never left up.
        l1 = t.leg_for(o)
        if out != "stage_one_no_answer" or t.leg_for(w):
            return False, f"outcome {out}, calls {calls_seen(t)}"
        if not wait_bye(l1, 12):
            return False, f"late 200 to stage one: ACK {l1.acked}, no BYE"
        if not l1.acked or l1.bye_from_mediator < l1.answered:
            return False, f"late 200 to stage one: ACK {l1.acked}, BYE {l1.bye_from_mediator}"
        # Ended by the leg's watcher, after the dialout had been recorded.
        if not re.search(rf"answered after the call ended.*{re.escape(l1.cid)}|{re.escape(l1.cid)}.*answered after the call ended", log_text()):
            return False, "no 'answered after the call ended' BYE logged for stage one"
        return True, ""
    def crossing_bye_check(t, o, w, r, out, _):
        # Stage one's BYE sent with its key crosses Mediator's BYE: it is
        # answered (200, or 481 once the dialog has gone) on its first
        # sending, not left to retransmissions.
        l1 = t.leg_for(o)
        end = time.monotonic() + 2
        while time.monotonic() < end and l1 and l1.bye_answer is None:
            time.sleep(0.05)
        if out not in ("not_confirmed", "stage_one_hung_up") or t.leg_for(w):
            return False, f"outcome {out}, calls {calls_seen(t)}"
        if l1.bye_answer not in (200, 481):
            return False, f"stage one's BYE answered {l1.bye_answer}"
        return True, ""
    add("confirm-info-2-with-bye-crossing", {"answer_after": 0.3, "press": "info:2", "press_at": 3.2,
                                            "bye_with_press": True}, {"answer_after": 1.0},
        {"use_call_confirmation": "true"}, crossing_bye_check)

    add("stage-one-answers-after-the-dialout-ended", {"answer_after": 60, "on_cancel": 6.0, "record_status": 487},
        {"answer_after": 0.3}, {}, late_check)
    return c


def case_metrics(proto):
    """After the cases, GET /metrics counts each dialout by its outcome as
    the calls logged them ("dialout ended"), has one lateness sample per
    dialout placed ("dialout placed"), and no call or RTP port pair is left
    in use."""
    name = f"{proto}-metrics-count-dialouts"
    time.sleep(1.0)
    with urllib.request.urlopen(f"http://{HOST}:{API_PORT}/metrics", timeout=5) as r:
        text = r.read().decode()

    def metric(series):
        m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
        return float(m.group(1)) if m else None
    logged = re.findall(r"dialout ended.*?outcome=\"?(\w+)", log_text())
    logged += ["missed"] * len(re.findall(r"dialout missed", log_text()))
    want = {o: float(logged.count(o)) for o in set(logged)}
    got = {o: metric(f'mediator_dialouts_total{{outcome="{o}"}}') for o in want}
    total = sum(float(v) for v in re.findall(r"^mediator_dialouts_total\{[^}]*\} (\S+)$", text, re.M))
    placed = float(len(re.findall(r"dialout placed", log_text())))
    lateness = metric("mediator_dialout_start_lateness_seconds_count")
    gauges = (metric("mediator_calls_active"), metric("mediator_rtp_streams_active"))
    if not logged or got != want or total != len(logged):
        return result(name, False, f"mediator_dialouts_total {got} (sum {total}), logged {want}")
    if lateness != placed:
        return result(name, False, f"lateness samples {lateness}, dialouts placed {placed}")
    if gauges != (0.0, 0.0):
        return result(name, False, f"calls_active, rtp_streams_active {gauges} after the cases")
    result(name, True)


def case_oversized_invite(proto):
    """An INVITE too large for any UDP datagram (many long sip_header_X-*)
    to a UDP trunk that has no TCP: stage one fails at once (503,
    stage_one_failed), nothing is sent, and the trunk is never called."""
    name = f"{proto}-oversized-invite-fails-stage-one"
    one, two, redirect = numbers()
    trunk = Trunk(proto, {one: {"answer_after": 0.3, "rtp": ONE_RTP}, two: {"answer_after": 0.3, "rtp": TWO_RTP}})
    trunk.start()
    try:
        attrs = {f"sip_header_X-Big{i}": "v" * 500 for i in range(140)}
        sid = place(one, two, redirect, attrs)
        outcome = outcome_of(sid, 20)
        if outcome != "stage_one_failed" or trunk.order:
            return result(name, False, f"outcome {outcome}, calls {calls_seen(trunk)}")
        code, v = api("GET", f"/calls?filter=dialout_sid+eq+{sid}&limit=10")
        items = (v.get("body") or {}).get("items", []) if code == 200 else []
        got = [(r.get("number_dst"), r.get("sip_status"), r.get("hangup_side")) for r in items]
        if got != [(one, 503, "system")]:
            return result(name, False, f"records {got}")
        ok, why = check_gone(sid)
        result(name, ok, why)
    finally:
        trunk.close()
        time.sleep(0.3)


def case_shutdown(proto, med, crossing=False):
    """SIGTERM while stage two rings: after sip.drain_secs the dialout is
    cancelled (CANCEL to stage two, BYE to stage one), recorded as
    `cancelled`, and Mediator exits. With `crossing`, stage two answers the
    CANCEL's INVITE with 200 (the answer crossed the CANCEL): Mediator
    ACKs it and ends it with BYE before it exits."""
    name = f"{proto}-shutdown-{'200-crosses-cancel' if crossing else 'cancels-ringing-dialout'}"
    one, two, redirect = numbers()
    two_beh = {"answer_after": 60, "rtp": TWO_RTP, "hz": TWO_HZ}
    if crossing:
        two_beh["on_cancel"] = 0.1
    trunk = Trunk(proto, {one: {"answer_after": 0.3, "rtp": ONE_RTP, "hz": ONE_HZ}, two: two_beh})
    trunk.start()
    try:
        sid = place(one, two, redirect)
        end = time.monotonic() + 10
        while time.monotonic() < end and not trunk.leg_for(two):
            time.sleep(0.05)
        if not trunk.leg_for(two):
            return result(name, False, f"stage two not called: {calls_seen(trunk)}")
        t_term = time.monotonic()
        med.terminate()
        med.wait(20)
        outcome = outcome_of(sid, 1)
        l1, l2 = trunk.leg_for(one), trunk.leg_for(two)
        want = 200 if crossing else 487
        if outcome != "cancelled" or l2.final != want or not l1.bye_from_mediator:
            return result(name, False, f"outcome {outcome}, calls {calls_seen(trunk)}, BYE {l1.bye_from_mediator}")
        if not l2.cancelled:
            return result(name, False, "stage two got no CANCEL")
        if l2.cancelled - t_term < DRAIN_SECS - 0.5:
            return result(name, False, f"cancelled {l2.cancelled - t_term:.1f} s after SIGTERM, before the drain time")
        # The records reached the store before the process ended.
        db = sqlite3.connect(os.path.join(os.path.dirname(LOG), "mediator.db"))
        rows = db.execute("SELECT number_dst, sip_status, outcome FROM calls WHERE dialout_sid = ? "
                          "ORDER BY date_start", (sid,)).fetchall()
        db.close()
        if rows != [(one, 200, "cancelled"), (two, want, "cancelled")]:
            return result(name, False, f"stored records {rows}")
        if crossing and not (l2.acked and l2.bye_from_mediator):
            return result(name, False, f"stage two's crossing 200: ACK {l2.acked}, BYE {l2.bye_from_mediator}")
        result(name, True)
    finally:
        trunk.close()


def main():
    global LOG
    binary, proto = sys.argv[1], sys.argv[2]
    mt.B_SIP = TRUNK_PORT  # the Contact in the trunk UA's responses
    only = re.compile(sys.argv[3] if len(sys.argv) > 3 else ".")
    tmp = tempfile.mkdtemp(prefix="mediator-dialout-")
    conf = os.path.join(tmp, "mediator.toml")
    mt.write_wav(os.path.join(tmp, "ann.wav"), 8000, 1, 1.0, lambda t: 0.4 * math.sin(2 * math.pi * ANN_HZ * t))
    mt.write_wav(os.path.join(tmp, "prompt.wav"), 16000, 1, 1.5, lambda t: 0.4 * math.sin(2 * math.pi * PROMPT_HZ * t))
    transport = ";transport=tcp" if proto == "tcp" else ""
    with open(conf, "w") as f:
        f.write(f"""[api]
listen = "{HOST}:{API_PORT}"

[sip]
listen = ["udp:{HOST}:{SIP_PORT}", "tcp:{HOST}:{SIP_PORT}"]
advertised_host = "{HOST}"
trunk = "sip:{HOST}:{TRUNK_PORT}{transport}"
trusted = ["127.0.0.1/32"]
ring_timeout_secs = {RING_SECS}
drain_secs = {DRAIN_SECS}
confirm_timeout_secs = {CONFIRM_SECS}
trunk_username = "{TRUNK_USER}"
trunk_password = "{TRUNK_PASS}"

[media]
advertised_ip = "{HOST}"
bind_ip = "{HOST}"
rtp_ports = "{RTP_LOW}-{RTP_HIGH}"
audio_dir = "{tmp}"

[database]
url = "sqlite://{tmp}/mediator.db"

[[accounts]]
name = "dialout tests"
login = "{LOGIN}"
password = "{PASSWORD}"
dids = [{", ".join(f'"{d}"' for d in DIDS)}]
permissions = ["hide_origination_did"]
""")
    LOG = os.path.join(tmp, "mediator.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIATOR_")}
    env["MEDIATOR_LOG"] = "info,rsipstack=warn"

    def start():
        """Starts Mediator (its log appended to LOG) and waits for its API."""
        m = subprocess.Popen([binary, "serve", "--config", conf], stdout=open(LOG, "a"),
                             stderr=subprocess.STDOUT, env=env)
        for _ in range(300):
            try:
                if api("GET", "/dids?limit=1")[0] == 200:
                    return m
            except OSError:
                pass
            time.sleep(0.1)
        print(log_text()[-2000:])
        print("0 passed, 1 failed")
        m.kill()
        sys.exit(1)

    med = start()
    try:
        if proto == "udp" and only.search("oversized-invite-fails-stage-one"):
            try:
                case_oversized_invite(proto)
            except Exception as e:  # noqa: BLE001 - a case that crashes fails
                result(f"{proto}-oversized-invite-fails-stage-one", False, repr(e))
        for name, fn in cases(proto):
            if only.search(name):
                try:
                    fn(name)
                except Exception as e:  # noqa: BLE001 - a case that crashes fails
                    result(f"{proto}-{name}", False, repr(e))
        if only.search("metrics-count-dialouts"):
            try:
                case_metrics(proto)
            except Exception as e:  # noqa: BLE001 - a case that crashes fails
                result(f"{proto}-metrics-count-dialouts", False, repr(e))
        # Last: they stop Mediator (started again for the second).
        for crossing in (False, True):
            name = f"shutdown-{'200-crosses-cancel' if crossing else 'cancels-ringing-dialout'}"
            if not only.search(name):
                continue
            if med.poll() is not None:
                med = start()
            try:
                case_shutdown(proto, med, crossing)
            except Exception as e:  # noqa: BLE001 - a case that crashes fails
                result(f"{proto}-{name}", False, repr(e))
    finally:
        med.terminate()
        try:
            med.wait(10)
        except subprocess.TimeoutExpired:
            med.kill()
        if FAIL and os.environ.get("KEEP", "") != "1":
            print(log_text()[-6000:])
        if os.environ.get("KEEP", "") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")
    print(f"{PASS} passed, {FAIL} failed")
    sys.exit(1 if FAIL else 0)


if __name__ == "__main__":
    main()
