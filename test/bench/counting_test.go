package main

import (
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/v2/", reqOther},
		{"/v2/acme/app/manifests/v1", reqManifest},
		{"/v2/acme/app/manifests/sha256:ab12", reqManifest},
		{"/v2/acme/app/manifests/sha256-ab12", reqReferrersTag},
		{"/v2/acme/app/manifests/sha256-ab12.sig", reqSigTag},
		{"/v2/acme/app/referrers/sha256:ab12", reqReferrers},
		{"/v2/acme/app/blobs/sha256:ab12", reqBlob},
	} {
		if got := classify(tc.path); got != tc.want {
			t.Errorf("classify(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

// TestSequential checks the critical-path count and the busy time on the
// shape of a cold GET by tag of a bundle-signed image: the tag, three
// lookups at once, the bundle manifest, the bundle blob.
func TestSequential(t *testing.T) {
	t0 := time.Unix(0, 0)
	at := func(kind string, from, to int) call {
		return call{kind: kind, start: t0.Add(time.Duration(from) * time.Millisecond), end: t0.Add(time.Duration(to) * time.Millisecond)}
	}
	for _, tc := range []struct {
		Description string
		Calls       []call
		Want        int
		WantBusy    time.Duration
	}{
		{"none", nil, 0, 0},
		{"one", []call{at(reqManifest, 0, 2)}, 1, 2 * time.Millisecond},
		{"cold by tag, bundle", []call{
			at(reqManifest, 0, 1),
			at(reqReferrers, 2, 3), at(reqReferrersTag, 2, 4), at(reqSigTag, 2, 5),
			at(reqManifest, 6, 7), at(reqBlob, 8, 9),
		}, 4, 6 * time.Millisecond},
		{"a late start still overlapping counts once", []call{at(reqReferrers, 0, 4), at(reqSigTag, 3, 5)}, 1, 5 * time.Millisecond},
		{"back to back", []call{at(reqManifest, 0, 1), at(reqManifest, 1, 2)}, 2, 2 * time.Millisecond},
	} {
		t.Run(tc.Description, func(t *testing.T) {
			if got := sequential(tc.Calls); got != tc.Want {
				t.Errorf("sequential = %d, want %d", got, tc.Want)
			}
			if got := busy(tc.Calls); got != tc.WantBusy {
				t.Errorf("busy = %v, want %v", got, tc.WantBusy)
			}
		})
	}
}
