// Package verifytest holds the fixtures the verify and gate tests share:
// signing keys of every supported type, a VirtualSigstore for keyless
// signatures, and ggcr's in-memory registry on loopback with helpers that
// push images, blobs, exact manifests, legacy .sig manifests and bundle
// referrers, read back through the proxy's own upstream client.
//
// Everything here is real: keys are generated, signatures are made by
// sigstore's signers and sigstore-go's VirtualSigstore, the registry is
// go-containerregistry's. It is for tests only and must not import verify
// (verify's internal tests import it).
package verifytest
