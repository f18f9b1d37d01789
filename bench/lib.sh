# bench/lib.sh: the helpers of bench/run.sh (sourced by it, never run on its
# own): process start and stop, pinning, ports, Caddyfiles for each case,
# reading wrk's results and the table. It uses run.sh's settings (WORK,
# PIDS, SECRET, NEED_BIN, ...), set before it is sourced.
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
elif [ "${NEED_BIN:-1}" = 0 ]; then
	BIN="" # this mode runs no licensegate process
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

# fsync_table activate.tsv fsync.tsv fsync.raw: the fsync probe's bursts
# (case round samples p50_us p99_us max_us, one before each embedded case)
# beside the embedded cases: the probe's p50 and p99 (medians of the
# bursts, min-max; and over every sample of the run), and each case's
# activation p99 over the p99 of the burst just before it, paired by
# round, then the median (min-max) of those ratios.
fsync_table() {
	echo
	sort -n "$3" | awk -v n="$(wc -l <"$3")" '
	function at(p,   r) { r = int((p * n + 99) / 100); if (r < 1) r = 1; return v[r] }
	{ v[NR] = $1 }
	END { printf "fsync probe (write 4 pages + fdatasync, then 1 page + fdatasync, one at a time, pinned as the gateway), all %d samples: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n\n", n, at(50) / 1000, at(99) / 1000, v[n] / 1000 }'
	awk -F'\t' '
	function sort(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	}
	function med(a, n) { sort(a, n); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
	FNR == NR { act[$1, $2] = $5; next }
	{
		c = $1
		if (!(c in k)) { order[++cases] = c; k[c] = 0 }
		i = ++k[c]; fp50[c, i] = $4; fp99[c, i] = $5
		if ((c, $2) in act) { nr[c]++; ratio[c, nr[c]] = act[c, $2] / $5; ap99[c, nr[c]] = act[c, $2] }
	}
	END {
		printf "| case | fsync p50 ms, median of bursts (min-max) | fsync p99 ms, median of bursts (min-max) | activation p99 ms median (min-max) | activation p99 / fsync p99, paired by round, median (min-max) |\n"
		printf "|---|---:|---:|---:|---:|\n"
		for (j = 1; j <= cases; j++) {
			c = order[j]; n = k[c]
			for (i = 1; i <= n; i++) a[i] = fp50[c, i] + 0
			m50 = med(a, n); lo50 = a[1]; hi50 = a[n]
			for (i = 1; i <= n; i++) a[i] = fp99[c, i] + 0
			m99 = med(a, n); lo99 = a[1]; hi99 = a[n]
			for (i = 1; i <= nr[c]; i++) a[i] = ap99[c, i] + 0
			ma = med(a, nr[c]); loa = a[1]; hia = a[nr[c]]
			for (i = 1; i <= nr[c]; i++) a[i] = ratio[c, i] + 0
			mr = med(a, nr[c]); lor = a[1]; hir = a[nr[c]]
			printf "| %s | %.2f (%.2f-%.2f) | %.2f (%.2f-%.2f) | %.2f (%.2f-%.2f) | %.2f (%.2f-%.2f) |\n", c, m50 / 1000, lo50 / 1000, hi50 / 1000,
				m99 / 1000, lo99 / 1000, hi99 / 1000, ma / 1000, loa / 1000, hia / 1000, mr, lor, hir
		}
	}' "$1" "$2"
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
