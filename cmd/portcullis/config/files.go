package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/portcullis-dev/portcullis/internal/yamlfile"
)

// maxPasswordBytes bounds what is read from a password file, so that
// naming the wrong file cannot exhaust memory.
const maxPasswordBytes = 64 << 10

// fileSetting is a setting that names a file.
type fileSetting struct {
	path     string  // field path, for messages
	file     *string // the setting; made absolute in place
	password *string // when not nil, the file's content is read into it as a password
	key      *[]byte // when not nil, the file's content is read into it as a key
}

// fileSettings lists every setting of c that names a file. A new setting
// that names a file must be added here so that it is resolved and checked.
func fileSettings(c *Config) []fileSetting {
	fs := []fileSetting{{path: "policyFile", file: &c.PolicyFile}}
	if t := c.TLS; t != nil {
		fs = append(fs,
			fileSetting{path: "tls.certFile", file: &t.CertFile},
			fileSetting{path: "tls.keyFile", file: &t.KeyFile},
			fileSetting{path: "tls.clientCAFile", file: &t.ClientCAFile},
		)
	}
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		path := fmt.Sprintf("upstreams[%d]", i)
		fs = append(fs, fileSetting{path: path + ".caFile", file: &u.CAFile})
		if a := u.Auth; a != nil {
			fs = append(fs, fileSetting{path: path + ".auth.passwordFile", file: &a.PasswordFile, password: &a.password})
		}
	}
	if rd := c.Redis; rd != nil {
		fs = append(fs,
			fileSetting{path: "redis.passwordFile", file: &rd.PasswordFile, password: &rd.password},
			fileSetting{path: "redis.hmacKeyFile", file: &rd.HMACKeyFile, key: &rd.hmacKey})
		if t := rd.TLS; t != nil {
			fs = append(fs,
				fileSetting{path: "redis.tls.caFile", file: &t.CAFile},
				fileSetting{path: "redis.tls.certFile", file: &t.CertFile},
				fileSetting{path: "redis.tls.keyFile", file: &t.KeyFile})
		}
	}
	return fs
}

// checkFiles makes every file setting of c absolute, relative to dir,
// checks that each names a readable regular file, and reads passwords. A
// file that does not exist or that this user may not read is reported with
// severity absent (Warning for [Lint]); other problems are errors.
func checkFiles(c *Config, dir string, r *yamlfile.Report, absent yamlfile.Severity) {
	for _, f := range fileSettings(c) {
		if *f.file == "" {
			continue // not set, or empty and reported as such
		}
		*f.file = absolute(dir, *f.file)
		var err error
		switch {
		case f.password != nil:
			*f.password, err = readPassword(*f.file)
		case f.key != nil:
			*f.key, err = readKey(*f.file)
		default:
			err = checkReadable(*f.file)
		}
		switch {
		case err == nil:
		case absent == yamlfile.Warning && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)):
			r.Warnf(f.path, "%v (not checked here: it must be readable where portcullis runs)", err)
		default:
			r.Errorf(f.path, "%v", err)
		}
	}
}

// absolute returns p if it is absolute, else p relative to dir.
func absolute(dir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

// checkReadable reports whether p is a regular file that can be opened for
// reading. It checks the kind of file before opening it, as opening a named
// pipe would block.
func checkReadable(p string) error {
	f, err := openRegular(p)
	if err != nil {
		return err
	}
	return f.Close()
}

func openRegular(p string) (*os.File, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	return os.Open(p)
}

// readKey reads the key in the file p: its whole content less trailing
// white space, at least MinHMACKeyBytes of it.
func readKey(p string) ([]byte, error) {
	pw, err := readPassword(p)
	if err != nil {
		return nil, err
	}
	k := []byte(strings.TrimRight(pw, " \t\r\n"))
	if len(k) < MinHMACKeyBytes {
		return nil, fmt.Errorf("%s holds %d bytes; an HMAC key needs at least %d (make one with: head -c 32 /dev/urandom | base64 > %s)",
			p, len(k), MinHMACKeyBytes, filepath.Base(p))
	}
	return k, nil
}

// readPassword reads the password in the file p: its whole content less
// one trailing "\n" or "\r\n". An empty password is an error.
func readPassword(p string) (string, error) {
	f, err := openRegular(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPasswordBytes+1))
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if len(data) > maxPasswordBytes {
		return "", fmt.Errorf("password file %s is larger than %d bytes", p, maxPasswordBytes)
	}
	pw := string(data)
	if s, ok := strings.CutSuffix(pw, "\r\n"); ok {
		pw = s
	} else {
		pw = strings.TrimSuffix(pw, "\n")
	}
	if pw == "" {
		return "", fmt.Errorf("password file %s is empty", p)
	}
	return pw, nil
}
