// Package fusetest holds what every test that mounts needs and nothing else:
// the rule that decides whether a FUSE test may skip.
package fusetest

import (
	"os"
	"os/exec"
	"testing"
)

// RequireEnv names the variable that turns a FUSE test's skip into a
// failure; .ci/run sets it, since a CI run that mounted nothing has not
// tested this project.
const RequireEnv = "PICTOFS_REQUIRE_FUSE"

// Require skips t where FUSE cannot be mounted (no /dev/fuse; not root and no
// fusermount3), or fails it when RequireEnv is set.
func Require(t testing.TB) {
	t.Helper()
	reason := ""
	if _, err := os.Stat("/dev/fuse"); err != nil {
		reason = "/dev/fuse is missing"
	} else if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			reason = "not root and no fusermount3"
		}
	}
	if reason == "" {
		return
	}
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("FUSE mount test cannot run (%s) but %s is set", reason, RequireEnv)
	}
	t.Skipf("FUSE unavailable: %s", reason)
}
