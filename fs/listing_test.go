package fs_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pictofs/pictofs/catalog"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

// TestListingAnnotationsCostsNoDocuments lists a folder of annotation
// documents the ways users do (ls, find -name, os.listdir, os.walk): names
// cost the listing's requests and no document. Then ls -l and du, which
// need sizes, fetch what they show (no bulk snapshot here), and the sizes
// are the documents' true lengths.
func TestListingAnnotationsCostsNoDocuments(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	const n = 600
	if err := srv.SeedSynthetic(context.Background(), srv.DefaultOrg(), "set", n, 1); err != nil {
		t.Fatal(err)
	}
	tm := testenv.NewMount(t, srv, testenv.Options{Catalog: func(o *catalog.Options) { o.Bulk.Disable = true }})
	ann := filepath.Join(tm.Dir, "set", "annotations")
	srv.ResetStats()

	names := map[string]func() (string, error){
		"ls":     func() (string, error) { return output("ls", ann) },
		"ls -1U": func() (string, error) { return output("ls", "-1U", ann) },
		"find":   func() (string, error) { return output("find", ann, "-name", "*.json") },
		"listdir": func() (string, error) {
			return output(python(t), "-c", "import os,sys; print('\\n'.join(os.listdir(sys.argv[1])))", ann)
		},
		"walk": func() (string, error) {
			return output(python(t), "-c", "import os,sys\nfor d,_,fs in os.walk(sys.argv[1]):\n  print('\\n'.join(fs))", ann)
		},
	}
	for name, list := range names {
		out, err := list()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		if got := strings.Count(out, ".json"); got != n {
			t.Errorf("%s listed %d documents, want %d", name, got, n)
		}
	}
	st := srv.Stats()
	if st.AnnotationFiles != 0 {
		t.Errorf("listing names fetched %d documents, want 0", st.AnnotationFiles)
	}
	if st.APIRequests > 3 {
		t.Errorf("listing names cost %d API requests, want at most 3 (datasets, one listing page)", st.APIRequests)
	}

	out, err := output("ls", "-l", ann)
	if err != nil {
		t.Fatalf("ls -l: %v\n%s", err, out)
	}
	sizes := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 9 {
			sizes[f[8]] = f[4]
		}
	}
	entries, err := os.ReadDir(ann)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(ann, e.Name()))
		if err != nil {
			t.Fatalf("read %s: %v", e.Name(), err)
		}
		if got, want := sizes[e.Name()], strconv.Itoa(len(data)); got != want {
			t.Errorf("ls -l size of %s: got %s, want %s (its length)", e.Name(), got, want)
		}
	}
	if got := srv.Stats().AnnotationFiles; got > n/2 {
		t.Errorf("ls -l and reading every document cost %d per-image requests, want at most %d (one per annotated image)", got, n/2)
	}
}

func output(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

func python(t *testing.T) string {
	t.Helper()
	return testkit.RequireTool(t, "python3")
}

// TestWaitsOnTheAPIAreBounded: a listing over an API slower than the wait
// bound fails with ETIMEDOUT after about the bound, and one held back by a
// rate limit fails with EAGAIN; both leave the mount usable.
func TestWaitsOnTheAPIAreBounded(t *testing.T) {
	const bound = 700 * time.Millisecond

	t.Run("slow API", func(t *testing.T) {
		srv := testenv.StartServer(t, devserver.Options{})
		if err := srv.SeedSynthetic(context.Background(), srv.DefaultOrg(), "set", 20, 1); err != nil {
			t.Fatal(err)
		}
		tm := testenv.NewMount(t, srv, testenv.Options{Catalog: func(o *catalog.Options) { o.WaitTimeout = bound }})
		srv.SetFaults(devserver.Faults{APILatency: 4 * time.Second})
		start := time.Now()
		_, err := os.ReadDir(filepath.Join(tm.Dir, "set"))
		took := time.Since(start)
		if errnoOf(err) != syscall.ETIMEDOUT {
			t.Errorf("ls over a 4 s API with a %v bound: got %v, want ETIMEDOUT", bound, err)
		}
		if took > 3*time.Second {
			t.Errorf("ls waited %v, want about %v", took, bound)
		}
		srv.SetFaults(devserver.Faults{})
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err = os.ReadDir(filepath.Join(tm.Dir, "set", "images")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("ls after the API recovered: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("rate limited", func(t *testing.T) {
		srv := testenv.StartServer(t, devserver.Options{RequestsPerHour: 3, RateWindow: time.Minute})
		if err := srv.SeedSynthetic(context.Background(), srv.DefaultOrg(), "set", 20, 1); err != nil {
			t.Fatal(err)
		}
		tm := testenv.NewMount(t, srv, testenv.Options{Catalog: func(o *catalog.Options) {
			o.WaitTimeout = bound
			o.Bulk.Disable = true
		}})
		// Each annotated document costs a request; the third or fourth
		// meets the budget, whose Retry-After (up to a minute) the client
		// would wait out.
		ann := filepath.Join(tm.Dir, "set", "annotations")
		var errno error
		start := time.Now()
		for i := 0; i < 20 && errno == nil; i += 2 {
			_, errno = os.ReadFile(filepath.Join(ann, devserver.SyntheticFilename(i)+".json"))
		}
		took := time.Since(start)
		if errnoOf(errno) != syscall.EAGAIN {
			t.Errorf("ls past the server's budget: got %v, want EAGAIN", errno)
		}
		if took > 5*time.Second {
			t.Errorf("ls past the budget waited %v, want about %v", took, bound)
		}
	})
}
