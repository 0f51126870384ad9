#!/usr/bin/env python3
"""One full call through Mediator written entirely in compact header forms
(RFC 3261 7.3.3: i: f: t: v: m: l: c:), with several Via values on one
line (RFC 3261 7.3.1), on both legs (field cases BC-16, BC-17).

usage: compact_call.py MEDIATOR_PORT TRUNK_PORT DID CALLER [--src IP]

Plays the caller (A leg, from SRC, default 127.0.45.2) and the callee (the
trunk at 127.0.0.1:TRUNK_PORT, B leg), both over UDP:

  A: INVITE (compact, `v:` with two values)  -> Mediator -> B: INVITE
  B: 100, 180, 200 (compact, the received Vias echoed on one `v:` line)
  A: 180, 200 (must echo both of A's Via values, RFC 3261 8.2.6.2), ACK
  A: BYE (compact) -> Mediator -> B: BYE, 200 (compact) -> A: 200

Prints what it checks; the last line is PASS or FAIL; exit status 0 when
the call connected and ended cleanly.
"""
import random
import re
import socket
import sys
import time

TIMEOUT = 10.0


def fail(why):
    print(f"FAIL compact call: {why}")
    sys.exit(1)


def crlf(text):
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n"


def msg(start, headers, body=b""):
    head = start + "\r\n" + "".join(f"{h}\r\n" for h in headers)
    head += f"l: {len(body)}\r\n\r\n"
    return head.encode() + body


def sdp(ip, port, sess):
    return crlf(f"""v=0
o=compact {sess} {sess} IN IP4 {ip}
s=-
c=IN IP4 {ip}
t=0 0
m=audio {port} RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
""")


# header names, compact and long (RFC 3261 7.3.3)
NAMES = {"via": "v", "from": "f", "to": "t", "call-id": "i", "contact": "m",
         "content-length": "l", "content-type": "c"}


def parse(data):
    """-> (start line, [(name lower long form, value)], body); unfolds lines."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    start, hdrs = lines[0], []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and hdrs:
            hdrs[-1] = (hdrs[-1][0], hdrs[-1][1] + " " + line.strip())
            continue
        name, _, value = line.partition(":")
        name = name.strip().lower()
        for long, short in NAMES.items():
            if name == short:
                name = long
        hdrs.append((name, value.strip()))
    return start, hdrs, body


def values(hdrs, name):
    return [v for n, v in hdrs if n == name]


def recv(sock, want, deadline):
    """Next message whose start line matches `want` (regex); answers nothing."""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data, addr = sock.recvfrom(65535)
        except socket.timeout:
            break
        start, hdrs, body = parse(data)
        if re.match(want, start):
            return start, hdrs, body, addr
    fail(f"no {want!r} within {TIMEOUT} s")


def main():
    args = sys.argv[1:]
    src = "127.0.45.2"
    if "--src" in args:
        i = args.index("--src")
        src = args[i + 1]
        del args[i:i + 2]
    med_port, trunk_port, did, caller = int(args[0]), int(args[1]), args[2], args[3]
    med = ("127.0.0.1", med_port)
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind((src, 0))
    a_port = a.getsockname()[1]
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.bind(("127.0.0.1", trunk_port))
    n = random.randint(1000, 9999)
    cid = f"compact-{n}@{src}"
    a_tag, b_tag = f"ca{n}", f"cb{n}"
    top_branch, old_branch = f"z9hG4bK-compact-{n}", f"z9hG4bK-upstream-{n}"
    # Two Via values on one compact line: ours, and one of an "upstream proxy".
    a_via = f"v: SIP/2.0/UDP {src}:{a_port};branch={top_branch};rport, SIP/2.0/UDP 192.0.2.99:5060;branch={old_branch}"
    a_from = f"f: <sip:+{caller}@{src}>;tag={a_tag}"
    a_to = f"t: <sip:{did}@127.0.0.1>"
    deadline = time.monotonic() + TIMEOUT

    invite = msg(f"INVITE sip:{did}@127.0.0.1:{med_port} SIP/2.0",
                 [a_via, "Max-Forwards: 70", a_from, a_to, f"i: {cid}", "CSeq: 1 INVITE",
                  f"m: <sip:caller@{src}:{a_port}>", "c: application/sdp"],
                 sdp(src, 45120, n))
    a.sendto(invite, med)
    print(f"   A -> INVITE (compact, v: with 2 values), Call-ID {cid}")

    # --- B leg: Mediator's INVITE, answered in compact form -----------------
    start, hdrs, body, b_peer = recv(b, r"INVITE ", deadline)
    b_vias = values(hdrs, "via")
    b_callid = values(hdrs, "call-id")[0]
    b_from = values(hdrs, "from")[0]
    b_to = values(hdrs, "to")[0]
    b_cseq = values(hdrs, "cseq")[0]
    if b_callid == cid:
        fail("the B leg reuses A's Call-ID")
    print(f"   B <- INVITE {start.split()[1]}")
    # Echo Mediator's Via values on one compact line (plus an extra one would
    # be wrong for a UAS, so only what we got).
    echo_via = "v: " + ", ".join(b_vias)
    b_common = [echo_via, f"f: {b_from}", f"t: {b_to};tag={b_tag}", f"i: {b_callid}", f"CSeq: {b_cseq}"]
    b.sendto(msg("SIP/2.0 100 Trying", b_common), b_peer)
    b.sendto(msg("SIP/2.0 180 Ringing", b_common + [f"m: <sip:callee@127.0.0.1:{trunk_port}>"]), b_peer)
    ok200 = msg("SIP/2.0 200 OK", b_common + [f"m: <sip:callee@127.0.0.1:{trunk_port}>", "c: application/sdp"],
                sdp("127.0.0.1", 45122, n + 1))
    b.sendto(ok200, b_peer)
    print("   B -> 100, 180, 200 (compact)")

    # --- A leg: 180 and 200 must carry both Via values ----------------------
    while True:
        start, hdrs, body, _ = recv(a, r"SIP/2\.0 ", deadline)
        code = int(start.split()[1])
        if code >= 200:
            break
    if code != 200:
        fail(f"A got {start}")
    via_text = " , ".join(values(hdrs, "via"))
    if top_branch not in via_text or old_branch not in via_text:
        fail(f"the 200 does not echo both Via values: {via_text}")
    to = values(hdrs, "to")[0]
    if ";tag=" not in to.replace(" ", ""):
        fail("the 200 has no To tag")
    contact = re.search(r"<([^>]+)>", values(hdrs, "contact")[0]).group(1)
    if b"m=audio" not in body:
        fail("the 200 has no SDP")
    print(f"   A <- 200 (both Via values echoed, To tag, SDP), Contact {contact}")

    # B waits for Mediator's ACK.
    recv(b, r"ACK ", deadline)
    print("   B <- ACK")
    ack = msg(f"ACK {contact} SIP/2.0",
              [f"v: SIP/2.0/UDP {src}:{a_port};branch=z9hG4bK-ack-{n};rport", "Max-Forwards: 70",
               a_from, f"t: {to}", f"i: {cid}", "CSeq: 1 ACK"])
    a.sendto(ack, med)
    print("   A -> ACK")
    time.sleep(1.0)

    # --- A hangs up ----------------------------------------------------------
    bye = msg(f"BYE {contact} SIP/2.0",
              [f"v: SIP/2.0/UDP {src}:{a_port};branch=z9hG4bK-bye-{n};rport, SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bK-byeup-{n}",
               "Max-Forwards: 70", a_from, f"t: {to}", f"i: {cid}", "CSeq: 2 BYE"])
    a.sendto(bye, med)
    print("   A -> BYE (compact)")
    start, hdrs, body, b_peer = recv(b, r"BYE ", deadline)
    b.sendto(msg("SIP/2.0 200 OK", ["v: " + ", ".join(values(hdrs, "via")),
                                    "f: " + values(hdrs, "from")[0], "t: " + values(hdrs, "to")[0],
                                    "i: " + values(hdrs, "call-id")[0], "CSeq: " + values(hdrs, "cseq")[0]]),
             b_peer)
    print("   B <- BYE, -> 200 (compact)")
    while True:  # skip a late retransmission of the 200 to the INVITE
        start, hdrs, _, _ = recv(a, r"SIP/2\.0 ", deadline)
        if values(hdrs, "cseq")[0].split()[-1].upper() == "BYE" and not start.startswith("SIP/2.0 1"):
            break
    if not start.startswith("SIP/2.0 200"):
        fail(f"A's BYE got {start}")
    print("   A <- 200 to BYE")
    print("PASS compact call")


if __name__ == "__main__":
    main()
