# Saves IPT_SO_GET_INFO and IPT_SO_GET_ENTRIES of a legacy table: legacy.py 4|6 TABLE OUT
import ctypes, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fam, table, out = sys.argv[1], sys.argv[2], sys.argv[3]
if fam == "4":
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW); level = 0
else:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW); level = 41
def gso(opt, buf):
    l = ctypes.c_uint32(len(buf))
    b = ctypes.create_string_buffer(bytes(buf), len(buf))
    r = libc.getsockopt(s.fileno(), level, opt, b, ctypes.byref(l))
    if r != 0: raise OSError(ctypes.get_errno(), "getsockopt")
    return b.raw[:l.value]
info = gso(64, table.encode().ljust(84, b"\0"))
valid, = struct.unpack_from("=I", info, 32)
hook_entry = struct.unpack_from("=5I", info, 36); underflow = struct.unpack_from("=5I", info, 56)
num, size = struct.unpack_from("=II", info, 76)
print("valid", hex(valid), "entries", hook_entry, "underflow", underflow, "num", num, "size", size)
ents = gso(65, table.encode().ljust(32, b"\0") + struct.pack("=I", size) + b"\0" * (4 + size))
open(out + ".info", "wb").write(info)
open(out + ".entries", "wb").write(ents)
print(len(ents))
