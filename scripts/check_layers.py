#!/usr/bin/python3
"""check_layers.py - dependencies between src/ folders point one way.

Each folder of src/ is a room on one layer (LAYERS, lowest first). A file
may include headers of its own room and of rooms on lower layers; an
include of a higher layer's room (up) or of another room on the same layer
(sideways) fails the check. Rooms on one layer are independent of each
other: what they share belongs below them.

scripts/layers_known.txt lists the upward includes that are still there
("file include" a line), while the untangling goes on (docs/architecture.md,
"Layers"): the check fails on any upward or sideways include not listed,
and on a listed one that has gone, so the list only shrinks. An empty list
is the goal.

Usage: scripts/check_layers.py [--update] [SRC_DIR]
  exit 0 = clean, 1 = problems; --update rewrites the list from the tree
  (to record a removal; a review sees any addition in the diff).
"""
import os
import re
import sys

# Lowest first; one entry a layer, rooms of a layer side by side.
LAYERS = [
    ["base"],
    ["ws"],
    ["net"],
    ["auth", "pubsub"],
    ["feed", "cluster", "trade"],
    ["gateway"],
    ["app"],
]

KNOWN_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "layers_known.txt")


def load_known():
    known = {}
    if os.path.exists(KNOWN_FILE):
        with open(KNOWN_FILE, encoding="utf-8") as f:
            for line in f:
                line = line.split("#", 1)[0].split()
                if len(line) == 2:
                    known.setdefault(line[0], set()).add(line[1])
    return known

INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z0-9_]+)/([^"]+)"', re.M)


def layer_of():
    where = {}
    for i, rooms in enumerate(LAYERS):
        for r in rooms:
            where[r] = i
    return where


def main():
    args = sys.argv[1:]
    update = "--update" in args
    args = [a for a in args if a != "--update"]
    src = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    src = os.path.normpath(src)
    where = layer_of()
    KNOWN = {} if update else load_known()
    problems, seen_known, found = [], set(), []
    rooms = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)))
    for room in rooms:
        if room not in where:
            problems.append("src/%s/: a room on no layer (add it to LAYERS in %s)" % (room, __file__))
            continue
        for name in sorted(os.listdir(os.path.join(src, room))):
            if not name.endswith((".c", ".h")):
                continue
            rel = "%s/%s" % (room, name)
            with open(os.path.join(src, room, name), encoding="utf-8") as f:
                text = f.read()
            for m in INCLUDE.finditer(text):
                other, header = m.group(1), m.group(2)
                if other == room:
                    continue
                target = "%s/%s" % (other, header)
                if other not in where:
                    problems.append("src/%s includes %s: no such room" % (rel, target))
                    continue
                if where[other] < where[room]:
                    continue
                if target in KNOWN.get(rel, ()):
                    seen_known.add((rel, target))
                    continue
                found.append((rel, target))
                way = "up" if where[other] > where[room] else "sideways"
                problems.append("src/%s includes %s: %s (layer %s -> %s)"
                                % (rel, target, way, "/".join(LAYERS[where[room]]), "/".join(LAYERS[where[other]])))
    if update:
        with open(KNOWN_FILE, "w", encoding="utf-8") as f:
            f.write("# Upward and sideways includes still in src/ (scripts/check_layers.py).\n"
                    "# Each line: file include. This list only shrinks.\n")
            for rel, target in sorted(found):
                f.write("%s %s\n" % (rel, target))
        print("check-layers: %d known include(s) written to %s" % (len(found), KNOWN_FILE))
        return 0
    for rel, targets in KNOWN.items():
        for t in targets:
            if (rel, t) not in seen_known:
                problems.append("src/%s no longer includes %s: remove it from KNOWN" % (rel, t))
    for p in problems:
        print("check-layers: " + p)
    if problems:
        print("check-layers: %d problem(s); the layers, lowest first: %s"
              % (len(problems), " <- ".join("{%s}" % ",".join(r) for r in LAYERS)))
        return 1
    print("check-layers: %d rooms, dependencies point one way" % len(rooms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
