"""A caller that changes its RTP source mid-call, and a callee, as scripted
user agents (Python 3 standard library only) for sip-tests/rtp-change/run.sh.

The caller (A leg) places a call through Mediator to the callee (B leg, at
the trunk address), both over UDP on 127.0.0.1. Both send RTP (PCMU, 20 ms
packets) and RTCP (a small sender report every 100 ms, faster than RFC 3550
asks, so the test is short). After PHASE1 seconds the caller moves: it sends
from a NEW port pair with a NEW SSRC and new sequence numbers, without any
SIP (its SDP still names the old pair), as a phone behind a NAT that rebinds
or a media server that takes over does (RFC 3550 section 8.2, symmetric RTP,
fault class 15). While the old stream is live, a stranger sprays packets at
Mediator's A-leg port (RTP bleed): they must never reach the callee.

The test asserts, from what each party receives on its own sockets:
  * before the switch, the callee gets the caller's first stream and the
    caller gets the callee's stream at its old port;
  * the callee gets the caller's NEW stream (new SSRC), starting within
    MAX_GAP seconds of the switch, and most of it;
  * the caller gets the callee's stream at its NEW port within MAX_GAP, and
    nothing at the old port once that has happened;
  * RTCP follows: the callee gets the caller's RTCP from the new port, and
    the caller gets the callee's RTCP at the new RTCP port;
  * not one packet of the stranger reaches the callee;
  * the call then ends normally (BYE, 200).

usage: ua.py --med-port P --trunk-port T --did D --caller N --base-port B
Ports B..B+7 (four RTP/RTCP pairs: caller old, caller new, callee, stranger)
must be free. Prints "PASS rtp-source-change: ..." or "FAIL ...: why" and
exits 0 or 1."""
import argparse
import queue
import random
import re
import socket
import struct
import sys
import threading
import time

HOST = "127.0.0.1"
PHASE1 = 1.5   # seconds of the first stream
PHASE2 = 2.0   # seconds after the switch
PTIME = 0.02
MAX_GAP = 0.6  # the new stream must flow this soon after the switch (250 ms silence + 3 packets + slack)
NAME = "rtp-source-change"


class Fail(Exception):
    pass


def rnd(n=10):
    return "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


class Msg:
    def __init__(self, raw):
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("utf-8", "replace").split("\r\n")
        self.start = lines[0]
        self.headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.append((name.strip().lower(), value.strip()))
        self.is_response = self.start.startswith("SIP/2.0 ")
        self.code = int(self.start.split()[1]) if self.is_response else 0
        self.method = None if self.is_response else self.start.split()[0]

    def get(self, name):
        return next((v for n, v in self.headers if n == name), None)

    def all(self, name):
        return [v for n, v in self.headers if n == name]


def render(start, headers, body=b""):
    hs = list(headers) + [("Content-Length", str(len(body)))]
    return (start + "\r\n" + "".join(f"{n}: {v}\r\n" for n, v in hs) + "\r\n").encode() + body


def sdp(port):
    lines = ["v=0", f"o=- {random.randint(1, 10**9)} 1 IN IP4 {HOST}", "s=-", f"c=IN IP4 {HOST}",
             "t=0 0", f"m=audio {port} RTP/AVP 0", "a=rtpmap:0 PCMU/8000", "a=ptime:20",
             "a=sendrecv"]
    return ("\r\n".join(lines) + "\r\n").encode()


def sdp_audio_port(body):
    m = re.search(rb"m=audio (\d+)", body)
    if not m:
        raise Fail(f"no m=audio in SDP: {body[:200]!r}")
    return int(m.group(1))


def response(req, code, reason, tag=None, contact=None, body=b""):
    to = req.get("to")
    if tag and ";tag=" not in to:
        to += f";tag={tag}"
    hs = [("Via", v) for v in req.all("via")]
    hs += [("From", req.get("from")), ("To", to), ("Call-ID", req.get("call-id")),
           ("CSeq", req.get("cseq"))]
    if contact:
        hs.append(("Contact", contact))
    if body:
        hs.append(("Content-Type", "application/sdp"))
    return render(f"SIP/2.0 {code} {reason}", hs, body)


class SipSock:
    """A UDP SIP socket; what arrives goes to a queue, read with `wait`."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, port))
        self.port = self.sock.getsockname()[1]
        self.inbox = queue.Queue()
        self.pending = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(65535)
            except OSError:
                return
            if data.strip(b"\r\n"):
                self.inbox.put((Msg(data), peer))

    def send(self, data, peer):
        self.sock.sendto(data, peer)

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            for i, (m, peer) in enumerate(self.pending):
                if pred(m):
                    del self.pending[i]
                    return m, peer
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail(f"no {what} within {timeout:g} s (got {[m.start for m, _ in self.pending]})")
            try:
                self.pending.append(self.inbox.get(timeout=left))
            except queue.Empty:
                pass


# --- RTP / RTCP -------------------------------------------------------------------
def rtp_packet(ssrc, seq, ts, marker=False):
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | 0, seq & 0xFFFF, ts & 0xFFFFFFFF,
                       ssrc) + b"\xff" * 160


def rtcp_sr(ssrc, packets):
    # RFC 3550 6.4.1 sender report without report blocks (28 octets).
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 0, 0, 0, packets, packets * 160)


class Recorder:
    """Records what arrives on a socket: (time, source port, ssrc or None)."""

    def __init__(self, sock, rtcp=False):
        self.sock, self.rtcp = sock, rtcp
        self.got = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(2048)
            except OSError:
                return
            ssrc = None
            if len(data) >= 12 and data[0] >> 6 == 2:
                ssrc = struct.unpack("!I", data[4:8])[0] if self.rtcp else struct.unpack("!I", data[8:12])[0]
            with self.lock:
                self.got.append((time.monotonic(), peer[1], ssrc))

    def snapshot(self):
        with self.lock:
            return list(self.got)


def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, port))
    return s


class Stream:
    """Sends RTP every PTIME and RTCP every 100 ms from `pair` (rtp, rtcp
    sockets) to `dest` (rtp port; rtcp is the next one) until `stop` is set
    or `until` (monotonic) passes."""

    def __init__(self, pair, dest, ssrc, seq0=None):
        self.pair, self.dest, self.ssrc = pair, dest, ssrc
        self.seq = seq0 if seq0 is not None else random.randint(0, 30000)
        self.ts = random.randint(0, 2**31)
        self.sent = 0
        self.stop = threading.Event()

    def run(self, until):
        nxt = time.monotonic()
        n = 0
        while not self.stop.is_set() and time.monotonic() < until:
            self.pair[0].sendto(rtp_packet(self.ssrc, self.seq, self.ts, marker=(n == 0)), (HOST, self.dest))
            self.seq += 1
            self.ts += 160
            self.sent += 1
            if n % 5 == 0:
                self.pair[1].sendto(rtcp_sr(self.ssrc, self.sent), (HOST, self.dest + 1))
            n += 1
            nxt += PTIME
            time.sleep(max(0.0, nxt - time.monotonic()))

    def start(self, until):
        t = threading.Thread(target=self.run, args=(until,), daemon=True)
        t.start()
        return t


# --- the test ---------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--med-port", type=int, required=True)
    ap.add_argument("--trunk-port", type=int, required=True)
    ap.add_argument("--did", required=True)
    ap.add_argument("--caller", required=True)
    ap.add_argument("--base-port", type=int, required=True)
    a = ap.parse_args()
    try:
        detail = run(a)
    except Fail as e:
        print(f"FAIL {NAME}: {e}")
        return 1
    print(f"PASS {NAME}: {detail}")
    return 0


def run(a):
    b = a.base_port
    old = (udp(b), udp(b + 1))        # the caller's first pair (in its SDP)
    new = (udp(b + 2), udp(b + 3))    # where it moves to
    callee_pair = (udp(b + 4), udp(b + 5))
    stranger = (udp(b + 6), udp(b + 7))
    rec = {
        "caller_old": Recorder(old[0]), "caller_new": Recorder(new[0]),
        "caller_old_rtcp": Recorder(old[1], rtcp=True), "caller_new_rtcp": Recorder(new[1], rtcp=True),
        "callee": Recorder(callee_pair[0]), "callee_rtcp": Recorder(callee_pair[1], rtcp=True),
    }
    caller_sip = SipSock(0)
    callee_sip = SipSock(a.trunk_port)
    med = (HOST, a.med_port)

    # --- call set-up ---
    call_id, tag = f"{rnd()}@{HOST}", rnd()
    frm = f"<sip:{a.caller}@{HOST}>;tag={tag}"

    def via():
        return f"SIP/2.0/UDP {HOST}:{caller_sip.port};branch=z9hG4bK{rnd()};rport"

    invite = render(f"INVITE sip:{a.did}@{HOST}:{a.med_port} SIP/2.0", [
        ("Via", via()), ("Max-Forwards", "70"), ("From", frm), ("To", f"<sip:{a.did}@{HOST}>"),
        ("Call-ID", call_id), ("CSeq", "1 INVITE"), ("Contact", f"<sip:{a.caller}@{HOST}:{caller_sip.port}>"),
        ("Content-Type", "application/sdp")], sdp(b))
    caller_sip.send(invite, med)
    inv, inv_peer = callee_sip.wait(lambda m: m.method == "INVITE", 8, "B-leg INVITE at the callee")
    med_b_port = sdp_audio_port(inv.body)
    btag = rnd()
    ok = response(inv, 200, "OK", btag, f"<sip:callee@{HOST}:{callee_sip.port}>", sdp(b + 4))
    callee_sip.send(response(inv, 180, "Ringing", btag, f"<sip:callee@{HOST}:{callee_sip.port}>"), inv_peer)
    callee_sip.send(ok, inv_peer)
    r200, _ = caller_sip.wait(lambda m: m.is_response and m.code >= 200 and "INVITE" in (m.get("cseq") or ""),
                              8, "final response to the INVITE")
    if r200.code != 200:
        raise Fail(f"INVITE answered {r200.code}")
    med_a_port = sdp_audio_port(r200.body)
    to = r200.get("to")
    target = re.search(r"<([^>]+)>", r200.get("contact") or "")
    target = target.group(1) if target else f"sip:{a.did}@{HOST}:{a.med_port}"
    caller_sip.send(render(f"ACK {target} SIP/2.0", [
        ("Via", via()), ("Max-Forwards", "70"), ("From", frm), ("To", to), ("Call-ID", call_id),
        ("CSeq", "1 ACK")]), med)
    callee_sip.wait(lambda m: m.method == "ACK", 5, "ACK of the B leg's 200")

    # --- media: phase 1 (old source), the stranger, phase 2 (new source) ---
    t0 = time.monotonic()
    t_switch = t0 + PHASE1
    t_end = t_switch + PHASE2
    s_old, s_new, s_callee, s_evil = random.sample(range(1, 2**32 - 1), 4)
    callee_stream = Stream(callee_pair, med_b_port, s_callee)
    first = Stream(old, med_a_port, s_old)
    threads = [callee_stream.start(t_end), first.start(t_switch)]
    # The stranger: 20 packets in the middle of phase 1, while the caller talks.
    time.sleep(0.5)
    evil = Stream(stranger, med_a_port, s_evil)
    evil.start(time.monotonic() + 0.4).join()
    threads[1].join()
    second = Stream(new, med_a_port, s_new, seq0=random.randint(40000, 60000))
    t_switch = time.monotonic()
    threads.append(second.start(t_end))
    for t in threads:
        t.join()
    time.sleep(0.3)  # the last packets in flight

    # --- hang up ---
    caller_sip.send(render(f"BYE {target} SIP/2.0", [
        ("Via", via()), ("Max-Forwards", "70"), ("From", frm), ("To", to), ("Call-ID", call_id),
        ("CSeq", "2 BYE")]), med)
    bye, bye_peer = callee_sip.wait(lambda m: m.method == "BYE", 5, "BYE on the B leg")
    callee_sip.send(response(bye, 200, "OK"), bye_peer)
    r, _ = caller_sip.wait(lambda m: m.is_response and "BYE" in (m.get("cseq") or ""), 5, "200 to the BYE")
    if r.code != 200:
        raise Fail(f"BYE answered {r.code}")

    # --- verdict ---
    got = {k: v.snapshot() for k, v in rec.items()}
    callee = got["callee"]
    by_ssrc = {s: [t for t, _, x in callee if x == s] for s in (s_old, s_new, s_evil)}
    if len(by_ssrc[s_old]) < first.sent * 0.8:
        raise Fail(f"callee got {len(by_ssrc[s_old])} of the {first.sent} packets of the first stream")
    if by_ssrc[s_evil]:
        raise Fail(f"RTP bleed: {len(by_ssrc[s_evil])} of the stranger's {evil.sent} packets reached the callee")
    new_at_callee = by_ssrc[s_new]
    if not new_at_callee:
        raise Fail(f"callee never got the caller's new stream ({second.sent} packets sent from port {b + 2})")
    gap_b = new_at_callee[0] - t_switch
    if gap_b > MAX_GAP:
        raise Fail(f"the new stream reached the callee {gap_b * 1000:.0f} ms after the switch (max {MAX_GAP * 1000:.0f})")
    if len(new_at_callee) < second.sent - (MAX_GAP / PTIME) - 5:
        raise Fail(f"callee got only {len(new_at_callee)} of {second.sent} packets of the new stream")
    # The caller: the callee's stream at the old port before, at the new one after.
    before = [t for t, _, x in got["caller_old"] if x == s_callee and t < t_switch]
    if len(before) < (PHASE1 / PTIME) * 0.8:
        raise Fail(f"caller got {len(before)} packets at its first port before the switch")
    at_new = [t for t, _, x in got["caller_new"] if x == s_callee]
    if not at_new:
        raise Fail("caller never got the callee's stream at its new port")
    gap_a = at_new[0] - t_switch
    if gap_a > MAX_GAP:
        raise Fail(f"the callee's stream reached the caller's new port {gap_a * 1000:.0f} ms after the switch")
    if len(at_new) < (PHASE2 - MAX_GAP) / PTIME - 5:
        raise Fail(f"caller got only {len(at_new)} packets at its new port")
    # (100 ms of slack: the two sockets' reader threads time-stamp apart.)
    late_old = [t for t, _, _ in got["caller_old"] if t > at_new[0] + 0.1]
    if late_old:
        raise Fail(f"{len(late_old)} packets still went to the caller's old port after re-latching")
    # RTCP follows on its own port.
    rtcp_new_at_callee = [t for t, _, x in got["callee_rtcp"] if x == s_new]
    if not rtcp_new_at_callee:
        raise Fail("callee never got RTCP from the caller's new RTCP port")
    if any(x == s_evil for _, _, x in got["callee_rtcp"]):
        raise Fail("the stranger's RTCP reached the callee")
    rtcp_at_new = [t for t, _, x in got["caller_new_rtcp"] if x == s_callee]
    if not rtcp_at_new:
        raise Fail("caller never got the callee's RTCP at its new RTCP port")
    return (f"new stream at the callee after {gap_b * 1000:.0f} ms ({len(new_at_callee)}/{second.sent} packets), "
            f"callee's stream at the caller's new port after {gap_a * 1000:.0f} ms ({len(at_new)} packets), "
            f"RTCP re-latched both ways ({len(rtcp_new_at_callee)}/{len(rtcp_at_new)}), "
            f"stranger's {evil.sent} packets all dropped")


if __name__ == "__main__":
    sys.exit(main())
