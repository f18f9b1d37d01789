#!/usr/bin/env bash
# licensegate benchmarks: the gate's throughput against the same routes
# without it, activation throughput on each store, and the author
# console's search with many licences in Redis.
#
#   bench/run.sh gate        # the gate vs plain reverse_proxy (default)
#   bench/run.sh activate    # activations/s of distinct keys, each store
#   bench/run.sh durability  # kill -9 mid activation load, on each store
#   bench/run.sh portal      # the buyer portal's pages, 50 signed-in buyers at once
#   bench/run.sh search      # console search latency with N licences in Redis (loads them
#                            # with bench/cmd/loadlicenses first; see docs/scale.md)
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
#   PROBE_DURATION=3s                activate mode: the fsync probe's burst before each
#                                    embedded case (bench/cmd/fsyncprobe; 0: none)
#   STORES="embedded redis"          stores to run the gated / activation cases on
#   SERVER_CPUS=0 CLIENT_CPUS=1      taskset CPU lists: gateway | wrk, upstream, redis
#   LICENSEGATE_BIN=path             skip the build, use this binary
#   BINARIES="before=/a after=/b"    activate mode: compare binaries, interleaved
#   KEEP=1                           keep the work directory (configs, logs, raw results)
#   SEARCH_LICENSES="10000"          search mode: licence counts, each on a fresh Redis
#                                    (AOF, everysec), e.g. "10000 1000000"
#   SEARCH_ROUNDS=5 SEARCH_QUERIES=1000 SEARCH_CLIENTS=1,16   interleaved rounds, queries
#                                    per case per round, concurrent clients of each kind
#   SEARCH_REDIS=host:port           search mode: use (and fill, resuming) this Redis instead
#                                    of a fresh one per count; it is left running and loaded
#   SEARCH_PREFIX=lg: LOAD_WORKERS=64    the store's key prefix; the loader's writers
#   SEARCH_PIN="1"                   search mode: 1 pins searchbench (the gateway and its
#                                    clients, in one process) to SERVER_CPUS, 0 does not;
#                                    "1 0" runs both on the same load
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
PROBE_DURATION=${PROBE_DURATION:-3s}
KEYS=${KEYS:-100000}
STORES=${STORES:-embedded redis}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}
SECRET=bench-secret-0123456789abcdefghijklmnopqrstuvwxyz
CLK_TCK=$(getconf CLK_TCK)

TOOLS="wrk redis-server redis-cli curl awk"
NEED_BIN=1
if [ "$MODE" = search ]; then
	TOOLS="redis-server redis-cli awk"
	NEED_BIN=0 # no licensegate binary: the measurement runs the gateway in process
fi
SEARCH_LICENSES=${SEARCH_LICENSES:-10000}
SEARCH_ROUNDS=${SEARCH_ROUNDS:-5}
SEARCH_QUERIES=${SEARCH_QUERIES:-1000}
SEARCH_CLIENTS=${SEARCH_CLIENTS:-1,16}
SEARCH_PREFIX=${SEARCH_PREFIX:-lg:}
SEARCH_PIN=${SEARCH_PIN:-1}
LOAD_WORKERS=${LOAD_WORKERS:-64}
for tool in $TOOLS; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "bench: $tool is required" >&2
		exit 1
	fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/licensegate-bench.XXXXXX")
PIDS=()
# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"

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
	# The disk's own fsync latency, in a burst just before each embedded
	# case, in that case's directory: what the embedded store's commits
	# are read against (SPEC section 11).
	local probe=""
	if [ "$PROBE_DURATION" != 0 ]; then
		probe="$WORK/fsyncprobe"
		echo "bench: building bench/cmd/fsyncprobe" >&2
		(cd "$ROOT" && go build -o "$probe" ./bench/cmd/fsyncprobe)
	fi
	LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
	local results="$WORK/activate.tsv" fsyncs="$WORK/fsync.tsv" round i n=${#cases[@]} c run=0
	: >"$results"
	: >"$fsyncs"
	: >"$WORK/fsync.raw"
	echo "bench: activate mode: $n cases x $ACT_ROUNDS rounds of $ACT_DURATION, wrk -t$ACT_THREADS -c$ACT_CONNS, distinct keys" >&2
	for round in $(seq "$ACT_ROUNDS"); do
		local order=()
		for i in $(seq 0 $((n - 1))); do
			if [ $((round % 2)) = 1 ]; then order+=("${cases[$i]}"); else order+=("${cases[$((n - 1 - i))]}"); fi
		done
		for c in "${order[@]}"; do
			store=${c%%|*}
			b=${c#*|}
			local label=${b%%=*} bin=${b#*=} dir port admin out line
			run=$((run + 1))
			dir="$WORK/act-$run"
			mkdir -p "$dir"
			free_port
			port=$PORT
			free_port
			admin=$PORT
			UPSTREAM_PORT=1 # no gated call in this mode
			gated_caddyfile "$store" "$dir" "$port" "$admin" "" "" >"$dir/Caddyfile"
			if [ -n "$probe" ] && [ "$store" = embedded ]; then
				# pinned as the gateway is: its commits run there
				out=$(pin server "$probe" -dir "$dir" -d "$PROBE_DURATION" -raw "$WORK/fsync.raw")
				line=$(printf '%s\n' "$out" | grep '^RESULT')
				printf '%s\t%d\t%s\t%s\t%s\t%s\n' "$label ($store)" "$round" "$(result_field "$line" samples)" \
					"$(result_field "$line" p50_us)" "$(result_field "$line" p99_us)" "$(result_field "$line" max_us)" >>"$fsyncs"
				printf 'bench: round %d %-28s fsync probe: p50 %s us, p99 %s us, max %s us (%s samples)\n' "$round" "$label ($store)" \
					"$(result_field "$line" p50_us)" "$(result_field "$line" p99_us)" "$(result_field "$line" max_us)" "$(result_field "$line" samples)" >&2
			fi
			start "$dir" server "$bin"
			local pid=$STARTED_PID
			await "http://127.0.0.1:$port/v1/licenses/jwks.json" "$pid" "$dir"
			local url="http://127.0.0.1:$port/v1/licenses/activate" t0 t1
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
	[ -s "$fsyncs" ] && fsync_table "$results" "$fsyncs" "$WORK/fsync.raw"
	[ "${KEEP:-}" = 1 ] && cp "$results" "$BENCH/last-activate.tsv" && cp "$fsyncs" "$BENCH/last-fsync.tsv" || true
}

# -------------------------------------------------------------- search mode

# For each count: a fresh Redis (or SEARCH_REDIS), loaded by
# bench/cmd/loadlicenses (resumable; it prints its time and rate), then
# bench/cmd/searchbench pinned like a gateway (Redis on the client CPUs),
# which prints the table.
search_mode() {
	local bin="$WORK/scale" n redis
	mkdir -p "$bin"
	echo "bench: building bench/cmd/loadlicenses and bench/cmd/searchbench" >&2
	(cd "$ROOT" && go build -o "$bin/loadlicenses" ./bench/cmd/loadlicenses && go build -o "$bin/searchbench" ./bench/cmd/searchbench)
	for n in $SEARCH_LICENSES; do
		redis=${SEARCH_REDIS:-}
		if [ -z "$redis" ]; then
			start_redis "$WORK/redis-$n"
			redis=$REDIS
		fi
		echo "bench: search mode: loading $n licences into $redis" >&2
		"$bin/loadlicenses" -redis "$redis" -prefix "$SEARCH_PREFIX" -n "$n" -workers "$LOAD_WORKERS" >&2
		local pinned run
		for pinned in $SEARCH_PIN; do
			LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
			run=(pin server)
			[ "$pinned" = 1 ] || run=()
			echo
			"${run[@]}" "$bin/searchbench" -redis "$redis" -prefix "$SEARCH_PREFIX" -n "$n" \
				-rounds "$SEARCH_ROUNDS" -queries "$SEARCH_QUERIES" -clients "$SEARCH_CLIENTS"
			conditions
			[ "$pinned" = 1 ] || echo "note: searchbench not pinned (SEARCH_PIN=0): it may run on either CPU, beside redis-server"
		done
		if [ -z "${SEARCH_REDIS:-}" ]; then
			stop "$REDIS_PID"
			rm -rf "$WORK/redis-$n"
		fi
	done
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
portal)
	# 50 signed-in buyers load their licences and a licence's page at
	# once (PORTAL_USERS, PORTAL_DURATION, STORES); prints a table.
	cd "$ROOT"
	LICENSEGATE_BENCH=portal LICENSEGATE_REQUIRE_REDIS=1 STORES="$STORES" go test -count=1 -timeout 20m -run 'TestPortalPagesLoad' -v ./e2e | grep '^|'
	;;
search)
	search_mode
	;;
*)
	echo "usage: bench/run.sh [gate|activate|durability|portal|search|all]" >&2
	exit 2
	;;
esac
