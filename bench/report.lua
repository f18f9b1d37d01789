-- wrk script for the gate benchmark: prints one machine-readable RESULT
-- line after wrk's own report. Latencies are in microseconds; "non2xx" is
-- wrk's count of answers with a status above 399.
done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d sockerr=%d non2xx=%d\n",
		summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
		e.connect + e.read + e.write + e.timeout, e.status))
end
