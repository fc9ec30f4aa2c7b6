//! BTF and `.BTF.ext`, parsed by hand (see the crate docs for why), and
//! the CO-RE target BTF generated from `abi::bpf::TARGET_TYPES`.
//!
//! Every read goes through [`Reader`], which bounds it: a garbled section
//! gives an error, never a panic.

use crate::error::{Res, bail};

pub const BTF_MAGIC: u16 = 0xeb9f;

/// A type, with its kind-specific data already decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Void,
    Int {
        size: u32,
        signed: bool,
        bool_: bool,
    },
    Ptr(u32),
    Array {
        elem: u32,
        nelems: u32,
    },
    Struct {
        size: u32,
        members: Vec<Member>,
    },
    Union {
        size: u32,
        members: Vec<Member>,
    },
    Enum {
        size: u32,
        values: Vec<(String, i64)>,
    },
    Fwd,
    Typedef(u32),
    /// volatile, const, restrict, type_tag: transparent for layout.
    Modifier(u32),
    Func(u32),
    FuncProto,
    Var(u32),
    Datasec {
        vars: Vec<(u32, u32, u32)>,
    },
    Float(u32),
    DeclTag,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub name: String,
    pub ty: u32,
    pub bit_offset: u32,
    pub bitfield_size: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Type {
    pub name: String,
    pub kind: Kind,
}

/// A parsed BTF: types by id (0 is void), and the string table (line
/// info's file names and source lines point into it).
#[derive(Clone, Debug, Default)]
pub struct Btf {
    pub types: Vec<Type>,
    pub strings: Vec<u8>,
}

/// Bounds-checked little-endian reads.
pub struct Reader<'a> {
    pub data: &'a [u8],
}

impl Reader<'_> {
    pub fn u32(&self, off: usize) -> Res<u32> {
        match off.checked_add(4).and_then(|e| self.data.get(off..e)) {
            Some(b) => Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            None => bail!(
                "truncated BTF: read at {off} past {} bytes",
                self.data.len()
            ),
        }
    }
}

pub fn string_at(strings: &[u8], off: u32) -> Res<String> {
    let off = off as usize;
    let Some(rest) = strings.get(off..) else {
        bail!("BTF string offset {off} past the string table");
    };
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// Most types one object may have (vmlinux-sized objects have ~100k).
const MAX_TYPES: usize = 1 << 20;

impl Btf {
    pub fn parse(data: &[u8]) -> Res<Btf> {
        let r = Reader { data };
        let magic = r.u32(0)? & 0xffff;
        if magic != BTF_MAGIC as u32 {
            bail!("bad .BTF magic {magic:#x}");
        }
        let hdr_len = r.u32(4)? as usize;
        let type_off = r.u32(8)? as usize;
        let type_len = r.u32(12)? as usize;
        let str_off = r.u32(16)? as usize;
        let str_len = r.u32(20)? as usize;
        let slice = |off: usize, len: usize| {
            hdr_len
                .checked_add(off)
                .and_then(|s| Some((s, s.checked_add(len)?)))
                .and_then(|(s, e)| data.get(s..e))
                .ok_or_else(|| ".BTF section bounds out of range".to_string())
        };
        let types_raw = slice(type_off, type_len)?;
        let strings = slice(str_off, str_len)?.to_vec();
        let t = Reader { data: types_raw };
        let mut types = vec![Type {
            name: String::new(),
            kind: Kind::Void,
        }];
        let mut off = 0usize;
        while off < types_raw.len() {
            if types.len() >= MAX_TYPES {
                bail!("too many BTF types");
            }
            let name = string_at(&strings, t.u32(off)?)?;
            let info = t.u32(off + 4)?;
            let st = t.u32(off + 8)?;
            off += 12;
            let vlen = (info & 0xffff) as usize;
            let kflag = info >> 31 != 0;
            let kind_no = (info >> 24) & 0x1f;
            let kind = match kind_no {
                1 => {
                    let enc = t.u32(off)?;
                    off += 4;
                    Kind::Int {
                        size: st,
                        signed: (enc >> 24) & 1 != 0,
                        bool_: (enc >> 24) & 4 != 0,
                    }
                }
                2 => Kind::Ptr(st),
                3 => {
                    let elem = t.u32(off)?;
                    let nelems = t.u32(off + 8)?;
                    off += 12;
                    Kind::Array { elem, nelems }
                }
                4 | 5 => {
                    let mut members = Vec::with_capacity(vlen.min(1024));
                    for _ in 0..vlen {
                        let mname = string_at(&strings, t.u32(off)?)?;
                        let ty = t.u32(off + 4)?;
                        let o = t.u32(off + 8)?;
                        off += 12;
                        let (bit_offset, bitfield_size) = if kflag {
                            (o & 0xff_ffff, o >> 24)
                        } else {
                            (o, 0)
                        };
                        members.push(Member {
                            name: mname,
                            ty,
                            bit_offset,
                            bitfield_size,
                        });
                    }
                    if kind_no == 4 {
                        Kind::Struct { size: st, members }
                    } else {
                        Kind::Union { size: st, members }
                    }
                }
                6 | 19 => {
                    let mut values = Vec::with_capacity(vlen.min(1024));
                    for _ in 0..vlen {
                        let vname = string_at(&strings, t.u32(off)?)?;
                        let lo = t.u32(off + 4)?;
                        let v = if kind_no == 6 {
                            off += 8;
                            if kflag { lo as i32 as i64 } else { lo as i64 }
                        } else {
                            let hi = t.u32(off + 8)?;
                            off += 12;
                            ((hi as u64) << 32 | lo as u64) as i64
                        };
                        values.push((vname, v));
                    }
                    Kind::Enum { size: st, values }
                }
                7 => Kind::Fwd,
                8 => Kind::Typedef(st),
                9..=11 | 18 => Kind::Modifier(st),
                12 => Kind::Func(st),
                13 => {
                    off = vlen
                        .checked_mul(8)
                        .and_then(|n| off.checked_add(n))
                        .ok_or("BTF overflow")?;
                    Kind::FuncProto
                }
                14 => {
                    off += 4;
                    Kind::Var(st)
                }
                15 => {
                    let mut vars = Vec::with_capacity(vlen.min(1024));
                    for _ in 0..vlen {
                        vars.push((t.u32(off)?, t.u32(off + 4)?, t.u32(off + 8)?));
                        off += 12;
                    }
                    Kind::Datasec { vars }
                }
                16 => Kind::Float(st),
                17 => {
                    off += 4;
                    Kind::DeclTag
                }
                k => bail!("unknown BTF kind {k} (type {})", types.len()),
            };
            types.push(Type { name, kind });
        }
        if off != types_raw.len() {
            bail!("truncated BTF type section");
        }
        Ok(Btf { types, strings })
    }

    pub fn get(&self, id: u32) -> Res<&Type> {
        match self.types.get(id as usize) {
            Some(t) => Ok(t),
            None => bail!("BTF type id {id} does not exist"),
        }
    }

    /// Follows typedefs and modifiers (bounded: a cycle is an error).
    pub fn skip_mods(&self, mut id: u32) -> Res<u32> {
        for _ in 0..64 {
            match self.get(id)?.kind {
                Kind::Typedef(t) | Kind::Modifier(t) | Kind::Var(t) => id = t,
                _ => return Ok(id),
            }
        }
        bail!("BTF type {id}: typedef chain too long")
    }

    /// Bytes of type `id`.
    pub fn size_of(&self, id: u32) -> Res<u64> {
        self.size_depth(id, 0)
    }

    fn size_depth(&self, id: u32, depth: u32) -> Res<u64> {
        if depth > 32 {
            bail!("BTF type {id} nests too deeply");
        }
        let id = self.skip_mods(id)?;
        Ok(match &self.get(id)?.kind {
            Kind::Int { size, .. } | Kind::Float(size) => *size as u64,
            Kind::Enum { size, .. } | Kind::Struct { size, .. } | Kind::Union { size, .. } => {
                *size as u64
            }
            Kind::Ptr(_) => 8,
            Kind::Array { elem, nelems } => self
                .size_depth(*elem, depth + 1)?
                .checked_mul(*nelems as u64)
                .ok_or("BTF array size overflows")?,
            _ => 0,
        })
    }

    /// Id of the first struct or union named `name`.
    pub fn find_struct(&self, name: &str) -> Option<u32> {
        self.types
            .iter()
            .position(|t| {
                t.name == name && matches!(t.kind, Kind::Struct { .. } | Kind::Union { .. })
            })
            .map(|i| i as u32)
    }

    /// Members of a struct/union (after modifiers), empty otherwise.
    pub fn members(&self, id: u32) -> Res<&[Member]> {
        let id = self.skip_mods(id)?;
        Ok(match &self.get(id)?.kind {
            Kind::Struct { members, .. } | Kind::Union { members, .. } => members,
            _ => &[],
        })
    }

    /// The DATASEC named `name` (`.maps`, `.rodata`, ...): (var name,
    /// var's type id) per entry.
    pub fn datasec_vars(&self, name: &str) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        for t in &self.types {
            if let (true, Kind::Datasec { vars }) = (t.name == name, &t.kind) {
                for &(var, _, _) in vars {
                    if let Ok(Type {
                        name,
                        kind: Kind::Var(ty),
                    }) = self.get(var)
                    {
                        out.push((name.clone(), *ty));
                    }
                }
            }
        }
        out
    }
}

/// The CO-RE target: a BTF generated from `abi::bpf::TARGET_TYPES` (the
/// real Rust layouts), so a relocated `p->scx.slice` lands where the
/// runtime keeps it. Nothing here is a copied offset.
pub fn target_btf() -> Btf {
    use abi::bpf::{TARGET_TYPES, TargetKind};
    let mut types = vec![Type {
        name: String::new(),
        kind: Kind::Void,
    }];
    // Struct ids first, so fields can point at any struct.
    let first = types.len() as u32;
    for t in TARGET_TYPES.iter() {
        types.push(Type {
            name: t.name.to_string(),
            kind: Kind::Struct {
                size: t.size as u32,
                members: Vec::new(),
            },
        });
    }
    let struct_id = |name: &str| {
        TARGET_TYPES
            .iter()
            .position(|t| t.name == name)
            .map_or(0, |i| first + i as u32)
    };
    let add = |types: &mut Vec<Type>, kind: Kind| {
        if let Some(i) = types
            .iter()
            .position(|t| t.kind == kind && t.name.is_empty())
        {
            return i as u32;
        }
        types.push(Type {
            name: String::new(),
            kind,
        });
        (types.len() - 1) as u32
    };
    for (i, t) in TARGET_TYPES.iter().enumerate() {
        let mut members = Vec::new();
        for f in t.fields {
            let ty = match f.kind {
                TargetKind::Int { signed } => add(
                    &mut types,
                    Kind::Int {
                        size: f.size as u32,
                        signed,
                        bool_: false,
                    },
                ),
                TargetKind::Ptr(to) => {
                    let to = if to.is_empty() { 0 } else { struct_id(to) };
                    add(&mut types, Kind::Ptr(to))
                }
                TargetKind::Struct(s) => struct_id(s),
                TargetKind::IntArray { elem, signed } => {
                    let e = add(
                        &mut types,
                        Kind::Int {
                            size: elem as u32,
                            signed,
                            bool_: false,
                        },
                    );
                    let n = f.size.checked_div(elem).unwrap_or(0) as u32;
                    add(&mut types, Kind::Array { elem: e, nelems: n })
                }
            };
            members.push(Member {
                name: f.name.to_string(),
                ty,
                bit_offset: f.offset as u32 * 8,
                bitfield_size: 0,
            });
        }
        if let Kind::Struct { members: m, .. } = &mut types[first as usize + i].kind {
            *m = members;
        }
    }
    Btf {
        types,
        strings: Vec::new(),
    }
}

/// One CO-RE relocation record of `.BTF.ext`.
#[derive(Clone, Debug)]
pub struct CoreRelo {
    /// Byte offset in its section.
    pub insn_off: u32,
    pub type_id: u32,
    pub access: String,
    pub kind: u32,
}

/// One line-info record.
#[derive(Clone, Debug)]
pub struct LineInfo {
    pub insn_off: u32,
    pub file: String,
    pub line: u32,
    pub text: String,
}

/// `.BTF.ext`, per section name.
#[derive(Clone, Debug, Default)]
pub struct BtfExt {
    pub lines: Vec<(String, Vec<LineInfo>)>,
    pub core: Vec<(String, Vec<CoreRelo>)>,
}

/// Most records one block may hold.
const MAX_RECORDS: usize = 1 << 22;

impl BtfExt {
    pub fn parse(data: &[u8], btf: &Btf) -> Res<BtfExt> {
        let r = Reader { data };
        if r.u32(0)? & 0xffff != BTF_MAGIC as u32 {
            bail!("bad .BTF.ext magic");
        }
        let hdr_len = r.u32(4)? as usize;
        let mut ext = BtfExt::default();
        // Each block: record size, then (section name, count, records).
        let block = |off: u32, len: u32, min_rec: usize| -> Res<Vec<(String, usize, Vec<usize>)>> {
            let start = hdr_len.checked_add(off as usize).ok_or("overflow")?;
            let end = start.checked_add(len as usize).ok_or("overflow")?;
            if len == 0 {
                return Ok(Vec::new());
            }
            if end > data.len() {
                bail!(".BTF.ext block past the section");
            }
            let rec = r.u32(start)? as usize;
            if rec < min_rec || rec > 256 {
                bail!(".BTF.ext record size {rec} is invalid");
            }
            let mut p = start + 4;
            let mut out = Vec::new();
            let mut total = 0usize;
            while p < end {
                let sec = string_at(&btf.strings, r.u32(p)?)?;
                let n = r.u32(p + 4)? as usize;
                p += 8;
                total += n;
                if total > MAX_RECORDS {
                    bail!(".BTF.ext has too many records");
                }
                let mut recs = Vec::new();
                for _ in 0..n {
                    if p.checked_add(rec).is_none_or(|e| e > end) {
                        bail!(".BTF.ext records past their block");
                    }
                    recs.push(p);
                    p += rec;
                }
                out.push((sec, n, recs));
            }
            Ok(out)
        };
        if hdr_len >= 24 {
            for (sec, _, recs) in block(r.u32(16)?, r.u32(20)?, 16)? {
                let mut lines = Vec::new();
                for p in recs {
                    let lc = r.u32(p + 12)?;
                    lines.push(LineInfo {
                        insn_off: r.u32(p)?,
                        file: string_at(&btf.strings, r.u32(p + 4)?)?,
                        text: string_at(&btf.strings, r.u32(p + 8)?)?,
                        line: lc >> 10,
                    });
                }
                ext.lines.push((sec, lines));
            }
        }
        if hdr_len >= 32 {
            for (sec, _, recs) in block(r.u32(24)?, r.u32(28)?, 16)? {
                let mut relos = Vec::new();
                for p in recs {
                    relos.push(CoreRelo {
                        insn_off: r.u32(p)?,
                        type_id: r.u32(p + 4)?,
                        access: string_at(&btf.strings, r.u32(p + 8)?)?,
                        kind: r.u32(p + 12)?,
                    });
                }
                ext.core.push((sec, relos));
            }
        }
        Ok(ext)
    }
}
