package policy

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// This file is about matching a keyless identity's Fulcio certificate
// extensions: `github:` (a shorthand for GitHub's) and `extensions:` (any,
// by sigstore-go's JSON name). sigstore-go matches extensions exactly
// only, and not at all without SAN criteria, so the verifier hands the
// verified certificate's extensions to [Identity.MatchExtensions].

// GitHubIdentity is the `github:` shorthand of an identity: who built,
// from GitHub's Fulcio certificate extensions. Empty fields are not
// checked.
type GitHubIdentity struct {
	// Repository is "owner/name": the source repository URI (OID .12) is
	// https://github.com/<Repository>.
	Repository string
	// Workflow is the workflow file's path in the source repository
	// (".github/workflows/release.yml"), matched against the build config
	// URI (OID .18, https://github.com/<repository>/<workflow>@<ref>),
	// never the build signer URI (a reusable workflow signs as itself).
	// "*" matches within one "/" segment.
	Workflow string
	// Ref is a glob on the source repository ref (OID .14), such as
	// "refs/tags/v*" ("*" within one "/" segment, "**" whole segments).
	Ref string
	// Runner is the runner environment (OID .11): "github-hosted" or
	// "self-hosted".
	Runner string
}

// Extension names of the Fulcio certificate extensions, as sigstore-go's
// certificate.Extensions names them in JSON (package verify's tests pin
// this list to sigstore-go's). "issuer" is left out: an identity's issuer
// is its `issuer`.
var FulcioExtensions = []string{
	"githubWorkflowTrigger", "githubWorkflowSHA", "githubWorkflowName", "githubWorkflowRepository", "githubWorkflowRef",
	"buildSignerURI", "buildSignerDigest", "runnerEnvironment",
	"sourceRepositoryURI", "sourceRepositoryDigest", "sourceRepositoryRef", "sourceRepositoryIdentifier",
	"sourceRepositoryOwnerURI", "sourceRepositoryOwnerIdentifier",
	"buildConfigURI", "buildConfigDigest", "buildTrigger", "runInvocationURI", "sourceRepositoryVisibilityAtSigning",
}

// extMatcher is one compiled extension constraint.
type extMatcher struct {
	name  string         // the extension
	value string         // exact value, when re is nil
	re    *regexp.Regexp // for a key ending in "RegExp"
}

func (m extMatcher) match(ext map[string]string) bool {
	v, ok := ext[m.name]
	if !ok || v == "" {
		return false
	}
	if m.re != nil {
		return m.re.MatchString(v)
	}
	return v == m.value
}

// compileExtensions checks and compiles an `extensions:` mapping.
func compileExtensions(exts map[string]string) ([]extMatcher, error) {
	var out []extMatcher
	for _, key := range slices.Sorted(maps.Keys(exts)) {
		m, err := compileExtension(key, exts[key])
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func compileExtension(key, value string) (extMatcher, error) {
	name, isRE := strings.CutSuffix(key, "RegExp")
	if name == "issuer" {
		return extMatcher{}, fmt.Errorf("extension %q: the identity's issuer is its \"issuer\" (or \"issuerRegExp\"), not an extension", key)
	}
	if !isFulcioExtension(name) {
		return extMatcher{}, fmt.Errorf("unknown Fulcio extension %q (known: %s)", key, strings.Join(FulcioExtensions, ", "))
	}
	m := extMatcher{name: name, value: value}
	if isRE {
		re, err := regexp.Compile(value)
		if err != nil {
			return extMatcher{}, fmt.Errorf("extension %q: bad regular expression (Go RE2 syntax): %v", key, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		m.re = re
	}
	return m, nil
}

func isFulcioExtension(name string) bool {
	for _, n := range FulcioExtensions {
		if n == name {
			return true
		}
	}
	return false
}

// githubURL is where GitHub's repositories are, as its certificates name them.
const githubURL = "https://github.com/"

// compiledGitHub is a compiled GitHubIdentity.
type compiledGitHub struct {
	g        GitHubIdentity
	workflow *glob // nil when unset
	ref      *glob // nil when unset
}

func compileGitHub(g *GitHubIdentity) (*compiledGitHub, error) {
	c := &compiledGitHub{g: *g}
	if r := g.Repository; r != "" {
		if strings.Contains(r, "://") || strings.Count(r, "/") != 1 || strings.HasPrefix(r, "/") || strings.HasSuffix(r, "/") {
			return nil, fmt.Errorf("github repository %q: write owner/name, such as \"acme/app\"", r)
		}
	}
	var err error
	if g.Workflow != "" {
		if strings.Contains(g.Workflow, "@") || strings.HasPrefix(g.Workflow, "/") {
			return nil, fmt.Errorf("github workflow %q: write the file's path in the repository, such as \".github/workflows/release.yml\" (the ref is \"ref\")", g.Workflow)
		}
		if c.workflow, err = compilePathGlob(g.Workflow); err != nil {
			return nil, fmt.Errorf("github workflow: %w", err)
		}
	}
	if g.Ref != "" {
		if c.ref, err = compilePathGlob(g.Ref); err != nil {
			return nil, fmt.Errorf("github ref: %w", err)
		}
	}
	switch g.Runner {
	case "", "github-hosted", "self-hosted":
	default:
		return nil, fmt.Errorf("github runner %q: want \"github-hosted\" or \"self-hosted\"", g.Runner)
	}
	return c, nil
}

// compilePathGlob compiles a glob on a slash-separated path ("*" within a
// segment, "**" whole segments), without the registry rules of images.
func compilePathGlob(pattern string) (*glob, error) {
	segs := strings.Split(pattern, "/")
	for _, s := range segs {
		if s == "" {
			return nil, fmt.Errorf("%q has an empty path segment", pattern)
		}
		if s != "**" && strings.Contains(s, "**") {
			return nil, fmt.Errorf("%q: \"**\" must be a whole path segment", pattern)
		}
	}
	return &glob{pattern: pattern, segs: segs}, nil
}

// mismatch is "" when ext satisfies c, else which part does not.
func (c *compiledGitHub) mismatch(ext map[string]string) string {
	repoURI := ext["sourceRepositoryURI"]
	if c.g.Repository != "" && repoURI != githubURL+c.g.Repository {
		return fmt.Sprintf("source repository is %s, not %s%s", orNone(repoURI), githubURL, c.g.Repository)
	}
	if c.workflow != nil {
		// https://github.com/<repository>/<workflow>@<ref>, in the source
		// repository: a workflow of another repository never matches.
		cfg := ext["buildConfigURI"]
		path, ok := strings.CutPrefix(cfg, repoURI+"/")
		// The first "@" ends the path (a workflow path has none; a ref
		// may: refs/tags/@acme/app@1.2.3).
		if i := strings.Index(path, "@"); ok && repoURI != "" && i > 0 {
			path = path[:i]
		} else {
			path = ""
		}
		if path == "" || !c.workflow.match(path) {
			return fmt.Sprintf("build config is %s, not workflow %s of %s", orNone(cfg), c.g.Workflow, orNone(repoURI))
		}
	}
	if c.ref != nil && !c.ref.match(ext["sourceRepositoryRef"]) {
		return fmt.Sprintf("source ref is %s, not %s", orNone(ext["sourceRepositoryRef"]), c.g.Ref)
	}
	if c.g.Runner != "" && ext["runnerEnvironment"] != c.g.Runner {
		return fmt.Sprintf("runner environment is %s, not %s", orNone(ext["runnerEnvironment"]), c.g.Runner)
	}
	return ""
}

// HasExtensions reports whether id constrains certificate extensions.
func (id *Identity) HasExtensions() bool {
	return id.GitHub != nil || len(id.Extensions) > 0
}

// ExtensionsMismatch is "" when the verified certificate extensions ext
// (sigstore-go JSON name -> value) satisfy id's `github:` and
// `extensions:`, else the first part that does not, for messages. An
// identity with neither is satisfied by any.
func (id *Identity) ExtensionsMismatch(ext map[string]string) string {
	gh, exts := id.github, id.exts
	if id.GitHub != nil && gh == nil { // built by hand
		var err error
		if gh, err = compileGitHub(id.GitHub); err != nil {
			return err.Error()
		}
	}
	if len(id.Extensions) > 0 && exts == nil {
		var err error
		if exts, err = compileExtensions(id.Extensions); err != nil {
			return err.Error()
		}
	}
	if gh != nil {
		if why := gh.mismatch(ext); why != "" {
			return why
		}
	}
	for _, m := range exts {
		if !m.match(ext) {
			if m.re != nil {
				return fmt.Sprintf("extension %s is %s, which does not match %s", m.name, orNone(ext[m.name]), m.re)
			}
			return fmt.Sprintf("extension %s is %s, not %s", m.name, orNone(ext[m.name]), m.value)
		}
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
