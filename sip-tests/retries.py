"""Checks, on the callee's SIPp message log, the retries of the B leg's INVITE
(RFC 3261 §8.1.3.4 redirects, §22.2 digest challenges, RFC 4028 §7.4 422),
comparing messages with each other where SIPp cannot:

- every INVITE received has the Call-ID, From (with its tag) and To (no tag)
  of the first one, a CSeq number one more than the one before, and a new
  Via branch;
- every non-2xx final response the callee sent was ACKed with the branch
  and CSeq number of its INVITE (hop by hop, RFC 3261 §17.1.1.3);
- --invites N: exactly N INVITEs arrived;
- --digest USER:PASSWORD: every INVITE after a 401/407 carries an
  Authorization / Proxy-Authorization whose response is recomputed here
  (MD5 or SHA-256, qop=auth or none, RFC 2617 §3.2.2, RFC 7616 §3.4) and
  matches; the challenge's realm, nonce and opaque are echoed.

usage: retries.py MESSAGE_LOG [--invites N] [--digest USER:PASSWORD]
Prints one line; exit status 1 on the first problem.
"""
import hashlib
import re
import sys


def messages(path):
    """(direction 'in'|'out', text) of each message in a SIPp -trace_msg log."""
    text = open(path, encoding="latin-1").read()
    out = []
    for block in re.split(r"\n-{20,}[^\n]*\n", "\n" + text):
        m = re.match(r"\s*(UDP|TCP|TLS|SCTP) message (received|sent)[^\n]*\n+", block)
        if not m:
            continue
        out.append(("in" if m.group(2) == "received" else "out", block[m.end():].strip("\n")))
    return out


def headers(msg, name):
    vals = []
    for line in msg.split("\n\n", 1)[0].splitlines()[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            vals.append(v.strip())
    return vals


def header(msg, name):
    v = headers(msg, name)
    return v[0] if v else None


def branch(msg):
    m = re.search(r"branch=([^;,\s]+)", header(msg, "Via") or "")
    return m and m.group(1)


def cseq(msg):
    v = (header(msg, "CSeq") or "").split()
    return (int(v[0]), v[1]) if len(v) == 2 and v[0].isdigit() else (None, None)


def params(value):
    """Digest parameters of a challenge or credentials value."""
    return {k.lower(): (q if q else t) for k, q, t in
            re.findall(r'([A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))', value)}


def check_digest(invite, challenge, user, password):
    name = "Authorization" if challenge[0] == 401 else "Proxy-Authorization"
    cred = header(invite, name)
    if not cred:
        return f"retried INVITE has no {name}"
    ch, cr = params(challenge[1]), params(cred)
    for k in ("realm", "nonce", "opaque"):
        if ch.get(k) != cr.get(k):
            return f"{name} {k} {cr.get(k)!r} is not the challenge's {ch.get(k)!r}"
    if cr.get("username") != user:
        return f"{name} username {cr.get('username')!r}"
    alg = cr.get("algorithm", "MD5").upper()
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}.get(alg)
    if not h or alg != ch.get("algorithm", "MD5").upper():
        return f"{name} algorithm {alg} (challenge {ch.get('algorithm')})"
    H = lambda s: h(s.encode()).hexdigest()  # noqa: E731
    ruri = invite.split(" ", 2)[1]
    if cr.get("uri") != ruri:
        return f"{name} uri {cr.get('uri')!r} is not the Request-URI {ruri!r}"
    ha1 = H(f"{user}:{cr['realm']}:{password}")
    ha2 = H(f"INVITE:{cr['uri']}")
    if cr.get("qop"):
        if cr["qop"] != "auth" or not re.fullmatch(r"[0-9a-f]{8}", cr.get("nc", "")) or not cr.get("cnonce"):
            return f"{name} qop/nc/cnonce wrong: {cred}"
        want = H(f"{ha1}:{cr['nonce']}:{cr['nc']}:{cr['cnonce']}:auth:{ha2}")
    else:
        want = H(f"{ha1}:{cr['nonce']}:{ha2}")
    if cr.get("response") != want:
        return f"{name} response {cr.get('response')} is not the expected {want}"
    return None


def main():
    args = sys.argv[1:]
    log = args.pop(0)
    want_invites = digest = None
    while args:
        a = args.pop(0)
        if a == "--invites":
            want_invites = int(args.pop(0))
        elif a == "--digest":
            digest = args.pop(0).split(":", 1)
        else:
            sys.exit(f"unknown argument {a}")
    msgs = messages(log)
    invites = [(i, t) for i, (d, t) in enumerate(msgs) if d == "in" and t.startswith("INVITE ")
               and ";tag=" not in (header(t, "To") or "")]
    if not invites:
        print("no INVITE in the log")
        return 1
    if want_invites is not None and len(invites) != want_invites:
        print(f"{len(invites)} INVITEs, expected {want_invites}")
        return 1
    first = invites[0][1]
    branches = set()
    last_challenge = None
    digests = 0
    for n, (i, inv) in enumerate(invites):
        for h in ("Call-ID", "From", "To"):
            if header(inv, h) != header(first, h):
                print(f"INVITE {n + 1}: {h} {header(inv, h)!r} differs from the first {header(first, h)!r}")
                return 1
        seq, method = cseq(inv)
        if (seq, method) != (cseq(first)[0] + n, "INVITE"):
            print(f"INVITE {n + 1}: CSeq {header(inv, 'CSeq')!r}, expected {cseq(first)[0] + n} INVITE")
            return 1
        b = branch(inv)
        if not b or b in branches:
            print(f"INVITE {n + 1}: branch {b!r} not new")
            return 1
        branches.add(b)
        if digest and last_challenge:
            why = check_digest(inv, last_challenge, *digest)
            if why:
                print(f"INVITE {n + 1}: {why}")
                return 1
            digests += 1
        # The final response the callee sent to this INVITE, and its ACK.
        end = invites[n + 1][0] if n + 1 < len(invites) else len(msgs)
        last_challenge = None
        for j in range(i + 1, end):
            d, t = msgs[j]
            code = re.match(r"SIP/2\.0 (\d{3})", t)
            if d != "out" or not code or cseq(t) != (seq, "INVITE") or int(code.group(1)) < 300:
                continue
            code = int(code.group(1))
            if code in (401, 407):
                name = "WWW-Authenticate" if code == 401 else "Proxy-Authenticate"
                last_challenge = (code, header(t, name) or "")
            acks = [a for d2, a in msgs[j + 1:end] if d2 == "in" and a.startswith("ACK ")]
            if not acks:
                print(f"INVITE {n + 1}: its {code} was not ACKed")
                return 1
            if branch(acks[0]) != b or cseq(acks[0]) != (seq, "ACK"):
                print(f"INVITE {n + 1}: the ACK of its {code} has branch {branch(acks[0])} CSeq "
                      f"{header(acks[0], 'CSeq')!r}, not the INVITE's {b} / {seq}")
                return 1
            break
    if digest and not digests:
        print("no retried INVITE after a challenge")
        return 1
    print(f"{len(invites)} INVITEs: same Call-ID, From tag and To, CSeq {cseq(first)[0]}..{cseq(first)[0] + len(invites) - 1}, "
          f"new branches, failures ACKed hop by hop" + (f", {digests} digest(s) verified" if digest else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
