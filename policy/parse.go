package policy

import (
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/internal/yamlfile"
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
	path         string
	name         string
	key          *rawKey
	keyless      *rawKeyless
	requireTlog  bool
	trustRoot    string
	sigsFrom     string
	attestations []*rawAttestation
	set          map[string]int
}

type rawAttestation struct {
	path          string
	name          string
	predicateType string
	condition     string
	maxAge        time.Duration
	set           map[string]int
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
	github                 *GitHubIdentity
	extensions             map[string]string // key as written -> value
}

// parse decodes data into a rawFile; nil when data is not a YAML mapping.
func parse(data []byte, r *yamlfile.Report) *rawFile {
	root := yamlfile.TopLevel(data, r, policyFormat)
	if root == nil {
		return nil
	}
	f := &rawFile{defaultValue: "deny"}
	yamlfile.NewDecoder(r, maxNodes).Mapping("", root, []yamlfile.Field{
		{Key: "trustRoots", Decode: listOf(&f.trustRoots, decodeTrustRoot)},
		{Key: "policies", Decode: listOf(&f.policies, decodePolicy)},
		{Key: "allowDigests", Decode: stringList(&f.allowDigests)},
		{Key: "default", Decode: yamlfile.NonEmpty(&f.defaultValue)},
	})
	return f
}

// policyFormat describes a policy file for the problems of
// [yamlfile.TopLevel].
var policyFormat = yamlfile.Format{
	Name:     "policy file",
	Needs:    `a "policies" list`,
	TopLevel: `a mapping with "policies:" at the top level`,
}

func decodeTrustRoot(d *yamlfile.Decoder, path string, n *yaml.Node) *rawTrustRoot {
	t := &rawTrustRoot{path: path}
	set := d.Mapping(path, n, []yamlfile.Field{
		{Key: "name", Required: true, Decode: yamlfile.NonEmpty(&t.name)},
		{Key: "trustedRootFile", Decode: yamlfile.NonEmpty(&t.trustedRootFile)},
		{Key: "tuf", Decode: func(d *yamlfile.Decoder, path string, n *yaml.Node) {
			t.tuf = &rawTUF{}
			if !yamlfile.IsNull(n) { // "tuf:" alone is "tuf: {}", the public-good instance
				d.Mapping(path, n, []yamlfile.Field{
					{Key: "url", Decode: yamlfile.Text(&t.tuf.url)},
					{Key: "rootFile", Decode: yamlfile.NonEmpty(&t.tuf.rootFile)},
					{Key: "cacheDir", Decode: yamlfile.NonEmpty(&t.tuf.cacheDir)},
				})
			}
		}},
	})
	exactlyOne(d, path, n, set, "trustedRootFile", "tuf")
	return t
}

func decodePolicy(d *yamlfile.Decoder, path string, n *yaml.Node) *rawPolicy {
	p := &rawPolicy{path: path, threshold: 1}
	p.set = d.Mapping(path, n, []yamlfile.Field{
		{Key: "name", Required: true, Decode: yamlfile.NonEmpty(&p.name)},
		{Key: "images", Required: true, Decode: patterns(&p.images)},
		{Key: "excludeImages", Decode: stringList(&p.exclude)},
		{Key: "mode", Decode: yamlfile.NonEmpty(&p.mode)},
		{Key: "threshold", Decode: yamlfile.Int(&p.threshold)},
		{Key: "matchRepository", Decode: yamlfile.Bool(&p.matchRepository)},
		{Key: "allow", Decode: yamlfile.NonEmpty(&p.allow)},
		{Key: "authorities", Decode: func(d *yamlfile.Decoder, path string, n *yaml.Node) {
			p.authoritiesOK = yamlfile.IsNull(n) || n.Kind == yaml.SequenceNode
			listOf(&p.authorities, decodeAuthority)(d, path, n)
		}},
	})
	return p
}

func decodeAuthority(d *yamlfile.Decoder, path string, n *yaml.Node) *rawAuthority {
	a := &rawAuthority{path: path}
	a.set = d.Mapping(path, n, []yamlfile.Field{
		{Key: "name", Required: true, Decode: yamlfile.NonEmpty(&a.name)},
		{Key: "key", Decode: func(d *yamlfile.Decoder, path string, n *yaml.Node) { a.key = decodeKey(d, path, n) }},
		{Key: "keyless", Decode: func(d *yamlfile.Decoder, path string, n *yaml.Node) { a.keyless = decodeKeyless(d, path, n) }},
		{Key: "requireTlog", Decode: yamlfile.Bool(&a.requireTlog)},
		{Key: "trustRoot", Decode: yamlfile.NonEmpty(&a.trustRoot)},
		{Key: "signaturesFrom", Decode: yamlfile.NonEmpty(&a.sigsFrom)},
		{Key: "attestations", Decode: func(d *yamlfile.Decoder, path string, n *yaml.Node) {
			if yamlfile.IsNull(n) || (n.Kind == yaml.SequenceNode && len(n.Content) == 0) {
				d.ErrorAt(n.Line, path, "must list at least one attestation (or leave \"attestations\" out to require an image signature)")
				return
			}
			listOf(&a.attestations, decodeAttestation)(d, path, n)
		}},
	})
	exactlyOne(d, path, n, a.set, "key", "keyless")
	return a
}

func decodeAttestation(d *yamlfile.Decoder, path string, n *yaml.Node) *rawAttestation {
	at := &rawAttestation{path: path}
	at.set = d.Mapping(path, n, []yamlfile.Field{
		{Key: "name", Required: true, Decode: yamlfile.NonEmpty(&at.name)},
		{Key: "predicateType", Required: true, Decode: yamlfile.NonEmpty(&at.predicateType)},
		{Key: "condition", Decode: yamlfile.NonEmpty(&at.condition)},
		{Key: "maxAge", Decode: yamlfile.DurationAtLeast(&at.maxAge, 1, "must be greater than 0 (leave it out for no limit)")},
	})
	return at
}

func decodeKey(d *yamlfile.Decoder, path string, n *yaml.Node) *rawKey {
	k := &rawKey{}
	set := d.Mapping(path, n, []yamlfile.Field{
		{Key: "path", Decode: yamlfile.NonEmpty(&k.file)},
		{Key: "data", Decode: yamlfile.NonEmpty(&k.data)},
	})
	k.path = yamlfile.Join(path, "data")
	if _, ok := set["path"]; ok {
		k.path = yamlfile.Join(path, "path")
	}
	exactlyOne(d, path, n, set, "path", "data")
	return k
}

func decodeKeyless(d *yamlfile.Decoder, path string, n *yaml.Node) *rawKeyless {
	k := &rawKeyless{requireSCT: true}
	d.Mapping(path, n, []yamlfile.Field{
		{Key: "requireSCT", Decode: yamlfile.Bool(&k.requireSCT)},
		{Key: "identities", Required: true, Decode: func(d *yamlfile.Decoder, path string, n *yaml.Node) {
			if yamlfile.IsNull(n) || (n.Kind == yaml.SequenceNode && len(n.Content) == 0) {
				d.ErrorAt(n.Line, path, "must list at least one identity (issuer and subject)")
				return
			}
			listOf(&k.identities, decodeIdentity)(d, path, n)
		}},
	})
	return k
}

func decodeIdentity(d *yamlfile.Decoder, path string, n *yaml.Node) *rawIdentity {
	id := &rawIdentity{path: path}
	set := d.Mapping(path, n, []yamlfile.Field{
		{Key: "issuer", Decode: yamlfile.NonEmpty(&id.issuer)},
		{Key: "issuerRegExp", Decode: yamlfile.NonEmpty(&id.issuerRegExp)},
		{Key: "subject", Decode: yamlfile.NonEmpty(&id.subject)},
		{Key: "subjectRegExp", Decode: yamlfile.NonEmpty(&id.subjectRegExp)},
		{Key: "github", Decode: func(d *yamlfile.Decoder, path string, n *yaml.Node) { id.github = decodeGitHub(d, path, n) }},
		{Key: "extensions", Decode: func(d *yamlfile.Decoder, path string, n *yaml.Node) { id.extensions = decodeExtensions(d, path, n) }},
	})
	exactlyOne(d, path, n, set, "issuer", "issuerRegExp")
	_, gh := set["github"]
	_, ext := set["extensions"]
	if gh || ext {
		atMostOne(d, path, n, set, "subject", "subjectRegExp")
	} else {
		exactlyOne(d, path, n, set, "subject", "subjectRegExp")
	}
	return id
}

// decodeGitHub decodes the `github:` shorthand; nil when it sets nothing.
func decodeGitHub(d *yamlfile.Decoder, path string, n *yaml.Node) *GitHubIdentity {
	g := &GitHubIdentity{}
	set := d.Mapping(path, n, []yamlfile.Field{
		{Key: "repository", Decode: yamlfile.NonEmpty(&g.Repository)},
		{Key: "workflow", Decode: yamlfile.NonEmpty(&g.Workflow)},
		{Key: "ref", Decode: yamlfile.NonEmpty(&g.Ref)},
		{Key: "runner", Decode: yamlfile.NonEmpty(&g.Runner)},
	})
	if len(set) == 0 && n.Kind == yaml.MappingNode {
		d.ErrorAt(n.Line, path, "sets nothing; give at least one of repository, workflow, ref and runner")
	}
	return g
}

// decodeExtensions decodes `extensions:`, a mapping of Fulcio extension
// names (or names with "RegExp") to values.
func decodeExtensions(d *yamlfile.Decoder, path string, n *yaml.Node) map[string]string {
	exts := make(map[string]string)
	var fields []yamlfile.Field
	for _, name := range append([]string{"issuer"}, FulcioExtensions...) {
		for _, key := range []string{name, name + "RegExp"} {
			fields = append(fields, yamlfile.Field{Key: key, Decode: func(d *yamlfile.Decoder, path string, n *yaml.Node) {
				var v string
				yamlfile.NonEmpty(&v)(d, path, n)
				if v != "" {
					exts[key] = v
				}
			}})
		}
	}
	set := d.Mapping(path, n, fields)
	if len(set) == 0 && n.Kind == yaml.MappingNode {
		d.ErrorAt(n.Line, path, "sets nothing; give at least one Fulcio extension, such as sourceRepositoryURI")
	}
	return exts
}
