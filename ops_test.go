package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/control"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

// scrape reads /metrics and returns the value of every sample, keyed by
// name{label="value",…} with the labels sorted.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			key := name
			if len(m.GetLabel()) > 0 {
				var parts []string
				for _, l := range m.GetLabel() {
					parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				key += "{" + strings.Join(parts, ",") + "}"
			}
			out[key] = sampleValue(f.GetType(), m)
		}
	}
	return out
}

func sampleValue(typ dto.MetricType, m *dto.Metric) float64 {
	switch typ {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return m.GetUntyped().GetValue()
}

// listenAddr is the address a daemon logged for one of its listeners.
func listenAddr(t *testing.T, d *daemon, service string) string {
	t.Helper()
	line, ok := d.log.waitFor(`"service":"`+service+`"`, 5*time.Second, d.done)
	if !ok {
		t.Fatalf("no %s listener in the log:\n%s", service, d.log.String())
	}
	var ev struct{ Addr string }
	if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Addr == "" {
		t.Fatalf("listener line %q: %v", line, err)
	}
	return ev.Addr
}

// TestMetricsDuringRead scrapes /metrics while a read waits on slow storage
// and after it, and checks each counter moved as the read says it should;
// a second read of the same file is a cache hit that costs no request.
// It also checks pprof on loopback, status, and the JSON log.
func TestMetricsDuringRead(t *testing.T) {
	e := newOpsEnv(t)
	// Without passthrough every read of a cached file reaches the daemon, so
	// read operations show in the metrics.
	d := e.startMount(t, "--metrics-addr", ":0", "--pprof-addr", ":0", "--log-level", "debug", "--prefetch-workers", "4", "--passthrough=false")
	addr := listenAddr(t, d, "metrics")
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("--metrics-addr :0 listens on %s; want loopback only", addr)
	}
	path := imagePath(d.mnt, 2)
	st, err := os.Stat(path) // lists the dataset
	if err != nil {
		t.Fatal(err)
	}
	before := scrape(t, addr)

	e.srv.SetFaults(devserver.Faults{StorageLatency: 500 * time.Millisecond})
	read := make(chan error, 1)
	go func() {
		b, err := os.ReadFile(path)
		if err == nil && int64(len(b)) != st.Size() {
			err = fmt.Errorf("read %d bytes, want %d", len(b), st.Size())
		}
		read <- err
	}()
	testkit.WaitFor(t, "a fetch in flight in /metrics", 10*time.Second, func() bool {
		return scrape(t, addr)["pictofs_prefetch_in_flight"] >= 1
	})
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	e.srv.SetFaults(devserver.Faults{})
	after := scrape(t, addr)

	grew := func(key string, atLeast float64) {
		t.Helper()
		if got := after[key] - before[key]; got < atLeast {
			t.Errorf("%s grew by %v during the read; want at least %v", key, got, atLeast)
		}
	}
	grew(`pictofs_fuse_operations_total{errno="OK",op="open"}`, 1)
	grew(`pictofs_fuse_operation_duration_seconds{op="open"}`, 1)
	grew(`pictofs_fuse_operations_total{errno="OK",op="read"}`, 1)
	grew(`pictofs_storage_requests_total{status="200"}`, 1)
	grew(`pictofs_storage_bytes_total`, float64(st.Size()))
	grew(`pictofs_cache_fills_total`, 1)
	grew(`pictofs_cache_misses_total`, 1)
	grew(`pictofs_prefetch_fetched_total`, 1)
	grew(`pictofs_api_requests_total{route="GET /datasets/{dataset}/download",status="200"}`, 1)
	if after["pictofs_cache_bytes"] < float64(st.Size()) {
		t.Errorf("pictofs_cache_bytes = %v after the read; want at least %d", after["pictofs_cache_bytes"], st.Size())
	}
	if got := after["pictofs_cache_capacity_bytes"]; got != 10<<30 {
		t.Errorf("pictofs_cache_capacity_bytes = %v; want %d (the default --cache-size)", got, int64(10<<30))
	}
	for _, k := range []string{"go_goroutines", "process_resident_memory_bytes", "go_memstats_heap_inuse_bytes"} {
		if _, ok := after[k]; !ok {
			t.Errorf("%s missing from /metrics", k)
		}
	}

	// The same file again: served from the cache, no storage request.
	if _, err := os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	again := scrape(t, addr)
	if got := again[`pictofs_storage_requests_total{status="200"}`] - after[`pictofs_storage_requests_total{status="200"}`]; got != 0 {
		t.Errorf("a cached read made %v storage requests; want 0", got)
	}

	pprofAddr := listenAddr(t, d, "pprof")
	if resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/goroutine?debug=1"); err != nil || resp.StatusCode != 200 {
		t.Errorf("pprof at %s: %v %v", pprofAddr, resp, err)
	} else {
		resp.Body.Close()
	}

	checkStatus(t, e, d)

	d.signal(t, syscall.SIGINT)
	d.waitExit(t, exitBound)
	checkJSONLog(t, d)
}

// checkStatus runs `pictofs status` against a running daemon.
func checkStatus(t *testing.T, e *opsEnv, d *daemon) {
	t.Helper()
	out, err := e.command(t, "status", "--json", d.mnt).Output()
	if err != nil {
		t.Fatalf("pictofs status --json: %v", err)
	}
	var st control.Status
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status --json: %v: %s", err, out)
	}
	if st.Mountpoint != d.mnt || st.PID != d.cmd.Process.Pid {
		t.Errorf("status: mount point %q pid %d; want %q pid %d", st.Mountpoint, st.PID, d.mnt, d.cmd.Process.Pid)
	}
	if len(st.Datasets) != 1 || st.Datasets[0] != opsDataset {
		t.Errorf("status datasets: got %v, want [%s]", st.Datasets, opsDataset)
	}
	if st.Cache.Cap != 10<<30 || st.Cache.Bytes <= 0 || st.Cache.Blobs < 1 {
		t.Errorf("status cache: got %+v, want a 10 GiB cap and the blob read", st.Cache)
	}
	if st.Requests.API < 3 || st.Requests.LastHour < 3 || st.Requests.Storage < 1 {
		t.Errorf("status requests: got %+v; want the key check, listings and a storage request counted", st.Requests)
	}
	if st.Requests.Budget != 0 {
		t.Errorf("status budget: got %d, want 0 (none set)", st.Requests.Budget)
	}
	text, err := e.command(t, "status").Output()
	if err != nil || !strings.Contains(string(text), d.mnt) || !strings.Contains(string(text), "datasets:    "+opsDataset) {
		t.Errorf("pictofs status (all mounts): %v\n%s", err, text)
	}
	sock := control.SocketPath(filepath.Join(e.home, "run", "pictofs"), d.mnt)
	for p, want := range map[string]os.FileMode{sock: 0o600, filepath.Dir(sock): 0o700} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v); want %v", p, fi.Mode().Perm(), err, want)
		}
	}
}

// checkJSONLog checks that every log line is a JSON object with the stable
// keys, and that the notable events are there.
func checkJSONLog(t *testing.T, d *daemon) {
	t.Helper()
	seen := map[string]bool{}
	for _, ev := range d.log.events(t) {
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := ev[k]; !ok {
				t.Errorf("log event without %q: %v", k, ev)
			}
		}
		msg, _ := ev["msg"].(string)
		seen[msg] = true
		if msg == "mounted" || msg == "unmounted" {
			if ev["mountpoint"] != d.mnt {
				t.Errorf("event %q: mountpoint %v, want %q", msg, ev["mountpoint"], d.mnt)
			}
		}
	}
	for _, msg := range []string{"mounted", "listening", "shutdown requested", "unmounted"} {
		if !seen[msg] {
			t.Errorf("no %q event in the log", msg)
		}
	}
}

// TestWarm warms a folder through a running mount, refuses what does not
// fit, stops cleanly on Ctrl-C, and warms a dataset without a mount.
func TestWarm(t *testing.T) {
	e := newOpsEnv(t)
	d := e.startMount(t, "--prefetch-workers", "4")

	out, err := e.command(t, "warm", filepath.Join(d.mnt, opsDataset, "images", "dir-001")).CombinedOutput()
	if err != nil {
		t.Fatalf("pictofs warm: %v\n%s", err, out)
	}
	want := fmt.Sprintf("warmed %s: %d of %d files", filepath.Join(opsDataset, "dir-001"), opsImages, opsImages)
	if !strings.Contains(string(out), want) {
		t.Errorf("warm output: got\n%s\nwant a summary %q (images and documents of dir-001)", out, want)
	}
	statusOut, err := e.command(t, "status", "--json", d.mnt).Output()
	if err != nil {
		t.Fatal(err)
	}
	var st control.Status
	json.Unmarshal(statusOut, &st)
	if st.Cache.Blobs < opsImages/2 {
		t.Errorf("after warming dir-001 the cache holds %d blobs; want at least its %d images", st.Cache.Blobs, opsImages/2)
	}

	// Ctrl-C on a warm that waits on slow storage: exit 130 at once, and
	// the daemon keeps serving.
	e.srv.SetFaults(devserver.Faults{StorageLatency: slowAPI})
	warm := e.command(t, "warm", filepath.Join(d.mnt, opsDataset, "dir-000"))
	warmOut := newLineLog()
	stderr, err := warm.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := warm.Start(); err != nil {
		t.Fatal(err)
	}
	warmDone := make(chan struct{})
	go func() { warmOut.consume(stderr); close(warmDone) }()
	if _, ok := warmOut.waitFor("to fetch", 10*time.Second, warmDone); !ok {
		t.Fatalf("the warm did not start:\n%s", warmOut.String())
	}
	start := time.Now()
	warm.Process.Signal(syscall.SIGINT)
	<-warmDone
	err = warm.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Errorf("interrupted warm: got %v, want exit status 130\n%s", err, warmOut.String())
	}
	if took := time.Since(start); took > exitBound {
		t.Errorf("interrupted warm took %v to exit; want under %v", took, exitBound)
	}
	e.srv.SetFaults(devserver.Faults{})
	if _, err := e.command(t, "status", d.mnt).Output(); err != nil {
		t.Errorf("status after an interrupted warm: %v", err)
	}

	// Without a mount, into another cache directory; then a cache too small.
	cache := filepath.Join(t.TempDir(), "cache")
	out, err = e.command(t, "warm", "--dataset", opsDataset, "--cache-dir", cache).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("of %d files", 2*opsImages)) {
		t.Errorf("pictofs warm --dataset: %v\n%s", err, out)
	}
	out, err = e.command(t, "warm", "--dataset", opsDataset, "--cache-dir", filepath.Join(t.TempDir(), "small"), "--cache-size", "4KiB").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "does not fit the cache") {
		t.Errorf("warm into a 4 KiB cache: got %v\n%s\nwant a refusal saying it does not fit", err, out)
	}
}
