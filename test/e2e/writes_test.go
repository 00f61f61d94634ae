package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
)

// TestCopy500ImagesThroughAFreshMount copies a folder of 500 small images
// into a dataset with cp -r, then reads every one of them back through a
// second mount with an empty cache and compares the bytes: what a mount
// uploads is what the server serves. The first mount serves its own uploads
// from the cache, with no download.
func TestCopy500ImagesThroughAFreshMount(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	testenv.EmptyDataset(t, srv, "copied")
	src := filepath.Join(t.TempDir(), "batch")
	want := map[string][]byte{}
	for i := range 500 {
		rel := filepath.Join(fmt.Sprintf("part%d", i%5), fmt.Sprintf("%04d.png", i))
		b := testenv.PNG(t, i)
		want[filepath.Join("images", "batch", rel)] = b
		os.MkdirAll(filepath.Join(src, filepath.Dir(rel)), 0o755)
		if err := os.WriteFile(filepath.Join(src, rel), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cacheDir := filepath.Join(t.TempDir(), "cache")
	tm := mount(t, srv, testenv.Options{CacheDir: cacheDir, Writable: true})
	start := time.Now()
	if out, err := exec.Command("cp", "-r", src, filepath.Join(tm.Dir, "copied", "images")).CombinedOutput(); err != nil {
		t.Fatalf("cp -r: %v\n%s", err, out)
	}
	took := time.Since(start)
	st := srv.Stats()
	t.Logf("cp -r of 500 images took %v: %d API requests", took.Round(time.Millisecond), st.APIRequests)
	before := st.StorageGets
	if out, err := exec.Command("cmp", filepath.Join(src, "part3", "0003.png"), filepath.Join(tm.Dir, "copied", "images", "batch", "part3", "0003.png")).CombinedOutput(); err != nil {
		t.Errorf("cmp through the writing mount: %v %s", err, out)
	}
	if got := srv.Stats().StorageGets - before; got != 0 {
		t.Errorf("reading an upload back through the mount that wrote it cost %d storage GETs, want 0", got)
	}
	ds, err := srv.Dataset(context.Background(), srv.DefaultOrg(), "copied")
	if err != nil || ds.ImageCount != 500 {
		t.Fatalf("server: %+v %v, want 500 images", ds, err)
	}
	for rel := range want {
		if strings.HasPrefix(rel, "images") {
			ann := filepath.Join("annotations", strings.TrimPrefix(rel, "images"+string(filepath.Separator))) + ".json"
			want[ann] = []byte(fmt.Sprintf("{\n  \"image\": %q,\n  \"annotations\": []\n}", filepath.Base(rel)))
		}
	}
	fresh := mount(t, srv, testenv.Options{})
	tl := readTree(t, filepath.Join(fresh.Dir, "copied"), want, 8)
	if tl.failed != 0 || tl.files != len(want) {
		t.Errorf("fresh mount: %v; want all %d files equal to what was copied", tl, len(want))
	}
}

// stagedSidecars reads the sidecars of a staging directory.
func stagedSidecars(t *testing.T, dir string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		var sc map[string]any
		if json.Unmarshal(b, &sc) == nil {
			out[strings.TrimSuffix(e.Name(), ".json")] = sc
		}
	}
	return out
}

// TestCrashWhileWriting kills `pictofs mount` with SIGKILL while one file is
// still being written and two others, closed, are being uploaded (the API
// is slow). Nothing may be lost: the next mount uploads the two closed
// files — or, for the one whose name another client took meanwhile, keeps
// it and says where — and keeps and reports the one that was cut short.
func TestCrashWhileWriting(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	testenv.EmptyDataset(t, srv, "crash")
	bin, _ := binaries(t)
	cacheDir := filepath.Join(t.TempDir(), "cache")
	staging := filepath.Join(cacheDir, "staging")
	mnt := t.TempDir()
	env := append(baseEnv(t), "PICTOGRAPH_API_KEY="+srv.AdminKey())
	p := mountProc(t, env, mnt, "--api-url", srv.APIURL(), "--cache-dir", cacheDir)
	images := filepath.Join(mnt, "crash", "images")
	if _, err := os.ReadDir(images); err != nil {
		t.Fatal(err)
	}
	partial, err := os.OpenFile(filepath.Join(images, "partial.png"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer partial.Close()
	if _, err := partial.Write(testenv.PNG(t, 1)[:20]); err != nil {
		t.Fatal(err)
	}
	srv.SetFaults(devserver.Faults{APILatency: 20 * time.Second})
	closed := make(chan error, 2)
	for _, name := range []string{"closed.png", "taken.png"} {
		go func() { closed <- os.WriteFile(filepath.Join(images, name), testenv.PNG(t, len(name)), 0o644) }()
	}
	deadline := time.Now().Add(30 * time.Second)
	for complete := 0; complete < 2; {
		complete = 0
		for _, sc := range stagedSidecars(t, staging) {
			if sc["complete"] == true {
				complete++
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two closed files never reached their upload: %v", stagedSidecars(t, staging))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	for range 2 {
		if err := <-closed; err == nil {
			t.Errorf("close of a file whose upload was cut by the crash returned no error")
		}
	}
	srv.SetFaults(devserver.Faults{})
	partial.Close()
	if out, err := exec.Command(bin, "unmount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("pictofs unmount of the dead mount: %v\n%s", err, out)
	}
	if n := len(stagedSidecars(t, staging)); n != 3 {
		t.Fatalf("staging area holds %d files after the crash, want 3 (one partial, two closed)", n)
	}
	// Meanwhile, another client takes one of the names.
	api := testenv.Client(t, srv, srv.AdminKey())
	other := testenv.PNG(t, 999)
	if _, err := api.UploadImage(context.Background(), "crash", "/", "taken.png", "image/png", other, 0, 0); err != nil {
		t.Fatal(err)
	}

	p2 := mountProc(t, env, mnt, "--api-url", srv.APIURL(), "--cache-dir", cacheDir)
	deadline = time.Now().Add(60 * time.Second)
	for {
		ds, err := srv.Dataset(context.Background(), srv.DefaultOrg(), "crash")
		if err == nil && ds.ImageCount == 2 && len(stagedSidecars(t, staging)) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the remount did not upload closed.png: server %+v %v, staged %v\n%s", ds, err, stagedSidecars(t, staging), p2.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got, err := os.ReadFile(filepath.Join(images, "closed.png"))
	if err != nil || !bytes.Equal(got, testenv.PNG(t, len("closed.png"))) {
		t.Errorf("closed.png after the remount: %d bytes, %v; want what was written", len(got), err)
	}
	if got, _ := os.ReadFile(filepath.Join(images, "taken.png")); !bytes.Equal(got, other) {
		t.Errorf("taken.png was overwritten by the staged file of the same name")
	}
	kept := stagedSidecars(t, staging)
	logs := p2.stderr.String()
	for id, sc := range kept {
		path := filepath.Join(staging, id+".data")
		if !strings.Contains(logs, path) {
			t.Errorf("the remount kept %s (%v) without saying where:\n%s", sc["name"], sc, logs)
		}
	}
	if names := fmt.Sprint(kept); !strings.Contains(names, "partial.png") || !strings.Contains(names, "taken.png") {
		t.Errorf("kept %v, want partial.png (cut short) and taken.png (name taken)", names)
	}
}
