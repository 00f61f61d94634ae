package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// epochPhase runs the epoch workloads on every system, --runs times.
func (h *harness) epochPhase(ctx context.Context) error {
	for r := range h.cfg.runs {
		h.logf("run %d/%d: %d images", r+1, h.cfg.runs, h.cfg.images)
		if err := h.downloadRun(ctx, r); err != nil {
			return err
		}
		if h.ref == "" {
			return errors.New("no reference copy of the dataset: download-first failed")
		}
		steps := []struct {
			name string
			fn   func(context.Context, int) error
		}{
			{sysLocal, h.localRun},
			{sysFloor, h.floorRun},
			{sysPictofs, h.pictofsRun},
			{sysRclone, func(ctx context.Context, r int) error { return h.peerRun(ctx, r, kindRclone) }},
			{sysS3fs, func(ctx context.Context, r int) error { return h.peerRun(ctx, r, kindS3fs) }},
		}
		for _, st := range steps {
			if (st.name == sysRclone || st.name == sysS3fs) && h.cfg.skipPeers {
				continue
			}
			if r > 0 && h.slow[st.name] {
				continue
			}
			if err := st.fn(ctx, r); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				h.fail(fmt.Sprintf("run %d: %s", r+1, st.name), err)
				h.slow[st.name] = true
			}
		}
	}
	return nil
}

// downloadRun is the download-first baseline; the first run's copy becomes
// the reference that every other system is checked against.
func (h *harness) downloadRun(ctx context.Context, r int) error {
	dst := filepath.Join(h.work, fmt.Sprintf("download-%d", r))
	st, err := downloadFirst(ctx, h.apiURL, h.key, h.dataset, dst, h.cfg.downloadWorkers)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		h.fail(fmt.Sprintf("run %d: download-first", r+1), err)
		return nil
	}
	h.logf("  %-30s %d files, %s in %s (%d API requests)", "download-first download", st.files, fmtBytes(st.bytes), fmtSeconds(st.seconds), st.apiRequests)
	if h.ref == "" {
		if err := h.setReference(ctx, dst); err != nil {
			return err
		}
	}
	for _, wl := range []string{wlLoader, wlReader} {
		res, err := h.epoch(ctx, wl, sysDownload, dst)
		if err != nil {
			h.fail(fmt.Sprintf("run %d: download-first %s", r+1, wl), err)
			continue
		}
		s := h.record(wl, sysDownload, res, st.seconds)
		s.API = append(s.API, st.apiRequests)
	}
	if dst != h.ref {
		return os.RemoveAll(dst)
	}
	return nil
}

// localRun reads the reference copy from disk (page cache dropped first).
func (h *harness) localRun(ctx context.Context, r int) error {
	var errs []error
	for _, wl := range []string{wlLoader, wlReader} {
		h.drop()
		res, err := h.epoch(ctx, wl, sysLocal, h.ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		h.record(wl, sysLocal, res, 0)
	}
	h.drop()
	lat, err := openLatencies(ctx, h.ref, h.sample)
	if err != nil {
		errs = append(errs, err)
	} else {
		h.res.Open[sysLocal] = append(h.res.Open[sysLocal], lat...)
	}
	return errors.Join(errs...)
}

// floorRun reads the reference copy through the FUSE floor, warm (page
// cache dropped before each workload), and checks that the kernel, not the
// daemon, carried the reads.
func (h *harness) floorRun(ctx context.Context, r int) error {
	m, err := h.mountFloor(ctx)
	if err != nil {
		return err
	}
	got := map[string]epochResult{}
	reads := map[string]int64{}
	for _, wl := range []string{wlLoader, wlReader} {
		res, read, err := h.daemonEpoch(ctx, m, wl, sysFloor, m.dir)
		if err != nil {
			return errors.Join(err, m.unmount())
		}
		got[wl], reads[wl] = res, read
	}
	if err := m.unmount(); err != nil {
		return err
	}
	offered := passthroughOffered(m)
	for wl, res := range got {
		s := h.record(wl, sysFloor, res, 0)
		s.DaemonRead = append(s.DaemonRead, reads[wl])
		if offered != nil {
			s.Granted = append(s.Granted, *offered)
		}
	}
	return nil
}

// pictofsRun measures pictofs cold (epoch 1 on an empty cache, then epoch 2
// on the same mount), warm remounts over that cache with passthrough on and
// off, and the open latency of cold files.
func (h *harness) pictofsRun(ctx context.Context, r int) error {
	var errs []error
	warmCache := ""
	for _, wl := range []string{wlLoader, wlReader} {
		cache, err := freshDir(h.work, "cache-pictofs-")
		if err != nil {
			return err
		}
		if err := h.pictofsCold(ctx, wl, cache); err != nil {
			errs = append(errs, err)
			continue
		}
		if wl == wlLoader {
			warmCache = cache
		} else if err := os.RemoveAll(cache); err != nil {
			errs = append(errs, err)
		}
	}
	if warmCache != "" {
		for _, pt := range []bool{true, false} {
			if err := h.pictofsWarm(ctx, warmCache, pt); err != nil {
				errs = append(errs, err)
			}
		}
		if err := os.RemoveAll(warmCache); err != nil {
			errs = append(errs, err)
		}
	}
	if err := h.pictofsOpen(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (h *harness) pictofsCold(ctx context.Context, wl, cache string) error {
	m, err := h.mountPictofs(ctx, cache, true)
	if err != nil {
		return err
	}
	root := filepath.Join(m.dir, h.dataset)
	cold, err := h.epoch(ctx, wl, sysCold, root)
	if err != nil {
		return errors.Join(err, m.unmount())
	}
	warm, read, err := h.daemonEpoch(ctx, m, wl, sysEpoch2, root)
	if err != nil {
		return errors.Join(err, m.unmount())
	}
	if err := m.unmount(); err != nil {
		return err
	}
	s := h.record(wl, sysCold, cold, 0)
	s.API = append(s.API, m.requests.total())
	s.RSS = append(s.RSS, m.rss)
	e2 := h.record(wl, sysEpoch2, warm, 0)
	e2.DaemonRead = append(e2.DaemonRead, read)
	if offered := passthroughOffered(m); offered != nil {
		e2.Granted = append(e2.Granted, *offered)
	}
	return nil
}

func (h *harness) pictofsWarm(ctx context.Context, cache string, passthrough bool) error {
	sys := sysWarm
	if !passthrough {
		sys = sysWarmNoPT
	}
	m, err := h.mountPictofs(ctx, cache, passthrough)
	if err != nil {
		return err
	}
	root := filepath.Join(m.dir, h.dataset)
	got := map[string]epochResult{}
	reads := map[string]int64{}
	for _, wl := range []string{wlLoader, wlReader} {
		res, read, err := h.daemonEpoch(ctx, m, wl, sys, root)
		if err != nil {
			return errors.Join(err, m.unmount())
		}
		got[wl], reads[wl] = res, read
	}
	if err := m.unmount(); err != nil {
		return err
	}
	offered := passthroughOffered(m)
	for wl, res := range got {
		s := h.record(wl, sys, res, 0)
		s.DaemonRead = append(s.DaemonRead, reads[wl])
		if offered != nil && passthrough {
			s.Granted = append(s.Granted, *offered)
		}
		if wl == wlLoader {
			s.API = append(s.API, m.requests.total())
			s.RSS = append(s.RSS, m.rss)
		}
	}
	return nil
}

func (h *harness) pictofsOpen(ctx context.Context) error {
	cache, err := freshDir(h.work, "cache-pictofs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cache)
	m, err := h.mountPictofs(ctx, cache, true)
	if err != nil {
		return err
	}
	lat, err := openLatencies(ctx, filepath.Join(m.dir, h.dataset), h.sample)
	if uerr := m.unmount(); err == nil {
		err = uerr
	}
	if err != nil {
		return err
	}
	h.res.Open[sysPictofs] = append(h.res.Open[sysPictofs], lat...)
	return nil
}

// peerRun measures rclone or s3fs: epoch 1 on an empty cache then epoch 2
// on the same mount, for each workload, and the open latency.
func (h *harness) peerRun(ctx context.Context, r int, kind mountKind) error {
	coldSys, warmSys := sysRcloneCold, sysRcloneWarm
	if kind == kindS3fs {
		coldSys, warmSys = sysS3fsCold, sysS3fsWarm
	}
	var errs []error
	for _, wl := range []string{wlLoader, wlReader} {
		before := h.s3.requests.Load()
		m, err := h.mountPeer(ctx, kind)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cold, err := h.epoch(ctx, wl, coldSys, m.dir)
		if err == nil {
			h.drop()
			var warm epochResult
			if warm, err = h.epoch(ctx, wl, warmSys, m.dir); err == nil {
				h.record(wl, warmSys, warm, 0)
			}
		}
		if uerr := m.unmount(); err == nil {
			err = uerr
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s := h.record(wl, coldSys, cold, 0)
		s.API = append(s.API, h.s3.requests.Load()-before)
		s.RSS = append(s.RSS, m.rss)
		if cold.Total > h.cfg.longRun.Seconds() {
			h.slow[string(kind)] = true
		}
	}
	m, err := h.mountPeer(ctx, kind)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	lat, err := openLatencies(ctx, m.dir, h.sample)
	if uerr := m.unmount(); err == nil {
		err = uerr
	}
	if err != nil {
		errs = append(errs, err)
	} else {
		h.res.Open[string(kind)] = append(h.res.Open[string(kind)], lat...)
	}
	return errors.Join(errs...)
}

// metadataPhase times ls -R, ls -lR and find over each listing dataset's
// images/ on local disk (empty files of the listed sizes) and on pictofs,
// cold (page cache dropped / fresh mount and cache) then warm (again).
func (h *harness) metadataPhase(ctx context.Context) error {
	a := newAPIClient(h.apiURL, h.key, 1)
	defer a.close()
	for _, n := range h.cfg.listSizes {
		name := listDataset(n)
		local := filepath.Join(h.work, name)
		got, err := sparseTree(ctx, a, name, local)
		if err != nil {
			h.fail("metadata: local tree of "+name, err)
			continue
		}
		if got != n {
			h.fail("metadata: local tree of "+name, fmt.Errorf("listing has %d images, want %d", got, n))
			continue
		}
		h.logf("metadata: %d images", n)
		for r := range h.cfg.runs {
			for _, c := range metaCmds {
				h.drop()
				if err := h.metaPair(ctx, n, sysLocal, c, filepath.Join(local, "images")); err != nil {
					h.fail(fmt.Sprintf("metadata %d run %d: local %s", n, r+1, c.name), err)
				}
				if err := h.metaPictofs(ctx, n, c); err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					h.fail(fmt.Sprintf("metadata %d run %d: pictofs %s", n, r+1, c.name), err)
				}
			}
		}
		if err := os.RemoveAll(local); err != nil {
			return fmt.Errorf("remove %s: %w", local, err)
		}
	}
	return nil
}

// metaPair runs c cold then warm over dir and records both.
func (h *harness) metaPair(ctx context.Context, n int, sys string, c metaCmd, dir string) error {
	ms := h.res.meta(n, sys, c.name)
	for i := range 2 {
		took, count, err := runMeta(ctx, c, dir, h.cfg.timeout)
		if err != nil {
			return err
		}
		if count != n {
			return fmt.Errorf("%s listed %d images, want %d", c.name, count, n)
		}
		if i == 0 {
			ms.Cold = append(ms.Cold, took)
		} else {
			ms.Warm = append(ms.Warm, took)
		}
		h.logf("  %-14s %-8s %-5s %s", sys, c.name, []string{"cold", "warm"}[i], fmtSeconds(took))
	}
	return nil
}

func (h *harness) metaPictofs(ctx context.Context, n int, c metaCmd) error {
	cache, err := freshDir(h.work, "cache-pictofs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cache)
	m, err := h.mountPictofs(ctx, cache, true)
	if err != nil {
		return err
	}
	err = h.metaPair(ctx, n, sysPictofs, c, filepath.Join(m.dir, listDataset(n), "images"))
	if uerr := m.unmount(); err == nil {
		err = uerr
	}
	k := strconv.Itoa(n)
	h.res.MetaRSS[k] = append(h.res.MetaRSS[k], m.rss)
	h.res.MetaAPI[k] = append(h.res.MetaAPI[k], m.requests.total())
	return err
}
