package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pictofs/pictofs/fs"
)

// Shutdown timing.
const (
	// unmountRetryEvery is how often a busy mount is tried again during the
	// SIGTERM grace period.
	unmountRetryEvery = 250 * time.Millisecond
	// abortWait bounds how long an abort waits for fetches to stop and the
	// serve loop to end before the daemon exits anyway: the process exit
	// closes /dev/fuse, which ends every request still waiting.
	abortWait = 3 * time.Second
)

// serveUntilStopped serves until the mount goes away (an outside unmount)
// or a signal ends it:
//
//   - SIGINT unmounts an idle mount. On a busy one it says so and keeps
//     serving; a second SIGINT aborts: the mount is detached, every
//     in-flight request and fetch is cancelled, and the daemon exits.
//   - SIGTERM unmounts an idle mount. On a busy one it tries again until
//     --shutdown-grace has passed, then aborts. Any further signal aborts
//     at once.
//   - ctx ending aborts.
//
// It returns nil in every case: the daemon was asked to stop, and stopped.
func (d *mountDaemon) serveUntilStopped(ctx context.Context) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	go func() {
		d.m.Wait()
		close(done)
	}()
	notifySystemd("READY=1")

	var grace <-chan time.Time
	var retry *time.Ticker
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	var retryC <-chan time.Time
	signals := 0
	for {
		select {
		case <-done:
			d.log.Info("unmounted", logKeyMountpoint, d.m.Dir(), "api_requests", d.api.APIRequests(), "storage_requests", d.api.StorageRequests())
			return nil
		case <-ctx.Done():
			return d.abort("context ended", done)
		case <-grace:
			return d.abort(fmt.Sprintf("still busy %v after SIGTERM", d.cfg.ShutdownGrace), done)
		case <-retryC:
			if err := d.m.Unmount(false); err == nil {
				retryC = nil
			}
		case sig := <-sigs:
			signals++
			notifySystemd("STOPPING=1")
			d.log.Info("shutdown requested", "signal", sig.String(), logKeyMountpoint, d.m.Dir())
			if signals > 1 {
				return d.abort("second signal", done)
			}
			err := d.m.Unmount(false)
			switch {
			case err == nil:
				continue
			case !errors.Is(err, fs.ErrBusy):
				d.log.Error("unmount failed", logKeyMountpoint, d.m.Dir(), logKeyErr, err)
				fmt.Fprintf(os.Stderr, "pictofs: %v (signal again to detach and exit)\n", err)
				continue
			}
			if sig == syscall.SIGTERM {
				d.log.Warn("mount busy; waiting for it to become idle", logKeyMountpoint, d.m.Dir(), "grace", d.cfg.ShutdownGrace.String())
				grace = time.After(d.cfg.ShutdownGrace)
				retry = time.NewTicker(unmountRetryEvery)
				retryC = retry.C
				continue
			}
			d.log.Warn("mount busy", logKeyMountpoint, d.m.Dir())
			fmt.Fprintf(os.Stderr, "pictofs: %s is busy: files on it are open or being read. Close them and press Ctrl-C again, or press Ctrl-C again now to detach and exit (readers get an error).\n", d.m.Dir())
		}
	}
}

// abort detaches the mount and cancels everything in flight, waiting at
// most abortWait for it.
func (d *mountDaemon) abort(reason string, done <-chan struct{}) error {
	d.log.Warn("aborting the mount", logKeyMountpoint, d.m.Dir(), "reason", reason)
	aborted := make(chan struct{})
	go func() {
		d.m.Abort()
		close(aborted)
	}()
	deadline := time.NewTimer(abortWait)
	defer deadline.Stop()
	select {
	case <-aborted:
	case <-deadline.C:
		d.log.Warn("abort still running; exiting anyway", logKeyMountpoint, d.m.Dir())
		return nil
	}
	select {
	case <-done:
	case <-deadline.C:
		// No fusectl: the kernel connection ends when this process exits.
	}
	d.log.Info("detached", logKeyMountpoint, d.m.Dir(), "api_requests", d.api.APIRequests(), "storage_requests", d.api.StorageRequests())
	return nil
}

// notifySystemd sends a state line to systemd when it started this process
// with Type=notify (NOTIFY_SOCKET set); otherwise it does nothing.
func notifySystemd(state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	conn.Write([]byte(state))
}
