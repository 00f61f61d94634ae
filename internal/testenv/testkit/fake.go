package testkit

import (
	"fmt"
	"strings"
	"testing"
)

// FakeTB is a testing.TB that records what a helper under test asks of it
// (a skip, a fatal failure, errors) instead of doing it; anything else goes
// to the embedded TB. A helper that calls Fatalf or Skipf on it goes on
// running, so such a helper must return right after.
type FakeTB struct {
	testing.TB
	SkipReason   string   // the last Skipf's message
	FatalMessage string   // the last Fatalf's message
	Errors       []string // every Errorf's message
}

func (f *FakeTB) Helper() {}

func (f *FakeTB) Skipf(format string, args ...any) { f.SkipReason = fmt.Sprintf(format, args...) }

func (f *FakeTB) Fatalf(format string, args ...any) { f.FatalMessage = fmt.Sprintf(format, args...) }

func (f *FakeTB) Errorf(format string, args ...any) {
	f.Errors = append(f.Errors, fmt.Sprintf(format, args...))
}

// WantSkipRule checks that helper obeys the skip rule of env where what it
// needs is missing: it runs helper on a FakeTB with env unset, which must
// skip, and with env set, which must fail; both must say reason.
func WantSkipRule(t *testing.T, env, reason string, helper func(testing.TB)) {
	t.Helper()
	for _, required := range []string{"", "1"} {
		t.Setenv(env, required)
		f := &FakeTB{TB: t}
		helper(f)
		skipped, failed := f.SkipReason != "", f.FatalMessage != ""
		if skipped != (required == "") || failed != (required != "") {
			t.Errorf("%s=%q: got skip %q, failure %q; want a %s", env, required, f.SkipReason, f.FatalMessage,
				map[bool]string{true: "skip", false: "failure"}[required == ""])
		}
		if said := f.SkipReason + f.FatalMessage; !strings.Contains(said, reason) {
			t.Errorf("%s=%q: got %q, want it to say %q", env, required, said, reason)
		}
	}
}
