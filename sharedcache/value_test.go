package sharedcache

import (
	"errors"
	"testing"
	"time"
)

func TestDecodeRefuses(t *testing.T) {
	const key = "pictofs:1:ns:b:k"
	payload := []byte("the bytes of an image")
	good := encode(key, kindBlob, payload, time.Time{})
	edit := func(f func(v []byte) []byte) string {
		return string(f(append([]byte(nil), good...)))
	}
	tests := []struct {
		name  string
		value string
		key   string
		kind  byte
		size  int64
		want  error
	}{
		{"empty", "", key, kindBlob, -1, errMalformed},
		{"garbage", "not a value at all, just some bytes that are long enough to hold a header", key, kindBlob, -1,
			errMalformed},
		{"header only", string(good[:headerLen]), key, kindBlob, -1, errMalformed},
		{"truncated", string(good[:len(good)-1]), key, kindBlob, -1, errMalformed},
		{"extended", string(append(append([]byte(nil), good...), 0)), key, kindBlob, -1, errMalformed},
		{"bad magic", edit(func(v []byte) []byte { v[0] = 'X'; return v }), key, kindBlob, -1, errMalformed},
		{"other version", edit(func(v []byte) []byte { v[4] = 2; return v }), key, kindBlob, -1, errMalformed},
		{"other kind", good2(key, kindMeta, payload), key, kindBlob, -1, errMalformed},
		{"payload flipped", edit(func(v []byte) []byte { v[headerLen+3] ^= 1; return v }), key, kindBlob, -1,
			errMalformed},
		{"digest flipped", edit(func(v []byte) []byte { v[offDigest] ^= 1; return v }), key, kindBlob, -1,
			errMalformed},
		{"produced-at edited", edit(func(v []byte) []byte { v[offProduced+7] = 1; return v }), key, kindBlob, -1,
			errMalformed},
		{"copied from another key", string(good), key + "x", kindBlob, -1, errMalformed},
		{"shorter than expected", string(good), key, kindBlob, int64(len(payload)) + 1, errSize},
		{"longer than expected", string(good), key, kindBlob, int64(len(payload)) - 1, errSize},
		{"good, any size", string(good), key, kindBlob, -1, nil},
		{"good, exact size", string(good), key, kindBlob, int64(len(payload)), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := decode(tt.value, tt.key, tt.kind, tt.size)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("decode: got error %v, want %v", err, tt.want)
			}
			if err != nil && got != nil {
				t.Fatalf("decode: got %d bytes with error %v, want none", len(got), err)
			}
			if err == nil {
				mustEqual(t, "payload", got, payload)
			}
		})
	}
}

func good2(key string, kind byte, payload []byte) string {
	return string(encode(key, kind, payload, time.Unix(1, 0)))
}

func TestEncodeKeepsProducedAt(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	_, got, err := decode(string(encode("k", kindMeta, []byte("x"), at)), "k", kindMeta, -1)
	if err != nil || !got.Equal(at) {
		t.Fatalf("got %v, %v; want %v, nil", got, err, at)
	}
}

func TestKeysHideNamesAndSeparateNamespaces(t *testing.T) {
	a, b := keyPrefix("https://api|org-a"), keyPrefix("https://api|org-b")
	if a == b {
		t.Fatalf("two namespaces share the prefix %q", a)
	}
	for _, p := range []string{a, b} {
		if len(p) != len("pictofs:1:")+32+1 {
			t.Errorf("prefix %q: got length %d", p, len(p))
		}
	}
}
