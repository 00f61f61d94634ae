package sharedcache

import (
	"context"
	"crypto/rand"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lease is the right, shared by every node of a namespace, to do one piece of
// work (build the export of a dataset) while the others wait for its result.
// It is a key set with SET NX PX to a random token: a holder that dies frees
// it when its TTL runs out, and only the token's holder can extend or release
// it. It is advisory: the server may evict it under maxmemory or lose it in a
// failover, so it saves duplicate work and never guards correctness.
type Lease struct {
	t     *Tier
	key   string
	token string
}

// releaseScript deletes KEYS[1] if it still holds the token ARGV[1].
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// extendScript sets KEYS[1]'s TTL to ARGV[2] ms if it still holds the token
// ARGV[1].
var extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// Lease takes the lease called name for ttl (at least 1 ms), waiting at most
// OpTimeout. It returns false when another holder has it, when ttl is not
// positive, and when the tier is down or fails (Up tells which): a caller
// that cannot have the lease either waits for the holder's result or, if the
// tier is down, does the work itself. TryLease tells the two apart.
func (t *Tier) Lease(ctx context.Context, name string, ttl time.Duration) (*Lease, bool) {
	l, _ := t.TryLease(ctx, name, ttl)
	return l, l != nil
}

// TryLease is Lease, with held reporting that another holder has the lease
// (the server said so). When l is nil and held is false the tier failed
// (down, refusing writes, too slow): a caller should not wait for a holder
// that may not exist, and does the work itself.
func (t *Tier) TryLease(ctx context.Context, name string, ttl time.Duration) (l *Lease, held bool) {
	if ttl <= 0 || !t.admit(ctx) {
		return nil, false
	}
	l = &Lease{t: t, key: t.leaseKey(name), token: rand.Text()}
	start := time.Now()
	callCtx, cancel := context.WithTimeout(ctx, t.opts.OpTimeout)
	defer cancel()
	got, err := t.rdb.SetNX(callCtx, l.key, l.token, max(ttl, time.Millisecond)).Result()
	if err != nil {
		t.fault(ctx, "lease", l.key, start, err)
		return nil, false
	}
	t.answered(start)
	if !got {
		return nil, true
	}
	return l, false
}

// Extend sets the lease's remaining time to ttl if it is still held by l,
// waiting at most OpTimeout. False means it was lost (expired, taken by
// another holder, evicted) or the tier failed.
func (l *Lease) Extend(ctx context.Context, ttl time.Duration) bool {
	if ttl <= 0 {
		return false
	}
	n, ok := l.run(ctx, extendScript, max(ttl, time.Millisecond).Milliseconds())
	return ok && n == 1
}

// Release gives the lease up if l still holds it, waiting at most OpTimeout.
// A lease that expired and was taken by another holder is left alone.
func (l *Lease) Release() {
	l.run(context.Background(), releaseScript)
}

func (l *Lease) run(ctx context.Context, script *redis.Script, args ...any) (int64, bool) {
	t := l.t
	if !t.admit(ctx) {
		return 0, false
	}
	start := time.Now()
	callCtx, cancel := context.WithTimeout(ctx, t.opts.OpTimeout)
	defer cancel()
	n, err := script.Run(callCtx, t.rdb, []string{l.key}, append([]any{l.token}, args...)...).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.fault(ctx, "lease", l.key, start, err)
		return 0, false
	}
	t.answered(start)
	return n, true
}
