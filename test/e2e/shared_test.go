package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pictofs/pictofs/catalog"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
	"github.com/pictofs/pictofs/sharedcache"
	"github.com/pictofs/pictofs/sharedcache/redistest"
)

// sharedMount mounts srv with its own local cache and the shared tier at
// redisURL.
func sharedMount(t *testing.T, srv *devserver.Server, redisURL string) (*testenv.Mount, *sharedcache.Tier) {
	t.Helper()
	tier, err := sharedcache.New(sharedcache.Options{
		URL: redisURL, Namespace: srv.APIURL() + "/" + srv.DefaultOrg(), RetryAfter: 500 * time.Millisecond, Logger: testkit.Logger(),
	})
	if err != nil {
		t.Fatalf("sharedcache.New: %v", err)
	}
	// Registered before the mount's cleanup, so it runs after the unmount.
	t.Cleanup(func() { tier.Close() })
	tm := mount(t, srv, testenv.Options{Catalog: func(o *catalog.Options) { o.SharedCache = tier }})
	return tm, tier
}

// TestThreeMountsShareOneUpstream: three mounts, each with its own local
// cache, read the same annotated dataset one after another through one
// Redis: storage is read about once, the API is asked about as often as for
// one mount, every byte is verified, and the key and signed URLs never
// reach Redis.
func TestThreeMountsShareOneUpstream(t *testing.T) {
	t.Parallel()
	tmpl := synthetic(t)
	rs := redistest.Start(t, "--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru")
	srv := serverFrom(t, tmpl, devserver.Options{ExportDelay: 500 * time.Millisecond})
	srv.ResetStats()
	var firstAPI int64
	for i := range 3 {
		tm, tier := sharedMount(t, srv, rs.URL())
		before := srv.Stats()
		tl := readTree(t, filepath.Join(tm.Dir, synthName), tmpl.want, 16)
		if tl.failed != 0 || tl.files != len(tmpl.want) {
			t.Fatalf("mount %d: %s", i+1, tl)
		}
		if err := tier.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		after := srv.Stats()
		api := after.APIRequests - before.APIRequests
		t.Logf("mount %d: %d API requests, %d storage GETs, %s", i+1, api, after.StorageGets-before.StorageGets, tl)
		if i == 0 {
			firstAPI = api
		}
		tm.Unmount()
	}
	st := srv.Stats()
	images := int64(len(under(tmpl.want, "images")))
	// The export ZIP is one more storage GET.
	if got := st.StorageGets - st.ExportDownloads; got > images*11/10 {
		t.Errorf("three mounts: %d storage GETs of images for %d images, want at most 1.1×", got, images)
	}
	if st.APIRequests > firstAPI*12/10+2 {
		t.Errorf("three mounts: %d API requests, one mount alone %d: want at most about 1.2×", st.APIRequests, firstAPI)
	}

	// Nothing secret in Redis: neither the key nor a signed URL's query.
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rdb.Close()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys in Redis: %d, %v", len(keys), err)
	}
	for _, k := range keys {
		v, err := rdb.Get(ctx, k).Result()
		if err != nil {
			continue // leases may have expired meanwhile
		}
		for _, secret := range []string{srv.AdminKey(), "signature=", "expires="} {
			if strings.Contains(k, secret) || strings.Contains(v, secret) {
				t.Errorf("Redis key %s holds %q", k, secret)
			}
		}
	}
}

// TestSharedTierFaultsNeverFailARead: Redis killed in the middle of a walk,
// and Redis with a maxmemory far below the dataset, fail no read.
func TestSharedTierFaultsNeverFailARead(t *testing.T) {
	t.Parallel()
	tmpl := synthetic(t)

	t.Run("killed mid-read", func(t *testing.T) {
		rs := redistest.Start(t)
		srv := serverFrom(t, tmpl, devserver.Options{StorageLatency: 5 * time.Millisecond})
		tm, tier := sharedMount(t, srv, rs.URL())
		root := filepath.Join(tm.Dir, synthName)
		rels := testenv.ListTree(t, root, tmpl.want)
		done := make(chan *tally)
		go func() { done <- readFiles(t, root, rels, tmpl.want, 8, 0) }()
		testkit.WaitFor(t, "the first hundred reads, published to the tier", time.Minute, func() bool {
			return srv.Stats().StorageGets > 100 && tier.Stats().Publishes > 0
		})
		rs.Kill()
		tl := <-done
		if tl.failed != 0 {
			t.Errorf("reads with Redis killed midway: %s", tl)
		}
		// The reads after the kill found the tier gone, and went upstream.
		if st := tier.Stats(); st.Up && st.Errors == 0 && st.Skipped == 0 {
			t.Errorf("tier after the kill: got %+v, want it down, or errors or skipped calls", st)
		}
	})

	t.Run("maxmemory far below the dataset", func(t *testing.T) {
		rs := redistest.Start(t, "--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
		srv := serverFrom(t, tmpl, devserver.Options{})
		for i := range 2 {
			tm, tier := sharedMount(t, srv, rs.URL())
			tl := readTree(t, filepath.Join(tm.Dir, synthName), tmpl.want, 8)
			if err := tier.Flush(context.Background()); err != nil {
				t.Errorf("mount %d: Flush: %v", i+1, err)
			}
			if tl.failed != 0 || tl.files != len(tmpl.want) {
				t.Errorf("mount %d over a 2 MB Redis: %s", i+1, tl)
			}
			// The tier was used, not bypassed: values went in, and none
			// came back wrong (writes Redis refuses for want of memory
			// count as errors, and are allowed).
			if st := tier.Stats(); st.Publishes == 0 || st.Corrupt != 0 {
				t.Errorf("mount %d: tier stats %+v, want publishes and no corrupt value", i+1, st)
			}
			tm.Unmount()
		}
	})
}
