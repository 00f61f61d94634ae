package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// median is the median of xs (the mean of the two middle values for an even
// count), NaN for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// percentile is the nearest-rank p-th percentile (0 < p ≤ 100) of xs, NaN
// for none.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 || p <= 0 || p > 100 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// ratio is a/b, NaN when either is unknown or b is not positive.
func ratio(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b <= 0 {
		return math.NaN()
	}
	return a / b
}

// fmtSeconds formats a duration in seconds with three significant digits
// (milliseconds below one second); "—" for unknown.
func fmtSeconds(s float64) string {
	switch {
	case math.IsNaN(s):
		return "—"
	case s < 1:
		return strconv.FormatFloat(s*1000, 'f', msDigits(s*1000), 64) + " ms"
	case s < 10:
		return strconv.FormatFloat(s, 'f', 2, 64) + " s"
	case s < 100:
		return strconv.FormatFloat(s, 'f', 1, 64) + " s"
	default:
		return strconv.FormatFloat(s, 'f', 0, 64) + " s"
	}
}

func msDigits(ms float64) int {
	switch {
	case ms < 10:
		return 2
	case ms < 100:
		return 1
	default:
		return 0
	}
}

// fmtRatio formats a ratio as "1.23×"; "—" for unknown.
func fmtRatio(r float64) string {
	if math.IsNaN(r) {
		return "—"
	}
	if r >= 100 {
		return strconv.FormatFloat(r, 'f', 0, 64) + "×"
	}
	return strconv.FormatFloat(r, 'f', 2, 64) + "×"
}

// fmtBytes formats a byte count with a binary unit; "—" for unknown (< 0).
func fmtBytes(n int64) string {
	if n < 0 {
		return "—"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// fmtRate formats count/seconds, e.g. "812" or "7.5"; "—" for unknown.
func fmtRate(count, seconds float64) string {
	if math.IsNaN(seconds) || seconds <= 0 || count <= 0 {
		return "—"
	}
	r := count / seconds
	prec := 0
	if r < 10 {
		prec = 1
	}
	return strconv.FormatFloat(r, 'f', prec, 64)
}

// parseInts reads a comma-separated list of positive integers; "" is none.
func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("not a positive integer: %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}
