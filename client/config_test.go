package client

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	home := t.TempDir()
	dir := filepath.Join(home, ".pictograph")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return home
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestResolveConfigPrecedence(t *testing.T) {
	fileHome := writeConfig(t, "[default]\napi_key = \"pk_file\"\nbase_url = \"https://file.example\"\n")
	keyOnlyHome := writeConfig(t, "[default]\napi_key = \"pk_file\"\n")
	emptyHome := t.TempDir()
	fileSource := ConfigPath(fileHome)
	tests := []struct {
		name                      string
		src                       ConfigSources
		env                       map[string]string
		wantKey, wantSrc, wantURL string
	}{
		{"flag beats all", ConfigSources{FlagAPIKey: "pk_flag", FlagBaseURL: "http://flag.example:8080", HomeDir: fileHome},
			map[string]string{EnvAPIKey: "pk_env", EnvBaseURL: "https://env.example"}, "pk_flag", "flag", "http://flag.example:8080"},
		{"env beats file", ConfigSources{HomeDir: fileHome},
			map[string]string{EnvAPIKey: "pk_env", EnvBaseURL: "https://env.example"}, "pk_env", "env PICTOGRAPH_API_KEY", "https://env.example"},
		{"file", ConfigSources{HomeDir: fileHome}, nil, "pk_file", fileSource, "https://file.example"},
		{"flag key, file base URL", ConfigSources{FlagAPIKey: "pk_flag", HomeDir: fileHome}, nil, "pk_flag", "flag", "https://file.example"},
		{"file key, default base URL", ConfigSources{HomeDir: keyOnlyHome}, nil, "pk_file", ConfigPath(keyOnlyHome), DefaultBaseURL},
		{"env key, no file", ConfigSources{HomeDir: emptyHome}, map[string]string{EnvAPIKey: " pk_env\n"}, "pk_env", "env PICTOGRAPH_API_KEY", DefaultBaseURL},
		{"base URL with API prefix", ConfigSources{FlagAPIKey: "k", FlagBaseURL: "https://x.example/api/v1/developer/", HomeDir: emptyHome}, nil, "k", "flag", "https://x.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src
			src.Getenv = envOf(tt.env)
			cfg, err := ResolveConfig(src)
			if err != nil {
				t.Fatalf("ResolveConfig: %v", err)
			}
			if cfg.APIKey != tt.wantKey || cfg.KeySource != tt.wantSrc || cfg.BaseURL != tt.wantURL {
				t.Errorf("got key %q from %q, base %q; want %q from %q, base %q", cfg.APIKey, cfg.KeySource, cfg.BaseURL, tt.wantKey, tt.wantSrc, tt.wantURL)
			}
			if cfg.Timeout != 30*time.Second || cfg.MaxRetries != 3 {
				t.Errorf("got timeout %v, retries %d; want 30s, 3", cfg.Timeout, cfg.MaxRetries)
			}
		})
	}
}

func TestResolveConfigErrors(t *testing.T) {
	badHome := writeConfig(t, "[default]\napi_key = \"pk_file\"\nbase_url = https://unquoted\n")
	emptyHome := t.TempDir()
	tests := []struct {
		name  string
		src   ConfigSources
		env   map[string]string
		wants []string // substrings of the error
	}{
		{"missing key", ConfigSources{HomeDir: emptyHome}, nil,
			[]string{"--api-key", "PICTOGRAPH_API_KEY", "pictograph login", ConfigPath(emptyHome)}},
		{"malformed file", ConfigSources{HomeDir: badHome}, nil,
			[]string{ConfigPath(badHome), "line 3"}},
		{"base URL without scheme", ConfigSources{FlagAPIKey: "k", FlagBaseURL: "api.pictograph.io", HomeDir: emptyHome}, nil,
			[]string{"flag", "http"}},
		{"base URL without host", ConfigSources{FlagAPIKey: "k", HomeDir: emptyHome}, map[string]string{EnvBaseURL: "https://"},
			[]string{EnvBaseURL, "no host"}},
		{"bad timeout", ConfigSources{FlagAPIKey: "k", HomeDir: emptyHome}, map[string]string{EnvTimeout: "soon"},
			[]string{EnvTimeout}},
		{"zero timeout", ConfigSources{FlagAPIKey: "k", HomeDir: emptyHome}, map[string]string{EnvTimeout: "0"},
			[]string{EnvTimeout}},
		{"bad retries", ConfigSources{FlagAPIKey: "k", HomeDir: emptyHome}, map[string]string{EnvMaxRetries: "-1"},
			[]string{EnvMaxRetries}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src
			src.Getenv = envOf(tt.env)
			cfg, err := ResolveConfig(src)
			if err == nil {
				t.Fatalf("got %+v, want an error", cfg)
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestResolveConfigSkipsFileWhenNotNeeded(t *testing.T) {
	badHome := writeConfig(t, "this is not toml")
	cfg, err := ResolveConfig(ConfigSources{FlagAPIKey: "k", FlagBaseURL: "https://x.example", HomeDir: badHome, Getenv: envOf(nil)})
	if err != nil || cfg.APIKey != "k" {
		t.Errorf("got %+v, %v; want key k and no error", cfg, err)
	}
}

func TestResolveConfigEnvNumbers(t *testing.T) {
	cfg, err := ResolveConfig(ConfigSources{FlagAPIKey: "k", HomeDir: t.TempDir(),
		Getenv: envOf(map[string]string{EnvTimeout: "2.5", EnvMaxRetries: "0"})})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Timeout != 2500*time.Millisecond || cfg.MaxRetries != 0 {
		t.Errorf("got %v, %d; want 2.5s, 0", cfg.Timeout, cfg.MaxRetries)
	}
	if got := cfg.Options().MaxRetries; got != -1 {
		t.Errorf("got Options().MaxRetries %d, want -1 (no retries)", got)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	tests := []struct {
		opts    Options
		wantErr bool
		wantURL string
	}{
		{Options{APIKey: "k"}, false, DefaultBaseURL},
		{Options{APIKey: "k", BaseURL: "http://127.0.0.1:9000/"}, false, "http://127.0.0.1:9000"},
		{Options{APIKey: "k", BaseURL: "https://h.example/prefix/api/v1/developer"}, false, "https://h.example/prefix"},
		{Options{BaseURL: "https://h.example"}, true, ""},
		{Options{APIKey: "k", BaseURL: "ftp://h.example"}, true, ""},
		{Options{APIKey: "k", BaseURL: "h.example"}, true, ""},
		{Options{APIKey: "k", BaseURL: "https:///path"}, true, ""},
		{Options{APIKey: "k", BaseURL: "https://h.example?x=1"}, true, ""},
	}
	for _, tt := range tests {
		c, err := New(tt.opts)
		if (err != nil) != tt.wantErr {
			t.Errorf("New(%+v): got error %v, want error %v", tt.opts.BaseURL, err, tt.wantErr)
			continue
		}
		if err == nil && c.BaseURL().String() != tt.wantURL {
			t.Errorf("New(%q): got base %q, want %q", tt.opts.BaseURL, c.BaseURL(), tt.wantURL)
		}
	}
}
