package gate

import (
	"context"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/verify"
)

// This file is the Gate as the proxy asks it (proxy.Gate): a refusal is a
// *Refusal, which the proxy answers with 403 DENIED (or 404 for
// wrong-shaped signature material); any other error means no decision, and
// nothing is served.

// Refusal is a Verdict that refuses, as an error. It satisfies the
// proxy's Refusal interface (Error and Refused) without either package
// importing the other.
type Refusal struct {
	Verdict *Verdict
	// askWhy: the gate keeps a decision log, so `portcullis why` can
	// answer for this refusal.
	askWhy bool
}

// Error is the verdict's message; a 403 ends with how to ask for the
// reason later (containerd resolves tags with HEAD, whose errors have no
// body: its users see only the status) when there is a log to ask.
func (r *Refusal) Error() string {
	if !r.askWhy || r.Verdict.NotFound() || r.Verdict.material() {
		return r.Verdict.Message() // not recorded: nothing to ask
	}
	return r.Verdict.Message() + "; to ask why: portcullis why " + r.Verdict.Image + "@" + r.Verdict.Digest.String()
}

// Refused returns the verdict's failures as one line (nil unless several) and
// whether the refusal is "not signature material", answered as not found.
// The detail is a string, not a structure: crane and other ggcr clients
// print it with %v, and a structure reads as a Go map dump (the structured
// record is on the admin listener, GET /decisions).
func (r *Refusal) Refused() (detail any, notFound bool) {
	// One failing policy is all in the message already (which then ends
	// with how to ask why); several are listed here.
	if d := r.Verdict.Detail(); len(d) > 1 {
		parts := make([]string, len(d))
		for i, f := range d {
			parts[i] = fmt.Sprintf("policy %q (%s): %s", f.Policy, f.Mode, strings.Join(f.Reasons, "; "))
		}
		detail = strings.Join(parts, " | ")
	}
	return detail, r.Verdict.NotFound()
}

// CheckManifest decides on the manifest m that the proxy is about to serve
// for reference (a tag or a digest) in repo.
// sources are the signaturesFrom repositories of an allowed image's
// policies (see Verdict.Sources).
func (g *Gate) CheckManifest(ctx context.Context, repo verify.Repository, reference string, m *oci.Manifest) (image bool, sources []verify.Repository, err error) {
	v, err := g.Manifest(ctx, &ManifestRequest{
		Repo: repo, Reference: reference, Digest: m.Digest, MediaType: m.MediaType, Bytes: m.Bytes,
	})
	if err := g.refusal(v, err); err != nil {
		return false, nil, err
	}
	if v.Cause == CauseSignatureArtifact {
		return false, nil, nil
	}
	return true, v.Sources(), nil
}

// CheckBlob decides on blob d of repo; maxBytes bounds a blob allowed only
// as signature material.
func (g *Gate) CheckBlob(ctx context.Context, repo verify.Repository, d v1.Hash) (maxBytes int64, err error) {
	v, err := g.Blob(ctx, repo, d)
	if err := g.refusal(v, err); err != nil {
		return 0, err
	}
	return v.MaxBytes, nil
}

// CheckReferrers decides on a referrers answer of subject in repo.
func (g *Gate) CheckReferrers(ctx context.Context, repo verify.Repository, subject v1.Hash, body []byte) error {
	v, err := g.Referrers(ctx, repo, subject, body)
	return g.refusal(v, err)
}

// refusal is err, else v as an error when it refuses.
func (g *Gate) refusal(v *Verdict, err error) error {
	if err != nil {
		return err
	}
	if v.Allowed() {
		return nil
	}
	return &Refusal{Verdict: v, askWhy: g.o.decisions != nil}
}
