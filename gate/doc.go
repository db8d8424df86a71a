// Package gate joins the proxy and the verification gate: Checker is the
// proxy.Gate that decides with a verify.Gate (the gate reads signatures
// through the upstream client, as the proxy serves from it).
//
// It is the first room of the gate package the house redesign describes
// (docs/ARCHITECTURE.md): the Gate, its verdict store and the reloader
// move here from verify and cmd/portcullis next.
package gate
