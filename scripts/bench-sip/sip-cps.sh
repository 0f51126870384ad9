#!/usr/bin/env bash
# sip-cps.sh - call-rate ramp with SIPp against a SIP server on LOOPBACK.
#
# Copied from ../shared/bench/sip-cps.sh for scripts/bench-sip.sh, which
# drives it (against Mediator and against Kamailio). Changes: the caller
# number comes from CALLERS_FILE (sipp -inf, [field0] in
# scenarios/uac_masking.xml) so that it is a valid number; the scenarios are
# the ones next to this script; the UAS's -m has room (see run_step).
#
# Usage:  sip-cps.sh TARGET_IP:PORT
#   TARGET is the server under test (e.g. 127.0.0.1:5060). Pointing it at the
#   UAS address itself (127.0.0.1:5080) measures the tools with no middlebox.
#
# Topology (all loopback):
#   SIPp UAC (UAC_ADDR) --INVITE sip:$SERVICE@TARGET--> server --> SIPp UAS (UAS_ADDR)
#   The server must route the call to UAS_ADDR (the "trunk").
#
# What it does:
#   1. functional check (CHECK=1, skipped when TARGET == UAS_ADDR): one call with
#      message traces; prints what the callee saw (R-URI, From, X-Binding) and
#      whether the caller's number or address leaked to the callee side.
#   2. ramp, REPEATS times: for each rate in RATES run DURATION seconds
#      (-r rate, -m rate*DURATION); a step is "clean" when every call succeeded
#      (0 failed calls, sipp exit 0) and the achieved call rate is >= MIN_RATIO
#      of the target. The ramp stops at the first unclean step, then REFINE
#      bisection steps narrow the gap (rounded to 50 cps).
#   3. response time (RTT_RATE > 0): RTT_REPEATS runs at RTT_RATE with the
#      UAC's message trace; INVITE->200 and BYE->200 times with microsecond
#      timestamps (sipp's own counters only have 1 ms resolution).
#   Per step it records sipp UAC/UAS CPU (GNU time), the CPU of all other processes, and,
#   for the PIDs in SUT_PIDS (and their child processes), CPU use and peak
#   RSS / PSS. CPU columns are in % of ONE core (box max = 100 x cores);
#   sipp and SUT CPU come from per-process accounting (exact). other_cpu% is
#   every other process on the box (approximate: per-process deltas incl.
#   reaped children); /proc/stat totals are NOT used because on this VM they
#   miss most of the CPU of bursty, mostly-sleeping processes such as sipp.
#   udp_drops = growth of the kernel's UDP RcvbufErrors+SndbufErrors counters.
#   Results: summary.tsv, maxes.txt, rtt.txt, result.txt under OUT_DIR; the
#   last line printed is MAX_CLEAN_CPS=<median over the ramps>.
#
# Environment knobs (defaults in brackets):
#   RATES ["200 500 1000 2000 4000"]  DURATION [20]  HOLD_MS [500] call hold
#   REPEATS [3]  REFINE [2]  MIN_RATIO [0.95]
#   MAX_AVG_RT_MS [0 = off]  also require sipp's average INVITE->200 time
#       (1 ms resolution) to stay at or below this for a step to be clean
#   RTT_RATE [200]  RTT_REPEATS [3]
#   SERVICE [15550100001]  the number dialled (Request-URI user)
#   CALLERS_FILE [""]  sipp injection file: a "SEQUENTIAL" line, then one
#       caller number per line ([field0] of the UAC scenario); required
#   CALLER [first number of CALLERS_FILE]  the number the check looks for
#   UAC_ADDR [127.0.0.1:5070]  UAS_ADDR [127.0.0.1:5080]
#   UAC_TRANSPORT [u1]  UAS_TRANSPORT [u1]   sipp -t values (u1 UDP, t1 TCP)
#   SIPP_BUFF [4194304]  sipp socket buffer bytes (-buff_size; the kernel caps
#       it at net.core.rmem_max/wmem_max). sipp's small default makes the
#       tools themselves drop UDP at ~2500 cps on this box.
#   SUT_PIDS [""]  space-separated PIDs of the server under test
#   SUT_STATS_CMD [""]  command run after each step, output kept (e.g. kamcmd)
#   CHECK [1]  LABEL [run]  OUT_DIR [results/<date>-<LABEL> next to this script]
#   QUIET_BUSY [30]  QUIET_MAX_WAIT [120]  before each step wait (at most
#       QUIET_MAX_WAIT s) until the box's CPU use is below QUIET_BUSY % of one
#       core, because the machine may be shared; the other_cpu% column shows
#       CPU used during the step by processes outside the benchmark.
#
# Safety: every address must be loopback (127.0.0.0/8, localhost, ::1); each
# sipp run is bounded by -m and by 'timeout'; the script kills only the PIDs it
# started (trap on exit), never by process name.

set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
SCEN="$here/scenarios"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2; }
[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage ;; esac
TARGET=$1

RATES=${RATES:-"200 500 1000 2000 4000"}
DURATION=${DURATION:-20}
HOLD_MS=${HOLD_MS:-500}
REPEATS=${REPEATS:-3}
REFINE=${REFINE:-2}
MIN_RATIO=${MIN_RATIO:-0.95}
MAX_AVG_RT_MS=${MAX_AVG_RT_MS:-0}
RTT_RATE=${RTT_RATE:-200}
RTT_REPEATS=${RTT_REPEATS:-3}
SERVICE=${SERVICE:-15550100001}
UAC_ADDR=${UAC_ADDR:-127.0.0.1:5070}
UAS_ADDR=${UAS_ADDR:-127.0.0.1:5080}
UAC_TRANSPORT=${UAC_TRANSPORT:-u1}
UAS_TRANSPORT=${UAS_TRANSPORT:-u1}
SUT_PIDS=${SUT_PIDS:-}
SUT_STATS_CMD=${SUT_STATS_CMD:-}
CHECK=${CHECK:-1}
LABEL=${LABEL:-run}
QUIET_BUSY=${QUIET_BUSY:-30}
SIPP_BUFF=${SIPP_BUFF:-4194304}
QUIET_MAX_WAIT=${QUIET_MAX_WAIT:-120}
NCPU=$(nproc)
OUT_DIR=${OUT_DIR:-"$here/results/$(date +%Y%m%d-%H%M%S)-$LABEL"}
CALLERS_FILE=${CALLERS_FILE:-}
[ -s "$CALLERS_FILE" ] || { echo "sip-cps: CALLERS_FILE must name a sipp injection file of caller numbers" >&2; exit 2; }
CALLER=${CALLER:-$(awk -F';' 'NR > 1 { print $1; exit }' "$CALLERS_FILE")}   # the check call's From user

die() { echo "sip-cps: $*" >&2; exit 1; }

# ---------- address checks (loopback only) ----------
split_hostport() { # $1 = host:port -> globals H P
  if [[ $1 =~ ^\[(.+)\]:([0-9]+)$ ]] || [[ $1 =~ ^([^:]+):([0-9]+)$ ]]; then
    H=${BASH_REMATCH[1]}; P=${BASH_REMATCH[2]}
  else
    return 1
  fi
}
is_loopback() {
  [[ $1 =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || [[ $1 == localhost ]] || [[ $1 == ::1 ]]
}
for a in "$TARGET" "$UAC_ADDR" "$UAS_ADDR"; do
  split_hostport "$a" || die "address '$a' must be HOST:PORT"
  is_loopback "$H" || die "address '$a' is not a loopback address; refusing"
done
split_hostport "$TARGET";   T_HOST=$H; T_PORT=$P
split_hostport "$UAC_ADDR"; UAC_HOST=$H; UAC_PORT=$P
split_hostport "$UAS_ADDR"; UAS_HOST=$H; UAS_PORT=$P
DIRECT=0
[ "$T_HOST:$T_PORT" = "$UAS_HOST:$UAS_PORT" ] && DIRECT=1

for t in sipp timeout awk; do command -v $t >/dev/null || die "missing tool: $t"; done
TIME_BIN=$(type -P time) || die "missing GNU time (Debian package 'time')"
for n in $RATES $DURATION $HOLD_MS $REPEATS $REFINE $RTT_RATE $RTT_REPEATS $MAX_AVG_RT_MS $SIPP_BUFF; do
  [[ $n =~ ^[0-9]+$ ]] || die "numeric knob expected, got '$n'"
done
for p in $SUT_PIDS; do
  [[ $p =~ ^[0-9]+$ ]] && [ -d /proc/$p ] || die "SUT pid '$p' is not a running process"
done

mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
CLK=$(getconf CLK_TCK)

# ---------- process tracking ----------
STARTED=()
cleanup() {
  local p
  for p in "${STARTED[@]}"; do
    kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null
  done
  sleep 0.3
  for p in "${STARTED[@]}"; do
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  done
  wait 2>/dev/null
}
forget_pid() { # drop a PID that has been reaped, so cleanup never signals a reused PID
  local p keep=()
  for p in "${STARTED[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  STARTED=("${keep[@]}")
}
trap cleanup EXIT
trap 'echo "sip-cps: interrupted" >&2; exit 130' INT TERM
stop_pid() { # TERM, wait up to $2 seconds, then KILL; only a PID we started
  local p=$1 w=${2:-5} i
  for ((i = 0; i < w * 10; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then
    kill -TERM "$p" 2>/dev/null
    for ((i = 0; i < 30; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  fi
  wait "$p" 2>/dev/null
}

# ---------- helpers ----------
port_hex() { printf '%04X' "$1"; }
port_in_use() { # proto port -> 0 if something is bound there (TCP TIME_WAIT ignored)
  local f=/proc/net/$1 hex; hex=$(port_hex "$2")
  awk -v h=":$hex" 'FNR>1 && substr($2, length($2)-4) == h && $4 != "06" { f=1 } END { exit !f }' \
    "$f" "${f}6" 2>/dev/null
}
proto_of() { case "$1" in t*) echo tcp ;; *) echo udp ;; esac; }
wait_bound() { # proto port
  local i
  for ((i = 0; i < 50; i++)); do port_in_use "$1" "$2" && return 0; sleep 0.1; done
  return 1
}
sut_tree() { # SUT pids and all descendants
  local todo=($SUT_PIDS) p c
  while [ ${#todo[@]} -gt 0 ]; do
    p=${todo[0]}; todo=("${todo[@]:1}")
    [ -d /proc/$p ] || continue
    echo "$p"
    for c in $(cat /proc/$p/task/*/children 2>/dev/null); do todo+=("$c"); done
  done
}
sut_ticks() { # summed utime+stime of the SUT tree
  local p s=0 t
  for p in $(sut_tree); do
    t=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' /proc/$p/stat 2>/dev/null) || continue
    s=$((s + ${t:-0}))
  done
  echo $s
}
others_snapshot() { # "pid ticks" for every process except this script's tree, the SUT tree and kernel threads
  local excl
  excl=" $$ $(descendants $$ | tr '\n' ' ') $(sut_tree | tr '\n' ' ') "
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v ex="$excl" '{ pid=$1; s=$0; sub(/.*\) /, "", s); split(s, f, " ")
      if (pid == 2 || f[2] == 2) next; if (index(ex, " " pid " ")) next
      print pid, f[12] + f[13] + f[14] + f[15] }'
}
descendants() { local c; for c in $(cat /proc/$1/task/*/children 2>/dev/null); do echo "$c"; descendants "$c"; done; }
udp_errs() { awk '/^Udp: [0-9]/ { print $6 + $7; exit }' /proc/net/snmp; }
box_ticks() { awk '/^cpu / { t=0; for (i=2;i<=9;i++) t+=$i; print t, $5+$6 }' /proc/stat; }
sampler() { # out_file max_seconds: per second, SUT tree rss/pss sums (kB) and max single rss
  local out=$1 n=$2 i p rss pss mx r q
  for ((i = 0; i < n; i++)); do
    rss=0; pss=0; mx=0
    for p in $(sut_tree); do
      r=$(awk '/^VmRSS:/ { print $2 }' /proc/$p/status 2>/dev/null); r=${r:-0}
      q=$(awk '/^Pss:/ { print $2 }' /proc/$p/smaps_rollup 2>/dev/null); q=${q:-0}
      rss=$((rss + r)); pss=$((pss + q)); [ "$r" -gt "$mx" ] && mx=$r
    done
    echo "$(date +%s.%N) $rss $pss $mx" >> "$out"
    sleep 1
  done
}
wait_quiet() { # wait until the box is (nearly) idle, bounded by QUIET_MAX_WAIT seconds
  local i a ai b bi busy
  for ((i = 0; i < QUIET_MAX_WAIT; i++)); do
    read -r a ai < <(box_ticks); sleep 1; read -r b bi < <(box_ticks)
    busy=$(awk -v t=$((b - a)) -v d=$((bi - ai)) -v n="$NCPU" 'BEGIN { if (t>0) printf "%.0f", (1-d/t)*n*100; else print 0 }')
    [ "$busy" -le "$QUIET_BUSY" ] && { QUIET_WAITED=$i; return 0; }
  done
  QUIET_WAITED="${QUIET_MAX_WAIT}!"
  echo "sip-cps: box still busy (${busy}% of a core) after ${QUIET_MAX_WAIT}s; measuring anyway" >&2
}
median() { sort -g | awk '{ a[NR]=$1 } END { if (NR==0) { print "-"; exit } if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
stat_last() { # csv field-name -> value from the last line of a sipp stat file
  awk -F';' -v k="$2" 'NR==1 { for (i=1;i<=NF;i++) if ($i==k) c=i; next } { v=$c } END { print v }' "$1"
}
achieved_rate() { # stat file, total calls -> calls/s over the generation window
  awk -F';' -v m="$2" '
    function ep(s,  a) { n = split(s, a, "\t"); return a[n] + 0 }
    NR==1 { for (i=1;i<=NF;i++) { if ($i=="OutgoingCall(C)") o=i; if ($i=="StartTime") st=i; if ($i=="CurrentTime") ct=i }; next }
    { t = ep($ct) - ep($st); n = $o + 0
      if (n >= m && !done) { if (n > pn) t = pt + (m - pn) / (n - pn) * (t - pt); done=1; if (t > 0) printf "%.1f\n", m / t; else print 0; exit }
      pt = t; pn = n }
    END { if (!done) print 0 }' "$1"
}
to_ms() { awk -v s="$1" 'BEGIN { n=split(s,a,":"); if (n<4) { print "-"; exit } printf "%.3f", ((a[1]*60+a[2])*60+a[3])*1000 + a[4]/1000 }'; }
rt_p99_bucket() { # stat file -> upper bound (ms) of the bucket holding the 99th percentile of rtd 1
  awk -F';' 'NR==1 { for (i=1;i<=NF;i++) if ($i ~ /^ResponseTimeRepartition1_/) { c[++k]=i; l[k]=substr($i, 26) } next }
    { for (j=1;j<=k;j++) v[j]=$c[j] }
    END { tot=0; for (j=1;j<=k;j++) tot+=v[j]; if (!tot) { print "-"; exit }
          s=0; for (j=1;j<=k;j++) { s+=v[j]; if (s >= 0.99*tot) { print l[j]; exit } } }' "$1"
}
cpu_pct() { # GNU time file "%e %U %S %M" -> cpu% over its own wall time
  [ -s "$1" ] || { echo "-"; return; }
  awk 'END { if ($1 > 0) printf "%.0f", ($2+$3)/$1*100; else print "-" }' "$1"
}

# ---------- one sipp run ----------
# run_step RATE DIR [TRACE] ; sets STEP_* globals, appends a row to the summary
run_step() {
  local r=$1 dir=$2 trace=${3:-0}
  local m=$((r * DURATION))
  [ "$m" -gt 0 ] || m=1
  local limit=$((r * (HOLD_MS + 2000) / 1000 + 100))
  local tmo=$((2 * DURATION + HOLD_MS / 1000 + 30))
  local uas_proto uac_proto uas_pid uac_pid smp_pid rc t0 t1 s0 s1 u0 u1
  uas_proto=$(proto_of "$UAS_TRANSPORT"); uac_proto=$(proto_of "$UAC_TRANSPORT")
  mkdir -p "$dir"
  port_in_use "$uas_proto" "$UAS_PORT" && die "UAS port $UAS_PORT/$uas_proto is already in use by another process"
  port_in_use "$uac_proto" "$UAC_PORT" && die "UAC port $UAC_PORT/$uac_proto is already in use by another process"
  local uas_extra=() uac_extra=()
  if [ "$trace" = 1 ]; then
    uac_extra=(-trace_msg -message_file uac_msgs.log)
    [ "$r" -le 5 ] && uas_extra=(-trace_msg -message_file uas_msgs.log)
  fi
  wait_quiet
  # UAS ("trunk")
  ( cd "$dir" && exec timeout -k 5 $((tmo + 20)) "$TIME_BIN" -f '%e %U %S %M' -o uas_time.txt \
      sipp -sf "$SCEN/uas_rr.xml" -i "$UAS_HOST" -p "$UAS_PORT" -t "$UAS_TRANSPORT" -m "$((2 * m + 100))" \
      -buff_size "$SIPP_BUFF" \
      -nostdin -trace_stat -stf uas_stat.csv -fd 1 -trace_screen -screen_file uas_screen.txt \
      -trace_err -error_file uas_err.log -max_log_size 200000000 "${uas_extra[@]}" \
      > uas.out 2>&1 ) &
  uas_pid=$!; STARTED+=("$uas_pid")
  wait_bound "$uas_proto" "$UAS_PORT" || { echo "sip-cps: UAS did not bind" >&2; }

  # SUT sampling
  smp_pid=""
  if [ -n "$SUT_PIDS" ]; then
    sampler "$dir/sut_mem.txt" $((tmo + 10)) &
    smp_pid=$!; STARTED+=("$smp_pid")
  fi
  others_snapshot > "$dir/others0.txt"; u0=$(udp_errs)
  s0=$(sut_ticks); t0=$(date +%s.%N)

  # UAC
  ( cd "$dir" && exec timeout -k 5 "$tmo" "$TIME_BIN" -f '%e %U %S %M' -o uac_time.txt \
      sipp "$T_HOST:$T_PORT" -sf "$SCEN/uac_masking.xml" -s "$SERVICE" \
      -i "$UAC_HOST" -p "$UAC_PORT" -t "$UAC_TRANSPORT" \
      -inf "$CALLERS_FILE" \
      -r "$r" -rp 1000 -m "$m" -l "$limit" -d "$HOLD_MS" -buff_size "$SIPP_BUFF" \
      -nostdin -trace_stat -stf uac_stat.csv -fd 1 -trace_screen -screen_file uac_screen.txt \
      -trace_err -error_file uac_err.log -max_log_size 200000000 "${uac_extra[@]}" \
      > uac.out 2>&1 ) &
  uac_pid=$!; STARTED+=("$uac_pid")
  wait "$uac_pid"; rc=$?; forget_pid "$uac_pid"
  t1=$(date +%s.%N); s1=$(sut_ticks); u1=$(udp_errs)
  others_snapshot > "$dir/others1.txt"

  # The UAS may see more "calls" than the UAC made: when it is late, an ACK
  # that arrives while it still sends its 200 aborts that call on its side,
  # and the server's BYE for it, unanswered, is retransmitted into the next
  # step, whose UAS counts each as a call. With -m equal to the UAC's, that
  # UAS stopped early and the last INVITEs of its step timed out (408):
  # failures of the tool. So its -m has room and it is stopped here, 4 s
  # after the UAC ended (its last BYEs answered).
  stop_pid "$uas_pid" 4; forget_pid "$uas_pid"
  [ -n "$smp_pid" ] && { kill -TERM "$smp_pid" 2>/dev/null; wait "$smp_pid" 2>/dev/null; forget_pid "$smp_pid"; }
  if [ -n "$SUT_STATS_CMD" ]; then
    bash -c "$SUT_STATS_CMD" > "$dir/sut_stats.txt" 2>&1
  fi

  local st="$dir/uac_stat.csv" ok=0 fail=0 retr=0 ach=0 rt1="-" p99="-"
  if [ -s "$st" ]; then
    ok=$(stat_last "$st" 'SuccessfulCall(C)'); fail=$(stat_last "$st" 'FailedCall(C)')
    retr=$(stat_last "$st" 'Retransmissions(C)'); ach=$(achieved_rate "$st" "$m")
    rt1=$(to_ms "$(stat_last "$st" 'ResponseTime1(C)')"); p99=$(rt_p99_bucket "$st")
  fi
  local wall sutc rss pss mx
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b-a }')
  sutc="-"; rss="-"; pss="-"; mx="-"
  if [ -n "$SUT_PIDS" ]; then
    sutc=$(awk -v d=$((s1 - s0)) -v c="$CLK" -v w="$wall" 'BEGIN { if (w>0) printf "%.0f", d/c/w*100; else print "-" }')
    if [ -s "$dir/sut_mem.txt" ]; then
      read -r rss pss mx < <(awk '{ if ($2>r) r=$2; if ($3>p) p=$3; if ($4>x) x=$4 } END { printf "%.1f %.1f %.1f\n", r/1024, p/1024, x/1024 }' "$dir/sut_mem.txt")
    fi
  fi
  local uacc uasc other drops
  uacc=$(cpu_pct "$dir/uac_time.txt"); uasc=$(cpu_pct "$dir/uas_time.txt")
  other=$(awk -v c="$CLK" -v w="$wall" 'NR==FNR { a[$1]=$2; next } { d = $2 - a[$1]; if (d > 0) s += d }
      END { if (w > 0) printf "%.0f", s/c/w*100; else print "-" }' "$dir/others0.txt" "$dir/others1.txt")
  rm -f "$dir/others0.txt" "$dir/others1.txt"
  drops=$((u1 - u0))
  local clean=no
  if [ "$rc" = 0 ] && [ "${fail:-1}" = 0 ] && [ "${ok:-0}" = "$m" ] &&
     { [ "${RATE_CHECK:-1}" = 0 ] || awk -v a="$ach" -v r="$r" -v q="$MIN_RATIO" 'BEGIN { exit !(a >= q*r) }'; } &&
     { [ "$MAX_AVG_RT_MS" = 0 ] || [ "${RATE_CHECK:-1}" = 0 ] || awk -v t="$rt1" -v m="$MAX_AVG_RT_MS" 'BEGIN { exit !(t != "-" && t+0 <= m+0) }'; }; then
    clean=yes
  fi
  STEP_CLEAN=$clean
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$STEP_TAG" "$r" "$m" "$ok" "$fail" "$retr" "$ach" "$rc" "$wall" \
    "$uacc" "$uasc" "$sutc" "$other" "$drops" "$QUIET_WAITED" \
    "$rss" "$pss" "$mx" "$rt1/$p99" "$clean" | tee -a "$SUMMARY"
}

HEADER=$'tag\trate\tcalls\tok\tfailed\tretrans\tachieved_cps\tuac_rc\twall_s\tuac_cpu%\tuas_cpu%\tsut_cpu%\tother_cpu%\tudp_drops\tquiet_wait_s\tsut_rss_MB\tsut_pss_MB\tsut_maxproc_rss_MB\trt1_avg_ms/p99_bucket_ms\tclean'
SUMMARY="$OUT_DIR/summary.tsv"
echo "$HEADER" > "$SUMMARY"

{
  echo "sip-cps: target=$TARGET direct=$DIRECT service=$SERVICE uac=$UAC_ADDR/$UAC_TRANSPORT uas=$UAS_ADDR/$UAS_TRANSPORT"
  echo "sip-cps: rates=[$RATES] duration=${DURATION}s hold=${HOLD_MS}ms repeats=$REPEATS refine=$REFINE min_ratio=$MIN_RATIO rtt_rate=$RTT_RATE x$RTT_REPEATS sipp_buff=$SIPP_BUFF"
  echo "sip-cps: sipp $(sipp -v 2>/dev/null | awk '/SIPp v/ { print $2; exit }'); cores=$(nproc); load=$(cut -d' ' -f1-3 /proc/loadavg)"
  [ -n "$SUT_PIDS" ] && echo "sip-cps: sampling SUT pids: $(sut_tree | tr '\n' ' ')"
} | tee "$OUT_DIR/info.txt"

# ---------- 1. functional check ----------
if [ "$CHECK" = 1 ] && [ "$DIRECT" = 0 ]; then
  echo "== functional check (1 call, traced)"
  STEP_TAG=check
  saved_d=$DURATION; DURATION=1; RATE_CHECK=0
  run_step 1 "$OUT_DIR/check" 1 > /dev/null
  DURATION=$saved_d; RATE_CHECK=1
  cdir="$OUT_DIR/check"
  if [ "$STEP_CLEAN" != yes ]; then
    echo "sip-cps: the functional check call FAILED (see $cdir); aborting" >&2
    exit 1
  fi
  inv=$(awk '{ sub(/\r$/, "") } /message received/ { getline; getline; sub(/\r$/, ""); if ($1=="INVITE") { f=1 } } f && /^$/ { exit } f' "$cdir/uas_msgs.log")
  {
    echo "callee side received: $(echo "$inv" | head -1)"
    echo "  From:      $(echo "$inv" | grep -i -m1 '^From:' | cut -d: -f2- | sed 's/^ *//')"
    echo "  X-Binding: $(echo "$inv" | grep -i -m1 '^X-Binding:' | cut -d: -f2- | sed 's/^ *//')"
    echo "  Via count: $(echo "$inv" | grep -i -c '^Via:')   Record-Route: $(echo "$inv" | grep -i -c '^Record-Route:')"
    if grep -q "$CALLER" "$cdir/uas_msgs.log"; then echo "  caller number $CALLER visible to callee: YES"; else echo "  caller number $CALLER visible to callee: no"; fi
    if grep -q "$UAC_HOST:$UAC_PORT" "$cdir/uas_msgs.log"; then echo "  caller address $UAC_HOST:$UAC_PORT visible to callee: YES"; else echo "  caller address $UAC_HOST:$UAC_PORT visible to callee: no"; fi
    if grep -A12 'message received' "$cdir/uac_msgs.log" | grep -q "^From:.*$CALLER"; then echo "  caller's own From restored in replies: yes"; else echo "  caller's own From restored in replies: NO"; fi
  } | tee "$OUT_DIR/check.txt"
fi

# ---------- 2. ramp ----------
echo "== ramp"
echo "$HEADER"
MAXES=()
for ((rep = 1; rep <= REPEATS; rep++)); do
  last_clean=0; first_bad=0
  for r in $RATES; do
    STEP_TAG="ramp$rep"
    run_step "$r" "$OUT_DIR/ramp$rep/r$r"
    if [ "$STEP_CLEAN" = yes ]; then last_clean=$r; else first_bad=$r; break; fi
    sleep 2
  done
  lo=$last_clean; hi=$first_bad
  if [ "$hi" -gt 0 ]; then
    for ((i = 0; i < REFINE; i++)); do
      mid=$(( (lo + hi) / 2 / 50 * 50 ))
      [ "$mid" -le "$lo" ] || [ "$mid" -ge "$hi" ] && break
      sleep 2
      STEP_TAG="ramp$rep-refine"
      run_step "$mid" "$OUT_DIR/ramp$rep/r$mid"
      if [ "$STEP_CLEAN" = yes ]; then lo=$mid; else hi=$mid; fi
    done
  fi
  MAXES+=("$lo")
  [ "$hi" -gt 0 ] && hi_s=$hi || hi_s="none up to the top rate"
  echo "ramp $rep: max clean cps = $lo (lowest unclean: $hi_s)" | tee -a "$OUT_DIR/maxes.txt"
  sleep 2
done

# ---------- 3. response time ----------
RTT_LINES=()
if [ "$RTT_RATE" -gt 0 ] && [ "$RTT_REPEATS" -gt 0 ]; then
  echo "== response time at $RTT_RATE cps (INVITE->200 and BYE->200, from the UAC's message trace)"
  for ((k = 1; k <= RTT_REPEATS; k++)); do
    STEP_TAG="rtt$k"
    run_step "$RTT_RATE" "$OUT_DIR/rtt$k" 1 > /dev/null
    awk '
      { sub(/\r$/, "") }
      /^----------* [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9:.]*$/ { split($3, a, ":"); ts = a[1]*3600 + a[2]*60 + a[3]; st=1; next }
      st==1 && /message sent/     { dir="S"; st=2; next }
      st==1 && /message received/ { dir="R"; st=2; next }
      st==2 && NF==0 { next }
      st==2 { first=$0; st=3; next }
      st==3 && /^Call-ID:/ { cid=$2; next }
      st==3 && /^CSeq:/ { meth=$3
        if (dir=="S" && first ~ /^INVITE / && !(cid in ti)) ti[cid]=ts
        if (dir=="R" && first ~ /^SIP\/2.0 200/ && meth=="INVITE" && !(cid in t2)) t2[cid]=ts
        if (dir=="S" && first ~ /^BYE / && !(cid in tb)) tb[cid]=ts
        if (dir=="R" && first ~ /^SIP\/2.0 200/ && meth=="BYE" && !(cid in te)) te[cid]=ts
        st=0 }
      END { for (c in ti) if (c in t2) { d=t2[c]-ti[c]; if (d<0) d+=86400; printf "setup %.3f\n", d*1000 }
            for (c in tb) if (c in te) { d=te[c]-tb[c]; if (d<0) d+=86400; printf "bye %.3f\n", d*1000 } }' \
      "$OUT_DIR/rtt$k/uac_msgs.log" > "$OUT_DIR/rtt$k/latency_ms.txt"
    for kind in setup bye; do
      line=$(awk -v k="$kind" '$1==k { print $2 }' "$OUT_DIR/rtt$k/latency_ms.txt" | sort -g | awk -v k="$kind" -v run="$k" '
        function pct(q,  i) { i = int(NR * q) + 1; if (i > NR) i = NR; return a[i] }
        { a[NR]=$1; s+=$1 } END { if (!NR) { print k, "run" run, "n=0"; exit }
          printf "%s run%d n=%d mean=%.3f p50=%.3f p90=%.3f p99=%.3f max=%.3f\n", k, run, NR, s/NR,
            pct(0.50), pct(0.90), pct(0.99), a[NR] }')
      echo "$line" | tee -a "$OUT_DIR/rtt.txt"
    done
    rm -f "$OUT_DIR/rtt$k/uac_msgs.log"
    sleep 2
  done
fi

# ---------- summary ----------
med=$(printf '%s\n' "${MAXES[@]}" | median)
{
  echo "== result ($LABEL, target $TARGET)"
  echo "max clean cps per ramp: ${MAXES[*]}   median: $med"
  if [ -s "$OUT_DIR/rtt.txt" ]; then
    for kind in setup bye; do
      for f in p50 p99 mean; do
        v=$(awk -v k="$kind" -v f="$f" '$1==k { for (i=3;i<=NF;i++) { split($i,a,"="); if (a[1]==f) print a[2] } }' "$OUT_DIR/rtt.txt" | median)
        printf '%s %s median-of-runs: %s ms\n' "$kind" "$f" "$v"
      done
    done
  fi
  echo "MAX_CLEAN_CPS=$med"
} | tee "$OUT_DIR/result.txt"
