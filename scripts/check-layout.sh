#!/usr/bin/env bash
# Check the crate graph against the layout (from `cargo metadata`, so it is
# what cargo builds, not what a comment says):
#   - imports point one way: host/cli -> host/lab -> host/vmm ->
#     host/analysis -> shared/*; guest/* -> shared/*; shared/* -> shared/*
#     only; nothing outside host/ depends on host/, and host/ never on
#     guest/ crates; host/fuzz sits beside host/cli, over the libraries it
#     fuzzes (never the binary), and nothing depends on it;
#   - ARCHITECTURE.md's map names every workspace crate's folder, and every
#     crate folder it names exists.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --no-deps --offline 2>/dev/null >/tmp/schedlab-metadata.$$ \
    || cargo metadata --format-version 1 --no-deps >/tmp/schedlab-metadata.$$
trap 'rm -f /tmp/schedlab-metadata.$$' EXIT
python3 - /tmp/schedlab-metadata.$$ ARCHITECTURE.md <<'PY'
import json, os, re, sys
meta = json.load(open(sys.argv[1]))
root = meta["workspace_root"]
arch = open(sys.argv[2]).read()
pkgs = {p["name"]: p for p in meta["packages"]}
def folder(p):
    return os.path.relpath(os.path.dirname(p["manifest_path"]), root)
# Host crates in import order: each may use only those after it.
HOST = ["host/cli", "host/lab", "host/perfetto", "host/bpf", "host/vmm", "host/analysis"]
# Top-level host crates beside host/cli: they may use every library in
# HOST but the binary, and nothing may use them.
BESIDE_CLI = ["host/fuzz"]
def allowed(src, dst):
    if dst in BESIDE_CLI:
        return False
    if src in BESIDE_CLI:
        return dst.startswith("shared/") or dst in HOST[1:]
    if dst.startswith("shared/"):
        return True
    if src.startswith("shared/"):
        return False
    if src.startswith("guest/"):
        return dst.startswith("guest/")
    if src in HOST and dst in HOST:
        return HOST.index(dst) > HOST.index(src)
    return False
bad = []
for p in pkgs.values():
    src = folder(p)
    for d in p["dependencies"]:
        if d.get("path") is None:
            continue
        dst = os.path.relpath(d["path"], root)
        kind = d.get("kind") or "normal"
        # Tests of the binary may reach below the lab (they check images
        # and build hostile ones), never above.
        if kind == "dev" and src == "host/cli" and dst in HOST:
            continue
        if not allowed(src, dst):
            bad.append(f"{src} ({p['name']}) depends on {dst} [{kind}]")
# The map: the first code block under "## The pieces", a tree of folders
# ("host/" at the margin, "  cli/" under it).
pieces = arch.split("## The pieces", 1)[-1].split("```")[1]
named, top = set(), ""
for line in pieces.splitlines():
    m = re.match(r"^(\s*)(\S+)/(\s|$)", line)
    if not m:
        continue
    if m.group(1) == "":
        top = m.group(2)
        named.add(top)
    elif top:
        named.add(f"{top}/{m.group(2)}")
def mapped(f):
    for kind in ("operations", "policies"):
        if f.startswith(f"guest/{kind}/"):
            f = f"guest/{kind}/NAME"
    return f in named
missing = [folder(p) for p in pkgs.values() if not mapped(folder(p))]
stale = [n for n in sorted(named) if "NAME" not in n and not os.path.isdir(os.path.join(root, n))]
for b in bad:
    print(f"layout: import against the direction: {b}")
for m in missing:
    print(f"layout: ARCHITECTURE.md's map does not name the crate folder {m}/")
for s in stale:
    print(f"layout: ARCHITECTURE.md's map names {s}/, which does not exist")
if bad or missing or stale:
    sys.exit(1)
print(f"layout: ok ({len(pkgs)} crates, imports one way, ARCHITECTURE.md's map matches)")
PY
