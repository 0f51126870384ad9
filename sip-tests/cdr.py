"""Checks the call detail records Mediator wrote to the `calls` table.

usage: cdr.py mark DB
         prints the highest rowid of `calls` (0 when empty)
       cdr.py check DB MARK [--wait SECS] [--where FIELD=VALUE]... FIELD=EXPECTED...
         waits (default 5 s) for the records added after MARK that match every
         --where, requires exactly one, and checks it:
           FIELD=null   the field is NULL
           FIELD=set    the field is not NULL
           FIELD=A..B   a number in [A, B]
           FIELD=TEXT   the field's text is TEXT
         and always: type binding, direction inbound, date_start <= date_answer
         <= date_stop, duration = whole seconds from answer to stop (0 when not
         answered). Prints the record; exits 1 with the reason on a mismatch.
       cdr.py count DB MARK FIELD=VALUE...
         prints how many records after MARK match."""
import sqlite3
import sys
import time

FIELDS = ("binding_sid", "account_sid", "type", "direction", "number_src", "number_dst",
          "number_redirect", "date_start", "date_answer", "date_stop", "duration",
          "sip_status", "hangup_side")


def connect(db):
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)


def rows_after(db, mark, where):
    sql = f"SELECT rowid, {', '.join(FIELDS)} FROM calls WHERE rowid > ?"
    args = [mark]
    for k, v in where:
        if k not in FIELDS:
            sys.exit(f"unknown field {k}")
        if v == "null":
            sql += f" AND {k} IS NULL"
        else:
            sql += f" AND CAST({k} AS TEXT) = ?"
            args.append(v)
    con = connect(db)
    try:
        rows = con.execute(sql + " ORDER BY rowid", args).fetchall()
    finally:
        con.close()
    return [dict(zip(("rowid",) + FIELDS, r)) for r in rows]


def pairs(items):
    out = []
    for it in items:
        k, _, v = it.partition("=")
        out.append((k, v))
    return out


def matches(value, want):
    if want == "null":
        return value is None
    if want == "set":
        return value is not None
    if ".." in want:
        lo, hi = want.split("..", 1)
        try:
            return value is not None and float(lo) <= float(value) <= float(hi)
        except ValueError:
            pass
    return value is not None and str(value) == want


def invariants(r):
    if r["type"] != "binding" or r["direction"] != "inbound":
        return f"type/direction {r['type']}/{r['direction']}"
    start, answer, stop = r["date_start"], r["date_answer"], r["date_stop"]
    if not start <= stop:
        return "date_stop before date_start"
    if answer is None:
        if r["duration"] != 0:
            return f"duration {r['duration']} without an answer"
        return None
    if not start <= answer <= stop:
        return "date_answer outside [date_start, date_stop]"
    if abs(r["duration"] - (stop - answer) // 1000) > 1:
        return f"duration {r['duration']} but answer to stop is {(stop - answer) / 1000:.3f} s"
    return None


def check(db, mark, args):
    wait, where, want = 5.0, [], []
    while args:
        a = args.pop(0)
        if a == "--wait":
            wait = float(args.pop(0))
        elif a == "--where":
            where.append(args.pop(0))
        else:
            want.append(a)
    where, want = pairs(where), pairs(want)
    deadline = time.monotonic() + wait
    rows = rows_after(db, mark, where)
    while not rows and time.monotonic() < deadline:
        time.sleep(0.1)
        rows = rows_after(db, mark, where)
    if len(rows) != 1:
        print(f"{len(rows)} call records after #{mark} where {where}, expected 1: {rows}")
        return 1
    r = rows[0]
    bad = [f"{k}={r.get(k)!r} (want {v})" for k, v in want if not matches(r.get(k), v)]
    inv = invariants(r)
    if inv:
        bad.append(inv)
    shown = " ".join(f"{k}={r[k]}" for k in ("binding_sid", "number_src", "number_dst",
                                              "number_redirect", "sip_status", "hangup_side",
                                              "duration"))
    if bad:
        print(f"call record #{r['rowid']} wrong: {'; '.join(bad)} [{shown}]")
        return 1
    print(f"call record #{r['rowid']}: {shown}")
    return 0


def main():
    cmd, db, *rest = sys.argv[1:]
    if cmd == "mark":
        con = connect(db)
        try:
            print(con.execute("SELECT COALESCE(MAX(rowid), 0) FROM calls").fetchone()[0])
        finally:
            con.close()
        return 0
    if cmd == "check":
        return check(db, int(rest[0]), rest[1:])
    if cmd == "count":
        print(len(rows_after(db, int(rest[0]), pairs(rest[1:]))))
        return 0
    sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    sys.exit(main())
