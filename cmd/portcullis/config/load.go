package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
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
	if filename == "" {
		filename = "config"
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: resolve directory of relative paths: %w", filename, err)
	}
	r := newReport(filename)
	root := topLevel(data, r)
	if root == nil {
		return nil, r.err()
	}
	d := &decoder{report: r}
	c := defaults()
	d.mapping("", root, configFields(c))
	validate(c, dir, r)
	if err := r.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// configFields is the schema of the config file: for each YAML name, how
// its value is decoded into c. Settings the file leaves out keep the value
// c already has, which is their default.
func configFields(c *Config) []field {
	return []field{
		{key: "listen", decode: address(&c.Listen)},
		{key: "adminListen", decode: address(&c.AdminListen)},
		{key: "tls", decode: section(func(d *decoder, path string, n *yaml.Node) {
			c.TLS = &TLS{}
			d.mapping(path, n, tlsFields(c.TLS))
		})},
		{key: "allowAnonymousClients", decode: flag(&c.AllowAnonymousClients)},
		{key: "upstreams", required: true, decode: upstreams(&c.Upstreams)},
		{key: "defaultRegistry", decode: text(&c.DefaultRegistry)},
		{key: "tagTTL", decode: duration(&c.TagTTL)},
		{key: "manifestCacheBytes", decode: atLeast(&c.ManifestCacheBytes, 1)},
		{key: "upstreamTimeout", decode: positiveDuration(&c.UpstreamTimeout)},
		{key: "shutdownTimeout", decode: positiveDuration(&c.ShutdownTimeout)},
		{key: "policyFile", decode: nonEmpty(&c.PolicyFile)},
		{key: "verdictTTL", decode: duration(&c.VerdictTTL)},
		{key: "denyTTL", decode: duration(&c.DenyTTL)},
		{key: "staleIfError", decode: duration(&c.StaleIfError)},
		{key: "maxSignatures", decode: atLeast(&c.MaxSignatures, 1)},
		{key: "decisionTimeout", decode: positiveDuration(&c.DecisionTimeout)},
	}
}

// tlsFields is the schema of "tls".
func tlsFields(t *TLS) []field {
	return []field{
		{key: "certFile", required: true, decode: nonEmpty(&t.CertFile)},
		{key: "keyFile", required: true, decode: nonEmpty(&t.KeyFile)},
		{key: "clientCAFile", decode: nonEmpty(&t.ClientCAFile)},
	}
}

// upstreams decodes the list "upstreams", which must not be empty.
func upstreams(list *[]Upstream) decodeFunc {
	return func(d *decoder, path string, n *yaml.Node) {
		if isNull(n) || (n.Kind == yaml.SequenceNode && len(n.Content) == 0) {
			d.addAt(n.Line, path, "must list at least one upstream registry")
			return
		}
		d.list(path, n, func(path string, n *yaml.Node) {
			var u Upstream
			d.mapping(path, n, upstreamFields(&u))
			*list = append(*list, u)
		})
	}
}

// upstreamFields is the schema of each item of "upstreams".
func upstreamFields(u *Upstream) []field {
	return []field{
		{key: "registry", required: true, decode: nonEmpty(&u.Registry)},
		{key: "endpoint", decode: endpoint(&u.Endpoint)},
		{key: "insecure", decode: flag(&u.Insecure)},
		{key: "caFile", decode: nonEmpty(&u.CAFile)},
		{key: "auth", decode: section(func(d *decoder, path string, n *yaml.Node) {
			u.Auth = &Auth{}
			d.mapping(path, n, authFields(u.Auth))
		})},
	}
}

// authFields is the schema of "upstreams[i].auth".
func authFields(a *Auth) []field {
	return []field{
		{key: "username", required: true, decode: nonEmpty(&a.Username)},
		{key: "passwordFile", required: true, decode: nonEmpty(&a.PasswordFile)},
	}
}

// topLevel parses data as a single YAML document and returns its top-level
// mapping; nil, with the problem in r, when there is none.
func topLevel(data []byte, r *report) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			r.addAt(0, "", "file is empty; it needs at least an \"upstreams\" list")
		} else {
			r.addYAML(err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		r.addYAML(err)
		return nil
	default:
		r.addAt(firstLine(&next), "", "found a second YAML document; a config file holds one")
		return nil
	}
	root := &doc
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		root = resolve(doc.Content[0])
	}
	switch {
	case root.Kind == yaml.DocumentNode || isNull(root):
		r.addAt(0, "", "file is empty; it needs at least an \"upstreams\" list")
		return nil
	case root.Kind != yaml.MappingNode:
		r.addAt(root.Line, "", "want a mapping of settings such as \"listen:\" and \"upstreams:\" at the top level, got %s", describe(root))
		return nil
	}
	return root
}

// firstLine returns the line a document's content starts on.
func firstLine(doc *yaml.Node) int {
	if len(doc.Content) > 0 {
		return doc.Content[0].Line
	}
	return doc.Line
}
