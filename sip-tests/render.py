"""Fills @KEY@ placeholders of a SIPp scenario template.

usage: render.py TEMPLATE OUT KEY=VALUE...   (FLOW=name / TAIL=name pick
fragments from scenarios/flows.py; unset placeholders become empty)."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios"))
import flows  # noqa: E402

template, out, *pairs = sys.argv[1:]
values = dict(p.split("=", 1) for p in pairs)
if values.get("FLOW") == "answer_bye":
    values["CAPTURE"] = ('<ereg regexp="&lt;.*" search_in="hdr" header="From:" assign_to="bfrom"/>'
                         '<ereg regexp="&lt;.*" search_in="hdr" header="To:" assign_to="bto"/>')
if values.get("FLOW") in ("answer_glare",):
    # The dialog's From and To, for the callee's own re-INVITE; the relayed
    # re-INVITE's Via and CSeq are captured by the flow itself.
    values["CAPTURE"] = ('<ereg regexp="&lt;.*" search_in="hdr" header="From:" assign_to="bfrom"/>'
                         '<ereg regexp="&lt;.*" search_in="hdr" header="To:" assign_to="bto"/>')
if values.get("FLOW") in ("forked_answer", "prack_trunk", "prack_trunk_183"):
    # The INVITE's To (no tag) and Via, for the second fork's 2xx (or a
    # response to the INVITE after a PRACK).
    values["CAPTURE"] = ('<ereg regexp="&lt;.*" search_in="hdr" header="To:" assign_to="bto"/>'
                         '<ereg regexp="SIP/2\\.0/.*" search_in="hdr" header="Via:" assign_to="bvia"/>')
if "FLOW" in values:
    values["FLOW"] = flows.FLOWS[values["FLOW"]]
if values.get("PROVISIONALS") in flows.PROVISIONALS:
    values["PROVISIONALS"] = flows.PROVISIONALS[values["PROVISIONALS"]]
if "TAIL" in values:
    values["TAIL"] = flows.TAILS[values["TAIL"]]
values.setdefault("PCAP", "/usr/share/sip-tester/g711a.pcap")
values.setdefault("HOLD_MS", "4000")
values.setdefault("CONTENT_TYPE", "application/sdp")
values.setdefault("RURI", "sip:[service]@[remote_ip]:[remote_port]")
values.setdefault("PROVISIONALS", flows.PROVISIONALS["any"])
values = {k: v.replace("\\n", "\n") for k, v in values.items()}
text = open(template, encoding="latin-1").read()
# A placeholder alone on its line that renders empty removes the line (an
# empty line would end the SIP headers).
text = "\n".join(
    line for line in text.split("\n")
    if not (re.fullmatch(r"\s*@([A-Z_0-9]+)@\s*", line)
            and not values.get(line.strip().strip("@"), ""))
)
# Fragments may hold placeholders themselves: substitute twice.
for _ in range(2):
    text = re.sub(r"@([A-Z_0-9]+)@", lambda m: values.get(m.group(1), ""), text)
open(out, "w", encoding="latin-1").write(text)
