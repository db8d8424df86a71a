// Package proxy is Portcullis's registry side: an http.Handler that serves the
// read half of the OCI distribution API from configured upstream registries,
// as a pull-through mirror for containerd, CRI-O/podman, skopeo and dockerd.
//
// What it does:
//   - routes each request to an upstream by containerd's ?ns= parameter, a
//     first path segment naming a configured registry (CRI-O/podman path
//     prefixes), or the default registry; nothing a client sends can make it
//     contact a host the configuration does not name;
//   - resolves a tag to a digest once per decision, fetches the manifest by
//     digest, hashes the bytes and serves exactly those bytes, unchanged;
//   - asks a Gate about every manifest (by digest, with its bytes) and every
//     blob before a byte or header of it is served; the Gate is where the
//     signature verification of package verify plugs in;
//   - streams blobs without holding them, hashing full reads as they pass and
//     aborting the connection when the bytes do not match the digest.
//
// What it is not: it holds no cryptography and no policy (see packages verify
// and policy), it never writes to an upstream (writes get 405 UNSUPPORTED),
// and it keeps no disk cache: manifests are cached in memory, blobs stream.
//
// The protocol it speaks: https://github.com/opencontainers/distribution-spec/blob/main/spec.md
package proxy
