package fleet

import (
	"bytes"

	"github.com/portcullis-dev/portcullis/policy"
)

func policyPattern(s string) (*policy.ImagePattern, error) {
	p, err := policy.ParseImagePattern(s)
	return &p, err
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
