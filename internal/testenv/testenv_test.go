package testenv

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/fs"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

func TestCheckTreeFindsEveryDifference(t *testing.T) {
	root := t.TempDir()
	write := func(rel, body string) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("dataset.json", "{}")
	write("images/a.png", "right")
	write("images/b.png", "wrong")
	write("images/extra.png", "x")
	want := map[string][]byte{"images/a.png": []byte("right"), "images/b.png": []byte("other"), "images/gone.png": nil}
	r := &testkit.FakeTB{TB: t}
	CheckTree(r, root, want)
	// extra.png unexpected, gone.png missing, the count, b.png's bytes.
	if len(r.Errors) != 4 {
		t.Errorf("got %d errors %q, want 4", len(r.Errors), r.Errors)
	}
}

func TestMountUnmountsOnce(t *testing.T) {
	srv := StartServer(t, devserver.Options{})
	m := NewMount(t, srv, Options{})
	if ok, err := fs.IsMountpoint(m.Dir); !ok {
		t.Fatalf("%s is not mounted: %v", m.Dir, err)
	}
	m.Unmount()
	if ok, _ := fs.IsMountpoint(m.Dir); ok {
		t.Errorf("%s is still mounted after Unmount", m.Dir)
	}
	m.Unmount() // and the cleanup once more: nothing left to do, no error
}
