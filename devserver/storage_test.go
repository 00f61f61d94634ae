package devserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// demoBytes returns the encoded demo image i.
func demoBytes(t *testing.T, i int) []byte {
	t.Helper()
	var sc demoScratch
	if _, err := generateDemoImage(&sc, 1, i, demoNoise(1)); err != nil {
		t.Fatal(err)
	}
	return sc.out.Bytes()
}

// listing makes a dataset with n images and returns its download listing
// and the images' bytes by id.
func listing(t *testing.T, s *Server, name string, n int) ([]downloadItem, map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.CreateDataset(ctx, s.DefaultOrg(), CreateDatasetRequest{Name: name, Classes: testClasses}); err != nil {
		t.Fatal(err)
	}
	byID := map[string][]byte{}
	for i := range n {
		data := demoBytes(t, i)
		im, err := s.AddImage(ctx, s.DefaultOrg(), name, "/", fmt.Sprintf("%d.img", i), "image/png", data, nil)
		if err != nil {
			t.Fatal(err)
		}
		byID[im.ID] = data
	}
	var lst listingEnvelope
	r := newAPI(t, s, testMemberKey).do(http.MethodGet, "/datasets/"+name+"/download", nil)
	mustStatus(t, "download", r, http.StatusOK)
	r.decode(t, &lst)
	return lst.Data.Items, byID
}

func TestSignedURLs(t *testing.T) {
	s := startServer(t, Options{})
	items, byID := listing(t, s, "signed", 2)
	u0, u1 := items[0].ImageURL, items[1].ImageURL
	if !strings.HasPrefix(u0, s.StorageURL()+"/o/") {
		t.Fatalf("signed URL %q is not on the storage host %s", u0, s.StorageURL())
	}
	p0, _ := url.Parse(u0)
	p1, _ := url.Parse(u1)
	tamperedSig := p0.Query()
	tamperedSig.Set("signature", strings.Repeat("A", 43))
	laterExpiry := p0.Query()
	laterExpiry.Set("expires", fmt.Sprint(time.Now().Add(48*time.Hour).Unix()))
	tests := []struct {
		desc, url string
		want      int
	}{
		{"valid", u0, http.StatusOK},
		{"signature of another object", s.StorageURL() + p1.Path + "?" + p0.RawQuery, http.StatusForbidden},
		{"tampered signature", s.StorageURL() + p0.Path + "?" + tamperedSig.Encode(), http.StatusForbidden},
		{"extended expiry", s.StorageURL() + p0.Path + "?" + laterExpiry.Encode(), http.StatusForbidden},
		{"no signature", s.StorageURL() + p0.Path, http.StatusForbidden},
		{"unknown path", s.StorageURL() + "/nope", http.StatusNotFound},
	}
	for _, tt := range tests {
		r := get(t, tt.url)
		if r.status != tt.want {
			t.Errorf("%s: got %d (%s), want %d", tt.desc, r.status, r.body, tt.want)
		}
		if tt.want == http.StatusOK && !bytes.Equal(r.body, byID[items[0].ID]) {
			t.Errorf("%s: got %d bytes that differ from the image's %d", tt.desc, len(r.body), len(byID[items[0].ID]))
		}
		if r.header.Get("X-Request-Id") == "" {
			t.Errorf("%s: no X-Request-Id", tt.desc)
		}
	}

	// Expired: URLs issued under a negative TTL are already expired.
	s.SetFaults(Faults{URLTTL: -time.Second})
	expired, _ := listingAgain(t, s, "signed")
	if r := get(t, expired[0].ImageURL); r.status != http.StatusForbidden || !strings.Contains(string(r.body), "expired") {
		t.Errorf("expired URL: got %d %s, want 403 expired", r.status, r.body)
	}
	s.SetFaults(Faults{URLTTL: time.Second})
	short, _ := listingAgain(t, s, "signed")
	mustStatus(t, "short-lived URL at once", get(t, short[0].ImageURL), http.StatusOK)
	time.Sleep(2100 * time.Millisecond)
	mustStatus(t, "short-lived URL after its TTL", get(t, short[0].ImageURL), http.StatusForbidden)

	if got := s.Stats().StorageSawAPIKey; got != 0 {
		t.Errorf("StorageSawAPIKey: got %d, want 0", got)
	}
	get(t, u0, "X-API-Key", testMemberKey)
	if got := s.Stats().StorageSawAPIKey; got != 1 {
		t.Errorf("StorageSawAPIKey after a request with the key: got %d, want 1", got)
	}
}

func listingAgain(t *testing.T, s *Server, name string) ([]downloadItem, int) {
	t.Helper()
	var lst listingEnvelope
	newAPI(t, s, testMemberKey).do(http.MethodGet, "/datasets/"+name+"/download", nil).decode(t, &lst)
	return lst.Data.Items, lst.Data.TotalItems
}

func TestRangeRequests(t *testing.T) {
	s := startServer(t, Options{})
	items, byID := listing(t, s, "ranges", 1)
	data := byID[items[0].ID]
	n := len(data)
	authURL := s.APIURL() + "/api/v1/developer/images/ranges/0.img"
	for _, base := range []struct {
		desc string
		url  string
		hdr  []string
	}{{"signed URL", items[0].ImageURL, nil}, {"authenticated route", authURL, []string{"X-API-Key", testMemberKey}}} {
		tests := []struct {
			rng        string
			wantStatus int
			wantBody   []byte
			wantCR     string
		}{
			{"", http.StatusOK, data, ""},
			{"bytes=10-19", http.StatusPartialContent, data[10:20], fmt.Sprintf("bytes 10-19/%d", n)},
			{fmt.Sprintf("bytes=%d-", n-5), http.StatusPartialContent, data[n-5:], fmt.Sprintf("bytes %d-%d/%d", n-5, n-1, n)},
			{"bytes=-7", http.StatusPartialContent, data[n-7:], fmt.Sprintf("bytes %d-%d/%d", n-7, n-1, n)},
			{fmt.Sprintf("bytes=%d-", n+10), http.StatusRequestedRangeNotSatisfiable, nil, fmt.Sprintf("bytes */%d", n)},
		}
		for _, tt := range tests {
			hdr := append([]string{}, base.hdr...)
			if tt.rng != "" {
				hdr = append(hdr, "Range", tt.rng)
			}
			r := get(t, base.url, hdr...)
			what := base.desc + " Range " + tt.rng
			if r.status != tt.wantStatus {
				t.Errorf("%s: got status %d, want %d", what, r.status, tt.wantStatus)
				continue
			}
			if r.header.Get("Content-Range") != tt.wantCR {
				t.Errorf("%s: got Content-Range %q, want %q", what, r.header.Get("Content-Range"), tt.wantCR)
			}
			if tt.wantBody != nil {
				if !bytes.Equal(r.body, tt.wantBody) {
					t.Errorf("%s: got %d bytes, want %d", what, len(r.body), len(tt.wantBody))
				}
				if cl := r.header.Get("Content-Length"); cl != fmt.Sprint(len(tt.wantBody)) {
					t.Errorf("%s: got Content-Length %q, want %d", what, cl, len(tt.wantBody))
				}
				if ct := r.header.Get("Content-Type"); ct != "image/png" {
					t.Errorf("%s: got Content-Type %q, want image/png", what, ct)
				}
			}
		}
	}
	if got := s.Stats().ImageByteRequests; got != 5 {
		t.Errorf("Stats.ImageByteRequests: got %d, want 5", got)
	}
}

func TestFaultInjection(t *testing.T) {
	s := startServer(t, Options{})
	items, byID := listing(t, s, "faults", 3)
	a := newAPI(t, s, testMemberKey)
	s.ResetStats()

	s.SetFaults(Faults{FailRate: 1})
	r := a.do(http.MethodGet, "/datasets/", nil)
	mustStatus(t, "fail-rate 1", r, http.StatusServiceUnavailable)
	checkErrorBody(t, "503", r, "service_unavailable")
	s.SetFaults(Faults{TruncateRate: 1})
	mustStatus(t, "fail-rate 0", a.do(http.MethodGet, "/datasets/", nil), http.StatusOK)

	// Truncation: the full Content-Length, then a short body.
	for _, it := range items {
		resp, err := http.Get(it.ImageURL)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		full := len(byID[it.ID])
		if resp.ContentLength != int64(full) {
			t.Errorf("truncated response: got Content-Length %d, want %d", resp.ContentLength, full)
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) || len(body) >= full {
			t.Errorf("truncated response: got %d of %d bytes and error %v, want a short body and unexpected EOF", len(body), full, err)
		}
	}
	st := s.Stats()
	if st.Injected503 != 1 || st.Truncated != 3 || st.StorageGets != 3 || st.APIRequests != 2 {
		t.Errorf("stats: got %+v, want Injected503 1, Truncated 3, StorageGets 3, APIRequests 2", st)
	}

	// Latency and bandwidth.
	s.SetFaults(Faults{StorageLatency: 150 * time.Millisecond, APILatency: 100 * time.Millisecond})
	start := time.Now()
	mustStatus(t, "with storage latency", get(t, items[0].ImageURL), http.StatusOK)
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Errorf("storage latency: took %v, want at least 150ms", el)
	}
	start = time.Now()
	a.do(http.MethodGet, "/organizations/me", nil)
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Errorf("API latency: took %v, want at least 100ms", el)
	}
	size := len(byID[items[0].ID])
	bw := int64(size) * 2 // half a second per body
	s.SetFaults(Faults{StorageBandwidth: bw})
	start = time.Now()
	r = get(t, items[0].ImageURL)
	if el := time.Since(start); el < 400*time.Millisecond || !bytes.Equal(r.body, byID[items[0].ID]) {
		t.Errorf("bandwidth %d B/s for %d bytes: took %v (want ≥ 400ms), body intact %v", bw, size, el, bytes.Equal(r.body, byID[items[0].ID]))
	}

	// A stall ends when the client gives up.
	s.SetFaults(Faults{StorageStall: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, items[0].ImageURL, nil)
	start = time.Now()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("stalled storage: got a response, want a timeout")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("stalled storage: the client waited %v", el)
	}
	s.SetFaults(Faults{})
}

func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s1, err := New(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Start(); err != nil {
		t.Fatal(err)
	}
	admin, member, org := s1.AdminKey(), s1.MemberKey(), s1.DefaultOrg()
	if !strings.HasPrefix(admin, "pk_live_") || len(admin) != len("pk_live_")+32 || admin == member {
		t.Fatalf("generated keys: got %q and %q", admin, member)
	}
	other, _ := s1.CreateOrganization(ctx, "second")
	viewer, _ := s1.CreateKey(ctx, other, "viewer")
	if _, err := s1.CreateDataset(ctx, org, CreateDatasetRequest{Name: "kept", Classes: []Class{{Name: "c"}}}); err != nil {
		t.Fatal(err)
	}
	data := demoBytes(t, 1)
	anns := []Annotation{{Name: "c", Type: "bbox", BoundingBox: &BoundingBox{X: 1, Y: 1, W: 2, H: 2}}}
	im, err := s1.AddImage(ctx, org, "kept", "/train", "a.png", "image/png", data, anns)
	if err != nil {
		t.Fatal(err)
	}
	a1 := newAPI(t, s1, member)
	a1.do(http.MethodPost, "/datasets/", map[string]string{"name": "idem"}, "Idempotency-Key", "k1")
	var lst listingEnvelope
	a1.do(http.MethodGet, "/datasets/kept/download", nil).decode(t, &lst)
	signed := strings.TrimPrefix(lst.Data.Items[0].ImageURL, s1.StorageURL())
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := New(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(); err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.AdminKey() != admin || s2.MemberKey() != member {
		t.Errorf("keys after restart: got %q and %q, want %q and %q", s2.AdminKey(), s2.MemberKey(), admin, member)
	}
	if s2.DefaultOrg() != org {
		t.Errorf("restart: got default org %s, want %s", s2.DefaultOrg(), org)
	}
	for _, key := range []string{admin, member} {
		mustStatus(t, "old key after restart", newAPI(t, s2, key).do(http.MethodGet, "/organizations/me", nil), http.StatusOK)
	}
	var me struct{ Organization organization }
	newAPI(t, s2, viewer).do(http.MethodGet, "/organizations/me", nil).decode(t, &me)
	if me.Organization.ID != other || me.Organization.Role != "viewer" {
		t.Errorf("second organization's key after restart: got %+v", me.Organization)
	}
	a2 := newAPI(t, s2, member)
	var ds datasetEnvelope
	a2.do(http.MethodGet, "/datasets/kept", nil).decode(t, &ds)
	if ds.Data.ImageCount != 1 || len(ds.Data.Classes) != 1 {
		t.Errorf("dataset after restart: got %+v", ds.Data)
	}
	r := a2.do(http.MethodGet, "/images/kept/train/a.png", nil)
	if !bytes.Equal(r.body, data) {
		t.Errorf("bytes after restart: got %d bytes, want %d", len(r.body), len(data))
	}
	var doc annotationDocument
	a2.do(http.MethodGet, "/annotations/"+im.ID+"/file", nil).decode(t, &doc)
	if len(doc.Annotations) != 1 || doc.Annotations[0].Name != "c" {
		t.Errorf("annotations after restart: got %+v", doc)
	}
	if r := get(t, s2.StorageURL()+signed); r.status != http.StatusOK {
		t.Errorf("URL signed before the restart: got %d, want 200", r.status)
	}
	if r := a2.do(http.MethodPost, "/datasets/", map[string]string{"name": "idem"}, "Idempotency-Key", "k1"); r.status != http.StatusCreated {
		t.Errorf("idempotent replay after restart: got %d, want the saved 201", r.status)
	}
}

func TestKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := New(context.Background(), Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := os.Stat(s.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: got %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(s.KeyFile())
	if !strings.Contains(string(b), s.AdminKey()) || !strings.Contains(string(b), s.MemberKey()) {
		t.Errorf("key file %s does not hold both keys", b)
	}
	if dst, _ := os.Stat(dir); dst.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode: got %v", dst.Mode().Perm())
	}
}

func TestDeletedBlobsAreCollectedOnRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s1, err := New(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	org := s1.DefaultOrg()
	for _, name := range []string{"gone", "stays"} {
		if _, err := s1.CreateDataset(ctx, org, CreateDatasetRequest{Name: name, Classes: testClasses}); err != nil {
			t.Fatal(err)
		}
	}
	shared, only := []byte("shared bytes"), []byte("bytes only the deleted dataset has")
	for _, add := range []struct {
		ds   string
		data []byte
	}{{"gone", shared}, {"gone", only}, {"stays", shared}} {
		if _, err := s1.AddImage(ctx, org, add.ds, "/", string(add.data), "image/png", add.data, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s1.Start(); err != nil {
		t.Fatal(err)
	}
	mustStatus(t, "delete", newAPI(t, s1, s1.AdminKey()).do(http.MethodDelete, "/datasets/gone", nil), http.StatusOK)
	s1.Close()
	countBlobs := func() int {
		n := 0
		filepath.WalkDir(filepath.Join(dir, "blobs"), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				n++
			}
			return nil
		})
		return n
	}
	if got := countBlobs(); got != 2 {
		t.Fatalf("blobs before restart: got %d, want 2 (removal waits for a restart)", got)
	}
	s2, err := New(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := countBlobs(); got != 1 {
		t.Errorf("blobs after restart: got %d, want 1 (the shared one)", got)
	}
	if err := s2.Start(); err != nil {
		t.Fatal(err)
	}
	r := newAPI(t, s2, s2.MemberKey()).do(http.MethodGet, "/images/stays/"+url.PathEscape(string(shared)), nil)
	if r.status != http.StatusOK || !bytes.Equal(r.body, shared) {
		t.Errorf("shared blob after restart: got %d %q", r.status, r.body)
	}
}

func TestRelativeDataDir(t *testing.T) {
	t.Chdir(t.TempDir())
	s := startServer(t, Options{DataDir: "sv"})
	wd, _ := os.Getwd()
	if want := filepath.Join(wd, "sv", KeyFileName); s.KeyFile() != want {
		t.Errorf("got key file %s, want %s", s.KeyFile(), want)
	}
	if _, err := os.Stat(filepath.Join("sv", "pictograph.db")); err != nil {
		t.Errorf("the database is not in ./sv: %v", err)
	}
}
