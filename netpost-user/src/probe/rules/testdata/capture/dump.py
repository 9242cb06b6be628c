# Sends one netfilter netlink request and saves the raw answer:
#   dump.py OUT SUBSYS MSG FAMILY FLAGS [TYPE:s:STRING | TYPE:be32:N ...]
# e.g. `dump.py nft_rules.bin 10 7 0 769` (NFT_MSG_GETRULE dump of every family),
# `dump.py hooks.bin 12 0 2 769 1:be32:3` (NFNL_MSG_HOOK_GET, IPv4, LOCAL_OUT).
import os, sys, struct
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nl import *
name, subsys, msg, family, flags = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
attrs = b""
for a in sys.argv[6:]:
    t, kind, v = a.split(":", 2)
    if kind == "s": p = v.encode() + b"\0"
    elif kind == "be32": p = struct.pack(">I", int(v) & 0xffffffff)
    attrs += attr(int(t), p)
open(name, "wb").write(exchange(request(subsys, msg, family, attrs, flags)))
