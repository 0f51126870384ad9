#!/usr/bin/env python3
"""How many concurrent calls with Mediator-generated audio one instance
sustains with packet pacing jitter under 2 ms at the receiver.

For each level N: Mediator (release build) starts with fresh SQLite; N
calls are placed to a binding with `ringback = "moh"` whose callee (the
trunk, scripted here) only ever answers 180, so every call stays in early
media with Mediator playing music on hold to the caller. All callers' SDP
point at one receiver socket; packets are told apart by their source port
(Mediator's relay port of that call). Arrival times are the kernel's
(SO_TIMESTAMPNS), so this script's own lateness does not count as jitter.

Per stream, over the measuring window: packets, the RFC 3550 §6.4.1
interarrival jitter J (ms, from RTP timestamps and arrival times) and the
largest deviation of an inter-arrival gap from 20 ms. Reported: streams
heard, loss, J p50/p99/max over streams, gap deviation p99/max over all
packets, Mediator's CPU.

Usage: bench_media.py MEDIATOR_BIN "N1 N2 ..." MEASURE_SECS RTP_LOW RTP_HIGH
Ports: Mediator SIP 37060, REST 37088; callers' SIP 37070, callee 37080,
receiver 37600 (loopback). Prints a markdown table row per level.
"""
import base64
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HOST = "127.0.0.1"
SIP_PORT, API_PORT, A_SIP, B_SIP, RX_PORT = 37060, 37088, 37070, 37080, 37600
LOGIN, PASSWORD = "bench", "bench-password"
DID, DEST, CALLER = "15162065390", "15162065391", "12127361290"
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def api(method, path, body=None):
    req = urllib.request.Request(f"http://{HOST}:{API_PORT}/mediator/v1{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode())
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def callee(stop):
    """The trunk: 180 to every INVITE, 200 to CANCEL/BYE, never answers."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, B_SIP))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.settimeout(0.2)
    while not stop.is_set():
        try:
            d, src = s.recvfrom(65535)
        except socket.timeout:
            continue
        t = d.decode("utf-8", "replace")
        head = t.split("\r\n\r\n", 1)[0]
        lines = head.split("\r\n")
        if lines[0].startswith("SIP/2.0") or lines[0].startswith("ACK"):
            continue
        keep = [ln for ln in lines[1:] if re.match(r"(?i)(via|from|to|call-id|cseq):", ln)]
        code = "180 Ringing" if lines[0].startswith("INVITE") else "200 OK"
        out = []
        for ln in keep:
            if ln.lower().startswith("to:") and "tag=" not in ln:
                ln += ";tag=bench"
            out.append(ln)
        s.sendto(("SIP/2.0 " + code + "\r\n" + "\r\n".join(out) + "\r\nContent-Length: 0\r\n\r\n").encode(), src)
    s.close()


def place_calls(n, rate):
    """Sends n INVITEs (rate per second) from one socket; counts 183s."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, A_SIP))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.settimeout(0.05)
    sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"m=audio {RX_PORT} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    got = set()
    t0 = time.monotonic()
    for i in range(n):
        cid = f"bench-{i}-{random.getrandbits(32)}"
        inv = (f"INVITE sip:{DID}@{HOST}:{SIP_PORT} SIP/2.0\r\nVia: SIP/2.0/UDP {HOST}:{A_SIP};branch=z9hG4bK{random.getrandbits(48)};rport\r\n"
               f"From: <sip:{CALLER}@{HOST}>;tag=a{i}\r\nTo: <sip:{DID}@{HOST}>\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\n"
               f"Contact: <sip:{CALLER}@{HOST}:{A_SIP}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n"
               f"Content-Length: {len(sdp)}\r\n\r\n{sdp}")
        s.sendto(inv.encode(), (HOST, SIP_PORT))
        due = t0 + (i + 1) / rate
        while time.monotonic() < due:
            try:
                d, _ = s.recvfrom(65535)
                if d.startswith(b"SIP/2.0 183"):
                    m = re.search(rb"(?i)call-id:\s*(\S+)", d)
                    if m:
                        got.add(m.group(1))
            except socket.timeout:
                pass
    end = time.monotonic() + 10
    while len(got) < n and time.monotonic() < end:
        try:
            d, _ = s.recvfrom(65535)
            if d.startswith(b"SIP/2.0 183"):
                m = re.search(rb"(?i)call-id:\s*(\S+)", d)
                if m:
                    got.add(m.group(1))
        except socket.timeout:
            pass
    return s, len(got)


def measure(secs):
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:  # SO_RCVBUFFORCE (root): past net.core.rmem_max
        r.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 64 << 20)
    except OSError:
        r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    r.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    r.bind((HOST, RX_PORT))
    r.settimeout(0.2)
    streams = {}
    end = time.monotonic() + secs
    warm = time.monotonic() + 1.0  # the first second (calls settling) does not count
    while time.monotonic() < end:
        try:
            d, anc, _, src = r.recvmsg(2048, 64)
        except socket.timeout:
            continue
        if len(d) < 12:
            continue
        arr = None
        for lvl, typ, data in anc:
            if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                sec, ns = struct.unpack("qq", data[:16])
                arr = sec + ns / 1e9
        if arr is None or time.monotonic() < warm:
            continue
        seq = struct.unpack("!H", d[2:4])[0]
        ts = struct.unpack("!I", d[4:8])[0]
        st = streams.setdefault(src[1], {"n": 0, "first_seq": seq, "last": None, "J": 0.0, "dev": []})
        st["n"] += 1
        if st["last"] is not None:
            la, lts, lseq = st["last"]
            transit_d = (arr - la) - ((ts - lts) & 0xFFFFFFFF) / 8000.0
            st["J"] += (abs(transit_d) - st["J"]) / 16
            if (seq - lseq) & 0xFFFF == 1:
                st["dev"].append(abs((arr - la) - 0.020))
        st["last"] = (arr, ts, seq)
        st["last_seq"] = seq
    r.close()
    return streams


def pct(v, p):
    if not v:
        return 0.0
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100 * len(v)))]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])


def level(binary, n, secs, rtp_low, rtp_high, tmp):
    conf = os.path.join(tmp, f"m{n}.toml")
    with open(conf, "w") as f:
        f.write(f"""[api]
listen = "{HOST}:{API_PORT}"
[sip]
listen = ["udp:{HOST}:{SIP_PORT}"]
advertised_host = "{HOST}"
trunk = "sip:{HOST}:{B_SIP}"
trusted = ["127.0.0.1/32"]
ring_timeout_secs = 600
drain_secs = 1
[media]
advertised_ip = "{HOST}"
bind_ip = "{HOST}"
rtp_ports = "{rtp_low}-{rtp_high}"
[database]
url = "sqlite://{tmp}/m{n}.db"
[[accounts]]
name = "bench"
login = "{LOGIN}"
password = "{PASSWORD}"
dids = ["{DID}"]
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIATOR_")}
    env["MEDIATOR_LOG"] = "warn"
    log = open(os.path.join(tmp, f"m{n}.log"), "w")
    med = subprocess.Popen([binary, "serve", "--config", conf], stdout=log, stderr=subprocess.STDOUT, env=env)
    stop = threading.Event()
    th = threading.Thread(target=callee, args=(stop,), daemon=True)
    th.start()
    a = None
    try:
        for _ in range(300):
            try:
                if api("GET", "/dids?limit=1") == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        if api("POST", "/bindings", {"destination_did": DEST, "redirect_did": DID,
                                     "attributes": {"ringback": "moh"}}) != 200:
            raise RuntimeError("binding not created")
        a, early = place_calls(n, rate=200)
        c0, t0 = cpu_ticks(med.pid), time.monotonic()
        streams = measure(secs)
        cpu = (cpu_ticks(med.pid) - c0) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0) * 100
        heard = len(streams)
        pk = sum(s["n"] for s in streams.values())
        expected = sum(((s["last_seq"] - s["first_seq"]) & 0xFFFF) + 1 for s in streams.values())
        loss = 100.0 * (1 - pk / expected) if expected else 100.0
        js = [s["J"] * 1000 for s in streams.values()]
        devs = [d * 1000 for s in streams.values() for d in s["dev"]]
        row = (f"| {n} | {early} | {heard} | {pk} | {loss:.2f} % | {pct(js, 50):.3f} | {pct(js, 99):.3f} | {max(js, default=0):.3f} "
               f"| {pct(devs, 99):.2f} | {max(devs, default=0):.2f} | {cpu:.0f} % |")
        ok = heard >= n and pct(js, 99) < 2.0 and loss < 1.0
        return row, ok
    finally:
        stop.set()
        med.terminate()
        try:
            med.wait(15)
        except subprocess.TimeoutExpired:
            med.kill()
            med.wait()
        th.join()
        if a:
            a.close()


def main():
    binary, levels, secs = sys.argv[1], [int(x) for x in sys.argv[2].split()], float(sys.argv[3])
    rtp_low, rtp_high = int(sys.argv[4]), int(sys.argv[5])
    tmp = tempfile.mkdtemp(prefix="mediator-bench-media-")
    print("| streams placed | 183s | streams heard | packets | loss | J p50 ms | J p99 ms | J max ms | gap dev p99 ms | gap dev max ms | Mediator CPU | J p99 < 2 ms, loss < 1 % |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    best = 0
    for n in levels:
        row, ok = level(binary, n, secs, rtp_low, rtp_high, tmp)
        print(row + (" **yes** |" if ok else " no |"), flush=True)
        if ok:
            best = max(best, n)
    print(f"sustained with J p99 < 2 ms and < 1 % loss: {best} concurrent generated streams")


if __name__ == "__main__":
    main()
