#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Resolve tests/vm-tests.txt against the prepared tree and the kernel config.

    scripts/testlist.py [--obj DIR] [PATTERN]

prints one line per test of the list whose SUITE:NAME contains PATTERN:

    run  [@last] [@noskip] SUITE NAME BINARY [ARGS...]
    skip SUITE NAME # why
    fail SUITE NAME # why

A line of tests/vm-tests.txt is

    [needs:REQ]... [later:WHY] [@last] [@noskip] SUITE NAME BINARY [KEY=VALUE...] [ARGS...]

A REQ CONFIG_FOO must be =y in the kernel's .config (--obj, default
build/obj), any other REQ is a path that must exist in build/src.  A kvm or
mm test also needs its source, tools/testing/selftests/SUITE/BINARY.c, in
build/src (scripts/build.sh builds only what exists).  A test whose REQ is
missing fails ("fail"): the whole series is there, so it must be too.  It
is only skipped when the line says why it is not there yet (later:WHY, a
test of a later issue) or when SERIES_UPTO is set (a prefix of the series,
as scripts/check-series builds it).  @last: run after every test without
it (a test that loses hugepages for good).  @noskip: the test's binary must
not report a skip as a whole (a kernel without the feature would make it
skip); scripts/run-tests then counts a skip as a failure.
"""
import os
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD_DIR", os.path.join(TOP, "build"))
SRC = os.path.join(BUILD, "src")


def config_y(obj):
    ys = set()
    try:
        with open(os.path.join(obj, ".config")) as f:
            for line in f:
                if line.rstrip().endswith("=y"):
                    ys.add(line.split("=", 1)[0])
    except OSError:
        pass
    return ys


def parse(path):
    tests = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            words = line.split()
            needs, last, flags = [], False, []
            later = None
            while words and (words[0].startswith(("needs:", "later:")) or
                             words[0] in ("@last", "@noskip")):
                w = words.pop(0)
                if w == "@last":
                    last = True
                elif w == "@noskip":
                    flags.append(w)
                elif w.startswith("later:"):
                    later = w[len("later:"):]
                else:
                    needs.append(w[len("needs:"):])
            if len(words) < 3:
                sys.exit("testlist: bad line in %s: %s" % (path, line))
            tests.append((needs, last, later, flags, words))
    return tests


def main():
    args = sys.argv[1:]
    obj = os.path.join(BUILD, "obj")
    if args[:1] == ["--obj"]:
        obj = args[1]
        args = args[2:]
    only = args[0] if args else ""
    ys = config_y(obj)
    prefix = os.environ.get("SERIES_UPTO")
    for needs, last, later, flags, words in parse(os.path.join(TOP, "tests",
                                                 "vm-tests.txt")):
        suite, name, binary = words[:3]
        if only and only not in "%s:%s" % (suite, name):
            continue
        if suite in ("kvm", "mm"):
            needs = needs + ["tools/testing/selftests/%s/%s.c"
                             % (suite, binary)]
        why = None
        for r in needs:
            if r.startswith("CONFIG_"):
                if r not in ys:
                    why = "%s is not set in the test kernel" % r
            elif not os.path.exists(os.path.join(SRC, r)):
                why = "%s is not in the tree" % r
            if why:
                break
        if why and later:
            print("skip %s %s # %s: %s" % (suite, name, why, later))
        elif why and prefix:
            print("skip %s %s # %s (series up to %s)" % (suite, name, why,
                                                        prefix))
        elif why:
            print("fail %s %s # %s" % (suite, name, why))
        else:
            print("run %s%s" % ("".join(w + " " for w in
                                        (["@last"] if last else []) + flags),
                                " ".join(words)))


if __name__ == "__main__":
    main()
