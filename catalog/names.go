package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxNameBytes is the longest entry name the kernel accepts (NAME_MAX).
const maxNameBytes = 255

// maxImageNameBytes is the longest image entry name: the image's annotation
// document is named after it plus ".json", which must fit NAME_MAX too.
const maxImageNameBytes = maxNameBytes - len(".json")

// SanitizeName turns a name from the server into one safe directory entry:
// it can never be empty, ".", "..", contain "/" or NUL, or exceed NAME_MAX.
// Control characters and invalid UTF-8 are replaced by visible stand-ins, in
// the style of rclone's encoder. The result is deterministic; names that had
// to change carry a short hash of the original when truncated, so two long
// names stay distinct. Collisions between different originals that map to
// the same safe name are resolved per directory by dedupeNames.
func SanitizeName(name string) string { return sanitizeName(name, maxNameBytes) }

// sanitizeName is SanitizeName with a byte limit below NAME_MAX.
func sanitizeName(name string, limit int) string {
	switch name {
	case "":
		return "_"
	case ".":
		return "．"
	case "..":
		return "．．"
	}
	var b strings.Builder
	b.Grow(len(name))
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteRune('\uFFFD')
		case r == '/':
			b.WriteRune('／')
		case r < 0x20:
			b.WriteRune(0x2400 + r) // ␀ … ␟
		case r == 0x7f:
			b.WriteRune('␡')
		default:
			b.WriteRune(r)
		}
		i += size
	}
	out := b.String()
	if len(out) > limit {
		out = shortenName(out, name, limit)
	}
	return out
}

// shortenName keeps the extension and as much of the stem as fits beside a
// hash of the original name.
func shortenName(safe, original string, limit int) string {
	sum := sha256.Sum256([]byte(original))
	tag := "~" + hex.EncodeToString(sum[:6])
	ext := path.Ext(safe)
	if len(ext) > 32 {
		ext = ""
	}
	room := limit - len(tag) - len(ext)
	stem := safe[:len(safe)-len(ext)]
	for len(stem) > room {
		_, size := utf8.DecodeLastRuneInString(stem)
		stem = stem[:len(stem)-size]
	}
	return stem + tag + ext
}

// withSuffix inserts tag before the extension of name, keeping the result
// within limit bytes: "cat.jpg" + "~1a2b" → "cat~1a2b.jpg".
func withSuffix(name, tag string, limit int) string {
	ext := path.Ext(name)
	if len(ext) > 32 || ext == name {
		ext = ""
	}
	stem := name[:len(name)-len(ext)]
	for len(stem)+len(tag)+len(ext) > limit && len(stem) > 0 {
		_, size := utf8.DecodeLastRuneInString(stem)
		stem = stem[:len(stem)-size]
	}
	return stem + tag + ext
}

// nameClaim is one entry that wants a name in a directory.
type nameClaim struct {
	safe string // SanitizeName of the original
	id   string // a stable identity (image id) that orders and tags duplicates
}

// dedupeNames gives every claim a distinct final name that is also distinct
// from every name in reserved (subdirectory names, and with ".json" appended
// for annotation documents). Claims are resolved in order of (safe, id) so the
// result does not depend on listing order: the first keeps its safe name, the
// others get a "~<id prefix>" suffix. The returned slice is parallel to claims.
func dedupeNames(claims []nameClaim, reserved map[string]bool) []string {
	return dedupeNamesMax(claims, reserved, maxNameBytes)
}

// dedupeNamesMax is dedupeNames for names of at most limit bytes.
func dedupeNamesMax(claims []nameClaim, reserved map[string]bool, limit int) []string {
	order := make([]int, len(claims))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool {
		ca, cb := claims[order[a]], claims[order[b]]
		if ca.safe != cb.safe {
			return ca.safe < cb.safe
		}
		return ca.id < cb.id
	})
	taken := make(map[string]bool, len(claims))
	isFree := func(n string) bool {
		return !taken[n] && !reserved[n] && !reserved[n+".json"]
	}
	out := make([]string, len(claims))
	for _, i := range order {
		c := claims[i]
		name := c.safe
		if !isFree(name) {
			idTag := strings.ReplaceAll(SanitizeName(c.id), "-", "")
			for n := 8; ; n += 4 {
				tag := idTag
				if n < len(idTag) {
					tag = idTag[:n]
				}
				name = withSuffix(c.safe, "~"+tag, limit)
				if isFree(name) || n >= len(idTag) {
					break
				}
			}
			for k := 2; !isFree(name); k++ {
				name = withSuffix(c.safe, "~"+idTag+"-"+strconv.Itoa(k), limit)
			}
		}
		taken[name] = true
		out[i] = name
	}
	return out
}

// splitRemoteDir splits a directory_path such as "/train/cars" into safe
// path segments. Empty segments vanish, so "/", "" and "//" all mean the
// dataset's top directory; "." and ".." become visible stand-ins and can
// never climb out.
func splitRemoteDir(dirPath string) []string {
	var out []string
	for _, seg := range strings.Split(dirPath, "/") {
		if seg == "" {
			continue
		}
		out = append(out, SanitizeName(seg))
	}
	return out
}
