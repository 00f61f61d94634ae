package contract

import (
	"flag"
	"os"
	"regexp"
	"testing"
)

// TestMain starts seeding the 25,000-image dataset in the background when a
// test that needs it will run, so that the seeding overlaps the small tests.
func TestMain(m *testing.M) {
	flag.Parse()
	if run := flag.Lookup("test.run").Value.String(); run == "" || matchesAny(run, "TestBigDatasetForcedCap", "TestBigDatasetDefaultCaps", "TestBigExport") {
		go seedBig()
	}
	code := m.Run()
	big.once.Do(func() {}) // wait for a seeding in progress before removing its directory
	if big.dir != "" {
		os.RemoveAll(big.dir)
	}
	os.Exit(code)
}

func matchesAny(pattern string, names ...string) bool {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return true
	}
	for _, n := range names {
		if re.MatchString(n) {
			return true
		}
	}
	return false
}
