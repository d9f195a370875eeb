#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs inside a test VM (busybox sh), from /root, with the test binaries
# beside it.  Takes its tests from scripts/run-tests' work queue: prints
# "vmtest-next" and reads the answer from /dev/ttyS2, a line of
# "scripts/testlist.py" ("run [@last] SUITE NAME BINARY [ARGS...]") or
# "done".  For each test prints its output prefixed with "# " and one
# result line "vmtest-result: ok|not ok|skip SUITE:NAME [# why]" that
# scripts/run-tests numbers into TAP.
#   guest-tests.sh
per_test_timeout=${VMTEST_TIMEOUT:-1500}

result() {
	echo "vmtest-result: $*"
}

hp() {	# hp SIZE_KB FILE -> value of a per-size hugetlb counter
	cat "/sys/kernel/mm/hugepages/hugepages-${1}kB/$2"
}

# The software model of SNP's RMP (checked
# only when the kernel has it): pages assigned to guests, 2M entries and
# contract violations.
rmp=/sys/kernel/debug/kvm-rmp-model
rmp_mode0=$(cat /sys/module/kvm/parameters/rmp_model 2>/dev/null)
rmp_snapshot() {
	[ -d "$rmp" ] || return 0
	echo "assigned_4k=$(cat $rmp/assigned_4k) entries_2m=$(cat $rmp/entries_2m) violations=$(cat $rmp/violations)"
}

pool_snapshot() {
	for d in /sys/kernel/mm/hugepages/hugepages-*; do
		echo "${d##*-}:$(cat "$d/nr_hugepages")/$(cat "$d/free_hugepages")/$(cat "$d/resv_hugepages")/$(cat "$d/surplus_hugepages")"
	done | tr '\n' ' '
}

# Objects leaked by the tests so far: kmemleak reports an object that stays
# unreferenced for two scans, the first of them at least 5 s after it was
# allocated.  A report is also printed on the console, which splat-check
# fails on.
kmemleak_scan() {
	k=/sys/kernel/debug/kmemleak
	if [ ! -w "$k" ]; then
		result "not ok kmemleak:$1 # $k missing (CONFIG_DEBUG_KMEMLEAK)"
		return
	fi
	sleep 5
	echo scan > "$k"
	echo scan > "$k"
	if grep -q 'unreferenced object' "$k"; then
		sed 's/^/# /' "$k"
		result "not ok kmemleak:$1 # $(grep -c 'unreferenced object' "$k") leaked objects"
	else
		result "ok kmemleak:$1"
	fi
}

run_one() {
	suite=$1 name=$2 bin=$3
	shift 3
	exe=./$(basename "$bin")
	if [ "$suite" = kunit ]; then
		r=/sys/kernel/debug/kunit/$name/results
		if [ ! -r "$r" ]; then
			result "not ok kunit:$name # suite not in the kernel"
			return
		fi
		sed 's/^/# /' "$r"
		if grep -q "^not ok" "$r"; then
			result "not ok kunit:$name"
		elif grep -q "^ok" "$r"; then
			result "ok kunit:$name"
		else
			result "not ok kunit:$name # no result"
		fi
		return
	fi
	if [ "$suite" = kmemleak ]; then
		kmemleak_scan "$name"
		return
	fi
	if [ ! -x "$exe" ]; then
		result "not ok $suite:$name # binary missing"
		return
	fi
	saved_nr=
	# Each test starts with the RMP model's boot mode and no failure armed,
	# whatever the test before it set (a test killed by its timeout
	# restores nothing).
	[ -n "$rmp_mode0" ] && echo "$rmp_mode0" > /sys/module/kvm/parameters/rmp_model
	for k in fail_make_shared fail_make_private fail_direct_map_split \
		 fail_launch_update; do
		[ -w "$rmp/$k" ] && echo 0 > "$rmp/$k"
	done
	before=$(pool_snapshot)
	rmp_before=$(rmp_snapshot)
	leaked_before=$(cat $rmp/leaked 2>/dev/null)
	case "$name" in
	hugetlb-shm)
		echo 268435456 > /proc/sys/kernel/shmmax
		echo 4194304 > /proc/sys/kernel/shmall ;;
	hugetlb_madv_vs_map)
		# As run_vmtests.sh: exactly one default-size hugepage.
		saved_nr=$(cat /proc/sys/vm/nr_hugepages)
		echo 1 > /proc/sys/vm/nr_hugepages ;;
	esac
	start=$(date +%s)
	# Leading KEY=VALUE arguments are the test's environment.
	envs=
	while [ $# -gt 0 ]; do
		case "$1" in
		-*|*[!A-Za-z0-9_]*=*) break ;;
		*=*) envs="$envs $1"; shift ;;
		*) break ;;
		esac
	done
	# shellcheck disable=SC2086
	timeout "$per_test_timeout" env $envs "$exe" "$@" > /tmp/out 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	sed 's/^/# /' /tmp/out
	[ -n "$saved_nr" ] && echo "$saved_nr" > /proc/sys/vm/nr_hugepages
	after=$(pool_snapshot)
	# A test that loses hugepages for good (hwpoison) says so with lines
	# "pool-loss: KB N": those free pages are expected to be gone.
	before=$(grep '^pool-loss: ' /tmp/out | {
		b=$before
		while read -r _ kb n; do
			b=$(echo "$b" | awk -v kb="${kb}kB" -v n="$n" '{
				for (i = 1; i <= NF; i++) {
					split($i, a, "[:/]")
					if (a[1] == kb)
						$i = a[1] ":" a[2] "/" a[3] - n "/" a[4] "/" a[5]
				}
				print $0 " "
			}')
		done
		echo "$b"
	})
	# Every test must leave no page assigned in the RMP model and
	# violate nothing; what it leaked (poisoned pages) is reported.
	rmp_after=$(rmp_snapshot)
	if [ -d "$rmp" ] && [ "$(cat $rmp/leaked)" != "$leaked_before" ]; then
		echo "# rmp-model: leaked $(($(cat $rmp/leaked) - leaked_before)) pages"
	fi
	if [ "$rc" -eq 0 ] && [ "$rmp_before" != "$rmp_after" ]; then
		echo "# rmp model changed: before [$rmp_before] after [$rmp_after]"
		result "not ok $suite:$name # rmp model not restored or violated"
		return
	fi
	# Every test must leave the hugetlb pools exactly as it found them.
	if [ "$rc" -eq 0 ] && [ "$before" != "$after" ]; then
		echo "# hugetlb pools changed: before [$before] after [$after]"
		result "not ok $suite:$name # hugetlb pool counters not restored"
		return
	fi
	case $rc in
	0) result "ok $suite:$name # ${secs}s" ;;
	4) result "skip $suite:$name # SKIP exit 4" ;;
	124|143) result "not ok $suite:$name # timeout after ${per_test_timeout}s" ;;
	*) result "not ok $suite:$name # exit $rc" ;;
	esac
}

echo "# kernel $(uname -r), $(nproc) cpus, pools: $(pool_snapshot)"
[ -d "$rmp" ] && echo "# rmp model: $(rmp_snapshot) psmash=$(cat $rmp/psmash) leaked=$(cat $rmp/leaked) direct_map_splits=$(cat $rmp/direct_map_splits 2>/dev/null)"
stty -F /dev/ttyS2 -echo 2>/dev/null
exec 3</dev/ttyS2
while :; do
	echo "vmtest-next"
	read -r what line <&3 || break
	[ "$what" = run ] || break
	set -- $line
	[ "$1" = @last ] && shift
	suite=$1 name=$2 bin=$3
	shift 3
	# shellcheck disable=SC2086
	run_one "$suite" "$name" "$bin" "$@"
done
exit 0
