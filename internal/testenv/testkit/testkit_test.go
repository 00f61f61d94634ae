package testkit

import (
	"archive/zip"
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestUnavailable(t *testing.T) {
	WantSkipRule(t, "PICTOFS_TESTKIT_REQUIRE", "the frobnicator is missing", func(tb testing.TB) {
		Unavailable(tb, "PICTOFS_TESTKIT_REQUIRE", "the frobnicator is missing")
	})
}

func TestRequireTool(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	WantSkipRule(t, FUSEEnv, "frobnicate is not installed", func(tb testing.TB) { RequireTool(tb, "frobnicate") })
}

func TestWaitFor(t *testing.T) {
	calls := 0
	WaitFor(t, "the third call", time.Minute, func() bool { calls++; return calls == 3 })
	if calls != 3 {
		t.Errorf("got %d calls, want 3", calls)
	}
	r := &FakeTB{TB: t}
	start := time.Now()
	WaitFor(r, "what never comes", 50*time.Millisecond, func() bool { return false })
	if !strings.Contains(r.FatalMessage, "what never comes") {
		t.Errorf("got failure %q, want it to name what it waited for", r.FatalMessage)
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
	r := &FakeTB{TB: t}
	got := ZipMembers(r, zr)
	if string(got["b/c"]) != "22" || len(got) != 2 {
		t.Errorf("got %q, want a and b/c", got)
	}
	if len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "a twice") {
		t.Errorf("a member twice: got errors %q, want one", r.Errors)
	}
}
