// Package gate joins the proxy and the verification gate: Late is the
// proxy.Gate backed by a verify.Gate bound after the proxy exists, and
// Reader is the verify.Reader served by the proxy's upstream client.
//
// It is the first room of the gate package the house redesign describes
// (docs/ARCHITECTURE.md): the Gate, its verdict store and the reloader
// move here from verify and cmd/portcullis next.
package gate
