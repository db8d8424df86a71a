// Package e2e pulls images through a built portcullis binary with real
// clients: crane, skopeo, podman and containerd, configured from the files in
// deploy/. The upstreams are CNCF distribution registries (`registry serve`);
// everything listens on 127.0.0.1 only.
//
// The tests are behind the e2e build tag and need the pinned tools and the
// Debian packages that `make tools deps` installs:
//
//	make tools deps e2e
//
// A test whose client is missing is skipped, or fails when CI=true.
// PORTCULLIS_E2E_DIRECT=1 points the clients straight at the upstream
// registry instead of the proxy (tests of proxy-only behaviour are skipped);
// it checks the client setup on a machine without a working proxy.
//
// The gated tests (gated_*_test.go) start proxies of their own with a policy
// file, in front of the same upstreams, and check the verification gate with
// the same clients: images signed in-process (package verify/signing) are
// served, unsigned ones refused with 403 DENIED, and every decision logged.
// Regressions of gate bugs found here, and of the gate-integrity defects
// (decoys pushed with cosign, pulls with crane and podman), are in
// gated_regressions_test.go.
//
// It is not the place for proxy unit tests, which sit beside the code.
package e2e
