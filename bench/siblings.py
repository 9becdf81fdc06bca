#!/usr/bin/env python3
# Measures how often a RHEL clone's erratum (OSV records of a directory) lists only some binaries
# of a source build. Usage: bench/siblings.py DIR [ID-PREFIX]  (e.g. ALSA- for security errata)
# Siblings a clone erratum leaves out. Binaries listed in one advisory with the same fixed EVR are
# one source build; binaries ever co-listed that way form a family (a source package). For each
# advisory and family it touches: the family's binaries it does not list.
import json, os, sys, collections
d = sys.argv[1]
prefix = sys.argv[2] if len(sys.argv) > 2 else ''
advs = []
for root, _, files in os.walk(d):
    for f in files:
        if f.endswith('.json'):
            a = json.load(open(os.path.join(root, f)))
            if not a['id'].startswith(prefix): continue
            by_evr = collections.defaultdict(set)
            for p in a.get('affected', []):
                fixed = [e['fixed'] for r in p.get('ranges', []) for e in r['events'] if 'fixed' in e]
                for v in fixed:
                    by_evr[v].add(p['package']['name'])
            advs.append((a['id'], by_evr))
parent = {}
def find(x):
    parent.setdefault(x, x)
    while parent[x] != x:
        parent[x] = parent[parent[x]]; x = parent[x]
    return x
def union(a, b): parent[find(a)] = find(b)
for _, by_evr in advs:
    for v, names in by_evr.items():
        if '.module' in v: continue
        names = sorted(names)
        for n in names[1:]: union(names[0], n)
family = collections.defaultdict(set)
for n in list(parent): family[find(n)].add(n)
touch = 0; partial = 0; missing_total = 0; examples = []
for aid, by_evr in advs:
    for v, names in by_evr.items():
        if '.module' in v: continue
        fam = family[find(next(iter(names)))]
        touch += 1
        miss = fam - names
        if miss:
            partial += 1; missing_total += len(miss)
            if len(examples) < 8: examples.append((aid, v, sorted(names)[:3], sorted(miss)[:4], len(miss)))
print(f"advisories {len(advs)}; (advisory, build) pairs {touch}; listing only part of their family {partial} ({100*partial/max(touch,1):.1f} %); binaries left out {missing_total}")
for e in examples: print(' ', e)

# Refined: b genuinely left out by (A, v) when an earlier and a later advisory list b together with
# one of the binaries A lists at v, each pair at one EVR (same source build), and A does not list b.
dated = []
for root, _, files in os.walk(d):
    for f in files:
        if f.endswith('.json'):
            a = json.load(open(os.path.join(root, f)))
            if not a['id'].startswith(prefix): continue
            dated.append((a.get('published', ''), a['id'], a))
dated.sort()
order = {aid: i for i, (_, aid, _) in enumerate(dated)}
co = collections.defaultdict(list)  # binary -> [(order, set of co-listed names)]
builds = []
for pub, aid, a in dated:
    by_evr = collections.defaultdict(set)
    for p in a.get('affected', []):
        for r in p.get('ranges', []):
            for e in r['events']:
                if 'fixed' in e and '.module' not in e['fixed']:
                    by_evr[e['fixed']].add(p['package']['name'])
    for v, names in by_evr.items():
        builds.append((order[aid], aid, v, names))
        for n in names: co[n].append((order[aid], names))
left = 0; pairs = 0; ex = []
for i, aid, v, names in builds:
    pairs += 1
    cands = set()
    for n in names:
        for j, other in co[n]:
            cands |= other
    cands -= names
    genuine = set()
    for b in cands:
        before = any(j < i and (names & s) for j, s in co[b])
        after = any(j > i and (names & s) for j, s in co[b])
        if before and after: genuine.add(b)
    if genuine:
        left += 1
        if len(ex) < 10: ex.append((aid, v, sorted(names)[:2], sorted(genuine)[:4], len(genuine)))
print(f"refined: (advisory, build) pairs {pairs}; leaving out a sibling listed both before and after: {left} ({100*left/pairs:.1f} %)")
for e in ex: print(' ', e)
