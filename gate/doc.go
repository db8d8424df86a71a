// Package gate decides what the proxy may serve: the Gate, the Snapshot it
// decides under (a compiled policy and its trust roots), the verdict store
// with the grants verdicts make (VerdictStore; MemoryStore in process), and
// the gate's audit log and metrics.
//
// A Gate reads signatures through a verify.Reader (the upstream client the
// proxy serves from), has package verify find and check them, and applies
// the policy (package policy). It implements the proxy's Gate interface
// (CheckManifest, CheckBlob, CheckReferrers) without importing the proxy:
// a refusal is a *Refusal, which the proxy recognises by its Refused
// method, and any other error means no decision (fail closed). The rules it
// enforces, and why, are in docs/SECURITY.md.
//
// The verdict store is behind an interface whose methods take a context
// and return an error, so that a store shared between replicas (Redis) can
// fit, and so that a store failure fails closed.
package gate
