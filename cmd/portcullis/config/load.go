package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/internal/yamlfile"
)

// Load reads the config file at path, then parses and validates it like
// [Parse], resolving relative paths against the file's directory. The
// returned Config's Path is the file's absolute path.
//
// A file that cannot be read gives an error wrapping the os error; a file
// with problems gives one error listing them all, one per line, each as
// "PATH:LINE: FIELD: MESSAGE" (PATH as given).
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	c, err := Parse(data, path, filepath.Dir(abs))
	if err != nil {
		return nil, err
	}
	c.Path = abs
	return c, nil
}

// Parse parses and validates the contents of a config file. filename
// names the file in error messages ("config" if empty); relative paths in
// the file are resolved against dir (the working directory if empty).
//
// Parse does no I/O but on the files the config names: it checks that they
// are readable and reads the password files.
func Parse(data []byte, filename, dir string) (*Config, error) {
	c, r, err := parse(data, filename, dir, yamlfile.Error)
	if err != nil {
		return nil, err
	}
	if err := problemsError(r); err != nil {
		return nil, err
	}
	return c, nil
}

// Lint returns every problem of the config file at path, errors and
// warnings, sorted by line, with the Config as far as it was decoded (nil
// when the file cannot be read or holds no mapping). Unlike [Load], a file
// the config names that does not exist or that this user may not read is
// a Warning, unless strict: a config is often checked away from the
// machine that holds its keys and secrets. With strict, the errors are
// Load's.
func Lint(path string, strict bool) (*Config, []yamlfile.Problem) {
	fail := func(err error) (*Config, []yamlfile.Problem) {
		return nil, []yamlfile.Problem{{File: path, Message: err.Error(), Severity: yamlfile.Error}}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fail(fmt.Errorf("config file %s: %w", path, err))
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return fail(fmt.Errorf("read config file: %w", err))
	}
	absent := yamlfile.Warning
	if strict {
		absent = yamlfile.Error
	}
	c, r, err := parse(data, path, filepath.Dir(abs), absent)
	if err != nil {
		return fail(err)
	}
	if c != nil {
		c.Path = abs
	}
	return c, r.Problems()
}

// Keys returns the top-level keys of a config file, such as "listen" and
// "upstreams".
func Keys() []string {
	fields := configFields(defaults())
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.Key
	}
	return keys
}

// parse decodes and validates data into a Config and the report of its
// problems; the Config is nil when data holds no mapping. A file setting
// naming a file that is absent, or unreadable by this user, is reported
// with severity absent.
func parse(data []byte, filename, dir string, absent yamlfile.Severity) (*Config, *yamlfile.Report, error) {
	if filename == "" {
		filename = "config"
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: resolve directory of relative paths: %w", filename, err)
	}
	r := yamlfile.NewReport(filename, 0)
	root := yamlfile.TopLevel(data, r, configFormat)
	if root == nil {
		return nil, r, nil
	}
	c := defaults()
	seen := yamlfile.NewDecoder(r, 0).Mapping("", root, configFields(c))
	checkVerification(c, seen, root.Line, r)
	validate(c, dir, r, absent)
	return c, r, nil
}

// configFormat describes a config file for the problems of
// [yamlfile.TopLevel].
var configFormat = yamlfile.Format{
	Name:                    "config file",
	Needs:                   `an "upstreams" list`,
	TopLevel:                `a mapping of settings such as "listen:" and "upstreams:" at the top level`,
	SecondDocumentAtContent: true,
}

// problemsError returns the problems of r, sorted by line, joined into one
// error, one per line; nil when there are none.
func problemsError(r *yamlfile.Report) error {
	problems := r.Problems()
	if len(problems) == 0 {
		return nil
	}
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = errors.New(p.String())
	}
	return errors.Join(errs...)
}

// configFields is the schema of the config file: for each YAML name, how
// its value is decoded into c. Settings the file leaves out keep the value
// c already has, which is their default.
func configFields(c *Config) []yamlfile.Field {
	return []yamlfile.Field{
		{Key: "listen", Decode: address(&c.Listen)},
		{Key: "adminListen", Decode: address(&c.AdminListen)},
		{Key: "tls", Decode: section(func(d *yamlfile.Decoder, path string, n *yaml.Node) {
			c.TLS = &TLS{}
			d.Mapping(path, n, tlsFields(c.TLS))
		})},
		{Key: "allowAnonymousClients", Decode: yamlfile.Bool(&c.AllowAnonymousClients)},
		{Key: "upstreams", Required: true, Decode: upstreams(&c.Upstreams)},
		{Key: "defaultRegistry", Decode: yamlfile.Text(&c.DefaultRegistry)},
		{Key: "tagTTL", Decode: duration(&c.TagTTL)},
		{Key: "manifestCacheBytes", Decode: yamlfile.IntAtLeast(&c.ManifestCacheBytes, 1)},
		{Key: "upstreamTimeout", Decode: positiveDuration(&c.UpstreamTimeout)},
		{Key: "clientIdleTimeout", Decode: positiveDuration(&c.ClientIdleTimeout)},
		{Key: "shutdownTimeout", Decode: positiveDuration(&c.ShutdownTimeout)},
		{Key: "shutdownDelay", Decode: duration(&c.ShutdownDelay)},
		{Key: "logLevel", Decode: oneOf(&c.LogLevel, LogLevels)},
		{Key: "policyFile", Decode: yamlfile.NonEmpty(&c.PolicyFile)},
		{Key: "unverified", Decode: yamlfile.Bool(&c.Unverified)},
		{Key: "verdictTTL", Decode: duration(&c.VerdictTTL)},
		{Key: "denyTTL", Decode: duration(&c.DenyTTL)},
		{Key: "tagStaleIfError", Decode: duration(&c.TagStaleIfError)},
		{Key: "verdictStaleIfError", Decode: duration(&c.VerdictStaleIfError)},
		{Key: "staleIfError", Decode: duration(&c.staleIfError)}, // deprecated: sets both
		{Key: "verdictCacheEntries", Decode: yamlfile.IntAtLeast(&c.VerdictCacheEntries, 1)},
		{Key: "maxSignatures", Decode: yamlfile.IntAtLeast(&c.MaxSignatures, 1)},
		{Key: "decisionTimeout", Decode: positiveDuration(&c.DecisionTimeout)},
		{Key: "cache", Decode: section(func(d *yamlfile.Decoder, path string, n *yaml.Node) {
			c.Cache = &Cache{MaxSize: defaultCacheMaxSize, MaxStale: defaultCacheMaxStale}
			d.Mapping(path, n, cacheFields(c.Cache))
		})},
		{Key: "redis", Decode: section(func(d *yamlfile.Decoder, path string, n *yaml.Node) {
			c.Redis = &Redis{KeyPrefix: "portcullis/", Timeout: DefaultRedisTimeout}
			d.Mapping(path, n, redisFields(c.Redis))
		})},
		{Key: "decisionLog", Decode: section(func(d *yamlfile.Decoder, path string, n *yaml.Node) {
			d.Mapping(path, n, []yamlfile.Field{
				{Key: "entries", Decode: yamlfile.IntBetween(&c.DecisionLog.Entries, 1, 1_000_000)},
			})
		})},
	}
}

// cacheFields is the schema of "cache".
func cacheFields(k *Cache) []yamlfile.Field {
	return []yamlfile.Field{
		{Key: "dir", Required: true, Decode: yamlfile.NonEmpty(&k.Dir)},
		{Key: "maxSize", Decode: size(&k.MaxSize)},
		{Key: "maxStale", Decode: duration(&k.MaxStale)},
	}
}

// redisFields is the schema of "redis".
func redisFields(r *Redis) []yamlfile.Field {
	return []yamlfile.Field{
		{Key: "address", Required: true, Decode: address(&r.Address)},
		{Key: "username", Decode: yamlfile.NonEmpty(&r.Username)},
		{Key: "passwordFile", Decode: yamlfile.NonEmpty(&r.PasswordFile)},
		{Key: "tls", Decode: section(func(d *yamlfile.Decoder, path string, n *yaml.Node) {
			r.TLS = &RedisTLS{}
			d.Mapping(path, n, []yamlfile.Field{
				{Key: "caFile", Decode: yamlfile.NonEmpty(&r.TLS.CAFile)},
				{Key: "certFile", Decode: yamlfile.NonEmpty(&r.TLS.CertFile)},
				{Key: "keyFile", Decode: yamlfile.NonEmpty(&r.TLS.KeyFile)},
			})
		})},
		{Key: "keyPrefix", Decode: yamlfile.Text(&r.KeyPrefix)},
		{Key: "timeout", Decode: durationBetween(&r.Timeout, time.Millisecond, MaxRedisTimeout)},
		{Key: "hmacKeyFile", Required: true, Decode: yamlfile.NonEmpty(&r.HMACKeyFile)},
	}
}

// tlsFields is the schema of "tls".
func tlsFields(t *TLS) []yamlfile.Field {
	return []yamlfile.Field{
		{Key: "certFile", Required: true, Decode: yamlfile.NonEmpty(&t.CertFile)},
		{Key: "keyFile", Required: true, Decode: yamlfile.NonEmpty(&t.KeyFile)},
		{Key: "clientCAFile", Decode: yamlfile.NonEmpty(&t.ClientCAFile)},
	}
}

// upstreams decodes the list "upstreams", which must not be empty.
func upstreams(list *[]Upstream) yamlfile.DecodeFunc {
	return func(d *yamlfile.Decoder, path string, n *yaml.Node) {
		if yamlfile.IsNull(n) || (n.Kind == yaml.SequenceNode && len(n.Content) == 0) {
			d.ErrorAt(n.Line, path, "must list at least one upstream registry")
			return
		}
		d.List(path, n, func(path string, n *yaml.Node) {
			var u Upstream
			d.Mapping(path, n, upstreamFields(&u))
			*list = append(*list, u)
		})
	}
}

// upstreamFields is the schema of each item of "upstreams".
func upstreamFields(u *Upstream) []yamlfile.Field {
	return []yamlfile.Field{
		{Key: "registry", Required: true, Decode: yamlfile.NonEmpty(&u.Registry)},
		{Key: "endpoint", Decode: endpoint(&u.Endpoint)},
		{Key: "insecure", Decode: yamlfile.Bool(&u.Insecure)},
		{Key: "caFile", Decode: yamlfile.NonEmpty(&u.CAFile)},
		{Key: "auth", Decode: section(func(d *yamlfile.Decoder, path string, n *yaml.Node) {
			u.Auth = &Auth{}
			d.Mapping(path, n, authFields(u.Auth))
		})},
		{Key: "followHosts", Decode: followHosts(&u.FollowHosts)},
	}
}

// authFields is the schema of "upstreams[i].auth".
func authFields(a *Auth) []yamlfile.Field {
	return []yamlfile.Field{
		{Key: "username", Required: true, Decode: yamlfile.NonEmpty(&a.Username)},
		{Key: "passwordFile", Required: true, Decode: yamlfile.NonEmpty(&a.PasswordFile)},
	}
}
