package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
)

// Stable log keys: every line a mount writes uses these names for these
// things, so log processors can rely on them. The message (msg) is a short
// fixed event name ("mounted", "unmounted", "shutdown requested", …).
const (
	logKeyMountpoint = "mountpoint"
	logKeyErr        = "err"
)

// newLogger is a text logger at level on stderr (for pictofs serve); level
// is checked as --log-level is for the other commands.
func newLogger(level string) (*slog.Logger, error) {
	cfg := logConfig{Level: level, Format: "text"}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	l, _, err := openLogger(cfg, nil)
	return l, err
}

// openLogger builds the logger that a command's config asks for; cfg must
// have passed logConfig.check, which owns the level and format checks. Every
// string and error it writes passes through a redactor, so a secret
// registered with it (the API key) never reaches the log whatever a caller
// passes in. close releases the log file, if any.
func openLogger(cfg logConfig, red *redactor) (logger *slog.Logger, close func(), err error) {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level)) // checked: cannot fail
	var w io.Writer = os.Stderr
	close = func() {}
	if cfg.File != "" {
		f, err := os.OpenFile(cfg.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("--log-file %s: %w", cfg.File, unwrapPathError(err))
		}
		w, close = f, func() { f.Close() }
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: red.replaceAttr}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h), close, nil
}

// redactor replaces registered secrets in log attributes (the message
// included) with "[redacted]".
type redactor struct {
	mu      sync.RWMutex // guards secrets
	secrets []string
}

// add registers a secret; empty and very short strings are ignored, so that
// redaction never mangles ordinary words.
func (r *redactor) add(secret string) {
	if r == nil || len(secret) < 8 {
		return
	}
	r.mu.Lock()
	r.secrets = append(r.secrets, secret)
	r.mu.Unlock()
}

func (r *redactor) redact(s string) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	changed := false
	for _, sec := range r.secrets {
		if strings.Contains(s, sec) {
			s, changed = strings.ReplaceAll(s, sec, "[redacted]"), true
		}
	}
	return s, changed
}

func (r *redactor) replaceAttr(_ []string, a slog.Attr) slog.Attr {
	if r == nil {
		return a
	}
	switch a.Value.Kind() {
	case slog.KindString:
		if s, ok := r.redact(a.Value.String()); ok {
			a.Value = slog.StringValue(s)
		}
	case slog.KindAny:
		if err, isErr := a.Value.Any().(error); isErr {
			if s, ok := r.redact(err.Error()); ok {
				a.Value = slog.StringValue(s)
			}
		}
	}
	return a
}

// unwrapPathError is the reason of a path error without the path, which the
// caller's message names already.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// addSharedCachePassword adds the shared cache's password (from its URL or
// the environment) to the secrets kept out of the logs.
func (r *redactor) addSharedCachePassword(rawURL string) {
	if rawURL == "" {
		return
	}
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			r.add(pw)
		}
	}
	r.add(os.Getenv(sharedCachePasswordEnv))
}
