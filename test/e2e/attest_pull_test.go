//go:build e2e

package e2e

// podman and containerd pull through the proxy images that meet their
// attestation policy, and are refused those that do not.

import (
	"fmt"
	"math/rand"
	"runtime"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestAttestPull: podman and containerd pull images whose provenance the
// policy accepts, in the bundle and the legacy format (an index; an image
// attested again after a rejected build), and one that needs two
// attestations and has them in both formats; they are refused an image
// attested with an SBOM only, one built by another builder, and one that
// lacks the SBOM. podman shows why.
func TestAttestPull(t *testing.T) {
	e := setup(t)
	e.needProxy(t)
	c := needCosign(t, "cosign", "v3.1.3")
	key := c.generateKeyPair(t, "build")
	upstream := e.upstreams["registry.example"].addr
	slsa, spdx := attestPredicateNamed(t, "slsa"), attestPredicateNamed(t, "spdx")
	otherBuilder := slsa
	otherBuilder.body = strings.Replace(slsa.body, "https://example.com/builder@v1", "https://example.com/untrusted-builder", 1)
	var bundle, legacy attestFormat
	for _, af := range attestFormats() {
		switch af.name {
		case "cosign-bundle":
			bundle = af
		case "cosign-legacy":
			legacy = af
		}
	}
	const reason = `needs attestation "provenance" (slsaprovenance) from authority "build-key": `
	images := []attestPullImage{
		// The attestation names the index; the clients pull this machine's
		// child, served as a child of the allowed index.
		{ref: "registry.example/attest/pull/multi:v1", atts: []attestWith{{bundle, slsa}}, index: true},
		{ref: "registry.example/attest/pull/built:v1", atts: []attestWith{{bundle, slsa}}},
		{ref: "registry.example/attest/pull/built-legacy:v1", atts: []attestWith{{legacy, slsa}}},
		{ref: "registry.example/attest/pull/sbom-only:v1", atts: []attestWith{{bundle, spdx}}, refuse: reason + "none found"},
		{ref: "registry.example/attest/pull/other-builder:v1", atts: []attestWith{{legacy, otherBuilder}}, refuse: reason + "found 1, condition false"},
		// Attested twice, by another builder first: the second satisfies
		// the condition (a second .att layer; a second referrer).
		{ref: "registry.example/attest/pull/rebuilt-legacy:v1", atts: []attestWith{{legacy, otherBuilder}, {legacy, slsa}}},
		{ref: "registry.example/attest/pull/rebuilt:v1", atts: []attestWith{{bundle, otherBuilder}, {bundle, slsa}}},
		// A referrer and an .att tag: the requirements are met from both.
		{ref: "registry.example/attest/pull-sbom/both:v1", atts: []attestWith{{bundle, slsa}, {legacy, spdx}}},
		{ref: "registry.example/attest/pull-sbom/no-sbom:v1", atts: []attestWith{{bundle, slsa}},
			refuse: `needs attestation "sbom" (spdx) from authority "build-key": none found`},
	}
	for i := range images {
		images[i].push(t, c, key, upstream, imageSeed+100+int64(i))
	}
	p := startAttestProxy(t, e, key.pub, attestPullPolicy)

	t.Run("podman", func(t *testing.T) {
		t.Parallel()
		podman := needTool(t, "podman")
		env, global, pull := podmanSetup(t, p.addr)
		for _, im := range images {
			args := append(append(append(slices.Clone(global), "pull", "--quiet"), pull...), im.ref)
			if im.refuse != "" {
				r := fails(t, env, podman, args...)
				if !strings.Contains(r.stderr, im.refuse) {
					t.Errorf("podman pull %s: stderr does not say %q:\n%s", im.ref, im.refuse, r.stderr)
				}
				continue
			}
			run(t, env, podman, args...)
			out := run(t, env, podman, append(slices.Clone(global), "image", "inspect", "--format", "{{.Digest}}", im.ref)...)
			if got := strings.TrimSpace(out); got != im.digest.String() {
				t.Errorf("podman image inspect %s: digest %q, want %s", im.ref, got, im.digest)
			}
			im.wantServed(t, p)
		}
	})
	t.Run("ctr", func(t *testing.T) {
		t.Parallel()
		ctr := needTool(t, "ctr")
		socket := startContainerd(t)
		hostsDir := renderHostsDir(t, p.addr, "registry.example")
		for _, im := range images {
			args := []string{"--address", socket, "images", "pull", "--hosts-dir", hostsDir, "--snapshotter", "native", im.ref}
			if im.refuse == "" {
				run(t, nil, ctr, args...)
				if got := ctrImageDigest(t, ctr, socket, im.ref); got != im.digest.String() {
					t.Errorf("ctr images ls: %s has digest %q, want %s", im.ref, got, im.digest)
				}
				im.wantServed(t, p)
				continue
			}
			// containerd resolves the tag with HEAD, whose refusal has no
			// body: it shows the 403, and the proxy's log and `portcullis
			// why` the reason.
			if r := fails(t, nil, ctr, args...); !strings.Contains(r.stderr, "403") {
				t.Errorf("ctr pull %s: stderr does not mention the 403:\n%s", im.ref, r.stderr)
			}
			if got := ctrImageDigest(t, ctr, socket, im.ref); got != "" {
				t.Errorf("ctr images ls lists refused %s (digest %s)", im.ref, got)
			}
			if l := p.waitAudit(t, repoOf(im.ref), im.digest.String()); l.Result != "deny" || !strings.Contains(l.Message, im.refuse) {
				t.Errorf("decision on %s: %+v, want deny saying %q", im.ref, l, im.refuse)
			}
			why := runCmd(t.Context(), nil, e.binary, "why", "--admin", "http://"+p.adminAddr, im.ref)
			if !strings.Contains(why.stdout, im.refuse) {
				t.Errorf("portcullis why %s does not say %q:\n%s%s", im.ref, im.refuse, why.stdout, why.stderr)
			}
		}
	})
}

// attestPullImage is an image of TestAttestPull.
type attestPullImage struct {
	ref    string       // registry.example/attest/pull[-sbom]/<name>:v1
	atts   []attestWith // what it is attested with
	index  bool         // a multi-platform index, not an image
	refuse string       // "" if served, else what the DENIED message says

	digest v1.Hash // set by push
	child  v1.Hash // an index's child for this machine
}

// push builds im from seed, pushes it to the upstream at addr and attests
// it with key, once per attestation.
func (im *attestPullImage) push(t *testing.T, c *cosignCLI, key cosignKey, addr string, seed int64) {
	t.Helper()
	src := random.WithSource(rand.NewSource(seed))
	var obj interface{ Digest() (v1.Hash, error) }
	var err error
	if im.index {
		var idx v1.ImageIndex
		if idx, err = attestIndex(src); err == nil {
			obj = idx
			im.child, err = childFor(idx, hostPlatform)
		}
	} else {
		obj, err = dockerImage(src)
	}
	if err != nil {
		t.Fatal(err)
	}
	_, repoTag := registryOf(im.ref)
	if err := pushTo(t.Context(), addr, repoTag, obj); err != nil {
		t.Fatalf("push %s: %v", im.ref, err)
	}
	if im.digest, err = obj.Digest(); err != nil {
		t.Fatal(err)
	}
	counts := map[bool]int{} // by bundle()
	for _, a := range im.atts {
		a.af.cli(t, c).attest(t, key, a.pred, addr+"/"+repoOf(repoTag)+"@"+im.digest.String())
		counts[a.af.bundle()]++
	}
	for bundle, n := range counts {
		attestStored(t, addr, repoOf(repoTag), im.digest, bundle, n)
	}
}

// attestWith is one attestation of an image: a format and a predicate.
type attestWith struct {
	af   attestFormat
	pred attestPredicate
}

// wantServed checks the proxy's decisions on a served im: allowed by the
// policy, and an index's child allowed as the child of an allowed index.
func (im *attestPullImage) wantServed(t *testing.T, p *proxyProc) {
	t.Helper()
	repo := repoOf(im.ref)
	if l := p.waitAudit(t, repo, im.digest.String()); l.Result != "allow" || l.Cause != "policy" || !strings.Contains(l.Identity, "attestation") {
		t.Errorf("decision on %s: %+v, want allow by policy on an attestation", im.ref, l)
	}
	if im.index {
		if l := p.waitAudit(t, repo, im.child.String()); l.Result != "allow" || l.Cause != "allowed-parent" {
			t.Errorf("decision on %s@%s (its %s child): %+v, want allow as a child of the allowed index", repo, im.child, hostPlatform, l)
		}
	}
}

// childFor is the digest of idx's child for platform ("os/arch").
func childFor(idx v1.ImageIndex, platform string) (v1.Hash, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.OS+"/"+d.Platform.Architecture == platform {
			return d.Digest, nil
		}
	}
	return v1.Hash{}, fmt.Errorf("no child for %s", platform)
}

// attestIndex is an OCI index of linux/amd64, linux/arm64 and this
// machine's platform, one random layer each, seeded by src.
func attestIndex(src random.Option) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	arches := []string{"amd64", "arm64"}
	if !slices.Contains(arches, runtime.GOARCH) {
		arches = append(arches, runtime.GOARCH)
	}
	for _, arch := range arches {
		img, err := ociImageOf("linux", arch, src)
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	return idx, nil
}
