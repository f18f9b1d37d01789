// Command fsyncprobe measures the disk's own write+fdatasync latency, the
// way the embedded store commits: one goroutine, one sync at a time. A
// bbolt commit writes its dirty pages and fdatasyncs, then writes its meta
// page and fdatasyncs again; the probe does the same, in a file it creates
// in -dir (the directory of the embedded store's file, so the same file
// system and disk), preallocated as bbolt grows its file (a sparse
// truncate), and times each write+fdatasync as one sample.
//
//	go run ./bench/cmd/fsyncprobe -dir /tmp/x -d 3s
//
// It prints one line for bench/run.sh:
//
//	RESULT samples=N duration_us=D p50_us=A p99_us=B max_us=C
//
// and, with -raw, appends every sample (µs, one a line) to that file, so a
// run can pool the bursts. The file is removed at the end.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

func main() {
	dir := flag.String("dir", ".", "directory to probe (the embedded store's)")
	dur := flag.Duration("d", 3*time.Second, "how long to probe")
	maxSamples := flag.Int("n", 100000, "stop after this many samples")
	pages := flag.Int("pages", 4, "pages written before each data fdatasync (a commit's dirty pages)")
	pageSize := flag.Int("page", os.Getpagesize(), "page size")
	raw := flag.String("raw", "", "append every sample (µs) to this file")
	flag.Parse()
	if err := run(*dir, *dur, *maxSamples, *pages, *pageSize, *raw); err != nil {
		fmt.Fprintln(os.Stderr, "fsyncprobe:", err)
		os.Exit(1)
	}
}

func run(dir string, dur time.Duration, maxSamples, pages, pageSize int, raw string) error {
	const region = 64 << 20 // the data pages roll over this much of the file
	f, err := os.CreateTemp(dir, "fsyncprobe-*.db")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := f.Truncate(region + int64(pageSize)*2); err != nil {
		return fmt.Errorf("preallocating %s: %w", filepath.Base(f.Name()), err)
	}
	if err := fdatasync(f); err != nil {
		return err
	}
	data := make([]byte, pages*pageSize)
	meta := make([]byte, pageSize)
	var samples []time.Duration
	off := int64(2 * pageSize) // after the two meta pages
	start := time.Now()
	for i := 0; len(samples) < maxSamples && time.Since(start) < dur; i++ {
		// A commit: its dirty pages, then its meta page (alternating
		// between the two, as bbolt's do).
		if off+int64(len(data)) > region {
			off = int64(2 * pageSize)
		}
		data[0], meta[0] = byte(i), byte(i)
		t0 := time.Now()
		if _, err := f.WriteAt(data, off); err != nil {
			return err
		}
		if err := fdatasync(f); err != nil {
			return err
		}
		t1 := time.Now()
		if _, err := f.WriteAt(meta, int64(i%2*pageSize)); err != nil {
			return err
		}
		if err := fdatasync(f); err != nil {
			return err
		}
		samples = append(samples, t1.Sub(t0), time.Since(t1))
		off += int64(len(data))
	}
	elapsed := time.Since(start)
	if raw != "" {
		if err := appendRaw(raw, samples); err != nil {
			return err
		}
	}
	slices.Sort(samples)
	fmt.Printf("RESULT samples=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d\n", len(samples), elapsed.Microseconds(),
		pct(samples, 50).Microseconds(), pct(samples, 99).Microseconds(), samples[len(samples)-1].Microseconds())
	return nil
}

// pct is the p-th percentile of sorted s (nearest rank).
func pct(s []time.Duration, p int) time.Duration {
	r := (p*len(s) + 99) / 100
	return s[max(r, 1)-1]
}

func appendRaw(path string, samples []time.Duration) error {
	out, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	for _, d := range samples {
		fmt.Fprintln(out, d.Microseconds())
	}
	return out.Close()
}
