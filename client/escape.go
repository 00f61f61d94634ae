package client

import (
	"net/url"
	"strings"
)

// EscapeSegment percent-encodes s for one path segment with no safe
// characters: only the RFC 3986 unreserved bytes A-Z a-z 0-9 - . _ ~ are
// kept, so "/" becomes %2F and ":" "@" "+" "&" "=" are escaped too. A segment
// made only of dots is escaped entirely, so that no proxy can read it as "."
// or "..". "a/b c%" becomes "a%2Fb%20c%25".
func EscapeSegment(s string) string {
	allDots := s != "" && strings.Trim(s, ".") == ""
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) && !(allDots && c == '.') {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// ImagePath is the escaped image_path of §4: directoryPath without its outer
// slashes, then "/", then filename ("val/0001.jpg"; a bare filename for the
// root). The "/" between directories is kept; everything else is escaped.
func ImagePath(directoryPath, filename string) string {
	dir := strings.Trim(directoryPath, "/")
	if dir == "" {
		return EscapeSegment(filename)
	}
	parts := strings.Split(dir, "/")
	for i, p := range parts {
		parts[i] = EscapeSegment(p)
	}
	return strings.Join(parts, "/") + "/" + EscapeSegment(filename)
}

// SanitizeURL returns u without its query string, fragment and user info,
// for logs and errors: a signed URL's signature lives in its query.
func SanitizeURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		if i := strings.IndexAny(u, "?#"); i >= 0 {
			u = u[:i]
		}
		if i := strings.Index(u, "@"); i >= 0 {
			if j := strings.Index(u, "://"); j >= 0 && j < i {
				u = u[:j+3] + u[i+1:]
			}
		}
		return u
	}
	p.RawQuery, p.ForceQuery, p.Fragment, p.RawFragment, p.User = "", false, "", "", nil
	return p.String()
}
