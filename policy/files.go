package policy

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"strings"

	"github.com/portcullis-dev/portcullis/internal/yamlfile"
)

// This file reads and checks the files a policy names, from the fs.FS
// given to Parse; the package opens nothing else.

// Size limits, so that naming the wrong file cannot exhaust memory.
const (
	maxKeyBytes  = 64 << 10
	maxRootBytes = 8 << 20
)

// trustedRootMediaType starts the mediaType of a Sigstore trusted_root.json.
const trustedRootMediaType = "application/vnd.dev.sigstore.trustedroot"

// read reads the file written as name for the setting at path, recording
// its bytes for the revision under path. On error it reports it and
// returns nil.
func (c *compiler) read(path, name string, limit int64) []byte {
	data, err := c.readFile(name, limit)
	if err != nil {
		c.Errorf(path, "cannot read %s: %v", yamlfile.Quote(name), err)
		return nil
	}
	c.files[path] = data
	return data
}

// readChecked is read, then check; nil and reported if either fails.
func (c *compiler) readChecked(path, name string, limit int64, check func([]byte) error) []byte {
	data := c.read(path, name, limit)
	if data == nil {
		return nil
	}
	if err := check(data); err != nil {
		c.Errorf(path, "%s: %v", yamlfile.Quote(name), err)
		return nil
	}
	return data
}

// readFile reads the regular file written as name in the policy, at most
// limit bytes. It checks the kind of file before opening it, as opening a
// named pipe would block. Errors leave out the name in c.fsys (unless it
// leads out of c.fsys), as the caller gives the name as written.
func (c *compiler) readFile(name string, limit int64) ([]byte, error) {
	p, err := c.resolve(name)
	if err != nil {
		return nil, err
	}
	if c.fsys == nil {
		return nil, errors.New("no files were given to read it from")
	}
	st, err := fs.Stat(c.fsys, p)
	if err != nil {
		return nil, unwrapPath(err)
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	f, err := c.fsys.Open(p)
	if err != nil {
		return nil, unwrapPath(err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, unwrapPath(err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// unwrapPath drops the path from an *fs.PathError.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// parsePublicKey parses a PEM "PUBLIC KEY" (PKIX) of a kind cosign signs
// with, returning it and its hint: base64(sha256(DER)).
func parsePublicKey(data []byte) (crypto.PublicKey, string, error) {
	block, rest := pem.Decode(data)
	switch {
	case block == nil:
		return nil, "", errors.New(`no PEM block found; want a "-----BEGIN PUBLIC KEY-----" block such as cosign.pub`)
	case strings.Contains(block.Type, "PRIVATE KEY"):
		return nil, "", fmt.Errorf("this is a private key (%q); give the public key (cosign public-key --key FILE)", block.Type)
	case block.Type != "PUBLIC KEY":
		return nil, "", fmt.Errorf("PEM block is %q; want \"PUBLIC KEY\" (PKIX SubjectPublicKeyInfo)", block.Type)
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, "", errors.New("holds more than one PEM block; give one key per authority")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "x509: ")
		if strings.HasPrefix(msg, "asn1:") {
			msg = "bad DER encoding"
		}
		return nil, "", fmt.Errorf("not a valid PKIX public key: %s", msg)
	}
	if err := checkKeyKind(pub); err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(block.Bytes)
	return pub, base64.StdEncoding.EncodeToString(sum[:]), nil
}

// checkKeyKind accepts ECDSA P-256/P-384/P-521, Ed25519 and RSA of at
// least 2048 bits.
func checkKeyKind(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("ECDSA curve %s is not supported; want P-256, P-384 or P-521", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 {
			return fmt.Errorf("RSA key has %d bits; want at least 2048", n)
		}
		return nil
	}
	return fmt.Errorf("%T keys are not supported; want ECDSA, Ed25519 or RSA", pub)
}

// checkTrustedRoot checks that data looks like a Sigstore trusted_root.json
// (package verify parses it).
func checkTrustedRoot(data []byte) error {
	var v struct {
		MediaType *string `json:"mediaType"`
	}
	if err := jsonObject(data, &v); err != nil {
		return err
	}
	switch {
	case v.MediaType == nil:
		return errors.New(`no "mediaType"; want a Sigstore trusted_root.json`)
	case !strings.HasPrefix(*v.MediaType, trustedRootMediaType):
		return fmt.Errorf("mediaType %s is not a Sigstore trusted root (%s+json;version=...)", yamlfile.Quote(*v.MediaType), trustedRootMediaType)
	}
	return nil
}

// checkTUFRoot checks that data looks like a TUF root.json.
func checkTUFRoot(data []byte) error {
	var v struct {
		Signed *struct {
			Type string `json:"_type"`
		} `json:"signed"`
	}
	if err := jsonObject(data, &v); err != nil {
		return err
	}
	if v.Signed == nil || v.Signed.Type != "root" {
		return errors.New(`not a TUF root.json (want "signed" with "_type": "root")`)
	}
	return nil
}

// jsonObject decodes data, which must be a JSON object, into v.
func jsonObject(data []byte, v any) error {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errors.New("not a JSON object")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("not valid JSON: %v", err)
	}
	return nil
}

// checkURL checks a TUF repository URL; "" is the public-good instance.
func checkURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%s is not an http(s) URL; want the TUF repository, such as \"https://tuf.internal/\" (or \"\" for the public-good instance)", yamlfile.Quote(s))
	}
	return nil
}
