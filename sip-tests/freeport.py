"""Picks loopback ports for the SIP tests.

usage: freeport.py [--pair] [--ip IP]... PREFERRED...
For each PREFERRED port prints that port when it is free on UDP and TCP on
every --ip (default 127.0.0.1), else a free port the kernel picks. With
--pair the port and the next one must both be free (RTP and RTCP); PREFERRED
ports are then taken as even. Ports printed are distinct."""
import random
import socket
import sys


def free(port, ips):
    if not 1024 <= port <= 65535:
        return False
    socks = []
    try:
        for ip in ips:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.bind((ip, port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def main():
    args = sys.argv[1:]
    pair, ips, wanted = False, [], []
    while args:
        a = args.pop(0)
        if a == "--pair":
            pair = True
        elif a == "--ip":
            ips.append(args.pop(0))
        else:
            wanted.append(int(a))
    ips = ips or ["127.0.0.1"]
    taken = set()

    def ok(p):
        span = (p, p + 1) if pair else (p,)
        return all(q not in taken and free(q, ips) for q in span)

    out = []
    for p in wanted:
        if not ok(p):
            for _ in range(2000):
                p = random.randrange(30000, 39998, 2)
                if ok(p):
                    break
            else:
                sys.exit("no free port found")
        taken.update((p, p + 1) if pair else (p,))
        out.append(str(p))
    print(" ".join(out))


if __name__ == "__main__":
    main()
