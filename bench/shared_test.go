package main

import (
	"strings"
	"testing"
)

func TestReferenceFromLines(t *testing.T) {
	img, doc := []byte("IMG"), []byte("{}")
	lines := []string{digestLine("train/a b.png", img, doc), digestLine("val/c.jpg", []byte("C"), doc)}
	ref, err := referenceFromLines("ds", lines)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(ref.files), 2; got != want {
		t.Fatalf("got %d files, want %d", got, want)
	}
	if f := ref.files["train/a b.png"]; f.imageSHA != sha256Hex(img) || f.docSHA != sha256Hex(doc) {
		t.Errorf("got %+v for train/a b.png, want the hashes of its line", f)
	}
	if n, err := ref.checkLines("x", lines[:1]); err != nil || n != 1 {
		t.Errorf("checkLines(its own line) = %d, %v; want 1, nil", n, err)
	}
	if _, err := ref.checkLines("x", []string{digestLine("val/c.jpg", []byte("other"), doc)}); err == nil {
		t.Error("checkLines(other bytes) succeeded, want an error")
	}
	if err := ref.expected().check("x", epochResult{Images: 2, Digest: digestOf(lines)}); err != nil {
		t.Errorf("expected() of the lines' reference: %v", err)
	}
	for _, bad := range [][]string{
		{"short"},
		{strings.Repeat("x", 140)},
		{lines[0], lines[0]},
	} {
		if _, err := referenceFromLines("ds", bad); err == nil {
			t.Errorf("referenceFromLines(%q) succeeded, want an error", bad)
		}
	}
}

func TestParseRedisSample(t *testing.T) {
	info := "# Stats\r\ntotal_connections_received:7\r\ntotal_net_output_bytes:123456\r\nevicted_keys:3\r\n" +
		"keyspace_hits:2000\r\nkeyspace_misses:12\r\n\r\n# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n"
	got, err := parseRedisSample(info)
	if err != nil {
		t.Fatal(err)
	}
	want := redisSample{hits: 2000, misses: 12, evicted: 3, sent: 123456, usedMemory: 1 << 20}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "# Stats\r\nkeyspace_hits:x\r\n", strings.Replace(info, "used_memory:", "used_mem:", 1)} {
		if _, err := parseRedisSample(bad); err == nil {
			t.Errorf("parseRedisSample(%q) succeeded, want an error", bad)
		}
	}
	before := redisSample{hits: 100, misses: 2, evicted: 1, sent: 1000, usedMemory: 5, keys: 9}
	after := redisSample{hits: 150, misses: 3, evicted: 4, sent: 3000, usedMemory: 7, keys: 20}
	if got, want := after.since(before), (redisUse{Hits: 50, Misses: 1, SentBytes: 2000, Evicted: 3, Keys: 20, UsedMemory: 7}); got != want {
		t.Errorf("since: got %+v, want %+v", got, want)
	}
}

func TestSharedMaxMemory(t *testing.T) {
	for _, tt := range []struct {
		bytes int64
		want  int64
	}{
		{0, 64},
		{9 << 20, 64},
		{16 << 20, 64},
		{70 << 20, 172},
		{70<<20 + 1, 173},
	} {
		if got := sharedMaxMemory(tt.bytes); got != tt.want {
			t.Errorf("sharedMaxMemory(%d) = %d MiB, want %d", tt.bytes, got, tt.want)
		}
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"--maxmemory", "2mb", "--save", "", "--x", "it's"})
	if want := `--maxmemory 2mb --save '' --x 'it'\''s'`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// sharedFixture is a row at the size the targets name: 2000 images, three
// tier mounts, every target met.
func sharedFixture() *sharedRun {
	api := func(n int64) requestCounts { return requestCounts{"listing": n} }
	return &sharedRun{Dataset: "bench-2000", Images: 2000, Bytes: 70 << 20, Nodes: 3, SmallMaxMemory: 2 << 20,
		Mounts: []*sharedNode{
			{Name: "one mount, no tier", Role: roleBaseline, Total: 12, ImageGets: 2000, ExportGets: 1, Requests: api(10)},
			{Name: "node 1", Role: roleNode, Total: 12, ImageGets: 2000, ExportGets: 1, Requests: api(10)},
			{Name: "node 2", Role: roleNode, Total: 8, ImageGets: 10, Requests: api(1)},
			{Name: "node 3", Role: roleNode, Total: 7.5, ImageGets: 5, Requests: api(1)},
			{Name: "node 4, Redis killed mid-read", Role: roleKilled, Total: 9, ImageGets: 900, KilledMidRead: true},
			{Name: "small Redis, node 1", Role: roleSmall, Total: 12, ImageGets: 2000},
			{Name: "small Redis, node 2", Role: roleSmall, Total: 12, ImageGets: 2000},
		}}
}

func TestSharedTargets(t *testing.T) {
	verdicts := func(s *sharedRun) []string {
		r := newResults()
		r.Shared = s
		var out []string
		for _, tg := range r.sharedTargets() {
			out = append(out, holdsText(tg.holds, tg.measured))
		}
		return out
	}
	all := func(v string) []string { return []string{v, v, v, v, v} }
	tests := []struct {
		name   string
		change func(s *sharedRun)
		want   []string
	}{
		{"all met", func(*sharedRun) {}, all("holds")},
		{"storage read twice", func(s *sharedRun) { s.Mounts[2].ImageGets = 300 }, // 2305 GETs: 1.15×
			[]string{"does not hold", "holds", "holds", "holds", "holds"}},
		{"API requests 1.3×", func(s *sharedRun) { s.Mounts[3].Requests = requestCounts{"listing": 2, "other": 1} },
			[]string{"holds", "does not hold", "holds", "holds", "holds"}},
		{"node 3 slower than node 1", func(s *sharedRun) { s.Mounts[3].Total = 12.5 },
			[]string{"holds", "holds", "does not hold", "holds", "holds"}},
		{"failed reads", func(s *sharedRun) {
			s.Mounts[4].Failed = map[string]int{"EIO": 1}
			s.Mounts[6].Failed = map[string]int{"EIO": 2}
		}, []string{"holds", "holds", "holds", "does not hold", "does not hold"}},
		{"killed after the epoch", func(s *sharedRun) { s.Mounts[4].KilledMidRead = false },
			[]string{"holds", "holds", "holds", "not judged", "holds"}},
		{"dataset not far above the small Redis", func(s *sharedRun) { s.Bytes = 6 << 20 },
			[]string{"holds", "holds", "holds", "holds", "not judged"}},
		{"another size", func(s *sharedRun) { s.Images = 200 },
			[]string{"not judged", "not judged", "not judged", "holds", "holds"}},
		{"two nodes", func(s *sharedRun) { s.Nodes = 2; s.Mounts = append(s.Mounts[:3], s.Mounts[4:]...) },
			[]string{"not judged", "not judged", "not judged", "holds", "holds"}},
		{"a tier mount failed", func(s *sharedRun) { s.Mounts[2].Err = "boom" },
			[]string{"not measured", "not measured", "not measured", "holds", "holds"}},
		{"no baseline", func(s *sharedRun) { s.Mounts[0].Err = "boom" },
			[]string{"holds", "not measured", "holds", "holds", "holds"}},
		{"no faults", func(s *sharedRun) { s.Mounts = s.Mounts[:4] },
			[]string{"holds", "holds", "holds", "not measured", "not measured"}},
	}
	for _, tt := range tests {
		s := sharedFixture()
		tt.change(s)
		got := verdicts(s)
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	if got := verdicts(nil); strings.Join(got, ",") != strings.Join(all("not measured"), ",") {
		t.Errorf("no row: got %q, want every target not measured", got)
	}
}

func TestSharedTable(t *testing.T) {
	r := newResults()
	r.Shared = sharedFixture()
	var b strings.Builder
	if err := r.sharedTable().markdown(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| node 2 | 0.00 ms | 8.00 s | 10 | 0 | 1 (listing 1) |", "| nodes 1–3 together |  |  | 2015 (1.01× the images) | 1 | 12 (1.20× one mount's) |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	r.Shared.Mounts[2].Err = "boom"
	b.Reset()
	if err := r.sharedTable().markdown(&b); err != nil {
		t.Fatal(err)
	}
	if want := "| node 2 | — | — | 10 | 0 | 1 (listing 1) | — | FAILED: boom |"; !strings.Contains(b.String(), want) {
		t.Errorf("table lacks %q:\n%s", want, b.String())
	}
}
