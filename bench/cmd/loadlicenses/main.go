// Command loadlicenses fills a Redis with N licences of one installation
// each, written through the Redis store's own UpdateLicense by many
// concurrent writers (package bench/scaleload says what each licence is).
// It resumes where a killed run stopped, and prints how long it took:
//
//	go run ./bench/cmd/loadlicenses -redis 127.0.0.1:6379 -n 1000000
//
// The key prefix is the gateway's (-prefix, default "lg:"), so a gateway
// configured with the same prefix and master secret (-secret, default
// bench/run.sh's) serves these licences. The last line is a summary
// bench/run.sh reads:
//
//	RESULT n=... written=... elapsed_s=... total_s=... rate=... used_memory=...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/bench/scaleload"
	rstore "github.com/licensegate/licensegate/store/redis"
)

func main() {
	addr := flag.String("redis", "127.0.0.1:6379", "Redis address (host:port)")
	prefix := flag.String("prefix", rstore.DefaultKeyPrefix, "the store's key prefix, as the gateway's storage redis key_prefix")
	n := flag.Int("n", 10_000, "licences the store is to hold (0..n-1)")
	workers := flag.Int("workers", 64, "concurrent writers")
	chunk := flag.Int("chunk", 500, "licences a writer takes at once (the progress moves by chunks)")
	events := flag.Bool("events", false, "also write each licence's installation.created event (an audit and an outbox entry), as an activation does")
	secretText := flag.String("secret", scaleload.DefaultSecret, "the gateway's master secret")
	quiet := flag.Bool("quiet", false, "no progress lines, only the result")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	client := redis.NewClient(&redis.Options{Addr: *addr, PoolSize: *workers + 8, ContextTimeoutEnabled: true})
	defer client.Close()
	st := rstore.New(client, rstore.Options{KeyPrefix: *prefix, Timeout: 10 * time.Second})
	defer st.Close()
	f, err := scaleload.NewFixture(st, *secretText)
	if err != nil {
		fail(err)
	}
	defer f.Close()
	if err := client.Ping(ctx).Err(); err != nil {
		fail(fmt.Errorf("redis at %s: %w", *addr, err))
	}

	p, err := scaleload.Load(ctx, client, *prefix, st, f, scaleload.Options{
		N: *n, Workers: *workers, Chunk: *chunk, Events: *events,
		Report: func(p scaleload.Progress) {
			if !*quiet {
				fmt.Fprintf(os.Stderr, "loadlicenses: %d/%d stored, %d written in %s (%.0f/s)\n",
					p.Done, p.N, p.Written, p.Elapsed.Round(time.Second), p.Rate())
			}
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadlicenses: stopped at %d of %d (run again to resume): %v\n", p.Done, p.N, err)
		os.Exit(1)
	}
	mem := usedMemory(context.Background(), client)
	fmt.Printf("loadlicenses: %d licences stored; this run wrote %d in %s (%.0f licences/s); all runs together %s; redis used_memory %d bytes (%.0f per licence)\n",
		p.Done, p.Written, p.Elapsed.Round(time.Millisecond), p.Rate(), p.Total.Round(time.Second), mem, float64(mem)/float64(max(p.Done, 1)))
	fmt.Printf("RESULT n=%d written=%d elapsed_s=%.1f total_s=%.1f rate=%.0f used_memory=%d\n",
		p.Done, p.Written, p.Elapsed.Seconds(), p.Total.Seconds(), p.Rate(), mem)
}

// usedMemory is INFO memory's used_memory (0 when it cannot be read).
func usedMemory(ctx context.Context, client *redis.Client) int64 {
	info, err := client.Info(ctx, "memory").Result()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadlicenses:", err)
	os.Exit(1)
}
