package gate

import (
	"bytes"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/verify"
)

// TestStoredWire: a verdict with grants, an Until and Sources decodes as
// it was encoded; a sourced grant naming another digest than the
// verdict's, or a repository on a grant of another kind, is refused.
func TestStoredWire(t *testing.T) {
	repo := verify.Repository{Registry: "r.example", Name: "acme/app"}
	src := verify.Repository{Registry: "r.example", Name: "signatures/app"}
	d, _ := oci.Digest("sha256", []byte("image"))
	layer, _ := oci.Digest("sha256", []byte("layer"))
	other, _ := oci.Digest("sha256", []byte("other"))
	now := time.Now().UTC().Round(time.Millisecond)
	s := &Stored{Key: ImageKey("rev1", repo, d), Repo: repo, Digest: d, Reference: "v1",
		Judgement: &Judgement{Decision: Allow, Cause: CausePolicy, Revision: "rev1"},
		Fresh:     now.Add(time.Minute), Expires: now.Add(2 * time.Minute), Decided: now,
		Grants: []Grant{{Kind: GrantBlob, Digest: layer, Size: 7}}}
	s.SetUntil(now.Add(90 * time.Second))
	s.AddSource(src)
	b, err := EncodeStored(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeStored(b, s.Key)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Until().Equal(s.Until()) || len(got.Sources()) != 1 || got.Sources()[0] != src || len(got.Grants) != 1 || got.Grants[0] != s.Grants[0] {
		t.Errorf("decoded %+v (until %v, sources %v), want %+v", got, got.Until(), got.Sources(), s)
	}
	if !got.HasGrant(src, d, GrantSourced) || got.HasGrant(repo, d, GrantSourced) || !got.HasGrant(repo, layer, GrantBlob) || got.HasGrant(src, layer, GrantBlob) {
		t.Error("HasGrant does not follow the grants' repositories")
	}
	for name, forged := range map[string][]byte{
		"sourced grant of another digest": bytes.Replace(b, []byte(`"k":`+itoa(GrantSourced)+`,"d":"`+d.String()), []byte(`"k":`+itoa(GrantSourced)+`,"d":"`+other.String()), 1),
		"repository on a blob grant":      bytes.Replace(b, []byte(`"s":7`), []byte(`"s":7,"r":"r.example","n":"signatures/app"`), 1),
	} {
		if bytes.Equal(forged, b) {
			t.Fatalf("%s: the encoding changed shape: %s", name, b)
		}
		if v, err := DecodeStored(forged, s.Key); err == nil {
			t.Errorf("%s: decoded %+v", name, v)
		}
	}
	s.Grants = append(s.Grants, Grant{Kind: GrantSourced, Digest: d})
	if b, err := EncodeStored(s); err == nil {
		t.Errorf("a GrantSourced among Grants encoded: %s", b)
	}
}

// TestStoredSize: a verdict's size is the verdict cache's cost per entry
// (docs/benchmarks.md, verdict-cache); 256 B is an allocation class of its
// own, and a field more moves it to 288. A field that must be added goes
// behind Stored.rare, or the benchmark is measured again.
func TestStoredSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the sizes are a 64-bit platform's")
	}
	if got := unsafe.Sizeof(Stored{}); got != 256 || unsafe.Sizeof(Grant{}) != 48 {
		t.Errorf("Stored is %d B and Grant %d B, want 256 and 48 (on 64-bit platforms)", got, unsafe.Sizeof(Grant{}))
	}
}

func itoa(k GrantKind) string { return strconv.Itoa(int(k)) }
