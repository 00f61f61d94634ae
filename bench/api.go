package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
)

const apiPrefix = "/api/v1/developer/"

// seedSpec is one dataset the harness needs in the devserver.
type seedSpec struct {
	name   string
	images int
	// synthetic seeds devserver.SeedSynthetic's small images spread over
	// dirs folders instead of the demo's generated photos-like images; it
	// annotates the even ones, and the harness annotates every other image
	// i for which annotate(i) holds (and marks it complete).
	synthetic bool
	dirs      int
	annotate  func(i int) bool
}

// completed is the dataset's completed_image_count once seeded: every demo
// image, and the annotated synthetic ones.
func (sp seedSpec) completed() int {
	if !sp.synthetic {
		return sp.images
	}
	n := 0
	for i := range sp.images {
		if i%2 == 0 || (sp.annotate != nil && sp.annotate(i)) {
			n++
		}
	}
	return n
}

// seedData makes sure dataDir holds every dataset in specs with its image
// and completed counts, seeding the missing ones with the devserver's
// generators (deterministic from seed 1). A dataset with other counts (an
// interrupted seeding) makes it start over in an empty directory. It
// returns the admin key of the organization.
func seedData(ctx context.Context, dataDir string, specs []seedSpec, logf func(string, ...any)) (string, error) {
	for attempt := 0; ; attempt++ {
		key, stale, err := trySeed(ctx, dataDir, specs, logf)
		if err != nil || !stale {
			return key, err
		}
		if attempt > 0 {
			return "", fmt.Errorf("seed %s: datasets still incomplete after reseeding", dataDir)
		}
		logf("data dir %s holds an incomplete dataset; seeding again from scratch", dataDir)
		if err := os.RemoveAll(dataDir); err != nil {
			return "", fmt.Errorf("reset data dir: %w", err)
		}
	}
}

func trySeed(ctx context.Context, dataDir string, specs []seedSpec, logf func(string, ...any)) (key string, stale bool, err error) {
	srv, err := devserver.New(ctx, devserver.Options{DataDir: dataDir, RequestsPerHour: 1 << 30})
	if err != nil {
		return "", false, fmt.Errorf("open data dir: %w", err)
	}
	defer func() { err = errors.Join(err, srv.Close()) }()
	org := srv.DefaultOrg()
	for _, sp := range specs {
		if d, err := srv.Dataset(ctx, org, sp.name); err == nil {
			if d.ImageCount != sp.images || d.CompletedImageCount != sp.completed() {
				return "", true, nil
			}
			continue
		} else if !errors.Is(err, devserver.ErrNotFound) {
			return "", false, fmt.Errorf("look up %s: %w", sp.name, err)
		}
		start := time.Now()
		if err := seedOne(ctx, srv, org, sp, logf); err != nil {
			return "", false, fmt.Errorf("seed %s: %w", sp.name, err)
		}
		logf("seeded %s in %v", sp.name, time.Since(start).Round(time.Millisecond))
	}
	return srv.AdminKey(), false, nil
}

func seedOne(ctx context.Context, srv *devserver.Server, org string, sp seedSpec, logf func(string, ...any)) error {
	if !sp.synthetic {
		logf("seeding %s with %d generated images (once per data dir)…", sp.name, sp.images)
		step := max(sp.images/4, 1)
		next := step
		_, err := srv.SeedDemoProgress(ctx, org, sp.name, sp.images, func(done int) {
			if done >= next && done < sp.images {
				logf("  %s: %d/%d", sp.name, done, sp.images)
				next = (done/step + 1) * step
			}
		})
		return err
	}
	logf("seeding %s with %d synthetic images, %d of them annotated (once per data dir)…", sp.name, sp.images, sp.completed())
	if err := srv.SeedSynthetic(ctx, org, sp.name, sp.images, sp.dirs); err != nil {
		return err
	}
	if sp.annotate == nil {
		return nil
	}
	// The generator annotates the even images; the others are found by
	// name in the listing, which needs the API.
	if srv.APIURL() == "" {
		if err := srv.Start(); err != nil {
			return err
		}
	}
	a := newAPIClient(srv.APIURL(), srv.AdminKey(), 1)
	defer a.close()
	_, images, err := a.datasetImages(ctx, sp.name)
	if err != nil {
		return err
	}
	box := []devserver.Annotation{{ID: "bench-box", Name: "square", Type: "bbox", BoundingBox: &devserver.BoundingBox{X: 1, Y: 1, W: 6, H: 6}}}
	for _, im := range images {
		i, ok := syntheticIndex(im.Filename)
		if !ok {
			return fmt.Errorf("image %q is not named as SeedSynthetic names them", im.Filename)
		}
		if i%2 == 0 || !sp.annotate(i) {
			continue
		}
		if err := srv.SetAnnotations(ctx, org, im.ID, box); err != nil {
			return err
		}
		if err := srv.SetImageStatus(ctx, org, im.ID, "complete"); err != nil {
			return err
		}
	}
	return nil
}

// syntheticIndex is the i of devserver.SyntheticFilename(i).
func syntheticIndex(name string) (int, bool) {
	digits, ok := strings.CutPrefix(strings.TrimSuffix(strings.TrimSuffix(name, ".png"), ".jpg"), "img-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(digits)
	if err != nil || devserver.SyntheticFilename(i) != name {
		return 0, false
	}
	return i, true
}

// freePort returns a loopback address with a port that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// apiClient is the harness's own small Pictograph client, for what the
// download-first baseline and the local listing trees need. It reuses
// connections like the official SDK's session (a pool of ten per host)
// and counts its API requests.
type apiClient struct {
	base     string // e.g. http://127.0.0.1:1234
	key      string
	hc       *http.Client
	requests atomic.Int64
}

func newAPIClient(base, key string, conns int) *apiClient {
	tr := &http.Transport{
		MaxIdleConns: 2 * conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute,
		DisableCompression: true, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	return &apiClient{base: strings.TrimRight(base, "/"), key: key, hc: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

func (a *apiClient) close() { a.hc.CloseIdleConnections() }

// get fetches an API path (relative to the base URL) with the key and
// returns the body of a 200.
func (a *apiClient) get(ctx context.Context, p string, q url.Values) ([]byte, error) {
	u := a.base + p
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", p, err)
	}
	req.Header.Set("X-API-Key", a.key)
	req.Header.Set("Accept", "application/json")
	a.requests.Add(1)
	return doGet(a.hc, req, p)
}

// getStorage fetches a signed storage URL, without the key.
func (a *apiClient) getStorage(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("GET storage: %w", err)
	}
	pu, _ := url.Parse(u)
	return doGet(a.hc, req, pu.Path)
}

func doGet(hc *http.Client, req *http.Request, what string) ([]byte, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", what, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: read body: %w", what, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", what, resp.Status, bytes.TrimSpace(b[:min(len(b), 300)]))
	}
	if resp.ContentLength >= 0 && int64(len(b)) != resp.ContentLength {
		return nil, fmt.Errorf("GET %s: got %d of %d bytes", what, len(b), resp.ContentLength)
	}
	return b, nil
}

func (a *apiClient) getData(ctx context.Context, p string, q url.Values, out any) error {
	b, err := a.get(ctx, p, q)
	if err != nil {
		return err
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("GET %s: decode: %w", p, err)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("GET %s: decode data: %w", p, err)
	}
	return nil
}

// waitReady polls GET /organizations/me until the API answers 200.
func (a *apiClient) waitReady(ctx context.Context, p *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := a.get(ctx, apiPrefix+"organizations/me", nil)
		if err == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("pictofs serve exited: %v\n%s", p.err, p.logTail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pictofs serve not ready after %v: %w\n%s", timeout, err, p.logTail(20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// datasetImages returns the dataset and all its images, paging the embedded
// image list 10000 at a time.
func (a *apiClient) datasetImages(ctx context.Context, name string) (*client.Dataset, []client.Image, error) {
	var meta *client.Dataset
	var all []client.Image
	for {
		q := url.Values{"include_images": {"true"}, "images_limit": {"10000"}, "images_offset": {strconv.Itoa(len(all))}}
		var d client.Dataset
		if err := a.getData(ctx, apiPrefix+"datasets/"+url.PathEscape(name), q, &d); err != nil {
			return nil, nil, err
		}
		all = append(all, d.Images...)
		if meta == nil {
			meta = &d
		}
		if len(d.Images) == 0 || len(all) >= d.ImageCount {
			break
		}
	}
	meta.Images = nil
	return meta, all, nil
}

// localPath is an image's path under images/ (or, plus ".json", under
// annotations/), as pictofs lays it out: directory_path becomes folders.
func localPath(im client.Image) (string, error) {
	dir := strings.Trim(im.DirectoryPath, "/")
	rel := path.Join(dir, im.Filename)
	if im.Filename == "" || strings.Contains(im.Filename, "/") || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("unsafe image path %q/%q", im.DirectoryPath, im.Filename)
	}
	return rel, nil
}

// downloadStats describes one download-first download.
type downloadStats struct {
	seconds     float64
	files       int
	bytes       int64
	apiRequests int64
}

// downloadFirst is today's workflow, the official SDK's download strategy:
// one download listing (signed URLs), the dataset's image list (the listing
// carries no directory_path), then ten parallel workers on one reused
// connection pool fetch every image from its signed URL and every
// annotation document from the API, written as the SDK writes them
// (re-serialized with two-space indentation). It lays dst out as a pictofs
// dataset folder.
func downloadFirst(ctx context.Context, base, key, dataset, dst string, workers int) (downloadStats, error) {
	a := newAPIClient(base, key, workers)
	defer a.close()
	start := time.Now()
	var listing client.DownloadListing
	q := url.Values{"mode": {"full"}, "limit": {"10000"}}
	if err := a.getData(ctx, apiPrefix+"datasets/"+url.PathEscape(dataset)+"/download", q, &listing); err != nil {
		return downloadStats{}, err
	}
	meta, images, err := a.datasetImages(ctx, dataset)
	if err != nil {
		return downloadStats{}, err
	}
	if listing.TotalItems > len(listing.Items) {
		return downloadStats{}, fmt.Errorf("download listing of %s holds %d of %d images (the SDK's cap)", dataset, len(listing.Items), listing.TotalItems)
	}
	rels := make(map[string]string, len(images))
	for _, im := range images {
		rel, err := localPath(im)
		if err != nil {
			return downloadStats{}, err
		}
		rels[im.ID] = rel
	}
	if err := writeDatasetJSON(dst, meta); err != nil {
		return downloadStats{}, err
	}
	var (
		mu     sync.Mutex
		nbytes int64
		files  int
	)
	jobs := make(chan client.DownloadItem)
	errc := make(chan error, workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for it := range jobs {
				n, err := downloadItem(ctx, a, dst, rels, it)
				if err != nil {
					errc <- err
					cancel()
					return
				}
				mu.Lock()
				nbytes += n
				files += 2
				mu.Unlock()
			}
		})
	}
feed:
	for _, it := range listing.Items {
		select {
		case jobs <- it:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return downloadStats{}, err
	}
	if err := ctx.Err(); err != nil {
		return downloadStats{}, err
	}
	return downloadStats{seconds: time.Since(start).Seconds(), files: files, bytes: nbytes, apiRequests: a.requests.Load()}, nil
}

func downloadItem(ctx context.Context, a *apiClient, dst string, rels map[string]string, it client.DownloadItem) (int64, error) {
	rel, ok := rels[it.ID]
	if !ok {
		return 0, fmt.Errorf("download item %s (%s) is not in the dataset's image list", it.ID, it.Filename)
	}
	img, err := a.getStorage(ctx, it.ImageURL)
	if err != nil {
		return 0, err
	}
	if int64(len(img)) != it.FileSize {
		return 0, fmt.Errorf("%s: got %d bytes, listing says %d", rel, len(img), it.FileSize)
	}
	var doc []byte
	if it.AnnotationURL == "" {
		doc = emptyAnnotationDoc(it.Filename)
	} else {
		p := it.AnnotationURL
		if u, err := url.Parse(p); err == nil && u.IsAbs() {
			p = u.Path
		}
		raw, err := a.get(ctx, p, nil)
		if err != nil {
			return 0, err
		}
		var buf bytes.Buffer
		if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
			return 0, fmt.Errorf("annotation of %s: %w", rel, err)
		}
		doc = buf.Bytes()
	}
	if err := writeFile(filepath.Join(dst, "images", rel), img); err != nil {
		return 0, err
	}
	if err := writeFile(filepath.Join(dst, "annotations", rel+".json"), doc); err != nil {
		return 0, err
	}
	return int64(len(img) + len(doc)), nil
}

// emptyAnnotationDoc is what the SDK writes for an image with no annotations.
func emptyAnnotationDoc(filename string) []byte {
	doc, _ := json.MarshalIndent(struct {
		Image       string   `json:"image"`
		Annotations []string `json:"annotations"`
	}{filename, []string{}}, "", "  ")
	return doc
}

func writeDatasetJSON(dst string, meta *client.Dataset) error {
	doc, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return fmt.Errorf("encode dataset.json: %w", err)
	}
	return writeFile(filepath.Join(dst, "dataset.json"), append(doc, '\n'))
}

func writeFile(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// sparseTree lays out a dataset's images/ under dst as empty files of the
// listed sizes (sparse, no data): enough for ls, ls -l and find.
func sparseTree(ctx context.Context, a *apiClient, dataset, dst string) (int, error) {
	_, images, err := a.datasetImages(ctx, dataset)
	if err != nil {
		return 0, err
	}
	made := map[string]bool{}
	for _, im := range images {
		rel, err := localPath(im)
		if err != nil {
			return 0, err
		}
		p := filepath.Join(dst, "images", rel)
		if d := filepath.Dir(p); !made[d] {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return 0, fmt.Errorf("sparse tree: %w", err)
			}
			made[d] = true
		}
		f, err := os.Create(p)
		if err != nil {
			return 0, fmt.Errorf("sparse tree: %w", err)
		}
		err = f.Truncate(im.FileSize)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, fmt.Errorf("sparse tree: %w", err)
		}
	}
	return len(images), nil
}
