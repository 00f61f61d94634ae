package devserver

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestSeedDemoTiming seeds PICTOFS_SEED_IMAGES images (default 100) and
// logs how long it took, in wall and CPU time; run with
// PICTOFS_SEED_IMAGES=100000 for the figure of a large demo.
func TestSeedDemoTiming(t *testing.T) {
	n := 100
	if v := os.Getenv("PICTOFS_SEED_IMAGES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	s, err := New(context.Background(), Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start, cpu0 := time.Now(), cpuTime()
	d, err := s.SeedDemo(context.Background(), s.DefaultOrg(), DemoDatasetName, n)
	if err != nil {
		t.Fatal(err)
	}
	el, cpu := time.Since(start), cpuTime()-cpu0
	t.Logf("SeedDemo of %d images took %v wall, %v CPU (%.0f images/s), %d bytes (%d B/image)",
		d.ImageCount, el.Round(time.Millisecond), cpu.Round(time.Millisecond), float64(n)/el.Seconds(),
		d.TotalSize, d.TotalSize/int64(max(1, n)))
}
