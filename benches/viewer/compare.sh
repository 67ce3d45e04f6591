#!/usr/bin/env bash
# benches/viewer/compare.sh — the viewer against FreeRDP's xfreerdp on the same xrdp server:
# stripped binary size, shared libraries, peak RSS, threads, and CPU while the remote screen is
# idle and while it animates, at 1920x1080. BENCHMARKS.md section 5 shows what it measured.
#
# Prerequisites (Debian 12; run as root, because the workload runs inside the xrdp session
# as its user through runuser):
#   - xrdp + xorgxrdp on 127.0.0.1:33890 with the test desktop (xclock, xeyes, xterm):
#     ../shared/peers/start-xrdp.sh (user rdpuser / Rdp-Passw0rd)
#   - apt-get install xvfb xdotool x11-utils x11-xserver-utils freerdp2-x11 iproute2 openssl
#   - cargo build --release -p async-rdp-viewer
#     (optionally cargo build --profile min-size -p async-rdp-viewer for the size table)
#
# Run (from the workspace root):
#   benches/viewer/compare.sh                          # sizes + 3 runs x {viewer, xfreerdp} x {idle, animate}
#   benches/viewer/compare.sh --runs 1 --secs 10       # a quick look
#   benches/viewer/compare.sh --clients viewer-gpu --workloads idle --runs 1   # the GL renderer, once
#   benches/viewer/compare.sh --sizes-only
# Options: --runs N (3) --secs S (30, the measured window) --settle S (10) --clients LIST
#   (viewer,xfreerdp; also viewer-gpu, xfreerdp-planar, xfreerdp-nocomp) --workloads LIST
#   (idle,animate) --no-sizes --sizes-only. Environment: VIEWER (target/release/viewer), VIEWER_MIN
#   (target/min-size/viewer), XFREERDP (xfreerdp), XRDP_PORT (33890), RDP_USER (rdpuser),
#   RDP_PASS (Rdp-Passw0rd), RDP_CERT (/etc/ssl/certs/ssl-cert-snakeoil.pem, for the pin),
#   XRDP_LOG (/tmp/rdp-peers/xrdp/xrdp.log, read to report the codec xrdp picked),
#   OUT (target/bench-results/viewer).
#
# Each run: a fresh Xvfb (2000x1200x24, no window manager, no GPU) with the local pointer parked
# in its corner, outside the 1920x1080 window; one client connects to xrdp at 1920x1080; the
# session's xclock and xeyes are paused (SIGSTOP, as the session user) so that the remote screen
# is static; for "animate" a loop in the session repaints the root window (1920x1080, minus the
# three small windows) black / white alternately every 50 ms with xsetroot. After --settle
# seconds, --secs seconds are measured from /proc: the client's CPU (utime+stime of all its
# threads, % of one core), its voluntary context switches summed over its threads (≈ wakeups:
# a client that polls shows hundreds per second), its threads (max of 1 s samples), bytes
# received on its RDP socket (ss), the local Xvfb's CPU (it puts the client's pictures on the
# screen), the server's CPU (the connection's xrdp process + the session's Xorg), the repaints
# the loop made, and the shared objects mapped in the client; VmHWM (peak RSS) at the end. The
# client is then closed with SIGTERM. Only one client runs at a time.
#
# Output: one line per run (TSV) in $OUT/runs.tsv, the logs of every run in $OUT/, and markdown
# tables (median, min–max of the runs) on stdout and in $OUT/summary.md.
#
# It talks to 127.0.0.1 only. On exit (also ^C) it kills what it started, resumes the session's
# paused xclock/xeyes and gives the root window its colour back. A run whose client drops out
# is repeated (up to 3 attempts).
#
# A shared server: xrdp gives one session per user (Policy=Default), and a second client logging
# in as the same user takes the session over, disconnecting ours. Where others test against the
# same xrdp, measure as a user of your own with the same desktop, e.g.
#   useradd -m rdpbench && echo rdpbench:Rdp-Passw0rd | chpasswd
#   cp ~rdpuser/startwm.sh ~rdpbench/ && chown rdpbench: ~rdpbench/startwm.sh
#   RDP_USER=rdpbench benches/viewer/compare.sh
# The column "others" counts other RDP connections to the server seen during the window (they
# load the same 2 cores); the summary says how many runs had any.
set -uo pipefail

RUNS=3 SECS=30 SETTLE=10 CLIENTS=viewer,xfreerdp WORKLOADS=idle,animate SIZES=1 MEASURE=1
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --secs) SECS=$2; shift 2 ;;
        --settle) SETTLE=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        --workloads) WORKLOADS=$2; shift 2 ;;
        --no-sizes) SIZES=0; shift ;;
        --sizes-only) MEASURE=0; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

HOST=127.0.0.1
PORT=${XRDP_PORT:-33890}
RUSER=${RDP_USER:-rdpuser}
RPASS=${RDP_PASS:-Rdp-Passw0rd}
CERT=${RDP_CERT:-/etc/ssl/certs/ssl-cert-snakeoil.pem}
VIEWER=${VIEWER:-target/release/viewer}
VIEWER_MIN=${VIEWER_MIN:-target/min-size/viewer}
XFREERDP=${XFREERDP:-$(command -v xfreerdp || echo xfreerdp)}
XRDP_LOG=${XRDP_LOG:-/tmp/rdp-peers/xrdp/xrdp.log}
OUT=${OUT:-target/bench-results/viewer}
W=1920 H=1080
HZ=$(getconf CLK_TCK)
mkdir -p "$OUT"

log() { printf '%s\n' "$*" >&2; }
die() { log "compare.sh: $*"; exit 1; }

# ---------------------------------------------------------------- clean-up (trap)
XVFB_PID= CLIENT_PID= ANIM_PID= SESSION_DISPLAY=
PAUSED=()
in_session() { # run a command in the xrdp session as its user
    runuser -u "$RUSER" -- env DISPLAY="$SESSION_DISPLAY" XAUTHORITY="$(getent passwd "$RUSER" | cut -d: -f6)/.Xauthority" sh -c "$1"
}
resume_session() {
    if [ ${#PAUSED[@]} -gt 0 ]; then kill -CONT "${PAUSED[@]}" 2>/dev/null; PAUSED=(); fi
    if [ -n "$ANIM_PID" ]; then
        kill -- "-$ANIM_PID" 2>/dev/null || kill "$ANIM_PID" 2>/dev/null
        for _ in $(seq 20); do kill -0 "$ANIM_PID" 2>/dev/null || break; sleep 0.1; done
        ANIM_PID=
        [ -n "$SESSION_DISPLAY" ] && in_session "xsetroot -solid '#2e5e8e'" 2>/dev/null
    fi
}
stop_client() {
    if [ -n "$CLIENT_PID" ] && kill -0 "$CLIENT_PID" 2>/dev/null; then
        kill -TERM "$CLIENT_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$CLIENT_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$CLIENT_PID" 2>/dev/null && { log "client $CLIENT_PID ignored SIGTERM for 5 s: SIGKILL"; kill -KILL "$CLIENT_PID"; }
    fi
    [ -n "$CLIENT_PID" ] && wait "$CLIENT_PID" 2>/dev/null
    CLIENT_PID=
}
stop_xvfb() {
    if [ -n "$XVFB_PID" ]; then kill "$XVFB_PID" 2>/dev/null; wait "$XVFB_PID" 2>/dev/null; XVFB_PID=; fi
}
cleanup() { resume_session; stop_client; stop_xvfb; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
minmax() { sort -g | awk 'NR==1{lo=$1} {hi=$1} END {if (NR) printf "%s–%s", lo, hi}'; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b/1048576}'; }
mb() { awk -v b="$1" 'BEGIN {printf "%.2f", b/1e6}'; }
now() { date +%s.%N; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; } # all threads
ctxt() { # voluntary nonvoluntary, summed over the process's threads
    cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt/{v+=$2} /^nonvoluntary_ctxt/{n+=$2} END{print v+0, n+0}'
}
threads() { ls "/proc/$1/task" 2>/dev/null | wc -l; }
status_kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status" 2>/dev/null; }

# The client's RDP connection: "local-port" of its socket to $HOST:$PORT.
client_port() {
    ss -tnpH state established "( dport = :$PORT )" 2>/dev/null |
        awk -v p="pid=$1," 'index($0, p) {n=split($3, a, ":"); print a[n]; exit}'
}
bytes_received() { # of the client's socket
    ss -tinH state established "( sport = :$1 and dport = :$PORT )" 2>/dev/null |
        grep -o 'bytes_received:[0-9]*' | head -1 | cut -d: -f2
}
other_clients() { # connections to xrdp other than ours
    ss -tnH state established "( dport = :$PORT )" 2>/dev/null | awk -v p="$1" '{n=split($3, a, ":"); if (a[n] != p) c++} END {print c+0}'
}
server_pids() { # the xrdp process serving our connection, and the session's Xorg
    ss -tnpH state established "( sport = :$PORT and dport = :$1 )" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | head -1
    pgrep -u "$RUSER" -x Xorg | while read -r p; do
        tr '\0' ' ' <"/proc/$p/cmdline" | grep -q " $SESSION_DISPLAY " && echo "$p"
    done
}
session_display() { # the display of the newest Xorg of $RUSER
    local p; p=$(pgrep -n -u "$RUSER" -x Xorg) || return 1
    tr '\0' '\n' <"/proc/$p/cmdline" | grep -m1 '^:[0-9]*$'
}
session_pids() { # processes named $1 of $RUSER on $SESSION_DISPLAY
    local p
    for p in $(pgrep -u "$RUSER" -x "$1"); do
        tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "DISPLAY=$SESSION_DISPLAY\(\.0\)\{0,1\}" && echo "$p"
    done
}
free_display() {
    local n
    for n in $(seq 91 120); do
        [ -e "/tmp/.X$n-lock" ] || [ -e "/tmp/.X11-unix/X$n" ] || { echo "$n"; return; }
    done
    die "no free X display number in :91-:120"
}
pin() { openssl x509 -in "$CERT" -noout -fingerprint -sha256 | cut -d= -f2; }

# ---------------------------------------------------------------- sizes
lib_closure() { # resolved shared libraries of $1, one per line: path size
    ldd "$1" | awk '$2=="=>" && $3 ~ /^\// {print $3}' | while read -r l; do
        r=$(readlink -f "$l"); echo "$(basename "$l") $(stat -c %s "$r")"
    done | sort -u
}
BASE_RE='^(libc|libm|libpthread|libdl|librt|libgcc_s|ld-linux[^ ]*)\.so'
sizes() {
    local tmp; tmp=$(mktemp -d)
    echo "## Binaries and shared libraries"
    echo
    echo "| binary | file | stripped |"
    echo "|---|---:|---:|"
    if [ -x "$VIEWER" ]; then
        cp "$VIEWER" "$tmp/v" && strip "$tmp/v"
        echo "| viewer (release) | $(mb "$(stat -c %s "$VIEWER")") MB | $(mb "$(stat -c %s "$tmp/v")") MB |"
    fi
    if [ -x "$VIEWER_MIN" ]; then
        cp "$VIEWER_MIN" "$tmp/vm" && strip "$tmp/vm"
        echo "| viewer (min-size) | $(mb "$(stat -c %s "$VIEWER_MIN")") MB | $(mb "$(stat -c %s "$tmp/vm")") MB |"
    fi
    local xf; xf=$(command -v "$XFREERDP")
    cp "$xf" "$tmp/x" && strip "$tmp/x" 2>/dev/null
    local xv; xv=$(dpkg-query -W -f '${Version}' freerdp2-x11 2>/dev/null || echo '?')
    echo "| xfreerdp (freerdp2-x11 $xv) | $(mb "$(stat -c %s "$xf")") MB | $(mb "$(stat -c %s "$tmp/x")") MB |"
    echo
    lib_closure "$VIEWER" >"$tmp/lv"; lib_closure "$xf" >"$tmp/lx"
    grep -Ev "$BASE_RE" "$tmp/lv" >"$tmp/lv2"; grep -Ev "$BASE_RE" "$tmp/lx" >"$tmp/lx2"
    sum() { awk '{s+=$2} END {printf "%.1f MB (%d libraries)", s/1e6, NR}' "$1"; }
    comm -12 "$tmp/lv2" "$tmp/lx2" >"$tmp/both"; comm -23 "$tmp/lv2" "$tmp/lx2" >"$tmp/vonly"; comm -13 "$tmp/lv2" "$tmp/lx2" >"$tmp/xonly"
    echo "Shared libraries (\`ldd\`, whole closure, without libc/libm/libpthread/libgcc_s/ld.so):"
    echo
    echo "| | viewer | xfreerdp |"
    echo "|---|---:|---:|"
    echo "| all | $(sum "$tmp/lv2") | $(sum "$tmp/lx2") |"
    echo "| needed by both | $(sum "$tmp/both") | same |"
    echo "| only this client | $(sum "$tmp/vonly") | $(sum "$tmp/xonly") |"
    echo
    own() { grep -E "$1" "$2" | awk '{s+=$2; l=l (l?", ":"") $1 " " sprintf("%.2f", $2/1e6) " MB"} END {printf "%s = %.2f MB", l, s/1e6}'; }
    echo "The clients' own libraries: viewer $(own '^libSDL2' "$tmp/lv2"); xfreerdp $(own '^lib(freerdp|winpr)' "$tmp/lx2")."
    echo
    echo "Largest libraries only the viewer needs: $(sort -k2 -rn "$tmp/vonly" | head -6 | awk '{printf "%s%s %.1f MB", (NR>1?", ":""), $1, $2/1e6}')"
    echo
    echo "Largest libraries only xfreerdp needs: $(sort -k2 -rn "$tmp/xonly" | head -8 | awk '{printf "%s%s %.1f MB", (NR>1?", ":""), $1, $2/1e6}')"
    echo
    rm -rf "$tmp"
}

# ---------------------------------------------------------------- one run
# run CLIENT WORKLOAD IDX -> appends one TSV line to $OUT/runs.tsv
TSV=$OUT/runs.tsv
run() {
    local client=$1 workload=$2 idx=$3 tag="$1-$2-$3"
    local disp; disp=$(free_display)
    Xvfb ":$disp" -screen 0 2000x1200x24 -nolisten tcp >"$OUT/$tag.xvfb.log" 2>&1 &
    XVFB_PID=$!
    for _ in $(seq 50); do DISPLAY=":$disp" xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done
    DISPLAY=":$disp" xdotool mousemove 1999 1199 # park the pointer outside the window

    local t0; t0=$(now)
    case "$client" in
        viewer|viewer-gpu)
            local r=software; [ "$client" = viewer-gpu ] && r=gpu
            DISPLAY=":$disp" "$VIEWER" "rdp://$RUSER:$RPASS@$HOST:$PORT" --pin "$(pin)" --security tls \
                --size "${W}x$H" --renderer "$r" >"$OUT/$tag.out" 2>"$OUT/$tag.err" &
            ;;
        xfreerdp|xfreerdp-planar|xfreerdp-nocomp)
            # Same features as the viewer: TLS, clipboard, RemoteFX (the viewer offers it, and
            # xrdp then uses it), no sound, no drives; software GDI. Variants: -planar without
            # /rfx (xfreerdp's default: planar bitmaps); -nocomp without bulk compression (the
            # viewer offers none, so xrdp sends it more bytes).
            local extra=(/rfx)
            [ "$client" = xfreerdp-planar ] && extra=()
            [ "$client" = xfreerdp-nocomp ] && extra=(/rfx -compression)
            DISPLAY=":$disp" "$XFREERDP" "/v:$HOST:$PORT" "/u:$RUSER" "/p:$RPASS" /cert:ignore /sec:tls \
                "/size:${W}x$H" /bpp:32 +clipboard /gdi:sw "${extra[@]}" /audio-mode:2 -drives \
                /log-level:WARN >"$OUT/$tag.out" 2>"$OUT/$tag.err" &
            ;;
        *) die "unknown client $client" ;;
    esac
    CLIENT_PID=$!

    # Up when: the client has its connection, the session's X server is at 1920x1080 and the
    # viewer said "connected" (xfreerdp says nothing: 2 s more).
    local port= ok=0
    for _ in $(seq 300); do
        kill -0 "$CLIENT_PID" 2>/dev/null || break
        [ -n "$port" ] || port=$(client_port "$CLIENT_PID")
        if [ -n "$port" ] && SESSION_DISPLAY=$(session_display) &&
            in_session "xdpyinfo 2>/dev/null" | grep -q "dimensions: *${W}x$H " &&
            { [ "${client#viewer}" = "$client" ] || grep -q '^connected' "$OUT/$tag.out"; } &&
            [ -n "$(session_pids xclock)" ]; then ok=1; break; fi
        sleep 0.1
    done
    local t_up; t_up=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b-a}')
    if [ $ok = 0 ]; then
        log "$tag: did not come up (see $OUT/$tag.err)"; stop_client; stop_xvfb; return 1
    fi
    [ "${client#xfreerdp}" != "$client" ] && sleep 2

    # Static remote screen: pause the clock and the eyes.
    PAUSED=($(session_pids xclock) $(session_pids xeyes))
    [ ${#PAUSED[@]} -gt 0 ] && kill -STOP "${PAUSED[@]}"
    local ticks; ticks=$(mktemp /tmp/compare-ticks.XXXXXX); chown "$RUSER" "$ticks"
    if [ "$workload" = animate ]; then
        setsid runuser -u "$RUSER" -- env DISPLAY="$SESSION_DISPLAY" \
            XAUTHORITY="$(getent passwd "$RUSER" | cut -d: -f6)/.Xauthority" sh -c \
            "while :; do xsetroot -solid black; sleep 0.05; xsetroot -solid white; echo >>'$ticks'; sleep 0.05; done" &
        ANIM_PID=$!
        disown "$ANIM_PID" # no "Terminated" from bash when it is stopped
    fi
    sleep "$SETTLE"

    # The measured window.
    local srv; srv=$(server_pids "$port" | tr '\n' ' ')
    local c0 w0 k0 b0 s0 n0 x0 x1 tmax=0 others=0
    c0=$(cpu_ticks "$CLIENT_PID"); k0=$(ctxt "$CLIENT_PID"); b0=$(bytes_received "$port"); x0=$(cpu_ticks "$XVFB_PID")
    s0=0; for p in $srv; do s0=$((s0 + $(cpu_ticks "$p"))); done
    n0=$(wc -l <"$ticks"); w0=$(now)
    local end; end=$(awk -v a="$w0" -v s="$SECS" 'BEGIN {printf "%.3f", a+s}')
    while awk -v e="$end" -v n="$(now)" 'BEGIN {exit !(n < e)}'; do
        kill -0 "$CLIENT_PID" 2>/dev/null || break
        local t; t=$(threads "$CLIENT_PID"); [ "$t" -gt "$tmax" ] && tmax=$t
        local o; o=$(other_clients "$port"); [ "$o" -gt "$others" ] && others=$o
        sleep 1
    done
    local c1 w1 k1 b1 s1=0 n1
    c1=$(cpu_ticks "$CLIENT_PID"); k1=$(ctxt "$CLIENT_PID"); b1=$(bytes_received "$port"); x1=$(cpu_ticks "$XVFB_PID")
    for p in $srv; do s1=$((s1 + $(cpu_ticks "$p"))); done
    n1=$(wc -l <"$ticks"); w1=$(now)
    local hwm rss alive=1
    kill -0 "$CLIENT_PID" 2>/dev/null || alive=0
    hwm=$(status_kb "$CLIENT_PID" VmHWM); rss=$(status_kb "$CLIENT_PID" VmRSS)
    local libs # shared objects mapped in the client: count and MB of their files
    libs=$(awk '$6 ~ /\.so/ {print $6}' "/proc/$CLIENT_PID/maps" 2>/dev/null | sort -u |
        while read -r f; do stat -L -c %s "$f" 2>/dev/null; done | awk '{s+=$1} END {printf "%d\t%.1f", NR, s/1e6}')
    resume_session # stops the loop first: it would write the file again
    rm -f "$ticks"
    stop_client
    stop_xvfb
    [ $alive = 0 ] && { log "$tag: the client exited during the measurement (see $OUT/$tag.err)"; return 1; }

    local dt; dt=$(awk -v a="$w0" -v b="$w1" 'BEGIN {print b-a}')
    set -- $k0; local v0=$1 nv0=$2; set -- $k1; local v1=$1 nv1=$2
    local line
    line=$(awk -v OFS='\t' -v cl="$client" -v wl="$workload" -v i="$idx" -v dt="$dt" -v hz="$HZ" \
        -v c="$((c1 - c0))" -v v="$((v1 - v0))" -v nv="$((nv1 - nv0))" -v b="$(( ${b1:-0} - ${b0:-0} ))" \
        -v s="$((s1 - s0))" -v n="$((n1 - n0))" -v hwm="$hwm" -v rss="$rss" -v th="$tmax" \
        -v up="$t_up" -v d="$others" -v libs="$libs" -v x="$((x1 - x0))" 'BEGIN {
            printf "%s\t%s\t%s\t%.2f\t%.1f\t%.1f\t%.2f\t%.1f\t%.1f\t%.1f\t%d\t%.1f\t%s\t%d\t%s\t%.2f\n",
                cl, wl, i, 100*c/hz/dt, v/dt, nv/dt, b/dt/1e6, 100*s/hz/dt, n/dt*2, hwm/1024, th, rss/1024, up, d, libs, 100*x/hz/dt
        }')
    printf '%s\n' "$line" >>"$TSV"
    log "$line"
}

# ---------------------------------------------------------------- main
{
    echo "# The viewer against xfreerdp ($(date -u +%F), $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    if [ $SIZES = 1 ]; then sizes; fi
} | tee "$OUT/summary.md"

[ $MEASURE = 1 ] || exit 0
[ "$(id -u)" = 0 ] || die "run as root (the workload runs in the xrdp session through runuser)"
[ -x "$VIEWER" ] || die "$VIEWER missing: cargo build --release -p async-rdp-viewer"
ss -tlnH "( sport = :$PORT )" | grep -q "$HOST:$PORT" || die "nothing listens on $HOST:$PORT (start xrdp: ../shared/peers/start-xrdp.sh)"

printf 'client\tworkload\trun\tcpu_pct\tvol_cs_per_s\tinvol_cs_per_s\tMB_per_s_in\tserver_cpu_pct\trepaints_per_s\tpeak_rss_MiB\tthreads\trss_end_MiB\tconnect_s\tothers\tmapped_libs\tmapped_libs_MB\tlocal_X_cpu_pct\n' >"$TSV"
IFS=, read -ra CL <<<"$CLIENTS"; IFS=, read -ra WL <<<"$WORKLOADS"
for i in $(seq "$RUNS"); do         # interleaved: run i of every client and workload, then i+1
    for wl in "${WL[@]}"; do
        for cl in "${CL[@]}"; do
            for attempt in 1 2 3; do
                run "$cl" "$wl" "$i" && break
                log "$cl $wl run $i failed (attempt $attempt)"; sleep 3
            done
        done
    done
done

# A codec check: what xrdp said it picked for the last connections.
[ -r "$XRDP_LOG" ] && grep -iE 'xrdp_caps_process_codecs' "$XRDP_LOG" | tail -2 | sed 's/^/xrdp: /' >&2

{
    echo "## CPU, wakeups and memory at ${W}x$H (median of the runs, min–max)"
    echo
    echo "| client | workload | runs | CPU % of one core | wakeups/s (voluntary cs) | MB/s received | server CPU % (xrdp + Xorg) | repaints/s | client CPU ms per repaint | local X server (Xvfb) CPU % | peak RSS MiB | threads | mapped .so (MB) |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for wl in "${WL[@]}"; do for cl in "${CL[@]}"; do
        rows=$(awk -F'\t' -v c="$cl" -v w="$wl" 'NR>1 && $1==c && $2==w' "$TSV")
        [ -n "$rows" ] || continue
        col() { printf '%s\n' "$rows" | cut -f"$1"; }
        cell() { printf '%s (%s)' "$(col "$1" | median)" "$(col "$1" | minmax)"; }
        echo "| $cl | $wl | $(printf '%s\n' "$rows" | wc -l) | $(cell 4) | $(cell 5) | $(cell 7) | $(cell 8) | $(col 9 | median) | $(printf '%s\n' "$rows" | awk -F'\t' '$9>0 {printf "%.1f\n", $4*10/$9}' | median) | $(cell 17) | $(cell 10) | $(cell 11) | $(col 15 | median) ($(col 16 | median)) |"
    done; done
    echo
    echo "Runs: $TSV ($(awk -F'\t' 'NR>1 && $14>0' "$TSV" | wc -l) of $(($(wc -l <"$TSV") - 1)) with other RDP clients on the server). Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee -a "$OUT/summary.md"
