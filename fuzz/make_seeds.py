#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz corpora (fuzz/corpus/<target>/seed-*).

usage: python3 fuzz/make_seeds.py

sip_message: the 49 RFC 4475 torture messages as sent on the wire
(sip-tests/torture/messages, decoded by sip-tests/torture/torture.py), the
SIPp-style requests and responses of a call (INVITE, 100/180/200, ACK,
BYE, CANCEL, OPTIONS, 486), a compact-form INVITE with several Vias on one
line, and two messages back to back (TCP framing).
sdp_offer_answer: the SDP offers and answers of sip-tests (SIPp caller and
callee, baresip) and the shapes trunks send (telephone-event, ptime, rtcp,
sendonly/inactive, several m-lines, IPv6, no audio, port 0).
The fuzzer's own finds sit beside them under libFuzzer's hash names.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "sip-tests", "torture"))
import torture  # noqa: E402


def crlf(s):
    return s.strip("\n").replace("\n", "\r\n") + "\r\n"


def message(start, headers, body=""):
    body = crlf(body) if body else ""
    return (start + "\r\n" + "".join(h + "\r\n" for h in headers)
            + f"Content-Length: {len(body.encode())}\r\n\r\n" + body).encode()


SDP_A = """v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 16000 RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
"""
SDP_B = """v=0
o=user2 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 17000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
"""
SDPS = {
    "sipp-offer": SDP_A,
    "sipp-answer": SDP_B,
    "g729-only": SDP_A.replace("8 0 101", "18").split("a=rtpmap:8")[0] + "a=rtpmap:18 G729/8000\n",
    "baresip": """v=0
o=- 1226934443 3386384329 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 18000 RTP/AVP 0 8 101
b=AS:87
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp:18001
a=sendrecv
a=label:1
a=ssrc:1397328442 cname:e6e4a1c1@baresip
a=rtcp-mux
""",
    "video-first": """v=0
o=- 2 2 IN IP4 192.0.2.1
s=call
c=IN IP4 192.0.2.1
t=0 0
m=video 3227 RTP/AVP 31
a=rtpmap:31 H261/90000
m=audio 49217 RTP/AVP 96 0
c=IN IP4 192.0.2.2
a=rtpmap:96 telephone-event/8000
a=fmtp:96 0-16
a=ptime:30
a=sendonly
""",
    "ipv6-inactive": """v=0
o=- 3 3 IN IP6 2001:db8::1
s=-
c=IN IP6 2001:db8::1
t=0 0
m=audio 40000 RTP/AVP 0
a=inactive
a=rtcp:40001 IN IP6 2001:db8::1
""",
    "port-zero-and-savp": """v=0
o=- 4 4 IN IP4 192.0.2.9
s=-
c=IN IP4 192.0.2.9
t=0 0
m=audio 0 RTP/AVP 0
m=audio 5004 RTP/SAVP 0
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
m=audio 5006 RTP/AVP 8 0
a=rtpmap:8 PCMA/8000
a=recvonly
""",
    "no-audio": """v=0
o=- 5 5 IN IP4 192.0.2.9
s=-
t=0 0
m=application 9 TCP/BFCP *
""",
    "te-on-pt0": """v=0
o=- 6 6 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1/127
t=0 0
m=audio 30000 RTP/AVP 8 0
a=rtpmap:0 telephone-event/8000
a=fmtp:0 0-16
a=rtpmap:8 pcma/8000/1
""",
}


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def main():
    mdir = os.path.join(ROOT, "sip-tests", "torture", "messages")
    for f in sorted(os.listdir(mdir)):
        if f.endswith(".sip"):
            text = open(os.path.join(mdir, f), encoding="utf-8").read()
            write("sip_message", "torture-" + f[:-4], torture.decode(text, "15162065337"))
    via = "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1-0"
    common = ['From: "Alice" <sip:12127361234@127.0.0.1>;tag=1SIPpTag001',
              "To: <sip:15162065337@127.0.0.1:5060>", "Call-ID: 1-1@127.0.0.1", ]
    totag = "To: <sip:15162065337@127.0.0.1:5060>;tag=b1"
    invite = message("INVITE sip:15162065337@127.0.0.1:5060 SIP/2.0",
                     [via] + common + ["CSeq: 1 INVITE", "Contact: <sip:alice@127.0.0.1:5070;transport=UDP>",
                                       "Max-Forwards: 70",
                                       "P-Asserted-Identity: <sip:+12127361234@127.0.0.1;user=phone>, <tel:+12127361234>",
                                       "Privacy: none", "Record-Route: <sip:127.0.0.1:5070;lr>",
                                       "Subject: test", "Content-Type: application/sdp"], SDP_A)
    write("sip_message", "sipp-invite", invite)
    for code, reason in ((100, "Trying"), (180, "Ringing"), (486, "Busy Here")):
        write("sip_message", f"sipp-{code}", message(f"SIP/2.0 {code} {reason}", [via, common[0], totag, common[2],
                                                                                    "CSeq: 1 INVITE"]))
    write("sip_message", "sipp-200", message("SIP/2.0 200 OK", [via, common[0], totag, common[2], "CSeq: 1 INVITE",
                                                                 "Contact: <sip:b@127.0.0.1:5080>",
                                                                 "Record-Route: <sip:127.0.0.1:5080;lr>",
                                                                 "Content-Type: application/sdp"], SDP_B))
    for method, seq in (("ACK", 1), ("BYE", 2), ("CANCEL", 1)):
        write("sip_message", f"sipp-{method.lower()}",
              message(f"{method} sip:15162065337@127.0.0.1:5060 SIP/2.0",
                      [via, common[0], totag if method != "CANCEL" else common[1], common[2], f"CSeq: {seq} {method}",
                       "Max-Forwards: 70"]))
    write("sip_message", "options", message("OPTIONS sip:127.0.0.1:5060 SIP/2.0",
                                            [via, common[0], "To: <sip:127.0.0.1>", "Call-ID: opt@x", "CSeq: 1 OPTIONS",
                                             "Max-Forwards: 70", "Require: 100rel", "Accept: application/sdp"]))
    compact = message("INVITE tel:+15162065337;phone-context=+1 SIP/2.0",
                      ["v: SIP/2.0/TCP 127.0.0.2:5070;branch=z9hG4bK-c;rport, SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK-u;received=192.0.2.10",
                       "f: sip:anonymous@anonymous.invalid;tag=c1", "t: <sip:+1-516-206-5337@h;user=phone>",
                       "i: compact@x", "CSeq: 7 INVITE", "m: <sip:c@127.0.0.2:5070>", "c: application/sdp",
                       "Max-Forwards: 00", "Privacy: id"], SDP_A)
    write("sip_message", "compact-invite", compact)
    write("sip_message", "two-in-one-stream", invite + message("SIP/2.0 100 Trying", [via, common[0], totag, common[2],
                                                                                      "CSeq: 1 INVITE"]))
    for name, text in SDPS.items():
        write("sdp_offer_answer", name, crlf(text).encode())
        write("sip_message", "invite-sdp-" + name,
              message("INVITE sip:15162065337@127.0.0.1 SIP/2.0",
                      [via] + common + ["CSeq: 1 INVITE", "Max-Forwards: 70", "Content-Type: application/sdp"], text))
    # Bodies of the torture messages as SDP seeds too.
    for f in sorted(os.listdir(mdir)):
        raw = torture.decode(open(os.path.join(mdir, f), encoding="utf-8").read(), "1")
        body = raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else b""
        if body.startswith(b"v=0"):
            write("sdp_offer_answer", "torture-" + f[:-4], body)


if __name__ == "__main__":
    main()
