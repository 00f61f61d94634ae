package fs_test

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// run runs a program to completion (3 minutes at most) and returns its
// output; it fails the test when the program fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}
