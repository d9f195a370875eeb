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
# A WARN of the RMP model that its KUnit test raises on purpose, inside
# its markers.
"$top/scripts/splat-check" "$top/tests/harness/rmp-violation-expected.log" ||
	{ echo "expected RMP model violation flagged"; rc=1; }
# The same reports outside the markers are splats, and so is any other
# WARN inside the RMP model's markers.
for f in warn lockdep hung bad-page kmemleak alloc-fail rmp-violation \
	 rmp-window-other-warn; do
	if "$top/scripts/splat-check" "$top/tests/harness/$f.log" 2>/dev/null; then
		echo "$f.log not flagged"
		rc=1
	fi
done
exit $rc
