#!/usr/bin/env python3
"""Writes a SYNTHETIC Debian security-tracker JSON at real-world scale for the debsecan benchmark.

Every record is marked: ids CVE-2999-NNNNNNN, descriptions start with "SYNTHETIC". Package names are
real (the root's installed source packages, then names from `apt-cache pkgnames`); versions for the
installed sources are built around the installed versions (fixed at, above, below, tilde-below; open;
not affected), the others get plausible Debian versions. Usage:

    synthetic_tracker.py ROOT OUT.json [CVES] [NAMES_OUT]   (default 45000 CVEs, about the real tracker's size)

NAMES_OUT, when given, receives the package names the records use, one per line: the names
`patchwarden-loadgen --names` pads its hosts with, so that `bench/fleet.sh` with REAL_SCALE_ROOT
gives every host the finding count a real Debian 12 host has against a real-scale tracker.
"""
import json
import random
import subprocess
import sys

root, out = sys.argv[1], sys.argv[2]
cves = int(sys.argv[3]) if len(sys.argv) > 3 else 45000
names_out = sys.argv[4] if len(sys.argv) > 4 else None
rng = random.Random(2999)

installed = {}
for para in open(root + "/var/lib/dpkg/status").read().split("\n\n"):
    f = {}
    for line in para.splitlines():
        if line[:1] not in (" ", "\t") and ":" in line:
            k, v = line.split(":", 1)
            f[k] = v.strip()
    if not f.get("Status", "").endswith(" installed"):
        continue
    src, ver = f["Package"], f["Version"]
    if "Source" in f:
        parts = f["Source"].split()
        src = parts[0]
        if len(parts) > 1:
            ver = parts[1].strip("()")
    installed[src] = ver

names = sorted(installed)
others = subprocess.run(["apt-cache", "pkgnames"], capture_output=True, text=True).stdout.split()
rng.shuffle(others)
names += [n for n in others if n not in installed][:6000]


def entry(source):
    ver = installed.get(source)
    if ver is None:
        ver = f"{rng.randint(0, 9)}.{rng.randint(0, 30)}-{rng.randint(1, 9)}"
    case = rng.randrange(8)
    if case == 0:
        return {"status": "resolved", "fixed_version": ver, "urgency": "medium"}
    if case == 1:
        return {"status": "resolved", "fixed_version": ver + "+pw1", "urgency": "high"}
    if case == 2:
        return {"status": "resolved", "fixed_version": "0.0.1-1", "urgency": "low"}
    if case == 3:
        return {"status": "open", "urgency": "low"}
    if case == 4:
        return {"status": "open", "urgency": "unimportant"}
    if case == 5:
        return {"status": "resolved", "fixed_version": "0", "urgency": "unimportant"}
    if case == 6:
        return {"status": "resolved", "fixed_version": ver + "~pw1", "urgency": "medium"}
    return {"status": "undetermined", "urgency": "not yet assigned"}


doc = {}
for n in range(cves):
    source = names[n % len(names)] if n < len(names) else rng.choice(names)
    cve = f"CVE-2999-{n:07d}"
    doc.setdefault(source, {})[cve] = {
        "description": "SYNTHETIC record for patchwarden's debsecan benchmark",
        "scope": "local",
        "releases": {"bookworm": entry(source), "bullseye": entry(source)},
    }
json.dump(doc, open(out, "w"))
if names_out:
    with open(names_out, "w") as f:
        f.write("".join(n + "\n" for n in names))
print(f"{out}: {cves} synthetic CVEs over {len(doc)} source packages ({len(installed)} installed in {root})")
