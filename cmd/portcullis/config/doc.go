// Package config loads and validates the administrator's YAML configuration
// file for "portcullis serve --config FILE".
//
// [Load] reads a file; [Parse] does the same work on bytes already in memory.
// Both return a [Config] that is ready to use: defaults are filled in for
// settings the file leaves out, registry names are normalised (Docker Hub's
// aliases all become "docker.io", see [NormalizeRegistry]), upstream endpoints
// are parsed and defaulted, relative paths are made absolute against the
// directory of the config file, every file the config names has been checked
// to be a readable regular file, and upstream passwords have been read from
// their password files.
//
// When the file is wrong, the error lists every problem found, sorted by
// line, one per line, each as "FILE:LINE: FIELD: MESSAGE", for example:
//
//	config.yaml:3: unknown field "listne" (did you mean "listen"?)
//	config.yaml:7: upstreams[0].endpoint: scheme "ftp" not supported (want http or https)
//
// so an administrator can fix the whole file in one go. [Lint], behind
// "portcullis config lint", returns the same problems as a list, but
// reports a named file that is missing as a warning unless asked to be
// strict, as a config is often checked away from the machine it serves on.
//
// This package is not the policy format (it only locates the policy file),
// and it does not open listeners, parse certificates or keys, watch or reload
// the file, or read settings from flags or environment variables.
//
// # Adding a setting
//
//  1. Add the field to [Config] (or [TLS], [Upstream], [Auth]) in config.go,
//     with a comment giving its YAML name and default, and put the default
//     in defaults().
//  2. Add a row for its YAML name to the field table in load.go; the row's
//     decoder (package internal/yamlfile's, or one in decode.go) checks the
//     value's type and simple range.
//  3. If it names a file, list it in fileSettings in files.go; if it must
//     agree with other settings, check that in validate.go.
package config
