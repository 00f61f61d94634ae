package testenv

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"testing"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

// StartServer starts a devserver on opts, in a temporary data directory
// unless opts.DataDir is set and with testkit.Logger unless opts.Logger is,
// and closes it at cleanup, failing the test if that fails (a test may
// close it sooner).
func StartServer(t testing.TB, opts devserver.Options) *devserver.Server {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = testkit.Logger()
	}
	srv, err := devserver.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("devserver.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		srv.Close()
		t.Fatalf("devserver Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("devserver Close: %v", err)
		}
	})
	return srv
}

// Client is the real client of srv with key; tweaks may change its options.
func Client(t testing.TB, srv Server, key string, tweaks ...func(*client.Options)) *client.Client {
	t.Helper()
	opts := client.Options{BaseURL: srv.APIURL(), APIKey: key, Logger: testkit.Logger()}
	for _, tweak := range tweaks {
		tweak(&opts)
	}
	api, err := client.New(opts)
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	return api
}

// NewOrganization adds an organization named name to srv and returns its
// id and a key of role for it.
func NewOrganization(t testing.TB, srv *devserver.Server, name, role string) (org, key string) {
	t.Helper()
	ctx := context.Background()
	org, err := srv.CreateOrganization(ctx, name)
	if err != nil {
		t.Fatalf("CreateOrganization(%q): %v", name, err)
	}
	key, err = srv.CreateKey(ctx, org, role)
	if err != nil {
		t.Fatalf("CreateKey(%s): %v", role, err)
	}
	return org, key
}

// EmptyDataset creates an empty dataset named name in srv's default
// organization, with two bounding-box classes, cat and dog.
func EmptyDataset(t testing.TB, srv *devserver.Server, name string) {
	t.Helper()
	if _, err := srv.CreateDataset(context.Background(), srv.DefaultOrg(), devserver.CreateDatasetRequest{
		Name: name, Classes: []devserver.Class{{Name: "cat", Type: "bbox"}, {Name: "dog", Type: "bbox"}},
	}); err != nil {
		t.Fatalf("CreateDataset(%q): %v", name, err)
	}
}

// PNG is a small PNG of a few pixels, the same for a seed and different
// for every other.
func PNG(t testing.TB, seed int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8+seed%5, 6+seed%7))
	for i := range img.Pix {
		img.Pix[i] = byte(seed*31 + i*13)
	}
	img.Set(0, 0, color.RGBA{byte(seed), byte(seed >> 8), byte(seed >> 16), 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
