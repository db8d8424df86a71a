package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/verify/verifytest"
)

// TestRealdataAttestationsThroughProxy: real attestations nobody here
// made, through the proxy as serve wires it. cosign's keyless v0.3
// attestation of a reproducible manifest (../shared/realdata/
// cosign-oci-attestation-v03) satisfies a policy requiring its predicate
// type, and the manifest's exact bytes are served; a policy requiring
// another type refuses it with the attestation named; policy-controller's
// distroless .att (a genuine certificate and SET around an envelope that
// does not match its log entry) allows nothing.
func TestRealdataAttestationsThroughProxy(t *testing.T) {
	att := realdataDir(t, "cosign-oci-attestation-v03")
	up := newTestUpstream(t)
	repo := up.Repo("attested")
	manifest := realdata(t, "cosign-oci-attestation-v03", "manifest.json")
	up.PushBlob(repo, realdata(t, "cosign-oci-attestation-v03", "config.json"), "application/vnd.docker.container.image.v1+json")
	d := up.PutRaw(repo, "latest", manifest, "application/vnd.docker.distribution.manifest.v2+json")
	if d.String() != "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4" {
		t.Fatalf("manifest digest %s", d)
	}
	up.PushReferrer(repo, v1.Descriptor{MediaType: "application/vnd.docker.distribution.manifest.v2+json", Digest: d, Size: int64(len(manifest))},
		realdata(t, "cosign-oci-attestation-v03", "oci-attestation.sigstore.json"), "https://cosign.sigstore.dev/attestation/v1")

	other := up.PushImage(repo, "distroless")
	up.PushAttestations(repo, other.Digest, verifytest.Layer{Payload: realdata(t, "policy-controller-distroless-att", "envelope.json"), Annotations: map[string]string{
		"dev.cosignproject.cosign/signature": "", "predicateType": "https://cosign.sigstore.dev/attestation/vuln/v1",
		"dev.sigstore.cosign/certificate": string(realdata(t, "policy-controller-distroless-att", "cert.pem")),
		"dev.sigstore.cosign/chain":       string(realdata(t, "policy-controller-distroless-att", "chain.pem")),
		"dev.sigstore.cosign/bundle":      string(realdata(t, "policy-controller-distroless-att", "rekor-bundle.json")),
	}})

	for _, tc := range []struct {
		name, predicateType, tag string
		want                     int
		body                     string
	}{
		{"cosign attestation", "https://cosign.sigstore.dev/attestation/v1", "latest", http.StatusOK, ""},
		{"another predicate type", "slsaprovenance", "latest", http.StatusForbidden, `needs attestation \"required\" (slsaprovenance) from authority \"soyland\": none found`},
		{"distroless .att", "vuln", "distroless", http.StatusForbidden, `needs attestation \"required\" (vuln)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pol := fmt.Sprintf(`trustRoots:
  - name: pgi
    trustedRootFile: %s
  - name: public
    trustedRootFile: %s
policies:
  - name: attested
    images: ["%s/attested"]
    authorities:
      - name: soyland
        trustRoot: pgi
        keyless:
          identities: [{issuer: "https://github.com/login/oauth", subject: cody@soyland.com}]
        attestations: [{name: required, predicateType: %q}]
      - name: distroless
        trustRoot: public
        keyless:
          identities: [{issuer: "https://token.actions.githubusercontent.com", subject: "https://github.com/distroless/static/.github/workflows/release.yaml@refs/heads/main"}]
        attestations: [{name: required, predicateType: %q}]
    threshold: 1
`, filepath.Join(att, "trusted_root_pgi.json"), filepath.Join(realdataDir(t, "trusted-root"), "trusted_root.json"), modelRegistry, tc.predicateType, tc.predicateType)
			policyFile := writeFile(t, dir, "policy.yaml", pol)
			h, _, _ := newModelProxy(t, up.Host, policyFile, time.Now, 0, "")
			req := httptest.NewRequest(http.MethodGet, "/v2/attested/manifests/"+tc.tag, nil)
			req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.body) {
				t.Fatalf("GET %s: %d %s; want %d with %s", tc.tag, rec.Code, rec.Body.String(), tc.want, tc.body)
			}
			if tc.want == http.StatusOK && !bytes.Equal(rec.Body.Bytes(), manifest) {
				t.Error("served bytes differ from the attested manifest's")
			}
		})
	}
}

// realdataDir is a realdata folder's path (skipped outside CI when absent).
func realdataDir(t *testing.T, sub string) string {
	t.Helper()
	realdata(t, sub, "README.md")
	abs, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "realdata", sub))
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
