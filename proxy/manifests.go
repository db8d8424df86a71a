package proxy

import (
	"errors"
	"net/http"

	"github.com/portcullis-dev/portcullis/oci"
)

// serveManifest answers GET and HEAD /v2/<name>/manifests/<reference>.
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests
//
// A tag is resolved to a digest once, the manifest is fetched by that digest
// and hashed (by the upstream client), the Gate decides on exactly those
// bytes, and exactly those bytes are served with the digest they hash to.
// Asked for by digest, the Gate (a Preparer) starts finding the image's
// signatures while the bytes are fetched.
func (p *Proxy) serveManifest(w http.ResponseWriter, r *http.Request, rt *route) error {
	ctx := r.Context()
	if oci.IsDigest(rt.ref) {
		d, rerr := parseDigest(rt.ref)
		if rerr != nil {
			return rerr
		}
		if prep, ok := p.gate.(Preparer); ok {
			defer prep.PrepareManifest(ctx, rt.repo, d)()
		}
	} else if !oci.ValidTag(rt.ref) {
		return newError(codeTagInvalid, "invalid tag %q", rt.ref)
	}
	m, err := p.up.ManifestFor(ctx, rt.repo, rt.ref, r.Header.Values("Accept"))
	if err != nil {
		return err
	}
	noteDigest(ctx, m.DigestString())
	image, sources, err := p.gate.CheckManifest(ctx, rt.repo, rt.ref, m)
	if err != nil {
		var refusal Refusal
		if p.keep != nil && errors.As(err, &refusal) {
			if _, notFound := refusal.Refused(); !notFound {
				p.keep.Refused(ctx, rt.repo, rt.ref, m)
			}
		}
		return err
	}
	if image && p.keep != nil {
		p.keep.KeepManifest(ctx, rt.repo, rt.ref, r.Header.Values("Accept"), m, sources)
	}
	setManifestHeaders(w.Header(), m)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(m.Bytes)
	}
	return nil
}

// setManifestHeaders describes m in h, with one allocation for the four
// values (every warm pull writes them).
func setManifestHeaders(h http.Header, m *oci.Manifest) {
	v := []string{m.MediaType, m.Size(), m.DigestString(), `"` + m.DigestString() + `"`}
	h["Content-Type"], h["Content-Length"] = v[0:1:1], v[1:2:2]
	h["Docker-Content-Digest"], h["Etag"] = v[2:3:3], v[3:4:4]
}
