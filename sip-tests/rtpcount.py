"""Counts RTP packets in a loopback capture.

usage: rtpcount.py PCAP DST_PORT|DST_LOW-DST_HIGH SRC_LOW SRC_HIGH [PT]
Prints the number of UDP packets to DST_PORT (or a port in the DST range)
whose source port is in
[SRC_LOW, SRC_HIGH] (our relay) and, when PT is given, whose RTP payload type
is PT. Handles Linux cooked (SLL), Ethernet and raw/loopback link types."""
import struct
import sys


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8:off + 12])[0]
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if linktype == 1:  # Ethernet
            ip = frame[14:]
        elif linktype == 113:  # Linux cooked
            ip = frame[16:]
        elif linktype == 276:  # Linux cooked v2
            ip = frame[20:]
        elif linktype == 0:  # BSD loopback
            ip = frame[4:]
        else:  # raw IP
            ip = frame
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        sport, dport = struct.unpack(">HH", ip[ihl:ihl + 4])
        yield sport, dport, ip[ihl + 8:]


def main():
    path, low, high = sys.argv[1], int(sys.argv[3]), int(sys.argv[4])
    dst = sys.argv[2].split("-", 1)
    dlow, dhigh = int(dst[0]), int(dst[-1])
    pt = int(sys.argv[5]) if len(sys.argv) > 5 else None
    n = 0
    for sp, dp, payload in packets(path):
        if not dlow <= dp <= dhigh or not low <= sp <= high or len(payload) < 12:
            continue
        if pt is not None and payload[1] & 0x7F != pt:
            continue
        n += 1
    print(n)


if __name__ == "__main__":
    main()
