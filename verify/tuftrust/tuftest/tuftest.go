// Package tuftest generates a TUF repository and serves it on loopback,
// for tests of TUF-distributed Sigstore trusted roots: one ed25519 key per
// top-level role, consistent snapshots, targets by hash, like the
// public-good repository's layout.
package tuftest

import (
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/examples/repository/repository"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Repo is a TUF repository the test generates and serves on loopback:
// one key per top-level role, consistent snapshots, targets by hash.
type Repo struct {
	t       testing.TB
	mu      sync.Mutex
	keys    map[string]ed25519.PrivateKey
	roles   *repository.Type
	targets map[string][]byte // "<sha256>.<name>" -> content
	srv     *httptest.Server
}

func NewRepo(t testing.TB) *Repo {
	t.Helper()
	r := &Repo{t: t, keys: map[string]ed25519.PrivateKey{}, roles: repository.New(), targets: map[string][]byte{}}
	expires := time.Now().AddDate(0, 0, 7).UTC()
	r.roles.SetTargets(metadata.TARGETS, metadata.Targets(expires))
	r.roles.SetSnapshot(metadata.Snapshot(expires))
	r.roles.SetTimestamp(metadata.Timestamp(expires))
	r.roles.SetRoot(metadata.Root(expires))
	for _, role := range metadata.TOP_LEVEL_ROLE_NAMES {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		r.keys[role] = priv
		key, err := metadata.KeyFromPublicKey(priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.roles.Root().Signed.AddKey(key, role); err != nil {
			t.Fatal(err)
		}
	}
	r.sign(metadata.ROOT)
	r.sign(metadata.TARGETS)
	r.sign(metadata.SNAPSHOT)
	r.sign(metadata.TIMESTAMP)
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *Repo) sign(role string) {
	signer, err := signature.LoadSigner(r.keys[role], crypto.Hash(0))
	if err != nil {
		r.t.Fatal(err)
	}
	switch role {
	case metadata.ROOT:
		r.roles.Root().ClearSignatures()
		_, err = r.roles.Root().Sign(signer)
	case metadata.TARGETS:
		r.roles.Targets(metadata.TARGETS).ClearSignatures()
		_, err = r.roles.Targets(metadata.TARGETS).Sign(signer)
	case metadata.SNAPSHOT:
		r.roles.Snapshot().ClearSignatures()
		_, err = r.roles.Snapshot().Sign(signer)
	case metadata.TIMESTAMP:
		r.roles.Timestamp().ClearSignatures()
		_, err = r.roles.Timestamp().Sign(signer)
	}
	if err != nil {
		r.t.Fatal(err)
	}
}

// SetTarget publishes content as target name: new targets, snapshot and
// timestamp versions, signed.
func (r *Repo) SetTarget(name string, content []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sum := sha256.Sum256(content)
	r.targets[fmt.Sprintf("%x.%s", sum, name)] = content
	path := filepath.Join(r.t.TempDir(), name)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		r.t.Fatal(err)
	}
	tf, err := metadata.TargetFile().FromFile(path, "sha256")
	if err != nil {
		r.t.Fatal(err)
	}
	targets := r.roles.Targets(metadata.TARGETS)
	targets.Signed.Targets[name] = tf
	targets.Signed.Version++
	r.roles.Snapshot().Signed.Meta["targets.json"] = metadata.MetaFile(targets.Signed.Version)
	r.roles.Snapshot().Signed.Version++
	r.roles.Timestamp().Signed.Meta["snapshot.json"] = metadata.MetaFile(r.roles.Snapshot().Signed.Version)
	r.roles.Timestamp().Signed.Version++
	r.sign(metadata.TARGETS)
	r.sign(metadata.SNAPSHOT)
	r.sign(metadata.TIMESTAMP)
}

func (r *Repo) RootJSON() []byte {
	b, err := r.roles.Root().ToBytes(false)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

var versioned = regexp.MustCompile(`^/(\d+)\.(root|snapshot|targets)\.json$`)

func (r *Repo) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b []byte
	var err error
	switch m := versioned.FindStringSubmatch(req.URL.Path); {
	case req.URL.Path == "/timestamp.json":
		b, err = r.roles.Timestamp().ToBytes(false)
	case len(m) == 3:
		v, _ := strconv.ParseInt(m[1], 10, 64)
		switch m[2] {
		case "root":
			if v != r.roles.Root().Signed.Version {
				http.NotFound(w, req)
				return
			}
			b, err = r.roles.Root().ToBytes(false)
		case "snapshot":
			b, err = r.roles.Snapshot().ToBytes(false)
		case "targets":
			b, err = r.roles.Targets(metadata.TARGETS).ToBytes(false)
		}
	default:
		name, ok := stripPrefix(req.URL.Path, "/targets/")
		if b, ok = r.targets[name]; !ok {
			http.NotFound(w, req)
			return
		}
	}
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	_, _ = w.Write(b)
}

func stripPrefix(s, p string) (string, bool) {
	if len(s) < len(p) || s[:len(p)] != p {
		return "", false
	}
	return s[len(p):], true
}

// URL is where the repository is served.
func (r *Repo) URL() string { return r.srv.URL }

// Close stops serving the repository (to test a repository that is down).
func (r *Repo) Close() { r.srv.Close() }
