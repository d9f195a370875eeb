#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The series as git commits, in build/git (a git tree of pristine 7.3).

    scripts/series.py format     write build/series/: git format-patch of
                                 the series, 0000-cover-letter.patch made
                                 of series/cover-letter.txt, the shortlog
                                 and the diffstat (make series)
    scripts/series.py edit [N]   branch "series" of build/git = pristine
                                 7.3 + one commit per series/ patch, checked
                                 out; with N, a rebase stops at patch N to
                                 edit it (make edit [P=N])
    scripts/series.py save       fold fixups (and the stopped patch) in,
                                 then write the commits back: the diffs of
                                 upstream files into series/*.patch, new
                                 files into linux/ (make save)
    scripts/series.py check      the checks of make check-series that need
                                 no kernel build: mail headers, git am, no
                                 patch deletes what an earlier one added,
                                 checkpatch --strict, the size rule

build/git is made once (unpacking takes a few minutes).  Commits are made
with git plumbing on a scratch index, so "format" never touches the work
tree or branch "series", even in the middle of an edit.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serieslib as sl  # noqa: E402

TOP = sl.TOP
BUILD = sl.BUILD
GIT = os.path.join(BUILD, "git")
AM = os.path.join(BUILD, "am")
OUT = os.path.join(BUILD, "series")
COVER = os.path.join(sl.SERIES, "cover-letter.txt")
MAX_LINES = int(os.environ.get("SERIES_MAX_LINES", "800"))


def die(msg):
    sl.die("series", msg)


def say(msg):
    print("series: " + msg, flush=True)


def env():
    e = dict(os.environ)
    e.update(GIT_AUTHOR_NAME=sl.AUTHOR_NAME, GIT_AUTHOR_EMAIL=sl.AUTHOR_EMAIL,
             GIT_COMMITTER_NAME=sl.AUTHOR_NAME,
             GIT_COMMITTER_EMAIL=sl.AUTHOR_EMAIL)
    return e


def git(*args, cwd=GIT, check=True, input=None, extra_env=None, quiet=False):
    e = env()
    if extra_env:
        e.update(extra_env)
    r = subprocess.run(["git"] + list(args), cwd=cwd, input=input, env=e,
                       stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE if quiet else None, text=True)
    if check and r.returncode:
        die("git %s failed (in %s)" % (" ".join(args[:3]), cwd))
    return r.stdout if check else r


def busy():
    gd = os.path.join(GIT, ".git")
    return (os.path.isdir(os.path.join(gd, "rebase-merge")) or
            os.path.isdir(os.path.join(gd, "rebase-apply")))


def make_git():
    """build/git: the pristine tree as commit "base" (tag), made once."""
    if os.path.isdir(os.path.join(GIT, ".git")):
        if git("rev-parse", "-q", "--verify", "refs/tags/base",
               check=False).returncode:
            die("build/git has no tag 'base': not made by this script; "
                "move it away")
        return
    try:
        base = sl.base_source()
    except sl.SeriesError as e:
        die(str(e))
    tmp = GIT + ".tmp"
    for d in (GIT, tmp):
        if os.path.exists(d):
            shutil.rmtree(d)
    os.makedirs(tmp)
    if os.path.isdir(base):
        say("copying %s into build/git (once)" % base)
        subprocess.check_call(["rsync", "-a", "--exclude", ".git",
                               base.rstrip("/") + "/", GIT + "/"])
        os.rmdir(tmp)
    else:
        say("unpacking %s into build/git (once, a few minutes)" % base)
        subprocess.check_call(["tar", "-C", tmp, "-xf", base])
        (top,) = os.listdir(tmp)
        os.rename(os.path.join(tmp, top), GIT)
        os.rmdir(tmp)
    git("init", "-q", "-b", "series")
    for k, v in (("user.name", sl.AUTHOR_NAME),
                 ("user.email", sl.AUTHOR_EMAIL), ("core.abbrev", "12"),
                 ("gc.auto", "0"), ("advice.detachedHead", "false")):
        git("config", k, v)
    git("add", "-A", "-f")
    git("commit", "-q", "-m", "base: %s" % os.path.basename(base))
    git("tag", "base")
    # Debian's .gitignore ignores every top-level entry but debian/: keep
    # its committed version, but let git see new files (the kernel's own
    # patterns still keep build output and editor files out).
    gi = os.path.join(GIT, ".gitignore")
    with open(gi) as f:
        lines = [x for x in f if x.rstrip("\n") not in ("/*", "!/debian/")]
    with open(gi, "w") as f:
        f.writelines(lines)
    git("update-index", "--skip-worktree", ".gitignore")


def build_commits(ref, patches):
    """refs/heads/@ref = base + one commit per patch (scratch index)."""
    index = os.path.join(GIT, ".git", "series-index")
    e = {"GIT_INDEX_FILE": index}
    git("read-tree", "base", extra_env=e)
    parent = git("rev-parse", "base").strip()
    for p in patches:
        if p.diff:
            r = git("apply", "--cached", "-p1", "--whitespace=nowarn", "-",
                    input=p.diff, extra_env=e, check=False, quiet=True)
            if r.returncode:
                die("the diff of %s does not apply with git apply:\n%s"
                    % (p.name, r.stderr.rstrip()))
        for a in p.adds:
            src = os.path.join(sl.LINUX, a)
            sha = git("hash-object", "-w", "--", src).strip()
            mode = "100755" if os.access(src, os.X_OK) else "100644"
            git("update-index", "--add", "--cacheinfo",
                "%s,%s,%s" % (mode, sha, a), extra_env=e)
        tree = git("write-tree", extra_env=e).strip()
        parent = git("commit-tree", tree, "-p", parent, "-F", "-",
                     input=p.message()).strip()
    git("update-ref", "refs/heads/" + ref, parent)
    os.unlink(index)
    return parent


def load():
    try:
        patches = sl.load()
        errors = sl.check_layout(patches, complete=True)
    except sl.SeriesError as e:
        die(str(e))
    if errors:
        die("the series is not consistent:\n  " + "\n  ".join(errors))
    if not patches:
        die("series/ has no patch")
    return patches


def cmd_format():
    if not os.path.exists(COVER):
        die("series/cover-letter.txt missing")
    with open(COVER, encoding="utf-8") as f:
        text = f.read()
    if any(ord(c) > 126 or (ord(c) < 32 and c not in "\n\t") for c in text):
        die("series/cover-letter.txt must be plain ASCII (it is sent as is)")
    patches = load()
    make_git()
    build_commits("review", patches)
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    git("format-patch", "-q", "--zero-commit", "--no-signature",
        "--cover-letter", "--numbered", "--filename-max-length=100",
        "-o", OUT, "base..review")
    cover = os.path.join(OUT, "0000-cover-letter.patch")
    lines = text.split("\n")
    subject, body = lines[0].strip(), "\n".join(lines[1:]).strip("\n")
    with open(cover) as f:
        s = f.read()
    if "*** SUBJECT HERE ***" not in s or "*** BLURB HERE ***" not in s:
        die("unexpected cover letter template")
    s = s.replace("*** SUBJECT HERE ***", subject)
    s = s.replace("*** BLURB HERE ***", body)
    with open(cover, "w") as f:
        f.write(s)
    say("wrote %d files to %s/" % (len(os.listdir(OUT)),
                                   os.path.relpath(OUT, TOP)))


def saved_ok():
    saved = git("rev-parse", "-q", "--verify", "refs/series/saved",
                check=False).stdout.strip()
    return not saved or saved == git("rev-parse", "series").strip()


def cmd_edit(n=None):
    make_git()
    if busy():
        die("build/git: a rebase is in progress; finish it with 'make "
            "save' or drop it with 'git -C build/git rebase --abort'")
    if git("status", "--porcelain").strip():
        die("build/git has uncommitted changes: commit them (git commit "
            "--fixup=<commit>) and 'make save', or drop them with 'git -C "
            "build/git checkout -f series'")
    if not saved_ok():
        die("branch series of build/git has commits that are not saved to "
            "series/: 'make save' them, or drop them with 'git -C build/git "
            "update-ref refs/series/saved series'")
    patches = load()
    tip = build_commits("series", patches)
    git("checkout", "-q", "-f", "series")
    git("reset", "-q", "--hard", tip)
    git("update-ref", "refs/series/saved", tip)
    if n is None:
        say("build/git is pristine 7.3 + series/ on branch series:")
        print(git("log", "--oneline", "base..series"), end="")
        say("edit there, 'git -C build/git commit --fixup=<commit>' (or "
            "plain commits: new patches at the end), then 'make save'")
        return
    count = len(patches)
    if not (n.isdigit() and 1 <= int(n) <= count):
        die("P must be 1..%d" % count)
    git("rebase", "-q", "-i", "base", check=False, quiet=True,
        extra_env={"GIT_SEQUENCE_EDITOR":
                   "sed -i '%ss/^pick/edit/'" % n})
    if not busy():
        die("the rebase did not stop at patch %s" % n)
    say("build/git is at patch %s: %s" % (
        n, git("log", "-1", "--format=%s").strip()))
    say("edit its files in build/git, then 'make save'")


def slug(subject):
    # As git format-patch names files: "_" and "." are kept (guest_memfd).
    s = re.sub(r"[^A-Za-z0-9._]+", "-", subject).strip("-.")
    return s[:72].rstrip("-")


def cmd_save():
    make_git()
    if busy():
        git("add", "-A")
        gd = os.path.join(GIT, ".git")
        if (os.path.exists(os.path.join(gd, "rebase-merge", "amend")) and
                git("diff", "--cached", "--quiet", check=False).returncode):
            git("commit", "-q", "--amend", "--no-edit")
        if git("rebase", "--continue", check=False,
               extra_env={"GIT_EDITOR": "true"}).returncode:
            die("the rebase stopped on a conflict in build/git: resolve it, "
                "'git add', and 'make save' again")
    if git("status", "--porcelain").strip():
        die("build/git has uncommitted changes: commit them (--fixup) first")
    if git("rev-parse", "--abbrev-ref", "HEAD").strip() != "series":
        die("build/git is not on branch series")
    subjects = git("log", "--format=%s", "base..series")
    if re.search(r"^(fixup|squash|amend)! ", subjects, re.M):
        if git("rebase", "-q", "-i", "--autosquash", "base", check=False,
               extra_env={"GIT_SEQUENCE_EDITOR": "true"}).returncode:
            die("the autosquash stopped on a conflict in build/git")
    write_back()


def in_base(path, cache={}):
    if path not in cache:
        cache[path] = git("cat-file", "-e", "base:" + path,
                          check=False, quiet=True).returncode == 0
    return cache[path]


def write_back():
    commits = git("rev-list", "--reverse", "base..series").split()
    old = sl.patch_files()
    old_patches = [sl.Patch(p) for p in old]
    previously_added = set(a for p in old_patches for a in p.adds)
    tip = commits[-1] if commits else "base"
    adds_of = {}
    new_files = []
    for k, c in enumerate(commits):
        st = git("diff-tree", "--no-commit-id", "-r", "--no-renames",
                 "--name-status", c + "^", c)
        upstream = []
        adds = []
        for line in st.splitlines():
            status, path = line.split("\t", 1)
            if in_base(path):
                upstream.append(path)
            elif status == "A":
                adds.append(path)
            else:
                say("warning: commit %d changes %s, a new file of an earlier "
                    "commit: its final content goes to linux/%s, added by "
                    "that patch" % (k + 1, path, path))
        adds = [a for a in adds if git("cat-file", "-e", "%s:%s" % (tip, a),
                                       check=False, quiet=True).returncode
                == 0]
        diff = ""
        if upstream:
            diff = git("diff", "--no-renames", "--no-color", "--no-ext-diff",
                       "--src-prefix=a/", "--dst-prefix=b/", c + "^", c,
                       "--", *upstream)
        msg = git("log", "-1", "--format=%B", c).rstrip("\n").split("\n")
        subject, body = msg[0], "\n".join(msg[1:]).strip("\n")
        if sl.SIGNOFF not in body.splitlines():
            body = (body + "\n\n" if body else "") + sl.SIGNOFF
        adds_of[k] = adds
        new_files += adds
        if k < len(old) and old_patches[k].subject == subject:
            path = old[k]
        else:
            num = (int(os.path.basename(old[k])[:4]) if k < len(old) else
                   (int(os.path.basename(old[-1])[:4]) + k - len(old) + 1
                    if old else k + 1))
            path = os.path.join(sl.SERIES, "%04d-%s.patch"
                                % (num, slug(subject)))
            if k < len(old):
                os.unlink(old[k])
        tmp = path + ".tmp"
        sl.write_patch(tmp, subject, body, adds, diff)
        if os.path.exists(path) and open(tmp).read() == open(path).read():
            os.unlink(tmp)
        else:
            os.rename(tmp, path)
    for p in old[len(commits):]:
        os.unlink(p)
    # New files: their content at the tip goes to linux/ (written only if
    # changed, so that build/src keeps their mtime).
    for a in new_files:
        data = git("show", "%s:%s" % (tip, a), quiet=True)
        dst = os.path.join(sl.LINUX, a)
        if os.path.exists(dst):
            with open(dst) as f:
                if f.read() == data:
                    continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w") as f:
            f.write(data)
    for a in sorted(previously_added - set(new_files)):
        dst = os.path.join(sl.LINUX, a)
        if os.path.exists(dst):
            os.unlink(dst)
            say("removed linux/%s (no commit adds it any more)" % a)
    git("update-ref", "refs/series/saved", "series")
    say("series/ and linux/ rewritten from build/git:")
    subprocess.run(["git", "status", "--short", "--", sl.SERIES, sl.LINUX],
                   cwd=TOP, stderr=subprocess.DEVNULL)


# ---- check ----------------------------------------------------------------

def check_headers(ps):
    """Every patch of build/series is a mail git am takes: the mbox "From "
    line, then From:, Date: and "Subject: [PATCH n/N]" headers."""
    bad = False
    for p in ps:
        with open(p, encoding="utf-8") as f:
            head = f.read().split("\n\n", 1)[0].split("\n")
        missing = []
        if not re.match(r"^From [0-9a-f]{40} ", head[0]):
            missing.append("mbox 'From ' line")
        for h in ("From: ", "Date: ", "Subject: [PATCH "):
            if not any(x.startswith(h) for x in head[1:]):
                missing.append(h.strip())
        if missing:
            say("FAIL %s: no %s" % (os.path.basename(p), ", ".join(missing)))
            bad = True
    if not bad:
        say("ok   every patch has From:, Date: and Subject: headers")
    return not bad


def check_am(ps):
    if not os.path.isdir(AM):
        say("making the git am work tree build/am (once)")
        git("worktree", "prune")
        git("worktree", "add", "-q", "--detach", AM, "base")
    git("am", "--abort", cwd=AM, check=False, quiet=True)
    git("checkout", "-q", "-f", "--detach", "base", cwd=AM)
    git("clean", "-q", "-fdx", cwd=AM)
    r = git("am", "-q", "--no-3way", *ps, cwd=AM, check=False, quiet=True)
    if r.returncode:
        say("FAIL git am onto pristine 7.3:\n" + r.stderr.rstrip())
        return False
    if git("rev-parse", "HEAD^{tree}", cwd=AM) != git("rev-parse",
                                                      "review^{tree}"):
        say("FAIL git am of build/series gives another tree than series/")
        return False
    say("ok   git am of %d patches onto pristine 7.3" % len(ps))
    return True


def check_deletions():
    """No patch deletes (or changes) a line that an earlier patch added."""
    commits = git("rev-list", "--reverse", "base..review").split()
    bad = False
    for k, c in enumerate(commits):
        earlier = set(commits[:k])
        if not earlier:
            continue
        subject = git("log", "-1", "--format=%s", c).strip()
        diff = git("diff", "-U0", "--no-renames", c + "^", c)
        path = None
        for line in diff.splitlines():
            if line.startswith("--- "):
                path = None if line == "--- /dev/null" else line[6:]
                continue
            m = re.match(r"^@@ -(\d+)(?:,(\d+))? ", line)
            if not m or path is None:
                continue
            start, count = int(m.group(1)), int(m.group(2) or "1")
            if count == 0:
                continue
            blame = git("blame", "-s", "-l", "-L",
                        "%d,+%d" % (start, count), c + "^", "--", path)
            for b in blame.splitlines():
                sha = b.split()[0].lstrip("^")
                if sha in earlier:
                    say("FAIL %s: deletes a line of %s that '%s' added: %s"
                        % (subject, path,
                           git("log", "-1", "--format=%s", sha).strip(),
                           b.split(")", 1)[1].strip()[:70]))
                    bad = True
    if not bad:
        say("ok   no patch deletes a line an earlier patch added")
    return not bad


def check_size():
    """No patch changes more than MAX_LINES lines, not counting new files
    added whole, tools/testing/ and Documentation/."""
    bad = False
    for c in git("rev-list", "--reverse", "base..review").split():
        subject = git("log", "-1", "--format=%s", c).strip()
        status = {}
        for line in git("diff-tree", "--no-commit-id", "-r", "--no-renames",
                        "--name-status", c + "^", c).splitlines():
            s, p = line.split("\t", 1)
            status[p] = s
        counted = total = 0
        for line in git("diff-tree", "--no-commit-id", "-r", "--no-renames",
                        "--numstat", c + "^", c).splitlines():
            a, d, p = line.split("\t", 2)
            n = (int(a) if a != "-" else 0) + (int(d) if d != "-" else 0)
            total += n
            if (status.get(p) == "A" or p.startswith("tools/testing/") or
                    p.startswith("Documentation/")):
                continue
            counted += n
        if counted > MAX_LINES:
            say("FAIL %s: changes %d lines of existing code (over %d; new "
                "files, tools/testing/ and Documentation/ not counted): "
                "split it" % (subject, counted, MAX_LINES))
            bad = True
        else:
            say("ok   %s: %d changed lines, %d counted against %d"
                % (subject, total, counted, MAX_LINES))
    return not bad


def only_convention_camelcase(out):
    """Whether every report of checkpatch (--show-types) is a CamelCase
    check of an HPAGEFLAG(Uname, name) line: hugetlb.h names its page flags
    so (HPAGEFLAG(Cma, cma)), which checkpatch knows only for flags already
    in the tree."""
    reports = re.findall(r"^(?:ERROR|WARNING|CHECK):(\w+):.*\n#\d+: FILE: "
                         r".*\n(.*)$", out, re.M)
    total = re.search(r"^total: (\d+) errors, (\d+) warnings, (\d+) checks",
                      out, re.M)
    if not reports or not total:
        return False
    if sum(int(x) for x in total.groups()) != len(reports):
        return False
    return all(t == "CAMELCASE" and re.match(r"\+HPAGEFLAG\(", line)
               for t, line in reports)


def check_checkpatch(ps):
    cp = os.path.join(AM, "scripts", "checkpatch.pl")
    # coding-style.rst: never break user-visible strings, so long format
    # strings (LONG_LINE_STRING) are allowed; new files need no
    # MAINTAINERS entry here.
    opts = ["--strict", "--show-types", "--root=" + AM, "--ignore",
            "FILE_PATH_CHANGES,SPDX_LICENSE_TAG,LONG_LINE_STRING"]
    bad = False
    for p in ps:
        r = subprocess.run([cp] + opts + [p], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, cwd=AM)
        if r.returncode and only_convention_camelcase(r.stdout):
            say("ok   checkpatch --strict %s (CamelCase only in "
                "HPAGEFLAG(), hugetlb.h's convention)" % os.path.basename(p))
        elif r.returncode:
            say("FAIL checkpatch --strict %s" % os.path.basename(p))
            print("\n".join("    " + x for x in r.stdout.splitlines()))
            bad = True
        else:
            say("ok   checkpatch --strict %s" % os.path.basename(p))
    return not bad


def cmd_check():
    cmd_format()
    ps = sorted(os.path.join(OUT, p) for p in os.listdir(OUT)
                if p.endswith(".patch") and not p.startswith("0000-"))
    ok = check_headers(ps)
    ok = check_am(ps) and ok
    ok = check_deletions() and ok
    ok = check_size() and ok
    ok = check_checkpatch(ps) and ok
    return ok


def main():
    args = sys.argv[1:]
    cmd = args[0] if args else ""
    if cmd == "format":
        cmd_format()
    elif cmd == "edit":
        cmd_edit(args[1] if len(args) > 1 and args[1] else None)
    elif cmd == "save":
        cmd_save()
    elif cmd == "check":
        sys.exit(0 if cmd_check() else 1)
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
