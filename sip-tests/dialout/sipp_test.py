#!/usr/bin/env python3
"""Dialouts with a SIPp trunk (issue 6, Tests): the release binary places a
dialout made with POST /dialouts (delay 0, use_call_confirmation) and one
SIPp UAS (trunk_uas.xml) at the trunk address answers both stages, over
UDP or TCP (the trunk transport of Mediator's config). Stage two rings
(180) RING_SECS before its 200. Cases:

  press-1     stage one plays RFC 4733 '1' (dtmf_2833_1.pcap) 3 s after the
              answer: stage two is called only after that, both Froms are the
              redirect DID, stage one heard the NANP ring-back (Goertzel:
              440 and 480 Hz each over 20 times 350, 600 and 1000 Hz) while
              stage two rang, PCMU flows both ways on both legs after the
              bridge (tcpdump), stage two's BYE ends both legs; outcome
              connected.
  press-2     dtmf_2833_2.pcap: stage two is never called, stage one gets
              Mediator's BYE within 2 s of the key; outcome not_confirmed.
  never-press no key: stage one gets the BYE no sooner than twice
              sip.confirm_timeout_secs after the answer and heard two
              separate speech bursts, the prompt and its one repeat, with
              at least sip.confirm_timeout_secs - 0.5 s of quiet between
              them; outcome not_confirmed.

In every case stage one heard the confirmation prompt (Mediator's built-in
espeak-ng one: RMS >= 300 from 0.3 to 2.2 s after its ACK). What stage one
heard is the PCMU that tcpdump saw Mediator send from stage one's relay port
(the port of its offer) to SIPp's media port, decoded here, so stage one's
own audio does not mask it; times come from SIPp's -trace_msg log and the
capture's timestamps (both this machine's wall clock). Every case also
checks that GET /dialouts/{sid} is 404 afterwards and that GET /calls holds
the dialout's records with that outcome. The broader coverage (challenges,
busy, INFO, ...) is dialout_test.py's.

Usage: sipp_test.py MEDIATOR_BIN udp|tcp WORKDIR
Ports (127.0.0.1): PORT_BASE (default 21000) + 0 Mediator SIP, + 1 REST,
+ 2 SIPp trunk; RTP: RTP_THOUSANDS (default 43) * 1000 + 0..499 relay,
+ 600 SIPp media. Last line: "N passed, M failed".
"""
import os
import re
import struct
import subprocess
import sys
import time
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dialout_test as dt  # noqa: E402  (REST helpers, ports, DIDs)

mt = dt.mt  # sip-tests/media/media_test.py: G.711, Goertzel, RMS

HERE = os.path.dirname(os.path.abspath(__file__))
SIPP_MP = dt.RTPK + 600
TE = 101  # the telephone-event PT of Mediator's offer to stage one (and the pcaps')
CONFIRM_SECS = 2
TWO_SECS = 4  # stage two talks this long, then hangs up
RING_SECS = 2.0  # stage two rings (180) this long before its 200
PROMPT_RMS = 300  # the built-in prompt's speech, as dialout_test.py wants it
PASS = FAIL = 0


def result(name, ok, why=""):
    global PASS, FAIL
    if ok:
        PASS += 1
        print(f"PASS {name}", flush=True)
    else:
        FAIL += 1
        print(f"FAIL {name}: {why}", flush=True)


def messages(path):
    """(wall-clock time, direction 'recv'|'sent', first line, text) of each
    message in a SIPp -trace_msg log."""
    out = []
    text = open(path, encoding="utf-8", errors="replace").read() if os.path.exists(path) else ""
    for block in text.split("----------------------------------------------- ")[1:]:
        head, _, rest = block.partition("\n")
        m = re.match(r"(\d{4}-\d\d-\d\d)\s+(\d\d:\d\d:\d\d\.\d+)", head)
        if not m:
            continue
        t = datetime.strptime(f"{m.group(1)} {m.group(2)}", "%Y-%m-%d %H:%M:%S.%f").timestamp()
        direction = "recv" if "received" in rest.split("\n", 1)[0] else "sent"
        body = rest.split("\n", 1)[1].lstrip("\r\n") if "\n" in rest else ""
        out.append((t, direction, body.split("\n", 1)[0].strip(), body))
    return out


def udp_packets(path):
    """(time, src port, dst port, RTP PT, UDP payload: the RTP packet) of
    the UDP packets in a pcap."""
    data = open(path, "rb").read() if os.path.exists(path) else b""
    if len(data) < 24:
        return []
    e = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    l2 = {1: 14, 113: 16, 276: 20, 0: 4}.get(struct.unpack(e + "I", data[20:24])[0], 0)
    off, out = 24, []
    while off + 16 <= len(data):
        sec, usec, incl = struct.unpack(e + "III", data[off:off + 12])
        f = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ip = f[l2:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        u = ip[(ip[0] & 15) * 4:]
        if len(u) < 10:
            continue
        sp, dp = struct.unpack(">HH", u[:4])
        out.append((sec + usec / 1e6, sp, dp, u[9] & 0x7F, u[8:]))
    return out


def sent_to_one(log, packets, two):
    """What stage one heard: (time, RTP packet) of each packet Mediator sent
    from the relay port of its offer to stage one to SIPp's media port (not
    what stage one itself plays), in capture order; [] without that offer."""
    body = next((text for _, dr, line, text in log
                 if dr == "recv" and line.startswith("INVITE ") and not line.startswith(f"INVITE sip:{two}@")), "")
    m = re.search(r"(?m)^m=audio (\d+) ", body)
    if not m:
        return []
    relay = int(m.group(1))
    return [(t, rtp) for t, sp, dp, _, rtp in packets if sp == relay and dp == SIPP_MP]


def speech_bursts(heard, t0, t1, join=1.0):
    """[start, end] of each stretch of speech in `heard` between t0 and t1:
    20 ms packets of RMS >= PROMPT_RMS, joined across quieter gaps shorter
    than `join` s (the pauses between words; sip.confirm_timeout_secs of
    silence separates the prompt from its repeat)."""
    out = []
    for t, rtp in heard:
        if not t0 <= t <= t1:
            continue
        x = mt.audio_of([(t, rtp)])
        if not x or mt.rms(x) < PROMPT_RMS:
            continue
        if out and t - out[-1][1] < join:
            out[-1][1] = t
        else:
            out.append([t, t])
    return out


def heard_ok(press, heard, ack1, inv2, ok2, bye):
    """What stage one heard: the confirmation prompt after its answer; with
    no key the prompt twice, sip.confirm_timeout_secs apart; with '1' the
    NANP ring-back while stage two rang."""
    rms, x = dt.energy(heard, ack1 + 0.3, ack1 + 2.2)
    if len(x) < 8000 or rms < PROMPT_RMS:
        return False, f"prompt: RMS {rms:.0f} over {len(x)} samples in [ACK + 0.3, + 2.2] s, want >= {PROMPT_RMS}"
    if press == "none":
        b = speech_bursts(heard, ack1, bye)
        shown = [(round(a - ack1, 2), round(z - ack1, 2)) for a, z in b]
        if len(b) != 2:
            return False, f"speech bursts (s after the ACK) {shown}, want the prompt and its repeat"
        if b[1][0] - b[0][0] < CONFIRM_SECS - 0.5 or b[1][0] - b[0][1] < CONFIRM_SECS - 0.5:
            return False, f"speech bursts (s after the ACK) {shown}: repeat not sip.confirm_timeout_secs after the prompt"
    if press == "1":
        _, x = dt.energy(heard, inv2 + 0.3, ok2 - 0.1)
        if len(x) < 4000:
            return False, f"stage one heard {len(x)} samples while stage two rang"
        p = {hz: mt.goertzel(x, hz) for hz in (440, 480, 350, 600, 1000)}
        if min(p[440], p[480]) < 20 * max(p[350], p[600], p[1000]):
            return False, "ring-back: Goertzel power " + ", ".join(f"{hz} Hz {v:.2e}" for hz, v in p.items())
    return True, ""


def render(dst, two, redirect, dtmf, audio):
    s = open(os.path.join(HERE, "trunk_uas.xml")).read()
    play = "" if dtmf == "none" else (
        f'<nop><action><exec play_pcap_audio="{dtmf}"/></action></nop>\n  <recv request="BYE" timeout="1500" ontimeout="talk" next="bye"/>')
    for k, v in {"@TWO@": two, "@REDIRECT@": redirect, "@DTMF@": play, "@TE@": str(TE),
                 "@AUDIO_PCAP@": audio, "@TWO_MS@": str(TWO_SECS * 1000),
                 "@RING_MS@": str(int(RING_SECS * 1000))}.items():
        s = s.replace(k, v)
    open(dst, "w").write(s)


def run_case(proto, name, press, work, audio):
    full = f"{proto}-{name}"
    d = os.path.join(work, full)
    os.makedirs(d, exist_ok=True)
    one, two, redirect = dt.numbers()
    dtmf = {"1": "/usr/share/sip-tester/dtmf_2833_1.pcap", "2": "/usr/share/sip-tester/dtmf_2833_2.pcap"}.get(press, "none")
    xml = os.path.join(d, "trunk.xml")
    render(xml, two, redirect, dtmf, audio)
    msgs = os.path.join(d, "messages.log")
    calls = 2 if press == "1" else 1
    cap = subprocess.Popen(["tcpdump", "-i", "lo", "-nn", "-U", "-w", os.path.join(d, "rtp.pcap"),
                            f"udp and (port {SIPP_MP} or port {SIPP_MP + 2})"],
                           stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "tcpdump.log"), "w"))
    sipp = None
    try:
        for _ in range(50):
            if "listening on" in open(os.path.join(d, "tcpdump.log")).read():
                break
            time.sleep(0.1)
        else:
            return result(full, False, "tcpdump did not start")
        sipp = subprocess.Popen(["sipp", "-sf", xml, "-i", dt.HOST, "-p", str(dt.TRUNK_PORT),
                                 "-t", "u1" if proto == "udp" else "t1", "-mp", str(SIPP_MP), "-m", str(calls),
                                 "-nostdin", "-trace_msg", "-trace_logs", "-log_file", os.path.join(d, "sipp-log.log"), "-message_file", msgs, "-trace_err",
                                 "-error_file", os.path.join(d, "errors.log"), "-timeout", "40s", "-timeout_error"],
                                cwd=d, stdout=open(os.path.join(d, "sipp.out"), "w"), stderr=subprocess.STDOUT)
        time.sleep(0.5)
        sid = dt.place(one, two, redirect, {"use_call_confirmation": "true"})
        try:
            rc = sipp.wait(45)
        except subprocess.TimeoutExpired:
            rc = "timeout"
        outcome = dt.outcome_of(sid, within=10)
        time.sleep(0.5)
    finally:
        if sipp and sipp.poll() is None:
            sipp.kill()
        cap.terminate()
        cap.wait(5)
    if rc != 0:
        return result(full, False, f"SIPp exit {rc} (From check or flow; see {d})")
    log = messages(msgs)

    def first(direction, pat):
        return next((t for t, dr, line, _ in log if dr == direction and re.match(pat, line)), None)

    ack1 = first("recv", "ACK ")
    inv2 = next((t for t, dr, line, _ in log if dr == "recv" and line.startswith(f"INVITE sip:{two}@")), None)
    want = "connected" if press == "1" else "not_confirmed"
    if outcome != want:
        return result(full, False, f"outcome {outcome}, want {want}")
    ok, why = dt.check_gone(sid)
    if not ok:
        return result(full, False, why)
    code, v = dt.api("GET", f"/calls?filter=dialout_sid+eq+{sid}&limit=10")
    items = (v.get("body") or {}).get("items", []) if code == 200 else []
    got = sorted((r.get("number_dst"), r.get("outcome")) for r in items)
    if got != sorted([(one, want)] + ([(two, want)] if press == "1" else [])):
        return result(full, False, f"GET /calls records {got}")
    if press != "1":
        if inv2 is not None:
            return result(full, False, "stage two was called")
        bye = first("recv", "BYE ")
        if bye is None or ack1 is None:
            return result(full, False, "stage one got no BYE")
        # '2' (sent 3 s after the ACK) ends the call at once; no key ends it
        # after the prompt, sip.confirm_timeout_secs, the repeat and the
        # timeout again.
        least, most = (3.0, 5.0) if press == "2" else (2 * CONFIRM_SECS, 30.0)
        if not least <= bye - ack1 < most:
            return result(full, False, f"BYE {bye - ack1:.1f} s after the ACK, want [{least}, {most})")
        heard = sent_to_one(log, udp_packets(os.path.join(d, "rtp.pcap")), two)
        return result(full, *heard_ok(press, heard, ack1, None, None, bye))
    # press 1: stage two only after the key (sent 3 s after stage one's ACK).
    if inv2 is None or ack1 is None or inv2 < ack1 + 3.0:
        return result(full, False, f"stage two INVITE at {inv2}, stage one ACK at {ack1}: not after the key")
    ack2 = next((t for t, dr, line, _ in log if dr == "recv" and line.startswith("ACK ") and t > inv2), None)
    if ack2 is None:
        return result(full, False, "no ACK for stage two")
    ok2 = next((t for t, dr, line, _ in log if dr == "sent" and line.startswith("SIP/2.0 200") and t > inv2), None)
    if ok2 is None:
        return result(full, False, "stage two sent no 200")
    packets = udp_packets(os.path.join(d, "rtp.pcap"))
    pk = [p for p in packets if p[0] > ack2 + 0.3]
    lo, hi = dt.RTP_LOW, dt.RTP_HIGH
    to_trunk, from_trunk = {}, {}
    for _, sp, dp, pt, _ in pk:
        if pt != 0:
            continue
        if lo <= sp <= hi and dp == SIPP_MP:
            to_trunk[sp] = to_trunk.get(sp, 0) + 1
        elif sp == SIPP_MP and lo <= dp <= hi:
            from_trunk[dp] = from_trunk.get(dp, 0) + 1
    # Two relay ports (one per leg) each send and receive PCMU after the bridge.
    if sum(1 for n in to_trunk.values() if n >= 50) < 2 or sum(1 for n in from_trunk.values() if n >= 50) < 2:
        return result(full, False, f"PCMU after the bridge: relay->trunk {to_trunk}, trunk->relay {from_trunk}")
    return result(full, *heard_ok(press, sent_to_one(log, packets, two), ack1, inv2, ok2, None))


def main():
    binary, proto, work = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(work, exist_ok=True)
    audio = os.path.join(work, "pcmu.pcap")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "mkpcmu.py"), "/usr/share/sip-tester/g711a.pcap", audio, "0"], check=True)
    conf = os.path.join(work, f"mediator-{proto}.toml")
    transport = ";transport=tcp" if proto == "tcp" else ""
    with open(conf, "w") as f:
        f.write(f"""[api]
listen = "{dt.HOST}:{dt.API_PORT}"

[sip]
listen = ["udp:{dt.HOST}:{dt.SIP_PORT}", "tcp:{dt.HOST}:{dt.SIP_PORT}"]
advertised_host = "{dt.HOST}"
trunk = "sip:{dt.HOST}:{dt.TRUNK_PORT}{transport}"
trusted = ["127.0.0.1/32"]
confirm_timeout_secs = {CONFIRM_SECS}

[media]
advertised_ip = "{dt.HOST}"
bind_ip = "{dt.HOST}"
rtp_ports = "{dt.RTP_LOW}-{dt.RTP_HIGH}"

[database]
url = "sqlite://{work}/mediator-{proto}.db"

[[accounts]]
name = "dialout sipp tests"
login = "{dt.LOGIN}"
password = "{dt.PASSWORD}"
dids = [{", ".join(f'"{x}"' for x in dt.DIDS)}]
permissions = ["hide_origination_did"]
""")
    dt.LOG = os.path.join(work, f"mediator-{proto}.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIATOR_")}
    env["MEDIATOR_LOG"] = "info,rsipstack=warn"
    med = subprocess.Popen([binary, "serve", "--config", conf], stdout=open(dt.LOG, "w"), stderr=subprocess.STDOUT, env=env)
    try:
        for _ in range(300):
            try:
                if dt.api("GET", "/dids?limit=1")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            print(dt.log_text()[-2000:])
            print("0 passed, 1 failed")
            sys.exit(1)
        for name, press in (("press-1", "1"), ("press-2", "2"), ("never-press", "none")):
            try:
                run_case(proto, name, press, work, audio)
            except Exception as e:  # noqa: BLE001 - a case that crashes fails
                result(f"{proto}-{name}", False, repr(e))
    finally:
        med.terminate()
        try:
            med.wait(10)
        except subprocess.TimeoutExpired:
            med.kill()
    if FAIL:
        print(dt.log_text()[-4000:])
    print(f"{PASS} passed, {FAIL} failed")
    sys.exit(1 if FAIL else 0)


if __name__ == "__main__":
    main()
