#!/usr/bin/env bash
# licensegate benchmarks: the gate's throughput against the same routes
# without it, and activation throughput on each store.
#
#   bench/run.sh gate        # the gate vs plain reverse_proxy (default)
#   bench/run.sh activate    # activations/s of distinct keys, each store
#   bench/run.sh durability  # kill -9 mid activation load, on each store
#   bench/run.sh all         # gate, then activate
#
# Requires: go, wrk (4.x, with LuaJIT), redis-server and redis-cli, curl, awk. Optional:
# taskset (util-linux) to pin the gateway apart from the load generator and
# the upstream; without it (or on one CPU) nothing is pinned and the table
# says so.
#
# It builds ./cmd/licensegate once (or uses LICENSEGATE_BIN) and uses that
# binary for every process: the gateway under test, the upstream (a Caddy
# `respond` site, in a process of its own so its CPU is not counted as the
# gateway's) and nothing else. Every case runs in each round, in A B ... B A
# order (reversed every other round), so a drift of the machine's load
# touches all cases alike; the table shows medians over the rounds and the
# spread (min-max; for the paired ratios the interquartile range).
#
# Gate mode's default is many short rounds (31 of 1 s, each case warmed up
# once before the first): a shared 2-core VM's speed moves by 10-20 % from
# one second to the next, so two 10 s runs a minute apart differ by more
# than the 2-5 % asked about, while the median of 31 paired 1 s ratios
# does not. A control case, a second no-gate process on the first store,
# shows what the method itself reads between two identical processes.
#
# Settings (environment):
#   ROUNDS=31 DURATION=1s WARMUP=0 FIRST_WARMUP=3s CONNS=32 THREADS=2     gate mode
#                                    (WARMUP: before every sample; 0: none)
#   ACT_ROUNDS=5 ACT_DURATION=10s ACT_CONNS=16 ACT_THREADS=2 KEYS=100000
#   STORES="embedded redis"          stores to run the gated / activation cases on
#   SERVER_CPUS=0 CLIENT_CPUS=1      taskset CPU lists: gateway | wrk, upstream, redis
#   LICENSEGATE_BIN=path             skip the build, use this binary
#   BINARIES="before=/a after=/b"    activate mode: compare binaries, interleaved
#   KEEP=1                           keep the work directory (configs, logs, raw results)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
MODE=${1:-gate}

ROUNDS=${ROUNDS:-31}
DURATION=${DURATION:-1s}
WARMUP=${WARMUP:-0}
FIRST_WARMUP=${FIRST_WARMUP:-3s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
ACT_ROUNDS=${ACT_ROUNDS:-5}
ACT_DURATION=${ACT_DURATION:-10s}
ACT_CONNS=${ACT_CONNS:-16}
ACT_THREADS=${ACT_THREADS:-2}
KEYS=${KEYS:-100000}
STORES=${STORES:-embedded redis}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}
SECRET=bench-secret-0123456789abcdefghijklmnopqrstuvwxyz
CLK_TCK=$(getconf CLK_TCK)

for tool in wrk redis-server redis-cli curl awk; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "bench: $tool is required" >&2
		exit 1
	fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/licensegate-bench.XXXXXX")
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [ "${KEEP:-}" = 1 ]; then
		echo "bench: work directory kept: $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

# Pinning: the gateway on SERVER_CPUS, everything else on CLIENT_CPUS.
PINNING="none (taskset missing or one CPU)"
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
	PINNING="gateway on CPU $SERVER_CPUS; wrk, upstream and redis-server on CPU $CLIENT_CPUS"
fi
PIN_SERVER=()
PIN_CLIENT=()
if [ "$PINNING" != "none (taskset missing or one CPU)" ]; then
	PIN_SERVER=(taskset -c "$SERVER_CPUS")
	PIN_CLIENT=(taskset -c "$CLIENT_CPUS")
fi
# pin server|client cmd...: runs cmd pinned (taskset execs it: same pid).
pin() {
	if [ "$1" = server ]; then
		shift
		"${PIN_SERVER[@]}" "$@"
	else
		shift
		"${PIN_CLIENT[@]}" "$@"
	fi
}

if [ -n "${LICENSEGATE_BIN:-}" ]; then
	BIN=$LICENSEGATE_BIN
else
	BIN="$WORK/licensegate"
	echo "bench: building licensegate" >&2
	(cd "$ROOT" && go build -o "$BIN" ./cmd/licensegate)
fi

# free_port sets PORT to a loopback port nothing listens on, nor handed out
# before (not in a subshell: $(...) would repeat RANDOM's sequence).
USED_PORTS=" "
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		case "$USED_PORTS" in *" $p "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			USED_PORTS="$USED_PORTS$p "
			PORT=$p
			return
		fi
	done
}

# keys.csv: GATE-* for the gate's tokens, BENCH-* for activation load.
make_keys() {
	awk -v n="$KEYS" 'BEGIN {
		print "key,product,type,licensed_to,expires_at,support_until,activations,status"
		for (i = 0; i < 16; i++) printf "GATE-%04d,converter-pro,regular,Bench,,2099-01-01T00:00:00Z,,active\n", i
		for (i = 0; i < n; i++) printf "BENCH-%08d,converter-pro,regular,Bench,,2099-01-01T00:00:00Z,,active\n", i
	}' >"$WORK/keys.csv"
}

# start_redis dir: a redis-server with AOF, fsync every second; sets REDIS.
start_redis() {
	local dir=$1 port
	free_port
			port=$PORT
	mkdir -p "$dir"
	"${PIN_CLIENT[@]}" redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" \
		--appendonly yes --appendfsync everysec --logfile "$dir/redis.log" &
	PIDS+=($!)
	REDIS="127.0.0.1:$port"
	REDIS_PID=$!
	for _ in $(seq 100); do
		redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && return
		sleep 0.05
	done
	echo "bench: redis-server did not start" >&2
	exit 1
}

# start dir pin-class [bin]: runs bin (default: the built one) on
# dir/Caddyfile, pinned by class; sets STARTED_PID.
start() {
	local dir=$1 class=$2 bin=${3:-$BIN} pinned=("${PIN_CLIENT[@]}")
	[ "$class" = server ] && pinned=("${PIN_SERVER[@]}")
	XDG_DATA_HOME="$dir/data" XDG_CONFIG_HOME="$dir/config" HOME="$dir" LG_BENCH_SECRET="$SECRET" \
		"${pinned[@]}" "$bin" run --config "$dir/Caddyfile" --adapter caddyfile </dev/null >"$dir/log" 2>&1 &
	STARTED_PID=$!
	PIDS+=("$STARTED_PID")
}

# stop pid: SIGINT, then wait for it.
stop() {
	kill -INT "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# await url pid dir: until url answers (any status).
await() {
	for _ in $(seq 600); do
		if ! kill -0 "$2" 2>/dev/null; then
			echo "bench: a licensegate process exited at start:" >&2
			cat "$3/log" >&2
			exit 1
		fi
		curl -s -o /dev/null "$1" && return
		sleep 0.05
	done
	echo "bench: $1 did not answer" >&2
	exit 1
}

# app_block store redis prefix: the licensegate global options.
app_block() {
	local storage="storage embedded $2/lg.db"
	if [ "$1" = redis ]; then
		storage="storage redis {
			address redis://$REDIS/0
			key_prefix $3
		}"
	fi
	cat <<EOF
	licensegate {
		$storage
		secret {env.LG_BENCH_SECRET}
		issuer http://bench.test
		source static {
			file $WORK/keys.csv
		}
		product converter-pro {
			sources static
			activations 1
		}
	}
EOF
}

# gated_caddyfile store dir port admin gate-block proxy-block: the routes of
# Caddyfile.example; gate-block empty gives "the same routes, no gate".
gated_caddyfile() {
	cat <<EOF
{
	admin 127.0.0.1:$4
	persist_config off
$(app_block "$1" "$2" "lgbench-$(basename "$2"):")
}

http://127.0.0.1:$3 {
	bind 127.0.0.1
	handle /v1/licenses/* {
		license_exchange {
			rate_limit 100000000/m
			failed_limit 100000000/m
		}
	}
	handle /convert* {
$5
		reverse_proxy 127.0.0.1:$UPSTREAM_PORT {
$6
		}
	}
	handle {
		respond "not found" 404
	}
}
EOF
}

# activate_once port key: prints the activation's JSON answer.
activate_once() {
	curl -s -X POST "http://127.0.0.1:$1/v1/licenses/activate" -d "license_key=$2" -d domain=acme.com
}

json_field() { # json name: a string or boolean field's value (flat look-up)
	printf '%s' "$1" | sed -n "s/.*\"$2\":\"\{0,1\}\([^\",}]*\).*/\1/p" | head -1
}

cpu_ticks() { # pid: utime+stime in clock ticks
	local stat
	stat=$(cat "/proc/$1/stat")
	stat=${stat##*) }
	# shellcheck disable=SC2086
	set -- $stat
	echo $((${12} + ${13}))
}

result_field() { # line name
	printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# table file default-store [base]: prints the table of gate.tsv-style rows (case
# round rps p50_us p99_us cpu_us errors), case order kept. A case named
# "... (<store>)" is compared with the no-gate cases of its own store;
# others (plain reverse_proxy) with those of default-store. Ratios are
# paired: each round's req/s over the baseline's in the same round, then
# the median (and min-max) of those, so a drift of the machine's speed
# between rounds cancels out. With base, every case is compared with that
# one case instead (the activation table).
table() {
	awk -F'\t' -v dflt="$2" -v fixed="${3:-}" '
	function sort(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	}
	function med(a, n) { sort(a, n); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
	function storeof(c,   m) { if (match(c, /\([a-z]+\)$/)) return substr(c, RSTART + 1, RLENGTH - 2); return dflt }
	# quart(a, n, q): the q-th quartile of sorted a (nearest rank).
	function quart(a, n, q,   r) { r = int((q * n + 3) / 4); if (r < 1) r = 1; if (r > n) r = n; return a[r] }
	# paired c base: "median (q1-q3)" of the per-round ratios, "-" without
	# base. The interquartile range, not min-max: with 31 short rounds the
	# extremes are the worst seconds of the machine, not of the cases.
	function paired(c, b,   k, a, m) {
		if (!(b in n) || c == b) return "-"
		for (k = 1; k <= n[c]; k++) a[k] = rps[c, k] / rps[b, k]
		m = med(a, n[c])
		return sprintf("%.3f (%.2f-%.2f)", m, quart(a, n[c], 1), quart(a, n[c], 3))
	}
	{
		c = $1
		if (!(c in n)) { order[++cases] = c; n[c] = 0 }
		k = ++n[c]
		rps[c, k] = $3; p50[c, k] = $4; p99[c, k] = $5; cpu[c, k] = $6; err[c] += $7
	}
	END {
		for (i = 1; i <= cases; i++) {
			c = order[i]
			for (k = 1; k <= n[c]; k++) { a[k] = rps[c, k] + 0 }
			m = med(a, n[c]); lo[c] = a[1]; hi[c] = a[n[c]]; mrps[c] = m
			for (k = 1; k <= n[c]; k++) { a[k] = p50[c, k] + 0 }; mp50[c] = med(a, n[c])
			for (k = 1; k <= n[c]; k++) { a[k] = p99[c, k] + 0 }; mp99[c] = med(a, n[c]); p99lo[c] = a[1]; p99hi[c] = a[n[c]]
			for (k = 1; k <= n[c]; k++) { a[k] = cpu[c, k] + 0 }; mcpu[c] = med(a, n[c])
		}
		if (fixed != "") {
			printf "| case | req/s median (min-max) | p50 ms | p99 ms median (min-max) | server CPU us/req | x %s | p99 vs %s | errors |\n", fixed, fixed
			printf "|---|---:|---:|---:|---:|---:|---:|---:|\n"
		} else {
			printf "| case | req/s median (min-max) | p50 ms | p99 ms median (min-max) | server CPU us/req | x no gate, same store, median (IQR) | x header_up, same store, median (IQR) | p99 vs no gate | errors |\n"
			printf "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
		}
		for (i = 1; i <= cases; i++) {
			c = order[i]; st = storeof(c)
			base = "same routes, no gate (" st ")"; second = "same routes + header_up, no gate (" st ")"
			if (fixed != "") { base = fixed; second = "" }
			dp99 = (base in mp99 && c != base) ? sprintf("%+.1f%%", (mp99[c] / mp99[base] - 1) * 100) : "-"
			if (fixed != "") {
				printf "| %s | %.0f (%.0f-%.0f) | %.2f | %.2f (%.2f-%.2f) | %.1f | %s | %s | %d |\n", c, mrps[c], lo[c], hi[c],
					mp50[c] / 1000, mp99[c] / 1000, p99lo[c] / 1000, p99hi[c] / 1000, mcpu[c], paired(c, base), dp99, err[c]
				continue
			}
			printf "| %s | %.0f (%.0f-%.0f) | %.2f | %.2f (%.2f-%.2f) | %.1f | %s | %s | %s | %d |\n", c, mrps[c], lo[c], hi[c],
				mp50[c] / 1000, mp99[c] / 1000, p99lo[c] / 1000, p99hi[c] / 1000, mcpu[c], paired(c, base), paired(c, second), dp99, err[c]
		}
	}' "$1"
}

conditions() {
	echo "machine: $(nproc) CPUs, $(uname -sr); load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "pinning: $PINNING"
}

# ---------------------------------------------------------------- gate mode

start_upstream() {
	local dir="$WORK/upstream"
	mkdir -p "$dir"
	free_port
	UPSTREAM_PORT=$PORT
	cat >"$dir/Caddyfile" <<EOF
{
	admin off
	persist_config off
}
http://127.0.0.1:$UPSTREAM_PORT {
	bind 127.0.0.1
	respond "ok" 200
}
EOF
	start "$dir" client
	await "http://127.0.0.1:$UPSTREAM_PORT/" "$STARTED_PID" "$dir"
}

# The gate's forward option exists when a gate with it adapts.
forward_supported() {
	local dir="$WORK/probe"
	mkdir -p "$dir"
	printf 'http://127.0.0.1:1 {\n\tlicense_gate {\n\t\tforward installation\n\t}\n}\n' >"$dir/Caddyfile"
	"$BIN" adapt --config "$dir/Caddyfile" --adapter caddyfile >/dev/null 2>&1
}

# add_case name store gate-block proxy-block | plain
declare -A CASE_PORT=() CASE_PID=() CASE_TOKEN=()
CASES=()
add_case() {
	local name=$1 store=$2 dir="$WORK/case-${#CASE_PORT[@]}" port admin
	mkdir -p "$dir"
	free_port
	port=$PORT
	free_port
	admin=$PORT
	if [ "$store" = plain ]; then
		printf '{\n\tadmin 127.0.0.1:%s\n\tpersist_config off\n}\n\nhttp://127.0.0.1:%s {\n\tbind 127.0.0.1\n\treverse_proxy 127.0.0.1:%s\n}\n' \
			"$admin" "$port" "$UPSTREAM_PORT" >"$dir/Caddyfile"
	else
		gated_caddyfile "$store" "$dir" "$port" "$admin" "$3" "$4" >"$dir/Caddyfile"
	fi
	start "$dir" server
	CASE_PID[$name]=$STARTED_PID
	CASE_PORT[$name]=$port
	await "http://127.0.0.1:$port/" "$STARTED_PID" "$dir"
	CASES+=("$name")
}

gate_mode() {
	start_upstream
	local redis_up=""
	case " $STORES " in *" redis "*) start_redis "$WORK/redis"; redis_up=1 ;; esac
	local gate_forward=""
	FORWARD_NOTE="the gate's forward option is on this build"
	if forward_supported; then
		gate_forward=1
	else
		FORWARD_NOTE="no 'forward installation' case: this build's license_gate has no forward option"
	fi

	# The gated cases first: an activation on one gives the header values
	# the header_up case sets.
	local store token first_act=""
	for store in $STORES; do
		if [ -n "$gate_forward" ]; then
			add_case "gate forward installation ($store)" "$store" $'\t\tlicense_gate {\n\t\t\tproducts converter-pro\n\t\t\tforward installation\n\t\t}' ""
		fi
		add_case "gate ($store)" "$store" $'\t\tlicense_gate {\n\t\t\tproducts converter-pro\n\t\t}' ""
	done
	local name resp
	for name in "${CASES[@]}"; do
		resp=$(activate_once "${CASE_PORT[$name]}" GATE-0001)
		token=$(json_field "$resp" access_token)
		if [ -z "$token" ]; then
			echo "bench: activation on \"$name\" failed: $resp" >&2
			exit 1
		fi
		CASE_TOKEN[$name]=$token
		[ -z "$first_act" ] && first_act=$resp
	done
	local hdrs
	# The gate's default forward: these six headers.
	hdrs=$(printf '\t\t\theader_up X-License-Installation %s\n\t\t\theader_up X-License-Product %s\n\t\t\theader_up X-License-Domain %s\n\t\t\theader_up X-License-Type %s\n\t\t\theader_up X-License-Support-Active %s\n\t\t\theader_up X-License-Class %s\n' \
		"$(json_field "$first_act" installation_id)" "$(json_field "$first_act" product)" \
		"$(json_field "$first_act" domain)" "$(json_field "$first_act" type)" "$(json_field "$first_act" support_active)" \
		"$(json_field "$first_act" install_class)")
	NHDRS=$(printf '%s\n' "$hdrs" | grep -c header_up)
	local hdr1
	hdr1=$(printf '%s\n' "$hdrs" | head -1)
	local gated=("${CASES[@]}")
	CASES=()
	# The no-gate baselines on each store (the app runs, the route has no
	# gate), so each gated case is compared with a process like itself.
	FIRST_STORE=${STORES%% *}
	add_case "plain reverse_proxy" plain
	for store in $STORES; do
		add_case "same routes, no gate ($store)" "$store" "" ""
		if [ "$store" = "$FIRST_STORE" ]; then
			add_case "control: same routes, no gate, 2nd process ($store)" "$store" "" ""
			add_case "same routes + 1 header_up, no gate ($store)" "$store" "" "$hdr1"
		fi
		add_case "same routes + header_up, no gate ($store)" "$store" "" "$hdrs"
	done
	CASES+=("${gated[@]}")
	# The order of a round puts each gated case next to the baseline it is
	# read against (A B ... B A keeps them neighbours), so a paired ratio
	# compares two samples a second apart, not ten: forward installation
	# beside the bare routes, the default forward beside header_up.
	local ordered=("plain reverse_proxy") c
	for store in $STORES; do
		for c in "same routes + 1 header_up, no gate ($store)" "control: same routes, no gate, 2nd process ($store)" \
			"same routes, no gate ($store)" "gate forward installation ($store)" \
			"same routes + header_up, no gate ($store)" "gate ($store)"; do
			[ -n "${CASE_PORT[$c]:-}" ] && ordered+=("$c")
		done
	done
	CASES=("${ordered[@]}")
	for name in "${CASES[@]}"; do
		[ -n "${CASE_TOKEN[$name]:-}" ] || CASE_TOKEN[$name]=${CASE_TOKEN[${gated[0]}]}
		local code
		code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${CASE_TOKEN[$name]}" "http://127.0.0.1:${CASE_PORT[$name]}/convert")
		if [ "$code" != 200 ]; then
			echo "bench: \"$name\" answered $code to a gated call" >&2
			exit 1
		fi
	done

	LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
	local results="$WORK/gate.tsv" round i n=${#CASES[@]} order
	: >"$results"
	echo "bench: gate mode: ${#CASES[@]} cases x $ROUNDS rounds of $DURATION (warm-up: $FIRST_WARMUP once, $WARMUP each), wrk -t$THREADS -c$CONNS" >&2
	for name in "${CASES[@]}"; do
		pin client wrk -t"$THREADS" -c"$CONNS" -d"$FIRST_WARMUP" -H "Authorization: Bearer ${CASE_TOKEN[$name]}" \
			"http://127.0.0.1:${CASE_PORT[$name]}/convert" >/dev/null
	done
	for round in $(seq "$ROUNDS"); do
		order=()
		for i in $(seq 0 $((n - 1))); do
			if [ $((round % 2)) = 1 ]; then order+=("${CASES[$i]}"); else order+=("${CASES[$((n - 1 - i))]}"); fi
		done
		for name in "${order[@]}"; do
			local url="http://127.0.0.1:${CASE_PORT[$name]}/convert" pid=${CASE_PID[$name]} t0 t1 out line
			local hdr="Authorization: Bearer ${CASE_TOKEN[$name]}"
			[ "$WARMUP" = 0 ] || pin client wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -H "$hdr" "$url" >/dev/null
			t0=$(cpu_ticks "$pid")
			out=$(pin client wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -H "$hdr" -s "$BENCH/report.lua" "$url")
			t1=$(cpu_ticks "$pid")
			line=$(printf '%s\n' "$out" | grep '^RESULT')
			local reqs dur p50 p99 errs
			reqs=$(result_field "$line" requests)
			dur=$(result_field "$line" duration_us)
			p50=$(result_field "$line" p50_us)
			p99=$(result_field "$line" p99_us)
			errs=$(($(result_field "$line" sockerr) + $(result_field "$line" non2xx)))
			awk -v c="$name" -v r="$round" -v n="$reqs" -v d="$dur" -v p50="$p50" -v p99="$p99" -v dt=$((t1 - t0)) -v hz="$CLK_TCK" -v e="$errs" \
				'BEGIN { printf "%s\t%d\t%.1f\t%d\t%d\t%.1f\t%d\n", c, r, n / (d / 1e6), p50, p99, dt / hz * 1e6 / n, e }' >>"$results"
			printf 'bench: round %d %-40s %s\n' "$round" "$name" "$(tail -1 "$results" | cut -f3-)" >&2
		done
	done
	echo
	echo "gate: medians of $ROUNDS interleaved rounds, wrk -t$THREADS -c$CONNS -d$DURATION on loopback, Bearer header on every request"
	conditions
	echo "note: $FORWARD_NOTE"
	echo
	table "$results" "$FIRST_STORE"
	echo
	awk -F'\t' '
	function sort(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	}
	function med(c,   a, k, i) { k = 0; for (i = 1; i <= nr; i++) if (cs[i] == c) a[++k] = cpu[i] + 0; sort(a, k); return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
	{ cs[++nr] = $1; cpu[nr] = $6 }
	END {
		r0 = med("same routes, no gate (" st ")"); r1 = med("same routes + 1 header_up, no gate (" st ")"); rn = med("same routes + header_up, no gate (" st ")")
		printf "forwarded headers (server CPU medians, %s): 1 header_up costs %.1f us/req, %d cost %.1f us/req (%.1f us each)\n", st, r1 - r0, nh, rn - r0, (rn - r0) / nh
	}' nh="$NHDRS" st="$FIRST_STORE" "$results"
	[ "${KEEP:-}" = 1 ] && cp "$results" "$BENCH/last-gate.tsv" || true
	for name in "${CASES[@]}"; do stop "${CASE_PID[$name]}"; done
}

# ------------------------------------------------------------ activate mode

activate_mode() {
	local bins=() b
	if [ -n "${BINARIES:-}" ]; then
		read -r -a bins <<<"$BINARIES"
	else
		bins=("licensegate=$BIN")
	fi
	local cases=() store
	for store in $STORES; do
		for b in "${bins[@]}"; do cases+=("$store|$b"); done
	done
	case " $STORES " in *" redis "*) start_redis "$WORK/redis" ;; esac
	LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
	local results="$WORK/activate.tsv" round i n=${#cases[@]} c run=0
	: >"$results"
	echo "bench: activate mode: $n cases x $ACT_ROUNDS rounds of $ACT_DURATION, wrk -t$ACT_THREADS -c$ACT_CONNS, distinct keys" >&2
	for round in $(seq "$ACT_ROUNDS"); do
		local order=()
		for i in $(seq 0 $((n - 1))); do
			if [ $((round % 2)) = 1 ]; then order+=("${cases[$i]}"); else order+=("${cases[$((n - 1 - i))]}"); fi
		done
		for c in "${order[@]}"; do
			store=${c%%|*}
			b=${c#*|}
			local label=${b%%=*} bin=${b#*=} dir port admin
			run=$((run + 1))
			dir="$WORK/act-$run"
			mkdir -p "$dir"
			free_port
			port=$PORT
			free_port
			admin=$PORT
			UPSTREAM_PORT=1 # no gated call in this mode
			gated_caddyfile "$store" "$dir" "$port" "$admin" "" "" >"$dir/Caddyfile"
			start "$dir" server "$bin"
			local pid=$STARTED_PID
			await "http://127.0.0.1:$port/v1/licenses/jwks.json" "$pid" "$dir"
			local url="http://127.0.0.1:$port/v1/licenses/activate" out line t0 t1
			# A short warm-up on the first keys, then the measured run on the rest.
			pin client wrk -t"$ACT_THREADS" -c"$ACT_CONNS" -d1s -s "$BENCH/activate.lua" "$url" -- BENCH "$ACT_THREADS" 0 >/dev/null
			t0=$(cpu_ticks "$pid")
			out=$(pin client wrk -t"$ACT_THREADS" -c"$ACT_CONNS" -d"$ACT_DURATION" -s "$BENCH/activate.lua" "$url" -- BENCH "$ACT_THREADS" 20000)
			t1=$(cpu_ticks "$pid")
			stop "$pid"
			line=$(printf '%s\n' "$out" | grep '^RESULT')
			local used
			used=$(result_field "$line" keys_used)
			if [ $((20000 + used)) -gt "$KEYS" ]; then
				echo "bench: the run used keys up to $((20000 + used)), beyond KEYS=$KEYS: raise KEYS" >&2
			fi
			awk -v c="$label ($store)" -v r="$round" -v n="$(result_field "$line" created)" -v d="$(result_field "$line" duration_us)" \
				-v p50="$(result_field "$line" p50_us)" -v p99="$(result_field "$line" p99_us)" -v dt=$((t1 - t0)) -v hz="$CLK_TCK" \
				-v e=$(($(result_field "$line" not201) + $(result_field "$line" sockerr))) \
				'BEGIN { printf "%s\t%d\t%.1f\t%d\t%d\t%.1f\t%d\n", c, r, n / (d / 1e6), p50, p99, (n ? dt / hz * 1e6 / n : 0), e }' >>"$results"
			printf 'bench: round %d %-28s %s\n' "$round" "$label ($store)" "$(tail -1 "$results" | cut -f3-)" >&2
			[ "$store" = redis ] && redis-cli -h "${REDIS%:*}" -p "${REDIS#*:}" flushall >/dev/null
		done
	done
	echo
	echo "activate: 201 answers/s (req/s column) of distinct static keys, medians of $ACT_ROUNDS interleaved rounds, wrk -t$ACT_THREADS -c$ACT_CONNS -d$ACT_DURATION; Redis with appendonly yes, appendfsync everysec; errors: answers other than 201 plus socket errors"
	conditions
	echo
	local first=${cases[0]#*|}
	table "$results" "-" "${first%%=*} (${cases[0]%%|*})"
	[ "${KEEP:-}" = 1 ] && cp "$results" "$BENCH/last-activate.tsv" || true
}

case "$MODE" in
gate)
	make_keys
	gate_mode
	;;
activate)
	make_keys
	activate_mode
	;;
all)
	make_keys
	gate_mode
	activate_mode
	;;
durability)
	cd "$ROOT"
	LICENSEGATE_REQUIRE_REDIS=1 go test -count=1 -run 'TestKill9DuringActivations' -v ./e2e
	;;
*)
	echo "usage: bench/run.sh [gate|activate|durability|all]" >&2
	exit 2
	;;
esac
