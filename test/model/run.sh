#!/usr/bin/env bash
# Checks the Promela models of the invalidation protocol (test/model/xpmem.pml) and of the
# domain mutex's sleepers (test/model/mutex.pml) with spin. See test/model/README.md.
#
#   bash test/model/run.sh              the models: 4 scenarios with deadlines, 4 with strict liveness, the mutex
#   bash test/model/run.sh --mutants    every deliberate break (BREAK_*) must give a counterexample
#   bash test/model/run.sh --keep ...   keep the working directory (pan, trails)
#
# Exhaustive search (-DSAFETY, -DCOLLAPSE compression). Exits non-zero on any error, on an
# incomplete search, and in --mutants mode on a break that is not caught.
# Environment: XPMEM_MODEL_MEM (MiB for pan, default 3072), XPMEM_MODEL_HASH (-w, default 25).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
model="$here/xpmem.pml" # verify and replay check this one; the mutex checks set it to mutex.pml
mem=${XPMEM_MODEL_MEM:-3072}
hash=${XPMEM_MODEL_HASH:-25}

mode=model
keep=0
for arg in "$@"; do
  case "$arg" in
    --mutants) mode=mutants ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

for tool in spin gcc; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "run.sh: $tool not found (Debian/Ubuntu: apt-get install -y spin gcc)" >&2
    exit 2
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/xpmem-model.XXXXXX")
cleanup() {
  if [ "$keep" = 1 ]; then echo "working directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# verify NAME FLAGS...: generates, compiles and runs pan in $work/NAME; leaves its output in
# $work/NAME/pan.out and sets: errors, stored, transitions, depth, memory, seconds, complete, first.
verify() {
  local name=$1; shift
  local dir="$work/$name"
  mkdir -p "$dir"
  (
    cd "$dir"
    spin -a "$@" "$model" >spin.out 2>&1 || { cat spin.out >&2; exit 1; }
    gcc -O0 -w -DSAFETY -DCOLLAPSE -DMEMLIM="$mem" -o pan pan.c >gcc.out 2>&1 || { cat gcc.out >&2; exit 1; }
    ./pan -n -m1000000 -w"$hash" >pan.out 2>&1 || true
  )
  local out="$dir/pan.out"
  errors=$(sed -nE 's/.*errors: ([0-9]+).*/\1/p' "$out" | tail -1)
  stored=$(sed -nE 's/^ *([0-9.e+]+) states, stored.*/\1/p' "$out" | tail -1)
  transitions=$(sed -nE 's/^ *([0-9.e+]+) transitions.*/\1/p' "$out" | tail -1)
  depth=$(sed -nE 's/.*depth reached ([0-9]+).*/\1/p' "$out" | tail -1)
  memory=$(sed -nE 's/^ *([0-9.]+)[[:space:]]+total actual memory usage.*/\1/p' "$out" | tail -1)
  seconds=$(sed -nE 's/^pan: elapsed time ([0-9.e+]+) seconds.*/\1/p' "$out" | tail -1)
  first=$(grep -m1 -E '^pan:1: ' "$out" || true)
  complete=1
  if grep -qE 'Search not completed|max search depth too small|reached -DMEMLIM' "$out"; then complete=0; fi
  if [ -z "$errors" ]; then errors=?; complete=0; fi
}

# replay NAME FLAGS...: the counterexample found in NAME, one step per line, loop noise dropped.
replay() {
  local name=$1; shift
  local dir="$work/$name"
  [ -f "$dir/$(basename "$model").trail" ] || return 0
  (
    cd "$dir"
    # steps that write the protocol's shared words, then where every process stopped
    spin -t -p -k "$(basename "$model").trail" "$@" "$model" 2>&1 |
      sed -E "s#$model:#L#" |
      grep -E '\[(seq|held|segWaiters|oplock|drainer|rstate|spLive|dead2|phase|inSec|applies|events|M|W|asleep|inside)\[?[^]=]*\]? = |\[(held|oplock)\[[^]]*\]==|\[m?t = seq|trail ends|^ *[0-9]+:[[:space:]]+proc +[0-9]+ \([^)]*\) L[0-9]+ \(state [0-9]+\)( <valid end state>)?$' |
      cut -c1-150 >replay.txt || true
  )
  echo "  counterexample (abridged: writes to shared words; full: cd $dir && spin -t -p -k $(basename "$model").trail $* $model):"
  tail -60 "$dir/replay.txt" | sed 's/^/    /'
}

line() { # LABEL
  printf '  %-64s %s states stored, %s transitions, depth %s, %s MiB, %s s\n' \
    "$1" "$stored" "$transitions" "$depth" "$memory" "$seconds"
}

scenarios=(1 2 3 4)
names=([1]="window" [2]="an attacher dies" [3]="an invalidator dies" [4]="an attach races an unwatched invalidation")
status=0
start=$SECONDS

case "$mode" in
model)
  echo "spin models of the invalidation protocol and the mutex ($(spin -V | head -1)), exhaustive (-DSAFETY)"
  # check NAME LABEL FLAGS...: one exhaustive search of $model that must find nothing
  check() {
    local name=$1 label=$2; shift 2
    verify "$name" "$@"
    if [ "$errors" = 0 ] && [ "$complete" = 1 ]; then
      line "$label:"
    else
      echo "  $label: FAILED (errors: $errors${first:+, $first})"
      if [ "$errors" = 0 ]; then echo "    search incomplete: see $work/$name/pan.out"; fi
      replay "$name" "$@"
      keep=1
      status=1
    fi
  }
  for s in "${scenarios[@]}"; do
    check "s$s-deadlines" "scenario $s (${names[$s]}), deadlines" -DSCENARIO="$s"
    check "s$s-strict" "scenario $s (${names[$s]}), strict" -DSCENARIO="$s" -DNOTIMEOUT
  done
  model="$here/mutex.pml"
  check mutex "the mutex's sleepers, strict"
  echo "errors: $([ $status = 0 ] && echo 0 || echo 'see above'); $((SECONDS - start)) s"
  ;;
mutants)
  # break, scenario (m: mutex.pml), mode, what spin must report (ERE on its first error line)
  mutants=(
    "BREAK_HOLDOFF           1 deadlines phase\\[0\\]==0"
    "BREAK_DRAIN             1 deadlines inSec\\[0\\]"
    "BREAK_GRANT_UNCOUNTED   1 deadlines inSec\\[0\\]|phase\\[0\\]!=2"
    "BREAK_SEQ_REUSE         1 deadlines applies\\[0\\]==ma"
    "BREAK_ROLLBACK_END      1 deadlines gStart\\[n\\]==gEnd\\[n\\]"
    "BREAK_END_SET           1 deadlines \\(gStart\\[n_\\]&"
    "BREAK_SNAPSHOT          1 deadlines regAfter"
    "BREAK_TARGETS_UNLOCKED  1 deadlines mustStart"
    "BREAK_UNWATCHED_RMAP    1 deadlines mustWin"
    "BREAK_UNWATCHED_EARLY   4 deadlines mustWin"
    "BREAK_UNREG_EARLY       1 deadlines unregDone"
    "BREAK_REAP_END          3 deadlines gStart\\[n\\]==gEnd\\[n\\]|gEnd\\[n_\\]"
    "BREAK_FREE_EARLY        3 deadlines gStart\\[n\\]==gEnd\\[n\\]|gEnd\\[n_\\]"
    "BREAK_WAKE_DRAINER      1 strict    invalid end state"
    "BREAK_REAP_HELD         2 strict    invalid end state"
    "BREAK_DEAD_WAIT         2 strict    invalid end state"
    "BREAK_REAP_OPLOCK       3 strict    invalid end state"
    "BREAK_RETRY_REARM       1 strict    invalid end state"
    "BREAK_MUTEX_FLAG        m strict    invalid end state"
    "BREAK_MUTEX_SEEN        m strict    invalid end state"
  )
  echo "mutants: each break must make spin find a counterexample"
  for m in "${mutants[@]}"; do
    read -r brk s kind expect <<<"$m"
    model="$here/xpmem.pml"
    flags=(-DSCENARIO="$s" -D"$brk")
    [ "$s" = m ] && { model="$here/mutex.pml"; flags=(-D"$brk"); }
    [ "$kind" = strict ] && flags+=(-DNOTIMEOUT)
    verify "$brk" "${flags[@]}"
    if [ "$errors" != 0 ] && [ "$errors" != ? ] && grep -qE -- "$expect" <<<"$first"; then
      printf '  caught  %-24s scenario %s, %-9s %s\n' "$brk" "$s" "$kind" "${first#pan:1: }"
    else
      printf '  MISSED  %-24s scenario %s, %-9s errors: %s %s (expected: %s)\n' "$brk" "$s" "$kind" "$errors" "$first" "$expect"
      keep=1
      status=1
    fi
  done
  echo "$([ $status = 0 ] && echo 'every break caught' || echo 'some break was not caught'); $((SECONDS - start)) s"
  ;;
esac
exit $status
