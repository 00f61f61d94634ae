package sharedcache

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pictofs/pictofs/internal/testenv/testkit"
	"github.com/pictofs/pictofs/sharedcache/redistest"
)

func TestRoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	tier, logs := newTier(t, srv.URL(), Options{})
	ctx := context.Background()
	sizes := []int{0, 1, 1000, 300 << 10, int(DefaultMaxBlobBytes)}
	for _, n := range sizes {
		tier.Publish(fmt.Sprintf("key-%d", n), blob(fmt.Sprintf("key-%d", n), n))
	}
	flush(t, tier)
	for _, n := range sizes {
		key := fmt.Sprintf("key-%d", n)
		got, ok := tier.Get(ctx, key, int64(n))
		if !ok {
			t.Fatalf("Get(%s, %d): miss, want a hit", key, n)
		}
		mustEqual(t, key, got, blob(key, n))
	}
	if _, ok := tier.Get(ctx, "never-published", 10); ok {
		t.Errorf("Get of a key never published: got a hit")
	}
	// Publishing what is there sends nothing again.
	tier.Publish("key-1000", blob("key-1000", 1000))
	flush(t, tier)
	st := tier.Stats()
	want := Stats{Hits: uint64(len(sizes)), Misses: 1, Publishes: uint64(len(sizes)), PublishPresent: 1, Up: true}
	if st.Hits != want.Hits || st.Misses != want.Misses || st.Publishes != want.Publishes ||
		st.PublishPresent != want.PublishPresent || st.Corrupt != 0 || st.Errors != 0 || !st.Up {
		t.Errorf("stats: got %+v, want %+v", st, want)
	}
	var total uint64
	for _, n := range sizes {
		total += uint64(n)
	}
	if st.BytesIn != total || st.BytesOut != total+uint64(len(sizes)*headerLen) {
		t.Errorf("bytes: got in %d out %d, want in %d out %d", st.BytesIn, st.BytesOut, total,
			total+uint64(len(sizes)*headerLen))
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("warnings on a healthy tier:\n%s", logs)
	}
}

func TestRefusedValuesAreMissesAndDeleted(t *testing.T) {
	srv := redistest.Start(t)
	tier, _ := newTier(t, srv.URL(), Options{})
	raw := rawClient(t, srv, "")
	ctx := context.Background()
	const key = "image"
	payload := blob(key, 5000)
	rkey := tier.blobKey(key)
	good := encode(rkey, kindBlob, payload, time.Time{})
	corrupt := func(f func(v []byte)) []byte {
		v := append([]byte(nil), good...)
		f(v)
		return v
	}
	tests := []struct {
		name  string
		plant func() error
	}{
		{"garbage", func() error { return raw.Set(ctx, rkey, "garbage", 0).Err() }},
		{"empty", func() error { return raw.Set(ctx, rkey, "", 0).Err() }},
		{"truncated", func() error { return raw.Set(ctx, rkey, good[:len(good)-100], 0).Err() }},
		{"wrong checksum", func() error {
			return raw.Set(ctx, rkey, corrupt(func(v []byte) { v[len(v)-1] ^= 0xff }), 0).Err()
		}},
		{"wrong version", func() error { return raw.Set(ctx, rkey, corrupt(func(v []byte) { v[4] = 9 }), 0).Err() }},
		{"another key's value", func() error {
			return raw.Set(ctx, rkey, encode(tier.blobKey("other"), kindBlob, payload, time.Time{}), 0).Err()
		}},
		{"metadata value", func() error {
			return raw.Set(ctx, rkey, encode(rkey, kindMeta, payload, time.Now()), 0).Err()
		}},
		{"a list", func() error { return raw.RPush(ctx, rkey, "a", "b").Err() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.plant(); err != nil {
				t.Fatal(err)
			}
			before := tier.Stats()
			if got, ok := tier.Get(ctx, key, int64(len(payload))); ok || got != nil {
				t.Fatalf("Get: got %d bytes, ok %v; want a miss", len(got), ok)
			}
			after := tier.Stats()
			if after.Corrupt != before.Corrupt+1 {
				t.Errorf("corrupt: got %d, want %d", after.Corrupt, before.Corrupt+1)
			}
			if !after.Up {
				t.Errorf("a corrupt value took the tier down")
			}
			flush(t, tier)
			if n := raw.Exists(ctx, rkey).Val(); n != 0 {
				t.Errorf("refused value still there: EXISTS got %d, want 0", n)
			}
			// The tier heals: the next publish is written.
			tier.Publish(key, payload)
			flush(t, tier)
			got, ok := tier.Get(ctx, key, int64(len(payload)))
			if !ok {
				t.Fatalf("Get after republish: miss, want a hit")
			}
			mustEqual(t, "after republish", got, payload)
			raw.Del(ctx, rkey)
		})
	}
}

func TestSizeMismatchIsAMiss(t *testing.T) {
	srv := redistest.Start(t)
	tier, _ := newTier(t, srv.URL(), Options{})
	ctx := context.Background()
	tier.Publish("k", blob("k", 100))
	flush(t, tier)
	tests := []struct {
		size int64
		hit  bool
	}{{99, false}, {101, false}, {0, false}, {100, true}, {-1, true}}
	for _, tt := range tests {
		got, ok := tier.Get(ctx, "k", tt.size)
		if ok != tt.hit {
			t.Errorf("Get(k, %d): got hit %v, want %v", tt.size, ok, tt.hit)
		}
		if ok {
			mustEqual(t, "k", got, blob("k", 100))
		}
	}
}

func TestOversizeIsNeverPublished(t *testing.T) {
	srv := redistest.Start(t)
	tier, _ := newTier(t, srv.URL(), Options{MaxBlobBytes: 1000, MaxMetaBytes: 2000})
	raw := rawClient(t, srv, "")
	ctx := context.Background()
	tier.Publish("big", blob("big", 1001))
	tier.PublishMeta("big", blob("big", 2001), time.Now(), 0)
	tier.Publish("fits", blob("fits", 1000))
	flush(t, tier)
	if n := raw.DBSize(ctx).Val(); n != 1 {
		t.Errorf("DBSIZE: got %d, want 1 (only the blob that fits)", n)
	}
	if st := tier.Stats(); st.Oversize != 2 || st.Publishes != 1 {
		t.Errorf("stats: got oversize %d publishes %d, want 2 and 1", st.Oversize, st.Publishes)
	}
	// A Get over the limit does not ask the server.
	raw.Set(ctx, tier.blobKey("big"), encode(tier.blobKey("big"), kindBlob, blob("big", 1001), time.Time{}), 0)
	if _, ok := tier.Get(ctx, "big", 1001); ok {
		t.Errorf("Get over MaxBlobBytes: got a hit, want a miss")
	}
}

func TestNamespacesAreIsolated(t *testing.T) {
	srv := redistest.Start(t)
	orgA, _ := newTier(t, srv.URL(), Options{Namespace: "https://api.pictograph.test|org-a"})
	orgB, _ := newTier(t, srv.URL(), Options{Namespace: "https://api.pictograph.test|org-b"})
	ctx := context.Background()
	a, b := blob("a", 500), blob("b", 500)
	orgA.Publish("same-key", a)
	orgA.PublishMeta("listing/ds", []byte("a's listing"), time.Now(), 0)
	flush(t, orgA)
	if _, ok := orgB.Get(ctx, "same-key", 500); ok {
		t.Fatalf("org B read org A's blob")
	}
	if _, _, ok := orgB.GetMeta(ctx, "listing/ds"); ok {
		t.Fatalf("org B read org A's metadata")
	}
	orgB.Publish("same-key", b)
	flush(t, orgB)
	for _, c := range []struct {
		name string
		tier *Tier
		want []byte
	}{{"org A", orgA, a}, {"org B", orgB, b}} {
		got, ok := c.tier.Get(ctx, "same-key", 500)
		if !ok {
			t.Fatalf("%s: miss on its own blob", c.name)
		}
		mustEqual(t, c.name, got, c.want)
	}
	if _, ok := orgA.Lease(ctx, "export/ds", time.Minute); !ok {
		t.Fatalf("org A: no lease")
	}
	if _, ok := orgB.Lease(ctx, "export/ds", time.Minute); !ok {
		t.Fatalf("org B: no lease while org A holds its own of the same name")
	}
}

func TestPassword(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", secretPassword)
	addr := srv.Addr
	tests := []struct {
		name     string
		url      string
		password string
		works    bool
	}{
		{"in the URL", "redis://:" + secretPassword + "@" + addr + "/0", "", true},
		{"in the URL with the default user", "redis://default:" + secretPassword + "@" + addr + "/0", "", true},
		{"in Options.Password", "redis://" + addr + "/0", secretPassword, true},
		{"wrong", "redis://" + addr + "/0", secretPassword + "-wrong", false},
		{"missing", "redis://" + addr + "/0", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tier, logs := newTier(t, tt.url, Options{Password: tt.password, RetryAfter: time.Hour})
			ctx := context.Background()
			tier.Publish("k", blob("k", 10))
			flush(t, tier)
			_, ok := tier.Get(ctx, "k", 10)
			if ok != tt.works {
				t.Fatalf("Get: got hit %v, want %v (stats %+v)", ok, tt.works, tier.Stats())
			}
			pingErr := tier.Ping(ctx)
			if (pingErr == nil) != tt.works {
				t.Fatalf("Ping: got %v, want error %v", pingErr, !tt.works)
			}
			everything := logs.String() + fmt.Sprint(pingErr) + fmt.Sprint(tier.opts)
			if strings.Contains(everything, "hunter2") {
				t.Fatalf("the password reached the logs or an error:\n%s", everything)
			}
			if !tt.works {
				if n := logs.warnings("shared cache unavailable"); n != 1 {
					t.Errorf("got %d outage warnings, want 1:\n%s", n, logs)
				}
				if !strings.Contains(logs.String(), "xxxxx") && strings.Contains(tt.url, "@") {
					t.Errorf("want the URL redacted in the warning:\n%s", logs)
				}
			}
		})
	}
}

func TestServerKilledMidUse(t *testing.T) {
	srv := redistest.Start(t)
	const opTimeout, retryAfter = 200 * time.Millisecond, 300 * time.Millisecond
	tier, logs := newTier(t, srv.URL(), Options{OpTimeout: opTimeout, RetryAfter: retryAfter})
	ctx := context.Background()
	tier.Publish("k", blob("k", 1000))
	flush(t, tier)
	if _, ok := tier.Get(ctx, "k", 1000); !ok {
		t.Fatal("Get before the kill: miss")
	}

	srv.Kill()
	killed := time.Now()
	var longest time.Duration
	for i := range 50 {
		ok, took := timedGet(tier, "k", 1000)
		if ok {
			t.Fatalf("Get %d after the kill: got a hit", i)
		}
		longest = max(longest, took)
		tier.Publish(fmt.Sprintf("during-%d", i), blob("x", 10))
	}
	if longest > opTimeout+readSlack {
		t.Errorf("slowest Get while the server is down: got %s, want at most %s", longest, opTimeout+readSlack)
	}
	st := tier.Stats()
	if st.Up || st.Skipped == 0 {
		t.Errorf("after the kill: got up %v skipped %d, want down and calls skipped", st.Up, st.Skipped)
	}
	t.Logf("server down: slowest Get %s; stats %+v", longest, st)

	srv.Restart()
	testkit.WaitFor(t, "the tier to serve again after the restart", 10*time.Second, func() bool {
		tier.Publish("k", blob("k", 1000))
		if err := tier.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		got, ok := tier.Get(ctx, "k", 1000)
		if ok {
			mustEqual(t, "after restart", got, blob("k", 1000))
		}
		return ok
	})
	outage := time.Since(killed)
	st = tier.Stats()
	// One probe per RetryAfter at most, plus the calls in flight when it failed.
	if maxErrors := uint64(outage/retryAfter) + 3; st.Errors > maxErrors {
		t.Errorf("errors over an outage of %s: got %d, want at most %d (one probe per %s)", outage, st.Errors,
			maxErrors, retryAfter)
	}
	if n := logs.warnings("shared cache unavailable"); n != 1 {
		t.Errorf("got %d outage warnings, want 1:\n%s", n, logs)
	}
	if n := logs.infos("shared cache reachable again"); n != 1 {
		t.Errorf("got %d recovery lines, want 1:\n%s", n, logs)
	}
	if !st.Up {
		t.Errorf("after recovery: got down")
	}
}

func TestSlowServerIsAMissWithinTheBound(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.NewProxy(t, srv.Addr)
	const opTimeout, retryAfter = 150 * time.Millisecond, 300 * time.Millisecond
	tier, logs := newTier(t, proxy.URL(), Options{OpTimeout: opTimeout, RetryAfter: retryAfter})
	ctx := context.Background()
	tier.Publish("k", blob("k", 64<<10))
	flush(t, tier)
	if _, ok := tier.Get(ctx, "k", 64<<10); !ok {
		t.Fatal("Get before the slowdown: miss")
	}

	proxy.SetDelay(2 * time.Second)
	ok, took := timedGet(tier, "k", 64<<10)
	if ok || took > opTimeout+readSlack {
		t.Fatalf("Get from a slow server: got hit %v after %s, want a miss within %s", ok, took, opTimeout+readSlack)
	}
	ok, skipped := timedGet(tier, "k", 64<<10)
	if ok || skipped > 20*time.Millisecond {
		t.Errorf("Get while down: got hit %v after %s, want an immediate miss", ok, skipped)
	}
	t.Logf("slow server: miss after %s, next Get skipped in %s", took, skipped)

	proxy.SetDelay(0)
	testkit.WaitFor(t, "the tier to serve again after the slowdown", 10*time.Second, func() bool {
		_, ok := tier.Get(ctx, "k", 64<<10)
		return ok
	})
	if n := logs.warnings("shared cache unavailable"); n != 1 {
		t.Errorf("got %d outage warnings, want 1:\n%s", n, logs)
	}
}

func TestEvictionNeverGivesAWrongRead(t *testing.T) {
	// 2 MB: an empty Redis 7 already uses about 1 MB, so under a 1 MB limit
	// it refuses every write (tested below as noeviction's refusal).
	srv := redistest.Start(t, "--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
	tier, _ := newTier(t, srv.URL(), Options{})
	raw := rawClient(t, srv, "")
	ctx := context.Background()
	const n, size = 400, 16 << 10 // 6.4 MB through a 2 MB server
	for round := range 2 {
		for i := range n {
			key := fmt.Sprintf("img-%d", i)
			tier.Publish(key, blob(key, size))
			if i%50 == 49 {
				flush(t, tier)
			}
		}
		flush(t, tier)
		hits := 0
		for i := range n {
			key := fmt.Sprintf("img-%d", i)
			if got, ok := tier.Get(ctx, key, size); ok {
				hits++
				mustEqual(t, key, got, blob(key, size))
			}
		}
		t.Logf("round %d: %d of %d still cached", round, hits, n)
		if hits == 0 || hits == n {
			t.Errorf("round %d: got %d hits of %d, want some evicted and some kept", round, hits, n)
		}
	}
	evicted := raw.Info(ctx, "stats").Val()
	if !strings.Contains(evicted, "evicted_keys:") || strings.Contains(evicted, "evicted_keys:0\r") {
		t.Errorf("the server evicted nothing:\n%s", evicted)
	}
	if st := tier.Stats(); st.Corrupt != 0 || st.Errors != 0 || !st.Up {
		t.Errorf("stats: got %+v, want no corrupt value, no error, up", st)
	}
}

func TestNoevictionServerRefusesWritesButServesReads(t *testing.T) {
	srv := redistest.Start(t, "--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
	tier, logs := newTier(t, srv.URL(), Options{})
	ctx := context.Background()
	tier.Publish("first", blob("first", 1000))
	flush(t, tier)
	for i := range 200 {
		tier.Publish(fmt.Sprintf("fill-%d", i), blob("fill", 32<<10))
	}
	flush(t, tier)
	if _, ok := tier.Get(ctx, "first", 1000); !ok {
		t.Fatalf("Get on a full noeviction server: miss, want a hit (stats %+v)", tier.Stats())
	}
	if !tier.Up() {
		t.Errorf("refused writes took the tier down")
	}
	if n := logs.warnings("shared cache refuses writes"); n != 1 {
		t.Errorf("got %d warnings about refused writes, want 1:\n%s", n, logs)
	}
}

func TestMetadata(t *testing.T) {
	srv := redistest.Start(t)
	tier, _ := newTier(t, srv.URL(), Options{})
	raw := rawClient(t, srv, "")
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		name     string
		data     string
		at       time.Time
		wantData string
		wantAt   time.Time
	}{
		{"first", "v1", t0.Add(time.Minute), "v1", t0.Add(time.Minute)},
		{"older loses", "v0", t0, "v1", t0.Add(time.Minute)},
		{"same age loses", "v1bis", t0.Add(time.Minute), "v1", t0.Add(time.Minute)},
		{"newer wins", "v2", t0.Add(time.Hour), "v2", t0.Add(time.Hour)},
		{"a second newer", "v3", t0.Add(time.Hour + time.Nanosecond), "v3", t0.Add(time.Hour + time.Nanosecond)},
	}
	for _, s := range steps {
		tier.PublishMeta("listing/road-signs", []byte(s.data), s.at, 0)
		flush(t, tier)
		data, at, ok := tier.GetMeta(ctx, "listing/road-signs")
		if !ok || string(data) != s.wantData || !at.Equal(s.wantAt) {
			t.Errorf("%s: got %q %v %v, want %q %v true", s.name, data, at, ok, s.wantData, s.wantAt)
		}
	}
	if ttl := raw.PTTL(ctx, tier.metaKey("listing/road-signs")).Val(); ttl != -1 {
		t.Errorf("PTTL without a TTL: got %s, want none", ttl)
	}
	tier.PublishMeta("export/road-signs", []byte("zip"), time.Now(), 30*time.Second)
	flush(t, tier)
	if ttl := raw.PTTL(ctx, tier.metaKey("export/road-signs")).Val(); ttl <= 0 || ttl > 30*time.Second {
		t.Errorf("PTTL: got %s, want in (0, 30s]", ttl)
	}
	// A corrupt snapshot is a miss, deleted, and does not block the next one.
	raw.SetRange(ctx, tier.metaKey("export/road-signs"), headerLen, "Z")
	if _, _, ok := tier.GetMeta(ctx, "export/road-signs"); ok {
		t.Errorf("GetMeta of a corrupt snapshot: got a hit")
	}
	flush(t, tier)
	tier.PublishMeta("export/road-signs", []byte("zip2"), time.Now(), 0)
	flush(t, tier)
	if data, _, ok := tier.GetMeta(ctx, "export/road-signs"); !ok || string(data) != "zip2" {
		t.Errorf("GetMeta after the corrupt one: got %q %v, want zip2", data, ok)
	}
	// A blob and a snapshot of the same name do not mix.
	if _, ok := tier.Get(ctx, "listing/road-signs", -1); ok {
		t.Errorf("Get of a metadata name: got a hit")
	}
}

func TestLeaseIsExclusiveAcrossTiers(t *testing.T) {
	srv := redistest.Start(t)
	nodeA, _ := newTier(t, srv.URL(), Options{})
	nodeB, _ := newTier(t, srv.URL(), Options{})
	raw := rawClient(t, srv, "")
	ctx := context.Background()

	a, ok := nodeA.Lease(ctx, "export/ds", time.Minute)
	if !ok {
		t.Fatal("node A: no lease on a free name")
	}
	if _, ok := nodeB.Lease(ctx, "export/ds", time.Minute); ok {
		t.Fatal("node B: got the lease node A holds")
	}
	if l, held := nodeB.TryLease(ctx, "export/ds", time.Minute); l != nil || !held {
		t.Fatalf("node B: TryLease of node A's lease = %v, held %v; want nil, held", l, held)
	}
	if !a.Extend(ctx, 5*time.Minute) {
		t.Fatal("node A: Extend of its own lease failed")
	}
	if ttl := raw.PTTL(ctx, nodeA.leaseKey("export/ds")).Val(); ttl <= time.Minute {
		t.Errorf("PTTL after Extend: got %s, want over 1m", ttl)
	}
	a.Release()
	b, ok := nodeB.Lease(ctx, "export/ds", time.Minute)
	if !ok {
		t.Fatal("node B: no lease after node A released it")
	}
	// A's stale handle neither extends nor releases B's lease.
	if a.Extend(ctx, time.Hour) {
		t.Error("node A: extended a lease it no longer holds")
	}
	a.Release()
	if _, ok := nodeA.Lease(ctx, "export/ds", time.Minute); ok {
		t.Error("node A's second Release freed node B's lease")
	}
	b.Release()
	if _, ok := nodeA.Lease(ctx, "export/ds", time.Minute); !ok {
		t.Error("no lease after its holder released it")
	}
	if _, ok := nodeA.Lease(ctx, "other", 0); ok {
		t.Error("a lease with no TTL was granted")
	}
}

func TestLeaseOfADeadHolderExpires(t *testing.T) {
	srv := redistest.Start(t)
	dead, _ := newTier(t, srv.URL(), Options{})
	survivor, _ := newTier(t, srv.URL(), Options{})
	ctx := context.Background()
	const ttl = 300 * time.Millisecond
	stale, ok := dead.Lease(ctx, "export/ds", ttl)
	if !ok {
		t.Fatal("no lease on a free name")
	}
	taken := time.Now()
	dead.Close() // dies holding it

	var got *Lease
	testkit.WaitFor(t, "the lease to be free after its holder died", 5*time.Second, func() bool {
		got, ok = survivor.Lease(ctx, "export/ds", time.Minute)
		return ok
	})
	if waited := time.Since(taken); waited < ttl-20*time.Millisecond {
		t.Errorf("the lease was free after %s, before its TTL of %s", waited, ttl)
	}
	stale.Release() // a closed tier's release is a no-op
	if _, ok := survivor.Lease(ctx, "export/ds", time.Minute); ok {
		t.Error("the survivor's lease was freed")
	}
	got.Release()
}

func TestSecretsNeverReachTheServer(t *testing.T) {
	const secret = "PLANTED-API-KEY-9f8e7d"
	const control = "CONTROL-PAYLOAD-1a2b3c"
	srv := redistest.Start(t, "--requirepass", secretPassword)
	url := "redis://:" + secretPassword + "@" + srv.Addr + "/0"
	tier, logs := newTier(t, url, Options{Namespace: "https://api.test|" + secret})
	ctx := context.Background()
	signed := "https://storage.test/blob?X-Signature=" + secret
	tier.Publish(signed, []byte(control))
	tier.Publish(secret, []byte(control))
	tier.PublishMeta(secret, []byte(control), time.Now(), 0)
	lease, _ := tier.Lease(ctx, secret, time.Minute)
	flush(t, tier)
	if _, ok := tier.Get(ctx, signed, int64(len(control))); !ok {
		t.Fatal("Get: miss")
	}

	raw := rawClient(t, srv, secretPassword)
	var keys, values []string
	iter := raw.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if v, err := raw.Get(ctx, iter.Val()).Result(); err == nil {
			values = append(values, v)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	lease.Release()
	if len(keys) != 4 {
		t.Errorf("got %d keys %q, want 4 (two blobs, a snapshot, a lease)", len(keys), keys)
	}
	all := strings.Join(keys, "\n") + "\n" + strings.Join(values, "\n")
	for _, s := range []string{secret, secretPassword, "storage.test", "X-Signature", "api.test"} {
		if strings.Contains(all, s) {
			t.Errorf("the server holds %q:\n%q", s, all)
		}
	}
	// The scan can fail: the payloads it must find are there.
	if n := strings.Count(all, control); n != 3 {
		t.Errorf("the scan found the control payload %d times, want 3", n)
	}
	if strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), "hunter2") {
		t.Errorf("a secret reached the logs:\n%s", logs)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, tier.prefix) {
			t.Errorf("key %q outside the namespace prefix %q", k, tier.prefix)
		}
	}
}

func TestPublishQueueIsBounded(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.NewProxy(t, srv.Addr)
	tier, _ := newTier(t, proxy.URL(), Options{QueueLen: 4, PublishWorkers: 1, MaxBlobBytes: 1000,
		MaxMetaBytes: 1000, QueueBytes: 3000, OpTimeout: time.Second})
	proxy.SetDelay(300 * time.Millisecond) // the one worker is busy for a while on each publish
	for i := range 20 {
		tier.Publish(fmt.Sprintf("k%d", i), blob("k", 1000))
	}
	st := tier.Stats()
	if st.Queued > 4 || st.QueuedBytes > 3000 {
		t.Errorf("queue: got %d jobs, %d bytes; want at most 4 and 3000", st.Queued, st.QueuedBytes)
	}
	if st.PublishDrops < 16 {
		t.Errorf("drops: got %d, want at least 16 of 20", st.PublishDrops)
	}
	start := time.Now()
	tier.Close()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close with a busy queue took %s", took)
	}
	tier.Publish("after-close", []byte("x"))
	if _, ok := tier.Get(context.Background(), "k0", 1000); ok {
		t.Errorf("Get after Close: got a hit")
	}
	if st := tier.Stats(); st.Queued != 0 || st.QueuedBytes != 0 {
		t.Errorf("after Close: got %d jobs, %d bytes queued; want none", st.Queued, st.QueuedBytes)
	}
}

func TestGetHonoursTheCallersContext(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.NewProxy(t, srv.Addr)
	tier, logs := newTier(t, proxy.URL(), Options{OpTimeout: 2 * time.Second})
	proxy.SetDelay(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, ok := tier.Get(ctx, "k", 10); ok {
		t.Fatal("got a hit")
	}
	if took := time.Since(start); took > 50*time.Millisecond+readSlack {
		t.Errorf("Get with a 50ms context took %s", took)
	}
	if !tier.Up() || logs.warnings("shared cache unavailable") != 0 {
		t.Errorf("a caller giving up took the tier down:\n%s", logs)
	}
}

// TestStaysInsideItsACLPattern runs every kind of call as a Redis ACL user
// allowed only the tier's KeyPattern: a command touching any other key would
// fail with NOPERM and show up as an error.
func TestStaysInsideItsACLPattern(t *testing.T) {
	srv := redistest.Start(t)
	admin := rawClient(t, srv, "")
	ctx := context.Background()
	orgA, _ := newTier(t, srv.URL(), Options{Namespace: "https://api.pictograph.test|org-a"})
	orgB, _ := newTier(t, srv.URL(), Options{Namespace: "https://api.pictograph.test|org-b"})
	if err := admin.Do(ctx, "ACL", "SETUSER", "org-a", "on", ">"+secretPassword, "~"+orgA.KeyPattern(),
		"+@all", "-@dangerous").Err(); err != nil {
		t.Fatal(err)
	}
	orgB.Publish("b-blob", blob("b", 10))
	flush(t, orgB)

	tier, _ := newTier(t, "redis://org-a:"+secretPassword+"@"+srv.Addr+"/0",
		Options{Namespace: "https://api.pictograph.test|org-a"})
	tier.Publish("k", blob("k", 100))
	tier.PublishMeta("m", []byte("snapshot"), time.Now(), time.Minute)
	flush(t, tier)
	if _, ok := tier.Get(ctx, "k", 100); !ok {
		t.Error("Get: miss")
	}
	if _, _, ok := tier.GetMeta(ctx, "m"); !ok {
		t.Error("GetMeta: miss")
	}
	admin.Set(ctx, tier.blobKey("bad"), "garbage", 0)
	if _, ok := tier.Get(ctx, "bad", 7); ok {
		t.Error("Get of garbage: hit")
	}
	if l, ok := tier.Lease(ctx, "lease", time.Minute); !ok {
		t.Error("Lease failed")
	} else {
		if !l.Extend(ctx, time.Minute) {
			t.Error("Extend failed")
		}
		l.Release()
	}
	flush(t, tier)
	if st := tier.Stats(); st.Errors != 0 || !st.Up {
		t.Errorf("stats: got %+v, want no error: some command left the pattern %s", st, tier.KeyPattern())
	}
	// And the server keeps org A out of org B's keys.
	asA := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "org-a", Password: secretPassword, Protocol: 2,
		DisableIdentity: true})
	defer asA.Close()
	if err := asA.Get(ctx, orgB.blobKey("b-blob")).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("org A reading org B's key: got %v, want NOPERM", err)
	}
}

// TestTryLeaseTellsAFailureFromAHolder: a tier that cannot reach its server
// reports no holder, so the caller does the work instead of waiting.
func TestTryLeaseTellsAFailureFromAHolder(t *testing.T) {
	srv := redistest.Start(t)
	tier, _ := newTier(t, srv.URL(), Options{})
	srv.Kill()
	if l, held := tier.TryLease(context.Background(), "export/ds", time.Minute); l != nil || held {
		t.Errorf("TryLease with the server gone = %v, held %v; want nil, not held", l, held)
	}
}
