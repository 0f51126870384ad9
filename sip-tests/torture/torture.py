#!/usr/bin/env python3
"""Sends the RFC 4475 torture messages to Mediator and checks each answer.

usage: torture.py MESSAGES_DIR MEDIATOR_PORT TABLE_OUT [--did DID] [--src IP]
                  [--only REGEX]

Each file in MESSAGES_DIR is one message of RFC 4475 section 3, named by
its section and the RFC's short name (3.1.1.1-wsinv.sip). The files use the
RFC's own conventions (section 2): lines end in LF on disk and CRLF on the
wire; <allOneLine>...</allOneLine> joins its lines; <hex>..</hex> are raw
octets; <repeat count=N>..</repeat> repeats. @DID@ becomes --did.

Every message goes over UDP, one datagram from SRC:5060 (SRC defaults to
127.0.45.1, a loopback address nothing else uses). rsipstack writes
received= and rport= of the packet's source into the top Via, so answers
come back here whatever the Via names; port 5060 is where RFC 3261 18.2.2
alone would send them for a Via without a port. The messages for which a stream
changes what is tested go over TCP too (TCP_TOO). Whatever Mediator answers
within 2 s (over TCP with "-tcp" added to its Call-ID, so that it is a new
transaction; status codes of the responses carrying the message's Call-ID,
or its Via branch when it has none; 1xx shown but not compared; a non-2xx
final answer to an INVITE is ACKed) is compared with what RFC 4475 /
RFC 3261 ask (EXPECT).

Prints one line per message and transport:
  PASS name: ...   the answer is one the RFCs allow
  FAIL name: ...   it is not
  GAP name: ...    it is not, and this is a known gap (KNOWN_GAPS, also in
                   docs/robustness.md): counted neither as passed nor failed
and writes the Markdown table to TABLE_OUT. Exit status 1 on any FAIL.
"""
import os
import re
import socket
import sys
import time

WAIT = 2.0
NONE = "-"  # nothing within WAIT

# name -> (expected answers, why). An answer is a status code or NONE.
EXPECT = {
    # 3.1.1 valid messages: each must get a response (no crash, no drop).
    "wsinv": ({481}, "valid; To has a tag, so it is a mid-dialog INVITE for a dialog we do not have: 481 (RFC 3261 12.2.2)"),
    "intmeth": ({501}, "valid, unknown (extension) method: 501 with Allow (RFC 4475 3.1.1.2, RFC 3261 8.2.1)"),
    "esc01": ({404}, "valid INVITE; the Request-URI user (sips:user@example.com) is no number we serve: 404 (RFC 3261 8.2.2.1)"),
    "escnull": ({405}, "valid REGISTER; Mediator is no registrar: 405 with Allow (RFC 3261 8.2.1)"),
    "esc02": ({501}, "valid, the method RE%47IST%45R is an unknown extension method, not REGISTER: 501 with Allow (RFC 4475 3.1.1.5)"),
    "lwsdisp": ({200}, "valid OPTIONS (no LWS between display name and <): 200 (RFC 3261 11.2)"),
    "longreq": ({404}, "valid INVITE with very long fields, 34 Vias; the Request-URI is no number: 404"),
    "dblreq": ({405}, "valid REGISTER followed by stray octets: over UDP the octets after Content-Length are dropped (RFC 3261 18.3), the REGISTER gets 405"),
    "semiuri": ({200}, "valid OPTIONS (; in the user part of the Request-URI): 200"),
    "transports": ({200}, "valid OPTIONS with Vias of unknown transports below the top one: 200"),
    "mpart01": ({405}, "valid MESSAGE with a binary multipart body; MESSAGE is not supported: 405 with Allow"),
    "unreason": ({NONE}, "valid 200 with a UTF-8 reason phrase, matching no transaction: absorbed (RFC 3261 17.1.3, 18.1.2)"),
    "noreason": ({NONE}, "valid 100 with an empty reason phrase, matching no transaction: absorbed"),
    # 3.1.2 invalid messages: 400 or dropped, never a crash.
    "badinv01": ({400, NONE}, "invalid (extraneous ; and , in Via and Contact): 400 or drop (RFC 4475 3.1.2.1)"),
    "clerr": ({400, NONE}, "invalid over UDP (Content-Length past the datagram): a request SHOULD get 400 (RFC 3261 18.3); drop accepted"),
    "ncl": ({400, NONE}, "invalid (negative Content-Length): 400 or drop (RFC 4475 3.1.2.3)"),
    "scalar02": ({400, NONE}, "invalid (CSeq 2**65): 400 or drop (RFC 4475 3.1.2.4)"),
    "scalarlg": ({NONE}, "invalid response (overlarge CSeq, Retry-After, warn-code): dropped (RFC 4475 3.1.2.5)"),
    "quotbal": ({400, NONE}, "invalid (unterminated quoted string in To): 400 or drop (RFC 4475 3.1.2.6)"),
    "ltgtruri": ({400, NONE}, "invalid (<> around the Request-URI): 400 or drop (RFC 4475 3.1.2.7)"),
    "lwsruri": ({400, NONE}, "invalid (LWS inside the Request-URI): 400 or drop (RFC 4475 3.1.2.8)"),
    "lwsstart": ({400, NONE}, "invalid (two SP between Request-Line elements): 400 or drop (RFC 4475 3.1.2.9)"),
    "trws": ({400, NONE}, "invalid (SP after SIP/2.0): 400 or drop (RFC 4475 3.1.2.10)"),
    "escruri": ({400, NONE, 404}, "invalid (escaped headers in the Request-URI): 400, or be liberal and ignore them (RFC 4475 3.1.2.11), here 404"),
    "baddate": ({400, NONE, 404}, "invalid Date (EST): 400, or be liberal and ignore Date (RFC 4475 3.1.2.12), here 404"),
    "regbadct": ({400, NONE, 405}, "invalid Contact (addr-spec with ?): 400, or liberal (RFC 4475 3.1.2.13): REGISTER gets 405"),
    "badaspec": ({400, NONE, 200}, "invalid (SP inside <>): 400, or liberal (RFC 4475 3.1.2.14): OPTIONS gets 200"),
    "baddn": ({400, NONE, 200}, "invalid (unquoted , in display names): 400, or liberal (RFC 4475 3.1.2.15): OPTIONS gets 200"),
    "badvers": ({505, NONE}, "SIP/7.0: 505 (RFC 3261 8.2.1, 21.5.6) or drop"),
    "mismatch01": ({400, NONE}, "invalid (OPTIONS with CSeq INVITE): 400 or drop (RFC 4475 3.1.2.17)"),
    "mismatch02": ({501, 400, NONE}, "invalid (unknown method, CSeq INVITE): 501 or 400 (RFC 4475 3.1.2.18), or drop"),
    "bigcode": ({NONE}, "invalid response (status 4294967301): dropped (RFC 4475 3.1.2.19)"),
    # 3.2 transaction layer
    "badbranch": ({200, 400}, "branch=z9hG4bK alone: 400, or fall back to RFC 2543 matching and answer 200 (RFC 4475 3.2.1)"),
    # 3.3 application layer
    "insuf": ({400, NONE}, "no Call-ID, From, To, Max-Forwards: 400 or drop (RFC 4475 3.3.1)"),
    "unkscm": ({416}, "OPTIONS to an unknown URI scheme: 416 (RFC 3261 8.2.2.1, RFC 4475 3.3.2)"),
    "novelsc": ({416}, "OPTIONS to soap.beep: 416 (RFC 4475 3.3.3)"),
    "unksm2": ({405, 400, 416}, "REGISTER with non-SIP URIs in To, From, Contact: REGISTER is not supported, 405 (RFC 3261 8.2.1 comes first); 400/416 accepted"),
    "bext01": ({420}, "Require with unknown extensions: 420 with Unsupported (RFC 3261 8.2.2.3); Proxy-Require is for proxies"),
    "invut": ({415}, "INVITE to a served number with an unknown body type: 415 with Accept (RFC 3261 8.2.3)"),
    "regaut01": ({405}, "REGISTER with an unknown Authorization scheme; REGISTER is not supported: 405"),
    "multi01": ({400, NONE}, "two Call-ID, To, From, CSeq, Max-Forwards: 400 or drop (RFC 4475 3.3.8)"),
    "mcl01": ({400, NONE}, "two Content-Length values: 400 or drop (RFC 4475 3.3.9)"),
    "bcast": ({NONE}, "a 200 with a broadcast Via, matching no transaction: dropped (RFC 4475 3.3.10)"),
    "zeromf": ({200}, "OPTIONS with Max-Forwards 0 to an endpoint: processed as usual, 200 (RFC 4475 3.3.11)"),
    "cparam01": ({405}, "REGISTER (Contact parameter): not supported, 405"),
    "cparam02": ({405}, "REGISTER (URI parameter): not supported, 405"),
    "regescrt": ({405, 400}, "REGISTER (escaped header in a Contact URI): not supported, 405"),
    "sdp01": ({406}, "INVITE to a served number whose Accept excludes SDP: 406 (RFC 3261 21.4.7, RFC 4475 3.3.15)"),
    # 3.4 backward compatibility
    "inv2543": ({404}, "RFC 2543 INVITE (no branch, no From tag) must be accepted (RFC 3261 8.2.2.2 / 17.2.3); its Request-URI is no number: 404"),
}

# Messages worth sending over a stream as well, and what is expected there
# when it differs from UDP.
TCP_TOO = {
    "wsinv": None,
    "dblreq": ({"405+404"}, "over TCP the stray octets are the next message: REGISTER gets 405, then the INVITE 404"),
    "clerr": ({NONE}, "over TCP a Content-Length past the data means: wait for more octets (RFC 3261 18.3), no answer within 2 s"),
    "ncl": ({400, NONE}, "negative Content-Length on a stream: 400 or close"),
    "mcl01": ({400, NONE}, "two Content-Length values on a stream: 400 or close"),
    "longreq": None,
    "bext01": None,
    "unkscm": None,
}

# Known gaps: (name, transport) -> why. Printed as GAP, not counted. None
# left: the extension methods of intmeth and esc02 are parsed since
# rsipstack change 10 (vendor/rsipstack/MEDIATOR-PATCH.md) and answered 501.
KNOWN_GAPS = {}


def decode(text, did):
    """RFC 4475 section 2 notation -> the octets on the wire."""
    text = text.replace("@DID@", did)
    # <allOneLine>: the lines inside form one line.
    text = re.sub(r"<allOneLine>\n(.*?)\n</allOneLine>",
                  lambda m: m.group(1).replace("\n", ""), text, flags=re.S)
    text = re.sub(r"<repeat count=(\d+)>(.*?)</repeat>",
                  lambda m: m.group(2) * int(m.group(1)), text, flags=re.S)
    out = bytearray()
    for i, part in enumerate(re.split(r"<hex>(.*?)</hex>", text)):
        if i % 2:
            out += bytes.fromhex("".join(part.split()))
        else:
            out += part.replace("\n", "\r\n").encode("utf-8")
    return bytes(out)


def call_id(msg):
    m = re.search(rb"^(?:call-id|i)[ \t]*:[ \t]*(.*?)\r?$", msg, re.I | re.M)
    return m.group(1).strip() if m else None


def branch(msg):
    m = re.search(rb"branch[ \t]*=[ \t]*([^;,\s]+)", msg, re.I)
    return m.group(1) if m else None


def ours(msg, head):
    """Whether a response (its header block) answers `msg`: same Call-ID,
    or, for a message without one, the same top Via branch."""
    cid = call_id(msg)
    if cid is not None:
        return call_id(head) == cid
    return branch(msg) is not None and branch(head) == branch(msg)


def parse_responses(data):
    """Splits a byte stream (or one datagram) into (status, call-id) pairs."""
    out = []
    while data:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            break
        head = data[:end + 4]
        m = re.search(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)", head, re.I | re.M)
        clen = int(m.group(1)) if m else 0
        first = head.split(b"\r\n", 1)[0]
        st = re.match(rb"SIP/2\.0 (\d{3})", first)
        if st:
            out.append((int(st.group(1)), call_id(head), head))
        data = data[end + 4 + clen:]
    return out


def ack_for(msg, head):
    """The ACK of a non-2xx final response to an INVITE (RFC 3261 17.1.1.3),
    so that Mediator stops retransmitting it; None when `msg` is no INVITE."""
    if not re.match(rb"INVITE ", msg):
        return None
    ruri = msg.split(b"\r\n", 1)[0].split(b" ")[1]
    lines = [b"ACK " + ruri + b" SIP/2.0"]
    for name in (rb"via|v", rb"from|f", rb"to|t", rb"call-id|i"):
        m = re.search(rb"^(?:" + name + rb")[ \t]*:.*?\r\n(?![ \t])", head + b"\r\n", re.I | re.M | re.S)
        if m:
            lines.append(m.group(0).rstrip(b"\r\n"))
    m = re.search(rb"^cseq[ \t]*:[ \t]*(\d+)", head, re.I | re.M)
    if m:
        lines.append(b"CSeq: " + m.group(1) + b" ACK")
    lines += [b"Max-Forwards: 70", b"Content-Length: 0", b"", b""]
    return b"\r\n".join(lines)


def send_udp(sock, dst, msg):
    while True:  # drain anything still in flight from earlier messages
        try:
            sock.recvfrom(65535)
        except (BlockingIOError, socket.timeout):
            break
    sock.sendto(msg, dst)
    got = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data, _ = sock.recvfrom(65535)
        except socket.timeout:
            break
        for code, rcid, head in parse_responses(data):
            if not ours(msg, head):
                continue
            got.append(code)
            if code >= 300:
                ack = ack_for(msg, head)
                if ack:
                    sock.sendto(ack, dst)
            if code >= 200:  # a final answer: stop soon (retransmissions aside)
                deadline = min(deadline, time.monotonic() + 0.3)
    sock.setblocking(False)
    return got, None


def send_tcp(src_ip, dst, msg):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src_ip, 0))
    s.settimeout(WAIT)
    got = b""
    try:
        s.connect(dst)
        s.sendall(msg)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65535)
            except socket.timeout:
                break
            if not chunk:
                break
            got += chunk
    except OSError as e:
        print(f"   tcp error: {e}")
    finally:
        s.close()
    responses = parse_responses(got)
    # Over TCP every answer on this connection is ours (dblreq has two Call-IDs).
    return [c for c, _, _ in responses], responses


def fmt(codes, finals_only=False):
    """'-' for nothing, else the distinct codes in order joined by '+'
    (retransmissions count once); finals_only drops the 1xx (a 100 Trying
    is no answer, RFC 3261 17.2.1)."""
    seen = []
    for c in codes:
        if c not in seen and not (finals_only and c < 200):
            seen.append(c)
    return "+".join(str(c) for c in seen) if seen else NONE


def main():
    args = sys.argv[1:]
    opts = {"--did": "15162065337", "--src": "127.0.45.1", "--only": "."}
    pos = []
    while args:
        a = args.pop(0)
        if a in opts:
            opts[a] = args.pop(0)
        else:
            pos.append(a)
    mdir, port, table_out = pos[0], int(pos[1]), pos[2]
    dst = ("127.0.0.1", port)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    udp.bind((opts["--src"], 5060))
    udp.setblocking(False)

    def key(f):
        return [int(x) for x in f.split("-", 1)[0].split(".")]

    files = sorted((f for f in os.listdir(mdir) if f.endswith(".sip")), key=key)
    passed = failed = gaps = 0
    rows = []
    for f in files:
        section, name = f[:-4].split("-", 1)
        if not re.search(opts["--only"], name):
            continue
        if name not in EXPECT:
            print(f"FAIL {name}: no expectation written for {f}")
            failed += 1
            continue
        msg = decode(open(os.path.join(mdir, f), encoding="utf-8").read(), opts["--did"])
        runs = [("UDP",) + EXPECT[name]]
        if name in TCP_TOO:
            exp = TCP_TOO[name] or EXPECT[name]
            runs.append(("TCP",) + exp)
        for transport, expected, why in runs:
            if transport == "UDP":
                codes, _ = send_udp(udp, dst, msg)
            else:
                # Its own Call-ID: else the TCP copy of a message whose Via
                # has no RFC 3261 branch (longreq) matches the UDP one's
                # transaction as a retransmission (RFC 3261 17.2.3).
                tcp_msg = re.sub(rb"^((?:call-id|i)[ \t]*:[ \t]*)(\S+)", rb"\1\2-tcp", msg, flags=re.I | re.M)
                codes, _ = send_tcp(opts["--src"], dst, tcp_msg)
            shown, observed = fmt(codes), fmt(codes, finals_only=True)
            exp_txt = " or ".join(str(e) for e in sorted(expected, key=str))
            label = f"{name} ({section}, {transport})"
            ok = observed in {str(e) for e in expected}
            gap = KNOWN_GAPS.get((name, transport))
            if ok:
                verdict = "pass"
                passed += 1
                print(f"PASS {label}: expected {exp_txt}, observed {shown}")
            elif gap:
                verdict = "known gap"
                gaps += 1
                print(f"GAP {label}: expected {exp_txt}, observed {shown}: {gap}")
            else:
                verdict = "FAIL"
                failed += 1
                print(f"FAIL {label}: expected {exp_txt}, observed {shown} ({why})")
            rows.append((name, section, transport, exp_txt, shown, verdict, gap or why))
    with open(table_out, "w", encoding="utf-8") as t:
        t.write("| message | RFC 4475 section | transport | expected | observed | result | why |\n")
        t.write("| --- | --- | --- | --- | --- | --- | --- |\n")
        for r in rows:
            t.write("| " + " | ".join(r) + " |\n")
    print(f"torture: {passed} passed, {failed} failed, {gaps} known gaps")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
