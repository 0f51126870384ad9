"""Flow fragments for uas.xml and tails for uac_call.xml (used by run-sip-tests.sh)."""

def resp(code, reason, sdp=False, contact=True, rr=False, cseq="[last_CSeq:]", tag="01", to="[last_To:]",
         via="[last_Via:]", direction=None):
    """A response of the callee; tag=None keeps the To of the request as it is (in-dialog)."""
    lines = [f"SIP/2.0 {code} {reason}", via]
    if rr:
        lines.append("Record-Route: <sip:[local_ip]:[local_port];lr;brr=uas-side>")
    to_line = to if tag is None else f"{to};tag=[pid]SIPpTag{tag}[call_number]"
    lines += ["[last_From:]", to_line, "[last_Call-ID:]", cseq]
    if contact:
        lines.append("Contact: <sip:bob@[local_ip]:[local_port];transport=[transport]>")
    if sdp:
        lines += ["Content-Type: application/sdp", "Content-Length: [len]", "",
                  "v=0", "o=bob 1 1 IN IP[local_ip_type] [local_ip]", "s=-",
                  "c=IN IP[media_ip_type] [media_ip]", "t=0 0",
                  "m=audio [media_port] RTP/AVP @B_FORMATS@", "@B_RTPMAPS@"]
        if direction:
            lines.append(f"a={direction}")
    else:
        lines.append("Content-Length: 0")
    return "<send><![CDATA[\n\n" + "\n".join(lines) + "\n\n]]></send>"

def plain_ok():
    return ("<send><![CDATA[\n\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n"
            "[last_CSeq:]\nContent-Length: 0\n\n]]></send>")

PLAY = '<nop><action><exec play_pcap_audio="/usr/share/sip-tester/g711a.pcap"/></action></nop>'

BYE = """<send retrans="500"><![CDATA[

BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
[last_From:]
[last_To:]
[last_Call-ID:]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>"""

def bye_from_uac():
    return BYE.replace("[routes]\n", "").replace("[last_From:]", "From: @FROM@;tag=[pid]SIPpTag00[call_number]").replace(
        "[last_Call-ID:]", "Call-ID: [call_id]")

def reinvite_from_uac(cseq, version, direction, conn="IN IP[media_ip_type] [media_ip]"):
    """A re-INVITE of the caller with a new offer (PCMA and telephone-event, as
    in the initial offer) asking for `direction`, with connection line `conn`."""
    return f"""<send retrans="500" start_txn="re{cseq}"><![CDATA[

INVITE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: @FROM@;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: {cseq} INVITE
Contact: <sip:alice@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=alice 53655765 {version} IN IP[local_ip_type] [local_ip]
s=-
c={conn}
t=0 0
m=audio [media_port] RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a={direction}

]]></send>
<recv response="100" optional="true" response_txn="re{cseq}"/>
"""

def ack_from_uac(cseq):
    return f"""<send ack_txn="re{cseq}"><![CDATA[

ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: @FROM@;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: {cseq} ACK
Max-Forwards: 70
Content-Length: 0

]]></send>"""

def expect_200(cseq, direction):
    """Our 200 to a re-INVITE: our address, and the answered direction."""
    return (f'<recv response="200" response_txn="re{cseq}"><action>'
            f'<ereg regexp="a={direction}" search_in="body" check_it="true" assign_to="d{cseq}"/>'
            f'<ereg regexp="c=IN IP4 127\\.0\\.0\\.1" search_in="body" check_it="true" assign_to="d{cseq}"/>'
            f'<ereg regexp="SIPpTag01|o=bob" search_in="msg" check_it_inverse="true" assign_to="d{cseq}"/>'
            f'<log message="re-INVITE {cseq} answered [$d{cseq}]"/></action></recv>')

def info_from_uac():
    """INFO with a DTMF digit as application/dtmf-relay, in the caller's dialog."""
    return (bye_from_uac().replace("BYE [next_url]", "INFO [next_url]").replace("CSeq: 2 BYE", "CSeq: 2 INFO")
            .replace("Content-Length: 0", "Content-Type: application/dtmf-relay\nContent-Length: [len]\n\nSignal=5\nDuration=160"))

def reinvite_from_uas(cseq, direction):
    """The callee's own re-INVITE in its dialog (From/To swapped, captured
    as bto/bfrom from the initial INVITE), asking for `direction`."""
    return f"""<send retrans="500" start_txn="b{cseq}"><![CDATA[

INVITE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: [$bto];tag=[pid]SIPpTag01[call_number]
To: [$bfrom]
[last_Call-ID:]
CSeq: {cseq} INVITE
Contact: <sip:bob@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=bob 1 {cseq + 10} IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a={direction}

]]></send>
<recv response="100" optional="true" response_txn="b{cseq}"/>
"""

def ack_from_uas(cseq, branch="[branch]"):
    """ACK of the callee's re-INVITE; for a non-2xx the INVITE's branch
    (hop by hop, RFC 3261 §17.1.1.3): branch="[branch-3]" when the ACK is
    three messages after the INVITE."""
    return f"""<send ack_txn="b{cseq}"><![CDATA[

ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch}
From: [$bto];tag=[pid]SIPpTag01[call_number]
To: [$bfrom]
[last_Call-ID:]
CSeq: {cseq} ACK
Max-Forwards: 70
Content-Length: 0

]]></send>"""

# The callee's 200 to a re-INVITE it received earlier (its Via and CSeq
# captured as rvia/rcseq), sent after other messages.
OK_TO_CAPTURED = """<send><![CDATA[

SIP/2.0 200 OK
Via: [$rvia]
From: [$bfrom]
To: [$bto];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
CSeq: [$rcseq]
Contact: <sip:bob@[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=bob 1 2 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=recvonly

]]></send>"""

# Session timers (RFC 4028): the callee's 200 asks Mediator to refresh
# every 90 s (refresher=uac: Mediator, the B leg's UAC).
SE_90_UAC = "Session-Expires: 90;refresher=uac\nRequire: timer"

def with_headers(fragment, headers):
    """Adds header lines after the Contact of a response fragment."""
    return fragment.replace("Contact: <sip:bob@[local_ip]:[local_port];transport=[transport]>",
                            "Contact: <sip:bob@[local_ip]:[local_port];transport=[transport]>\n" + headers, 1)

# Retries of the B leg's INVITE (RFC 3261 §8.1.3.4 redirects, §22.2
# digest challenges, RFC 4028 §7.4 422): the callee answers a failure, gets
# its ACK (hop by hop, same branch: checked by retries.py on the message
# log) and then the retried INVITE, checked here.
def with_contact(fragment, contact):
    """A response fragment with `contact` in place of the callee's Contact."""
    return fragment.replace("Contact: <sip:bob@[local_ip]:[local_port];transport=[transport]>", contact, 1)

def redirect(contact, code=302, reason="Moved Temporarily"):
    return with_contact(resp(code, reason), contact) + '<recv request="ACK"/>'

def challenge(code, reason, header, nonce, algorithm="MD5", qop="auth", stale=False):
    """A 401/407 digest challenge (realm trunk.test) and the ACK to it."""
    q = f', qop="{qop}"' if qop else ""
    st = ", stale=true" if stale else ""
    line = f'{header}: Digest realm="trunk.test", nonce="{nonce}-[call_number]", algorithm={algorithm}{q}, opaque="op-{nonce}"{st}'
    return with_contact(resp(code, reason), line) + '<recv request="ACK"/>'

def retried_invite(cseq, checks=""):
    """The retried INVITE: CSeq raised to `cseq`, plus `checks` (ereg/verifyauth actions)."""
    return (f'<recv request="INVITE"><action>'
            f'<ereg regexp="^ *{cseq} INVITE" search_in="hdr" header="CSeq:" check_it="true" assign_to="rt{cseq}"/>'
            f'{checks}<log message="retried INVITE {cseq} [$rt{cseq}]"/></action></recv>')

def ereg_check(regexp, var, header=None, search="msg"):
    where = f'search_in="hdr" header="{header}"' if header else f'search_in="{search}"'
    return (f'<ereg regexp="{regexp}" {where} check_it="true" assign_to="{var}"/>'
            f'<log message="{var}=[${var}]"/>')

# After the retries: answered, and the caller's BYE reaches the callee with
# the CSeq after the answered INVITE's (the B dialog continues from it).
def answered_then_bye(bye_cseq):
    return (resp(180, "Ringing") + resp(200, "OK", sdp=True, rr=True)
            + '<recv request="ACK" crlf="true"/>' + PLAY
            + '<recv request="BYE"><action>'
            + ereg_check(f"^ *{bye_cseq} BYE", "bc", header="CSeq:")
            + '</action></recv>' + plain_ok() + '<timewait milliseconds="1000"/>')

TRUNK_USER = "trunk-user"
TRUNK_PASSWORD = "trunk-secret"

def verified(var, password=TRUNK_PASSWORD):
    """SIPp's own check of the Authorization's digest (MD5) for our credentials."""
    return f'<verifyauth assign_to="{var}" username="{TRUNK_USER}" password="{password}"/>'

# Reliable provisional responses (RFC 3262, BC-10).
RELIABLE_1 = "Require: 100rel\nRSeq: 1"

def inv_resp(code, reason, **kw):
    """A response to the INVITE sent after other messages (a PRACK): its
    Via and To captured as bvia/bto, CSeq 1 INVITE."""
    return resp(code, reason, via="Via: [$bvia]", to="To: [$bto]", cseq="CSeq: 1 INVITE", **kw)

def expect_prack(rseq):
    """Mediator's PRACK for our reliable 1xx `rseq`, in the early dialog that
    1xx made (RFC 3262 §4, BC-10): RAck, our To tag, our Contact
    (sip:bob@...) as Request-URI, our Record-Route as Route, CSeq 2; then 200."""
    return ('<recv request="PRACK"><action>'
            f'<ereg regexp="^ *{rseq} 1 INVITE" search_in="hdr" header="RAck:" check_it="true" assign_to="pk"/>'
            '<ereg regexp="SIPpTag01" search_in="hdr" header="To:" check_it="true" assign_to="pk"/>'
            '<ereg regexp="^PRACK sip:bob@" search_in="msg" check_it="true" assign_to="pk"/>'
            '<ereg regexp="brr=uas-side" search_in="hdr" header="Route:" check_it="true" assign_to="pk"/>'
            '<ereg regexp="^ *2 PRACK" search_in="hdr" header="CSeq:" check_it="true" assign_to="pk"/>'
            '<log message="PRACK [$pk]"/></action></recv>' + plain_ok())

# The BYE that ends B's dialog comes after INVITE (1) and PRACK (2).
BYE_CSEQ_3 = ('<recv request="BYE"><action><ereg regexp="^ *3 BYE" search_in="hdr" header="CSeq:" check_it="true" '
              'assign_to="bc"/><log message="BYE after PRACK [$bc]"/></action></recv>')

FLOWS = {
    # BC-30: a 302 with two Contacts; the higher q (0.8) is tried first,
    # through the trunk, and answers.
    "redirect_q_order": redirect('Contact: <sip:low-q@192.0.2.10:5060>;q=0.3, <sip:15162065399@192.0.2.20:5070;user=phone>;q=0.8')
    + retried_invite(2, ereg_check("^INVITE sip:15162065399@192\\.0\\.2\\.20:5070;user=phone SIP/2\\.0", "rq"))
    + answered_then_bye(3),
    # BC-30: redirects past sip.max_redirects (3): four 302s, then no
    # fifth INVITE (an unexpected one fails this scenario).
    "redirect_limit": redirect("Contact: <sip:hop1@192.0.2.31>")
    + retried_invite(2, ereg_check("^INVITE sip:hop1@192\\.0\\.2\\.31 SIP", "h1"))
    + redirect("Contact: <sip:hop2@192.0.2.32>")
    + retried_invite(3, ereg_check("^INVITE sip:hop2@192\\.0\\.2\\.32 SIP", "h2"))
    + redirect("Contact: <sip:hop3@192.0.2.33>")
    + retried_invite(4, ereg_check("^INVITE sip:hop3@192\\.0\\.2\\.33 SIP", "h3"))
    + redirect("Contact: <sip:hop4@192.0.2.34>")
    + '<timewait milliseconds="1500"/>',
    # BC-04: 401 with WWW-Authenticate (MD5, qop=auth); the retry must carry
    # an Authorization SIPp itself verifies against the trunk password
    # (a wrong one gets 403, which fails the caller).
    "auth_401": challenge(401, "Unauthorized", "WWW-Authenticate", "n401")
    + retried_invite(2, verified("authok") + ereg_check("username=&quot;" + TRUNK_USER + "&quot;", "au", header="Authorization:"))
    + '<nop hide="true" test="authok" next="auth_good"/>'
    + resp(403, "Forbidden", contact=False) + '<recv request="ACK"/><nop next="auth_end"/>'
    + '<label id="auth_good"/>' + answered_then_bye(3) + '<label id="auth_end"/>',
    # BC-04: 407 with Proxy-Authenticate (SHA-256, qop=auth): SIPp cannot
    # verify SHA-256 or Proxy-Authorization, retries.py recomputes the digest.
    "auth_407": challenge(407, "Proxy Authentication Required", "Proxy-Authenticate", "n407", algorithm="SHA-256")
    + retried_invite(2, ereg_check("algorithm=SHA-256", "pa", header="Proxy-Authorization:"))
    + answered_then_bye(3),
    # The trunk's password is not ours: SIPp's check fails, so it challenges
    # again; Mediator must not answer a second time (the caller gets 503).
    "auth_wrong_password": challenge(401, "Unauthorized", "WWW-Authenticate", "w1")
    + retried_invite(2, verified("authok", password="not-" + TRUNK_PASSWORD))
    + '<nop hide="true" test="authok" next="auth_accepted"/>'
    + challenge(401, "Unauthorized", "WWW-Authenticate", "w2") + '<pause milliseconds="1500"/><nop next="auth_end"/>'
    # Accepted (the check is broken): answer, which fails the caller expecting 503.
    + '<label id="auth_accepted"/>' + resp(200, "OK", sdp=True) + '<recv request="ACK"/>'
    + '<recv request="BYE"/>' + plain_ok() + '<label id="auth_end"/>',
    # A redirect target that fails (486) makes Mediator try the next one.
    "redirect_next_target": redirect("Contact: <sip:first@192.0.2.51>;q=0.9, <sip:second@192.0.2.52>;q=0.5")
    + retried_invite(2, ereg_check("^INVITE sip:first@192\\.0\\.2\\.51 SIP", "t1"))
    + resp(486, "Busy Here", contact=False) + '<recv request="ACK"/>'
    + retried_invite(3, ereg_check("^INVITE sip:second@192\\.0\\.2\\.52 SIP", "t2"))
    + answered_then_bye(4),
    # A 407 then a 401: the last INVITE carries both credentials (the
    # proxy's kept, RFC 3261 §22.3); retries.py verifies each digest.
    "auth_407_then_401": challenge(407, "Proxy Authentication Required", "Proxy-Authenticate", "p1")
    + retried_invite(2, ereg_check("Digest", "pa2", header="Proxy-Authorization:"))
    + challenge(401, "Unauthorized", "WWW-Authenticate", "w1")
    + retried_invite(3, ereg_check("nonce=&quot;p1-", "pa3", header="Proxy-Authorization:")
                     + ereg_check("[^-]Authorization: Digest username=&quot;trunk-user&quot;, realm=&quot;trunk.test&quot;, nonce=&quot;w1-", "wa3"))
    + answered_then_bye(4),
    # A second 401 that says stale=true (the nonce expired, the credentials
    # were good, RFC 2617 §3.2.1) is answered once more, with its nonce.
    "auth_stale_nonce": challenge(401, "Unauthorized", "WWW-Authenticate", "s1")
    + retried_invite(2)
    + challenge(401, "Unauthorized", "WWW-Authenticate", "s2", stale=True)
    + retried_invite(3, ereg_check("nonce=&quot;s2-", "sn", header="Authorization:"))
    + answered_then_bye(4),
    # sip.max_redirects = 0: the 302 is not followed (480 to the caller).
    "redirect_disabled": redirect("Contact: <sip:elsewhere@192.0.2.40>") + '<timewait milliseconds="1500"/>',
    # No credentials configured: a challenge is not answered (503).
    "auth_unanswered": challenge(401, "Unauthorized", "WWW-Authenticate", "u1") + '<timewait milliseconds="1500"/>',
    # BC-09: 422 with Min-SE 3600: retried once with Session-Expires and
    # Min-SE 3600.
    "session_timer_422_retry": with_headers(resp(422, "Session Interval Too Small", contact=True), "Min-SE: 3600")
    .replace("Contact: <sip:bob@[local_ip]:[local_port];transport=[transport]>\n", "", 1)
    + '<recv request="ACK"/>'
    + retried_invite(2, ereg_check("^ *3600", "se", header="Session-Expires:") + ereg_check("^ *3600", "ms", header="Min-SE:"))
    + answered_then_bye(3),
    # A second 422 with no larger Min-SE: no loop, the call fails (503).
    "session_timer_422_twice": with_headers(resp(422, "Session Interval Too Small", contact=True), "Min-SE: 3600")
    .replace("Contact: <sip:bob@[local_ip]:[local_port];transport=[transport]>\n", "", 1)
    + '<recv request="ACK"/>' + retried_invite(2)
    + with_headers(resp(422, "Session Interval Too Small", contact=True), "Min-SE: 3600")
    .replace("Contact: <sip:bob@[local_ip]:[local_port];transport=[transport]>\n", "", 1)
    + '<recv request="ACK"/><timewait milliseconds="1500"/>',
    "answer": resp(180, "Ringing") + resp(200, "OK", sdp=True, rr=True)
    + '<recv request="ACK" crlf="true"/>' + PLAY
    + '<recv request="BYE"/>' + plain_ok() + '<timewait milliseconds="1000"/>',
    "answer_bye": resp(180, "Ringing") + resp(200, "OK", sdp=True, rr=True)
    + '<recv request="ACK" crlf="true"/>' + PLAY + '<pause milliseconds="4000"/>'
    + BYE.replace("[last_From:]", "From:[$bto];tag=[pid]SIPpTag01[call_number]").replace("[last_To:]", "To:[$bfrom]")
    + '<recv response="200"/><timewait milliseconds="500"/>',
    # The caller's INFO (DTMF as application/dtmf-relay, field case BC-28)
    # must reach the callee with its Content-Type and body.
    "answer_info": resp(180, "Ringing") + resp(200, "OK", sdp=True, rr=True)
    + '<recv request="ACK" crlf="true"/>'
    + '<recv request="INFO"><action><ereg regexp="Signal=5" search_in="body" check_it="true" assign_to="info"/>'
    '<ereg regexp="application/dtmf-relay" search_in="hdr" header="Content-Type:" check_it="true" assign_to="info"/>'
    '<log message="INFO [$info]"/></action></recv>' + plain_ok()
    + '<recv request="BYE"/>' + plain_ok() + '<timewait milliseconds="500"/>',
    # The caller holds (sendonly) and resumes (sendrecv): each re-INVITE
    # reaches the callee with our address and the caller's direction, and
    # the callee's answer direction comes back. The caller's third
    # re-INVITE repeats the second (a session refresh) and must not reach
    # the callee at all.
    "answer_hold": resp(180, "Ringing") + resp(200, "OK", sdp=True, rr=True)
    + '<recv request="ACK" crlf="true"/>'
    + '<recv request="INVITE"><action><ereg regexp="a=sendonly" search_in="body" check_it="true" assign_to="h1"/>'
    '<ereg regexp="c=IN IP4 127\\.0\\.0\\.1" search_in="body" check_it="true" assign_to="h1"/>'
    '<ereg regexp="alice" search_in="msg" check_it_inverse="true" assign_to="h1"/>'
    '<log message="hold [$h1]"/></action></recv>'
    + resp(200, "OK", sdp=True, tag=None, direction="recvonly") + '<recv request="ACK"/>'
    + '<recv request="INVITE"><action><ereg regexp="a=sendrecv" search_in="body" check_it="true" assign_to="h2"/>'
    '<log message="resume [$h2]"/></action></recv>'
    + resp(200, "OK", sdp=True, tag=None, direction="sendrecv") + '<recv request="ACK"/>'
    + '<recv request="BYE"/>' + plain_ok() + '<timewait milliseconds="500"/>',
    "busy": resp(486, "Busy Here", contact=False) + '<recv request="ACK"/><timewait milliseconds="500"/>',
    "ring_cancel": resp(180, "Ringing") + '<recv request="CANCEL"/>' + plain_ok()
    + resp(487, "Request Terminated", contact=False, cseq="CSeq: 1 INVITE") + '<recv request="ACK"/><timewait milliseconds="500"/>',
    "ring_forever": resp(180, "Ringing") + '<recv request="CANCEL"/>' + plain_ok()
    + resp(487, "Request Terminated", contact=False, cseq="CSeq: 1 INVITE")
    + '<recv request="ACK"/><timewait milliseconds="500"/>',
    "early_media": resp(183, "Session Progress", sdp=True) + '<pause milliseconds="300"/>'
    + resp(200, "OK", sdp=True) + '<recv request="ACK" crlf="true"/>' + PLAY
    + '<recv request="BYE"/>' + plain_ok() + '<timewait milliseconds="1000"/>',
    # The callee answers 200 right after our CANCEL (the race of RFC 3261
    # §9.2): we must ACK that 200 and BYE the callee; the caller already has 487.
    "cancel_crosses_200": resp(180, "Ringing") + '<recv request="CANCEL"/>' + plain_ok()
    + resp(200, "OK", sdp=True, cseq="CSeq: 1 INVITE")
    + '<recv request="ACK"/><recv request="BYE"/>' + plain_ok() + '<timewait milliseconds="500"/>',
    # A forking proxy behind the trunk: two forks answer (To tags 01, then
    # 02 just after our ACK of the first). Both 2xx are ACKed; the second
    # fork gets a BYE at once (RFC 3261 §13.2.2.4), the first stays up until
    # the caller hangs up.
    "forked_answer": resp(180, "Ringing") + resp(200, "OK", sdp=True, rr=True)
    + '<recv request="ACK"/>' + resp(200, "OK", sdp=True, rr=True, tag="02", to="To: [$bto]", cseq="CSeq: 1 INVITE",
           via="Via: [$bvia]")
    + '<recv request="ACK"><action><ereg regexp="SIPpTag02" search_in="hdr" header="To:" check_it="true" assign_to="ack2"/>'
    '<log message="ACK for fork [$ack2]"/></action></recv>'
    + '<recv request="BYE"><action><ereg regexp="SIPpTag02" search_in="hdr" header="To:" check_it="true" assign_to="fork"/>'
    '<log message="BYE for fork [$fork]"/></action></recv>' + plain_ok()
    + '<recv request="BYE"><action><ereg regexp="SIPpTag01" search_in="hdr" header="To:" check_it="true" assign_to="first"/>'
    '<log message="BYE for fork [$first]"/></action></recv>' + plain_ok() + '<timewait milliseconds="500"/>',
    # Glare (RFC 3261 §14.1): while Mediator's relayed re-INVITE (the
    # caller's hold) waits at the callee, the callee sends its own
    # re-INVITE; Mediator answers it 491. The callee then answers the
    # relayed one, and retries its own after a pause (it does not own the
    # Call-ID: 0 to 2 s), which Mediator relays to the caller.
    "answer_glare": resp(180, "Ringing") + resp(200, "OK", sdp=True, rr=True)
    + '<recv request="ACK" crlf="true"/>'
    + '<recv request="INVITE"><action><ereg regexp="a=sendonly" search_in="body" check_it="true" assign_to="g1"/>'
    '<ereg regexp="SIP/2\\.0/.*" search_in="hdr" header="Via:" assign_to="rvia"/>'
    '<ereg regexp="[0-9]+ INVITE" search_in="hdr" header="CSeq:" assign_to="rcseq"/>'
    '<log message="relayed hold [$g1]"/></action></recv>'
    + reinvite_from_uas(1, "sendrecv")
    + '<recv response="491" response_txn="b1"/>' + ack_from_uas(1, "[branch-3]")
    + OK_TO_CAPTURED + '<recv request="ACK"/>'
    + '<pause milliseconds="1500"/>'
    + reinvite_from_uas(2, "sendrecv")
    + '<recv response="200" response_txn="b2"><action><ereg regexp="c=IN IP4 127\\.0\\.0\\.1" search_in="body" check_it="true" assign_to="g2"/>'
    '<log message="own re-INVITE answered [$g2]"/></action></recv>' + ack_from_uas(2)
    + '<recv request="BYE"/>' + plain_ok() + '<timewait milliseconds="500"/>',
    # Mediator refreshes the B leg (its 200 said refresher=uac) with an
    # unchanged re-INVITE at half the interval (RFC 4028 §10).
    "answer_refreshed": resp(180, "Ringing") + with_headers(resp(200, "OK", sdp=True, rr=True), SE_90_UAC)
    + '<recv request="ACK" crlf="true"/>' + PLAY
    + '<recv request="INVITE" timeout="50000"><action>'
    '<ereg regexp="^ *90;refresher=uac" search_in="hdr" header="Session-Expires:" check_it="true" assign_to="r1"/>'
    '<ereg regexp="c=IN IP4 127\\.0\\.0\\.1" search_in="body" check_it="true" assign_to="r1"/>'
    '<log message="refresh [$r1]"/></action></recv>'
    + with_headers(resp(200, "OK", sdp=True, tag=None), SE_90_UAC) + '<recv request="ACK"/>'
    + '<recv request="BYE" timeout="20000"/>' + plain_ok() + '<timewait milliseconds="500"/>',
    # The callee's dialog is gone when Mediator refreshes it: 481 to the
    # refresh, and Mediator must end the call on both legs (RFC 4028 §10).
    "answer_refresh_481": resp(180, "Ringing") + with_headers(resp(200, "OK", sdp=True, rr=True), SE_90_UAC)
    + '<recv request="ACK" crlf="true"/>'
    + '<recv request="INVITE" timeout="50000"/>'
    + resp(481, "Call/Transaction Does Not Exist", tag=None, contact=False)
    + '<recv request="ACK"/>'
    + '<recv request="BYE" timeout="5000"/>' + plain_ok() + '<timewait milliseconds="500"/>',
    # The caller's UPDATE (RFC 3311) with a hold offer is relayed as an
    # UPDATE; its later OPTIONS and offerless re-INVITE are answered by
    # Mediator and never reach the callee.
    "answer_update": resp(180, "Ringing") + resp(200, "OK", sdp=True, rr=True)
    + '<recv request="ACK" crlf="true"/>'
    + '<recv request="UPDATE"><action><ereg regexp="a=sendonly" search_in="body" check_it="true" assign_to="u1"/>'
    '<ereg regexp="c=IN IP4 127\\.0\\.0\\.1" search_in="body" check_it="true" assign_to="u1"/>'
    '<log message="UPDATE relayed [$u1]"/></action></recv>'
    + resp(200, "OK", sdp=True, tag=None, direction="recvonly")
    + '<recv request="BYE"/>' + plain_ok() + '<timewait milliseconds="500"/>',
    # The trunk's 180 is reliable (Require: 100rel, RSeq 1, its own Contact
    # and Record-Route): PRACKed once. Then the same 180 again (a
    # retransmission) and a 183 with RSeq 3 (out of order, RSeq 2 missing):
    # neither is PRACKed nor reaches the caller. The BYE continues B's CSeq.
    "prack_trunk": with_headers(resp(180, "Ringing", rr=True), RELIABLE_1) + expect_prack(1)
    + with_headers(inv_resp(180, "Ringing", rr=True), RELIABLE_1)
    + with_headers(inv_resp(183, "Session Progress", rr=True), "Require: 100rel\nRSeq: 3")
    + '<pause milliseconds="500"/>' + inv_resp(200, "OK", sdp=True, rr=True)
    + '<recv request="ACK" crlf="true"/>' + PLAY + BYE_CSEQ_3 + plain_ok() + '<timewait milliseconds="1000"/>',
    # BC-10 as written: a reliable 183 with SDP (early media) from the trunk.
    "prack_trunk_183": with_headers(resp(183, "Session Progress", sdp=True, rr=True), RELIABLE_1) + expect_prack(1)
    + '<pause milliseconds="300"/>' + inv_resp(200, "OK", sdp=True, rr=True)
    + '<recv request="ACK" crlf="true"/>' + PLAY + BYE_CSEQ_3 + plain_ok() + '<timewait milliseconds="1000"/>',
    "late_cancel": '<pause milliseconds="1500"/>' + resp(180, "Ringing") + '<recv request="CANCEL"/>' + plain_ok()
    + resp(487, "Request Terminated", contact=False, cseq="CSeq: 1 INVITE") + '<recv request="ACK"/><timewait milliseconds="500"/>',
}

TAILS = {
    # The old hold of RFC 2543 (c=0.0.0.0, sendrecv; field case BC-07) is
    # relayed as sendonly with our address, then resumed.
    "caller_hold_0000": '<pause milliseconds="300"/>'
    + reinvite_from_uac(2, 2353687638, "sendrecv", conn="IN IP4 0.0.0.0") + expect_200(2, "recvonly") + ack_from_uac(2)
    + '<pause milliseconds="300"/>'
    + reinvite_from_uac(3, 2353687639, "sendrecv") + expect_200(3, "sendrecv") + ack_from_uac(3)
    + '<pause milliseconds="300"/>'
    + reinvite_from_uac(4, 2353687639, "sendrecv") + expect_200(4, "sendrecv") + ack_from_uac(4)
    + bye_from_uac().replace("CSeq: 2 BYE", "CSeq: 5 BYE") + '<recv response="200" crlf="true"/>',
    "caller_hold_resume": '<pause milliseconds="300"/>'
    + reinvite_from_uac(2, 2353687638, "sendonly") + expect_200(2, "recvonly") + ack_from_uac(2)
    + '<pause milliseconds="300"/>'
    + reinvite_from_uac(3, 2353687639, "sendrecv") + expect_200(3, "sendrecv") + ack_from_uac(3)
    + '<pause milliseconds="300"/>'
    + reinvite_from_uac(4, 2353687639, "sendrecv") + expect_200(4, "sendrecv") + ack_from_uac(4)
    + bye_from_uac().replace("CSeq: 2 BYE", "CSeq: 5 BYE") + '<recv response="200" crlf="true"/>',
    # The caller holds; its re-INVITE meets the callee's (glare, handled at
    # the callee). Then the callee's retried re-INVITE reaches the caller
    # through Mediator and is answered here.
    "caller_glare": '<pause milliseconds="300"/>'
    + reinvite_from_uac(2, 2353687638, "sendonly") + expect_200(2, "recvonly") + ack_from_uac(2)
    + '<recv request="INVITE" timeout="10000"><action><ereg regexp="c=IN IP4 127\\.0\\.0\\.1" search_in="body" check_it="true" assign_to="g3"/>'
    '<log message="callee re-INVITE relayed [$g3]"/></action></recv>'
    + """<send><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:alice@[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=alice 53655765 2353687639 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=sendrecv

]]></send><recv request="ACK"/>"""
    + '<pause milliseconds="500"/>'
    + bye_from_uac().replace("CSeq: 2 BYE", "CSeq: 3 BYE") + '<recv response="200" crlf="true"/>',
    # Session timers: the caller asked for 120 s and to refresh itself
    # (the 200 must say so, with Require: timer); its refresh (an
    # unchanged re-INVITE with Session-Expires) is answered by Mediator
    # with the timer, and does not reach the callee.
    "caller_timer_refresh": '<pause milliseconds="500"/>'
    + reinvite_from_uac(2, 2353687637, "sendrecv").replace("Max-Forwards: 70", "Max-Forwards: 70\nSupported: timer\nSession-Expires: 120;refresher=uac")
    + '<recv response="200" response_txn="re2"><action>'
    '<ereg regexp="^ *120;refresher=uac" search_in="hdr" header="Session-Expires:" check_it="true" assign_to="t2"/>'
    '<ereg regexp="timer" search_in="hdr" header="Require:" check_it="true" assign_to="t2"/>'
    '<log message="refresh answered [$t2]"/></action></recv>' + ack_from_uac(2)
    + bye_from_uac().replace("CSeq: 2 BYE", "CSeq: 3 BYE") + '<recv response="200" crlf="true"/>',
    # The caller refreshes after 40 s (interval 90, refresher=uac), stays
    # past Mediator's refresh of the callee at 45 s, then hangs up.
    "caller_timer_long": '<pause milliseconds="40000"/>'
    + reinvite_from_uac(2, 2353687637, "sendrecv").replace("Max-Forwards: 70", "Max-Forwards: 70\nSupported: timer\nSession-Expires: 90;refresher=uac")
    + '<recv response="200" response_txn="re2"><action>'
    '<ereg regexp="^ *90;refresher=uac" search_in="hdr" header="Session-Expires:" check_it="true" assign_to="t3"/>'
    '<log message="refresh answered [$t3]"/></action></recv>' + ack_from_uac(2)
    + '<pause milliseconds="8000"/>'
    + bye_from_uac().replace("CSeq: 2 BYE", "CSeq: 3 BYE") + '<recv response="200" crlf="true"/>',
    # Mediator ends the call (the callee's refresh failed): BYE to the caller.
    "callee_ends_late": '<recv request="BYE" timeout="55000"/>' + plain_ok() + '<timewait milliseconds="500"/>',
    # UPDATE with a hold offer (relayed), OPTIONS in the dialog (200), and a
    # re-INVITE without an offer: Mediator's 200 carries its offer (our
    # address), the ACK our answer.
    "caller_update_options_offerless": '<pause milliseconds="300"/>'
    + reinvite_from_uac(2, 2353687638, "sendonly").replace("INVITE [next_url]", "UPDATE [next_url]")
    .replace("CSeq: 2 INVITE", "CSeq: 2 UPDATE").replace('<recv response="100" optional="true" response_txn="re2"/>', "")
    + expect_200(2, "recvonly")
    + info_from_uac().replace("INFO [next_url]", "OPTIONS [next_url]").replace("CSeq: 2 INFO", "CSeq: 3 OPTIONS")
    .replace("Content-Type: application/dtmf-relay\nContent-Length: [len]\n\nSignal=5\nDuration=160", "Content-Length: 0")
    + '<recv response="200"/>'
    + """<send retrans="500" start_txn="re4"><![CDATA[

INVITE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: @FROM@;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 4 INVITE
Contact: <sip:alice@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Length: 0

]]></send>
<recv response="100" optional="true" response_txn="re4"/>
<recv response="200" response_txn="re4"><action>
<ereg regexp="c=IN IP4 127\\.0\\.0\\.1" search_in="body" check_it="true" assign_to="o4"/>
<ereg regexp="m=audio @RTP_RE@ RTP/AVP" search_in="body" check_it="true" assign_to="o4"/>
<log message="offerless re-INVITE answered with an offer [$o4]"/></action></recv>
<send ack_txn="re4"><![CDATA[

ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: @FROM@;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 4 ACK
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=alice 53655765 2353687640 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000

]]></send>"""
    + bye_from_uac().replace("CSeq: 2 BYE", "CSeq: 5 BYE") + '<recv response="200" crlf="true"/>',
    # An extension method (FOO) inside the call: Mediator answers 501 with
    # Allow (RFC 3261 8.2.1) itself, relays nothing to the callee (whose
    # flow would fail on it), and the call goes on: RTP still flows both
    # ways (checked on the wire) and BYE ends it.
    "caller_foo_501_bye": '<pause milliseconds="500"/>'
    + info_from_uac().replace("INFO [next_url]", "FOO [next_url]").replace("CSeq: 2 INFO", "CSeq: 2 FOO")
    .replace("application/dtmf-relay", "application/x-foo").replace("Signal=5\nDuration=160", "bar")
    + '<recv response="501"><action>'
    '<ereg regexp="INVITE.*BYE" search_in="hdr" header="Allow:" check_it="true" assign_to="f501"/>'
    '<ereg regexp="2 FOO" search_in="hdr" header="CSeq:" check_it="true" assign_to="f501"/>'
    '<log message="FOO answered 501 with Allow [$f501]"/></action></recv>'
    + '<pause milliseconds="3000"/>'
    + bye_from_uac().replace("CSeq: 2 BYE", "CSeq: 3 BYE") + '<recv response="200" crlf="true"/>',
    "caller_info_bye": '<pause milliseconds="500"/>' + info_from_uac() + '<recv response="200" crlf="true"/>'
    + bye_from_uac().replace("CSeq: 2 BYE", "CSeq: 3 BYE") + '<recv response="200" crlf="true"/>',
    # After a PRACK (CSeq 2), the caller's BYE is CSeq 3.
    "caller_bye_after_prack": '<pause milliseconds="@HOLD_MS@"/>' + bye_from_uac().replace("CSeq: 2 BYE", "CSeq: 3 BYE")
    + '<recv response="200" crlf="true"/>',
    "caller_bye": '<pause milliseconds="@HOLD_MS@"/>' + bye_from_uac() + '<recv response="200" crlf="true"/>',
    "callee_bye": '<recv request="BYE"/>' + plain_ok() + '<timewait milliseconds="500"/>',
}

def caller_prack(code, sdp=False):
    """The caller (Require: 100rel) gets our `code` reliably (Require: 100rel,
    an RSeq; with `sdp`, our SDP), PRACKs it after 300 ms (the callee has
    answered by then: our 200 must wait) and gets 200 for the PRACK before
    the INVITE's 200."""
    checks = ""
    if sdp:
        checks = ('<ereg regexp="c=IN IP4 127\\.0\\.0\\.1" search_in="body" check_it="true" assign_to="rel"/>'
                  '<ereg regexp="m=audio @RTP_RE@ RTP/AVP" search_in="body" check_it="true" assign_to="rel"/>')
    return (f'<recv response="100" optional="true" response_txn="invite"/>'
            f'<recv response="{code}" response_txn="invite" rrs="true"><action>'
            '<ereg regexp="100rel" search_in="hdr" header="Require:" check_it="true" assign_to="rel"/>'
            '<ereg regexp="[0-9]+" search_in="hdr" header="RSeq:" check_it="true" assign_to="rseq"/>'
            f'{checks}<log message="reliable {code} RSeq [$rseq] [$rel]"/></action></recv>'
            '<pause milliseconds="300"/>'
            """<send retrans="500" start_txn="prack"><![CDATA[

PRACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: @FROM@;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 PRACK
RAck: [$rseq] 1 INVITE
Max-Forwards: 70
Content-Length: 0

]]></send>"""
            '<recv response="200" response_txn="prack"/>')

PROVISIONALS = {
    "any": '<recv response="100" optional="true" response_txn="invite"/>'
    '<recv response="180" optional="true" response_txn="invite"/>'
    '<recv response="183" optional="true" response_txn="invite"/>',
    # 183 must come, carrying our SDP (our address, a relay port), not B's.
    # A caller without 100rel gets the trunk's reliable 180 as an ordinary
    # 180 (RSeq and Require are per hop), and nothing of the stale ones.
    "unreliable180": '<recv response="100" optional="true" response_txn="invite"/>'
    '<recv response="180" response_txn="invite"><action>'
    '<ereg regexp="RSeq|Require" search_in="msg" check_it_inverse="true" assign_to="u180"/>'
    '<log message="plain 180 [$u180]"/></action></recv>',
    "prack180": caller_prack(180),
    "prack183": caller_prack(183, sdp=True),
    # The caller never PRACKs: our 180 comes again and again (SIPp takes
    # the repeats as retransmissions), then the final response.
    "noprack180": '<recv response="100" optional="true" response_txn="invite"/>'
    '<recv response="180" response_txn="invite"><action>'
    '<ereg regexp="100rel" search_in="hdr" header="Require:" check_it="true" assign_to="rel"/>'
    '<log message="reliable 180 [$rel]"/></action></recv>',
    "sdp183": '<recv response="100" optional="true" response_txn="invite"/>'
    '<recv response="183" response_txn="invite"><action>'
    '<ereg regexp="c=IN IP4 127\\.0\\.0\\.1" search_in="body" check_it="true" assign_to="p183"/>'
    '<ereg regexp="m=audio @RTP_RE@ RTP/AVP 8 101" search_in="body" check_it="true" assign_to="p183"/>'
    '<ereg regexp="o=bob|:@B_MP@|SIPpTag01" search_in="msg" check_it_inverse="true" assign_to="p183"/>'
    '<log message="[$p183]"/></action></recv>',
}
