package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/fs"
)

// recordingTB records the errors a check reports instead of failing.
type recordingTB struct {
	testing.TB
	errors []string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Errorf(f string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(f, args...))
}

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
	r := &recordingTB{TB: t}
	CheckTree(r, root, want)
	// extra.png unexpected, gone.png missing, the count, b.png's bytes.
	if len(r.errors) != 4 {
		t.Errorf("got %d errors %q, want 4", len(r.errors), r.errors)
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
