package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	_ "modernc.org/sqlite"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	pfs "github.com/pictofs/pictofs/fs"
	"github.com/pictofs/pictofs/internal/testenv"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

// TestKeyNeverLeaks runs a mount through every error path it has (503s,
// truncated bodies, expired URLs, 404, 403, 409, a server gone) with every
// component logging at debug level into one buffer, then looks for the key
// in the logs, the cache directory and every error message. The storage host
// must never have received it, and no signed URL's query may be logged.
func TestKeyNeverLeaks(t *testing.T) {
	t.Parallel() // mostly waiting: for retry backoff and timeouts
	logs := &testkit.Buffer{}
	logger := logs.Logger()
	srv := testenv.StartServer(t, devserver.Options{Logger: logger})
	ctx := context.Background()
	key, err := srv.CreateKey(ctx, srv.DefaultOrg(), "member")
	if err != nil {
		t.Fatal(err)
	}
	want := smallDataset(t, srv, "secret", 60)
	cacheDir := filepath.Join(t.TempDir(), "cache")
	tm := mount(t, srv, testenv.Options{Key: key, CacheDir: cacheDir, Logger: logger, Workers: 4})
	srv.SetFaults(devserver.Faults{FailRate: 0.3, TruncateRate: 0.3, URLTTL: time.Second})
	srv.ResetStats()
	root := filepath.Join(tm.Dir, "secret")
	tl := readFiles(t, root, testenv.ListTree(t, root, want), want, 4, 40*time.Millisecond)

	var messages []string
	note := func(err error) {
		if err != nil {
			messages = append(messages, err.Error())
		}
	}
	_, err = os.ReadFile(filepath.Join(tm.Dir, "no-such-dataset", "dataset.json"))
	note(err)
	note(os.Mkdir(filepath.Join(tm.Dir, "secret"), 0o755))    // 409
	note(os.Remove(filepath.Join(tm.Dir, "secret")))          // 403 for a member key
	note(os.Mkdir(filepath.Join(tm.Dir, "made-here"), 0o755)) // POST with an idempotency key
	_, err = tm.API.GetDataset(ctx, "no-such-dataset")
	note(err)
	_, err = tm.API.DeleteDataset(ctx, "secret")
	note(err)
	// A listing whose signed URLs expired a minute ago, still under the
	// storm of 503s and cut bodies.
	srv.SetFaults(devserver.Faults{FailRate: 0.3, TruncateRate: 0.3, URLTTL: -time.Minute})
	listing, err := tm.API.DownloadListing(ctx, "secret", client.DownloadOptions{Mode: "images_only"})
	note(err)
	if err == nil && len(listing.Items) > 0 {
		_, _, err := tm.API.OpenSigned(ctx, listing.Items[0].ImageURL, 0, -1) // expired
		note(err)
	}
	srv.SetFaults(devserver.Faults{})
	dead, err := client.New(client.Options{BaseURL: "http://127.0.0.1:1", APIKey: key, MaxRetries: -1, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	_, err = dead.Me(ctx)
	note(err)
	st := srv.Stats()
	logFigures(t, "key leak walk", tl, st, tm)
	tm.Unmount()

	secret := strings.TrimPrefix(key, "pk_live_")
	for _, needle := range []string{key, secret} {
		if i := strings.Index(logs.String(), needle); i >= 0 {
			line := logs.String()[strings.LastIndexByte(logs.String()[:i], '\n')+1:]
			t.Errorf("the key appears in a log line: %.300s", line)
		}
		for _, m := range messages {
			if strings.Contains(m, needle) {
				t.Errorf("the key appears in an error message: %s", m)
			}
		}
		filepath.WalkDir(cacheDir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.Contains(p, needle) {
				t.Errorf("the key appears in a cache path: %s", p)
			}
			if !d.IsDir() {
				if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(needle)) {
					t.Errorf("the key appears in cache file %s", p)
				}
			}
			return nil
		})
	}
	if strings.Contains(logs.String(), "signature=") {
		t.Errorf("a signed URL's query appears in the logs")
	}
	if st.StorageSawAPIKey != 0 {
		t.Errorf("storage received the API key %d times, want 0", st.StorageSawAPIKey)
	}
	if st.Injected503 == 0 || st.Truncated == 0 || len(messages) < 6 {
		t.Errorf("error paths not exercised: %d 503s, %d truncations, %d error messages", st.Injected503, st.Truncated, len(messages))
	}
	t.Logf("searched %d log bytes (%d lines), %d error messages and the cache for the key: %d bytes of logs",
		len(logs.String()), strings.Count(logs.String(), "\n"), len(messages), len(logs.String()))
}

// TestKeyNotInProcessArguments runs `pictofs mount` with the key in the
// environment and in the config file: it must not appear in the process's
// arguments, nor in its debug log.
func TestKeyNotInProcessArguments(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	smallDataset(t, srv, "args", 4)
	key := srv.AdminKey()
	tests := []struct {
		name    string
		setup   func(env []string, home string) ([]string, []string)
		inArgs  bool
		keyFrom string
	}{
		{"env", func(env []string, home string) ([]string, []string) {
			return append(env, "PICTOGRAPH_API_KEY="+key), []string{"--api-url", srv.APIURL()}
		}, false, "PICTOGRAPH_API_KEY"},
		{"config file", func(env []string, home string) ([]string, []string) {
			dir := filepath.Join(home, ".pictograph")
			os.MkdirAll(dir, 0o700)
			conf := fmt.Sprintf("[default]\napi_key = %q\nbase_url = %q\n", key, srv.APIURL())
			if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			return env, nil
		}, false, "config.toml"},
		{"flag (the control: the documented leak)", func(env []string, home string) ([]string, []string) {
			return env, []string{"--api-url", srv.APIURL(), "--api-key", key}
		}, true, "--api-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := baseEnv(t)
			home := strings.TrimPrefix(env[0], "HOME=")
			env, args := tt.setup(env, home)
			mnt := t.TempDir()
			p := mountProc(t, env, mnt, append(args, "--log-level", "debug", "--cache-dir", filepath.Join(t.TempDir(), "cache"))...)
			if _, err := os.ReadFile(filepath.Join(mnt, "args", "images", devserver.SyntheticFilename(0))); err != nil {
				t.Errorf("read through the mount: %v", err)
			}
			cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			argv := strings.ReplaceAll(string(cmdline), "\x00", " ")
			if got := strings.Contains(argv, key); got != tt.inArgs {
				t.Errorf("key from %s in /proc/PID/cmdline: got %v, want %v (%q)", tt.keyFrom, got, tt.inArgs, argv)
			}
			if err := pfs.Unmount(mnt, false); err != nil {
				t.Fatal(err)
			}
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Fatal("pictofs mount did not exit after unmount")
			}
			if strings.Contains(p.stderr.String(), key) {
				t.Errorf("key from %s appears in the debug log of pictofs mount", tt.keyFrom)
			}
			t.Logf("key from %s: cmdline %d bytes, debug log %d bytes checked", tt.keyFrom, len(cmdline), len(p.stderr.String()))
		})
	}
}

// TestOrganizationsShareCache mounts two organizations of one server over
// one cache directory at once; both have a dataset of the same name with
// files at the same paths and different bytes. Each must see only its own.
func TestOrganizationsShareCache(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	ctx := context.Background()
	orgB, keyB := testenv.NewOrganization(t, srv, "Other Organization", "admin")
	orgs := []struct {
		id, key string
	}{{srv.DefaultOrg(), srv.AdminKey()}, {orgB, keyB}}
	wants := make([]map[string][]byte, len(orgs))
	for i, o := range orgs {
		if _, err := srv.CreateDataset(ctx, o.id, devserver.CreateDatasetRequest{Name: "same"}); err != nil {
			t.Fatal(err)
		}
		wants[i] = map[string][]byte{}
		for j := range 30 {
			data := []byte(fmt.Sprintf("organization %d image %d %s", i, j, strings.Repeat("x", j*100)))
			name := fmt.Sprintf("%02d.jpg", j)
			if _, err := srv.AddImage(ctx, o.id, "same", "/sub", name, "image/jpeg", data, nil); err != nil {
				t.Fatal(err)
			}
			wants[i][filepath.Join("sub", name)] = data
		}
	}
	cacheDir := filepath.Join(t.TempDir(), "cache")
	mounts := make([]*testenv.Mount, len(orgs))
	for i, o := range orgs {
		mounts[i] = mount(t, srv, testenv.Options{Key: o.key, Org: o.id, CacheDir: cacheDir})
	}
	srv.ResetStats()
	for round := range 2 {
		for i := range orgs {
			tl := readTree(t, filepath.Join(mounts[i].Dir, "same", "images"), wants[i], 4)
			logFigures(t, fmt.Sprintf("organization %d, round %d", i+1, round+1), tl, srv.Stats(), mounts[i])
			if tl.failed != 0 {
				t.Errorf("organization %d read %d files that are not its own (%v), want 0", i+1, tl.failed, tl.errnos)
			}
		}
	}
	if got, want := srv.Stats().StorageGets, int64(60); got != want {
		t.Errorf("got %d storage GETs, want %d: each organization fetches its own 30 blobs once", got, want)
	}
	for i := range orgs {
		entries, err := os.ReadDir(mounts[i].Dir)
		if err != nil || len(entries) != 1 || entries[0].Name() != "same" {
			t.Errorf("organization %d root: got %v, %v; want only its dataset", i+1, entries, err)
		}
	}
}

// setDatasetName renames a dataset straight in the devserver's database,
// past its validation: what a less careful server could send.
func setDatasetName(t *testing.T, dataDir, id, name string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "pictograph.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE datasets SET name = ? WHERE id = ?`, name, id); err != nil {
		t.Fatalf("rename dataset: %v", err)
	}
}

// TestHostileNames serves names no filesystem may take as they are, for
// datasets at the root, directories and files: "..", "/", NUL, control
// characters, 1000-byte names, names equal but for Unicode normalization,
// duplicates, names that collide once made safe or shortened, and folders
// that climb ("/../.."). No entry may escape or be unreadable, every file
// must appear exactly once with its own bytes and its document, and the
// names must be the same on every listing and every mount.
func TestHostileNames(t *testing.T) {
	dataDir := t.TempDir()
	srv := testenv.StartServer(t, devserver.Options{DataDir: dataDir})
	ctx := context.Background()
	org := srv.DefaultOrg()
	long := strings.Repeat("L", 1000)

	datasetNames := []string{"..", ".", "a/b", "a／b", "../../escape", "nul\x00x", "ctl\x1b[31m", long + "1", long + "2",
		"caf\u00e9", "cafe\u0301", "", "hostile-twin", " ", "\u202eevil"}
	datasetContent := map[string]string{} // dataset id → the bytes of its one image
	for i, name := range datasetNames {
		d, err := srv.CreateDataset(ctx, org, devserver.CreateDatasetRequest{Name: fmt.Sprintf("placeholder-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		content := fmt.Sprintf("dataset-%d", i)
		if _, err := srv.AddImage(ctx, org, d.ID, "/", "only.jpg", "image/jpeg", []byte(content), nil); err != nil {
			t.Fatal(err)
		}
		setDatasetName(t, dataDir, d.ID, name)
		datasetContent[d.ID] = content
	}

	if _, err := srv.CreateDataset(ctx, org, devserver.CreateDatasetRequest{Name: "hostile"}); err != nil {
		t.Fatal(err)
	}
	type entry struct{ dir, name string }
	hostile := []entry{
		{"/", ".."}, {"/", "."}, {"/", "a/b.jpg"}, {"/", "../../escape.jpg"}, {"/", "nul\x00.jpg"},
		{"/", "ctl\x01\x1b[31m.jpg"}, {"/", long + ".jpg"}, {"/", long + "M.jpg"}, {"/", long[1:] + "M.jpg"},
		{"/", "caf\u00e9.jpg"}, {"/", "cafe\u0301.jpg"}, {"/", "dup.jpg"}, {"/", "dup.jpg"}, {"/", ""}, {"/", "x.jpg"}, {"/", "y.jpg"},
		{"/", "x.jpg.json"}, {"/", "sub"}, {"/", "sub.json"}, {"/", "\x7f"},
		{"/..", "up.jpg"}, {"/../..", "up.jpg"}, {"/.", "dot.jpg"}, {"/a\x00b", "f.jpg"}, {"/ctl\x01", "f.jpg"},
		{"/" + long, "f.jpg"}, {"/" + long + "2", "f.jpg"}, {"/caf\u00e9", "f.jpg"}, {"/cafe\u0301", "f.jpg"},
		{"/dup", "same.jpg"}, {"//dup", "same.jpg"}, {"/dup/", "same.jpg"}, {"/x.jpg", "in-dir.jpg"},
		{"/y.jpg.json", "in-dir.jpg"}, {"/sub", "x.jpg"}, {"/deep/../../etc", "passwd"}, {"/a／b", "f.jpg"},
	}
	wantImages := map[string]int{}
	for i, h := range hostile {
		data := "image-" + strconv.Itoa(i)
		if _, err := srv.AddImage(ctx, org, "hostile", h.dir, h.name, "image/jpeg", []byte(data), nil); err != nil {
			t.Fatalf("AddImage %q in %q: %v", h.name, h.dir, err)
		}
		wantImages[data]++
	}

	var listings [][]string
	for round := range 2 {
		tm := mount(t, srv, testenv.Options{})
		var paths []string
		checkName := func(p string) {
			name := filepath.Base(p)
			switch {
			case name == "." || name == ".." || name == "":
				t.Errorf("entry %q is a special name", p)
			case len(name) > 255:
				t.Errorf("entry %q is %d bytes long, over NAME_MAX", p, len(name))
			case !utf8.ValidString(name):
				t.Errorf("entry %q is not valid UTF-8", p)
			case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
				t.Errorf("entry %q holds a control character", p)
			}
		}

		roots, err := os.ReadDir(tm.Dir)
		if err != nil {
			t.Fatal(err)
		}
		seenDatasets := map[string]bool{}
		for _, e := range roots {
			checkName(e.Name())
			paths = append(paths, e.Name())
			meta, err := os.ReadFile(filepath.Join(tm.Dir, e.Name(), "dataset.json"))
			if err != nil {
				t.Errorf("dataset.json of %q: %v", e.Name(), err)
				continue
			}
			var d client.Dataset
			if err := json.Unmarshal(meta, &d); err != nil {
				t.Errorf("dataset.json of %q: %v", e.Name(), err)
				continue
			}
			seenDatasets[d.ID] = true
			if content, ok := datasetContent[d.ID]; ok {
				got, err := os.ReadFile(filepath.Join(tm.Dir, e.Name(), "images", "only.jpg"))
				if err != nil || string(got) != content {
					t.Errorf("dataset %q (%q): got image %q, %v; want %q", e.Name(), d.Name, got, err, content)
				}
			}
		}
		if len(roots) != len(datasetNames)+1 || len(seenDatasets) != len(datasetNames)+1 {
			t.Errorf("root: got %d entries for %d distinct datasets, want %d", len(roots), len(seenDatasets), len(datasetNames)+1)
		}

		var hostileRoot string
		for _, e := range roots {
			if e.Name() == "hostile" {
				hostileRoot = filepath.Join(tm.Dir, e.Name())
			}
		}
		if hostileRoot == "" {
			t.Fatalf("dataset \"hostile\" is not at the root")
		}
		images := filepath.Join(hostileRoot, "images")
		gotImages := map[string]int{}
		files := 0
		listed := map[string]bool{}
		err = filepath.WalkDir(hostileRoot, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				t.Errorf("walk %q: %v", p, err)
				return nil
			}
			rel, _ := filepath.Rel(hostileRoot, p)
			if rel == "." {
				return nil
			}
			if rel == ".." || strings.HasPrefix(rel, "../") {
				t.Errorf("walk left the dataset: %q", p)
			}
			checkName(p)
			if listed[rel] {
				t.Errorf("%q listed twice", rel)
			}
			listed[rel] = true
			paths = append(paths, rel)
			if d.IsDir() || rel == "dataset.json" {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("read %q: %v", rel, err)
				return nil
			}
			if inImages, _ := filepath.Rel(images, p); inImages != ".." && !strings.HasPrefix(inImages, "../") {
				gotImages[string(b)]++
				files++
				doc := filepath.Join(hostileRoot, "annotations", inImages) + ".json"
				var parsed struct{ Image string }
				if b, err := os.ReadFile(doc); err != nil || json.Unmarshal(b, &parsed) != nil {
					t.Errorf("annotation document of %q: %v", rel, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("walk: %v", err)
		}
		for content, n := range wantImages {
			if gotImages[content] != n {
				t.Errorf("image %q: seen %d times, want %d", content, gotImages[content], n)
			}
		}
		// A second listing through the same mount shows the same names.
		again := map[string]bool{}
		filepath.WalkDir(hostileRoot, func(p string, d os.DirEntry, err error) error {
			if rel, _ := filepath.Rel(hostileRoot, p); err == nil && rel != "." {
				again[rel] = true
			}
			return nil
		})
		if !maps.Equal(again, listed) {
			t.Errorf("a second listing of the same mount shows other names: %d names, then %d", len(listed), len(again))
		}
		if files != len(hostile) {
			t.Errorf("got %d image files, want %d", files, len(hostile))
		}
		slices.Sort(paths)
		listings = append(listings, paths)
		t.Logf("mount %d: %d datasets at the root, %d entries in \"hostile\", %d image files read", round+1, len(roots), len(paths)-len(roots), files)
		tm.Unmount()
	}
	if !slices.Equal(listings[0], listings[1]) {
		t.Errorf("names differ between two mounts of the same server:\n%q\n%q", listings[0], listings[1])
	}
}

// TestPermissionsAndMountOptions checks the modes of a fresh cache (0700
// directories, 0600 files) and that allow_other is off unless asked for.
func TestPermissionsAndMountOptions(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	want := smallDataset(t, srv, "perms", 20)
	cacheDir := filepath.Join(t.TempDir(), "new", "cache")
	tm := mount(t, srv, testenv.Options{CacheDir: cacheDir})
	tl := readTree(t, filepath.Join(tm.Dir, "perms"), want, 4)
	if tl.failed != 0 {
		t.Errorf("reads failed: %v", tl.errnos)
	}
	dirs, files := 0, 0
	filepath.WalkDir(cacheDir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Errorf("walk cache: %v", err)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		wantMode := os.FileMode(0o600)
		if d.IsDir() {
			wantMode = 0o700
			dirs++
		} else {
			files++
		}
		if got := info.Mode().Perm(); got != wantMode {
			t.Errorf("%s: mode %o, want %o", p, got, wantMode)
		}
		return nil
	})
	t.Logf("cache: %d directories and %d files checked", dirs, files)
	if files < len(want)/2 {
		t.Errorf("cache holds %d files, want at least %d", files, len(want)/2)
	}
	if opts := mountOptions(t, tm.Dir); slices.Contains(opts, "allow_other") {
		t.Errorf("default mount options %v include allow_other", opts)
	}
	other := mount(t, srv, testenv.Options{FS: func(o *pfs.Options) { o.AllowOther = true }})
	if opts := mountOptions(t, other.Dir); !slices.Contains(opts, "allow_other") {
		t.Errorf("mount options %v lack allow_other although it was asked for", opts)
	}
}

// get sends a GET with an optional key and returns the status.
func get(t *testing.T, u, key string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestDevserverAuth checks the devserver's side of the contract: near-miss
// keys are refused, tampered or expired signatures are refused, and one
// organization's key reaches nothing of another's.
func TestDevserverAuth(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	ctx := context.Background()
	smallDataset(t, srv, "mine", 4)
	api := srv.APIURL() + "/api/v1/developer"
	key := srv.AdminKey()

	t.Run("near-miss keys", func(t *testing.T) {
		flip := func(s string, i int) string {
			b := []byte(s)
			b[i] ^= 1
			return string(b)
		}
		keys := map[string]string{
			"last character changed":  flip(key, len(key)-1),
			"first character changed": flip(key, 0),
			"one character short":     key[:len(key)-1],
			"one character long":      key + "0",
			"upper case":              strings.ToUpper(key),
			"prefix only":             "pk_live_",
			"member key with a flip":  flip(srv.MemberKey(), 10),
		}
		for name, k := range keys {
			if got := get(t, api+"/organizations/me", k); got != http.StatusUnauthorized {
				t.Errorf("%s: got %d, want 401", name, got)
			}
		}
		t.Logf("%d near-miss keys tried", len(keys))
		if got := get(t, api+"/organizations/me", key); got != http.StatusOK {
			t.Errorf("the right key: got %d, want 200", got)
		}
	})

	t.Run("signed URLs", func(t *testing.T) {
		c := testenv.Client(t, srv, key)
		listing, err := c.DownloadListing(ctx, "mine", client.DownloadOptions{})
		if err != nil || len(listing.Items) < 2 {
			t.Fatalf("listing: %v", err)
		}
		good, err := url.Parse(listing.Items[0].ImageURL)
		if err != nil {
			t.Fatal(err)
		}
		other, _ := url.Parse(listing.Items[1].ImageURL)
		variant := func(mod func(u *url.URL, q url.Values)) string {
			u := *good
			q := u.Query()
			mod(&u, q)
			u.RawQuery = q.Encode()
			return u.String()
		}
		tampered := map[string]string{
			"signature changed": variant(func(u *url.URL, q url.Values) {
				s := []byte(q.Get("signature"))
				s[0] ^= 1
				q.Set("signature", string(s))
			}),
			"expiry moved": variant(func(u *url.URL, q url.Values) {
				exp, _ := strconv.ParseInt(q.Get("expires"), 10, 64)
				q.Set("expires", strconv.FormatInt(exp+3600, 10))
			}),
			"another object": variant(func(u *url.URL, q url.Values) { u.Path = other.Path }),
			"no signature":   variant(func(u *url.URL, q url.Values) { q.Del("signature") }),
			"no expiry":      variant(func(u *url.URL, q url.Values) { q.Del("expires") }),
		}
		for name, u := range tampered {
			if got := get(t, u, ""); got != http.StatusForbidden {
				t.Errorf("%s: got %d, want 403", name, got)
			}
		}
		if got := get(t, good.String(), ""); got != http.StatusOK {
			t.Errorf("the signed URL as issued: got %d, want 200", got)
		}
		t.Logf("%d tampered signed URLs tried", len(tampered))
		srv.SetFaults(devserver.Faults{URLTTL: -time.Minute})
		expired, err := c.DownloadListing(ctx, "mine", client.DownloadOptions{})
		srv.SetFaults(devserver.Faults{})
		if err != nil {
			t.Fatal(err)
		}
		if got := get(t, expired.Items[0].ImageURL, ""); got != http.StatusForbidden {
			t.Errorf("expired URL: got %d, want 403", got)
		}
	})

	t.Run("organizations", func(t *testing.T) {
		_, keyB := testenv.NewOrganization(t, srv, "B", "owner")
		a := testenv.Client(t, srv, key)
		mine, err := a.GetDataset(ctx, "mine")
		if err != nil {
			t.Fatal(err)
		}
		page, err := a.DatasetImagesPage(ctx, "mine", 10, 0)
		if err != nil || len(page.Images) == 0 {
			t.Fatalf("images of mine: %v", err)
		}
		img := page.Images[0]
		routes := []struct{ method, path string }{
			{"GET", "/datasets/" + mine.ID},
			{"GET", "/datasets/mine"},
			{"GET", "/datasets/" + mine.ID + "?include_images=true"},
			{"GET", "/datasets/" + mine.ID + "/download"},
			{"GET", "/images/?dataset=" + mine.ID},
			{"GET", "/images/" + mine.ID + "/" + img.Filename},
			{"GET", "/annotations/" + img.ID + "/file"},
			{"GET", "/annotations/" + mine.ID + "/" + img.Filename},
			{"PATCH", "/datasets/" + mine.ID},
			{"DELETE", "/datasets/" + mine.ID},
		}
		for _, r := range routes {
			req, _ := http.NewRequest(r.method, api+r.path, strings.NewReader(`{"description":"taken over"}`))
			req.Header.Set("X-API-Key", keyB)
			req.Header.Set("Content-Type", "application/json")
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s with another organization's key: got %d, want 404", r.method, r.path, resp.StatusCode)
			}
		}
		b := testenv.Client(t, srv, keyB)
		if list, err := b.AllDatasets(ctx); err != nil || len(list) != 0 {
			t.Errorf("datasets of the other organization: got %d, %v; want none", len(list), err)
		}
		t.Logf("%d routes tried with another organization's key", len(routes))
		if still, err := a.GetDataset(ctx, "mine"); err != nil || still.Description == "taken over" {
			t.Errorf("after the other organization's attempts: got %+v, %v; want the dataset untouched", still, err)
		}
	})
}
