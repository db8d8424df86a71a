package policy

import (
	"bytes"
	"errors"
	"io"

	"go.yaml.in/yaml/v3"
)

// This file is the schema of the policy file: it decodes YAML into raw
// values, checking types and which fields go together. compile.go then
// checks meanings and reads the files the raw values name.

// rawFile is the policy file as written; the raw types below are its
// parts. A set field holds the keys a mapping sets, each with its line.
type rawFile struct {
	trustRoots   []*rawTrustRoot
	policies     []*rawPolicy
	allowDigests []item
	defaultValue string
}

type rawTrustRoot struct {
	path            string
	name            string
	trustedRootFile string
	tuf             *rawTUF
}

type rawTUF struct {
	url, rootFile, cacheDir string
}

type rawPolicy struct {
	path            string
	name            string
	images, exclude []item
	mode, allow     string
	threshold       int
	matchRepository bool
	authorities     []*rawAuthority
	authoritiesOK   bool // authorities is a list (or null)
	set             map[string]int
}

type rawAuthority struct {
	path        string
	name        string
	key         *rawKey
	keyless     *rawKeyless
	requireTlog bool
	trustRoot   string
	set         map[string]int
}

type rawKey struct {
	path, file, data string // path is the setting's path, file its value
}

type rawKeyless struct {
	requireSCT bool
	identities []*rawIdentity
}

type rawIdentity struct {
	path                   string
	issuer, issuerRegExp   string
	subject, subjectRegExp string
}

// parse decodes data into a rawFile; nil when data is not a YAML mapping.
func parse(data []byte, r *report) *rawFile {
	root := topLevel(data, r)
	if root == nil {
		return nil
	}
	d := &decoder{report: r, budget: maxNodes}
	f := &rawFile{defaultValue: "deny"}
	d.mapping("", root, []field{
		{key: "trustRoots", decode: func(path string, n *yaml.Node) {
			d.list(path, n, func(path string, n *yaml.Node) { f.trustRoots = append(f.trustRoots, d.trustRoot(path, n)) })
		}},
		{key: "policies", decode: func(path string, n *yaml.Node) {
			d.list(path, n, func(path string, n *yaml.Node) { f.policies = append(f.policies, d.policy(path, n)) })
		}},
		{key: "allowDigests", decode: d.stringList(&f.allowDigests)},
		{key: "default", decode: d.nonEmpty(&f.defaultValue)},
	})
	return f
}

func (d *decoder) trustRoot(path string, n *yaml.Node) *rawTrustRoot {
	t := &rawTrustRoot{path: path}
	set := d.mapping(path, n, []field{
		{key: "name", required: true, decode: d.nonEmpty(&t.name)},
		{key: "trustedRootFile", decode: d.nonEmpty(&t.trustedRootFile)},
		{key: "tuf", decode: func(path string, n *yaml.Node) {
			t.tuf = &rawTUF{}
			if !isNull(n) { // "tuf:" alone is "tuf: {}", the public-good instance
				d.mapping(path, n, []field{
					{key: "url", decode: d.text(&t.tuf.url)},
					{key: "rootFile", decode: d.nonEmpty(&t.tuf.rootFile)},
					{key: "cacheDir", decode: d.nonEmpty(&t.tuf.cacheDir)},
				})
			}
		}},
	})
	d.exactlyOne(path, n, set, "trustedRootFile", "tuf")
	return t
}

func (d *decoder) policy(path string, n *yaml.Node) *rawPolicy {
	p := &rawPolicy{path: path, threshold: 1}
	p.set = d.mapping(path, n, []field{
		{key: "name", required: true, decode: d.nonEmpty(&p.name)},
		{key: "images", required: true, decode: d.patterns(&p.images)},
		{key: "excludeImages", decode: d.stringList(&p.exclude)},
		{key: "mode", decode: d.nonEmpty(&p.mode)},
		{key: "threshold", decode: d.number(&p.threshold)},
		{key: "matchRepository", decode: d.flag(&p.matchRepository)},
		{key: "allow", decode: d.nonEmpty(&p.allow)},
		{key: "authorities", decode: func(path string, n *yaml.Node) {
			p.authoritiesOK = isNull(n) || n.Kind == yaml.SequenceNode
			d.list(path, n, func(path string, n *yaml.Node) { p.authorities = append(p.authorities, d.authority(path, n)) })
		}},
	})
	return p
}

// patterns decodes a list of image patterns that must not be empty.
func (d *decoder) patterns(p *[]item) decodeFunc {
	return func(path string, n *yaml.Node) {
		if isNull(n) || (n.Kind == yaml.SequenceNode && len(n.Content) == 0) {
			d.errorAt(n.Line, path, "must list at least one image pattern, such as \"registry.example/acme/**\"")
			return
		}
		d.stringList(p)(path, n)
	}
}

func (d *decoder) authority(path string, n *yaml.Node) *rawAuthority {
	a := &rawAuthority{path: path}
	a.set = d.mapping(path, n, []field{
		{key: "name", required: true, decode: d.nonEmpty(&a.name)},
		{key: "key", decode: func(path string, n *yaml.Node) { a.key = d.key(path, n) }},
		{key: "keyless", decode: func(path string, n *yaml.Node) { a.keyless = d.keyless(path, n) }},
		{key: "requireTlog", decode: d.flag(&a.requireTlog)},
		{key: "trustRoot", decode: d.nonEmpty(&a.trustRoot)},
	})
	d.exactlyOne(path, n, a.set, "key", "keyless")
	return a
}

func (d *decoder) key(path string, n *yaml.Node) *rawKey {
	k := &rawKey{}
	set := d.mapping(path, n, []field{
		{key: "path", decode: d.nonEmpty(&k.file)},
		{key: "data", decode: d.nonEmpty(&k.data)},
	})
	k.path = join(path, "data")
	if _, ok := set["path"]; ok {
		k.path = join(path, "path")
	}
	d.exactlyOne(path, n, set, "path", "data")
	return k
}

func (d *decoder) keyless(path string, n *yaml.Node) *rawKeyless {
	k := &rawKeyless{requireSCT: true}
	d.mapping(path, n, []field{
		{key: "requireSCT", decode: d.flag(&k.requireSCT)},
		{key: "identities", required: true, decode: func(path string, n *yaml.Node) {
			if isNull(n) || (n.Kind == yaml.SequenceNode && len(n.Content) == 0) {
				d.errorAt(n.Line, path, "must list at least one identity (issuer and subject)")
				return
			}
			d.list(path, n, func(path string, n *yaml.Node) { k.identities = append(k.identities, d.identity(path, n)) })
		}},
	})
	return k
}

func (d *decoder) identity(path string, n *yaml.Node) *rawIdentity {
	id := &rawIdentity{path: path}
	set := d.mapping(path, n, []field{
		{key: "issuer", decode: d.nonEmpty(&id.issuer)},
		{key: "issuerRegExp", decode: d.nonEmpty(&id.issuerRegExp)},
		{key: "subject", decode: d.nonEmpty(&id.subject)},
		{key: "subjectRegExp", decode: d.nonEmpty(&id.subjectRegExp)},
	})
	d.exactlyOne(path, n, set, "issuer", "issuerRegExp")
	d.exactlyOne(path, n, set, "subject", "subjectRegExp")
	return id
}

// exactlyOne reports a mapping n (whose keys are set) that has both or
// neither of the fields a and b.
func (d *decoder) exactlyOne(path string, n *yaml.Node, set map[string]int, a, b string) {
	if n.Kind != yaml.MappingNode {
		return // reported already
	}
	lineA, okA := set[a]
	lineB, okB := set[b]
	switch {
	case okA && okB:
		d.errorAt(max(lineA, lineB), path, "set only one of %q and %q", a, b)
	case !okA && !okB:
		d.errorAt(n.Line, path, "needs one of %q or %q", a, b)
	}
}

// topLevel parses data as a single YAML document and returns its top-level
// mapping; nil, with the problem in r, when there is none.
func topLevel(data []byte, r *report) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			r.errorAt(0, "", "file is empty; it needs at least a \"policies\" list")
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
		r.errorAt(next.Line, "", "found a second YAML document; a policy file holds one")
		return nil
	}
	root := &doc
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		root = resolve(doc.Content[0])
	}
	switch {
	case root.Kind == yaml.DocumentNode || isNull(root):
		r.errorAt(0, "", "file is empty; it needs at least a \"policies\" list")
		return nil
	case root.Kind != yaml.MappingNode:
		r.errorAt(root.Line, "", "want a mapping with \"policies:\" at the top level, got %s", describe(root))
		return nil
	}
	return root
}
