package verifytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"

	"github.com/portcullis-dev/portcullis/verify/signing/virtualsig"
)

// GitHubIssuer is GitHub Actions' OIDC issuer.
const GitHubIssuer = "https://token.actions.githubusercontent.com"

// GitHubCA issues leaf certificates shaped like GitHub Actions' (a URI
// SAN naming the signing workflow, and GitHub's Fulcio extensions) from a
// Fulcio CA of its own (sigstore-go's ca.GenerateRootCa and
// GenerateFulcioIntermediate: a VirtualSigstore issues only email SANs),
// and logs and timestamps with a VirtualSigstore's Rekor and TSA.
type GitHubCA struct {
	KL       *Keyless
	root     *x509.Certificate
	inter    *x509.Certificate
	interKey *ecdsa.PrivateKey
}

// NewGitHubCA makes the CA and its VirtualSigstore.
func NewGitHubCA(t testing.TB) *GitHubCA {
	t.Helper()
	rootCert, rootKey, err := ca.GenerateRootCa()
	if err != nil {
		t.Fatal(err)
	}
	inter, interKey, err := ca.GenerateFulcioIntermediate(rootCert, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	return &GitHubCA{KL: NewKeyless(t), root: rootCert, inter: inter, interKey: interKey}
}

// Trust is the trusted material: the CA, with the VirtualSigstore's
// Rekor, TSA (and its own CA and CT log).
func (g *GitHubCA) Trust() root.TrustedMaterial {
	return root.TrustedMaterialCollection{g.KL.VS, &fulcioOnly{ca: &root.FulcioCertificateAuthority{
		Root: g.root, Intermediates: []*x509.Certificate{g.inter},
		ValidityPeriodStart: time.Now().Add(-time.Hour), ValidityPeriodEnd: time.Now().Add(time.Hour),
	}}}
}

type fulcioOnly struct {
	root.BaseTrustedMaterial
	ca root.CertificateAuthority
}

func (f *fulcioOnly) FulcioCertificateAuthorities() []root.CertificateAuthority {
	return []root.CertificateAuthority{f.ca}
}

// GitHubBuild says who a GitHub certificate names: the repository that
// built (owner/name), the workflow file in it, the ref, the runner, and
// the workflow that signed (SignerWorkflow "owner/repo/path@ref": a
// reusable workflow; "" for the build's own workflow).
type GitHubBuild struct {
	Repository, Workflow, Ref, Runner string
	SignerWorkflow                    string
}

// Fulcio extension OIDs (1.3.6.1.4.1.57264.1.x), as GitHub's certificates
// carry them.
var (
	oidIssuerV2          = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
	oidBuildSignerURI    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 9}
	oidRunnerEnvironment = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 11}
	oidSourceRepoURI     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 12}
	oidSourceRepoRef     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 14}
	oidSourceRepoOwner   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 16}
	oidBuildConfigURI    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 18}
)

// Leaf issues a certificate for b, valid for ten minutes from now.
func (g *GitHubCA) Leaf(t testing.TB, b GitHubBuild) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	build := "https://github.com/" + b.Repository + "/" + b.Workflow + "@" + b.Ref
	signer := build
	if b.SignerWorkflow != "" {
		signer = "https://github.com/" + b.SignerWorkflow
	}
	san, err := url.Parse(signer)
	if err != nil {
		t.Fatal(err)
	}
	var exts []pkix.Extension
	for _, e := range []struct {
		oid asn1.ObjectIdentifier
		v   string
	}{
		{oidIssuerV2, GitHubIssuer}, {oidBuildSignerURI, signer}, {oidRunnerEnvironment, b.Runner},
		{oidSourceRepoURI, "https://github.com/" + b.Repository}, {oidSourceRepoRef, b.Ref},
		{oidSourceRepoOwner, "https://github.com/" + ownerOf(b.Repository)}, {oidBuildConfigURI, build},
	} {
		der, err := asn1.MarshalWithParams(e.v, "utf8")
		if err != nil {
			t.Fatal(err)
		}
		exts = append(exts, pkix.Extension{Id: e.oid, Value: der})
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), URIs: []*url.URL{san},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(10 * time.Minute),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		ExtraExtensions: exts,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, g.inter, &priv.PublicKey, g.interKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return leaf, priv
}

func ownerOf(repo string) string {
	for i := range repo {
		if repo[i] == '/' {
			return repo[:i]
		}
	}
	return repo
}

// Bundle is a cosign v3 bundle of stmt signed by a GitHub certificate for
// b, with a Rekor entry and/or an RFC 3161 timestamp from the
// VirtualSigstore.
func (g *GitHubCA) Bundle(t testing.TB, b GitHubBuild, stmt []byte, withTlog, withTSA bool) []byte {
	t.Helper()
	leaf, priv := g.Leaf(t, b)
	out, err := virtualsig.KeylessBundleWith(g.KL.VS, leaf, priv, stmt, withTlog, withTSA)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
