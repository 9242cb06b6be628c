# Minimal netfilter netlink client: sends one request, returns the raw reply bytes.
import socket, struct, sys, os

NETLINK_NETFILTER = 12
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 1, 4, 0x300

def attr(t, payload):
    l = 4 + len(payload)
    return struct.pack("=HH", l, t) + payload + b"\0" * ((4 - l % 4) % 4)

def request(subsys, msg, family, attrs=b"", flags=NLM_F_REQUEST | NLM_F_DUMP, seq=1):
    body = struct.pack("=BBH", family, 0, 0) + attrs
    return struct.pack("=IHHII", 16 + len(body), (subsys << 8) | msg, flags, seq, 0) + body

def exchange(req):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.bind((0, 0))
    s.send(req)
    out = b""
    done = False
    while not done:
        data = s.recv(1 << 20)
        out += data
        off = 0
        while off < len(data):
            l, t, f = struct.unpack_from("=IHH", data, off)
            if t in (2, 3):  # error/done
                done = True
            elif not (f & 2):  # not multipart: single reply
                done = True
            off += (l + 3) & ~3
    s.close()
    return out
