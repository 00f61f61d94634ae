package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"github.com/pictofs/pictofs/internal/control"
)

// warmProgressEvery is how often a warm streams its progress to the caller.
const warmProgressEvery = 250 * time.Millisecond

// startServices starts the control socket and, when asked for, the metrics
// and profile listeners. Each one's stop function joins d.services.
func (d *mountDaemon) startServices() error {
	if err := d.startControl(); err != nil {
		// status and warm need it, but the mount itself does not.
		d.log.Warn("no control socket: pictofs status and warm cannot reach this mount", logKeyErr, err)
	}
	if d.cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", d.metrics.Handler())
		if err := d.listenHTTP("metrics", d.cfg.MetricsAddr, mux); err != nil {
			return fmt.Errorf("--metrics-addr %s: %w", d.cfg.MetricsAddr, err)
		}
	}
	if d.cfg.PprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		if err := d.listenHTTP("pprof", d.cfg.PprofAddr, mux); err != nil {
			return fmt.Errorf("--pprof-addr %s: %w", d.cfg.PprofAddr, err)
		}
	}
	return nil
}

// listenHTTP serves h on addr until the daemon closes.
func (d *mountDaemon) listenHTTP(name, addr string, h http.Handler) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if !isLoopback(addr) {
		d.log.Warn("listening beyond loopback", "service", name, "addr", l.Addr().String())
	}
	d.serve(name, l, h)
	d.log.Info("listening", "service", name, "addr", l.Addr().String())
	return nil
}

// serve runs an HTTP server on l and registers its shutdown.
func (d *mountDaemon) serve(name string, l net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Warn("listener stopped", "service", name, logKeyErr, err)
		}
	}()
	d.services = append(d.services, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
	})
}

// startControl listens on the mount's control socket.
func (d *mountDaemon) startControl() error {
	l, path, err := control.Listen(control.Dir(), d.m.Dir())
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+control.StatusPath, d.handleStatus)
	mux.HandleFunc("POST "+control.WarmPath, d.handleWarm)
	d.serve("control", l, mux)
	d.services = append(d.services, func() { os.Remove(path) })
	d.log.Debug("control socket", "path", path)
	return nil
}

// status is what `pictofs status` shows of this mount.
func (d *mountDaemon) status() control.Status {
	var s control.Status
	s.Mountpoint = d.m.Dir()
	s.PID = os.Getpid()
	s.Version = version
	s.API = d.api.BaseURL().Host
	s.Organization = d.org.Name
	s.Started = d.started
	s.Passthrough = d.m.Passthrough()
	s.Datasets = d.m.Datasets()
	cs := d.cache.Stats()
	s.Cache.Dir = d.cfg.CacheDir
	s.Cache.Bytes = cs.Bytes + cs.Reserved
	s.Cache.Cap = d.cache.MaxBytes()
	s.Cache.Blobs = cs.Count
	s.Cache.Hits, s.Cache.Misses, s.Cache.Evictions = cs.Hits, cs.Misses, cs.Evictions
	s.Requests.LastHour = d.metrics.APIRequestsLastHour()
	if left, limited := d.budgetLeft(); limited {
		s.Requests.Budget = d.cfg.API.RequestsPerHour
		s.Requests.BudgetLeft = left
	}
	s.Requests.API = d.api.APIRequests()
	s.Requests.Storage = d.api.StorageRequests()
	ps := d.pf.Stats()
	s.Prefetch.Queued, s.Prefetch.InFlight = ps.Queued, ps.InFlight
	s.Prefetch.Fetched, s.Prefetch.Failed = ps.Fetched, ps.Failed
	return s
}

func (d *mountDaemon) handleStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(d.status())
}

// handleWarm runs a warm in the daemon and streams its progress as NDJSON
// lines; the caller going away cancels it.
func (d *mountDaemon) handleWarm(w http.ResponseWriter, r *http.Request) {
	var req control.WarmRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "bad warm request: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	var mu sync.Mutex // guards enc, last and the response writer
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	send := func(line control.WarmLine) {
		enc.Encode(line)
		if flusher != nil {
			flusher.Flush()
		}
	}
	var last time.Time
	progress := func(p control.WarmProgress) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < warmProgressEvery && p.Files < p.TotalFiles {
			return
		}
		last = time.Now()
		send(control.WarmLine{Progress: &p})
	}
	d.log.Info("warm started", "dataset", req.Dataset, "subdir", req.Subdir)
	res, err := warmCatalog(r.Context(), d.cat, req.Dataset, req.Subdir, progress)
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		d.log.Warn("warm failed", "dataset", req.Dataset, "subdir", req.Subdir, logKeyErr, err)
		send(control.WarmLine{Error: err.Error()})
		return
	}
	d.log.Info("warm done", "dataset", req.Dataset, "subdir", req.Subdir, "files", res.Files, "bytes", res.Bytes, "failed", res.Failed)
	send(control.WarmLine{Result: &res})
}
