#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn the repository into a patched kernel source tree.

build/src is unpacked once (from Debian's linux-source-6.12 tarball, or
copied from $KERNEL_SRC).  On every run the series in patches/ (new files
included: the series is the source of truth) is applied to pristine copies
of the files it touches in a scratch stage, and only files whose content
changed are written into build/src, so an incremental kernel build
recompiles only what changed.

A file in build/src that was edited by hand since it was last installed is
never overwritten: edit the series instead (scripts/series edit N, then
scripts/series save).

SERIES_DIR=DIR applies the series in DIR instead of patches/ (its
0000-cover-letter.patch is skipped); SERIES_UPTO=N applies only the first N
patches (scripts/check-series).
"""
import filecmp
import os
import re
import shutil
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD_DIR", os.path.join(TOP, "build"))
SRC = os.path.join(BUILD, "src")
ORIG = os.path.join(BUILD, "orig")          # pristine copies of touched files
APPLIED = os.path.join(BUILD, "applied")    # what we last installed
STAGE = os.path.join(BUILD, "stage")
STATE = os.path.join(BUILD, "installed.list")
TARBALL = "/usr/src/linux-source-6.12.tar.xz"
ABSENT = ".absent"


def die(msg):
    sys.stderr.write("prepare-tree: error: %s\n" % msg)
    sys.exit(1)


def series():
    """The patches, in order; only the first $SERIES_UPTO if that is set."""
    pdir = os.environ.get("SERIES_DIR") or os.path.join(TOP, "patches")
    if not os.path.isdir(pdir):
        return []
    allp = sorted(os.path.join(pdir, p) for p in os.listdir(pdir)
                  if re.match(r"^[0-9]{4}-.*\.patch$", p)
                  and not p.startswith("0000-"))
    upto = os.environ.get("SERIES_UPTO")
    return allp[:int(upto)] if upto else allp


def patch_paths(patch):
    """Paths (relative to the tree) that a -p1 patch touches."""
    paths = []
    with open(patch, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"^\+\+\+ (\S+)", line)
            if m and m.group(1) != "/dev/null":
                paths.append(m.group(1).split("/", 1)[1])
            m = re.match(r"^--- (\S+)", line)
            if m and m.group(1) != "/dev/null":
                paths.append(m.group(1).split("/", 1)[1])
    return sorted(set(paths))



def unpack():
    marker = os.path.join(SRC, ".prepare-unpacked")
    want = os.environ.get("KERNEL_SRC") or TARBALL
    if os.path.exists(marker):
        with open(marker) as f:
            have = f.read().strip()
        if have != want:
            die("build/src was made from %s, not %s; run 'make distclean'"
                % (have, want))
        return
    if os.path.exists(SRC):
        shutil.rmtree(SRC)
    for d in (ORIG, APPLIED):
        if os.path.exists(d):
            shutil.rmtree(d)
    if os.path.exists(STATE):
        os.unlink(STATE)
    os.makedirs(BUILD, exist_ok=True)
    if os.environ.get("KERNEL_SRC"):
        ksrc = os.environ["KERNEL_SRC"]
        if not os.path.exists(os.path.join(ksrc, "virt/kvm/guest_memfd.c")):
            die("KERNEL_SRC=%s is not a 6.12 tree with guest_memfd" % ksrc)
        print("prepare-tree: copying %s" % ksrc)
        subprocess.check_call(["rsync", "-a", "--exclude", ".git",
                               ksrc.rstrip("/") + "/", SRC + "/"])
    else:
        if not os.path.exists(TARBALL):
            die("%s missing: install linux-source-6.12" % TARBALL)
        print("prepare-tree: unpacking %s" % TARBALL)
        tmp = os.path.join(BUILD, "unpack.tmp")
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
        os.makedirs(tmp)
        subprocess.check_call(["tar", "-C", tmp, "-xf", TARBALL])
        (top,) = os.listdir(tmp)
        os.rename(os.path.join(tmp, top), SRC)
        os.rmdir(tmp)
    with open(marker, "w") as f:
        f.write(want + "\n")


def pristine_source(rels):
    """Extract pristine copies of @rels into ORIG, from the base source."""
    rels = [r for r in rels if not os.path.exists(os.path.join(ORIG, r))
            and not os.path.exists(os.path.join(ORIG, r) + ABSENT)]
    if not rels:
        return
    ksrc = os.environ.get("KERNEL_SRC")
    tmp = os.path.join(BUILD, "orig.tmp")
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    if ksrc:
        base = ksrc
    else:
        top = subprocess.run("tar -tf %s | head -n1" % TARBALL, shell=True,
                             stdout=subprocess.PIPE,
                             text=True).stdout.split("/", 1)[0]
        subprocess.run(["tar", "-xf", TARBALL, "-C", tmp,
                        "--ignore-failed-read"] +
                       ["%s/%s" % (top, r) for r in rels],
                       stderr=subprocess.DEVNULL)
        base = os.path.join(tmp, top)
    for r in rels:
        o = os.path.join(ORIG, r)
        os.makedirs(os.path.dirname(o), exist_ok=True)
        if os.path.exists(os.path.join(base, r)):
            shutil.copy2(os.path.join(base, r), o)
        else:
            open(o + ABSENT, "w").close()
    shutil.rmtree(tmp)



def orig_path(rel):
    o = os.path.join(ORIG, rel)
    return None if os.path.exists(o + ABSENT) else o


def build_stage(patches, quiet=False):
    """Apply @patches to pristine copies in STAGE; return touched paths."""
    if os.path.exists(STAGE):
        shutil.rmtree(STAGE)
    os.makedirs(STAGE)
    touched = set()
    for p in patches:
        touched.update(patch_paths(p))
    pristine_source(sorted(touched))
    for rel in sorted(touched):
        o = orig_path(rel)
        if o:
            dst = os.path.join(STAGE, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(o, dst)
    for p in patches:
        if not patch_paths(p):
            print("prepare-tree: warning: %s changes nothing"
                  % os.path.basename(p))
            continue
        r = subprocess.run(["patch", "-p1", "-d", STAGE, "-F0", "-s",
                            "--no-backup-if-mismatch", "-i", p],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        if r.returncode:
            die("patch %s does not apply:\n%s" % (os.path.basename(p),
                                                  r.stdout))
        if not quiet:
            print("prepare-tree: applied %s" % os.path.basename(p))
    return touched


def same(a, b):
    if a is None or not os.path.exists(a):
        return b is None or not os.path.exists(b)
    if b is None or not os.path.exists(b):
        return False
    return filecmp.cmp(a, b, shallow=False)


def install(touched):
    previous = set()
    if os.path.exists(STATE):
        with open(STATE) as f:
            previous = set(x.strip() for x in f if x.strip())
    changed = 0
    for rel in sorted(touched | previous):
        s = os.path.join(SRC, rel)
        want = os.path.join(STAGE, rel) if rel in touched else orig_path(rel)
        if want and not os.path.exists(want):
            want = None
        if same(want, s):
            continue
        a = os.path.join(APPLIED, rel)
        last = a if rel in previous else orig_path(rel)
        if rel in previous and not os.path.exists(a):
            last = None
        if not same(last, s) and not same(orig_path(rel), s):
            die("%s was edited in build/src; edit the series instead "
                "(scripts/series edit N; scripts/series save), or copy "
                "build/applied/%s back" % (rel, rel))
        if want:
            os.makedirs(os.path.dirname(s), exist_ok=True)
            shutil.copyfile(want, s)
        elif os.path.exists(s):
            os.unlink(s)
        changed += 1
    if os.path.exists(APPLIED):
        shutil.rmtree(APPLIED)
    for rel in touched:
        st = os.path.join(STAGE, rel)
        if os.path.exists(st):
            dst = os.path.join(APPLIED, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(st, dst)
    with open(STATE, "w") as f:
        f.write("".join(r + "\n" for r in sorted(touched)))
    print("prepare-tree: %d patches, %d files in the series, %d updated"
          % (len(series()), len(touched), changed))


def main():
    unpack()
    install(build_stage(series()))


if __name__ == "__main__":
    main()
