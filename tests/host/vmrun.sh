#!/bin/bash
# vmrun passes the command's exit status through and sees a guest's files.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
log=${BUILD_DIR:-$top/build}/vmrun/selftest.log
"$top/scripts/vmrun" --log "$log" -- true || { echo "vmrun -- true failed"; exit 1; }
if "$top/scripts/vmrun" --log "$log" -- false; then
	echo "vmrun -- false exited 0"
	exit 1
fi
out=$("$top/scripts/vmrun" --log "$log" --file "$top/tests/harness/warn.log" -- sh -c 'grep -c WARNING warn.log; exit 7')
rc=$?
[ "$rc" -eq 7 ] || { echo "exit status $rc, want 7"; exit 1; }
[ "$out" = 1 ] || { echo "output '$out', want 1"; exit 1; }
