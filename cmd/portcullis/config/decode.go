package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/internal/yamlfile"
	"github.com/portcullis-dev/portcullis/upstream"
)

// This file holds the decoders of the values only a config file has; the
// walk of the YAML node tree, and the decoders of plain strings, booleans
// and numbers, are package yamlfile's.

// section decodes a nested mapping, skipping it when its value is null (a
// key with nothing after it), as if the file had left it out.
func section(decode yamlfile.DecodeFunc) yamlfile.DecodeFunc {
	return func(d *yamlfile.Decoder, path string, n *yaml.Node) {
		if yamlfile.IsNull(n) {
			return
		}
		decode(d, path, n)
	}
}

// address decodes a host:port to listen on, such as "127.0.0.1:5050" or
// ":5050".
func address(p *string) yamlfile.DecodeFunc {
	return func(d *yamlfile.Decoder, path string, n *yaml.Node) {
		s, ok := d.Scalar(path, n, "a host:port")
		if !ok {
			return
		}
		if err := checkAddress(s); err != nil {
			d.ErrorAt(n.Line, path, "%v", err)
			return
		}
		*p = s
	}
}

func checkAddress(s string) error {
	const want = `want host:port such as "127.0.0.1:5050" or ":5050"`
	if s == "" {
		return fmt.Errorf("must not be empty (%s)", want)
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%s is not a host:port (%s)", yamlfile.Quote(s), want)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %s is not a number from 0 to 65535", yamlfile.Quote(port))
	}
	return nil
}

// oneOf decodes a string that must be one of values.
func oneOf(p *string, values []string) yamlfile.DecodeFunc {
	return func(d *yamlfile.Decoder, path string, n *yaml.Node) {
		want := "one of " + strings.Join(values, ", ")
		s, ok := d.Scalar(path, n, want)
		switch {
		case !ok:
		case !slices.Contains(values, s):
			d.ErrorAt(n.Line, path, "want %s, got %s", want, yamlfile.Quote(s))
		default:
			*p = s
		}
	}
}

// endpoint decodes an upstream endpoint URL.
func endpoint(p **url.URL) yamlfile.DecodeFunc {
	return func(d *yamlfile.Decoder, path string, n *yaml.Node) {
		s, ok := d.Scalar(path, n, "a URL")
		if !ok {
			return
		}
		u, err := parseEndpoint(s)
		if err != nil {
			d.ErrorAt(n.Line, path, "%v", err)
			return
		}
		*p = u
	}
}

// followHosts decodes an upstream's list of hosts to follow redirects and
// token realms to, each checked as the proxy parses it.
func followHosts(list *[]string) yamlfile.DecodeFunc {
	return func(d *yamlfile.Decoder, path string, n *yaml.Node) {
		d.List(path, n, func(path string, n *yaml.Node) {
			s, ok := d.Scalar(path, n, `a host such as "auth.docker.io"`)
			if !ok {
				return
			}
			if err := upstream.CheckFollowHost(s); err != nil {
				d.ErrorAt(n.Line, path, "%v", err)
				return
			}
			*list = append(*list, strings.ToLower(s))
		})
	}
}

// duration decodes a duration that must not be negative.
func duration(p *time.Duration) yamlfile.DecodeFunc {
	return yamlfile.DurationAtLeast(p, 0, "must not be negative")
}

// positiveDuration decodes a duration that must be greater than 0.
func positiveDuration(p *time.Duration) yamlfile.DecodeFunc {
	return yamlfile.DurationAtLeast(p, 1, "must be greater than 0")
}

// durationBetween decodes a duration from least to most.
func durationBetween(p *time.Duration, least, most time.Duration) yamlfile.DecodeFunc {
	return func(d *yamlfile.Decoder, path string, n *yaml.Node) {
		var v time.Duration
		yamlfile.DurationAtLeast(&v, least, fmt.Sprintf("must be at least %v", least))(d, path, n)
		switch {
		case v == 0: // refused above
		case v > most:
			d.ErrorAt(n.Line, path, "must be at most %v, got %s", most, yamlfile.Quote(n.Value))
		default:
			*p = v
		}
	}
}

// size decodes a positive size in bytes with a unit: "50GiB", "512MiB",
// "100B" (B, KiB, MiB, GiB, TiB), or a plain number of bytes.
func size(p *int64) yamlfile.DecodeFunc {
	return func(d *yamlfile.Decoder, path string, n *yaml.Node) {
		const want = `want a size such as "50GiB" (B, KiB, MiB, GiB or TiB)`
		if n.Kind != yaml.ScalarNode || yamlfile.IsNull(n) {
			d.ErrorAt(n.Line, path, "%s, got %s", want, yamlfile.Describe(n))
			return
		}
		v, err := parseSize(n.Value)
		if err != nil {
			d.ErrorAt(n.Line, path, "%s: %v", want, err)
			return
		}
		*p = v
	}
}

var sizeUnits = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

func parseSize(s string) (int64, error) {
	num, shift := strings.TrimSpace(s), uint(0)
	for _, u := range sizeUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, shift = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.shift
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is not a whole number with a unit", yamlfile.Quote(s))
	}
	if v <= 0 {
		return 0, fmt.Errorf("must be greater than 0, got %s", yamlfile.Quote(s))
	}
	if v > (1<<63-1)>>shift {
		return 0, fmt.Errorf("%s is too large", yamlfile.Quote(s))
	}
	return v << shift, nil
}
