package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// The published figures: bench/RESULTS.md is a report of the harness, and
// the README's benchmark figures are its summary block, copied by
// --write-readme. --check-figures (run by .ci/run) fails when either was
// measured on other code or copied by hand.
const (
	resultsPath = "bench/RESULTS.md"
	readmePath  = "README.md"

	// summaryBegin and summaryEnd enclose, in a report, the summary that
	// the README shows.
	summaryBegin = "<!-- summary:begin -->"
	summaryEnd   = "<!-- summary:end -->"
	// readmeBegin and readmeEnd enclose the README's generated figures.
	readmeBegin = "<!-- bench figures:begin; generated from bench/RESULTS.md by `go run ./bench --write-readme`, do not edit -->"
	readmeEnd   = "<!-- bench figures:end -->"
)

// sourceHashLine is how a report records the source hash.
var sourceHashLine = regexp.MustCompile("(?m)^- source hash: `([0-9a-f]{64})`")

// recordedSourceHash is the source hash a report was measured at.
func recordedSourceHash(report string) (string, error) {
	m := sourceHashLine.FindAllStringSubmatch(report, -1)
	switch len(m) {
	case 0:
		return "", errors.New("it records no source hash (a report from before provenance was recorded)")
	case 1:
		return m[0][1], nil
	default:
		return "", fmt.Errorf("it records %d source hashes, want one", len(m))
	}
}

// between returns the text strictly between the only begin and end markers
// of s, and where it starts and ends.
func between(s, begin, end string) (string, int, int, error) {
	if n := strings.Count(s, begin); n != 1 {
		return "", 0, 0, fmt.Errorf("%d lines %q, want one", n, begin)
	}
	if n := strings.Count(s, end); n != 1 {
		return "", 0, 0, fmt.Errorf("%d lines %q, want one", n, end)
	}
	i := strings.Index(s, begin) + len(begin)
	j := strings.Index(s, end)
	if j < i {
		return "", 0, 0, fmt.Errorf("%q comes before %q", end, begin)
	}
	return s[i:j], i, j, nil
}

// summaryOf is a report's summary block, the README's figures.
func summaryOf(report string) (string, error) {
	s, _, _, err := between(report, summaryBegin, summaryEnd)
	if err != nil {
		return "", fmt.Errorf("summary block: %w", err)
	}
	return "\n" + strings.TrimSpace(s) + "\n", nil
}

// readmeWithFigures returns readme with its figures block replaced by the
// report's summary.
func readmeWithFigures(readme, report string) (string, error) {
	summary, err := summaryOf(report)
	if err != nil {
		return "", fmt.Errorf("%s: %w", resultsPath, err)
	}
	_, i, j, err := between(readme, readmeBegin, readmeEnd)
	if err != nil {
		return "", fmt.Errorf("%s: %w", readmePath, err)
	}
	return readme[:i] + summary + readme[j:], nil
}

// checkFigures compares the figures of the module at root with its code:
// the source hash recorded in bench/RESULTS.md must be the tree's, and the
// README's figures block must be what RESULTS.md generates. It returns
// every problem, each with what to do about it.
func checkFigures(root string) error {
	hash, _, err := sourceHash(root)
	if err != nil {
		return err
	}
	report, err := os.ReadFile(filepath.Join(root, resultsPath))
	if err != nil {
		return fmt.Errorf("read the published figures: %w", err)
	}
	readme, err := os.ReadFile(filepath.Join(root, readmePath))
	if err != nil {
		return fmt.Errorf("read the README: %w", err)
	}
	return compareFigures(hash, string(report), string(readme))
}

// rerun is what to do when the figures were measured on other code.
const rerun = "re-run the benchmark on this code (as root, on an idle machine: go run ./bench), copy its report over " +
	"bench/RESULTS.md (cp bench/out/report.md bench/RESULTS.md), regenerate the README's figures (go run ./bench --write-readme), " +
	"and commit both"

// compareFigures checks a report and a README against the tree's source
// hash. Its error lists every problem, then what to do.
func compareFigures(hash, report, readme string) error {
	var problems []string
	stale := false
	recorded, err := recordedSourceHash(report)
	switch {
	case err != nil:
		problems = append(problems, fmt.Sprintf("%s does not say which code it measured: %v", resultsPath, err))
		stale = true
	case recorded != hash:
		problems = append(problems, fmt.Sprintf("%s was measured on other code: it records source hash %s, this tree's is %s "+
			"(go run ./bench --source-hash)", resultsPath, recorded, hash))
		stale = true
	}
	want, err := readmeWithFigures(readme, report)
	switch {
	case err != nil:
		problems = append(problems, fmt.Sprintf("the README's figures cannot be generated: %v", err))
	case want != readme:
		problems = append(problems, fmt.Sprintf("the README's benchmark figures differ from what %s generates", resultsPath))
	}
	if len(problems) == 0 {
		return nil
	}
	todo := "run go run ./bench --write-readme and commit " + readmePath
	if stale {
		todo = rerun
	}
	return fmt.Errorf("the published benchmark figures do not belong to this code:\n  - %s\nTo fix: %s",
		strings.Join(problems, "\n  - "), todo)
}

// writeReadme rewrites the README's figures block from bench/RESULTS.md.
func writeReadme(root string) error {
	report, err := os.ReadFile(filepath.Join(root, resultsPath))
	if err != nil {
		return fmt.Errorf("read the published figures: %w", err)
	}
	if _, err := recordedSourceHash(string(report)); err != nil {
		return fmt.Errorf("%s: %w; to publish figures, %s", resultsPath, err, rerun)
	}
	p := filepath.Join(root, readmePath)
	readme, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("read the README: %w", err)
	}
	out, err := readmeWithFigures(string(readme), string(report))
	if err != nil {
		return err
	}
	if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
		return fmt.Errorf("write the README: %w", err)
	}
	return nil
}
