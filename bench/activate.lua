-- wrk script for activation throughput: every request activates a distinct
-- static key, <prefix>-<8 digits>, numbered across wrk's threads without
-- overlap. Arguments (after --): prefix, number of threads (wrk's -t),
-- first key number.
--
-- It counts answers other than 201 Created itself (wrk's own error count
-- only sees statuses above 399), and prints one RESULT line.

local threads = {}

setup = function(thread)
	thread:set("tid", #threads)
	table.insert(threads, thread)
end

init = function(args)
	prefix = args[1] or "BENCH"
	nthreads = tonumber(args[2] or "1")
	first = tonumber(args[3] or "0")
	n = 0
	not201 = 0
	ok201 = 0
end

request = function()
	local k = first + tid + n * nthreads
	n = n + 1
	return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"},
		string.format("license_key=%s-%08d&domain=acme.com", prefix, k))
end

response = function(status, headers, body)
	if status == 201 then
		ok201 = ok201 + 1
	else
		not201 = not201 + 1
	end
end

done = function(summary, latency, requests)
	local created, other, sent = 0, 0, 0
	for _, t in ipairs(threads) do
		created = created + t:get("ok201")
		other = other + t:get("not201")
		sent = sent + t:get("n")
	end
	local e = summary.errors
	io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d sockerr=%d created=%d not201=%d keys_used=%d\n",
		summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
		e.connect + e.read + e.write + e.timeout, created, other, sent))
end
