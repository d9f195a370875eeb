#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make prepare: build/src = pristine Linux 7.3 + the series.

build/src is unpacked once (Debian's linux-source-7.3 tarball, or a copy of
$KERNEL_SRC).  On every run each patch of series/ is applied in a scratch
stage to pristine copies of the upstream files its diff touches, its Adds:
files are copied from linux/, and only the files whose content changed are
written into build/src: the others keep their mtime, so that the out-of-tree
build (build/obj) recompiles only what changed.  Files the series no longer
touches get their pristine content back; files it no longer adds are
deleted.

build/src is generated: a file there edited by hand since it was last
installed is never overwritten (prepare stops and names it).  Edit linux/
or series/ instead (README, "How to change the series").

SERIES_UPTO=N applies only the first N patches (scripts/check-series, with
BUILD_DIR=build/check).
"""
import filecmp
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serieslib as sl  # noqa: E402

BUILD = sl.BUILD
SRC = os.path.join(BUILD, "src")
ORIG = os.path.join(BUILD, "orig")          # pristine copies of touched files
APPLIED = os.path.join(BUILD, "applied")    # what we last installed
STAGE = os.path.join(BUILD, "stage")
STATE = os.path.join(BUILD, "installed.list")
MARKER = os.path.join(SRC, ".prepare-unpacked")
ABSENT = ".absent"


def die(msg):
    sl.die("prepare", msg)


def source_id(base):
    """What build/src was made from: the tarball's path and size, or the
    KERNEL_SRC directory."""
    if os.path.isdir(base):
        return "dir " + base
    return "tarball %s %d" % (base, os.path.getsize(base))


def unpack(base):
    want = source_id(base)
    if os.path.exists(MARKER):
        with open(MARKER) as f:
            have = f.read().strip()
        if have != want:
            die("build/src was made from %s, not %s: run 'make distclean' "
                "(or move build/ away)" % (have, want))
        return
    for d in (SRC, ORIG, APPLIED):
        if os.path.exists(d):
            shutil.rmtree(d)
    if os.path.exists(STATE):
        os.unlink(STATE)
    os.makedirs(BUILD, exist_ok=True)
    if os.path.isdir(base):
        print("prepare: copying %s" % base)
        subprocess.check_call(["rsync", "-a", "--exclude", ".git",
                               base.rstrip("/") + "/", SRC + "/"])
    else:
        print("prepare: unpacking %s" % base)
        tmp = os.path.join(BUILD, "unpack.tmp")
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
        os.makedirs(tmp)
        subprocess.check_call(["tar", "-C", tmp, "-xf", base])
        (top,) = os.listdir(tmp)
        os.rename(os.path.join(tmp, top), SRC)
        os.rmdir(tmp)
    with open(MARKER, "w") as f:
        f.write(want + "\n")


def pristine_source(base, rels):
    """Extract pristine copies of @rels into ORIG, from the base source."""
    rels = [r for r in rels if not os.path.exists(os.path.join(ORIG, r))
            and not os.path.exists(os.path.join(ORIG, r) + ABSENT)]
    if not rels:
        return
    tmp = os.path.join(BUILD, "orig.tmp")
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    if os.path.isdir(base):
        root = base
    else:
        top = "linux-source-7.3"
        subprocess.run(["tar", "-xf", base, "-C", tmp, "--ignore-failed-read"]
                       + ["%s/%s" % (top, r) for r in rels],
                       stderr=subprocess.DEVNULL)
        root = os.path.join(tmp, top)
    for r in rels:
        o = os.path.join(ORIG, r)
        os.makedirs(os.path.dirname(o), exist_ok=True)
        if os.path.isfile(os.path.join(root, r)):
            shutil.copy2(os.path.join(root, r), o)
        else:
            open(o + ABSENT, "w").close()
    shutil.rmtree(tmp)


def orig_path(rel):
    o = os.path.join(ORIG, rel)
    return None if os.path.exists(o + ABSENT) else o


def build_stage(base, patches):
    """Apply @patches to pristine copies in STAGE; return the touched
    paths."""
    if os.path.exists(STAGE):
        shutil.rmtree(STAGE)
    os.makedirs(STAGE)
    touched = set()
    adds = set()
    for p in patches:
        touched.update(p.diff_paths())
        adds.update(p.adds)
    pristine_source(base, sorted(touched | adds))
    for a in sorted(adds):
        if orig_path(a):
            die("Adds: %s, but %s is an upstream file (change it with a "
                "diff instead)" % (a, a))
    for rel in sorted(touched):
        o = orig_path(rel)
        if o:
            dst = os.path.join(STAGE, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(o, dst)
    for p in patches:
        if p.diff:
            # Outside any git repository: inside one (build/ is in the
            # project's), git apply would skip the stage's paths.
            env = dict(os.environ, GIT_CEILING_DIRECTORIES=BUILD)
            r = subprocess.run(["git", "apply", "-p1", "--whitespace=nowarn",
                                "-"], cwd=STAGE, input=p.diff, env=env,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            if r.returncode:
                die("the diff of %s does not apply to Linux 7.3 plus the "
                    "patches before it:\n%s" % (p.name, r.stdout.rstrip()))
        for a in p.adds:
            dst = os.path.join(STAGE, a)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(os.path.join(sl.LINUX, a), dst)
    return touched | adds


def same(a, b):
    if a is None or not os.path.exists(a):
        return b is None or not os.path.exists(b)
    if b is None or not os.path.exists(b):
        return False
    return filecmp.cmp(a, b, shallow=False)


def install(touched, npatches):
    previous = set()
    if os.path.exists(STATE):
        with open(STATE) as f:
            previous = set(x.strip() for x in f if x.strip())
    # First make sure that nothing to be replaced was edited by hand.
    todo = []
    for rel in sorted(touched | previous):
        s = os.path.join(SRC, rel)
        want = os.path.join(STAGE, rel) if rel in touched else orig_path(rel)
        if want and not os.path.exists(want):
            want = None
        if same(want, s):
            continue
        a = os.path.join(APPLIED, rel)
        if rel in previous:
            last = a if os.path.exists(a) else None
        else:
            last = orig_path(rel)
        if (os.path.lexists(s) and not same(last, s) and
                not same(orig_path(rel), s)):
            where = ("linux/%s" % rel if orig_path(rel) is None else
                     "the diff of its patch (make edit, make save)")
            die("build/src/%s was edited by hand: build/src is generated "
                "from series/ and linux/.  Move the change to %s, then "
                "delete build/src/%s and run make prepare again"
                % (rel, where, rel))
        todo.append((rel, want))
    for rel, want in todo:
        s = os.path.join(SRC, rel)
        if want:
            os.makedirs(os.path.dirname(s), exist_ok=True)
            if os.path.lexists(s):
                os.unlink(s)
            shutil.copyfile(want, s)
        elif os.path.lexists(s):
            os.unlink(s)
    # Remember what is installed now.
    for rel in previous - touched:
        a = os.path.join(APPLIED, rel)
        if os.path.exists(a):
            os.unlink(a)
    for rel in touched:
        st = os.path.join(STAGE, rel)
        dst = os.path.join(APPLIED, rel)
        if os.path.exists(st):
            if not same(st, dst):
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(st, dst)
        elif os.path.exists(dst):
            os.unlink(dst)
    with open(STATE + ".tmp", "w") as f:
        f.write("".join(r + "\n" for r in sorted(touched)))
    os.rename(STATE + ".tmp", STATE)
    print("prepare: %d patches, %d files in the series, %d updated"
          % (npatches, len(touched), len(todo)))
    for rel, want in todo:
        print("prepare:   %s %s" % ("updated" if want else "removed", rel))


def main():
    try:
        patches = sl.load()
        errors = sl.check_layout(patches,
                                 complete=not os.environ.get("SERIES_UPTO"))
        if errors:
            die("the series is not consistent:\n  " + "\n  ".join(errors))
        base = sl.base_source()
    except sl.SeriesError as e:
        die(str(e))
    unpack(base)
    install(build_stage(base, patches), len(patches))


if __name__ == "__main__":
    main()
