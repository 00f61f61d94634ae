package sharedcache

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"
)

const secretPassword = "hunter2-PLANTED-PASSWORD"

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string // in the error
	}{
		{"no URL", Options{Namespace: "n"}, "no URL"},
		{"no namespace", Options{URL: "redis://h:6379/0"}, "no namespace"},
		{"scheme", Options{URL: "http://:" + secretPassword + "@h:6379/0", Namespace: "n"}, "scheme"},
		{"no host", Options{URL: "redis://:" + secretPassword + "@:6379/0", Namespace: "n"}, "no host"},
		{"bad port", Options{URL: "redis://u:" + secretPassword + "@h:port/0", Namespace: "n"}, "invalid URL"},
		{"bad DB", Options{URL: "redis://u:" + secretPassword + "@h:6379/x", Namespace: "n"}, "database"},
		{"query", Options{URL: "redis://u:" + secretPassword + "@h:6379/0?dial_timeout=1s", Namespace: "n"}, "query"},
		{"control char", Options{URL: "redis://u:" + secretPassword + "\x7f@h/0", Namespace: "n"}, "invalid URL"},
		{"two passwords", Options{URL: "redis://u:" + secretPassword + "@h:6379/0", Password: secretPassword,
			Namespace: "n"}, "both"},
		{"TLS config without rediss", Options{URL: "redis://h:6379/0", TLSConfig: &tls.Config{}, Namespace: "n"},
			"rediss"},
		{"negative size", Options{URL: "redis://h/0", Namespace: "n", MaxBlobBytes: -1}, "negative"},
		{"negative duration", Options{URL: "redis://h/0", Namespace: "n", OpTimeout: -time.Second}, "negative"},
		{"queue too small", Options{URL: "redis://h/0", Namespace: "n", QueueBytes: 1 << 20}, "QueueBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tier, err := New(tt.opts)
			if err == nil {
				tier.Close()
				t.Fatalf("New(%v): got no error, want one with %q", tt.opts, tt.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("got error %q, want it to contain %q", msg, tt.want)
			}
			if strings.Contains(msg, secretPassword) || strings.Contains(msg, "hunter2") {
				t.Errorf("got error %q, which holds the password", msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("got error %q, want one line", msg)
			}
		})
	}
}

func TestNewAppliesDefaults(t *testing.T) {
	tier, err := New(Options{URL: "rediss://user:" + secretPassword + "@cache.internal:6380/3", Namespace: "n"})
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	o := tier.opts
	checks := []struct {
		name      string
		got, want any
	}{
		{"MaxBlobBytes", o.MaxBlobBytes, DefaultMaxBlobBytes},
		{"MaxMetaBytes", o.MaxMetaBytes, DefaultMaxMetaBytes},
		{"OpTimeout", o.OpTimeout, DefaultOpTimeout},
		{"MetaTimeout", o.MetaTimeout, DefaultMetaTimeout},
		{"PublishTimeout", o.PublishTimeout, DefaultPublishTimeout},
		{"RetryAfter", o.RetryAfter, DefaultRetryAfter},
		{"QueueLen", o.QueueLen, DefaultQueueLen},
		{"QueueBytes", o.QueueBytes, DefaultQueueBytes},
		{"PublishWorkers", o.PublishWorkers, DefaultPublishWorkers},
		{"BlobTTL", o.BlobTTL, time.Duration(0)},
		{"TLS", tier.rdb.Options().TLSConfig != nil, true},
		{"TLS server name", tier.rdb.Options().TLSConfig.ServerName, "cache.internal"},
		{"DB", tier.rdb.Options().DB, 3},
		{"user", tier.rdb.Options().Username, "user"},
		{"password", tier.rdb.Options().Password == secretPassword, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestOptionsNeverPrintThePassword(t *testing.T) {
	opts := Options{URL: "redis://user:" + secretPassword + "@h:6379/0", Password: secretPassword, Namespace: "n"}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if got := fmt.Sprintf(format, opts); strings.Contains(got, secretPassword) {
			t.Errorf("Sprintf(%q): got %q, which holds the password", format, got)
		}
	}
	logs := new(logBuffer)
	logs.Logger().Info("options", "opts", opts)
	if strings.Contains(logs.String(), secretPassword) {
		t.Errorf("slog: got %q, which holds the password", logs.String())
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"redis://h:6379/0", "redis://h:6379/0"},
		{"redis://:pw@h:6379/0", "redis://:xxxxx@h:6379/0"},
		{"redis://user:pw@h:6379/0", "redis://user:xxxxx@h:6379/0"},
		{"redis://user@h:6379/0", "redis://user@h:6379/0"},
		{"rediss://u:p/a?s#s@w@h/0", "rediss://u:xxxxx@h/0"},
		{"u:pw@h:6379", "u:xxxxx@h:6379"},
		{"redis://u:p\x7fw@h/0", "redis://u:xxxxx@h/0"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
