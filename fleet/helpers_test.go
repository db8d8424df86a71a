package fleet

import "github.com/portcullis-dev/portcullis/policy"

func policyPattern(s string) (*policy.ImagePattern, error) {
	p, err := policy.ParseImagePattern(s)
	return &p, err
}
