"""Scripted SIP user agents for the TCP framing and large-message tests.

Python 3 standard library only. A caller (A leg, towards Mediator) and a
callee (B leg: it listens at the trunk address on TCP, and on UDP too when
asked) whose bytes on the wire are chosen exactly: a message can be written
in chosen chunks, each its own `sendall` with TCP_NODELAY and a short sleep
in between so that the chunks leave as separate segments, or several
messages can be written in one `sendall` (one segment).

usage: ua.py CASE --med-port P --trunk-port T --did D --caller-base N
             --db SQLITE [--trunk-udp] [--x-headers K]
Prints one line "PASS CASE", "FAIL CASE: why" or "GAP CASE: what"; exit
status 0, 1 or 2 respectively. Only 127.0.0.1 is used."""
import argparse
import os
import queue
import random
import re
import socket
import sqlite3
import sys
import threading
import time

HOST = "127.0.0.1"
GAP_SLEEP = 0.15  # between chunks: long enough for each to be its own segment
COMPACT = {"l": "content-length", "i": "call-id", "v": "via", "f": "from", "t": "to",
           "m": "contact", "c": "content-type"}


class Fail(Exception):
    """The case failed; the message says why."""


class Gap(Exception):
    """Mediator does not do what the case needs; the message says what."""


def rnd(n=10):
    return "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


# --- messages ---------------------------------------------------------------
class Msg:
    """A parsed SIP message: start line, headers (in order) and body."""

    def __init__(self, raw):
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("utf-8", "replace").split("\r\n")
        self.start = lines[0]
        self.headers = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and self.headers:
                n, v = self.headers[-1]
                self.headers[-1] = (n, v + " " + line.strip())
                continue
            name, _, value = line.partition(":")
            name = name.strip().lower()
            self.headers.append((COMPACT.get(name, name), value.strip()))
        self.is_response = self.start.startswith("SIP/2.0 ")
        self.code = int(self.start.split()[1]) if self.is_response else 0
        self.method = self.start.split()[0] if not self.is_response else None

    def get(self, name):
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def all(self, name):
        return [v for n, v in self.headers if n == name]

    @property
    def call_id(self):
        return self.get("call-id")

    @property
    def cseq_method(self):
        c = self.get("cseq") or ""
        parts = c.split()
        return parts[1] if len(parts) > 1 else ""

    def __repr__(self):
        return f"<{self.start} {self.call_id}>"


def frame(buf):
    """Splits one message off the front of a stream buffer (RFC 3261 §18.3):
    returns (message bytes or None, rest). CRLFs before a start line are
    skipped (§7.5)."""
    while buf.startswith(b"\r\n"):
        buf = buf[2:]
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None, buf
    m = re.search(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*(\d+)", buf[:end + 2], re.I)
    if not m:
        raise Fail(f"message without Content-Length on TCP from Mediator: {buf[:200]!r}")
    total = end + 4 + int(m.group(1))
    if len(buf) < total:
        return None, buf
    return buf[:total], buf[total:]


# --- channels -----------------------------------------------------------------
class TcpChan:
    """One TCP connection; a reader thread frames what arrives into `inbox`."""

    def __init__(self, sock, inbox=None):
        self.sock = sock
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inbox = inbox if inbox is not None else queue.Queue()
        self.closed = threading.Event()
        self.proto = "TCP"
        self.local_port = sock.getsockname()[1]
        threading.Thread(target=self._read, daemon=True).start()

    @classmethod
    def connect(cls, port, inbox=None):
        s = socket.create_connection((HOST, port), timeout=5)
        s.settimeout(None)
        return cls(s, inbox)

    def _read(self):
        buf = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                buf += data
                while True:
                    raw, buf = frame(buf)
                    if raw is None:
                        break
                    self.inbox.put((Msg(raw), self))
        except (OSError, Fail) as e:
            self.inbox.put((e, self))
        finally:
            self.closed.set()

    def send(self, data, chunks=None):
        """Writes `data` in one sendall, or split at the offsets in `chunks`
        with a pause between the pieces."""
        if not chunks:
            self.sock.sendall(data)
            return
        prev = 0
        for cut in list(chunks) + [len(data)]:
            self.sock.sendall(data[prev:cut])
            prev = cut
            if cut < len(data):
                time.sleep(GAP_SLEEP)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class UdpChan:
    """A UDP socket; replies go to `peer`, messages go to `inbox`."""

    def __init__(self, sock, peer, inbox):
        self.sock, self.peer, self.inbox = sock, peer, inbox
        self.proto = "UDP"
        self.local_port = sock.getsockname()[1]

    def send(self, data, chunks=None):
        self.sock.sendto(data, self.peer)

    def close(self):
        pass


def udp_reader(sock, inbox):
    while True:
        try:
            data, peer = sock.recvfrom(70000)
        except OSError:
            return
        if data.strip(b"\r\n"):
            inbox.put((Msg(data), UdpChan(sock, peer, inbox)))


class Party:
    """Messages from any of a party's channels, matched by predicate; what
    does not match waits for a later `wait`."""

    def __init__(self, name):
        self.name = name
        self.inbox = queue.Queue()
        self.pending = []

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            for i, (m, ch) in enumerate(self.pending):
                if isinstance(m, Msg) and pred(m):
                    del self.pending[i]
                    return m, ch
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail(f"{self.name}: no {what} within {timeout:g} s "
                           f"(got {[m for m, _ in self.pending]})")
            try:
                self.pending.append(self.inbox.get(timeout=left))
            except queue.Empty:
                pass

    def drop(self, pred):
        """Forgets the messages received so far that match `pred`."""
        while True:
            try:
                self.pending.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        self.pending = [(m, ch) for m, ch in self.pending if not (isinstance(m, Msg) and pred(m))]

    def none(self, pred, secs, what):
        """Fails if a message matching `pred` arrives within `secs`."""
        try:
            m, _ = self.wait(pred, secs, what)
        except Fail:
            return
        raise Fail(f"{self.name} got {what}: {m.start}")


# --- building messages --------------------------------------------------------
def sdp(port, extra_lines=0):
    """An offer; `extra_lines` long session-level attribute lines come
    before the m-line, so a message cut short loses its m-line."""
    lines = ["v=0", f"o=- {random.randint(1, 10**9)} 1 IN IP4 {HOST}", "s=-", f"c=IN IP4 {HOST}",
             "t=0 0"]
    for i in range(extra_lines):  # a big offer: long ICE-like attribute lines
        lines.append(f"a=x-filler-{i}:{'f' * 60}")
    lines += [f"m=audio {port} RTP/AVP 0 8 101", "a=rtpmap:0 PCMU/8000",
              "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16",
              "a=ptime:20", "a=sendrecv"]
    return ("\r\n".join(lines) + "\r\n").encode()


def render(start, headers, body=b"", content_length=True):
    hs = list(headers)
    if content_length is True:
        hs.append(("Content-Length", str(len(body))))
    elif content_length is not None and content_length is not False:
        hs.append(("Content-Length", str(content_length)))
    text = start + "\r\n" + "".join(f"{n}: {v}\r\n" for n, v in hs) + "\r\n"
    return text.encode() + body


def response(req, code, reason, tag, contact, body=b""):
    hs = [("Via", v) for v in req.all("via")]
    to = req.get("to")
    if ";tag=" not in to:
        to += f";tag={tag}"
    hs += [("From", req.get("from")), ("To", to), ("Call-ID", req.call_id),
           ("CSeq", req.get("cseq"))]
    if contact:
        hs.append(("Contact", contact))
    if body:
        hs.append(("Content-Type", "application/sdp"))
    return render(f"SIP/2.0 {code} {reason}", hs, body)


class Caller:
    """An A-leg dialog over one channel."""

    def __init__(self, party, chan, did, number, med_port):
        self.party, self.chan, self.did, self.number = party, chan, did, number
        self.med_port = med_port
        self.call_id = f"{rnd()}@{HOST}"
        self.tag = rnd()
        self.remote_to = None
        self.target = None

    def via(self):
        return f"SIP/2.0/{self.chan.proto} {HOST}:{self.chan.local_port};branch=z9hG4bK{rnd()};rport"

    def invite(self, body, content_length=True, extra=()):
        tp = ";transport=tcp" if self.chan.proto == "TCP" else ""
        hs = [("Via", self.via()), ("Max-Forwards", "70"),
              ("From", f"<sip:{self.number}@{HOST}>;tag={self.tag}"),
              ("To", f"<sip:{self.did}@{HOST}>"), ("Call-ID", self.call_id),
              ("CSeq", "1 INVITE"),
              ("Contact", f"<sip:{self.number}@{HOST}:{self.chan.local_port}{tp}>"),
              *extra, ("Content-Type", "application/sdp")]
        return render(f"INVITE sip:{self.did}@{HOST}:{self.med_port}{tp} SIP/2.0", hs, body,
                      content_length)

    def in_dialog(self, method, cseq):
        hs = [("Via", self.via()), ("Max-Forwards", "70"),
              ("From", f"<sip:{self.number}@{HOST}>;tag={self.tag}"), ("To", self.remote_to),
              ("Call-ID", self.call_id), ("CSeq", f"{cseq} {method}")]
        return render(f"{method} {self.target} SIP/2.0", hs)

    def mine(self, m):
        return m.call_id == self.call_id

    def final(self, timeout=8):
        """Waits for the INVITE's final response; remembers To and Contact."""
        m, _ = self.party.wait(lambda m: self.mine(m) and m.is_response and m.code >= 200
                               and m.cseq_method == "INVITE", timeout, "final response to INVITE")
        if m.code == 200:
            self.remote_to = m.get("to")
            c = m.get("contact") or ""
            mm = re.search(r"<([^>]+)>", c)
            self.target = mm.group(1) if mm else c.strip()
            if not m.body:
                raise Fail("200 to the INVITE without SDP")
        return m


class Callee:
    """The trunk: listens on TCP (and UDP) at `port` and answers INVITEs."""

    def __init__(self, port, tcp=True, udp=False, blackhole=False):
        self.party = Party("callee")
        self.port = port
        self.socks = []
        if blackhole:
            # A TCP port that drops SYNs, like a firewall: a listener that
            # never accepts, its backlog filled by two connections of ours.
            ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind((HOST, port))
            ls.listen(0)
            self.socks.append(ls)
            for _ in range(2):
                f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                f.settimeout(0.5)
                try:
                    f.connect((HOST, port))
                except OSError:
                    pass
                self.socks.append(f)
        if tcp:
            ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind((HOST, port))
            ls.listen(16)
            self.socks.append(ls)
            threading.Thread(target=self._accept, args=(ls,), daemon=True).start()
        if udp:
            us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            us.bind((HOST, port))
            self.socks.append(us)
            threading.Thread(target=udp_reader, args=(us, self.party.inbox), daemon=True).start()

    def _accept(self, ls):
        while True:
            try:
                s, _ = ls.accept()
            except OSError:
                return
            TcpChan(s, self.party.inbox)

    def close(self):
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass

    def contact(self, chan):
        tp = ";transport=tcp" if chan.proto == "TCP" else ""
        return f"<sip:callee@{HOST}:{self.port}{tp}>"

    def answer(self, mode="separate", timeout=8, pred=None):
        """Waits for a B-leg INVITE, sends 180 and 200 (written as `mode`
        says), waits for the ACK. Returns (INVITE, channel)."""
        inv, ch = self.party.wait(lambda m: m.method == "INVITE" and (pred is None or pred(m)),
                                  timeout, "B-leg INVITE")
        tag = rnd()
        r180 = response(inv, 180, "Ringing", tag, self.contact(ch))
        r200 = response(inv, 200, "OK", tag, self.contact(ch), sdp(48990))
        if mode == "one-segment":
            ch.send(r180 + r200)
        elif mode == "split-200-at-blank-line":
            ch.send(r180)
            time.sleep(GAP_SLEEP)
            ch.send(r200, chunks=[r200.index(b"\r\n\r\n") + 4])
        else:
            ch.send(r180)
            time.sleep(GAP_SLEEP)
            ch.send(r200)
        ack, self.ack_chan = self.party.wait(
            lambda m: m.method == "ACK" and m.call_id == inv.call_id, 8, "ACK for the B leg's 200")
        self.ack_via = ack.get("via") or ""
        return inv, ch

    def bye(self, inv, timeout=8):
        """Waits for the BYE of the B leg of `inv` and answers 200."""
        m, ch = self.party.wait(lambda m: m.method == "BYE" and m.call_id == inv.call_id,
                                timeout, "BYE on the B leg")
        ch.send(response(m, 200, "OK", None, None))
        self.bye_chan, self.bye_via = ch, m.get("via") or ""
        return m


# --- call detail records ---------------------------------------------------------
def cdr(db, number_src, timeout=6):
    """The call record of the caller `number_src` (waits for it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            try:
                rows = con.execute("SELECT sip_status, hangup_side, date_answer FROM calls "
                                   "WHERE number_src = ?", (number_src,)).fetchall()
            finally:
                con.close()
        except sqlite3.Error:
            rows = []
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def check_cdr(db, number_src, status=200, side="caller"):
    rows = cdr(db, number_src)
    if len(rows) != 1:
        raise Fail(f"{len(rows)} call records for caller {number_src}, expected 1")
    st, hs, answered = rows[0]
    if str(st) != str(status) or (side and hs != side) or (status == 200 and answered is None):
        raise Fail(f"call record of {number_src}: sip_status={st} hangup_side={hs} "
                   f"date_answer={answered}")


# --- one whole call ----------------------------------------------------------------
class Ctx:
    def __init__(self, a):
        self.a = a
        self.callee = None
        self.n = 0

    def number(self):
        self.n += 1
        return str(int(self.a.caller_base) + self.n)


def full_call(ctx, chan=None, invite_chunks=None, ack_bye="separate", answer_mode="separate",
              invite_body=None, check_via=None, end=True, content_length=True):
    """A whole call: INVITE (written in `invite_chunks`), 180/200 from the
    callee (as `answer_mode`), ACK and BYE (one segment or separate), 200 to
    the BYE, and the BYE crossing to the callee; returns (caller, B INVITE)."""
    a = ctx.a
    party = Party("caller")
    chan = chan or TcpChan.connect(a.med_port, party.inbox)
    party.inbox = chan.inbox
    c = Caller(party, chan, a.did, ctx.number(), a.med_port)
    body = invite_body if invite_body is not None else sdp(48900 + 2 * ctx.n)
    data = c.invite(body, content_length)
    chunks = invite_chunks(data) if invite_chunks else None
    chan.send(data, chunks)
    inv, bch = ctx.callee.answer(answer_mode)
    if check_via:
        check_via(inv, bch)
    if inv.body.count(b"m=audio") != 1:
        raise Fail("B-leg INVITE without an audio offer")
    fin = c.final()
    if fin.code != 200:
        raise Fail(f"caller got {fin.code} instead of 200")
    if not end:
        return c, inv
    hang_up(ctx, c, inv, ack_bye)
    return c, inv


def ack(c):
    """ACKs the 200 (after forgetting the copies of it received so far)."""
    c.party.drop(lambda m: c.mine(m) and m.is_response and m.cseq_method == "INVITE")
    c.chan.send(c.in_dialog("ACK", 1))


def hang_up(ctx, c, inv, ack_bye="separate"):
    c.party.drop(lambda m: c.mine(m) and m.is_response and m.cseq_method == "INVITE")
    ack = c.in_dialog("ACK", 1)
    bye = c.in_dialog("BYE", 2)
    if ack_bye == "acked":
        c.chan.send(bye)
    elif ack_bye == "one-segment":
        c.chan.send(ack + bye)
    else:
        c.chan.send(ack)
        time.sleep(0.1)
        c.chan.send(bye)
    ctx.callee.bye(inv)
    m, _ = c.party.wait(lambda m: c.mine(m) and m.is_response and m.cseq_method == "BYE", 8,
                        "response to the BYE")
    if m.code != 200:
        raise Fail(f"BYE answered {m.code}")
    # A 200 to the INVITE retransmitted after our ACK would mean the ACK was lost.
    c.party.none(lambda m: c.mine(m) and m.is_response and m.cseq_method == "INVITE", 0.6,
                 "a retransmitted 200 after the ACK (ACK lost)")
    check_cdr(ctx.a.db, c.number)


def mediator_alive(ctx):
    """A fresh call completes: Mediator is up and not disturbed."""
    full_call(ctx)


def got_400_and_closed(chan, party, call_id, secs):
    """Whether the bad request got a 400 and the connection was then
    closed by Mediator, within `secs`; (got 400, closed)."""
    deadline = time.monotonic() + secs
    got = False
    while time.monotonic() < deadline and not (got and chan.closed.is_set()):
        try:
            m, _ = party.wait(lambda m: m.call_id == call_id and m.is_response, 0.2, "")
            if m.code >= 200 and m.code != 400:
                raise Fail(f"a request without Content-Length got {m.code}, not 400")
            got = got or m.code == 400
        except Fail as e:
            if "not 400" in str(e):
                raise
    return got, chan.closed.is_set()


# --- cases ---------------------------------------------------------------------
def case_ack_bye_one_segment(ctx):
    full_call(ctx, ack_bye="one-segment")


def case_invite_split_3(ctx):
    def cuts(d):
        mid_header = d.index(b"\r\nFrom: ") + 9  # in the middle of the From header
        blank = d.index(b"\r\n\r\n") + 4          # right after the blank line
        return [mid_header, blank]
    full_call(ctx, invite_chunks=cuts)


def case_invite_split_crlf_cr(ctx):
    # JAIN-SIP's bug (BC-18): the header block ends at "\r\n\r" | "\n".
    def cuts(d):
        blank = d.index(b"\r\n\r\n")
        return [blank + 3, blank + 3 + 40]   # and again in the middle of the body
    full_call(ctx, invite_chunks=cuts)


def case_invite_bytewise(ctx):
    global GAP_SLEEP
    old, GAP_SLEEP = GAP_SLEEP, 0.001
    try:
        full_call(ctx, invite_chunks=lambda d: range(1, len(d)))
    finally:
        GAP_SLEEP = old


def case_crlf_keepalive(ctx):
    """CRLF keep-alives between messages (RFC 5626 §3.5.1, RFC 3261 §7.5)."""
    party = Party("caller")
    chan = TcpChan.connect(ctx.a.med_port, party.inbox)
    chan.send(b"\r\n\r\n")
    time.sleep(GAP_SLEEP)
    c, inv = full_call(ctx, chan=chan, end=False)
    c.party.drop(lambda m: c.mine(m) and m.is_response and m.cseq_method == "INVITE")
    chan.send(b"\r\n\r\n" + c.in_dialog("ACK", 1))
    time.sleep(GAP_SLEEP)
    chan.send(b"\r\n\r\n")
    time.sleep(GAP_SLEEP)
    bye = c.in_dialog("BYE", 2)
    chan.send(b"\r\n\r\n" + bye)
    ctx.callee.bye(inv)
    m, _ = c.party.wait(lambda m: c.mine(m) and m.is_response and m.cseq_method == "BYE", 8,
                        "response to the BYE")
    if m.code != 200:
        raise Fail(f"BYE answered {m.code}")
    check_cdr(ctx.a.db, c.number)


def case_callee_180_200_one_segment(ctx):
    full_call(ctx, answer_mode="one-segment")


def case_callee_200_split_blank_line(ctx):
    full_call(ctx, answer_mode="split-200-at-blank-line")


def parallel(ctx, bad):
    """Call P is set up on its own connection; `bad` then runs on another
    connection; P must still end normally afterwards, and a new call work."""
    p, pinv = full_call(ctx, end=False)
    ack(p)
    after = bad()
    hang_up(ctx, p, pinv, "acked")
    mediator_alive(ctx)
    if after:
        after()


def case_no_content_length(ctx):
    def bad():
        party = Party("caller-bad")
        chan = TcpChan.connect(ctx.a.med_port, party.inbox)
        c = Caller(party, chan, ctx.a.did, ctx.number(), ctx.a.med_port)
        chan.send(c.invite(sdp(48980), content_length=None))
        got, closed = got_400_and_closed(chan, party, c.call_id, 4)
        # Without Content-Length the body's end is unknown: the INVITE must
        # not be taken as one without SDP and routed.
        ctx.callee.party.none(lambda m: m.method == "INVITE", 0.5,
                              "a B-leg INVITE for a request without Content-Length")
        if not (got and closed):
            raise Fail(f"INVITE without Content-Length over TCP: 400 {'sent' if got else 'missing'}, "
                       f"connection {'closed' if closed else 'still open'} after 4 s")
        chan.close()
    parallel(ctx, bad)


def case_content_length_too_large(ctx):
    def bad():
        party = Party("caller-bad")
        chan = TcpChan.connect(ctx.a.med_port, party.inbox)
        c = Caller(party, chan, ctx.a.did, ctx.number(), ctx.a.med_port)
        body = sdp(48982)
        chan.send(c.invite(body, content_length=len(body) + 400))
        # The message is incomplete: it must not be delivered (no 100, no B leg).
        party.none(lambda m: m.call_id == c.call_id, 2, "a response to an incomplete INVITE")
        ctx.callee.party.none(lambda m: m.method == "INVITE", 0.2,
                              "a B-leg INVITE for an incomplete INVITE")
        sent = time.monotonic()

        def after():
            # Mediator must not wait forever for the rest (a connection held
            # open by a half message): it closes within 64*T1 = 32 s.
            left = sent + 36 - time.monotonic()
            if not chan.closed.wait(max(left, 0)):
                raise Fail("the connection with a half-sent INVITE is still open after 36 s")
            if time.monotonic() - sent < 5:
                raise Fail("the connection with a half-sent INVITE was closed within 5 s")
            chan.close()
        return after
    parallel(ctx, bad)


def case_content_length_too_large_bounded(ctx):
    """A claimed body of 70,000 bytes: more than a SIP message may be
    (Mediator's stream limit is 65,535). Sending it must end in the
    connection closed, not a buffer that grows without bound."""
    def bad():
        party = Party("caller-bad")
        chan = TcpChan.connect(ctx.a.med_port, party.inbox)
        c = Caller(party, chan, ctx.a.did, ctx.number(), ctx.a.med_port)
        body = sdp(48984)
        chan.send(c.invite(body, content_length=70000))
        try:
            for _ in range(70):
                chan.sock.sendall(b"a" * 1000)
                time.sleep(0.005)
        except OSError:
            pass
        if not chan.closed.wait(4):
            raise Fail("after 70 KB of a 70,000-byte body the connection is still open")
        ctx.callee.party.none(lambda m: m.method == "INVITE", 0.2,
                              "a B-leg INVITE for an oversized INVITE")
    parallel(ctx, bad)


def case_content_length_too_small(ctx):
    """Content-Length 20 bytes short: the INVITE ends early and the rest of
    its body is junk on the stream. The junk must not crash anything nor be
    delivered; the connection is closed or keeps working."""
    def bad():
        party = Party("caller-bad")
        chan = TcpChan.connect(ctx.a.med_port, party.inbox)
        c = Caller(party, chan, ctx.a.did, ctx.number(), ctx.a.med_port)
        body = sdp(48986)
        junk = b"\x00\xff\xfejunk: not a start line\r\n\r\n"
        chan.send(c.invite(body + junk, content_length=len(body)))
        # The INVITE itself (exactly Content-Length bytes) is a valid call
        # and may be routed: the callee turns it down (486) if it sees it.
        try:
            inv, bch = ctx.callee.party.wait(lambda m: m.method == "INVITE", 3, "B-leg INVITE")
            bch.send(response(inv, 486, "Busy Here", rnd(), None))
        except Fail:
            pass
        time.sleep(0.5)
        if not chan.closed.is_set():
            # Still open: it must work (an OPTIONS is answered) or be closed soon.
            opt = render(f"OPTIONS sip:{HOST}:{ctx.a.med_port};transport=tcp SIP/2.0",
                         [("Via", c.via()), ("Max-Forwards", "70"),
                          ("From", f"<sip:{c.number}@{HOST}>;tag=o{rnd()}"),
                          ("To", f"<sip:{HOST}>"), ("Call-ID", f"o{rnd()}"), ("CSeq", "1 OPTIONS")])
            try:
                chan.send(opt)
            except OSError:
                pass
            try:
                party.wait(lambda m: m.is_response and m.cseq_method == "OPTIONS", 3,
                           "answer to OPTIONS")
            except Fail:
                if not chan.closed.wait(1):
                    raise Fail("after junk the connection neither works nor is closed")
        chan.close()
    parallel(ctx, bad)


def large_headers_check(expect):
    def check(inv, ch):
        size = len(inv.raw)
        via = inv.get("via") or ""
        if expect == "TCP" and size <= 1300:
            raise Fail(f"B-leg INVITE is only {size} bytes; the case needs > 1300")
        if ch.proto != expect:
            raise Fail(f"B-leg INVITE of {size} bytes came over {ch.proto}, expected {expect} "
                       "(RFC 3261 18.1.1)")
        if not via.upper().startswith(f"SIP/2.0/{expect}"):
            raise Fail(f"B-leg INVITE over {ch.proto} has Via {via!r}")
    return check


def case_large_b_invite_tcp(ctx):
    full_call(ctx, check_via=large_headers_check("TCP"))
    # The rest of the B dialog stays on TCP, with Vias that say so.
    cl = ctx.callee
    for what, ch, via in (("ACK", cl.ack_chan, cl.ack_via), ("BYE", cl.bye_chan, cl.bye_via)):
        if ch.proto != "TCP" or not via.upper().startswith("SIP/2.0/TCP"):
            raise Fail(f"the B leg's {what} came over {ch.proto} with Via {via!r}")


def case_large_b_invite_fallback_udp(ctx):
    full_call(ctx, check_via=large_headers_check("UDP"))


def case_large_b_invite_tcp_blackhole(ctx):
    """The trunk's TCP port drops SYNs: the INVITE goes over UDP after a
    bounded wait (Mediator waits 2 s for the connect)."""
    t0 = time.monotonic()
    full_call(ctx, check_via=large_headers_check("UDP"))
    if time.monotonic() - t0 > 6:
        raise Fail(f"the call took {time.monotonic() - t0:.1f} s: the TCP connect was not bounded")


def case_small_b_invite_udp(ctx):
    full_call(ctx, check_via=large_headers_check("UDP"))


def case_large_a_invite_udp(ctx):
    party = Party("caller")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, 0))
    threading.Thread(target=udp_reader, args=(s, party.inbox), daemon=True).start()
    chan = UdpChan(s, (HOST, ctx.a.med_port), party.inbox)
    body = sdp(48970, extra_lines=40)
    c_probe = Caller(party, chan, ctx.a.did, "0", ctx.a.med_port)
    if len(c_probe.invite(body)) < 3000:
        raise Fail("the test INVITE is under 3000 bytes")
    full_call(ctx, chan=chan, invite_body=body, check_via=large_headers_check("UDP"))


def case_huge_a_invite_udp(ctx):
    """A 12 KB INVITE in one UDP datagram: every element MUST take UDP
    messages up to 65,535 bytes (RFC 3261 §18.1.1)."""
    party = Party("caller")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, 0))
    threading.Thread(target=udp_reader, args=(s, party.inbox), daemon=True).start()
    chan = UdpChan(s, (HOST, ctx.a.med_port), party.inbox)
    body = sdp(48974, extra_lines=150)
    if len(Caller(party, chan, ctx.a.did, "0", ctx.a.med_port).invite(body)) < 12000:
        raise Fail("the test INVITE is under 12000 bytes")
    full_call(ctx, chan=chan, invite_body=body, check_via=large_headers_check("UDP"))


def udp_chan(ctx):
    party = Party("caller")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, 0))
    threading.Thread(target=udp_reader, args=(s, party.inbox), daemon=True).start()
    return party, UdpChan(s, (HOST, ctx.a.med_port), party.inbox)


def case_udp_no_content_length(ctx):
    """Over UDP Content-Length is optional: the body runs to the end of the
    datagram (RFC 3261 §18.3). The SDP must be taken as the offer."""
    _, chan = udp_chan(ctx)
    full_call(ctx, chan=chan, content_length=None)


def case_udp_content_length_too_large(ctx):
    """A datagram that ends before its Content-Length says: a request gets
    400 (RFC 3261 §18.3) and is not routed."""
    party, chan = udp_chan(ctx)
    c = Caller(party, chan, ctx.a.did, ctx.number(), ctx.a.med_port)
    body = sdp(48976)
    chan.send(c.invite(body, content_length=len(body) + 100))
    m, _ = party.wait(lambda m: c.mine(m) and m.is_response and m.code >= 200, 4,
                      "final response to the short INVITE")
    if m.code != 400:
        raise Fail(f"a datagram shorter than its Content-Length got {m.code}, not 400")
    ctx.callee.party.none(lambda m: m.method == "INVITE", 0.5,
                          "a B-leg INVITE for a datagram shorter than its Content-Length")
    mediator_alive(ctx)


def case_large_a_invite_tcp(ctx):
    full_call(ctx, invite_body=sdp(48972, extra_lines=80))


CASES = {name[5:].replace("_", "-"): f for name, f in globals().items() if name.startswith("case_")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--med-port", type=int, required=True)
    ap.add_argument("--trunk-port", type=int, required=True)
    ap.add_argument("--did", required=True)
    ap.add_argument("--caller-base", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--callee", default="tcp", choices=["tcp", "udp", "both", "udp-tcp-blackhole"])
    a = ap.parse_args()
    ctx = Ctx(a)
    try:
        ctx.callee = Callee(a.trunk_port, tcp=a.callee in ("tcp", "both"),
                            udp=a.callee != "tcp", blackhole=a.callee == "udp-tcp-blackhole")
    except OSError as e:
        print(f"FAIL {a.case}: callee cannot listen on {a.trunk_port}: {e}")
        return 1
    try:
        CASES[a.case](ctx)
    except Fail as e:
        print(f"FAIL {a.case}: {e}")
        return 1
    except Gap as e:
        print(f"GAP {a.case}: {e}")
        return 2
    except (OSError, ValueError, IndexError) as e:
        print(f"FAIL {a.case}: {type(e).__name__}: {e}")
        return 1
    finally:
        ctx.callee.close()
    print(f"PASS {a.case}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
