package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	o := options{}
	flag.StringVar(&o.Binary, "binary", "", "the statically linked portcullis binary (required)")
	flag.StringVar(&o.Out, "out", "bin/image", "OCI image layout directory to write (a previous layout there is replaced)")
	flag.StringVar(&o.CA, "ca", "/usr/share/ca-certificates/mozilla", "PEM bundle, or a directory whose *.crt files are bundled in name order")
	flag.StringVar(&o.CAVersion, "ca-version", "", "version of the Debian ca-certificates package the -ca files come from (required; recorded in the labels)")
	flag.StringVar(&o.Source, "source", "https://github.com/portcullis-dev/portcullis", "org.opencontainers.image.source")
	flag.StringVar(&o.Revision, "revision", "", "commit built (default: the binary's vcs.revision; must match it)")
	flag.StringVar(&o.Version, "version", "", "version label (default: the binary's module version)")
	flag.Int64Var(&o.Created, "created", -1, "created time and file mtimes, Unix seconds (default: the binary's vcs.time)")
	flag.Int64Var(&o.MaxSize, "max-size", 40_000_000, "largest image allowed, bytes of config plus compressed layers")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "mkimage: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	o.Warn = func(msg string) { fmt.Fprintln(os.Stderr, "mkimage: warning:", msg) }

	r, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	fmt.Printf("mkimage: wrote %s: %s image %s\n", o.Out, r.Platform, r.Digest)
	fmt.Printf("mkimage: size %d bytes (config %d + compressed layers %d), limit %d\n",
		r.Size, r.ConfigSize, r.Size-r.ConfigSize, o.MaxSize)
	fmt.Printf("mkimage: revision %s, version %s, created %s, %d CA certificates (ca-certificates %s)\n",
		r.Revision, r.Version, r.Created.Format("2006-01-02T15:04:05Z"), r.Certificates, o.CAVersion)
}
