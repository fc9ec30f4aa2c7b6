//! CO-RE: `.BTF.ext` field, type and enum relocations resolved against
//! the target BTF built from `abi::bpf::TARGET_TYPES`, as libbpf's
//! `relo_core.c` resolves them against a kernel's BTF (names matched
//! after stripping `___flavour` suffixes, anonymous members searched
//! through).

use crate::btf::{Btf, CoreRelo, Kind};
use crate::error::{Res, bail};

pub const FIELD_BYTE_OFFSET: u32 = 0;
pub const FIELD_BYTE_SIZE: u32 = 1;
pub const FIELD_EXISTS: u32 = 2;
pub const FIELD_SIGNED: u32 = 3;
pub const TYPE_ID_LOCAL: u32 = 6;
pub const TYPE_EXISTS: u32 = 8;
pub const TYPE_SIZE: u32 = 9;
pub const ENUMVAL_EXISTS: u32 = 10;
pub const ENUMVAL_VALUE: u32 = 11;

pub fn kind_name(kind: u32) -> &'static str {
    match kind {
        0 => "byte_off",
        1 => "byte_sz",
        2 => "field_exists",
        3 => "signed",
        4 => "lshift_u64",
        5 => "rshift_u64",
        6 => "local_type_id",
        7 => "target_type_id",
        8 => "type_exists",
        9 => "type_size",
        10 => "enumval_exists",
        11 => "enumval_value",
        12 => "type_matches",
        _ => "unknown kind",
    }
}

/// `name___flavour` -> `name`.
fn essential(name: &str) -> &str {
    name.find("___").map_or(name, |i| &name[..i])
}

/// One step of an access string after the root.
enum Step {
    Member(String),
    Index(u64),
}

/// What a resolved relocation patches in.
pub struct Resolved {
    pub value: u64,
    /// For a field offset: the local and target sizes of the field (the
    /// load or store size is adjusted when they differ).
    pub sizes: Option<(u64, u64)>,
    /// What schedlab's target lacks for this relocation: the instruction
    /// is poisoned (it faults when reached), as libbpf does, so code that
    /// tests `bpf_core_field_exists` first still loads.
    pub missing: Option<String>,
}

impl Resolved {
    fn missing(why: String) -> Resolved {
        Resolved {
            value: 0,
            sizes: None,
            missing: Some(why),
        }
    }
}

/// "task_struct::scx.slice" for messages.
pub fn describe(local: &Btf, r: &CoreRelo) -> String {
    let root = local.skip_mods(r.type_id).unwrap_or(0);
    let root_name = local.get(root).map(|t| t.name.clone()).unwrap_or_default();
    match walk_local(local, r) {
        Ok((_, steps, _)) => {
            let mut s = format!("{root_name}::");
            for (i, st) in steps.iter().enumerate() {
                match st {
                    Step::Member(m) => {
                        if i > 0 {
                            s.push('.');
                        }
                        s.push_str(m);
                    }
                    Step::Index(n) => s.push_str(&format!("[{n}]")),
                }
            }
            s
        }
        Err(_) => format!("{root_name} ({})", r.access),
    }
}

fn parse_access(access: &str) -> Res<Vec<u64>> {
    let mut out = Vec::new();
    for part in access.split(':') {
        match part.parse::<u64>() {
            Ok(n) if out.len() < 64 => out.push(n),
            _ => bail!("bad CO-RE access string {access:?}"),
        }
    }
    Ok(out)
}

/// The local side: root index, named steps, and the local field's size.
fn walk_local(local: &Btf, r: &CoreRelo) -> Res<(u64, Vec<Step>, u32)> {
    let spec = parse_access(&r.access)?;
    let mut cur = local.skip_mods(r.type_id)?;
    let mut steps = Vec::new();
    let mut last_ty = cur;
    for &idx in &spec[1..] {
        let t = local.get(cur)?;
        match &t.kind {
            Kind::Struct { members, .. } | Kind::Union { members, .. } => {
                let Some(m) = members.get(idx as usize) else {
                    bail!("CO-RE access {} past the members of {}", r.access, t.name);
                };
                if m.bitfield_size != 0 {
                    bail!("CO-RE access to bitfield {}", m.name);
                }
                if !m.name.is_empty() {
                    steps.push(Step::Member(m.name.clone()));
                }
                last_ty = m.ty;
                cur = local.skip_mods(m.ty)?;
            }
            Kind::Array { elem, .. } => {
                steps.push(Step::Index(idx));
                last_ty = *elem;
                cur = local.skip_mods(*elem)?;
            }
            _ => bail!("CO-RE access {} into a non-aggregate", r.access),
        }
    }
    Ok((spec[0], steps, last_ty))
}

/// Finds member `name` in `id` or, recursively, in its anonymous
/// members: (bit offset, member type).
fn find_member(target: &Btf, id: u32, name: &str, depth: u32) -> Res<Option<(u64, u32)>> {
    if depth > 16 {
        return Ok(None);
    }
    for m in target.members(id)? {
        if m.name == name {
            return Ok(Some((m.bit_offset as u64, m.ty)));
        }
        if m.name.is_empty()
            && let Some((o, t)) = find_member(target, m.ty, name, depth + 1)?
        {
            return Ok(Some((o + m.bit_offset as u64, t)));
        }
    }
    Ok(None)
}

fn is_signed(btf: &Btf, id: u32) -> Res<bool> {
    let id = btf.skip_mods(id)?;
    Ok(match &btf.get(id)?.kind {
        Kind::Int { signed, .. } => *signed,
        Kind::Enum { values, .. } => values.iter().any(|v| v.1 < 0),
        _ => false,
    })
}

/// Resolves one relocation. Errors name the field and say why.
pub fn resolve(local: &Btf, target: &Btf, r: &CoreRelo) -> Res<Resolved> {
    let root = local.skip_mods(r.type_id)?;
    let root_t = local.get(root)?;
    let what = describe(local, r);
    let target_root = target.find_struct(essential(&root_t.name));
    match r.kind {
        FIELD_BYTE_OFFSET | FIELD_BYTE_SIZE | FIELD_EXISTS | FIELD_SIGNED => {
            let (root_idx, steps, local_last) = walk_local(local, r)?;
            let Some(mut cur) = target_root else {
                if r.kind == FIELD_EXISTS {
                    return Ok(Resolved {
                        value: 0,
                        sizes: None,
                        missing: None,
                    });
                }
                return Ok(Resolved::missing(format!(
                    "CO-RE relocation {what}: schedlab has no type {}",
                    root_t.name
                )));
            };
            let mut off = root_idx
                .checked_mul(target.size_of(cur)?)
                .ok_or("CO-RE offset overflow")?;
            let mut missing = None;
            for st in &steps {
                let t = target.get(target.skip_mods(cur)?)?;
                match st {
                    Step::Member(name) => match find_member(target, cur, name, 0)? {
                        Some((bits, ty)) => {
                            off += bits / 8;
                            cur = ty;
                        }
                        None => {
                            missing = Some(format!("{} has no field {name}", t.name));
                            break;
                        }
                    },
                    Step::Index(i) => match t.kind {
                        Kind::Array { elem, nelems } if *i < nelems as u64 || nelems == 0 => {
                            off = i
                                .checked_mul(target.size_of(elem)?)
                                .and_then(|d| off.checked_add(d))
                                .ok_or("CO-RE offset overflow")?;
                            cur = elem;
                        }
                        _ => {
                            missing = Some(format!("index [{i}] is out of range"));
                            break;
                        }
                    },
                }
            }
            if r.kind == FIELD_EXISTS {
                return Ok(Resolved {
                    value: missing.is_none() as u64,
                    sizes: None,
                    missing: None,
                });
            }
            if let Some(why) = missing {
                return Ok(Resolved::missing(format!(
                    "CO-RE relocation {what} ({}): schedlab's {why}",
                    kind_name(r.kind)
                )));
            }
            let tsize = target.size_of(cur)?;
            Ok(match r.kind {
                FIELD_BYTE_OFFSET => Resolved {
                    value: off,
                    sizes: Some((local.size_of(local_last)?, tsize)),
                    missing: None,
                },
                FIELD_BYTE_SIZE => Resolved {
                    value: tsize,
                    sizes: None,
                    missing: None,
                },
                _ => Resolved {
                    value: is_signed(target, cur)? as u64,
                    sizes: None,
                    missing: None,
                },
            })
        }
        TYPE_ID_LOCAL => Ok(Resolved {
            value: r.type_id as u64,
            sizes: None,
            missing: None,
        }),
        TYPE_EXISTS | TYPE_SIZE => {
            let found = match root_t.kind {
                Kind::Struct { .. } | Kind::Union { .. } => target_root,
                _ => None,
            };
            Ok(Resolved {
                value: match (r.kind, found) {
                    (TYPE_EXISTS, f) => f.is_some() as u64,
                    (_, Some(id)) => target.size_of(id)?,
                    (_, None) => {
                        return Ok(Resolved::missing(format!(
                            "CO-RE relocation {what} (type_size): schedlab has no type {}",
                            root_t.name
                        )));
                    }
                },
                sizes: None,
                missing: None,
            })
        }
        // The target has no enums: every value is missing. Programs test
        // existence first (`bpf_core_enum_value_exists`); reading one's
        // value poisons the instruction.
        ENUMVAL_EXISTS => Ok(Resolved {
            value: 0,
            sizes: None,
            missing: None,
        }),
        ENUMVAL_VALUE => {
            let idx = parse_access(&r.access)?[0] as usize;
            let name = match &root_t.kind {
                Kind::Enum { values, .. } => values.get(idx).map(|v| v.0.clone()),
                _ => None,
            };
            Ok(Resolved::missing(format!(
                "CO-RE relocation enum {}::{} (enumval_value): schedlab provides no kernel enums",
                root_t.name,
                name.unwrap_or_else(|| r.access.clone())
            )))
        }
        k => bail!(
            "CO-RE relocation {what}: kind {k} ({}) is not supported by schedlab",
            kind_name(k)
        ),
    }
}

/// Patches instruction `insn` (and, for `ld_imm64`, `next`) with a
/// resolved value, as libbpf's `bpf_core_patch_insn` does.
pub fn patch(insn: &mut [u8; 8], next: Option<&mut [u8; 8]>, kind: u32, res: &Resolved) -> Res<()> {
    let class = insn[0] & 7;
    match class {
        // ALU, ALU64 with an immediate operand.
        4 | 7 if insn[0] & 0x08 == 0 => {
            let v = i32::try_from(res.value as i64)
                .or_else(|_| u32::try_from(res.value).map(|v| v as i32))
                .map_err(|_| format!("CO-RE value {} does not fit an immediate", res.value))?;
            insn[4..8].copy_from_slice(&v.to_le_bytes());
        }
        // LDX, ST, STX: the offset field.
        1..=3 => {
            if kind != FIELD_BYTE_OFFSET {
                bail!("CO-RE {} relocation on a memory access", kind_name(kind));
            }
            let off = i16::try_from(res.value)
                .map_err(|_| format!("CO-RE offset {} does not fit a memory access", res.value))?;
            insn[2..4].copy_from_slice(&off.to_le_bytes());
            if let Some((local, target)) = res.sizes
                && local != target
            {
                let cur = match insn[0] & 0x18 {
                    0x00 => 4,
                    0x08 => 2,
                    0x10 => 1,
                    _ => 8,
                };
                let bits = match target {
                    4 => 0x00,
                    2 => 0x08,
                    1 => 0x10,
                    8 => 0x18,
                    _ => bail!("CO-RE field of {target} bytes cannot be accessed"),
                };
                if cur != local {
                    bail!("CO-RE access of {cur} bytes to a field of {local} bytes");
                }
                insn[0] = (insn[0] & !0x18) | bits;
            }
        }
        0 if insn[0] == 0x18 => {
            let Some(next) = next else {
                bail!("CO-RE relocation on an incomplete ld_imm64");
            };
            insn[4..8].copy_from_slice(&(res.value as u32).to_le_bytes());
            next[4..8].copy_from_slice(&((res.value >> 32) as u32).to_le_bytes());
        }
        _ => bail!(
            "CO-RE relocation on an instruction it cannot patch (opcode {:#x})",
            insn[0]
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::{Member, Type, target_btf};
    use abi::bpf::{ScxEntity, ScxTask};
    use core::mem::offset_of;

    fn t(name: &str, kind: Kind) -> Type {
        Type {
            name: name.into(),
            kind,
        }
    }

    fn m(name: &str, ty: u32, byte: u32) -> Member {
        Member {
            name: name.into(),
            ty,
            bit_offset: byte * 8,
            bitfield_size: 0,
        }
    }

    /// A local BTF shaped like vmlinux.h's (other offsets, an extra
    /// field, a flavoured name, an enum).
    fn local() -> Btf {
        let types = vec![
            t("", Kind::Void),
            // 1: u64, 2: u32
            t(
                "u64",
                Kind::Int {
                    size: 8,
                    signed: false,
                    bool_: false,
                },
            ),
            t(
                "u32",
                Kind::Int {
                    size: 4,
                    signed: false,
                    bool_: false,
                },
            ),
            // 3: sched_ext_entity { u32 weight @0; u64 slice @64; u64 gone @200 }
            t(
                "sched_ext_entity",
                Kind::Struct {
                    size: 208,
                    members: vec![m("weight", 2, 0), m("slice", 1, 64), m("gone", 1, 200)],
                },
            ),
            // 4: task_struct___v2 { int pad; sched_ext_entity scx @800 }
            t(
                "task_struct___v2",
                Kind::Struct {
                    size: 1200,
                    members: vec![m("pad", 2, 0), m("scx", 3, 800)],
                },
            ),
            // 5: enum scx_frob { A = 7 }, 6: struct nothing_here
            t(
                "scx_frob",
                Kind::Enum {
                    size: 4,
                    values: vec![("A".into(), 7)],
                },
            ),
            t(
                "nothing_here",
                Kind::Struct {
                    size: 4,
                    members: vec![],
                },
            ),
        ];
        Btf {
            types,
            strings: Vec::new(),
        }
    }

    fn relo(type_id: u32, access: &str, kind: u32) -> CoreRelo {
        CoreRelo {
            insn_off: 0,
            type_id,
            access: access.into(),
            kind,
        }
    }

    #[test]
    fn field_kinds_resolve_against_the_rust_layout() {
        let (l, tg) = (local(), target_btf());
        let off = resolve(&l, &tg, &relo(4, "0:1:1", FIELD_BYTE_OFFSET)).unwrap();
        assert_eq!(
            off.value as usize,
            offset_of!(ScxTask, scx) + offset_of!(ScxEntity, slice)
        );
        let sz = resolve(&l, &tg, &relo(4, "0:1:0", FIELD_BYTE_SIZE)).unwrap();
        assert_eq!(sz.value, 4);
        assert_eq!(
            resolve(&l, &tg, &relo(4, "0:1:1", FIELD_EXISTS))
                .unwrap()
                .value,
            1
        );
        assert_eq!(
            resolve(&l, &tg, &relo(4, "0:1:2", FIELD_EXISTS))
                .unwrap()
                .value,
            0
        );
        // Not refused: the instruction is poisoned (it faults if reached).
        let e = resolve(&l, &tg, &relo(4, "0:1:2", FIELD_BYTE_OFFSET))
            .unwrap()
            .missing
            .unwrap();
        assert!(e.contains("gone"), "{e}");
    }

    #[test]
    fn type_and_enum_kinds() {
        let (l, tg) = (local(), target_btf());
        assert_eq!(
            resolve(&l, &tg, &relo(4, "0", TYPE_EXISTS)).unwrap().value,
            1
        );
        assert_eq!(
            resolve(&l, &tg, &relo(6, "0", TYPE_EXISTS)).unwrap().value,
            0
        );
        assert_eq!(
            resolve(&l, &tg, &relo(3, "0", TYPE_SIZE)).unwrap().value as usize,
            core::mem::size_of::<ScxEntity>()
        );
        assert_eq!(
            resolve(&l, &tg, &relo(5, "0", ENUMVAL_EXISTS))
                .unwrap()
                .value,
            0
        );
        let e = resolve(&l, &tg, &relo(5, "0", ENUMVAL_VALUE))
            .unwrap()
            .missing
            .unwrap();
        assert!(e.contains("scx_frob::A"), "{e}");
        let e = resolve(&l, &tg, &relo(4, "0:1", 4)).err().unwrap();
        assert!(e.contains("lshift_u64"), "{e}");
    }

    #[test]
    fn patching_adjusts_offsets_and_sizes() {
        // r1 = *(u64 *)(r2 + 0), local field 8 bytes, target 4.
        let mut ldx = [0x79, 0x21, 0, 0, 0, 0, 0, 0];
        let r = Resolved {
            value: 24,
            sizes: Some((8, 4)),
            missing: None,
        };
        patch(&mut ldx, None, FIELD_BYTE_OFFSET, &r).unwrap();
        assert_eq!(ldx, [0x61, 0x21, 24, 0, 0, 0, 0, 0]);
        let mut alu = [0x07, 0x01, 0, 0, 0, 0, 0, 0];
        patch(
            &mut alu,
            None,
            FIELD_BYTE_OFFSET,
            &Resolved {
                value: 40,
                sizes: None,
                missing: None,
            },
        )
        .unwrap();
        assert_eq!(alu[4], 40);
        let mut call = [0x85, 0, 0, 0, 1, 0, 0, 0];
        assert!(patch(&mut call, None, FIELD_EXISTS, &r).is_err());
    }
}
