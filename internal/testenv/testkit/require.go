package testkit

import (
	"os"
	"os/exec"
	"testing"
)

// FUSEEnv names the variable that turns the skip of a test that mounts
// (FUSE, or a tmpfs as root, or a tool such a test drives) into a failure;
// .ci/run sets it, since a CI run that mounted nothing has not tested this
// project.
const FUSEEnv = "PICTOFS_REQUIRE_FUSE"

// Unavailable is the one skip rule: t skips because what it needs is
// missing (reason), or fails when the variable env is set, since the run
// that sets it must test this.
func Unavailable(t testing.TB, env, reason string) {
	t.Helper()
	if os.Getenv(env) != "" {
		t.Fatalf("this test cannot run (%s) but %s is set", reason, env)
		return
	}
	t.Skipf("skipped: %s", reason)
}

// RequireFUSE skips or fails t (Unavailable with FUSEEnv) where FUSE cannot
// be mounted: no /dev/fuse, or not root and no fusermount3.
func RequireFUSE(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		Unavailable(t, FUSEEnv, "FUSE unavailable: /dev/fuse is missing")
		return
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			Unavailable(t, FUSEEnv, "FUSE unavailable: not root and no fusermount3")
		}
	}
}

// RequireRoot skips or fails t (Unavailable with FUSEEnv) unless it runs
// as root; why says what needs root (a tmpfs, kernel passthrough…).
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, FUSEEnv, why+" needs root")
	}
}

// RequireTool skips or fails t (Unavailable with FUSEEnv) unless the
// program name is installed; it returns its path.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, FUSEEnv, name+" is not installed")
	}
	return path
}
