package catalog

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSanitizeName(t *testing.T) {
	long := strings.Repeat("a", 1000) + ".jpg"
	tests := []struct {
		in, want string
	}{
		{"cat.jpg", "cat.jpg"},
		{"", "_"},
		{".", "．"},
		{"..", "．．"},
		{"a/b.png", "a／b.png"},
		{"../../etc/passwd", "..／..／etc／passwd"},
		{"nul\x00byte", "nul␀byte"},
		{"tab\tand\nnewline", "tab␉and␊newline"},
		{"del\x7f", "del␡"},
		{"bad\xffutf8", "bad\uFFFDutf8"},
		{"café.jpg", "café.jpg"},
	}
	for _, tt := range tests {
		if got := SanitizeName(tt.in); got != tt.want {
			t.Errorf("SanitizeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	got := SanitizeName(long)
	if len(got) > maxNameBytes || !strings.HasSuffix(got, ".jpg") || !strings.Contains(got, "~") {
		t.Errorf("SanitizeName(1000-byte name) = %q (%d bytes), want ≤ %d bytes ending in .jpg with a hash tag", got, len(got), maxNameBytes)
	}
	other := SanitizeName(strings.Repeat("a", 999) + "b.jpg")
	if other == got {
		t.Errorf("two different long names both became %q, want distinct names", got)
	}
}

func TestSanitizeNameIsAlwaysSafe(t *testing.T) {
	inputs := []string{"", ".", "..", "/", "//", "a\x00", strings.Repeat("é", 300), strings.Repeat("/", 300), "\xc3", "x\u202ey"}
	for _, in := range inputs {
		got := SanitizeName(in)
		if got == "" || got == "." || got == ".." || strings.ContainsAny(got, "/\x00") || len(got) > maxNameBytes || !utf8.ValidString(got) {
			t.Errorf("SanitizeName(%q) = %q, want a safe, valid entry name", in, got)
		}
	}
}

func TestDedupeNames(t *testing.T) {
	tests := []struct {
		name     string
		claims   []nameClaim
		reserved map[string]bool
		want     []string
	}{
		{
			name:   "distinct names stay",
			claims: []nameClaim{{"a.jpg", "1"}, {"b.jpg", "2"}},
			want:   []string{"a.jpg", "b.jpg"},
		},
		{
			name:   "duplicates get an id suffix, smallest id keeps the name",
			claims: []nameClaim{{"a.jpg", "ffff0000-1111"}, {"a.jpg", "0000aaaa-2222"}},
			want:   []string{"a~ffff0000.jpg", "a.jpg"},
		},
		{
			name:     "a file may not shadow a subdirectory",
			claims:   []nameClaim{{"train", "abcd1234-0000"}},
			reserved: map[string]bool{"train": true},
			want:     []string{"train~abcd1234"},
		},
		{
			name:     "an annotation document may not shadow a subdirectory",
			claims:   []nameClaim{{"x", "abcd1234-0000"}},
			reserved: map[string]bool{"x.json": true},
			want:     []string{"x~abcd1234"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := dedupeNames(tt.claims, tt.reserved); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDedupeNamesIsOrderIndependent(t *testing.T) {
	a := dedupeNames([]nameClaim{{"x", "2"}, {"x", "1"}, {"x", "3"}}, nil)
	b := dedupeNames([]nameClaim{{"x", "3"}, {"x", "1"}, {"x", "2"}}, nil)
	byID := func(names []string, ids []string) map[string]string {
		m := map[string]string{}
		for i := range names {
			m[ids[i]] = names[i]
		}
		return m
	}
	if len(a) != 3 || len(b) != 3 {
		t.Fatalf("got %q and %q, want three names each", a, b)
	}
	ma, mb := byID(a, []string{"2", "1", "3"}), byID(b, []string{"3", "1", "2"})
	if len(ma) != 3 || ma["1"] == ma["2"] || ma["2"] == ma["3"] || ma["1"] == ma["3"] {
		t.Errorf("got %q, want three different names", a)
	}
	for id, n := range ma {
		if mb[id] != n {
			t.Errorf("id %s: got %q in one order and %q in another, want the same", id, n, mb[id])
		}
	}
}

func TestSplitRemoteDir(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"/", ""},
		{"", ""},
		{"/train/cars", "train/cars"},
		{"//train//", "train"},
		{"/../etc", "．．/etc"},
		{"/./x", "．/x"},
	}
	for _, tt := range tests {
		if got := strings.Join(splitRemoteDir(tt.in), "/"); got != tt.want {
			t.Errorf("splitRemoteDir(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
