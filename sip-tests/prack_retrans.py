"""Checks, from a caller's SIPp message trace (-trace_msg), RFC 3262 §3 on
the wire: our reliable 180 to a caller that never PRACKs is sent again at
intervals starting at T1 (0.5 s) and doubling (0.5, 1, 2, 4, 8, 16 s), every
copy with the same RSeq and Require: 100rel, and the INVITE's final response
(5xx) comes 64*T1 (32 s) after the first 180.

usage: prack_retrans.py MESSAGES_LOG
Prints a one-line summary; exit 1 (with the reason) when the trace differs.
"""
import datetime
import re
import sys

T1 = 0.5
SLACK = 0.25  # scheduling and loopback delay allowed per interval, seconds


def stamp(text):
    """A SIPp trace timestamp: 'YYYY-MM-DD HH:MM:SS.ffffff' or epoch seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d\t%H:%M:%S.%f"):
        try:
            return datetime.datetime.strptime(text, fmt).timestamp()
        except ValueError:
            pass
    raise ValueError(f"unknown timestamp {text!r}")


def received(path):
    """(time, message text) of every message the caller received."""
    text = open(path, encoding="latin-1").read()
    parts = re.split(r"^-{10,}\s+(.*)$", text, flags=re.M)
    out = []
    # parts: [before, ts1, body1, ts2, body2, ...]
    for ts, body in zip(parts[1::2], parts[2::2]):
        lines = body.strip("\r\n").split("\n")
        if not lines or "received" not in lines[0]:
            continue
        message = "\n".join(lines[1:]).strip()
        out.append((stamp(ts), message))
    return out


def fail(why):
    print(why)
    sys.exit(1)


def main():
    messages = received(sys.argv[1])
    ringing = [(t, m) for t, m in messages if m.startswith("SIP/2.0 180")]
    finals = [(t, m) for t, m in messages if re.match(r"SIP/2\.0 [2-6]\d\d", m)]
    if len(ringing) < 2:
        fail(f"{len(ringing)} 180 received: not retransmitted")
    rseqs = {re.search(r"^RSeq:\s*(\d+)", m, re.M | re.I).group(1) if re.search(r"^RSeq:\s*(\d+)", m, re.M | re.I)
             else None for _, m in ringing}
    if len(rseqs) != 1 or None in rseqs:
        fail(f"the 180 copies carry RSeq {sorted(map(str, rseqs))}, expected one value")
    if not all(re.search(r"^Require:.*100rel", m, re.M | re.I) for _, m in ringing):
        fail("a 180 copy without Require: 100rel")
    t0 = ringing[0][0]
    gaps = [b[0] - a[0] for a, b in zip(ringing, ringing[1:])]
    expected = [T1 * 2 ** i for i in range(len(gaps))]
    for i, (gap, want) in enumerate(zip(gaps, expected)):
        if abs(gap - want) > SLACK + 0.05 * want:
            fail(f"interval {i + 1} was {gap:.2f} s, expected {want:.1f} s (all: {[round(g, 2) for g in gaps]})")
    if len(gaps) < 5:
        fail(f"only {len(gaps)} retransmissions before the end: {[round(g, 2) for g in gaps]}")
    if not finals:
        fail("no final response")
    final_t, final = finals[0]
    code = final.split()[1]
    if not code.startswith("5"):
        fail(f"final response {code}, expected 5xx")
    after = final_t - t0
    if abs(after - 64 * T1) > 1.5:
        fail(f"final {code} {after:.1f} s after the first 180, expected {64 * T1:.0f} s")
    print(f"180 sent {len(ringing)} times (RSeq {rseqs.pop()}), intervals {[round(g, 2) for g in gaps]} s; "
          f"{code} after {after:.1f} s")


if __name__ == "__main__":
    main()
