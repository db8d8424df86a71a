// Package upstream is the registry client of the proxy and the gate: the
// only code that talks to upstream registries.
//
// A Client holds, per configured registry (Config), one connection pool
// behind the host rules (hosts.go: only the endpoint and the followHosts a
// redirect or token realm may lead to), one ping for the registry's auth
// challenge, and one authenticated transport per repository. On top of
// them it keeps the tag and manifest caches (bounded, in memory), shares
// concurrent fetches of the same thing (singleflight, on a context no
// caller's cancellation ends, bounded by the upstream timeout), reads
// referrers with the fallback tag, and opens and stats blobs.
//
// Every manifest it returns is hashed, and a manifest asked for by digest
// (or a tag whose upstream claimed a digest) is checked against it. Every
// failure is an *Error whose Kind says what happened (NotFound, Unauthorized,
// RateLimited, Unavailable, Timeout, BadResponse, DigestMismatch,
// RangeNotSatisfiable) and whose Message is safe to show a client. It
// knows nothing of HTTP serving or of policy: the proxy maps Kinds to wire
// codes, and the gate reads signatures through the same Client (it
// implements verify.Reader).
//
// The content store (an on-disk cache of verified content) is meant to
// decorate this Client.
package upstream
