// Command mkimage builds the Portcullis container image, reproducibly, as
// an OCI image layout directory (no container daemon, no registry, no base
// image pulled from anywhere). `make image` runs it; it writes bin/image/.
//
// The image is linux/<arch of the binary> and holds two layers:
//
//   - a base: /etc/ssl/certs/ca-certificates.crt, the Mozilla roots of
//     Debian's ca-certificates package (-ca: the package's own
//     /usr/share/ca-certificates/mozilla/*.crt, concatenated in the order
//     update-ca-certificates uses, so that no CA a machine added locally
//     ends up in the image), /etc/passwd and /etc/group with root, nobody
//     and nonroot (65532:65532), /tmp (1777), /home/nonroot, and
//     /var/lib/portcullis (the default cache.dir, owned by nonroot);
//   - the statically linked portcullis binary at /usr/local/bin/portcullis,
//     owned by root, mode 0755.
//
// It runs as User 65532:65532 with Entrypoint /usr/local/bin/portcullis and
// Cmd serve --config /etc/portcullis/config.yaml; the config is not in the
// image: mount it there (with the policy and trust files it names). The
// config must listen on 0.0.0.0 (listen, adminListen): the defaults,
// 127.0.0.1, cannot be reached from outside the container. Ports 5050 and
// 9090 (the example config's listen and adminListen) are exposed.
//
// Reproducible: the same binary, CA bundle, flags and Go toolchain give the
// same image digest. Every file has the -created time (the commit time by
// default) as its mtime, uid and gid are fixed, the tar entries are sorted
// and carry no user or group names, the gzip header has no time or name
// (compress/gzip's defaults, as go-containerregistry's tarball layers use
// them; its output depends on the Go version only), and the config's
// created time is -created. The binary must be reproducible too: `make
// image` builds it with CGO_ENABLED=0, -trimpath, -buildvcs=true and
// -ldflags='-s -w', and no build date.
//
// The labels (and manifest annotations) name the source, the revision and
// version (by default those the binary's build information records), the
// created time, the ca-certificates version and the Go version. The image
// (config plus compressed layers) must fit in -max-size bytes, 40 MB by
// default, or nothing is written.
//
// Usage:
//
//	mkimage -binary bin/image-build/portcullis -out bin/image \
//		-ca /usr/share/ca-certificates/mozilla -ca-version "$(dpkg-query -W -f='${Version}' ca-certificates)" \
//		[-created UNIX_SECONDS] [-revision COMMIT] [-version VERSION]
//
// To use the layout (an OCI image layout directory, the only image in it):
//
//	skopeo inspect oci:bin/image
//	skopeo copy oci:bin/image docker://registry.example/portcullis:TAG
//	crane push bin/image registry.example/portcullis:TAG
//	podman load -i bin/image   # loaded as localhost/bin/image:latest
//	skopeo copy oci:bin/image docker-archive:portcullis.tar:portcullis:TAG && docker load -i portcullis.tar
//
// and run it with the config directory mounted, e.g.
//
//	podman run -v ./portcullis:/etc/portcullis:ro -v portcullis-cache:/var/lib/portcullis \
//		-p 5050:5050 -p 127.0.0.1:9090:9090 portcullis:TAG
package main
