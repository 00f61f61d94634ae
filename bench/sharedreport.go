package main

import (
	"fmt"
	"math"
	"strings"
)

// Targets of the shared-cache row (issue 13), named at this many tier
// mounts and images.
const (
	targetSharedNodes  = 3
	targetSharedImages = 2000
	targetSharedGets   = 1.1 // storage GETs of images of all tier mounts ≤ 1.1 × the image count
	targetSharedAPI    = 1.2 // their API requests ≤ 1.2 × one mount's without the tier
	// sharedFarBelow: the small Redis is judged far below the dataset when
	// the dataset is at least this many times its maxmemory.
	sharedFarBelow = 4
)

// sharedTotals sums what the tier mounts cost upstream.
type sharedTotals struct {
	imageGets, exportGets, requests int64
	ok                              bool // every tier mount ran without error
}

func (r *sharedRun) totals() sharedTotals {
	t := sharedTotals{ok: len(r.mounts(roleNode)) == r.Nodes}
	for _, n := range r.mounts(roleNode) {
		t.imageGets += n.ImageGets
		t.exportGets += n.ExportGets
		t.requests += n.Requests.total()
		t.ok = t.ok && n.Err == ""
	}
	return t
}

// baseline is the mount without the tier, nil if it did not run right.
func (r *sharedRun) baseline() *sharedNode {
	b := r.mounts(roleBaseline)
	if len(b) != 1 || b[0].Err != "" {
		return nil
	}
	return b[0]
}

// failedText is "N failed" and, when some did, by errno.
func failedText(n *sharedNode) string {
	if n.failed() == 0 {
		return "0 failed"
	}
	return fmt.Sprintf("%d failed %s", n.failed(), fmtFailed(n.Failed))
}

// sharedTable shows the row mount by mount, then the tier mounts together.
func (r *results) sharedTable() *table {
	s := r.Shared
	t := &table{title: fmt.Sprintf("Shared cache: %d nodes, one upstream (%s, %d images, %s; each mount fresh, with its own empty local cache, "+
		"one cold DataLoader epoch; run once)", s.Nodes, s.Dataset, s.Images, fmtBytes(s.Bytes)),
		header: []string{"mount", "first batch", "total", "storage GETs: images", "export ZIPs", "API requests", "Redis during the mount", "checked"}}
	for _, n := range s.Mounts {
		redisText := n.Redis.String()
		if n.Killed != "" {
			redisText += "; " + n.Killed
		}
		checked := fmt.Sprintf("%d images, every byte", n.Images)
		if n.Role == roleKilled || n.Role == roleSmall {
			checked = fmt.Sprintf("%d images read right, %s", n.Images, failedText(n))
		}
		first, total := fmtSeconds(n.FirstBatch), fmtSeconds(n.Total)
		if n.Err != "" {
			checked, first, total = "FAILED: "+clip(n.Err, 200), "—", "—"
		}
		t.add(n.Name, first, total, fmt.Sprint(n.ImageGets), fmt.Sprint(n.ExportGets),
			n.Requests.String(), redisText, checked)
	}
	if tot := s.totals(); len(s.mounts(roleNode)) > 0 {
		api := fmt.Sprint(tot.requests)
		if b := s.baseline(); b != nil {
			api += " (" + fmtRatio(ratio(float64(tot.requests), float64(b.Requests.total()))) + " one mount's)"
		}
		t.add(fmt.Sprintf("nodes 1–%d together", s.Nodes), "", "",
			fmt.Sprintf("%d (%s the images)", tot.imageGets, fmtRatio(ratio(float64(tot.imageGets), float64(s.Images)))),
			fmt.Sprint(tot.exportGets), api, "", "")
	}
	t.notes = []string{
		fmt.Sprintf("one devserver, one API proxy, mounts one after another; nodes 1–%d and the next mount use --shared-cache on one redis-server "+
			"on loopback: redis-server %s", s.Nodes, s.RedisFlags),
		"storage GETs = the devserver's count, mount to exit; the export ZIP (bulk annotations) is a storage GET of its own; " +
			"API requests = the proxy's count, mount to exit, by kind",
		"Redis during the mount = INFO keyspace hits and misses and bytes sent while it ran; keys, memory and evictions after it. " +
			"Hits and misses count every key Redis looked up: blob and snapshot reads, but also a fetch lease's release (a hit), " +
			"so the node that fetches upstream shows hits as well as misses; bytes sent is what the tier served",
	}
	if s.SmallFlags != "" {
		t.notes = append(t.notes, fmt.Sprintf("faults: Redis killed with SIGKILL once it has served half the images to a mount "+
			"(which finds the tier holding the dataset, as node 2 does), then %d mounts over a fresh redis-server %s; "+
			"failed reads counted by errno, the bytes of the others checked", sharedSmallNodes, s.SmallFlags))
	}
	return t
}

// sharedTargets are the targets of the shared-cache row.
func (r *results) sharedTargets() []target {
	s := r.Shared
	names := []string{
		fmt.Sprintf("%d mounts through one Redis, each reading %d images cold: upstream storage GETs of images ≤ %.1f× the image count",
			targetSharedNodes, targetSharedImages, targetSharedGets),
		fmt.Sprintf("… their API requests ≤ %.1f× one mount's (without the tier)", targetSharedAPI),
		"… the second and third mounts' cold epochs no slower than the first's",
		"Redis killed in the middle of a mount's read: 0 failed reads",
		fmt.Sprintf("Redis with maxmemory %d MB, far below the dataset: 0 failed reads", sharedSmallMaxMemory),
	}
	if s == nil {
		out := make([]target, len(names))
		for i, n := range names {
			out[i] = target{n, "—", nil}
		}
		return out
	}
	tot := s.totals()
	suffix := ""
	if s.Images != targetSharedImages || s.Nodes != targetSharedNodes {
		suffix = fmt.Sprintf("; not judged: measured at %d images and %d mounts, the target names %d and %d",
			s.Images, s.Nodes, targetSharedImages, targetSharedNodes)
	}
	gate := func(ok bool, b *bool) *bool {
		if !ok || suffix != "" {
			return nil
		}
		return b
	}
	var ts []target

	gets := ratio(float64(tot.imageGets), float64(s.Images))
	measured := "—"
	if tot.ok {
		measured = fmt.Sprintf("%d for %d images (%s); export ZIP downloads: %d", tot.imageGets, s.Images, fmtRatio(gets), tot.exportGets)
		if b := s.baseline(); b != nil {
			measured += fmt.Sprintf("; one mount without the tier: %d", b.ImageGets)
		}
		measured += suffix
	}
	ts = append(ts, target{names[0], measured, gate(tot.ok, verdict(gets, func(v float64) bool { return v <= targetSharedGets }))})

	b := s.baseline()
	api := math.NaN()
	measured = "—"
	if tot.ok && b != nil {
		api = ratio(float64(tot.requests), float64(b.Requests.total()))
		measured = fmt.Sprintf("%d against %s (%s)%s", tot.requests, b.Requests, fmtRatio(api), suffix)
	}
	ts = append(ts, target{names[1], measured, gate(tot.ok && b != nil, verdict(api, func(v float64) bool { return v <= targetSharedAPI }))})

	nodes := s.mounts(roleNode)
	measured = "—"
	var slower *bool
	if tot.ok && len(nodes) >= 2 {
		first := nodes[0].Total
		parts := []string{fmt.Sprintf("%s %s", nodes[0].Name, fmtSeconds(first))}
		worst := 0.0
		for _, n := range nodes[1:] {
			parts = append(parts, fmt.Sprintf("%s %s (%s)", n.Name, fmtSeconds(n.Total), fmtRatio(ratio(n.Total, first))))
			worst = max(worst, ratio(n.Total, first))
		}
		measured = strings.Join(parts, ", ") + suffix
		slower = verdict(worst, func(v float64) bool { return v <= 1 })
	}
	ts = append(ts, target{names[2], measured, gate(tot.ok && len(nodes) >= 2, slower)})

	measured = "—"
	var holds *bool
	if k := s.mounts(roleKilled); len(k) == 1 && k[0].Err == "" {
		n := k[0]
		measured = fmt.Sprintf("%s; %s; %d storage GETs of images in all", failedText(n), n.Killed, n.ImageGets)
		if n.KilledMidRead {
			holds = verdict(float64(n.failed()), func(v float64) bool { return v == 0 })
		} else {
			measured += "; not judged: Redis was not killed mid-read"
		}
	}
	ts = append(ts, target{names[3], measured, holds})

	measured, holds = "—", nil
	if sm := s.mounts(roleSmall); len(sm) == sharedSmallNodes {
		failed, ok := 0, true
		var parts []string
		for _, n := range sm {
			ok = ok && n.Err == ""
			failed += n.failed()
			parts = append(parts, fmt.Sprintf("%s: %s, %d storage GETs of images", n.Name, failedText(n), n.ImageGets))
		}
		if ok {
			measured = strings.Join(parts, "; ")
			if s.Bytes >= sharedFarBelow*s.SmallMaxMemory {
				holds = verdict(float64(failed), func(v float64) bool { return v == 0 })
			} else {
				measured += fmt.Sprintf("; not judged: the dataset (%s) is not far above %s", fmtBytes(s.Bytes), fmtBytes(s.SmallMaxMemory))
			}
		}
	}
	ts = append(ts, target{names[4], measured, holds})
	return ts
}
