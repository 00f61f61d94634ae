package testkit

import (
	"archive/zip"
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// recordingTB records what a helper asks of a test instead of doing it.
type recordingTB struct {
	testing.TB
	skipped, failed, errored string
}

func (r *recordingTB) Helper()                      {}
func (r *recordingTB) Skipf(f string, args ...any)  { r.skipped = fmt.Sprintf(f, args...) }
func (r *recordingTB) Fatalf(f string, args ...any) { r.failed = fmt.Sprintf(f, args...) }
func (r *recordingTB) Errorf(f string, args ...any) { r.errored = fmt.Sprintf(f, args...) }

func TestUnavailable(t *testing.T) {
	const env = "PICTOFS_TESTKIT_REQUIRE"
	tests := []struct {
		name         string
		require      string
		skip, failed bool
	}{
		{"skips by default", "", true, false},
		{"fails when required", "1", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(env, tt.require)
			r := &recordingTB{TB: t}
			Unavailable(r, env, "the frobnicator is missing")
			if (r.skipped != "") != tt.skip || (r.failed != "") != tt.failed {
				t.Errorf("got skipped %q failed %q, want skip %v fail %v", r.skipped, r.failed, tt.skip, tt.failed)
			}
			if said := r.skipped + r.failed; !strings.Contains(said, "the frobnicator is missing") {
				t.Errorf("got %q, want the reason", said)
			}
		})
	}
}

func TestWaitFor(t *testing.T) {
	calls := 0
	WaitFor(t, "the third call", time.Minute, func() bool { calls++; return calls == 3 })
	if calls != 3 {
		t.Errorf("got %d calls, want 3", calls)
	}
	r := &recordingTB{TB: t}
	start := time.Now()
	WaitFor(r, "what never comes", 50*time.Millisecond, func() bool { return false })
	if !strings.Contains(r.failed, "what never comes") {
		t.Errorf("got failure %q, want it to name what it waited for", r.failed)
	}
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("gave up after %v, want at least the timeout", took)
	}
}

func TestZipMembers(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range []struct{ name, body string }{{"a", "1"}, {"b/c", "22"}, {"a", "3"}} {
		w, err := zw.Create(m.name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(m.body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	r := &recordingTB{TB: t}
	got := ZipMembers(r, zr)
	if string(got["b/c"]) != "22" || len(got) != 2 {
		t.Errorf("got %q, want a and b/c", got)
	}
	if !strings.Contains(r.errored, "a twice") {
		t.Errorf("a member twice: got error %q, want one", r.errored)
	}
}
