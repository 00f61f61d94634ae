package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pictofs/pictofs/devserver"
)

// The shared-cache row (issue 13): many nodes, one upstream. On the epoch
// dataset, each mount with a fresh local cache, one after another, each
// running the cold DataLoader epoch (every byte checked):
//
//   - one mount without the tier: the baseline (each image is one storage
//     GET, so N such nodes cost N×);
//   - --shared-nodes mounts with --shared-cache on one redis-server,
//     configured as users are told to (maxmemory holding the dataset,
//     allkeys-lru, no persistence, on loopback);
//   - with --shared-faults: one more mount while the tier holds the dataset
//     (as a second node finds it), Redis killed with SIGKILL once it has
//     served half the images to it; then two mounts over a fresh Redis whose
//     maxmemory (sharedSmallMaxMemory) is far below the dataset. These count
//     failed reads instead of stopping, and check the bytes of the others.
//
// Upstream storage GETs are the devserver's own count, so the row runs its
// own devserver in this process over the same data directory (the one of
// the other rows runs as `pictofs serve`, which exposes no counters), with
// the same injected latency and bandwidth, behind its own API proxy. Every
// mount of the row goes through that one proxy, so all share one API host
// and hence one namespace in the tier.

// redisServer is the binary the row starts (the distribution's package).
const redisServer = "redis-server"

const (
	// sharedSmallMaxMemory is the maxmemory of the fault part's small Redis,
	// in MiB (Redis's "mb").
	sharedSmallMaxMemory = 2
	// sharedSmallNodes is the number of mounts over it: the second finds
	// what the first published mostly evicted.
	sharedSmallNodes = 2
	// sharedKillShare: Redis is killed once it has served this share of the
	// images to the mount.
	sharedKillShare = 0.5
	// redisPoll is the interval of the kill watcher's samples.
	redisPoll = 5 * time.Millisecond
	// redisStartTimeout bounds the wait for a started Redis to answer.
	redisStartTimeout = 10 * time.Second
)

// Roles of the row's mounts.
const (
	roleBaseline = "no tier"
	roleNode     = "tier"
	roleKilled   = "tier, Redis killed mid-read"
	roleSmall    = "tier, small Redis"
)

// sharedRun is the shared-cache row.
type sharedRun struct {
	Dataset        string        `json:"dataset"`
	Images         int           `json:"images"`
	Bytes          int64         `json:"bytes"`
	Nodes          int           `json:"nodes"` // mounts with the tier, faults aside
	RedisFlags     string        `json:"redis_flags"`
	SmallFlags     string        `json:"small_redis_flags,omitempty"`
	SmallMaxMemory int64         `json:"small_maxmemory_bytes,omitempty"`
	Mounts         []*sharedNode `json:"mounts"`
	Err            string        `json:"error,omitempty"`
}

// sharedNode is one mount of the row: its epoch, what it cost upstream,
// and what the tier did meanwhile.
type sharedNode struct {
	Name       string  `json:"name"`
	Role       string  `json:"role"`
	FirstBatch float64 `json:"first_batch_s"`
	Total      float64 `json:"total_s"`
	Images     int     `json:"images"`
	// ImageGets are the storage GETs the devserver counted, mount to exit,
	// minus the export ZIP downloads (ExportGets), which are storage GETs
	// of their own.
	ImageGets    int64          `json:"storage_gets_images"`
	ExportGets   int64          `json:"export_zip_downloads"`
	ExportBuilds int64          `json:"export_builds"`
	Requests     requestCounts  `json:"api_requests"`
	Redis        *redisUse      `json:"redis,omitempty"`
	Failed       map[string]int `json:"failed_reads,omitempty"`
	// Killed says when Redis was killed (roleKilled).
	Killed string `json:"killed,omitempty"`
	// KilledMidRead: Redis was killed before it had served every image.
	KilledMidRead bool   `json:"killed_mid_read,omitempty"`
	RSS           int64  `json:"peak_rss_bytes"`
	Err           string `json:"error,omitempty"`
}

func (n *sharedNode) failed() int {
	total := 0
	for _, v := range n.Failed {
		total += v
	}
	return total
}

// mounts returns the row's mounts of a role.
func (r *sharedRun) mounts(role string) []*sharedNode {
	var out []*sharedNode
	for _, n := range r.Mounts {
		if n.Role == role {
			out = append(out, n)
		}
	}
	return out
}

// sharedEnv is the row's own devserver and API proxy.
type sharedEnv struct {
	srv   *devserver.Server
	proxy *apiProxy
}

func (h *harness) sharedPhase(ctx context.Context) error {
	nodes := h.cfg.sharedNodes
	if nodes == 0 {
		return nil
	}
	run := &sharedRun{Dataset: h.dataset, Images: h.exp.images, Bytes: h.refBytes, Nodes: nodes}
	h.res.Shared = run
	if h.epochRef == nil {
		run.Err = "no reference copy of the epoch dataset: download-first failed"
		h.fail("shared cache", errors.New(run.Err))
		return nil
	}
	h.logf("shared cache: %d mounts through one Redis, each reading %s cold (%d images, %s)", nodes, h.dataset, run.Images, fmtBytes(run.Bytes))
	err := h.sharedMounts(ctx, run)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		run.Err = err.Error()
		h.fail("shared cache", err)
	}
	return nil
}

// sharedMounts runs the row's mounts in order; a mount that fails is
// recorded and the next one runs.
func (h *harness) sharedMounts(ctx context.Context, run *sharedRun) error {
	env, err := h.startSharedServer(ctx)
	if err != nil {
		return err
	}
	defer env.close()
	node := func(n *sharedNode, rs *redisInstance) error {
		run.Mounts = append(run.Mounts, n)
		if err := h.sharedNode(ctx, env, n, rs); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			n.Err = err.Error()
			h.fail("shared cache: "+n.Name, err)
		}
		return nil
	}
	if err := node(&sharedNode{Name: "one mount, no tier", Role: roleBaseline}, nil); err != nil {
		return err
	}
	rs, err := h.startRedis(ctx, sharedMaxMemory(run.Bytes))
	if err != nil {
		return err
	}
	defer rs.stop()
	run.RedisFlags = rs.flags
	for i := range run.Nodes {
		if err := node(&sharedNode{Name: fmt.Sprintf("node %d", i+1), Role: roleNode}, rs); err != nil {
			return err
		}
	}
	if !h.cfg.sharedFaults {
		return nil
	}
	if err := node(&sharedNode{Name: fmt.Sprintf("node %d, Redis killed mid-read", run.Nodes+1), Role: roleKilled}, rs); err != nil {
		return err
	}
	if err := rs.stop(); err != nil {
		return err
	}
	small, err := h.startRedis(ctx, sharedSmallMaxMemory)
	if err != nil {
		return err
	}
	defer small.stop()
	run.SmallFlags, run.SmallMaxMemory = small.flags, sharedSmallMaxMemory<<20
	for i := range sharedSmallNodes {
		if err := node(&sharedNode{Name: fmt.Sprintf("small Redis, node %d", i+1), Role: roleSmall}, small); err != nil {
			return err
		}
	}
	return nil
}

// sharedMaxMemory is the maxmemory, in MiB, of a Redis that holds a
// dataset of that many bytes with room to spare: every image, the export
// ZIP and the listings, each with its header and Redis's own overhead.
func sharedMaxMemory(datasetBytes int64) int64 {
	const mib = 1 << 20
	return max(64, (2*datasetBytes+mib-1)/mib+32)
}

// startSharedServer starts the row's devserver over the data directory,
// with the run's latency and bandwidth, and an API proxy in front of it.
func (h *harness) startSharedServer(ctx context.Context) (*sharedEnv, error) {
	srv, err := devserver.New(ctx, devserver.Options{
		DataDir: h.cfg.dataDir, APILatency: h.cfg.apiLatency, StorageLatency: h.cfg.storageLatency,
		StorageBandwidth: h.cfg.storageBandwidth, RequestsPerHour: 10_000_000, AdminKey: h.key,
	})
	if err != nil {
		return nil, fmt.Errorf("the row's devserver: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, errors.Join(fmt.Errorf("the row's devserver: %w", err), srv.Close())
	}
	proxy, err := startAPIProxy(srv.APIURL())
	if err != nil {
		return nil, errors.Join(err, srv.Close())
	}
	return &sharedEnv{srv: srv, proxy: proxy}, nil
}

func (e *sharedEnv) close() {
	e.proxy.close()
	e.srv.Close()
}

// sharedNode runs one mount of the row: a fresh local cache, the tier at
// rs (none when nil), one cold DataLoader epoch over the epoch dataset.
func (h *harness) sharedNode(ctx context.Context, env *sharedEnv, n *sharedNode, rs *redisInstance) error {
	cache, err := freshDir(h.work, "cache-pictofs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cache)
	var extra []string
	var before redisSample
	if rs != nil {
		extra = []string{"--shared-cache", rs.url()}
		if before, err = rs.sample(ctx); err != nil {
			return err
		}
	}
	stats := env.srv.Stats()
	m, err := h.mountPictofsVia(ctx, env.proxy, cache, true, extra...)
	if err != nil {
		return err
	}
	lr := h.loaderRun("loader-shared")
	tolerant := n.Role == roleKilled || n.Role == roleSmall
	if tolerant {
		lr.tolerateErrors = true
		lr.linesOut = filepath.Join(h.work, "shared-lines.txt")
	}
	var watch <-chan killed
	stopWatch := func() {}
	if n.Role == roleKilled {
		wctx, cancel := context.WithCancel(ctx)
		stopWatch = cancel
		watch = rs.killAfterHits(wctx, before, int64(float64(h.exp.images)*sharedKillShare))
	}
	r, err := runLoader(ctx, lr, filepath.Join(m.dir, h.dataset))
	stopWatch()
	var after redisSample
	var afterErr error
	if watch != nil {
		k := <-watch
		after, afterErr = k.at, k.err
		n.Killed, n.KilledMidRead = k.describe(h.exp.images), k.done && k.served() < int64(h.exp.images)
		if !k.done {
			afterErr = errors.Join(afterErr, rs.kill()) // the epoch ended first; the next part needs it gone
		}
	}
	if uerr := m.unmount(); err == nil {
		err = uerr
	}
	now := env.srv.Stats()
	n.ExportGets = now.ExportDownloads - stats.ExportDownloads
	n.ImageGets = now.StorageGets - stats.StorageGets - n.ExportGets
	n.ExportBuilds = now.ExportBuilds - stats.ExportBuilds
	n.Requests, n.RSS = m.requests, m.rss
	if rs != nil {
		if watch == nil {
			after, afterErr = rs.sample(ctx)
		}
		if afterErr == nil {
			u := after.since(before)
			n.Redis = &u
		}
	}
	if err != nil {
		return err
	}
	n.FirstBatch, n.Total, n.Images = r.FirstBatch, r.Total, r.Images
	if tolerant {
		if _, err := h.epochRef.checkLines(n.Name, r.Lines); err != nil {
			return err
		}
		n.Failed = r.Failed
		if r.Images+n.failed() != h.exp.images {
			return fmt.Errorf("read %d images and failed %d, want %d in all", r.Images, n.failed(), h.exp.images)
		}
	} else if err := h.exp.check(n.Name, r); err != nil {
		return err
	}
	h.logf("  %-32s first batch %s, total %s; storage GETs: %d images, %d export ZIPs; API requests %s; Redis: %s%s",
		n.Name, fmtSeconds(n.FirstBatch), fmtSeconds(n.Total), n.ImageGets, n.ExportGets, n.Requests, n.Redis, failedNote(n))
	if afterErr != nil && n.Role != roleKilled {
		return fmt.Errorf("redis after the epoch: %w", afterErr)
	}
	return nil
}

func failedNote(n *sharedNode) string {
	s := ""
	if n.Killed != "" {
		s += "; " + n.Killed
	}
	if n.Role == roleKilled || n.Role == roleSmall {
		s += "; reads: " + failedText(n)
	}
	return s
}

// redisInstance is a redis-server the row started, on loopback, without
// persistence, logging beside the other daemons.
type redisInstance struct {
	addr  string
	flags string // the flags users would set, shell-quoted, for the report
	p     *proc
	rdb   *redis.Client
}

// startRedis starts redis-server with maxmemory MiB and allkeys-lru,
// without persistence, in a directory of its own under the work dir.
func (h *harness) startRedis(ctx context.Context, maxMemoryMiB int64) (*redisInstance, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := freshDir(h.work, "redis-")
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	flags := []string{"--maxmemory", strconv.FormatInt(maxMemoryMiB, 10) + "mb", "--maxmemory-policy", "allkeys-lru",
		"--save", "", "--appendonly", "no"}
	args := append([]string{redisServer, "--bind", "127.0.0.1", "--port", port, "--dir", dir, "--daemonize", "no"}, flags...)
	p, err := startProc(redisServer, filepath.Join(h.logs, fmt.Sprintf("redis-%02d.log", h.next())), nil, nil, args...)
	if err != nil {
		return nil, err
	}
	rs := &redisInstance{addr: addr, flags: shellJoin(flags), p: p,
		rdb: redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: time.Second,
			WriteTimeout: time.Second, MaxRetries: -1, PoolSize: 2})}
	h.cl.push("stop redis-server at "+addr, rs.stop)
	deadline := time.Now().Add(redisStartTimeout)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := rs.rdb.Ping(pctx).Err()
		cancel()
		switch {
		case err == nil:
			h.logf("  redis-server at %s: %s", addr, rs.flags)
			return rs, nil
		case p.exited():
			return nil, fmt.Errorf("redis-server exited at start: %v\n%s", p.err, p.logTail(20))
		case time.Now().After(deadline):
			return nil, fmt.Errorf("redis-server did not answer within %v: %v\n%s", redisStartTimeout, err, p.logTail(20))
		case ctx.Err() != nil:
			return nil, ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (rs *redisInstance) url() string { return "redis://" + rs.addr + "/0" }

// stop stops the server (SIGTERM, then SIGKILL); safe to call again.
func (rs *redisInstance) stop() error {
	rs.rdb.Close()
	return rs.p.stop(5 * time.Second)
}

// kill kills the server as a crash would.
func (rs *redisInstance) kill() error { return rs.p.kill() }

// redisSample is what the row reads of a Redis: INFO stats and memory, and
// the number of keys.
type redisSample struct {
	hits, misses, evicted, sent, usedMemory, keys int64
}

// redisUse is what a Redis did during one mount, and held after it.
type redisUse struct {
	Hits       int64 `json:"keyspace_hits"`
	Misses     int64 `json:"keyspace_misses"`
	SentBytes  int64 `json:"net_output_bytes"`
	Evicted    int64 `json:"evicted_keys"`
	Keys       int64 `json:"keys_after"`
	UsedMemory int64 `json:"used_memory_after"`
}

func (s redisSample) since(before redisSample) redisUse {
	return redisUse{Hits: s.hits - before.hits, Misses: s.misses - before.misses, SentBytes: s.sent - before.sent,
		Evicted: s.evicted - before.evicted, Keys: s.keys, UsedMemory: s.usedMemory}
}

func (u *redisUse) String() string {
	if u == nil {
		return "—"
	}
	return fmt.Sprintf("%d hits, %d misses, sent %s; then %d keys in %s, %d evicted",
		u.Hits, u.Misses, fmtBytes(u.SentBytes), u.Keys, fmtBytes(u.UsedMemory), u.Evicted)
}

func (rs *redisInstance) sample(ctx context.Context) (redisSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := rs.rdb.Info(ctx, "stats", "memory").Result()
	if err != nil {
		return redisSample{}, fmt.Errorf("redis INFO: %w", err)
	}
	s, err := parseRedisSample(info)
	if err != nil {
		return redisSample{}, err
	}
	if s.keys, err = rs.rdb.DBSize(ctx).Result(); err != nil {
		return redisSample{}, fmt.Errorf("redis DBSIZE: %w", err)
	}
	return s, nil
}

// parseRedisSample reads the counters the row reports from the text of
// INFO stats and memory ("field:value" lines, "# Section" headings, CRLF).
func parseRedisSample(info string) (redisSample, error) {
	fields := map[string]string{}
	for line := range strings.SplitSeq(info, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = v
		}
	}
	var s redisSample
	for _, f := range []struct {
		name string
		dst  *int64
	}{{"keyspace_hits", &s.hits}, {"keyspace_misses", &s.misses}, {"evicted_keys", &s.evicted},
		{"total_net_output_bytes", &s.sent}, {"used_memory", &s.usedMemory}} {
		v, ok := fields[f.name]
		if !ok {
			return s, fmt.Errorf("redis INFO has no %s", f.name)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return s, fmt.Errorf("redis INFO %s: %w", f.name, err)
		}
		*f.dst = n
	}
	return s, nil
}

// killed is what the kill watcher did: done when it killed the server, at
// the last sample before, and when.
type killed struct {
	done   bool
	at     redisSample
	before redisSample
	after  time.Duration
	err    error
}

func (k killed) served() int64 { return k.at.hits - k.before.hits }

func (k killed) describe(images int) string {
	if !k.done {
		return "Redis was not killed during the epoch (it ended first); killed after it"
	}
	return fmt.Sprintf("Redis killed (SIGKILL) %s into the epoch, after %d hits for %d images", fmtSeconds(k.after.Seconds()), k.served(), images)
}

// killAfterHits kills the server once it has answered hits keyspace hits
// since before, or gives up when ctx ends; it sends what it did.
func (rs *redisInstance) killAfterHits(ctx context.Context, before redisSample, hits int64) <-chan killed {
	out := make(chan killed, 1)
	start := time.Now()
	go func() {
		k := killed{before: before, at: before}
		t := time.NewTicker(redisPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				out <- k
				return
			case <-t.C:
			}
			s, err := rs.sample(ctx)
			if err != nil {
				if ctx.Err() == nil {
					k.err = err
				}
				out <- k
				return
			}
			k.at = s
			if k.served() >= hits {
				k.done, k.after, k.err = true, time.Since(start), rs.kill()
				out <- k
				return
			}
		}
	}()
	return out
}

// shellJoin quotes args as a shell would need them: an empty one as ”.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " '\"\\$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
