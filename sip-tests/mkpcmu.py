"""Writes a copy of an RTP pcap with every RTP payload type set to PT.

usage: mkpcmu.py IN OUT PT"""
import struct
import sys

src, dst, pt = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = bytearray(open(src, "rb").read())
endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
link = struct.unpack(endian + "I", data[20:24])[0]
l2 = {1: 14, 113: 16, 276: 20, 0: 4}.get(link, 0)
off = 24
while off + 16 <= len(data):
    incl = struct.unpack(endian + "I", data[off + 8:off + 12])[0]
    ip = off + 16 + l2
    if data[ip] >> 4 == 4 and data[ip + 9] == 17:
        ihl = (data[ip] & 0x0F) * 4
        rtp = ip + ihl + 8
        data[rtp + 1] = (data[rtp + 1] & 0x80) | pt
        data[ip + ihl + 6:ip + ihl + 8] = b"\x00\x00"  # no UDP checksum
    off += 16 + incl
open(dst, "wb").write(bytes(data))
