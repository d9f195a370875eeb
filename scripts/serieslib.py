# SPDX-License-Identifier: GPL-2.0
"""The series in series/ and the new files in linux/: parsing and checks.

A patch file series/NNNN-slug.patch is

    Subject: <subject line>

    <commit message body, ending with Signed-off-by: ...>
    Adds: <path>                  (zero or more; linux/<path> taken whole)
    ---
    <git-style unified diff of existing upstream files; may be empty>

The patches apply in file-name order.  Every file under linux/ is added by
exactly one patch, is new (not in the upstream tree) and is not touched by
any diff.
"""
import os
import re
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD_DIR", os.path.join(TOP, "build"))
# SERIES_DIR and LINUX_DIR name another series and its new files (testing
# the tools on a series other than the work tree's).
SERIES = os.environ.get("SERIES_DIR") or os.path.join(TOP, "series")
LINUX = os.environ.get("LINUX_DIR") or os.path.join(TOP, "linux")
AUTHOR_NAME = "hugetlb-gmem developers"
AUTHOR_EMAIL = "hugetlb-gmem@localhost"
SIGNOFF = "Signed-off-by: %s <%s>" % (AUTHOR_NAME, AUTHOR_EMAIL)
PATCH_RE = re.compile(r"^[0-9]{4}-[A-Za-z0-9._-]+\.patch$")


class SeriesError(Exception):
    pass


def die(prog, msg):
    sys.stderr.write("%s: error: %s\n" % (prog, msg))
    sys.exit(1)


class Patch:
    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        lines = text.split("\n")
        if not lines or not lines[0].startswith("Subject: "):
            raise SeriesError("%s: the first line must be 'Subject: ...'"
                              % self.name)
        self.subject = lines[0][len("Subject: "):].strip()
        try:
            sep = lines.index("---")
        except ValueError:
            raise SeriesError("%s: no '---' line before the diff" % self.name)
        header = lines[1:sep]
        self.adds = []
        body = []
        for line in header:
            m = re.match(r"^Adds:\s+(\S+)\s*$", line)
            if m:
                p = os.path.normpath(m.group(1))
                if p.startswith("..") or os.path.isabs(p):
                    raise SeriesError("%s: bad Adds: path %s"
                                      % (self.name, m.group(1)))
                self.adds.append(p)
            elif line.startswith("Adds:"):
                raise SeriesError("%s: malformed line %r" % (self.name, line))
            else:
                body.append(line)
        while body and not body[0].strip():
            body.pop(0)
        while body and not body[-1].strip():
            body.pop()
        self.body = "\n".join(body)
        self.diff = "\n".join(lines[sep + 1:])
        if self.diff.strip():
            self.diff = self.diff.rstrip("\n") + "\n"
        else:
            self.diff = ""

    def message(self):
        """The commit message: subject, blank line, body."""
        return self.subject + "\n\n" + self.body + "\n"

    def diff_paths(self):
        """Paths (relative to the tree) that the diff touches."""
        return diff_paths(self.diff)


def diff_paths(diff):
    paths = set()
    for line in diff.splitlines():
        m = re.match(r"^(?:\+\+\+|---) (\S+)", line)
        if m and m.group(1) != "/dev/null":
            paths.add(m.group(1).split("/", 1)[1])
        m = re.match(r"^diff --git a/(\S+) b/(\S+)$", line)
        if m:
            paths.update(m.groups())
        m = re.match(r"^rename (?:from|to) (\S+)$", line)
        if m:
            paths.add(m.group(1))
    return sorted(paths)


def write_patch(path, subject, body, adds, diff):
    body = body.strip("\n")
    text = "Subject: %s\n\n%s\n" % (subject, body)
    for a in adds:
        text += "Adds: %s\n" % a
    text += "---\n" + diff
    if diff and not diff.endswith("\n"):
        text += "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def patch_files(upto=None):
    """series/NNNN-*.patch in order; only the first $SERIES_UPTO if set."""
    if not os.path.isdir(SERIES):
        return []
    ps = sorted(os.path.join(SERIES, p) for p in os.listdir(SERIES)
                if PATCH_RE.match(p))
    if upto is None and os.environ.get("SERIES_UPTO"):
        upto = int(os.environ["SERIES_UPTO"])
    return ps[:upto] if upto is not None else ps


def load(upto=None):
    return [Patch(p) for p in patch_files(upto)]


def linux_files():
    """Every file under linux/, as kernel paths."""
    out = []
    for root, dirs, files in os.walk(LINUX):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
            if f.startswith(".") and f in (".gitkeep", ".keep"):
                continue
            out.append(os.path.relpath(os.path.join(root, f), LINUX))
    return sorted(out)


def check_layout(patches, complete):
    """Errors of the layout: Adds of missing or duplicate files, diffs of
    files in linux/, and (when @complete, the whole series) files of linux/
    that no patch adds."""
    errors = []
    added = {}
    lf = set(linux_files())
    for p in patches:
        if SIGNOFF not in p.body.splitlines():
            errors.append("%s: no '%s' line" % (p.name, SIGNOFF))
        for a in p.adds:
            if a in added:
                errors.append("%s: Adds: %s, which %s adds already"
                              % (p.name, a, added[a]))
            added[a] = p.name
            if a not in lf:
                errors.append("%s: Adds: %s, but linux/%s does not exist"
                              % (p.name, a, a))
        for d in p.diff_paths():
            if d in lf:
                errors.append("%s: its diff touches %s, a new file of "
                              "linux/ (edit linux/%s instead)"
                              % (p.name, d, d))
    if complete:
        for f in sorted(lf - set(added)):
            errors.append("linux/%s is added by no patch (add an 'Adds: %s' "
                          "line to one)" % (f, f))
    return errors


def tarball():
    """Debian's linux-source-7.3 tarball (fetched by scripts/deps.sh)."""
    return subprocess.run([os.path.join(TOP, "scripts", "deps.sh"),
                           "--tarball"], check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip()


def base_source():
    """What the pristine tree comes from: $KERNEL_SRC or the tarball."""
    ksrc = os.environ.get("KERNEL_SRC")
    if ksrc:
        ksrc = os.path.abspath(ksrc)
        check_kernel_src(ksrc)
        return ksrc
    return tarball()


def check_kernel_src(ksrc):
    try:
        with open(os.path.join(ksrc, "Makefile")) as f:
            head = f.read(400)
    except OSError:
        raise SeriesError("KERNEL_SRC=%s has no Makefile" % ksrc)
    v = re.search(r"^VERSION = (\d+)", head, re.M)
    pl = re.search(r"^PATCHLEVEL = (\d+)", head, re.M)
    if not (v and pl and (v.group(1), pl.group(1)) == ("7", "3")):
        raise SeriesError("KERNEL_SRC=%s is not a Linux 7.3 tree" % ksrc)
