// Package oci holds the registry types and name rules every other package
// shares: Repository, the one copy of registry-name and Docker Hub
// normalisation, and digest parsing. It is a pure leaf: it does no I/O and
// imports nothing of this module.
package oci
