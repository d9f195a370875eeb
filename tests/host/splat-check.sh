#!/bin/bash
# The splat detector flags every kind of splat and passes a clean boot.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
rc=0
"$top/scripts/splat-check" "$top/tests/harness/clean-boot.log" ||
	{ echo "clean boot log flagged"; rc=1; }
# An allocation failure a test injected on purpose, inside its markers.
"$top/scripts/splat-check" "$top/tests/harness/alloc-fail-injected.log" ||
	{ echo "injected allocation failure flagged"; rc=1; }
# The same report outside the markers is a splat.
for f in warn lockdep hung bad-page kmemleak alloc-fail; do
	if "$top/scripts/splat-check" "$top/tests/harness/$f.log" 2>/dev/null; then
		echo "$f.log not flagged"
		rc=1
	fi
done
exit $rc
