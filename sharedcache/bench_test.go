package sharedcache

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pictofs/pictofs/sharedcache/redistest"
)

var benchSizes = []int{4 << 10, 256 << 10, 4 << 20}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

// BenchmarkGet measures one reader's hits on loopback, with the latency
// percentiles of single Gets.
func BenchmarkGet(b *testing.B) {
	srv := redistest.Start(b)
	tier, _ := newTier(b, srv.URL(), Options{})
	ctx := context.Background()
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			key := publishForHits(b, tier, n)
			var lat []time.Duration
			for b.Loop() {
				start := time.Now()
				if _, ok := tier.Get(ctx, key, int64(n)); !ok {
					b.Fatal("miss")
				}
				lat = append(lat, time.Since(start))
			}
			reportPercentiles(b, lat)
		})
	}
}

// BenchmarkGetParallel measures hits from 16 readers at once, as a mount's
// prefetch workers would issue them.
func BenchmarkGetParallel(b *testing.B) {
	srv := redistest.Start(b)
	tier, _ := newTier(b, srv.URL(), Options{})
	ctx := context.Background()
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			key := publishForHits(b, tier, n)
			b.SetParallelism(8) // × GOMAXPROCS goroutines
			before := tier.Stats().Misses
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tier.Get(ctx, key, int64(n))
				}
			})
			// Under overload a read may run out of time: a miss, not an error.
			b.ReportMetric(float64(tier.Stats().Misses-before)/float64(b.N), "misses/op")
		})
	}
}

// publishForHits stores a blob of n bytes in the tier for a Get benchmark,
// and returns its key.
func publishForHits(b *testing.B, tier *Tier, n int) string {
	key := sizeName(n)
	tier.Publish(key, blob(key, n))
	flush(b, tier)
	b.SetBytes(int64(n))
	return key
}

// BenchmarkPublish measures background publishes of new blobs, queue to
// server (the final Flush is timed), with the default workers.
func BenchmarkPublish(b *testing.B) {
	srv := redistest.Start(b, "--maxmemory", "512mb", "--maxmemory-policy", "allkeys-lru")
	tier, _ := newTier(b, srv.URL(), Options{})
	ctx := context.Background()
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			data := blob("publish", n)
			b.SetBytes(int64(n))
			for i := range b.N {
				for {
					before := tier.Stats().PublishDrops
					tier.Publish(fmt.Sprintf("%s-%d", sizeName(n), i), data)
					if tier.Stats().PublishDrops == before {
						break
					}
					tier.Flush(ctx) // the queue was full: wait for room, publish again
				}
			}
			if err := tier.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}

var reportMu sync.Mutex

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}

// BenchmarkGetMiss measures a Get of a key the tier lacks, and a Get while
// the tier is down (skipped without a round trip).
func BenchmarkGetMiss(b *testing.B) {
	srv := redistest.Start(b)
	up, _ := newTier(b, srv.URL(), Options{})
	down, _ := newTier(b, "redis://127.0.0.1:1/0", Options{RetryAfter: time.Hour})
	ctx := context.Background()
	down.Get(ctx, "k", 10) // fails, and takes the tier down
	for _, c := range []struct {
		name string
		tier *Tier
	}{{"absent", up}, {"down", down}} {
		b.Run(c.name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				start := time.Now()
				if _, ok := c.tier.Get(ctx, "absent", 4096); ok {
					b.Fatal("hit")
				}
				lat = append(lat, time.Since(start))
			}
			reportPercentiles(b, lat)
		})
	}
}
