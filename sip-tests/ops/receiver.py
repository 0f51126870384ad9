#!/usr/bin/env python3
"""A callback receiver for the ops tests: a real HTTP server (http.server).

usage: receiver.py PORT SECRET OUT_DIR [FAIL_FIRST]

Every POST is checked: its X-Mediator-Signature must be "sha256=" and the
hex HMAC-SHA256 of the exact body under SECRET (else 401, logged as
bad-signature). The first FAIL_FIRST (default 2) attempts for each call_sid
are answered 500, later ones 200, so the sender's retries are exercised.
While OUT_DIR/down exists every POST gets 503. Each request is logged as one
JSON line in OUT_DIR/requests.jsonl (call_sid, attempt header, status
given, signature ok); each accepted body is appended to
OUT_DIR/delivered.jsonl. Stops on SIGTERM.
"""
import hashlib
import hmac
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, SECRET, OUT = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
FAIL_FIRST = int(sys.argv[4]) if len(sys.argv) > 4 else 2
seen = {}
lock = threading.Lock()


def append(name, obj):
    with lock, open(os.path.join(OUT, name), "a") as f:
        f.write(json.dumps(obj) + "\n")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        want = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        got = self.headers.get("X-Mediator-Signature", "")
        sig_ok = hmac.compare_digest(want, got)
        try:
            record = json.loads(body)
        except ValueError:
            record = {}
        sid = record.get("call_sid")
        with lock:
            seen[sid] = seen.get(sid, 0) + 1
            n = seen[sid]
        if not sig_ok:
            status = 401
        elif os.path.exists(os.path.join(OUT, "down")):
            status = 503
        elif n <= FAIL_FIRST:
            status = 500
        else:
            status = 200
        append("requests.jsonl", {
            "call_sid": sid, "n": n, "status": status, "sig_ok": sig_ok,
            "attempt": self.headers.get("X-Mediator-Attempt"),
            "sid_header": self.headers.get("X-Mediator-Call-Sid"),
            "content_type": self.headers.get("Content-Type"),
        })
        if status == 200:
            append("delivered.jsonl", record)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
