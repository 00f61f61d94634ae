package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/fs"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

// Bounds of the shutdown tests: generous for a loaded CI machine, tight
// enough to catch a daemon that waits out a slow API (60 s here).
const (
	exitBound   = 5 * time.Second  // the bound after the last signal
	readerBound = 5 * time.Second  // a blocked reader gets its error
	slowAPI     = 60 * time.Second // the injected API latency
)

// TestShutdownIdle: SIGINT or SIGTERM on an idle mount unmounts and exits 0.
func TestShutdownIdle(t *testing.T) {
	e := newOpsEnv(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			d := e.startMount(t)
			if _, err := os.ReadFile(imagePath(d.mnt, 0)); err != nil {
				t.Fatal(err)
			}
			d.signal(t, sig)
			d.waitExit(t, exitBound)
			if d.err != nil {
				t.Errorf("exit: got %v, want status 0", d.err)
			}
			if mounted, _ := fs.IsMountpoint(d.mnt); mounted {
				t.Errorf("%s is still mounted", d.mnt)
			}
			if _, ok := d.log.waitFor(`"msg":"unmounted"`, 0, d.done); !ok {
				t.Errorf("no unmounted event in the log:\n%s", d.log.String())
			}
		})
	}
}

// blockedReader opens image i of a mount whose API answers only after
// slowAPI, and waits until its request has reached the server, so the
// reader is blocked inside the daemon. The channel gets the read's error.
func blockedReader(t *testing.T, e *opsEnv, d *daemon, i int) <-chan error {
	t.Helper()
	path := imagePath(d.mnt, i)
	if _, err := os.Stat(path); err != nil { // lists the dataset while the API is fast
		t.Fatal(err)
	}
	before := e.srv.Stats().APIRequests
	e.srv.SetFaults(devserver.Faults{APILatency: slowAPI})
	t.Cleanup(func() { e.srv.SetFaults(devserver.Faults{}) })
	res := make(chan error, 1)
	go func() {
		_, err := os.ReadFile(path)
		res <- err
	}()
	testkit.WaitFor(t, "the reader's API request to reach the server", 10*time.Second, func() bool {
		return e.srv.Stats().APIRequests > before
	})
	return res
}

// checkAbortedExit checks what a daemon that exited on a busy mount left:
// exit status 0, the blocked reader failed, nothing mounted, no partial
// blob in the cache.
func checkAbortedExit(t *testing.T, d *daemon, reader <-chan error) {
	t.Helper()
	if d.err != nil {
		t.Errorf("exit: got %v, want status 0", d.err)
	}
	select {
	case err := <-reader:
		if err == nil {
			t.Errorf("the blocked reader got its file; want an error")
		}
	case <-time.After(readerBound):
		t.Errorf("the blocked reader still waits %v after the daemon exited", readerBound)
	}
	if mounted, _ := fs.IsMountpoint(d.mnt); mounted {
		t.Errorf("%s is still mounted", d.mnt)
	}
	checkNoPartialBlobs(t, d.cache)
}

// TestShutdownBusySIGINTTwice: with a reader blocked on a slow API, the
// first SIGINT says the mount is busy and keeps serving; the second
// detaches, fails the reader at once, leaves nothing partial in the cache
// and exits within 5 s.
func TestShutdownBusySIGINTTwice(t *testing.T) {
	e := newOpsEnv(t)
	d := e.startMount(t)
	reader := blockedReader(t, e, d, 1)

	d.signal(t, syscall.SIGINT)
	if _, ok := d.log.waitFor(`"msg":"mount busy"`, exitBound, d.done); !ok {
		t.Fatalf("the first SIGINT did not report a busy mount:\n%s", d.log.String())
	}
	if mounted, _ := fs.IsMountpoint(d.mnt); !mounted {
		t.Fatalf("the first SIGINT on a busy mount unmounted it")
	}
	select {
	case err := <-reader:
		t.Fatalf("the reader ended after the first SIGINT (%v); it should still be served", err)
	default:
	}

	d.signal(t, syscall.SIGINT)
	took := d.waitExit(t, exitBound)
	t.Logf("exited %v after the second SIGINT", took.Round(time.Millisecond))
	checkAbortedExit(t, d, reader)
}

// TestShutdownSIGTERMGrace: SIGTERM on a busy mount waits the grace period
// for it to become idle, then aborts and exits.
func TestShutdownSIGTERMGrace(t *testing.T) {
	e := newOpsEnv(t)
	const grace = time.Second
	d := e.startMount(t, "--shutdown-grace", grace.String())
	reader := blockedReader(t, e, d, 3)
	d.signal(t, syscall.SIGTERM)
	took := d.waitExit(t, grace+exitBound)
	t.Logf("exited %v after SIGTERM (grace %v)", took.Round(time.Millisecond), grace)
	if took < grace-100*time.Millisecond {
		t.Errorf("exited %v after SIGTERM: before its %v grace period", took, grace)
	}
	checkAbortedExit(t, d, reader)
}

// TestShutdownDuringSlowListing is the case: an `ls` waits on a
// slow listing while Ctrl-C is pressed twice; the daemon must exit and the
// ls must end with an error.
func TestShutdownDuringSlowListing(t *testing.T) {
	e := newOpsEnv(t)
	d := e.startMount(t)
	if _, err := os.ReadDir(d.mnt); err != nil { // the root listing, while the API is fast
		t.Fatal(err)
	}
	before := e.srv.Stats().APIRequests
	e.srv.SetFaults(devserver.Faults{APILatency: slowAPI})
	t.Cleanup(func() { e.srv.SetFaults(devserver.Faults{}) })
	ls := exec.Command("ls", "-l", filepath.Join(d.mnt, opsDataset, "images", "dir-000"))
	if err := ls.Start(); err != nil {
		t.Fatal(err)
	}
	lsDone := make(chan error, 1)
	go func() { lsDone <- ls.Wait() }()
	testkit.WaitFor(t, "the listing request to reach the server", 10*time.Second, func() bool {
		return e.srv.Stats().APIRequests > before
	})

	d.signal(t, syscall.SIGINT)
	if _, ok := d.log.waitFor(`"msg":"mount busy"`, exitBound, d.done); !ok {
		t.Fatalf("the first SIGINT did not report a busy mount:\n%s", d.log.String())
	}
	d.signal(t, syscall.SIGINT)
	d.waitExit(t, exitBound)
	select {
	case err := <-lsDone:
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Errorf("ls: got %v, want it to fail", err)
		}
	case <-time.After(readerBound):
		ls.Process.Kill()
		t.Errorf("ls still runs %v after the daemon exited", readerBound)
	}
	if mounted, _ := fs.IsMountpoint(d.mnt); mounted {
		t.Errorf("%s is still mounted", d.mnt)
	}
}
