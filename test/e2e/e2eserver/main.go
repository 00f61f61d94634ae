// Command e2eserver runs a devserver for the end-to-end tests in its own
// process, built without the race detector: the scale test seeds and lists a
// million images, which the race-instrumented SQLite driver cannot do in CI
// time, and the crash tests kill it with SIGKILL.
//
// It prints one JSON line ({"api", "storage", "admin_key", "org"}) on stdout
// once it listens, and serves until it is killed. An admin listener answers
// GET /stats (devserver.Stats as JSON) and POST /reset.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pictofs/pictofs/devserver"
)

func main() {
	data := flag.String("data", "", "data directory (required)")
	apiAddr := flag.String("addr", "127.0.0.1:0", "API listen address")
	storageAddr := flag.String("storage-addr", "127.0.0.1:0", "storage listen address")
	adminAddr := flag.String("admin-addr", "127.0.0.1:0", "admin (stats) listen address")
	name := flag.String("dataset", "scale", "name of the synthetic dataset")
	n := flag.Int("synthetic", 0, "seed this many synthetic images (once per data directory)")
	dirs := flag.Int("dirs", 0, "directories of the synthetic dataset (<= 1: all at the top)")
	storageLatency := flag.Duration("storage-latency", 0, "delay before every storage response")
	flag.Parse()
	if err := run(*data, *apiAddr, *storageAddr, *adminAddr, *name, *n, *dirs, *storageLatency); err != nil {
		log.Fatal(err)
	}
}

func run(data, apiAddr, storageAddr, adminAddr, name string, n, dirs int, storageLatency time.Duration) error {
	if data == "" {
		return fmt.Errorf("-data is required")
	}
	ctx := context.Background()
	srv, err := devserver.New(ctx, devserver.Options{
		DataDir: data, APIAddr: apiAddr, StorageAddr: storageAddr, StorageLatency: storageLatency,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	if n > 0 {
		if _, err := srv.Dataset(ctx, srv.DefaultOrg(), name); err != nil {
			start := time.Now()
			if err := srv.SeedSynthetic(ctx, srv.DefaultOrg(), name, n, dirs); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "e2eserver: seeded %d images in %v\n", n, time.Since(start).Round(time.Millisecond))
		}
	}
	if err := srv.Start(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", adminAddr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(srv.Stats())
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		srv.ResetStats()
	})
	go http.Serve(ln, mux)
	err = json.NewEncoder(os.Stdout).Encode(map[string]string{
		"api": srv.APIURL(), "storage": srv.StorageURL(), "admin": "http://" + ln.Addr().String(),
		"admin_key": srv.AdminKey(), "org": srv.DefaultOrg(),
	})
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	<-sigs
	return nil
}
