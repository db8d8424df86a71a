package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/verify"
)

// This file is what the gate needs of a VerdictStore shared by replicas
// (package fleet): one decision per key for the whole fleet, purges run
// for other replicas, and the encoding of a stored verdict. Such a store
// authenticates what it reads; the gate checks, on decoding, that a
// verdict is for the key it was stored under (the key holds the
// revision, registry, repository, digest and what it was judged as).

// Leaser is a VerdictStore that lets several processes make one decision
// per key: one holds the key's lease and decides, the others wait for its
// verdict.
type Leaser interface {
	// Lease tries to take the decision of key for ttl, renewed until
	// release is called. held is false while another process holds it.
	Lease(ctx context.Context, key string, ttl time.Duration) (held bool, release func(), err error)
	// Await waits until a verdict under key other than old (nil: any) is
	// published (returned), the lease is released without one, or until
	// passes (nil, nil).
	Await(ctx context.Context, key string, old *Stored, until time.Time) (*Stored, error)
}

// ErrSharedUnavailable is what a shared store's Granting returns when it
// holds no usable grant itself and cannot ask the others: whether another
// replica granted the digest is unknown, so the gate makes no decision
// (503), rather than refuse what may be allowed (403) or serve it.
var ErrSharedUnavailable = errors.New("the verdicts shared with other replicas cannot be read")

// PurgeCounter is a VerdictStore that also purges for other replicas: it
// counts those purges, and a verdict decided across one is not stored.
type PurgeCounter interface {
	Purges() uint64
}

// fleetTurn waits for the fleet's decision of key when another replica
// holds its lease, and looks for one published just before this replica
// took the lease: it returns that verdict (never old, the stored verdict
// this decision is to replace), or nil and the release of a lease this
// replica now holds (a no-op when the store has no leases, the lease
// cannot be had, or the wait outlasted decisionTimeout: this replica then
// decides itself).
func (g *Gate) fleetTurn(ctx context.Context, key string, old *Stored) (*Stored, func()) {
	l, ok := g.store.(Leaser)
	if !ok {
		return nil, func() {}
	}
	deadline := g.o.now().Add(g.o.decisionTimeout)
	for {
		held, release, err := l.Lease(ctx, key, g.o.decisionTimeout)
		if err != nil {
			return nil, func() {} // the store said why (logged, counted); decide here
		}
		if held {
			// Its last holder may have published a verdict and released
			// the lease between this replica's lookup and now: use that
			// rather than decide again (asked of the shared store itself,
			// not of this replica's memory, which may hold old).
			if s, err := l.Await(ctx, key, old, g.o.now()); err == nil && s != nil {
				release()
				return s, func() {}
			}
			return nil, release
		}
		s, err := l.Await(ctx, key, old, deadline)
		switch {
		case err != nil:
			return nil, func() {}
		case s != nil && g.o.now().Before(s.Fresh):
			return s, func() {}
		case !g.o.now().Before(deadline) || ctx.Err() != nil:
			return nil, func() {}
		}
		// The lease was released without a verdict (its holder failed,
		// or died and the lease expired): take it.
	}
}

// storedWire is a Stored as encoded for a shared store.
type storedWire struct {
	Key       string      `json:"key"`
	Registry  string      `json:"registry"`
	Name      string      `json:"name"`
	Digest    string      `json:"digest"`
	Reference string      `json:"reference"`
	Kind      string      `json:"kind,omitempty"`
	Subject   string      `json:"subject,omitempty"`
	Judgement *Judgement  `json:"judgement"`
	Fresh     time.Time   `json:"fresh"`
	Expires   time.Time   `json:"expires"`
	Decided   time.Time   `json:"decided"`
	Until     time.Time   `json:"until,omitzero"`
	Grants    []grantWire `json:"grants,omitempty"`
}

type grantWire struct {
	Kind     GrantKind `json:"k"`
	Digest   string    `json:"d"`
	Size     int64     `json:"s,omitempty"`
	Registry string    `json:"r,omitempty"` // a GrantSourced's repository (one of Stored.Sources)
	Name     string    `json:"n,omitempty"`
}

// EncodeStored is s as bytes for a shared store.
func EncodeStored(s *Stored) ([]byte, error) {
	w := storedWire{Key: s.Key, Registry: s.Repo.Registry, Name: s.Repo.Name, Digest: s.Digest.String(),
		Reference: s.Reference, Kind: string(s.as.kind), Judgement: s.Judgement, Fresh: s.Fresh, Expires: s.Expires, Decided: s.Decided, Until: s.Until()}
	if s.as.material() {
		w.Subject = s.as.subject.String()
	}
	for _, gr := range s.Grants {
		if gr.Kind == GrantSourced {
			return nil, fmt.Errorf("encoding the verdict of %s: a GrantSourced of %s among its Grants (it belongs in Sources)", s.Digest, gr.Digest)
		}
		w.Grants = append(w.Grants, grantWire{Kind: gr.Kind, Digest: gr.Digest.String(), Size: gr.Size})
	}
	for _, r := range s.Sources() {
		w.Grants = append(w.Grants, grantWire{Kind: GrantSourced, Digest: s.Digest.String(), Registry: r.Registry, Name: r.Name})
	}
	return json.Marshal(w)
}

// ErrWrongKey says a decoded verdict is not the verdict of the key it was
// stored under: another revision, repository, digest or judgement kind.
var ErrWrongKey = errors.New("the verdict is not for its key")

// DecodeStored decodes a verdict that EncodeStored made and checks that it
// is the verdict of key: its key is computed again from its own revision,
// repository, digest and kind, and must be key.
func DecodeStored(b []byte, key string) (*Stored, error) {
	var w storedWire
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("decoding a stored verdict: %w", err)
	}
	if w.Judgement == nil {
		return nil, errors.New("decoding a stored verdict: no judgement")
	}
	d, err := oci.ParseDigest(w.Digest)
	if err != nil {
		return nil, fmt.Errorf("decoding a stored verdict: %w", err)
	}
	as := judgeAs{kind: materialKind(w.Kind)}
	switch as.kind {
	case kindImage:
	case kindSig, kindAtt, kindSBOM, kindFallback, kindReferrer, kindReferrers:
		if as.subject, err = oci.ParseDigest(w.Subject); err != nil {
			return nil, fmt.Errorf("decoding a stored verdict: subject: %w", err)
		}
	default:
		return nil, fmt.Errorf("decoding a stored verdict: unknown kind %q", w.Kind)
	}
	repo := verify.Repository{Registry: w.Registry, Name: w.Name}
	if w.Key != key || as.key(w.Judgement.Revision, repo, d) != key {
		return nil, ErrWrongKey
	}
	s := &Stored{Key: key, Repo: repo, Digest: d, Reference: w.Reference, as: as, Judgement: w.Judgement,
		Fresh: w.Fresh, Expires: w.Expires, Decided: w.Decided}
	s.SetUntil(w.Until)
	for _, gw := range w.Grants {
		gd, err := oci.ParseDigest(gw.Digest)
		if err != nil || gw.Kind < GrantChild || gw.Kind > GrantSourced || (gw.Name != "") != (gw.Kind == GrantSourced) ||
			(gw.Kind == GrantSourced && gd != d) {
			return nil, fmt.Errorf("decoding a stored verdict: grant %q of kind %d", gw.Digest, gw.Kind)
		}
		if gw.Kind == GrantSourced {
			s.AddSource(verify.Repository{Registry: gw.Registry, Name: gw.Name})
			continue
		}
		s.Grants = append(s.Grants, Grant{Kind: gw.Kind, Digest: gd, Size: gw.Size})
	}
	return s, nil
}

// ImageKey is the store key of the verdict on d in repo judged as an
// image under revision rev.
func ImageKey(rev string, repo verify.Repository, d v1.Hash) string {
	return judgeAs{}.key(rev, repo, d)
}

// GrantIndexKey names the grant of d with kind in repo, for a shared
// store's index from granted digests to the verdicts granting them.
func GrantIndexKey(repo verify.Repository, d v1.Hash, kind GrantKind) string {
	return fmt.Sprintf("%s/%s@%s|%d", repo.Registry, repo.Name, d, kind)
}
