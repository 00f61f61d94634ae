package client

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultBaseURL is the hosted service.
const DefaultBaseURL = "https://api.pictograph.io"

// APIPrefix is the path under the base URL of every API route.
const APIPrefix = "/api/v1/developer"

// Environment variables of the official SDK and CLI.
const (
	EnvAPIKey     = "PICTOGRAPH_API_KEY"
	EnvBaseURL    = "PICTOGRAPH_BASE_URL"
	EnvTimeout    = "PICTOGRAPH_TIMEOUT"
	EnvMaxRetries = "PICTOGRAPH_MAX_RETRIES"
)

// Defaults of the official SDK.
const (
	DefaultTimeout    = 30 * time.Second
	DefaultMaxRetries = 3
)

// ConfigSources are the inputs of ResolveConfig. Empty strings mean "not given".
type ConfigSources struct {
	FlagAPIKey, FlagBaseURL string
	Getenv                  func(string) string // nil = os.Getenv
	HomeDir                 string              // "" = os.UserHomeDir()
}

// Config is the resolved configuration.
type Config struct {
	APIKey, BaseURL string
	// KeySource says where the key came from: "flag", "env PICTOGRAPH_API_KEY"
	// or the config file's path. It never holds the key.
	KeySource  string
	Timeout    time.Duration // PICTOGRAPH_TIMEOUT seconds, default 30s
	MaxRetries int           // PICTOGRAPH_MAX_RETRIES, default 3; 0 means no retries
}

// Options returns client Options for c (MaxRetries 0 becomes -1, "none").
func (c Config) Options() Options {
	o := Options{BaseURL: c.BaseURL, APIKey: c.APIKey, Timeout: c.Timeout, MaxRetries: c.MaxRetries}
	if o.MaxRetries == 0 {
		o.MaxRetries = -1
	}
	return o
}

// ConfigPath is the CLI's config file under home.
func ConfigPath(home string) string {
	return filepath.Join(home, ".pictograph", "config.toml")
}

// fileConfig is ~/.pictograph/config.toml as `pictograph login` writes it.
type fileConfig struct {
	Default struct {
		APIKey  string `toml:"api_key"`
		BaseURL string `toml:"base_url"`
	} `toml:"default"`
}

// ResolveConfig resolves the configuration exactly as the official CLI does.
// Key: flag, then PICTOGRAPH_API_KEY, then ~/.pictograph/config.toml
// ([default] api_key). Base URL: flag, PICTOGRAPH_BASE_URL, the file's
// [default] base_url, DefaultBaseURL. The file is read only when the flag and
// the environment leave the key or the base URL open.
func ResolveConfig(src ConfigSources) (Config, error) {
	getenv := src.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	cfg := Config{Timeout: DefaultTimeout, MaxRetries: DefaultMaxRetries}

	cfg.APIKey, cfg.KeySource = strings.TrimSpace(src.FlagAPIKey), "flag"
	if cfg.APIKey == "" {
		cfg.APIKey, cfg.KeySource = env(EnvAPIKey), "env "+EnvAPIKey
	}
	base, baseSource := strings.TrimSpace(src.FlagBaseURL), "flag"
	if base == "" {
		base, baseSource = env(EnvBaseURL), EnvBaseURL
	}

	path := ""
	if home := src.HomeDir; home != "" {
		path = ConfigPath(home)
	} else if home, err := os.UserHomeDir(); err == nil {
		path = ConfigPath(home)
	}
	if (cfg.APIKey == "" || base == "") && path != "" {
		fc, err := readConfigFile(path)
		if err != nil {
			return Config{}, err
		}
		if cfg.APIKey == "" {
			cfg.APIKey, cfg.KeySource = strings.TrimSpace(fc.Default.APIKey), path
		}
		if base == "" {
			base, baseSource = strings.TrimSpace(fc.Default.BaseURL), path
		}
	}
	if cfg.APIKey == "" {
		if path == "" {
			path = "~/.pictograph/config.toml"
		}
		return Config{}, fmt.Errorf("pictograph: no API key: pass --api-key, set %s, or run `pictograph login` to write %s", EnvAPIKey, path)
	}
	if base == "" {
		base, baseSource = DefaultBaseURL, "default"
	}
	u, err := ParseBaseURL(base)
	if err != nil {
		return Config{}, fmt.Errorf("pictograph: base URL from %s: %w", baseSource, err)
	}
	cfg.BaseURL = u.String()

	if v := env(EnvTimeout); v != "" {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || secs <= 0 || secs > 1e6 {
			return Config{}, fmt.Errorf("pictograph: %s=%q: want a positive number of seconds", EnvTimeout, v)
		}
		cfg.Timeout = time.Duration(secs * float64(time.Second))
	}
	if v := env(EnvMaxRetries); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 100 {
			return Config{}, fmt.Errorf("pictograph: %s=%q: want an integer from 0 to 100", EnvMaxRetries, v)
		}
		cfg.MaxRetries = n
	}
	return cfg, nil
}

// readConfigFile decodes the config file; a missing file is an empty config.
func readConfigFile(path string) (fileConfig, error) {
	var fc fileConfig
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fc, nil
	}
	if err != nil {
		return fc, fmt.Errorf("pictograph: config file: %w", err)
	}
	if _, err := toml.Decode(string(data), &fc); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return fc, fmt.Errorf("pictograph: malformed config file %s, line %d: %s: %w", path, pe.Position.Line, pe.Message, err)
		}
		return fc, fmt.Errorf("pictograph: malformed config file %s: %w", path, err)
	}
	return fc, nil
}

// ParseBaseURL validates a base URL: scheme http or https, a host, no query
// or fragment. A trailing "/" and a trailing APIPrefix are removed, so that
// "https://api.pictograph.io/api/v1/developer/" is accepted too.
func ParseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("invalid base URL %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("invalid base URL %q: want an http:// or https:// URL", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("invalid base URL %q: no host", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("invalid base URL %q: no query, fragment or user info allowed", SanitizeURL(s))
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.Path = strings.TrimSuffix(u.Path, APIPrefix)
	u.RawPath = ""
	return u, nil
}
