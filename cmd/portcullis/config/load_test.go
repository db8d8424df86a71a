package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseDefaults(t *testing.T) {
	c, _, err := parseFixture(t, y("upstreams: [{registry: registry.example}]", "unverified: true"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Unverified:          true,
		Listen:              "127.0.0.1:5050",
		AdminListen:         "127.0.0.1:9090",
		Upstreams:           []Upstream{{Registry: "registry.example", Endpoint: &url.URL{Scheme: "https", Host: "registry.example"}}},
		TagTTL:              30 * time.Second,
		ManifestCacheBytes:  64 << 20,
		UpstreamTimeout:     30 * time.Second,
		ClientIdleTimeout:   30 * time.Second,
		ShutdownTimeout:     30 * time.Second,
		ShutdownDelay:       5 * time.Second,
		LogLevel:            "info",
		VerdictTTL:          10 * time.Minute,
		DenyTTL:             30 * time.Second,
		TagStaleIfError:     time.Hour,
		VerdictStaleIfError: time.Hour,
		staleIfError:        unsetDuration,
		VerdictCacheEntries: 1_000_000,
		MaxSignatures:       32,
		DecisionTimeout:     10 * time.Second,
		DecisionLog:         DecisionLog{Entries: 10_000},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

func TestParseEverySetting(t *testing.T) {
	src := y(
		"listen: 0.0.0.0:5443",
		"adminListen: :9191",
		"tls: {certFile: tls.crt, keyFile: tls.key, clientCAFile: clients.pem}",
		"allowAnonymousClients: false",
		"upstreams:",
		"  - registry: registry.example",
		"    endpoint: https://mirror.internal:5000",
		"    insecure: false",
		"    caFile: ca.pem",
		"    auth: {username: bot, passwordFile: pw}",
		"    followHosts: [Storage.Example, \"*.blob.core.windows.net\", \"10.0.0.9:9000\"]",
		"  - registry: plain.example:8080",
		"    endpoint: http://10.0.0.7:8080",
		"    insecure: true",
		"defaultRegistry: registry.example",
		"tagTTL: 1m",
		"manifestCacheBytes: 1_048_576",
		"upstreamTimeout: 5s",
		"clientIdleTimeout: 2m",
		"shutdownTimeout: 1m30s",
		"shutdownDelay: 0s",
		"logLevel: debug",
		"policyFile: policy.yaml",
		"verdictTTL: 20m",
		"denyTTL: 1m",
		"staleIfError: 2h",
		"verdictCacheEntries: 5000",
		"maxSignatures: 8",
		"decisionTimeout: 15s",
		"decisionLog: {entries: 500}",
	)
	c, dir, err := parseFixture(t, src)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Listen:      "0.0.0.0:5443",
		AdminListen: ":9191",
		TLS: &TLS{
			CertFile:     filepath.Join(dir, "tls.crt"),
			KeyFile:      filepath.Join(dir, "tls.key"),
			ClientCAFile: filepath.Join(dir, "clients.pem"),
		},
		Upstreams: []Upstream{
			{
				Registry:    "registry.example",
				Endpoint:    &url.URL{Scheme: "https", Host: "mirror.internal:5000"},
				CAFile:      filepath.Join(dir, "ca.pem"),
				Auth:        &Auth{Username: "bot", PasswordFile: filepath.Join(dir, "pw"), password: "s3cret"},
				FollowHosts: []string{"storage.example", "*.blob.core.windows.net", "10.0.0.9:9000"},
			},
			{
				Registry: "plain.example:8080",
				Endpoint: &url.URL{Scheme: "http", Host: "10.0.0.7:8080"},
				Insecure: true,
			},
		},
		DefaultRegistry:     "registry.example",
		TagTTL:              time.Minute,
		ManifestCacheBytes:  1 << 20,
		UpstreamTimeout:     5 * time.Second,
		ClientIdleTimeout:   2 * time.Minute,
		ShutdownTimeout:     90 * time.Second,
		LogLevel:            "debug",
		PolicyFile:          filepath.Join(dir, "policy.yaml"),
		VerdictTTL:          20 * time.Minute,
		DenyTTL:             time.Minute,
		TagStaleIfError:     2 * time.Hour,
		VerdictStaleIfError: 2 * time.Hour,
		staleIfError:        2 * time.Hour,
		VerdictCacheEntries: 5000,
		MaxSignatures:       8,
		DecisionTimeout:     15 * time.Second,
		DecisionLog:         DecisionLog{Entries: 500},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if got := c.Upstreams[0].Password(); got != "s3cret" {
		t.Errorf("Password() = %q, want %q", got, "s3cret")
	}
}

// TestClientIdleTimeoutDefault: without clientIdleTimeout, the client idle
// bound is upstreamTimeout, whatever that is set to.
func TestClientIdleTimeoutDefault(t *testing.T) {
	c, _, err := parseFixture(t, y("upstreams: [{registry: r.example}]", "upstreamTimeout: 7s"))
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientIdleTimeout != 7*time.Second {
		t.Errorf("ClientIdleTimeout = %v, want upstreamTimeout's 7s", c.ClientIdleTimeout)
	}
}

// TestParseZeroIsNotDefault checks that a setting given as 0 stays 0
// rather than taking its default.
func TestParseZeroIsNotDefault(t *testing.T) {
	tests := []struct {
		name string
		line string
		get  func(*Config) time.Duration
	}{
		{"tagTTL", "tagTTL: 0", func(c *Config) time.Duration { return c.TagTTL }},
		{"tagTTL 0s", "tagTTL: 0s", func(c *Config) time.Duration { return c.TagTTL }},
		{"verdictTTL", "verdictTTL: 0", func(c *Config) time.Duration { return c.VerdictTTL }},
		{"denyTTL", "denyTTL: 0", func(c *Config) time.Duration { return c.DenyTTL }},
		{"staleIfError sets the tag window", "staleIfError: 0", func(c *Config) time.Duration { return c.TagStaleIfError }},
		{"staleIfError sets the verdict window", "staleIfError: 0", func(c *Config) time.Duration { return c.VerdictStaleIfError }},
		{"tagStaleIfError", "tagStaleIfError: 0", func(c *Config) time.Duration { return c.TagStaleIfError }},
		{"verdictStaleIfError", "verdictStaleIfError: 0", func(c *Config) time.Duration { return c.VerdictStaleIfError }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := parseFixture(t, y("upstreams: [{registry: r.example}]", tc.line))
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.get(c); got != 0 {
				t.Errorf("got %v, want 0", got)
			}
		})
	}
}

func TestParseAliases(t *testing.T) {
	c, _, err := parseFixture(t, y(
		"upstreams:",
		"  - registry: &main registry.example",
		"defaultRegistry: *main",
	))
	if err != nil {
		t.Fatal(err)
	}
	if c.DefaultRegistry != "registry.example" {
		t.Errorf("DefaultRegistry = %q, want %q", c.DefaultRegistry, "registry.example")
	}
}

// TestParseErrors covers problems found while decoding: the YAML itself,
// unknown, missing, repeated and ill-typed settings, and values out of
// range. Each want entry is one line of the error, in order.
func TestParseErrors(t *testing.T) {
	const up = "upstreams: [{registry: r.example}]"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "bad followHosts entries",
			yaml: y(
				"upstreams:",
				"  - registry: r.example",
				"    followHosts:",
				"      - auth.docker.io",
				"      - https://storage.example",
				"      - storage.example:0",
				"      - [a, b]",
				"  - registry: q.example",
				"    followHosts: storage.example",
			),
			want: []string{
				`config.yaml:5: upstreams[0].followHosts[1]: "https://storage.example" is not a host (want "host", "host:port" or "*.suffix"`,
				`config.yaml:6: upstreams[0].followHosts[2]: "storage.example:0": port "0" is not a number from 1 to 65535`,
				`config.yaml:7: upstreams[0].followHosts[3]: want a host such as "auth.docker.io", got a list`,
				`config.yaml:9: upstreams[1].followHosts: want a list, got "storage.example"`,
			},
		},
		{
			name: "empty file",
			yaml: "",
			want: []string{`config.yaml: file is empty; it needs at least an "upstreams" list`},
		},
		{
			name: "only comments",
			yaml: y("# listen: :5050", "   "),
			want: []string{`config.yaml: file is empty`},
		},
		{
			name: "null document",
			yaml: y("~"),
			want: []string{`config.yaml: file is empty`},
		},
		{
			name: "top level is a list",
			yaml: y("- registry: r.example"),
			want: []string{`config.yaml:1: want a mapping of settings such as "listen:" and "upstreams:" at the top level, got a list`},
		},
		{
			name: "top level is a string",
			yaml: y("# a comment", "hello"),
			want: []string{`config.yaml:2: want a mapping of settings such as "listen:" and "upstreams:" at the top level, got "hello"`},
		},
		{
			name: "syntax error",
			yaml: y(up, "listen: [", ""),
			want: []string{`config.yaml:3: invalid YAML: `},
		},
		{
			name: "tab indentation",
			yaml: y("upstreams:", "\t- registry: r.example"),
			want: []string{`config.yaml:2: invalid YAML: found character that cannot start any token`},
		},
		{
			name: "two documents",
			yaml: y(up, "---", "listen: :5050"),
			want: []string{`config.yaml:3: found a second YAML document; a config file holds one`},
		},
		{
			name: "unknown top-level field",
			yaml: y(up, "", "listne: 127.0.0.1:5050"),
			want: []string{`config.yaml:3: unknown field "listne" (did you mean "listen"?)`},
		},
		{
			name: "unknown field in wrong case",
			yaml: y(up, "tagttl: 1s"),
			want: []string{`config.yaml:2: unknown field "tagttl" (did you mean "tagTTL"?)`},
		},
		{
			name: "unknown field without suggestion",
			yaml: y(up, "colour: blue"),
			want: []string{`config.yaml:2: unknown field "colour"`},
		},
		{
			name: "unknown nested fields",
			yaml: y(
				"allowAnonymousClients: true",
				"upstreams:",
				"  - registry: r.example",
				"    auth:",
				"      username: bot",
				"      passwordFile: pw",
				"      usename: bot",
				"    mirror: x",
				"tls: {certFile: tls.crt, keyFile: tls.key, clientCa: clients.pem}",
			),
			want: []string{
				`config.yaml:7: upstreams[0].auth: unknown field "usename" (did you mean "username"?)`,
				`config.yaml:8: upstreams[0]: unknown field "mirror"`,
				`config.yaml:9: tls: unknown field "clientCa"`,
			},
		},
		{
			name: "setting name is not a string",
			yaml: y(up, "? [a, b]", ": c", "unverified: true"),
			want: []string{`config.yaml:2: want a setting name, got a list`},
		},
		{
			name: "repeated field",
			yaml: y("tagTTL: 1s", up, "tagTTL: 2s", "unverified: true"),
			want: []string{`config.yaml:3: field "tagTTL" is already set at line 1`},
		},
		{
			name: "missing upstreams",
			yaml: y("listen: :5050"),
			want: []string{`config.yaml:1: missing required field "upstreams"`},
		},
		{
			name: "empty upstreams",
			yaml: y("listen: :5050", "upstreams: []"),
			want: []string{`config.yaml:2: upstreams: must list at least one upstream registry`},
		},
		{
			name: "null upstreams",
			yaml: y("upstreams:", "listen: :5050"),
			want: []string{`config.yaml:1: upstreams: must list at least one upstream registry`},
		},
		{
			name: "upstreams is a mapping",
			yaml: y("upstreams:", "  registry: r.example"),
			want: []string{`config.yaml:2: upstreams: want a list, got a mapping`},
		},
		{
			name: "upstream is a string",
			yaml: y("upstreams:", "  - r.example"),
			want: []string{`config.yaml:2: upstreams[0]: want a mapping of settings, got "r.example"`},
		},
		{
			name: "missing registry names the line of its upstream",
			yaml: y(
				"upstreams:",
				"  - registry: r.example",
				"  - endpoint: https://mirror.internal",
				"    insecure: true",
			),
			want: []string{`config.yaml:3: upstreams[1]: missing required field "registry"`},
		},
		{
			name: "empty registry",
			yaml: y("upstreams:", `  - registry: ""`),
			want: []string{`config.yaml:2: upstreams[0].registry: must not be empty`},
		},
		{
			name: "registry is a list",
			yaml: y("upstreams:", "  - registry: [a, b]"),
			want: []string{`config.yaml:2: upstreams[0].registry: want a string, got a list`},
		},
		{
			name: "tls without keyFile",
			yaml: y(up, "tls:", "  certFile: tls.crt"),
			want: []string{`config.yaml:3: tls: missing required field "keyFile"`},
		},
		{
			name: "tls with only clientCAFile",
			yaml: y(up, "tls: {clientCAFile: clients.pem}"),
			want: []string{
				`config.yaml:2: tls: missing required field "certFile"`,
				`config.yaml:2: tls: missing required field "keyFile"`,
			},
		},
		{
			name: "tls is a string",
			yaml: y(up, "tls: on"),
			want: []string{`config.yaml:2: tls: want a mapping of settings, got "on"`},
		},
		{
			name: "empty file name",
			yaml: y(up, "tls: {certFile: tls.crt, keyFile: ''}"),
			want: []string{`config.yaml:2: tls.keyFile: must not be empty`},
		},
		{
			name: "auth without passwordFile",
			yaml: y(
				"allowAnonymousClients: true",
				"upstreams:",
				"  - registry: r.example",
				"    auth:",
				"      username: bot",
			),
			want: []string{`config.yaml:5: upstreams[0].auth: missing required field "passwordFile"`},
		},
		{
			name: "empty auth",
			yaml: y("allowAnonymousClients: true", "upstreams:", "  - registry: r.example", "    auth: {}"),
			want: []string{
				`config.yaml:4: upstreams[0].auth: missing required field "username"`,
				`config.yaml:4: upstreams[0].auth: missing required field "passwordFile"`,
			},
		},
		{
			name: "bool is not true or false",
			yaml: y("upstreams:", "  - registry: r.example", "    insecure: yes"),
			want: []string{`config.yaml:3: upstreams[0].insecure: want true or false, got "yes"`},
		},
		{
			name: "bool is quoted",
			yaml: y(up, `allowAnonymousClients: "true"`),
			want: []string{`config.yaml:2: allowAnonymousClients: want true or false, got the quoted string "true"`},
		},
		{
			name: "duration without unit",
			yaml: y(up, "tagTTL: 30"),
			want: []string{`config.yaml:2: tagTTL: invalid duration "30": a number needs a unit (want a duration such as "30s", "10m" or "1h30m")`},
		},
		{
			name: "duration not a duration",
			yaml: y(up, "verdictTTL: ten minutes"),
			want: []string{`config.yaml:2: verdictTTL: invalid duration "ten minutes" (want a duration such as "30s", "10m" or "1h30m")`},
		},
		{
			name: "duration negative",
			yaml: y(up, "staleIfError: -1h"),
			want: []string{`config.yaml:2: staleIfError: must not be negative, got "-1h"`},
		},
		{
			name: "duration null",
			yaml: y(up, "denyTTL:"),
			want: []string{`config.yaml:2: denyTTL: want a duration such as "30s", got nothing`},
		},
		{
			name: "duration is a list",
			yaml: y(up, "tagTTL: [1s]"),
			want: []string{`config.yaml:2: tagTTL: want a duration such as "30s", got a list`},
		},
		{
			name: "zero timeouts",
			yaml: y(up, "upstreamTimeout: 0", "shutdownTimeout: 0s", "decisionTimeout: 0", "clientIdleTimeout: 0s"),
			want: []string{
				`config.yaml:2: upstreamTimeout: must be greater than 0, got "0"`,
				`config.yaml:3: shutdownTimeout: must be greater than 0, got "0s"`,
				`config.yaml:4: decisionTimeout: must be greater than 0, got "0"`,
				`config.yaml:5: clientIdleTimeout: must be greater than 0, got "0s"`,
			},
		},
		{
			name: "clientIdleTimeout negative",
			yaml: y(up, "clientIdleTimeout: -1s"),
			want: []string{`config.yaml:2: clientIdleTimeout: must be greater than 0, got "-1s"`},
		},
		{
			name: "numbers out of range",
			yaml: y(up, "manifestCacheBytes: 0", "maxSignatures: 0", "verdictCacheEntries: 0"),
			want: []string{
				`config.yaml:2: manifestCacheBytes: must be at least 1, got "0"`,
				`config.yaml:3: maxSignatures: must be at least 1, got "0"`,
				`config.yaml:4: verdictCacheEntries: must be at least 1, got "0"`,
			},
		},
		{
			name: "numbers not whole",
			yaml: y(up, "manifestCacheBytes: 64MiB", "maxSignatures: 1.5", `maxSignatures: "3"`, "unverified: true"),
			want: []string{
				`config.yaml:2: manifestCacheBytes: want a whole number, got "64MiB"`,
				`config.yaml:3: maxSignatures: want a whole number, got "1.5"`,
				`config.yaml:4: field "maxSignatures" is already set at line 3`,
			},
		},
		{
			name: "number too big",
			yaml: y(up, "maxSignatures: 99999999999999999999"),
			want: []string{`config.yaml:2: maxSignatures: want a whole number, got "99999999999999999999"`},
		},
		{
			name: "bad listen addresses",
			yaml: y(up, "listen: 5050", `adminListen: ""`),
			want: []string{
				`config.yaml:2: listen: "5050" is not a host:port (want host:port such as "127.0.0.1:5050" or ":5050")`,
				`config.yaml:3: adminListen: must not be empty (want host:port such as "127.0.0.1:5050" or ":5050")`,
			},
		},
		{
			name: "listen port not a number",
			yaml: y(up, "listen: localhost:http", "adminListen: :70000"),
			want: []string{
				`config.yaml:2: listen: port "http" is not a number from 0 to 65535`,
				`config.yaml:3: adminListen: port "70000" is not a number from 0 to 65535`,
			},
		},
		{
			name: "long values are shortened",
			yaml: y(up, "tagTTL: "+strings.Repeat("x", 100)),
			want: []string{`config.yaml:2: tagTTL: invalid duration "` + strings.Repeat("x", 64) + `..." (`},
		},
		{
			name: "every problem reported, by line",
			yaml: y(
				"listne: :5050",
				"upstreams:",
				"  - registry: r.example",
				"    insecure: 1",
				"tagTTL: 1x",
				"maxSignatures: -2",
			),
			want: []string{
				`config.yaml:1: unknown field "listne"`,
				`config.yaml:4: upstreams[0].insecure: want true or false, got "1"`,
				`config.yaml:5: tagTTL: invalid duration "1x"`,
				`config.yaml:6: maxSignatures: must be at least 1, got "-2"`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, dir, err := parseFixture(t, tc.yaml)
			if c != nil {
				t.Errorf("got a Config with the error: %+v", c)
			}
			wantErrors(t, err, dir, tc.want)
		})
	}
}

func TestParseFilenameDefault(t *testing.T) {
	_, err := Parse([]byte("listne: x\n"), "", t.TempDir())
	if err == nil || !strings.HasPrefix(err.Error(), "config:1: ") {
		t.Errorf("got %v, want an error starting with %q", err, "config:1: ")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "etc", "certs", "tls.crt"), "cert")
	writeFile(t, filepath.Join(dir, "etc", "certs", "tls.key"), "key")
	writeFile(t, filepath.Join(dir, "etc", "clients.pem"), "client CAs")
	writeFile(t, filepath.Join(dir, "secrets", "pw"), "hunter2\r\n")
	writeFile(t, filepath.Join(dir, "etc", "portcullis.yaml"), y(
		"tls:",
		"  certFile: certs/tls.crt",
		"  keyFile: ./certs/../certs/tls.key",
		"  clientCAFile: "+filepath.Join(dir, "etc", "clients.pem"),
		"upstreams:",
		"  - registry: r.example",
		"    auth: {username: bot, passwordFile: ../secrets/pw}",
		"unverified: true",
	))

	// Load a relative path, from another directory, so that paths in the
	// file must be resolved against the file's directory, not the working
	// directory.
	t.Chdir(dir)
	c, err := Load(filepath.Join("etc", "portcullis.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, got, want string }{
		{"Path", c.Path, filepath.Join(dir, "etc", "portcullis.yaml")},
		{"TLS.CertFile", c.TLS.CertFile, filepath.Join(dir, "etc", "certs", "tls.crt")},
		{"TLS.KeyFile", c.TLS.KeyFile, filepath.Join(dir, "etc", "certs", "tls.key")},
		{"TLS.ClientCAFile", c.TLS.ClientCAFile, filepath.Join(dir, "etc", "clients.pem")},
		{"PasswordFile", c.Upstreams[0].Auth.PasswordFile, filepath.Join(dir, "secrets", "pw")},
		{"Password", c.Upstreams[0].Password(), "hunter2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	t.Run("missing file", func(t *testing.T) {
		_, err := Load(filepath.Join(dir, "nope.yaml"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("got %v, want an error wrapping fs.ErrNotExist", err)
		}
	})
	t.Run("problems name the path as given", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "bad.yaml"), y("upstreams: [{registry: r.example}]", "tagTTL: soon", "unverified: true"))
		t.Chdir(dir)
		_, err := Load("bad.yaml")
		if err == nil || !strings.HasPrefix(err.Error(), "bad.yaml:2: tagTTL: ") {
			t.Errorf("got %v, want an error starting with %q", err, "bad.yaml:2: tagTTL: ")
		}
	})
}

func TestParseRelativeDir(t *testing.T) {
	dir := fixture(t)
	t.Chdir(filepath.Dir(dir))
	c, err := Parse([]byte(y("upstreams: [{registry: r.example}]", "policyFile: policy.yaml")), "config.yaml", filepath.Base(dir))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "policy.yaml"); c.PolicyFile != want {
		t.Errorf("PolicyFile = %q, want %q", c.PolicyFile, want)
	}
}

// TestStaleIfErrorSplit: the two windows are set on their own; the
// deprecated staleIfError fills whichever is not given.
func TestStaleIfErrorSplit(t *testing.T) {
	for _, tc := range []struct {
		yaml         string
		tag, verdict time.Duration
	}{
		{"", time.Hour, time.Hour},
		{"staleIfError: 5m\n", 5 * time.Minute, 5 * time.Minute},
		{"tagStaleIfError: 1m\n", time.Minute, time.Hour},
		{"verdictStaleIfError: 2m\nstaleIfError: 5m\n", 5 * time.Minute, 2 * time.Minute},
		{"tagStaleIfError: 0s\nverdictStaleIfError: 3h\n", 0, 3 * time.Hour},
	} {
		c, err := Parse([]byte("unverified: true\nupstreams:\n  - registry: r.example\n"+tc.yaml), "config.yaml", t.TempDir())
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if c.TagStaleIfError != tc.tag || c.VerdictStaleIfError != tc.verdict {
			t.Errorf("%q: tag %v verdict %v, want %v %v", tc.yaml, c.TagStaleIfError, c.VerdictStaleIfError, tc.tag, tc.verdict)
		}
	}
}

// TestCache: the content store's settings, their defaults, sizes with
// units, and maxStale overriding both stale-if-error windows.
func TestCache(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		yaml         string
		want         *Cache
		tag, verdict time.Duration
	}{
		{"", nil, time.Hour, time.Hour},
		{"cache:\n", nil, time.Hour, time.Hour},
		{"cache: {dir: store}\n", &Cache{Dir: filepath.Join(dir, "store"), MaxSize: 50 << 30, MaxStale: 24 * time.Hour}, 24 * time.Hour, 24 * time.Hour},
		{"staleIfError: 5m\ncache: {dir: /var/lib/p, maxSize: 512MiB, maxStale: 2h}\n", &Cache{Dir: "/var/lib/p", MaxSize: 512 << 20, MaxStale: 2 * time.Hour}, 2 * time.Hour, 2 * time.Hour},
		{"cache: {dir: /s, maxSize: 100 B, maxStale: 0s}\n", &Cache{Dir: "/s", MaxSize: 100}, NoStaleLimit, NoStaleLimit},
		{"cache: {dir: /s, maxSize: 2TiB}\n", &Cache{Dir: "/s", MaxSize: 2 << 40, MaxStale: 24 * time.Hour}, 24 * time.Hour, 24 * time.Hour},
		{"cache: {dir: /s, maxSize: 4096}\n", &Cache{Dir: "/s", MaxSize: 4096, MaxStale: 24 * time.Hour}, 24 * time.Hour, 24 * time.Hour},
	} {
		c, err := Parse([]byte("unverified: true\nupstreams:\n  - registry: r.example\n"+tc.yaml), "config.yaml", dir)
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if !reflect.DeepEqual(c.Cache, tc.want) || c.TagStaleIfError != tc.tag || c.VerdictStaleIfError != tc.verdict {
			t.Errorf("%q: cache %+v tag %v verdict %v, want %+v %v %v", tc.yaml, c.Cache, c.TagStaleIfError, c.VerdictStaleIfError, tc.want, tc.tag, tc.verdict)
		}
	}
}

// TestCacheErrors: a bad cache setting names the field and its line.
func TestCacheErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"cache:\n  maxSize: 1GiB\n", `config.yaml:5: cache: missing required field "dir"`},
		{"cache:\n  dir: /s\n  maxSize: 50GB\n", `config.yaml:6: cache.maxSize: want a size such as "50GiB" (B, KiB, MiB, GiB or TiB): "50GB" is not a whole number with a unit`},
		{"cache:\n  dir: /s\n  maxSize: 0GiB\n", `config.yaml:6: cache.maxSize: want a size such as "50GiB" (B, KiB, MiB, GiB or TiB): must be greater than 0, got "0GiB"`},
		{"cache:\n  dir: /s\n  maxSize: 99999999999TiB\n", `config.yaml:6: cache.maxSize: want a size such as "50GiB" (B, KiB, MiB, GiB or TiB): "99999999999TiB" is too large`},
		{"cache:\n  dir: /s\n  maxStale: -1h\n", `config.yaml:6: cache.maxStale: must not be negative, got "-1h"`},
		{"cache:\n  dir: /s\n  maxsize: 1GiB\n", `config.yaml:6: cache: unknown field "maxsize" (did you mean "maxSize"?)`},
		{"cache: /var/lib/portcullis\n", `config.yaml:4: cache`},
	} {
		_, err := Parse([]byte("unverified: true\nupstreams:\n  - registry: r.example\n"+tc.yaml), "config.yaml", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// TestRedis: the redis section, its defaults, the secrets read from their
// files and kept out of any printing; a bad setting names the field and
// its line, and redis without hmacKeyFile stops start-up.
func TestRedis(t *testing.T) {
	dir := fixture(t)
	key := strings.Repeat("k", 40)
	writeFile(t, filepath.Join(dir, "hmac"), key+"\n")
	writeFile(t, filepath.Join(dir, "short"), "tooshort\n")
	base := "unverified: true\nupstreams:\n  - registry: r.example\n"
	c, err := Parse([]byte(base+"redis:\n  address: 127.0.0.1:6379\n  username: portcullis\n  passwordFile: pw\n  hmacKeyFile: hmac\n"), "config.yaml", dir)
	if err != nil {
		t.Fatal(err)
	}
	r := c.Redis
	if r == nil || r.Address != "127.0.0.1:6379" || r.KeyPrefix != "portcullis/" || r.Timeout != 50*time.Millisecond || r.Password() != "s3cret" || string(r.HMACKey()) != key ||
		r.HMACKeyFile != filepath.Join(dir, "hmac") {
		t.Fatalf("redis %+v password %q key %q", r, r.Password(), r.HMACKey())
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, r); strings.Contains(s, "s3cret") || strings.Contains(s, key) {
			t.Errorf("%s prints a secret: %s", verb, s)
		}
	}
	c, err = Parse([]byte(base+"redis:\n  address: 127.0.0.1:6379\n  timeout: 250ms\n  hmacKeyFile: hmac\n"), "config.yaml", dir)
	if err != nil || c.Redis.Timeout != 250*time.Millisecond {
		t.Errorf("redis.timeout 250ms: %v, %+v", err, c.Redis)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"redis:\n  address: 127.0.0.1:6379\n  hmacKeyFile: hmac\n  timeout: 0s\n", `config.yaml:7: redis.timeout: must be at least 1ms, got "0s"`},
		{"redis:\n  address: 127.0.0.1:6379\n  hmacKeyFile: hmac\n  timeout: 5s\n", `config.yaml:7: redis.timeout: must be at most 2s, got "5s"`},
		{"redis:\n  address: 127.0.0.1:6379\n  hmacKeyFile: hmac\n  timeout: fast\n", `config.yaml:7: redis.timeout: invalid duration "fast"`},
		{"decisionTimeout: 3s\nredis:\n  address: 127.0.0.1:6379\n  hmacKeyFile: hmac\n  timeout: 1s\n", `config.yaml:8: redis.timeout: 1s must be under a third of decisionTimeout (3s)`},
		{"redis:\n  address: 127.0.0.1:6379\n", `config.yaml:5: redis: missing required field "hmacKeyFile"`},
		{"redis:\n  hmacKeyFile: hmac\n", `config.yaml:5: redis: missing required field "address"`},
		{"redis:\n  address: localhost\n  hmacKeyFile: hmac\n", `config.yaml:5: redis.address: "localhost" is not a host:port`},
		{"redis:\n  address: 127.0.0.1:6379\n  hmacKeyFile: short\n", `redis.hmacKeyFile: ` + filepath.Join(dir, "short") + ` holds 8 bytes; an HMAC key needs at least 32`},
		{"redis:\n  address: 127.0.0.1:6379\n  hmacKeyFile: nothere\n", `redis.hmacKeyFile: `},
		{"redis:\n  address: 127.0.0.1:6379\n  hmacKeyFile: hmac\n  tls: {certFile: tls.crt}\n", `redis.tls: certFile and keyFile go together`},
		{"redis:\n  address: 127.0.0.1:6379\n  hmacKeyFile: hmac\n  keyprefix: x/\n", `config.yaml:7: redis: unknown field "keyprefix" (did you mean "keyPrefix"?)`},
	} {
		_, err := Parse([]byte(base+tc.yaml), "config.yaml", dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
