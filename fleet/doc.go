// Package fleet makes Portcullis replicas act as one, through Redis.
//
// [Store] is a [gate.VerdictStore] with the process's own
// [gate.MemoryStore] in front (L1) and Redis behind it: a verdict or grant
// one replica decides is found by the others, so a pull whose manifest
// went to one replica and whose layers go to another succeeds, and a
// refused image is refused everywhere. A warm request is an L1 hit and
// costs no round trip. It also leases decisions ([gate.Leaser]: one
// signature discovery for the fleet per digest), runs purges on every
// replica, announces policy reloads, and shares the decision log.
//
// Trust: anyone who can write to Redis could otherwise allow images, so
// every value and message is sealed with an HMAC ([Sealer]) bound to the
// Redis key it is stored under, and a verdict must also be the verdict of
// its key (revision, repository, digest and kind; see [gate.DecodeStored]).
// A value that fails either check is ignored and counted, never trusted.
// Redis holds no secrets.
//
// Redis failing fails open to the replica alone, never to an allow: every
// operation has a budget (Options.Timeout, 50 ms by default), after which the replica uses L1 and its
// own decisions, counts the failure, and reports itself degraded until
// Redis answers again.
package fleet
