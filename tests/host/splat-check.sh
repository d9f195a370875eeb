#!/bin/bash
# The splat detector flags every kind of splat and passes a clean boot.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
rc=0
"$top/scripts/splat-check" "$top/tests/harness/clean-boot.log" ||
	{ echo "clean boot log flagged"; rc=1; }
for f in warn lockdep hung bad-page kmemleak; do
	if "$top/scripts/splat-check" "$top/tests/harness/$f.log" 2>/dev/null; then
		echo "$f.log not flagged"
		rc=1
	fi
done
exit $rc
