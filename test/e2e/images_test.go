//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"runtime"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Test images, by the reference clients use: registry name, repository, tag.
const (
	appImage    = "registry.example/acme/app:v1"     // Docker schema 2 image, 2 layers
	ociImage    = "registry.example/acme/oci:v1"     // OCI image, 2 layers
	multiImage  = "registry.example/acme/multi:v1"   // OCI index: linux/amd64, linux/arm64 (+ this machine's)
	hubImage    = "docker.io/library/busybox:latest" // Docker schema 2 image on "Docker Hub"
	hubRepoPath = "library/busybox"                  // hubImage's repository on its upstream
	armPlatform = "linux/arm64"                      // an index child picked by --platform
	layerBytes  = 256 << 10                          // bytes of random content per layer
	imageSeed   = 20260101                           // fixed, so failures reproduce
)

// fixture is a pushed image or index and what clients must get back.
type fixture struct {
	ref       string // registry/repo:tag, as clients name it
	digest    v1.Hash
	mediaType types.MediaType
	raw       []byte             // the manifest bytes
	children  map[string]v1.Hash // index only: "os/arch" -> child digest
	layers    []v1.Hash          // image only: layer digests
}

// hostPlatform is the index child clients pull by default.
var hostPlatform = "linux/" + runtime.GOARCH

// registryOf splits "registry.example/acme/app:v1" into the registry name
// and "acme/app:v1".
func registryOf(ref string) (registry, rest string) {
	registry, rest, _ = strings.Cut(ref, "/")
	return registry, rest
}

// buildFixtures makes the test images; each is pushed by pushFixture.
func buildFixtures() (map[string]fixture, map[string]any, error) {
	rng := rand.New(rand.NewSource(imageSeed))
	src := func() random.Option { return random.WithSource(rand.NewSource(rng.Int63())) }
	objs := map[string]any{}

	app, err := dockerImage(src())
	if err != nil {
		return nil, nil, err
	}
	objs[appImage] = app
	hub, err := dockerImage(src())
	if err != nil {
		return nil, nil, err
	}
	objs[hubImage] = hub
	oci, err := ociImageOf("linux", runtime.GOARCH, src(), src())
	if err != nil {
		return nil, nil, err
	}
	objs[ociImage] = oci
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	arches := []string{"amd64", "arm64"}
	if !slices.Contains(arches, runtime.GOARCH) {
		arches = append(arches, runtime.GOARCH) // what clients pull by default
	}
	for _, arch := range arches {
		img, err := ociImageOf("linux", arch, src(), src())
		if err != nil {
			return nil, nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	objs[multiImage] = idx

	fixtures := map[string]fixture{}
	for ref, obj := range objs {
		f, err := describe(ref, obj)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", ref, err)
		}
		fixtures[ref] = f
	}
	return fixtures, objs, nil
}

// dockerImage is a Docker schema 2 image with two random gzip layers.
func dockerImage(opt random.Option) (v1.Image, error) {
	img, err := random.Image(layerBytes, 2, opt)
	if err != nil {
		return nil, err
	}
	return withPlatform(img, "linux", runtime.GOARCH)
}

// ociImageOf is an OCI image for os/arch with one layer per option.
func ociImageOf(goos, arch string, opts ...random.Option) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	for _, opt := range opts {
		l, err := random.Layer(layerBytes, types.OCILayer, opt)
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return nil, err
		}
	}
	return withPlatform(img, goos, arch)
}

// withPlatform sets the config's os and architecture, as real images have.
func withPlatform(img v1.Image, goos, arch string) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = goos, arch
	return mutate.ConfigFile(img, cf)
}

// describe records what a client must see for obj.
func describe(ref string, obj any) (fixture, error) {
	f := fixture{ref: ref}
	var err error
	switch o := obj.(type) {
	case v1.Image:
		if f.digest, err = o.Digest(); err != nil {
			return f, err
		}
		if f.mediaType, err = o.MediaType(); err != nil {
			return f, err
		}
		if f.raw, err = o.RawManifest(); err != nil {
			return f, err
		}
		m, err := o.Manifest()
		if err != nil {
			return f, err
		}
		for _, l := range m.Layers {
			f.layers = append(f.layers, l.Digest)
		}
	case v1.ImageIndex:
		if f.digest, err = o.Digest(); err != nil {
			return f, err
		}
		if f.mediaType, err = o.MediaType(); err != nil {
			return f, err
		}
		if f.raw, err = o.RawManifest(); err != nil {
			return f, err
		}
		im, err := o.IndexManifest()
		if err != nil {
			return f, err
		}
		f.children = map[string]v1.Hash{}
		for _, d := range im.Manifests {
			f.children[d.Platform.OS+"/"+d.Platform.Architecture] = d.Digest
		}
	default:
		return f, fmt.Errorf("unexpected %T", obj)
	}
	return f, nil
}

// pushTo writes obj to repository repo:tag of the registry at addr.
func pushTo(ctx context.Context, addr, repoAndTag string, obj any) error {
	ref, err := name.ParseReference(addr+"/"+repoAndTag, name.Insecure, name.StrictValidation)
	if err != nil {
		return err
	}
	switch o := obj.(type) {
	case v1.Image:
		return remote.Write(ref, o, remote.WithContext(ctx))
	case v1.ImageIndex:
		return remote.WriteIndex(ref, o, remote.WithContext(ctx))
	}
	return fmt.Errorf("unexpected %T", obj)
}
