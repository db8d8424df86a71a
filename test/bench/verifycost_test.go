package main

import (
	"context"
	"testing"
)

// BenchmarkVerifyCost is the verify-cost phase under go test, for
// profiles:
//
//	go test ./test/bench -run '^$' -bench VerifyCost -cpuprofile /tmp/cpu.out
//	go tool pprof -top -nodecount 30 /tmp/cpu.out
func BenchmarkVerifyCost(b *testing.B) {
	e, err := newVerifyEnv()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.close)
	cases, err := e.cases(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	for _, vc := range cases {
		b.Run("check/"+vc.name, vc.benchCheck)
		b.Run("discover+check/"+vc.name, vc.benchDiscoverCheck)
	}
}
