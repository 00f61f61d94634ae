package sharedcache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pictofs/pictofs/internal/testenv/testkit"
	"github.com/pictofs/pictofs/sharedcache/redistest"
)

// TestConcurrentUseWithACrash runs readers, publishers, snapshot writers and
// lease takers on two tiers at once while the server is killed and
// restarted: every hit must be the exact bytes of its key, and nothing may
// hang or race.
func TestConcurrentUseWithACrash(t *testing.T) {
	srv := redistest.Start(t, "--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru")
	opts := Options{OpTimeout: 200 * time.Millisecond, RetryAfter: 100 * time.Millisecond}
	tiers := []*Tier{}
	for range 2 {
		tier, _ := newTier(t, srv.URL(), opts)
		tiers = append(tiers, tier)
	}
	const keys, workers, ops = 40, 8, 300
	sizeOf := func(k int) int { return 1 + k*1637 } // up to 64 KiB
	var hits, wrong atomic.Int64
	var wg sync.WaitGroup
	ctx := context.Background()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			tier := tiers[w%len(tiers)]
			for range ops {
				k := rng.IntN(keys)
				key := fmt.Sprintf("k%d", k)
				switch rng.IntN(10) {
				case 0, 1, 2:
					tier.Publish(key, blob(key, sizeOf(k)))
				case 3:
					tier.PublishMeta(key, blob(key, sizeOf(k)), time.Now(), time.Minute)
				case 4:
					if data, _, ok := tier.GetMeta(ctx, key); ok && string(data) != string(blob(key, sizeOf(k))) {
						wrong.Add(1)
					}
				case 5:
					if l, ok := tier.Lease(ctx, key, time.Second); ok {
						l.Extend(ctx, time.Second)
						l.Release()
					}
				default:
					if data, ok := tier.Get(ctx, key, int64(sizeOf(k))); ok {
						hits.Add(1)
						if string(data) != string(blob(key, sizeOf(k))) {
							wrong.Add(1)
						}
					}
				}
			}
		}()
	}
	// Crash the server once the workers are under way, and bring it back.
	testkit.WaitFor(t, "the workers to read a first blob", 10*time.Second, func() bool { return hits.Load() > 0 })
	srv.Kill()
	srv.Restart()
	wg.Wait()
	if wrong.Load() != 0 {
		t.Fatalf("got %d wrong reads", wrong.Load())
	}
	for i, tier := range tiers {
		flush(t, tier)
		t.Logf("tier %d: %+v", i, tier.Stats())
	}
	if hits.Load() == 0 {
		t.Errorf("no hit at all")
	}
}
