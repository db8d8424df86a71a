// Package store is the verified content store: what Portcullis keeps on
// disk so that warm pulls touch no upstream, so that it keeps serving when
// the upstream is down, and so that a restart forgets nothing.
//
// It holds only content the gate let through: manifests allowed as images
// (exact bytes and media type, by repository and digest), the tags that
// resolved to them, and the blobs those manifests list, whose bytes hashed
// to their digest as they landed. A refused image leaves nothing here. The
// store never decides anything itself: whatever it returns is still checked
// by the gate on every request, under the policy of the moment.
//
// Layout under the directory (all writes go through tmp/ and a rename, so
// a crash never leaves a partial object in place):
//
//	LOCK                                       the holder (flock'ed while open)
//	tmp/                                       fetches in progress (their sizes count against the limit); emptied on Open
//	blobs/<alg>/<hex>                          blobs, shared by every repository
//	repos/<registry>/<name>/_manifests/<alg>/<hex>   media type, newline, the bytes
//	repos/<registry>/<name>/_tags/<tag>@<accept>     a tag's resolution (JSON)
//	repos/<registry>/<name>/_blobs/<alg>/<hex>       this repository may read that blob
//	repos/<registry>/<name>/_material/<alg>/<hex>/   an allowed image's signature material
//	    .../from/<registry>/<name>/                  the same, read from a signaturesFrom source
//
// A blob is stored once for every repository, but served from the store in
// a repository only if it was fetched for it, or its upstream says it has
// it (the link under _blobs/): the store never widens what a repository's
// upstream would serve.
//
// An object's modification time is its last use, set by the store itself
// (at most once a minute per object), never the file's access time.
//
// Client decorates the upstream client: it answers from the store what the
// store has, fetches the rest from the upstream once per blob however many
// clients ask (streaming the bytes to all of them as they land), keeps what
// the proxy says the gate allowed, and drops what it says the gate refused.
// Reader is the gate's side: signature material from the store, and from
// the stored record while the upstream cannot answer (material.go).
package store
