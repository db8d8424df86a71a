package policy

import (
	"fmt"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/portcullis-dev/portcullis/internal/yamlfile"
	"github.com/portcullis-dev/portcullis/oci"
)

// This file turns the raw file into a Policy: it checks meanings (names,
// globs, regexps, references), reads the files the policy names from the
// fs.FS it is given and records warnings.

// Parse parses and compiles the contents of a policy file. filename names
// the file in messages ("policy" if empty) and is its path in files, which
// holds the files the policy names (keys, trusted roots, TUF roots): a name
// in the policy is resolved against filename's directory, or against the
// root of files if it starts with "/". Both use fs.FS syntax
// (slash-separated), and filename may start with "/" too, for the root. So
// a caller with the policy on disk passes os.DirFS("/") and the file's
// absolute path (package internal/policyfile does), and a test passes an
// fstest.MapFS. files may be nil for a policy that names no files; it
// should implement fs.StatFS (os.DirFS and fstest.MapFS do), as files are
// checked to be regular before they are opened.
//
// A file with errors gives a *LoadError listing them all, sorted by line,
// one per line, each "FILE:LINE: PATH: MESSAGE" (FILE being filename).
// Warnings do not stop it; they are in the Policy's Warnings.
//
// checks are the caller's own rules, run as if they were the package's.
func Parse(data []byte, filename string, files fs.FS, checks ...Check) (*Policy, error) {
	p, problems := build(data, filename, files, checks)
	if err := loadError(problems); err != nil {
		return nil, err
	}
	return p, nil
}

// compiler builds a Policy from a rawFile.
type compiler struct {
	*yamlfile.Report
	fsys       fs.FS  // the files the policy names
	dir        string // the policy file's directory in fsys
	p          *Policy
	files      map[string][]byte // setting path -> bytes of the file it names, for Revision
	rootPaths  map[string]string // trust root name -> setting path
	usedRoots  map[string]bool
	publicGood bool // an authority uses the implicit public-good root
}

// build parses and compiles data, then runs checks over what it compiled,
// returning every problem, sorted by line. The Policy is nil when one of
// them is an Error.
func build(data []byte, filename string, files fs.FS, checks []Check) (*Policy, []Problem) {
	if filename == "" {
		filename = "policy"
	}
	r := yamlfile.NewReport(filename, maxProblems)
	f := parse(data, r)
	if f == nil {
		return nil, r.Problems()
	}
	c := &compiler{Report: r, fsys: files, dir: path.Dir(strings.TrimPrefix(filename, "/")),
		files: make(map[string][]byte), rootPaths: make(map[string]string), usedRoots: make(map[string]bool)}
	c.compile(f)
	for _, check := range checks {
		for _, p := range check(c.p) {
			r.Add(p)
		}
	}
	problems := r.Problems()
	if loadError(problems) != nil {
		return nil, problems
	}
	c.p.Revision = revision(data, c.files)
	c.p.Warnings = problems // all warnings, as there is no error
	return c.p, problems
}

func (c *compiler) compile(f *rawFile) {
	c.p = &Policy{TrustRoots: make(map[string]*TrustRoot), AllowDigests: make(map[string]bool)}
	for _, rt := range f.trustRoots {
		c.trustRoot(rt)
	}
	names := make(map[string]string) // policy name -> path
	for _, rp := range f.policies {
		c.unique(names, rp.name, rp.path, "policy")
		if strings.HasPrefix(rp.name, PseudoPolicyPrefix) {
			c.Errorf(yamlfile.Join(rp.path, "name"), "names starting with %q are the proxy's own (verdicts no policy made, such as %sdefault-deny, are counted and logged under them); choose another", PseudoPolicyPrefix, PseudoPolicyPrefix)
		}
		c.p.Policies = append(c.p.Policies, c.policy(rp))
	}
	c.checkShadowedUnsigned(f.policies)
	c.allowDigests(f.allowDigests)
	switch f.defaultValue {
	case "deny":
		if len(f.policies) == 0 {
			c.Warnf("policies", "none, so every image is refused unless its digest is in allowDigests")
		}
	case "allow":
		c.p.DefaultAllow = true
		c.Warnf("default", "images no policy matches are served without any signature check")
	default:
		c.Errorf("default", "want \"deny\" or \"allow\", got %s", yamlfile.Quote(f.defaultValue))
	}
	c.finishTrustRoots()
}

// unique reports name (at path) if names already has it, then adds it.
func (c *compiler) unique(names map[string]string, name, path, what string) {
	if name == "" {
		return // missing or empty: reported already
	}
	if first, dup := names[name]; dup {
		c.Errorf(yamlfile.Join(path, "name"), "%s name %q is already used by %s (line %d)", what, name, first, c.Line(first))
		return
	}
	names[name] = path
}

func (c *compiler) trustRoot(rt *rawTrustRoot) {
	c.unique(c.rootPaths, rt.name, rt.path, "trust root")
	t := &TrustRoot{Name: rt.name}
	if rt.trustedRootFile != "" {
		if rt.name == PublicGood {
			c.Errorf(yamlfile.Join(rt.path, "name"), "the name %q is reserved for the public Sigstore instance; give a trustedRootFile root another name (only a tuf entry may use it, to override how the public instance is fetched)", PublicGood)
		}
		t.TrustedRootJSON = c.readChecked(yamlfile.Join(rt.path, "trustedRootFile"), rt.trustedRootFile, maxRootBytes, checkTrustedRoot)
	}
	if rt.tuf != nil {
		t.TUF = c.tuf(yamlfile.Join(rt.path, "tuf"), rt.tuf)
	}
	if rt.name != "" && c.p.TrustRoots[rt.name] == nil {
		c.p.TrustRoots[rt.name] = t
	}
}

func (c *compiler) tuf(path string, rt *rawTUF) *TUF {
	t := &TUF{URL: rt.url}
	if err := checkURL(rt.url); err != nil {
		c.Errorf(yamlfile.Join(path, "url"), "%v", err)
	}
	if rt.rootFile != "" {
		t.RootJSON = c.readChecked(yamlfile.Join(path, "rootFile"), rt.rootFile, maxRootBytes, checkTUFRoot)
	}
	if rt.cacheDir != "" {
		dir, err := c.resolve(rt.cacheDir)
		if err != nil {
			c.Errorf(yamlfile.Join(path, "cacheDir"), "%s %v", yamlfile.Quote(rt.cacheDir), err)
		}
		t.CacheDir = dir
	}
	return t
}

// finishTrustRoots adds the implicit public-good root if an authority uses
// it, and warns about roots no authority uses.
func (c *compiler) finishTrustRoots() {
	if c.publicGood && c.p.TrustRoots[PublicGood] == nil {
		c.p.TrustRoots[PublicGood] = &TrustRoot{Name: PublicGood, TUF: &TUF{}}
	}
	for _, name := range slices.Sorted(maps.Keys(c.rootPaths)) {
		if !c.usedRoots[name] {
			c.Warnf(yamlfile.Join(c.rootPaths[name], "name"), "trust root %q is not used by any authority", name)
		}
	}
}

func (c *compiler) policy(rp *rawPolicy) *ImagePolicy {
	ip := &ImagePolicy{Name: rp.name, Threshold: rp.threshold, MatchRepository: rp.matchRepository, Line: c.Line(rp.path)}
	ip.Images, ip.images = c.globs(rp.images)
	ip.ExcludeImages, ip.exclude = c.globs(rp.exclude)
	ip.Mode = c.mode(rp)
	switch rp.allow {
	case "":
	case "unsigned":
		ip.AllowUnsigned = true
	default:
		c.Errorf(yamlfile.Join(rp.path, "allow"), "the only value is \"unsigned\", got %s", yamlfile.Quote(rp.allow))
	}
	if ip.AllowUnsigned {
		c.checkUnsigned(rp)
		return ip
	}
	if ip.Mode == Warn {
		c.Warnf(yamlfile.Join(rp.path, "mode"), "images failing policy %q are served anyway; violations are only logged", rp.name)
	}
	if ip.MatchRepository {
		c.Warnf(yamlfile.Join(rp.path, "matchRepository"), "only legacy .sig signatures name the repository they sign; cosign v3 bundle signatures name none, so under matchRepository they never pass")
	}
	c.checkAuthorities(rp)
	names := make(map[string]string)
	for _, ra := range rp.authorities {
		c.unique(names, ra.name, ra.path, "authority")
		ip.Authorities = append(ip.Authorities, c.authority(ra))
	}
	c.checkSameSigners(rp, ip.Authorities)
	return ip
}

func (c *compiler) mode(rp *rawPolicy) Mode {
	switch rp.mode {
	case "", "enforce":
	case "warn":
		return Warn
	default:
		c.Errorf(yamlfile.Join(rp.path, "mode"), "want \"enforce\" or \"warn\", got %s%s", yamlfile.Quote(rp.mode), yamlfile.Suggest(rp.mode, []string{"enforce", "warn"}))
	}
	return Enforce
}

// checkShadowedUnsigned warns about an allow: unsigned policy whose images
// an enforcing policy also matches: every matching policy must pass, so
// those images still need the enforcing policy's signatures. The overlap is
// shown with an image the unsigned policy matches (each "*" as "x"), so a
// warning is never wrong; some overlaps may go unreported.
func (c *compiler) checkShadowedUnsigned(raw []*rawPolicy) {
	for i, u := range c.p.Policies {
		if !u.AllowUnsigned || i >= len(raw) {
			continue
		}
	next:
		for _, pattern := range u.Images {
			sample := strings.ReplaceAll(strings.ReplaceAll(pattern, "**", "x"), "*", "x")
			if !u.matchesImage(sample) {
				continue
			}
			for _, e := range c.p.Policies {
				if e == u || e.AllowUnsigned || e.Mode != Enforce || !e.matchesImage(sample) {
					continue
				}
				c.Warnf(yamlfile.Join(raw[i].path, "allow"), "has no effect on images policy %q also matches, such as %s: every matching policy must pass, so they still need its signatures", e.Name, sample)
				break next
			}
		}
	}
}

// checkUnsigned reports settings that make no sense with allow: unsigned.
func (c *compiler) checkUnsigned(rp *rawPolicy) {
	for _, key := range []string{"authorities", "threshold", "matchRepository"} {
		if _, ok := rp.set[key]; ok {
			c.Errorf(yamlfile.Join(rp.path, key), "a policy with \"allow: unsigned\" checks no signatures; remove %q (or \"allow\")", key)
		}
	}
}

// checkAuthorities reports a signed policy without authorities, or with a
// threshold out of range.
func (c *compiler) checkAuthorities(rp *rawPolicy) {
	n := len(rp.authorities)
	_, set := rp.set["authorities"]
	switch {
	case !set:
		c.Errorf(rp.path, "missing required field \"authorities\" (or \"allow: unsigned\" to allow images without signatures)")
	case n == 0 && rp.authoritiesOK:
		c.Errorf(yamlfile.Join(rp.path, "authorities"), "must list at least one authority")
	case n > 0 && (rp.threshold < 1 || rp.threshold > n):
		c.Errorf(yamlfile.Join(rp.path, "threshold"), "must be from 1 to %d (the number of authorities), got %d", n, rp.threshold)
	}
}

func (c *compiler) authority(ra *rawAuthority) *Authority {
	a := &Authority{Name: ra.name, TrustRoot: ra.trustRoot}
	switch {
	case ra.key != nil:
		a.Key = c.key(ra.key)
	case ra.keyless != nil:
		a.Keyless = c.keyless(ra.keyless)
		a.RequireTlog = true
	}
	if _, ok := ra.set["requireTlog"]; ok {
		a.RequireTlog = ra.requireTlog
	}
	a.Line, a.Path = c.Line(ra.path), ra.path
	c.resolveTrustRoot(ra, a)
	c.attestations(ra, a)
	if ra.sigsFrom != "" {
		src, err := parseSource(ra.sigsFrom)
		if err != nil {
			c.Errorf(yamlfile.Join(ra.path, "signaturesFrom"), "%v", err)
		}
		a.SignaturesFrom = src
	}
	return a
}

// parseSource checks a signaturesFrom repository: "registry/repository",
// no tag or digest.
func parseSource(s string) (oci.Repository, error) {
	first, rest, ok := strings.Cut(s, "/")
	if !ok || !(strings.ContainsAny(first, ".:") || strings.EqualFold(first, "localhost")) {
		return oci.Repository{}, fmt.Errorf("%s: write the repository with its registry, such as \"registry.example/signatures/app\"", yamlfile.Quote(s))
	}
	if strings.ContainsAny(rest, "@:") {
		return oci.Repository{}, fmt.Errorf("%s: name a repository, without a tag or digest", yamlfile.Quote(s))
	}
	reg := oci.NormalizeRegistry(first)
	name := oci.NormalizeRepository(reg, rest)
	if !oci.ValidRepositoryName(name) {
		return oci.Repository{}, fmt.Errorf("%s: %q is not a repository name (lower-case letters, digits, separators)", yamlfile.Quote(s), name)
	}
	return oci.Repository{Registry: reg, Name: name}, nil
}

// attestations compiles the authority's attestation requirements: the
// predicate type, the CEL condition (syntax and types checked now), the
// maximum age.
func (c *compiler) attestations(ra *rawAuthority, a *Authority) {
	names := make(map[string]string)
	for _, rat := range ra.attestations {
		c.unique(names, rat.name, rat.path, "attestation")
		if rat.predicateType == "" {
			continue // missing: reported already
		}
		at, err := NewAttestation(rat.name, rat.predicateType, rat.condition, rat.maxAge)
		if err != nil {
			field := "predicateType"
			if _, perr := predicateURIs(rat.predicateType); perr == nil {
				field = "condition"
			}
			c.Errorf(yamlfile.Join(rat.path, field), "%v", err)
			continue
		}
		at.Line = c.Line(rat.path)
		if at.MaxAge > 0 && a.Key != nil && a.TrustRoot == "" {
			c.Warnf(yamlfile.Join(rat.path, "maxAge"), "a key authority without a trustRoot has no verified signing time (RFC 3161 timestamp or Rekor entry), so this attestation never passes; name the trustRoot of your timestamp authority or log")
		}
		a.Attestations = append(a.Attestations, at)
	}
}

// resolveTrustRoot checks a's trust root, or picks the public-good one
// when a needs one and names none.
func (c *compiler) resolveTrustRoot(ra *rawAuthority, a *Authority) {
	switch {
	case a.TrustRoot == PublicGood:
		c.publicGood = true
		c.usedRoots[PublicGood] = true
	case a.TrustRoot != "":
		if _, ok := c.rootPaths[a.TrustRoot]; !ok {
			c.Errorf(yamlfile.Join(ra.path, "trustRoot"), "unknown trust root %q%s", a.TrustRoot, yamlfile.Suggest(a.TrustRoot, append(slices.Sorted(maps.Keys(c.rootPaths)), PublicGood)))
		}
		c.usedRoots[a.TrustRoot] = true
	case a.Keyless != nil:
		a.TrustRoot, c.publicGood = PublicGood, true
		c.Warnf(ra.path, "no trustRoot: keyless signatures are checked against the public-good Sigstore instance, whose trusted root is fetched via TUF over the internet; name a trustRoot for a private or air-gapped instance")
	case a.RequireTlog:
		a.TrustRoot, c.publicGood = PublicGood, true
		c.Warnf(ra.path, "no trustRoot: the transparency log entry is checked against the public-good Sigstore instance, whose trusted root is fetched via TUF over the internet")
	}
}

func (c *compiler) key(rk *rawKey) *Key {
	k := &Key{}
	switch {
	case rk.file != "":
		k.PEM = c.read(rk.path, rk.file, maxKeyBytes)
	case rk.data != "":
		k.PEM = []byte(rk.data)
	}
	if k.PEM == nil {
		return k // missing or unreadable: reported already
	}
	pub, hint, err := parsePublicKey(k.PEM)
	if err != nil {
		if rk.file != "" {
			err = fmt.Errorf("%s: %w", yamlfile.Quote(rk.file), err)
		}
		c.Errorf(rk.path, "%v", err)
	}
	k.Public, k.Hint = pub, hint
	return k
}

func (c *compiler) keyless(rk *rawKeyless) *Keyless {
	k := &Keyless{RequireSCT: rk.requireSCT}
	for _, ri := range rk.identities {
		id := Identity{Issuer: ri.issuer, IssuerRegExp: ri.issuerRegExp, Subject: ri.subject, SubjectRegExp: ri.subjectRegExp,
			GitHub: ri.github, Extensions: ri.extensions}
		// Checked here (RE2, anchoring); sigstore-go compiles them again.
		c.regexp(yamlfile.Join(ri.path, "issuerRegExp"), ri.issuerRegExp)
		c.regexp(yamlfile.Join(ri.path, "subjectRegExp"), ri.subjectRegExp)
		c.identityExtensions(ri, &id)
		k.Identities = append(k.Identities, id)
	}
	return k
}

// identityExtensions compiles an identity's `github:` and `extensions:`.
func (c *compiler) identityExtensions(ri *rawIdentity, id *Identity) {
	if id.GitHub != nil {
		gh, err := compileGitHub(id.GitHub)
		if err != nil {
			c.Errorf(yamlfile.Join(ri.path, "github"), "%v", err)
		}
		id.github = gh
		if ri.issuer != "" && ri.issuer != githubIssuer {
			c.Warnf(yamlfile.Join(ri.path, "github"), "the issuer is %s, not GitHub Actions' %s: another issuer's certificates may carry these extensions with other meanings", yamlfile.Quote(ri.issuer), githubIssuer)
		}
	}
	if !pinsRepository(ri, id) {
		where := "github"
		if id.GitHub == nil {
			where = "extensions"
		}
		c.Warnf(yamlfile.Join(ri.path, where), "pins no repository: with no subject, github.repository or repository extension (sourceRepositoryURI, buildConfigURI, ...), a certificate from any repository of the issuer matches")
	}
	if len(id.Extensions) == 0 {
		return
	}
	for key, v := range id.Extensions {
		m, err := compileExtension(key, v)
		if err != nil {
			c.Errorf(yamlfile.Join(yamlfile.Join(ri.path, "extensions"), key), "%v", err)
			continue
		}
		if m.re != nil && !strings.HasPrefix(v, "^") {
			c.Warnf(yamlfile.Join(yamlfile.Join(ri.path, "extensions"), key), "%s is not anchored with \"^\", so it matches anywhere in the value; start it with \"^\"", yamlfile.Quote(v))
		}
	}
	id.exts, _ = compileExtensions(id.Extensions)
}

// regexp compiles expr (if set) as Go RE2, warning when it is not anchored
// at the start, so that it could match inside an unrelated value.
func (c *compiler) regexp(path, expr string) *regexp.Regexp {
	if expr == "" {
		return nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		c.Errorf(path, "bad regular expression (Go RE2 syntax): %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		return nil
	}
	if !strings.HasPrefix(expr, "^") {
		c.Warnf(path, "%s is not anchored with \"^\", so it matches anywhere in the value (say, inside another organisation's URL); start it with \"^\"", yamlfile.Quote(expr))
	}
	return re
}

// globs compiles the patterns, reporting the bad ones.
func (c *compiler) globs(items []item) ([]string, []*glob) {
	var pats []string
	var globs []*glob
	for _, it := range items {
		g, err := compileGlob(it.value)
		if err != nil {
			c.Errorf(it.path, "%v", err)
			continue
		}
		pats = append(pats, it.value)
		globs = append(globs, g)
	}
	return pats, globs
}

// digestRE is a break-glass digest as allowDigests takes it.
var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

func (c *compiler) allowDigests(items []item) {
	for _, it := range items {
		if !digestRE.MatchString(it.value) {
			c.Errorf(it.path, "want \"sha256:\" and 64 lower-case hex digits, got %s", yamlfile.Quote(it.value))
			continue
		}
		c.p.AllowDigests[it.value] = true
		c.Warnf(it.path, "break-glass: images with digest %s are served whatever the policies say", it.value[:19])
	}
}

// resolve returns the name in c.fsys of the file or directory written as
// name in the policy: from the root of c.fsys if name starts with "/",
// else from the policy file's directory. It fails for a name that leads out
// of c.fsys, such as "../k.pub" beside a policy at its root.
func (c *compiler) resolve(name string) (string, error) {
	p := path.Join(c.dir, name)
	if path.IsAbs(name) {
		p = strings.TrimPrefix(path.Clean(name), "/")
	}
	if p == "" {
		p = "."
	}
	if !fs.ValidPath(p) {
		return "", fmt.Errorf("leads out of the files given to the policy (to %s)", yamlfile.Quote(p))
	}
	return p, nil
}

// githubIssuer is GitHub Actions' OIDC issuer, which `github:` is about.
const githubIssuer = "https://token.actions.githubusercontent.com"

// repositoryExtensions name the repository that built or signed.
var repositoryExtensions = []string{"sourceRepositoryURI", "sourceRepositoryIdentifier", "sourceRepositoryOwnerURI",
	"sourceRepositoryOwnerIdentifier", "buildConfigURI", "buildSignerURI", "githubWorkflowRepository"}

// pinsRepository reports whether an identity with github: or extensions:
// constrains which repository its certificates come from (true for one
// with neither: its subject is required).
func pinsRepository(ri *rawIdentity, id *Identity) bool {
	if !id.HasExtensions() || ri.subject != "" || ri.subjectRegExp != "" || (id.GitHub != nil && id.GitHub.Repository != "") {
		return true
	}
	for _, name := range repositoryExtensions {
		if id.Extensions[name] != "" || id.Extensions[name+"RegExp"] != "" {
			return true
		}
	}
	return false
}
