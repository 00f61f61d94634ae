package catalog

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzSanitizeName checks that any name from the server becomes one safe
// directory entry: never empty, ".", "..", never with "/", NUL or a control
// character, at most NAME_MAX bytes, valid UTF-8, the same on every call;
// and that an image entry leaves room for its annotation document's ".json".
func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{"", ".", "..", "a/b.jpg", "../../etc/passwd", "nul\x00.jpg", "ctl\x01\x1b[31m",
		strings.Repeat("L", 1000) + ".jpg", "caf\u00e9", "cafe\u0301", "\xff\xfe", "x.jpg.json", "\u202e", "．．"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		for _, limit := range []int{maxNameBytes, maxImageNameBytes} {
			got := sanitizeName(name, limit)
			switch {
			case got == "" || got == "." || got == "..":
				t.Fatalf("sanitizeName(%q, %d) = %q, a special name", name, limit, got)
			case strings.ContainsAny(got, "/\x00"):
				t.Fatalf("sanitizeName(%q, %d) = %q holds / or NUL", name, limit, got)
			case strings.ContainsFunc(got, func(r rune) bool { return r < 0x20 || r == 0x7f }):
				t.Fatalf("sanitizeName(%q, %d) = %q holds a control character", name, limit, got)
			case len(got) > limit:
				t.Fatalf("sanitizeName(%q, %d) = %q is %d bytes", name, limit, got, len(got))
			case !utf8.ValidString(got):
				t.Fatalf("sanitizeName(%q, %d) = %q is not valid UTF-8", name, limit, got)
			case sanitizeName(name, limit) != got:
				t.Fatalf("sanitizeName(%q, %d) is not deterministic", name, limit)
			}
		}
		if got := SanitizeName(name); got != sanitizeName(name, maxNameBytes) {
			t.Fatalf("SanitizeName(%q) = %q, want the NAME_MAX sanitizeName", name, got)
		}
		if got := sanitizeName(name, maxImageNameBytes); len(got+".json") > maxNameBytes {
			t.Fatalf("annotation document of image %q is %d bytes, over NAME_MAX", name, len(got+".json"))
		}
		if got, want := emptyAnnotationDocSize(name), int64(len(emptyAnnotationDoc(name))); got != want {
			t.Fatalf("emptyAnnotationDocSize(%q) = %d, want %d", name, got, want)
		}
	})
}

// FuzzDedupeNames checks that the entries of one directory always get
// distinct names within the limit, none taken by a subdirectory (or by a
// subdirectory's name minus ".json"), whatever the originals and their order.
func FuzzDedupeNames(f *testing.F) {
	f.Add("dup.jpg", "dup.jpg", "dup.jpg", "sub", "id")
	f.Add("a/b", "a／b", strings.Repeat("x", 300), "x.jpg.json", "")
	f.Add("", ".", "..", "_", "0")
	f.Fuzz(func(t *testing.T, a, b, c, sub, id string) {
		reserved := map[string]bool{SanitizeName(sub): true}
		for _, limit := range []int{maxNameBytes, maxImageNameBytes} {
			claims := []nameClaim{
				{sanitizeName(a, limit), id + "1"}, {sanitizeName(b, limit), id + "2"},
				{sanitizeName(c, limit), id + "3"}, {sanitizeName(a, limit), id + "4"},
			}
			got := dedupeNamesMax(claims, reserved, limit)
			seen := map[string]bool{}
			for i, name := range got {
				switch {
				case seen[name]:
					t.Fatalf("dedupe of %q gave %q twice: %q", claims, name, got)
				case reserved[name] || reserved[name+".json"]:
					t.Fatalf("dedupe gave %q, taken by a subdirectory", name)
				case len(name) > limit || name == "" || strings.ContainsAny(name, "/\x00"):
					t.Fatalf("dedupe gave unsafe name %q for %q", name, claims[i].safe)
				}
				seen[name] = true
			}
			reversed := []nameClaim{claims[3], claims[2], claims[1], claims[0]}
			again := dedupeNamesMax(reversed, reserved, limit)
			for i := range claims {
				if got[i] != again[3-i] {
					t.Fatalf("dedupe depends on listing order: %q vs %q", got, again)
				}
			}
		}
	})
}
