//! Byte offsets of kernel struct members, read from the running kernel's BTF at load time.
//!
//! aya-ebpf emits no CO-RE field relocations, so kernel programs that read `struct sk_buff` or
//! `struct nf_hook_state` with `bpf_probe_read_kernel` get each offset from userspace as a
//! global, computed here from `/sys/kernel/btf/vmlinux` (never hard-coded for one kernel).
//!
//! aya-obj 0.3 parses BTF, but its public API stops at `parse`/`parse_file`/`from_sys_fs`,
//! `id_by_type_name_kind` and `to_bytes`: looking a type up by id, its members, string reads and
//! `type_size` are all crate-private. So this module reads the BTF encoding itself
//! (`include/uapi/linux/btf.h`: a header, the type section, the string section), which is small
//! and stable. [`member`] accepts an aya [`Btf`] (through its `to_bytes`); [`KernelBtf`] reads the
//! file directly and is the cheaper choice for several lookups.
//!
//! This file is the generic reader only. Each probe asks it for the fields its programs read,
//! in an `impl KernelBtf` block of its own (`probe/drops/mod.rs` has `drop_offsets`...).
use std::{
    ops::Range,
    path::{Path, PathBuf},
};

use aya_obj::btf::Btf;
use thiserror::Error;

/// Byte offset (from the start of the outermost struct) and byte size of one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub offset: u32,
    pub size: u32,
}

#[derive(Debug, Error)]
pub enum BtfOffsetError {
    #[error("cannot read kernel BTF at {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kernel BTF is malformed: {0}")]
    Malformed(String),
    #[error("struct {struct_name} is not in the kernel BTF")]
    NoStruct { struct_name: String },
    #[error("struct {struct_name} has no member {member} in the kernel BTF")]
    NoMember { struct_name: String, member: String },
    #[error(
        "{struct_name}.{member} is a {bits}-bit bitfield in this kernel; netpost reads whole bytes and cannot read it"
    )]
    Bitfield {
        struct_name: String,
        member: String,
        bits: u32,
    },
    #[error(
        "{struct_name}.{member} starts at bit {bit_offset}, not on a byte boundary; netpost cannot read it"
    )]
    Unaligned {
        struct_name: String,
        member: String,
        bit_offset: u64,
    },
    #[error("cannot tell the size of {struct_name}.{member} from the kernel BTF: {reason}")]
    Unsized {
        struct_name: String,
        member: String,
        reason: String,
    },
    #[error(
        "{struct_name}.{member} is {found} bytes in this kernel but netpost's programs read {expected}; this kernel's layout is not supported"
    )]
    Size {
        struct_name: String,
        member: String,
        expected: u32,
        found: u32,
    },
}

/// Finds `member` of `struct_name` in an aya-parsed BTF, looking through anonymous struct/union
/// members (sk_buff nests fields in anonymous unions and struct_group()s) and summing offsets.
///
/// This re-encodes the whole BTF (`Btf::to_bytes`, a few MB for vmlinux) on every call; for
/// several lookups build one [`KernelBtf`] instead.
pub fn member(btf: &Btf, struct_name: &str, member: &str) -> Result<Member, BtfOffsetError> {
    KernelBtf::from_bytes(btf.to_bytes())?.member(struct_name, member)
}

const BTF_MAGIC: u16 = 0xeb9f;
/// `struct btf_header` up to `str_len`; later kernels may append fields (hdr_len says).
const HEADER_LEN: usize = 24;
/// `struct btf_type`: name_off, info, size/type.
const TYPE_LEN: usize = 12;
/// Bound for typedef/modifier chains and anonymous-member nesting (libbpf uses 32 too).
const MAX_DEPTH: usize = 32;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// One `struct btf_type` header.
#[derive(Debug, Clone, Copy)]
struct TypeHeader {
    name_off: u32,
    kind: u32,
    kind_flag: bool,
    vlen: usize,
    /// `size` for INT/STRUCT/UNION/ENUM/ENUM64/FLOAT/DATASEC, `type` for the rest.
    size_or_type: u32,
    /// Absolute position of the kind-specific data that follows the header.
    extra: usize,
}

/// Where a member was found: bit offset from the outermost struct and its own type.
struct Found {
    bit_offset: u64,
    bitfield_size: u32,
    type_id: u32,
}

/// A raw BTF blob with an index of where each type id starts.
pub struct KernelBtf {
    data: Vec<u8>,
    big_endian: bool,
    types: Range<usize>,
    strings: Range<usize>,
    /// `starts[id]` is the absolute position of type `id`; `starts[0]` (void) is unused.
    starts: Vec<usize>,
    /// Pointer size of the kernel the BTF describes (the size of `long`, as libbpf infers it).
    ptr_size: u32,
}

impl KernelBtf {
    /// Reads and indexes the BTF file at `path` (e.g. /sys/kernel/btf/vmlinux).
    pub fn from_file(path: &Path) -> Result<Self, BtfOffsetError> {
        let data = std::fs::read(path).map_err(|source| BtfOffsetError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(data)
    }

    /// Indexes a raw BTF blob (either byte order).
    pub fn from_bytes(data: Vec<u8>) -> Result<Self, BtfOffsetError> {
        let malformed = |what: &str| BtfOffsetError::Malformed(what.to_string());
        let magic = data
            .get(..2)
            .ok_or_else(|| malformed("shorter than its header"))?;
        let big_endian = if u16::from_le_bytes([magic[0], magic[1]]) == BTF_MAGIC {
            false
        } else if u16::from_be_bytes([magic[0], magic[1]]) == BTF_MAGIC {
            true
        } else {
            return Err(malformed("bad magic (not a BTF blob)"));
        };
        let mut btf = Self {
            data,
            big_endian,
            types: 0..0,
            strings: 0..0,
            starts: vec![0],
            ptr_size: 8,
        };
        let field = |i: usize| btf.u32_at(8 + 4 * i);
        let (Some(hdr_len), Some(type_off), Some(type_len), Some(str_off), Some(str_len)) =
            (btf.u32_at(4), field(0), field(1), field(2), field(3))
        else {
            return Err(malformed("shorter than its header"));
        };
        let section = |off: u32, len: u32| -> Option<Range<usize>> {
            let start = (hdr_len as usize).checked_add(off as usize)?;
            let end = start.checked_add(len as usize)?;
            (hdr_len as usize >= HEADER_LEN && end <= btf.data.len()).then_some(start..end)
        };
        btf.types = section(type_off, type_len)
            .ok_or_else(|| malformed("type section lies outside the blob"))?;
        btf.strings = section(str_off, str_len)
            .ok_or_else(|| malformed("string section lies outside the blob"))?;
        btf.index()?;
        Ok(btf)
    }

    /// Finds `member` of `struct_name`, looking through anonymous struct/union members and
    /// summing their offsets. Rejects bitfields and members that do not start on a byte.
    pub fn member(&self, struct_name: &str, member: &str) -> Result<Member, BtfOffsetError> {
        let struct_id = self.struct_id(struct_name)?;
        let found =
            self.find_member(struct_id, member, 0, 0)?
                .ok_or_else(|| BtfOffsetError::NoMember {
                    struct_name: struct_name.to_string(),
                    member: member.to_string(),
                })?;
        let names = || (struct_name.to_string(), member.to_string());
        if found.bitfield_size != 0 {
            let (struct_name, member) = names();
            return Err(BtfOffsetError::Bitfield {
                struct_name,
                member,
                bits: found.bitfield_size,
            });
        }
        let size = self.type_size(found.type_id).map_err(|reason| {
            let (struct_name, member) = names();
            BtfOffsetError::Unsized {
                struct_name,
                member,
                reason,
            }
        })?;
        // Without kind_flag, a bitfield shows as an INT whose bit count or bit offset (in the
        // INT's own encoding) does not fill its bytes.
        if let Some(bits) = self.int_bitfield(found.type_id, size) {
            let (struct_name, member) = names();
            return Err(BtfOffsetError::Bitfield {
                struct_name,
                member,
                bits,
            });
        }
        if found.bit_offset % 8 != 0 {
            let (struct_name, member) = names();
            return Err(BtfOffsetError::Unaligned {
                struct_name,
                member,
                bit_offset: found.bit_offset,
            });
        }
        let offset = u32::try_from(found.bit_offset / 8).map_err(|_| {
            let (struct_name, member) = names();
            BtfOffsetError::Unsized {
                struct_name,
                member,
                reason: format!("offset of {} bits does not fit", found.bit_offset),
            }
        })?;
        Ok(Member { offset, size })
    }

    /// Like [`KernelBtf::member`], and checks the member is `expected` bytes (the size the
    /// kernel program reads); returns the byte offset.
    pub fn member_sized(
        &self,
        struct_name: &str,
        member: &str,
        expected: u32,
    ) -> Result<u32, BtfOffsetError> {
        let found = self.member(struct_name, member)?;
        if found.size != expected {
            return Err(BtfOffsetError::Size {
                struct_name: struct_name.to_string(),
                member: member.to_string(),
                expected,
                found: found.size,
            });
        }
        Ok(found.offset)
    }

    /// The (name, value) pairs of `enum name` (ENUM or ENUM64).
    pub fn enum_values(&self, name: &str) -> Result<Vec<(String, u64)>, BtfOffsetError> {
        let id = (1..self.starts.len() as u32)
            .find(|&id| {
                self.ty(id).is_ok_and(|t| {
                    matches!(t.kind, KIND_ENUM | KIND_ENUM64)
                        && self.string_at(t.name_off) == Some(name)
                })
            })
            .ok_or_else(|| BtfOffsetError::NoStruct {
                struct_name: format!("enum {name}"),
            })?;
        let t = self.ty(id).map_err(BtfOffsetError::Malformed)?;
        let entry_len = if t.kind == KIND_ENUM { 8 } else { 12 };
        (0..t.vlen)
            .map(|i| {
                let pos = t.extra + i * entry_len;
                let bad = || BtfOffsetError::Malformed(format!("enum {name} entry {i}"));
                let value_name = self
                    .u32_at(pos)
                    .and_then(|off| self.string_at(off))
                    .ok_or_else(bad)?;
                let lo = self.u32_at(pos + 4).ok_or_else(bad)? as u64;
                let hi = if t.kind == KIND_ENUM64 {
                    self.u32_at(pos + 8).ok_or_else(bad)? as u64
                } else {
                    0
                };
                Ok((value_name.to_string(), hi << 32 | lo))
            })
            .collect()
    }

    fn u32_at(&self, pos: usize) -> Option<u32> {
        let bytes: [u8; 4] = self.data.get(pos..pos.checked_add(4)?)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
    }

    /// Walks the type section once, recording where each type id starts, and infers the
    /// pointer size from `long` as libbpf does.
    fn index(&mut self) -> Result<(), BtfOffsetError> {
        let mut pos = self.types.start;
        while pos < self.types.end {
            let id = self.starts.len();
            let ty = self.header_at(pos).ok_or_else(|| {
                BtfOffsetError::Malformed(format!("type id {id} runs past the type section"))
            })?;
            // Kind-specific data after the header: a fixed part plus vlen entries.
            let (fixed, per_entry) = match ty.kind {
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => (0, 0),
                KIND_INT | KIND_VAR | KIND_DECL_TAG => (4, 0),
                KIND_ARRAY => (12, 0),
                KIND_ENUM | KIND_FUNC_PROTO => (0, 8),
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => (0, 12),
                kind => {
                    return Err(BtfOffsetError::Malformed(format!(
                        "type id {id} has BTF kind {kind}, unknown to this netpost"
                    )));
                }
            };
            let next = ty.extra + fixed + per_entry * ty.vlen;
            if next > self.types.end {
                return Err(BtfOffsetError::Malformed(format!(
                    "type id {id} runs past the type section"
                )));
            }
            if ty.kind == KIND_INT
                && matches!(ty.size_or_type, 4 | 8)
                && matches!(
                    self.string_at(ty.name_off),
                    Some("long" | "long int" | "long unsigned int" | "unsigned long")
                )
            {
                self.ptr_size = ty.size_or_type;
            }
            self.starts.push(pos);
            pos = next;
        }
        Ok(())
    }

    fn header_at(&self, pos: usize) -> Option<TypeHeader> {
        let info = self.u32_at(pos + 4)?;
        Some(TypeHeader {
            name_off: self.u32_at(pos)?,
            kind: (info >> 24) & 0x1f,
            kind_flag: info >> 31 == 1,
            vlen: (info & 0xffff) as usize,
            size_or_type: self.u32_at(pos + 8)?,
            extra: pos + TYPE_LEN,
        })
    }

    fn ty(&self, id: u32) -> Result<TypeHeader, String> {
        let pos = *self
            .starts
            .get(id as usize)
            .filter(|_| id != 0)
            .ok_or_else(|| format!("type id {id} is not in the BTF"))?;
        // Indexed positions were checked by index().
        self.header_at(pos)
            .ok_or_else(|| format!("type id {id} is truncated"))
    }

    fn string_at(&self, off: u32) -> Option<&str> {
        let start = self.strings.start.checked_add(off as usize)?;
        let rest = self.data.get(start..self.strings.end)?;
        let len = rest.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&rest[..len]).ok()
    }

    fn struct_id(&self, name: &str) -> Result<u32, BtfOffsetError> {
        (1..self.starts.len() as u32)
            .find(|&id| {
                self.ty(id).is_ok_and(|t| {
                    t.kind == KIND_STRUCT && self.string_at(t.name_off) == Some(name)
                })
            })
            .ok_or_else(|| BtfOffsetError::NoStruct {
                struct_name: name.to_string(),
            })
    }

    /// Follows typedef, const, volatile, restrict and type_tag to the underlying type.
    fn skip_modifiers(&self, mut id: u32) -> Result<(u32, TypeHeader), String> {
        for _ in 0..MAX_DEPTH {
            let t = self.ty(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type;
                }
                _ => return Ok((id, t)),
            }
        }
        Err(format!(
            "type chain from id {id} is deeper than {MAX_DEPTH}"
        ))
    }

    /// Depth-first search of `composite_id`'s members, descending into anonymous
    /// struct/union members; `base` is the bit offset of `composite_id` in the outermost struct.
    fn find_member(
        &self,
        composite_id: u32,
        name: &str,
        base: u64,
        depth: usize,
    ) -> Result<Option<Found>, BtfOffsetError> {
        let malformed = BtfOffsetError::Malformed;
        if depth > MAX_DEPTH {
            return Err(malformed(format!(
                "anonymous members nest deeper than {MAX_DEPTH} looking for {name}"
            )));
        }
        let t = self.ty(composite_id).map_err(malformed)?;
        for i in 0..t.vlen {
            let at = t.extra + 12 * i;
            let (Some(name_off), Some(type_id), Some(raw_offset)) =
                (self.u32_at(at), self.u32_at(at + 4), self.u32_at(at + 8))
            else {
                return Err(malformed(format!("type id {composite_id} is truncated")));
            };
            // With kind_flag, the top 8 bits hold the bitfield size and the low 24 the offset.
            let (bit_offset, bitfield_size) = if t.kind_flag {
                (raw_offset & 0x00ff_ffff, raw_offset >> 24)
            } else {
                (raw_offset, 0)
            };
            let bit_offset = base + u64::from(bit_offset);
            let member_name = self
                .string_at(name_off)
                .ok_or_else(|| malformed(format!("bad member name in type id {composite_id}")))?;
            if member_name == name {
                return Ok(Some(Found {
                    bit_offset,
                    bitfield_size,
                    type_id,
                }));
            }
            if member_name.is_empty() {
                let (inner, inner_t) = self.skip_modifiers(type_id).map_err(malformed)?;
                if matches!(inner_t.kind, KIND_STRUCT | KIND_UNION)
                    && let Some(found) = self.find_member(inner, name, bit_offset, depth + 1)?
                {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// Size in bytes of type `id`, through modifiers, typedefs and arrays.
    fn type_size(&self, id: u32) -> Result<u32, String> {
        let mut id = id;
        let mut elems: u64 = 1;
        for _ in 0..MAX_DEPTH {
            let (resolved, t) = self.skip_modifiers(id)?;
            let size = match t.kind {
                KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT => {
                    t.size_or_type
                }
                KIND_PTR => self.ptr_size,
                KIND_ARRAY => {
                    let (Some(elem), Some(nelems)) =
                        (self.u32_at(t.extra), self.u32_at(t.extra + 8))
                    else {
                        return Err(format!("array type id {resolved} is truncated"));
                    };
                    elems = elems
                        .checked_mul(u64::from(nelems))
                        .ok_or("array size overflows")?;
                    id = elem;
                    continue;
                }
                kind => return Err(format!("type id {resolved} (BTF kind {kind}) has no size")),
            };
            let total = elems.checked_mul(u64::from(size)).ok_or("size overflows")?;
            return u32::try_from(total).map_err(|_| format!("size {total} does not fit"));
        }
        Err(format!(
            "array nesting from type id {id} is deeper than {MAX_DEPTH}"
        ))
    }

    /// For a member of INT type without kind_flag: the bit count when it is a bitfield.
    fn int_bitfield(&self, id: u32, size: u32) -> Option<u32> {
        let (_, t) = self.skip_modifiers(id).ok()?;
        if t.kind != KIND_INT {
            return None;
        }
        let encoding = self.u32_at(t.extra)?;
        let bits = encoding & 0xff;
        let bit_offset = (encoding >> 16) & 0xff;
        (bit_offset != 0 || bits != size * 8).then_some(bits)
    }
}

/// bpftool's reading of the kernel BTF: the independent oracle this reader's tests, and the
/// probes' tests of their offsets, compare with.
#[cfg(test)]
pub(crate) mod oracle {
    use std::{collections::HashMap, path::Path, process::Command};

    use super::{KernelBtf, Member};

    pub(crate) const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

    /// One type from `bpftool btf dump ... format raw`.
    #[derive(Debug, Default)]
    struct OType {
        kind: String,
        name: String,
        attrs: HashMap<String, u64>,
        /// (name, type_id, bits_offset, bitfield_size)
        members: Vec<(String, u32, u64, u64)>,
    }

    /// The independent oracle: bpftool's own reading of the kernel BTF, parsed from its text.
    pub(crate) struct Oracle {
        types: HashMap<u32, OType>,
    }

    fn quoted(line: &str) -> (String, &str) {
        let open = line.find('\'').expect("quoted name");
        let close = open + 1 + line[open + 1..].find('\'').expect("closing quote");
        (line[open + 1..close].to_string(), &line[close + 1..])
    }

    fn attrs(rest: &str) -> HashMap<String, u64> {
        rest.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect()
    }

    impl Oracle {
        /// bpftool is the oracle: its absence fails the test (`cargo xtask test` installs it).
        pub(crate) fn load() -> Self {
            let out = Command::new("bpftool")
                .args(["btf", "dump", "file", VMLINUX, "format", "raw"])
                .output()
                .unwrap_or_else(|e| panic!("bpftool (apt-get install bpftool): {e}"));
            assert!(out.status.success(), "bpftool failed: {:?}", out);
            let text = String::from_utf8(out.stdout).expect("utf-8");
            let mut types = HashMap::new();
            let mut current: Option<u32> = None;
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix('[') {
                    let (id, rest) = rest.split_once("] ").expect("type line");
                    let id: u32 = id.parse().expect("type id");
                    let (kind, rest) = rest.split_once(' ').expect("kind");
                    let (name, rest) = quoted(rest);
                    types.insert(
                        id,
                        OType {
                            kind: kind.to_string(),
                            name,
                            attrs: attrs(rest),
                            members: vec![],
                        },
                    );
                    current = Some(id);
                } else if line.starts_with('\t') {
                    let ty = types.get_mut(&current.expect("member after type")).unwrap();
                    if ty.kind == "STRUCT" || ty.kind == "UNION" {
                        let (name, rest) = quoted(line);
                        let a = attrs(rest);
                        ty.members.push((
                            name,
                            a["type_id"] as u32,
                            a["bits_offset"],
                            a.get("bitfield_size").copied().unwrap_or(0),
                        ));
                    }
                }
            }
            Self { types }
        }

        fn struct_id(&self, name: &str) -> u32 {
            let mut ids: Vec<u32> = self
                .types
                .iter()
                .filter(|(_, t)| t.kind == "STRUCT" && t.name == name)
                .map(|(id, _)| *id)
                .collect();
            ids.sort();
            ids[0]
        }

        fn skip_modifiers(&self, mut id: u32) -> &OType {
            loop {
                let t = &self.types[&id];
                match t.kind.as_str() {
                    "TYPEDEF" | "CONST" | "VOLATILE" | "RESTRICT" | "TYPE_TAG" => {
                        id = t.attrs["type_id"] as u32
                    }
                    _ => return t,
                }
            }
        }

        fn size(&self, id: u32) -> u64 {
            let t = self.skip_modifiers(id);
            match t.kind.as_str() {
                "PTR" => 8,
                "ARRAY" => t.attrs["nr_elems"] * self.size(t.attrs["type_id"] as u32),
                _ => t.attrs["size"],
            }
        }

        /// (byte offset, byte size, depth of anonymous nesting) of `member`.
        fn find(&self, id: u32, member: &str, base: u64, depth: u32) -> Option<(u64, u64, u32)> {
            let t = &self.types[&id];
            for (name, type_id, bits, bitfield) in &t.members {
                if name == member {
                    assert_eq!(*bitfield, 0, "{member} is a bitfield");
                    assert_eq!((base + bits) % 8, 0);
                    return Some(((base + bits) / 8, self.size(*type_id), depth));
                }
                if name == "(anon)" {
                    let inner = self.skip_modifiers(*type_id);
                    if inner.kind == "STRUCT" || inner.kind == "UNION" {
                        let inner_id = self.resolve_id(*type_id);
                        if let Some(found) = self.find(inner_id, member, base + bits, depth + 1) {
                            return Some(found);
                        }
                    }
                }
            }
            None
        }

        fn resolve_id(&self, mut id: u32) -> u32 {
            loop {
                let t = &self.types[&id];
                match t.kind.as_str() {
                    "TYPEDEF" | "CONST" | "VOLATILE" | "RESTRICT" | "TYPE_TAG" => {
                        id = t.attrs["type_id"] as u32
                    }
                    _ => return id,
                }
            }
        }

        pub(crate) fn member(&self, struct_name: &str, member: &str) -> (Member, u32) {
            let (offset, size, depth) = self
                .find(self.struct_id(struct_name), member, 0, 0)
                .unwrap_or_else(|| panic!("bpftool: no {struct_name}.{member}"));
            (
                Member {
                    offset: offset as u32,
                    size: size as u32,
                },
                depth,
            )
        }
    }

    pub(crate) fn kernel() -> KernelBtf {
        KernelBtf::from_file(Path::new(VMLINUX)).expect("read kernel BTF")
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::{
        oracle::{Oracle, VMLINUX, kernel},
        *,
    };

    #[test]
    fn top_level_members_match_bpftool() {
        let oracle = Oracle::load();
        let btf = kernel();
        for (s, m) in [
            ("sk_buff", "len"),
            ("sk_buff", "_nfct"),
            ("sk_buff", "head"),
            ("sk_buff", "data"),
            ("sk_buff", "cb"),
            ("sk_buff", "truesize"),
            ("nf_hook_state", "hook"),
            ("nf_hook_state", "pf"),
            ("nf_hook_state", "in"),
            ("nf_hook_state", "net"),
        ] {
            let (expected, depth) = oracle.member(s, m);
            assert_eq!(depth, 0, "{s}.{m} is expected top-level in this kernel");
            assert_eq!(btf.member(s, m).unwrap(), expected, "{s}.{m}");
        }
    }

    #[test]
    fn members_in_anonymous_unions_and_struct_groups_match_bpftool() {
        let oracle = Oracle::load();
        let btf = kernel();
        let mut nested = 0;
        for m in [
            "network_header",
            "transport_header",
            "mac_header",
            "protocol",
            "mark",
            "dev",
            "next",
            "tstamp",
            "hash",
        ] {
            let (expected, depth) = oracle.member("sk_buff", m);
            nested += usize::from(depth > 0);
            let got = btf.member("sk_buff", m).unwrap();
            println!("sk_buff.{m}: {got:?} (anonymous nesting depth {depth})");
            assert_eq!(got, expected, "sk_buff.{m}");
        }
        let (_, depth) = oracle.member("sk_buff", "network_header");
        assert!(
            depth > 0,
            "network_header is nested (struct_group) in this kernel"
        );
        assert!(nested >= 5, "the test must exercise nesting");
    }

    #[test]
    fn drop_reason_names_come_from_the_enum() {
        let reasons = kernel().enum_values("skb_drop_reason").unwrap();
        let value = |n: &str| reasons.iter().find(|(name, _)| name == n).map(|(_, v)| *v);
        // Cross-check with the tracepoint's own symbolic table in bpftool's C dump.
        let c = String::from_utf8(
            Command::new("bpftool")
                .args(["btf", "dump", "file", VMLINUX, "format", "c"])
                .output()
                .expect("bpftool")
                .stdout,
        )
        .unwrap();
        for name in [
            "SKB_DROP_REASON_NO_SOCKET",
            "SKB_DROP_REASON_NETFILTER_DROP",
        ] {
            let v = value(name).unwrap_or_else(|| panic!("{name} missing"));
            assert!(c.contains(&format!("{name} = {v},")), "{name} = {v}");
        }
        assert_eq!(value("SKB_NOT_DROPPED_YET"), Some(0));
    }

    #[test]
    fn aya_btf_gives_the_same_answers() {
        let aya_btf = Btf::parse_file(VMLINUX, aya::Endianness::default()).unwrap();
        let raw = kernel();
        for (s, m) in [
            ("sk_buff", "len"),
            ("sk_buff", "network_header"),
            ("sk_buff", "_nfct"),
            ("nf_hook_state", "pf"),
        ] {
            assert_eq!(member(&aya_btf, s, m).unwrap(), raw.member(s, m).unwrap());
        }
        let err = member(&aya_btf, "sk_buff", "no_such_member").unwrap_err();
        assert!(matches!(err, BtfOffsetError::NoMember { .. }), "{err}");
    }

    #[test]
    fn unknown_struct_and_member_are_named() {
        let btf = kernel();
        let err = btf.member("netpost_no_such_struct", "len").unwrap_err();
        assert!(matches!(err, BtfOffsetError::NoStruct { .. }));
        assert_eq!(
            err.to_string(),
            "struct netpost_no_such_struct is not in the kernel BTF"
        );
        let err = btf.member("sk_buff", "netpost_no_such_member").unwrap_err();
        assert!(matches!(err, BtfOffsetError::NoMember { .. }));
        assert_eq!(
            err.to_string(),
            "struct sk_buff has no member netpost_no_such_member in the kernel BTF"
        );
    }

    #[test]
    fn kind_flag_bitfields_are_refused() {
        let btf = kernel();
        // sk_buff.cloned is `__u8 cloned:1` (bpftool: bitfield_size=1).
        let err = btf.member("sk_buff", "cloned").unwrap_err();
        assert!(
            matches!(&err, BtfOffsetError::Bitfield { bits: 1, .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("sk_buff.cloned is a 1-bit bitfield")
        );
    }

    #[test]
    fn wrong_sizes_are_refused_naming_the_field() {
        let btf = kernel();
        assert_eq!(
            btf.member_sized("sk_buff", "len", 4).unwrap(),
            btf.member("sk_buff", "len").unwrap().offset
        );
        let err = btf.member_sized("sk_buff", "len", 8).unwrap_err();
        assert!(matches!(
            err,
            BtfOffsetError::Size {
                found: 4,
                expected: 8,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "sk_buff.len is 4 bytes in this kernel but netpost's programs read 8; this kernel's layout is not supported"
        );
    }

    /// A hand-made little BTF for what vmlinux does not show: old-style (no kind_flag) INT
    /// bitfields, a const/typedef chain, arrays, nesting two anonymous levels, big-endian.
    fn synthetic(big_endian: bool) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut name = |s: &str| {
            let off = strings.len() as u32;
            strings.extend(s.as_bytes());
            strings.push(0);
            off
        };
        let (n_int, n_u16, n_s, n_a, n_b, n_bits, n_arr, n_ptr, n_mid) = (
            name("int"),
            name("u16"),
            name("outer"),
            name("a"),
            name("b"),
            name("bits"),
            name("arr"),
            name("p"),
            name("mid"),
        );
        let info =
            |kind: u32, vlen: u32, kflag: bool| (kind << 24) | vlen | (u32::from(kflag) << 31);
        let mut words: Vec<u32> = vec![];
        // [1] INT 'int' size=4 bits=32
        words.extend([n_int, info(KIND_INT, 0, false), 4, 32]);
        // [2] INT 'int' size=4 bits=3 (old-style bitfield type)
        words.extend([n_int, info(KIND_INT, 0, false), 4, 3]);
        // [3] TYPEDEF 'u16' -> [4]; [4] CONST -> [5]; [5] INT size=2 bits=16
        words.extend([n_u16, info(KIND_TYPEDEF, 0, false), 4]);
        words.extend([0, info(KIND_CONST, 0, false), 5]);
        words.extend([0, info(KIND_INT, 0, false), 2, 16]);
        // [6] ARRAY of [3] x 5
        words.extend([0, info(KIND_ARRAY, 0, false), 0, 3, 1, 5]);
        // [7] PTR -> [1]
        words.extend([0, info(KIND_PTR, 0, false), 1]);
        // [8] anonymous STRUCT size=16 { b: u16 @ bit 0; p: ptr @ bit 64 }
        words.extend([0, info(KIND_STRUCT, 2, false), 16]);
        words.extend([n_b, 3, 0, n_ptr, 7, 64]);
        // [9] anonymous UNION size=16 { (anon) [8] @ 0; mid: int @ 0 }
        words.extend([0, info(KIND_UNION, 2, false), 16]);
        words.extend([0, 8, 0, n_mid, 1, 0]);
        // [10] STRUCT 'outer' size=40 { a: int @0; bits: [2] @32; (anon) [9] @64; arr [6] @192 }
        words.extend([n_s, info(KIND_STRUCT, 4, false), 40]);
        words.extend([n_a, 1, 0, n_bits, 2, 32, 0, 9, 64, n_arr, 6, 192]);
        let types: Vec<u8> = words
            .iter()
            .flat_map(|w| {
                if big_endian {
                    w.to_be_bytes()
                } else {
                    w.to_le_bytes()
                }
            })
            .collect();
        let u16b = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u32b = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = vec![];
        out.extend(u16b(BTF_MAGIC));
        out.extend([1, 0]);
        out.extend(u32b(24));
        out.extend(u32b(0));
        out.extend(u32b(types.len() as u32));
        out.extend(u32b(types.len() as u32));
        out.extend(u32b(strings.len() as u32));
        out.extend(types);
        out.extend(strings);
        out
    }

    #[test]
    fn synthetic_btf_nesting_typedefs_arrays_and_old_style_bitfields() {
        for big_endian in [false, true] {
            let btf = KernelBtf::from_bytes(synthetic(big_endian)).unwrap();
            let m = |name| btf.member("outer", name);
            assert_eq!(m("a").unwrap(), Member { offset: 0, size: 4 });
            // Two anonymous levels: union at byte 8, struct inside at 0, b at 0 / p at 8.
            assert_eq!(m("b").unwrap(), Member { offset: 8, size: 2 });
            assert_eq!(
                m("p").unwrap(),
                Member {
                    offset: 16,
                    size: 8
                }
            );
            assert_eq!(m("mid").unwrap(), Member { offset: 8, size: 4 });
            assert_eq!(
                m("arr").unwrap(),
                Member {
                    offset: 24,
                    size: 10
                }
            );
            let err = m("bits").unwrap_err();
            assert!(
                matches!(err, BtfOffsetError::Bitfield { bits: 3, .. }),
                "{err}"
            );
            assert!(matches!(m("zzz"), Err(BtfOffsetError::NoMember { .. })));
        }
    }
}
