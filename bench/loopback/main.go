// Command loopback is the benchmark's FUSE floor: go-fuse's loopback node
// (fs.NewLoopbackRoot) serving a local folder, with what makes a Go FUSE
// file system over local files as fast as it can be: passthrough reads
// (its files return their descriptor from PassthroughFd, so with a kernel
// that grants FUSE passthrough the daemon never sees a read), DirectMount,
// DisableXAttrs and one-hour entry, attribute and negative timeouts. The
// harness (go run ./bench) builds and starts it, reads the same files
// through it as through pictofs, and unmounts it.
//
//	loopback SOURCE MOUNTPOINT
//
// It logs one line "mounted ... passthrough=<bool>" (whether the kernel
// granted FUSE passthrough at INIT), serves until the mount point is
// unmounted or it gets SIGINT/SIGTERM (then it unmounts), and exits 0.
package main

import (
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// timeout is the entry, attribute and negative timeout.
const timeout = time.Hour

// Mount options, also printed in the benchmark report.
var mountOptions = fuse.MountOptions{
	FsName:        "pictofs-bench-floor",
	Name:          "loopback",
	DirectMount:   true,
	DisableXAttrs: true,
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("loopback: ")
	if len(os.Args) != 3 {
		log.Fatalf("usage: loopback SOURCE MOUNTPOINT")
	}
	src, mnt := os.Args[1], os.Args[2]
	root, err := fs.NewLoopbackRoot(src)
	if err != nil {
		log.Fatalf("loopback root %s: %v", src, err)
	}
	t := timeout
	server, err := fs.Mount(mnt, root, &fs.Options{
		EntryTimeout: &t, AttrTimeout: &t, NegativeTimeout: &t,
		MountOptions: mountOptions,
	})
	if err != nil {
		log.Fatalf("mount %s: %v", mnt, err)
	}
	granted := server.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH != 0
	fmt.Fprintf(os.Stderr, "mounted source=%s mountpoint=%s passthrough=%t entry_timeout=%v attr_timeout=%v negative_timeout=%v direct_mount=%t disable_xattrs=%t\n",
		src, mnt, granted, t, t, t, mountOptions.DirectMount, mountOptions.DisableXAttrs)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		if err := server.Unmount(); err != nil {
			log.Printf("unmount: %v", err)
		}
	}()
	server.Wait()
	fmt.Fprintln(os.Stderr, "unmounted")
}
