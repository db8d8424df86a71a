package main

// A model-based randomized test of the promise that matters most: nothing
// refused is ever served. Each round builds a random upstream world
// (model_world_test.go), puts the real proxy and gate in front of it, sends
// a random sequence of client requests (manifests by tag and digest, GET
// and HEAD, blobs with and without Range, referrers, signature tags, the
// .sig an image has in a signaturesFrom repository, in any order and
// across repositories) with policy reloads and clock jumps in
// between, and checks every answer against an oracle computed from the
// world's ground truth and the policy in force:
//
//   - safety: no manifest, blob or referrers answer is served (200/206,
//     GET or HEAD) unless the rules allow it;
//   - liveness: what the rules require to work does (an allowed image by
//     tag and digest, its blobs after its manifest was served, the
//     signature material of an allowed image, its referrers), so a gate
//     that refuses everything fails too.
//
// A failing sequence is shrunk to a short reproduction and printed with
// the seed. PORTCULLIS_MODEL_SEED replays a seed; PORTCULLIS_MODEL_WORLDS
// and PORTCULLIS_MODEL_REQUESTS set the size (default 200 x 50).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/store"
)

// modelPolicy is one policy the model switches between: its file, and the
// oracle's reading of it (per repository: unsigned allowed, or the keys of
// which one must have signed).
type modelPolicy struct {
	yaml     string
	unsigned map[int]bool
	keys     map[int][]int
	// attested: per repository, the keys one of whose provenance
	// attestations meeting the condition allows an image.
	attested map[int][]int
	// sourced: per repository, the keys whose .sig in modelSource (the
	// policy's signaturesFrom) allows an image; its own do not count.
	sourced map[int][]int
}

var modelPolicies = []modelPolicy{
	{yaml: `policies:
  - name: k0
    images: ["registry.model/acme/**"]
    authorities: [{name: k0, key: {path: k0.pub}}]
`, keys: map[int][]int{0: {0}, 1: {0}, 2: {0}}},
	{yaml: `policies:
  - name: k1
    images: ["registry.model/acme/**"]
    authorities: [{name: k1, key: {path: k1.pub}}]
`, keys: map[int][]int{0: {1}, 1: {1}, 2: {1}}},
	{yaml: `policies:
  - name: open
    images: ["registry.model/acme/r0"]
    allow: unsigned
  - name: either
    images: ["registry.model/acme/**"]
    excludeImages: ["registry.model/acme/r0"]
    authorities: [{name: k0, key: {path: k0.pub}}, {name: k1, key: {path: k1.pub}}]
`, unsigned: map[int]bool{0: true}, keys: map[int][]int{1: {0, 1}, 2: {0, 1}}},
	{yaml: `policies:
  - name: provenance
    images: ["registry.model/acme/**"]
    authorities:
      - name: k0
        key: {path: k0.pub}
        attestations:
          - name: provenance
            predicateType: slsaprovenance
            condition: 'predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/acme/app"'
      - name: k1
        key: {path: k1.pub}
        attestations: [{name: provenance, predicateType: "https://slsa.dev/provenance/v1"}]
`, attested: map[int][]int{0: {0, 1}, 1: {0, 1}, 2: {0, 1}}},
	{yaml: `policies:
  - name: mirrored
    images: ["registry.model/acme/r1"]
    authorities: [{name: k0, signaturesFrom: registry.model/sigs/acme, key: {path: k0.pub}}]
  - name: k1
    images: ["registry.model/acme/**"]
    excludeImages: ["registry.model/acme/r1"]
    authorities: [{name: k1, key: {path: k1.pub}}]
`, keys: map[int][]int{0: {1}, 2: {1}}, sourced: map[int][]int{1: {0}}},
}

// oracle answers what the rules allow in a world under a policy.
type oracle struct {
	w   *world
	pol *modelPolicy
}

func (o oracle) allowedByPolicy(r int, d v1.Hash) bool {
	if o.w.byDigest[objKey(r, d)] == nil {
		return false // no such manifest in the repository
	}
	if o.pol.unsigned[r] {
		return true
	}
	for _, k := range o.pol.keys[r] {
		if o.w.signed[objKey(r, d)][k] {
			return true
		}
	}
	for _, k := range o.pol.attested[r] {
		if o.w.attested[objKey(r, d)][k] {
			return true
		}
	}
	for _, k := range o.pol.sourced[r] {
		if o.w.sourced[d.String()][k] {
			return true
		}
	}
	return false
}

// servableImage: allowed by the policy, or listed by an allowed manifest of
// the same repository.
func (o oracle) servableImage(r int, d v1.Hash) bool {
	if o.allowedByPolicy(r, d) {
		return true
	}
	for _, parent := range o.w.listedBy[objKey(r, d)] {
		if o.allowedByPolicy(r, parent.digest) {
			return true
		}
	}
	return false
}

// subjectServable: material in repository r about subject may be served:
// the subject would be served in r, or, in modelSource, in a repository
// whose policy reads its signatures from there.
func (o oracle) subjectServable(r int, subject v1.Hash) bool {
	if r != modelSource {
		return o.servableImage(r, subject)
	}
	for r2 := range o.pol.sourced {
		if o.servableImage(r2, subject) {
			return true
		}
	}
	return false
}

// materialOK: material of the shape of kind as, about a subject that would
// be served.
func (o oracle) materialOK(r int, obj *object, as string, subject v1.Hash) bool {
	return obj.kind == kMaterial && obj.as == as && o.subjectServable(r, subject)
}

// manifestByTag: may the object be served for a tag request?
func (o oracle) manifestByTag(r int, tag string, obj *object) bool {
	if subject, as, ok := signatureTag(tag); ok {
		if o.materialOK(r, obj, as, subject) {
			return true
		}
	}
	return o.servableImage(r, obj.digest)
}

// manifestByDigest: may the object be served for a digest request?
func (o oracle) manifestByDigest(r int, obj *object) bool {
	if obj.subject != nil && o.materialOK(r, obj, "referrer", *obj.subject) {
		return true
	}
	return o.servableImage(r, obj.digest)
}

// blob: listed by a manifest of the repository that would be served, or by
// well-shaped material of a subject that would be (at most 1 MiB then).
func (o oracle) blob(r int, d v1.Hash, size int64) bool {
	for _, obj := range o.w.objects {
		if obj.repo != r {
			continue
		}
		for _, b := range obj.blobs {
			if b.Digest != d {
				continue
			}
			if o.servableImage(r, obj.digest) {
				return true
			}
			for _, s := range obj.subjects {
				if obj.kind == kMaterial && o.subjectServable(r, s) && size <= 1<<20 {
					return true
				}
			}
		}
	}
	return false
}

// signatureTag parses cosign's and the referrers fallback tags.
func signatureTag(tag string) (v1.Hash, string, bool) {
	rest, ok := strings.CutPrefix(tag, "sha256-")
	if !ok {
		return v1.Hash{}, "", false
	}
	as := "fallback"
	for _, suffix := range []string{".sig", ".att", ".sbom"} {
		if h, ok := strings.CutSuffix(rest, suffix); ok {
			rest, as = h, suffix[1:]
		}
	}
	if len(rest) != 64 {
		return v1.Hash{}, "", false
	}
	return v1.Hash{Algorithm: "sha256", Hex: rest}, as, true
}

// Operations of a request sequence. Fields index the world's lists, so a
// sequence replays on a world rebuilt from the same seed.
type opKind int

const (
	opTag opKind = iota
	opDigest
	opBlob
	opReferrers
	opReload
	opAdvance
	opMoveTag
	opServedBlob // a blob of a manifest served earlier, as a client pulling it would
	// opSourcedSig: the .sig in sigs/acme of an image served earlier, then
	// one of its blobs, as cosign verify with COSIGN_REPOSITORY would.
	opSourcedSig
)

type op struct {
	kind  opKind
	head  bool
	rng   int // blobs: 0 whole, 1 "bytes=0-", 2 "bytes=1-5"
	a, b  int
	jump  time.Duration
	label string // filled when run, for reproductions
}

func genOps(rng *rand.Rand, w *world, n int) []op {
	// Tags of acme/r1 and sigs/acme, asked for more often: what a policy
	// reading signatures from another repository (signaturesFrom) decides.
	var sourcedTags []int
	for i, mt := range w.tags {
		if mt.repo == 1 || mt.repo == modelSource {
			sourcedTags = append(sourcedTags, i)
		}
	}
	ops := make([]op, 0, n)
	for len(ops) < n {
		o := op{head: rng.Intn(4) == 0}
		repo := func(own int) int {
			if rng.Intn(7) == 0 {
				return rng.Intn(len(modelRepos))
			}
			return own
		}
		switch x := rng.Intn(100); {
		case x < 22:
			o.kind, o.a = opTag, rng.Intn(len(w.tags))
		case x < 30:
			o.kind, o.a = opTag, sourcedTags[rng.Intn(len(sourcedTags))]
		case x < 52:
			o.kind, o.a = opDigest, rng.Intn(len(w.objects))
			o.b = repo(w.objects[o.a].repo)
		case x < 64:
			o.kind, o.a, o.rng = opBlob, rng.Intn(len(w.blobList)), rng.Intn(3)
			o.b = repo(w.blobList[o.a].repo)
		case x < 77:
			o.kind, o.a, o.b, o.rng = opServedBlob, rng.Int(), rng.Int(), rng.Intn(3)
		case x < 86:
			o.kind, o.a, o.head = opReferrers, rng.Intn(len(w.objects)), false
			o.b = repo(w.objects[o.a].repo)
		case x < 91:
			o.kind, o.a = opReload, rng.Intn(len(modelPolicies))
		case x < 95:
			o.kind, o.jump = opAdvance, time.Duration(rng.Int63n(int64(3*modelVerdictTTL/2)))
		case x < 98:
			o.kind, o.a, o.b = opSourcedSig, rng.Int(), rng.Int()
		default:
			o.kind, o.a, o.b = opMoveTag, rng.Intn(modelSource), rng.Int()
		}
		ops = append(ops, o)
	}
	return ops
}

const (
	modelVerdictTTL = 10 * time.Minute
	modelDenyTTL    = 30 * time.Second
)

// fakeClock is the gate's clock in the model: time moves only by opAdvance.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// run is one sequence against one world: the proxy, its state, and what
// the client has been served so far (for the liveness checks).
type run struct {
	w      *world
	pol    int
	clock  *fakeClock
	srv    *httptest.Server
	reload func(int) error
	// servedAt: repo+digest of manifests served to the client as images,
	// and when (by the gate's clock).
	servedAt map[string]time.Time
	// storeDir is the content store's directory ("" when there is none).
	storeDir string
	store    *store.Store
	// servedImage: repo+digest of manifests served as images, whatever
	// they are (the policy allows unsigned content of some repositories),
	// and of those the policy allowed at some point: what the content
	// store may keep.
	servedImage map[string]bool
}

func startRun(t testing.TB, w *world, staleIfError time.Duration) *run {
	t.Helper()
	dir := t.TempDir()
	for i, k := range w.keys {
		pem, err := k.PublicKeyPEM()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("k%d.pub", i)), pem, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	policyFile := filepath.Join(dir, "policy.yaml")
	write := func(i int) {
		if err := os.WriteFile(policyFile, []byte(modelPolicies[i].yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(w.startPolicy)
	clock := &fakeClock{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	var storeDir string
	if w.store {
		storeDir = filepath.Join(dir, "store")
	}
	h, st, reload := newModelProxy(t, w.host, policyFile, clock.Now, staleIfError, storeDir)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	r := &run{w: w, pol: w.startPolicy, clock: clock, srv: srv, servedAt: map[string]time.Time{}, storeDir: storeDir, store: st, servedImage: map[string]bool{}}
	r.reload = func(i int) error { write(i); r.pol = i; return reload() }
	return r
}

// failure is a broken rule: which operation, and what went wrong.
type failure struct {
	at  int
	msg string
}

func (f *failure) Error() string { return fmt.Sprintf("op %d: %s", f.at, f.msg) }

// exec runs ops and returns the first broken rule, or nil.
func (r *run) exec(ops []op) *failure {
	for i := range ops {
		if msg := r.step(&ops[i]); msg != "" {
			return &failure{at: i, msg: msg}
		}
	}
	return nil
}

func (r *run) oracle() oracle { return oracle{w: r.w, pol: &modelPolicies[r.pol]} }

func (r *run) get(method, path string, hdr http.Header) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(method, r.srv.URL+path, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp.StatusCode, resp.Header, b, err
}

var manifestAcceptAll = http.Header{"Accept": {strings.Join([]string{ociManifest, ociIndex,
	"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json"}, ",")}}

// step runs one operation and checks its answer; "" means every rule held.
// step runs one operation and checks its answer, then what the content
// store holds, if there is one.
func (r *run) step(o *op) string {
	if r.storeDir != "" {
		// What the policy allows during this operation: the gate may
		// decide on a subject, or a parent, it was not asked for directly.
		for key, obj := range r.w.byDigest {
			if r.oracle().allowedByPolicy(obj.repo, obj.digest) {
				r.servedImage[key] = true
			}
		}
	}
	if msg := r.stepOnce(o); msg != "" {
		return msg
	}
	if r.storeDir != "" {
		if msg := r.checkStore(); msg != "" {
			return o.label + ": then " + msg
		}
	}
	return ""
}

// checkStore: the content store holds nothing refused. Every manifest in
// it was served to the client as an image (or index) of its repository,
// or allowed by the policy when it was stored; all signature material is
// of such a subject; every blob in it is a config or layer of one of
// those, or of their material.
func (r *run) checkStore() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.store.Wait(ctx); err != nil {
		return "the content store's fetches did not end: " + err.Error()
	}
	listed := map[string]bool{}
	for key := range r.servedImage {
		if obj := r.w.byDigest[key]; obj != nil {
			for _, b := range obj.blobs {
				listed[b.Digest.Hex] = true
			}
		}
	}
	var msg string
	// Material first: it must be of an allowed subject, and lists blobs.
	_ = filepath.WalkDir(r.storeDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || msg != "" {
			return err
		}
		rel, _ := filepath.Rel(r.storeDir, path)
		// repos/<registry>/<repo>/_material/<alg>/<hex>/<file>, or
		// .../<hex>/from/<registry>/<source repo>/<file> for material read
		// from a signaturesFrom repository.
		parts := strings.Split(filepath.ToSlash(rel), "/")
		m := slices.Index(parts, "_material")
		if parts[0] != "repos" || m < 3 || len(parts) < m+4 {
			return nil
		}
		repo := slices.Index(modelRepos, strings.Join(parts[2:m], "/"))
		subject := objKey(repo, v1.Hash{Algorithm: parts[m+1], Hex: parts[m+2]})
		if !r.servedImage[subject] {
			msg = "the content store holds signature material " + rel + " of a subject never allowed"
			return nil
		}
		from := repo // where the material's manifests are
		if parts[m+3] == "from" {
			if from = slices.Index(modelRepos, strings.Join(parts[m+5:len(parts)-1], "/")); from < 0 || parts[m+4] != modelRegistry {
				msg = "the content store holds signature material " + rel + " from a repository that is not the policy's source"
				return nil
			}
		}
		if alg, hex, ok := strings.Cut(parts[len(parts)-1], "-"); ok {
			if obj := r.w.byDigest[objKey(from, v1.Hash{Algorithm: alg, Hex: hex})]; obj != nil {
				for _, b := range obj.blobs {
					listed[b.Digest.Hex] = true
				}
			}
		}
		return nil
	})
	_ = filepath.WalkDir(r.storeDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || msg != "" {
			return err
		}
		rel, _ := filepath.Rel(r.storeDir, path)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		switch {
		case parts[0] == "blobs" && len(parts) == 3:
			if !listed[parts[2]] {
				msg = "the content store holds blob " + short(parts[2]) + ", which no image served to the client, nor its stored material, lists"
			}
		case parts[0] == "repos" && len(parts) >= 4 && parts[len(parts)-3] == "_manifests":
			repo := slices.Index(modelRepos, strings.Join(parts[2:len(parts)-3], "/"))
			key := objKey(repo, v1.Hash{Algorithm: parts[len(parts)-2], Hex: parts[len(parts)-1]})
			if !r.servedImage[key] {
				msg = "the content store holds manifest " + rel + ", never served to the client as an image"
			}
		}
		return nil
	})
	return msg
}

func (r *run) stepOnce(o *op) string {
	w, or := r.w, r.oracle()
	method := http.MethodGet
	if o.head {
		method = http.MethodHead
	}
	switch o.kind {
	case opReload:
		o.label = fmt.Sprintf("reload policy %d", o.a)
		if err := r.reload(o.a); err != nil {
			return "reload failed: " + err.Error()
		}
		return ""
	case opAdvance:
		o.label = fmt.Sprintf("clock +%v", o.jump.Round(time.Second))
		r.clock.advance(o.jump)
		return ""
	case opMoveTag:
		imgs := w.images[o.a]
		img := imgs[o.b%len(imgs)]
		tag := fmt.Sprintf("v%d", (o.b/7)%len(imgs))
		o.label = fmt.Sprintf("move %s:%s to %s", modelRepos[o.a], tag, img.name)
		w.putManifest(o.a, tag, img.bytes)
		w.current[modelRepos[o.a]+":"+tag] = img.digest
		return ""
	case opTag:
		mt := w.tags[o.a]
		o.label = fmt.Sprintf("%s manifest %s:%s", method, modelRepos[mt.repo], mt.tag)
		code, h, body, err := r.get(method, "/v2/"+modelRepos[mt.repo]+"/manifests/"+mt.tag, manifestAcceptAll)
		if err != nil {
			return o.label + ": " + err.Error()
		}
		cur, exists := w.current[modelRepos[mt.repo]+":"+mt.tag]
		if code == http.StatusOK {
			obj, msg := r.servedManifest(mt.repo, h, body, o.head)
			if msg != "" {
				return o.label + ": " + msg
			}
			if !or.manifestByTag(mt.repo, mt.tag, obj) {
				return fmt.Sprintf("%s: served %s (%s), which the rules refuse", o.label, obj.name, obj.digest)
			}
			if _, isSig, _ := signatureTag(mt.tag); !isSigTag(mt.tag) || isSig == "" {
				r.noteServed(mt.repo, obj)
			}
			return ""
		}
		if exists && !isSigTag(mt.tag) && or.allowedByPolicy(mt.repo, cur) {
			return fmt.Sprintf("%s: %d for an allowed image (%s): %s", o.label, code, cur, firstLine(body))
		}
		if exists && isSigTag(mt.tag) {
			if obj := w.byDigest[objKey(mt.repo, cur)]; obj != nil {
				subject, as, _ := signatureTag(mt.tag)
				if or.materialOK(mt.repo, obj, as, subject) && or.allowedByPolicy(mt.repo, subject) {
					return fmt.Sprintf("%s: %d for the signature material of an allowed image: %s", o.label, code, firstLine(body))
				}
			}
		}
	case opDigest:
		obj := w.objects[o.a]
		o.label = fmt.Sprintf("%s manifest %s@%s (%s of %s)", method, modelRepos[o.b], short(obj.digest.Hex), obj.name, modelRepos[obj.repo])
		code, h, body, err := r.get(method, "/v2/"+modelRepos[o.b]+"/manifests/"+obj.digest.String(), manifestAcceptAll)
		if err != nil {
			return o.label + ": " + err.Error()
		}
		if code == http.StatusOK {
			got, msg := r.servedManifest(o.b, h, body, o.head)
			if msg != "" {
				return o.label + ": " + msg
			}
			if got.digest != obj.digest {
				return fmt.Sprintf("%s: served digest %s", o.label, got.digest)
			}
			if !or.manifestByDigest(o.b, got) {
				return fmt.Sprintf("%s: served, which the rules refuse", o.label)
			}
			r.noteServed(o.b, got)
			return ""
		}
		if o.b == obj.repo && (obj.kind == kImage || obj.kind == kIndex) && or.allowedByPolicy(o.b, obj.digest) {
			return fmt.Sprintf("%s: %d for an allowed image: %s", o.label, code, firstLine(body))
		}
		if o.b == obj.repo && r.parentServed(o.b, obj.digest) && or.servableImage(o.b, obj.digest) {
			return fmt.Sprintf("%s: %d for a child of an allowed index already served: %s", o.label, code, firstLine(body))
		}
		if o.b == obj.repo && obj.kind == kMaterial && obj.as == "referrer" && or.allowedByPolicy(o.b, *obj.subject) {
			return fmt.Sprintf("%s: %d for a signature of an allowed image: %s", o.label, code, firstLine(body))
		}
	case opServedBlob:
		var served []*object
		for _, obj := range w.objects {
			if _, ok := r.servedAt[objKey(obj.repo, obj.digest)]; ok && len(obj.blobs) > 0 {
				served = append(served, obj)
			}
		}
		if len(served) == 0 {
			o.label = "(no manifest served yet)"
			return ""
		}
		obj := served[o.a%len(served)]
		b := obj.blobs[o.b%len(obj.blobs)]
		bo := op{kind: opBlob, head: o.head, rng: o.rng, b: obj.repo, a: -1}
		for i, bk := range w.blobList {
			if bk.repo == obj.repo && bk.d == b.Digest {
				bo.a = i
			}
		}
		msg := r.step(&bo)
		o.label = bo.label + " of " + obj.name
		return msg
	case opSourcedSig:
		// Mostly an image of a repository whose policy now reads from
		// sigs/acme (where its .sig may be served), else any.
		var served, sourced []*object
		for _, obj := range w.objects {
			if _, ok := r.servedAt[objKey(obj.repo, obj.digest)]; ok && obj.repo != modelSource {
				served = append(served, obj)
				if or.pol.sourced[obj.repo] != nil {
					sourced = append(sourced, obj)
				}
			}
		}
		if len(sourced) > 0 && o.b%4 != 0 {
			served = sourced
		}
		if len(served) == 0 {
			o.label = "(no image served yet)"
			return ""
		}
		img := served[o.a%len(served)]
		tag := "sha256-" + img.digest.Hex + ".sig"
		to := op{kind: opTag, head: o.head, a: -1}
		for i, mt := range w.tags {
			if mt.repo == modelSource && mt.tag == tag {
				to.a = i
			}
		}
		if to.a < 0 {
			o.label = "(no .sig of " + img.name + " in " + modelRepos[modelSource] + ")"
			return ""
		}
		msg := r.step(&to)
		o.label = to.label + " (of " + img.name + " of " + modelRepos[img.repo] + ")"
		sig := w.byDigest[objKey(modelSource, w.current[modelRepos[modelSource]+":"+tag])]
		if msg != "" || sig == nil || len(sig.blobs) == 0 {
			return msg
		}
		bo := op{kind: opBlob, head: o.head, b: modelSource, a: -1}
		for i, bk := range w.blobList {
			if bk.repo == modelSource && bk.d == sig.blobs[o.b%len(sig.blobs)].Digest {
				bo.a = i
			}
		}
		if bo.a < 0 {
			return ""
		}
		msg = r.step(&bo)
		o.label += ", then " + bo.label
		return msg
	case opBlob:
		bk := w.blobList[o.a]
		rangeHdr := []string{"", "bytes=0-", "bytes=1-5"}[o.rng]
		o.label = fmt.Sprintf("%s blob %s@%s %s (from %s)", method, modelRepos[o.b], short(bk.d.Hex), rangeHdr, modelRepos[bk.repo])
		hdr := http.Header{}
		if rangeHdr != "" {
			hdr.Set("Range", rangeHdr)
		}
		code, h, body, err := r.get(method, "/v2/"+modelRepos[o.b]+"/blobs/"+bk.d.String(), hdr)
		if err != nil {
			// An aborted transfer serves nothing complete; count it as refused.
			return ""
		}
		if code == http.StatusOK || code == http.StatusPartialContent {
			if !or.blob(o.b, bk.d, bk.size) {
				return fmt.Sprintf("%s: %d, which the rules refuse", o.label, code)
			}
			if code == http.StatusOK && !o.head && sha(body) != bk.d {
				return fmt.Sprintf("%s: body does not hash to the digest", o.label)
			}
			_ = h
			return ""
		}
		if r.blobOfServed(o.b, bk.d) {
			return fmt.Sprintf("%s: %d for a blob of a manifest served within the verdict TTL: %s", o.label, code, firstLine(body))
		}
	case opReferrers:
		obj := w.objects[o.a]
		o.label = fmt.Sprintf("GET referrers %s@%s (%s)", modelRepos[o.b], short(obj.digest.Hex), obj.name)
		code, _, body, err := r.get(http.MethodGet, "/v2/"+modelRepos[o.b]+"/referrers/"+obj.digest.String(), nil)
		if err != nil {
			return o.label + ": " + err.Error()
		}
		if code == http.StatusOK {
			if !or.subjectServable(o.b, obj.digest) {
				return o.label + ": referrers of a refused image served"
			}
			if msg := indexShape(body); msg != "" {
				return o.label + ": " + msg
			}
			return ""
		}
		if o.b == obj.repo && obj.kind == kImage && or.allowedByPolicy(o.b, obj.digest) && code != http.StatusNotFound {
			return fmt.Sprintf("%s: %d for an allowed image: %s", o.label, code, firstLine(body))
		}
	}
	return ""
}

// servedManifest checks a served manifest's integrity and finds its object.
func (r *run) servedManifest(repo int, h http.Header, body []byte, head bool) (*object, string) {
	d, err := v1.NewHash(h.Get("Docker-Content-Digest"))
	if err != nil {
		return nil, "no Docker-Content-Digest: " + err.Error()
	}
	if !head && sha(body) != d {
		return nil, "body does not hash to Docker-Content-Digest"
	}
	obj := r.w.byDigest[objKey(repo, d)]
	if obj == nil {
		return nil, fmt.Sprintf("served %s, which is no manifest of the world", d)
	}
	return obj, ""
}

func (r *run) noteServed(repo int, obj *object) {
	if obj.kind == kImage || obj.kind == kIndex || r.oracle().allowedByPolicy(repo, obj.digest) {
		r.servedImage[objKey(repo, obj.digest)] = true // the policy let it through as an image
	}
	if obj.kind == kImage || obj.kind == kIndex {
		r.servedAt[objKey(repo, obj.digest)] = r.clock.Now()
	}
}

// fresh reports whether a manifest was served as an image within the
// verdict TTL and is still allowed: by the policy, or as the child of an
// index the client was served too (the gate cannot know of an index
// nobody asked for).
func (r *run) fresh(repo int, d v1.Hash) bool {
	at, ok := r.servedAt[objKey(repo, d)]
	return ok && r.clock.Now().Sub(at) < modelVerdictTTL && (r.oracle().allowedByPolicy(repo, d) || r.parentServed(repo, d))
}

func (r *run) parentServed(repo int, d v1.Hash) bool {
	for _, p := range r.w.listedBy[objKey(repo, d)] {
		if at, ok := r.servedAt[objKey(repo, p.digest)]; ok && r.clock.Now().Sub(at) < modelVerdictTTL && r.oracle().allowedByPolicy(repo, p.digest) {
			return true
		}
	}
	return false
}

func (r *run) blobOfServed(repo int, d v1.Hash) bool {
	for _, obj := range r.w.objects {
		if obj.repo != repo || !r.fresh(repo, obj.digest) {
			continue
		}
		for _, b := range obj.blobs {
			if b.Digest == d {
				return true
			}
		}
	}
	return false
}

// indexShape: a referrers answer is an OCI index of OCI manifests.
func indexShape(b []byte) string {
	var idx struct {
		MediaType string          `json:"mediaType"`
		Config    json.RawMessage `json:"config"`
		Layers    json.RawMessage `json:"layers"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return "referrers answer is not JSON"
	}
	if idx.MediaType != ociIndex || idx.Config != nil || idx.Layers != nil {
		return fmt.Sprintf("referrers answer is not an OCI index (mediaType %q)", idx.MediaType)
	}
	for _, d := range idx.Manifests {
		if d.MediaType != ociManifest {
			return fmt.Sprintf("referrers answer lists a %s", d.MediaType)
		}
	}
	return ""
}

func isSigTag(tag string) bool { _, _, ok := signatureTag(tag); return ok }

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	if len(s) > 1200 {
		s = s[:1200]
	}
	return s
}

func envInt(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil {
		return v
	}
	return def
}

func TestModelNothingRefusedIsServed(t *testing.T) {
	worlds, reqs := envInt("PORTCULLIS_MODEL_WORLDS", 200), envInt("PORTCULLIS_MODEL_REQUESTS", 50)
	if testing.Short() {
		worlds = min(worlds, 20)
	}
	seed := envInt("PORTCULLIS_MODEL_SEED", time.Now().UnixNano())
	t.Logf("model: seed %d (replay with PORTCULLIS_MODEL_SEED=%d), %d worlds x %d requests", seed, seed, worlds, reqs)
	total := 0
	for i := range worlds {
		ws := seed + i*7919
		w := newWorld(t, ws)
		ops := genOps(rand.New(rand.NewSource(ws+1)), w, int(reqs))
		stale := []time.Duration{0, time.Hour}[ws&1]
		if os.Getenv("PORTCULLIS_MODEL_SURVEY") != "" { // every failing operation, unshrunk
			r := startRun(t, w, stale)
			for j := range ops {
				if msg := r.step(&ops[j]); msg != "" {
					t.Errorf("world seed %d op %d: %s", ws, j, msg)
				}
			}
			continue
		}
		f := startRun(t, w, stale).exec(ops)
		total += len(ops)
		if f == nil {
			continue
		}
		short := shrink(t, ws, stale, ops[:f.at+1])
		t.Fatalf("model: world seed %d broke a rule: %v\nshrunk to %d operations (the last one fails):\n%s",
			ws, f, len(short.ops), short.describe())
	}
	t.Logf("model: %d requests over %d worlds, every rule held", total, worlds)
}

type shrunk struct {
	ops []op
	f   *failure
}

func (s shrunk) describe() string {
	var b strings.Builder
	for i, o := range s.ops {
		fmt.Fprintf(&b, "  %2d. %s\n", i+1, o.label)
	}
	if s.f != nil {
		fmt.Fprintf(&b, "  => %s", s.f.msg)
	}
	return b.String()
}

// shrink removes operations while the sequence still breaks a rule on a
// world rebuilt from the same seed (bounded in attempts).
func shrink(t *testing.T, seed int64, stale time.Duration, ops []op) shrunk {
	try := func(cand []op) *failure {
		var f *failure
		t.Run("shrink", func(t *testing.T) {
			w := newWorld(t, seed)
			f = startRun(t, w, stale).exec(cand)
		})
		return f
	}
	best := shrunk{ops: append([]op(nil), ops...)}
	best.f = try(best.ops)
	if best.f == nil {
		return best // not reproducible on a rebuilt world; report as is
	}
	best.ops = best.ops[:best.f.at+1]
	attempts := 0
	for chunk := len(best.ops) / 2; chunk >= 1 && attempts < 150; chunk /= 2 {
		for start := 0; start+chunk < len(best.ops) && attempts < 150; {
			cand := append(append([]op(nil), best.ops[:start]...), best.ops[start+chunk:]...)
			attempts++
			if f := try(cand); f != nil {
				best = shrunk{ops: cand[:f.at+1], f: f}
				continue
			}
			start += chunk
		}
	}
	// Labels of the final run.
	w := newWorld(t, seed)
	best.f = startRun(t, w, stale).exec(best.ops)
	if best.f == nil {
		best.f = &failure{msg: "(did not reproduce on the last rebuild)"}
	}
	return best
}

// short is the first 12 characters of a hex digest, for labels.
func short(hex string) string { return hex[:min(12, len(hex))] }
