# Portcullis build and test entry points. `make test` is what CI runs
# (.ci/run); it installs everything it needs on a fresh Debian 12 machine.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO ?= go

# Pinned test tools, installed into a project-local, gitignored folder.
TOOLS_BIN := $(abspath .tools/bin)
REGISTRY_MOD := github.com/distribution/distribution/v3
REGISTRY_PKG := $(REGISTRY_MOD)/cmd/registry
REGISTRY_VERSION := v3.1.2
CRANE_MOD := github.com/google/go-containerregistry
CRANE_PKG := $(CRANE_MOD)/cmd/crane
CRANE_VERSION := v0.22.1
# Two cosign CLIs for the interop tests (test/e2e/cosign_test.go): the
# current major as `cosign`, the previous one as `cosign-v2`.
COSIGN_MOD := github.com/sigstore/cosign/v3
COSIGN_PKG := $(COSIGN_MOD)/cmd/cosign
COSIGN_VERSION := v3.1.3
COSIGN_V2_MOD := github.com/sigstore/cosign/v2
COSIGN_V2_PKG := $(COSIGN_V2_MOD)/cmd/cosign
COSIGN_V2_VERSION := v2.6.5
# Helm v3 for the chart test (deploy/kubernetes/charttest): helm lint and
# helm template of deploy/kubernetes/portcullis.
HELM_MOD := helm.sh/helm/v3
HELM_PKG := $(HELM_MOD)/cmd/helm
HELM_VERSION := v3.21.4

# Debian 12 packages for the e2e clients, and the Redis and load balancer
# the replica tests run, at the versions `apt-cache policy` shows for
# bookworm. Their dependencies (runc, crun, conmon, containers-common, a
# network stack) come with them.
DEB_PACKAGES := \
	skopeo=1.9.3+ds1-1+b10 \
	podman=4.3.1+ds1-8+deb12u1+b3 \
	containerd=1.6.20~ds1-1+deb12u3 \
	redis-server=5:7.0.15-1~deb12u10 \
	haproxy=2.6.12-1+deb12u4

FUZZTIME ?= 10s

.PHONY: test tools deps vet unit model fuzz e2e soak soak-short build clean

test: tools deps vet unit model fuzz e2e soak-short bench-smoke

# go-install-pinned BINARY MODULE PACKAGE VERSION: install PACKAGE@VERSION
# as $(TOOLS_BIN)/BINARY unless the binary there was already built from
# MODULE@VERSION (checked with `go version -m`, so a stale or hand-copied
# binary is replaced). It is built into a scratch GOBIN and renamed, so
# BINARY may differ from the package's name (cosign-v2), and an interrupted
# build leaves no half-written binary behind.
define go-install-pinned
	@if [ -x "$(TOOLS_BIN)/$(1)" ] && $(GO) version -m "$(TOOLS_BIN)/$(1)" 2>/dev/null \
		| awk '$$1 == "mod" && $$2 == "$(2)" && $$3 == "$(4)" { found = 1 } END { exit !found }'; then \
		echo "tools: $(1) $(4) present"; \
	else \
		echo "tools: installing $(3)@$(4) as $(1)"; \
		mkdir -p "$(TOOLS_BIN)"; \
		rm -f "$(TOOLS_BIN)/$(1)"; \
		gobin=$$(mktemp -d "$(dir $(TOOLS_BIN)).install.XXXXXX"); \
		trap 'rm -rf "$$gobin"' EXIT; \
		start=$$(date +%s); \
		GOBIN="$$gobin" $(GO) install "$(3)@$(4)"; \
		mv "$$gobin/$(notdir $(3))" "$(TOOLS_BIN)/$(1)"; \
		echo "tools: $(1) $(4) installed in $$(( $$(date +%s) - start ))s"; \
	fi
endef

tools:
	$(call go-install-pinned,registry,$(REGISTRY_MOD),$(REGISTRY_PKG),$(REGISTRY_VERSION))
	$(call go-install-pinned,crane,$(CRANE_MOD),$(CRANE_PKG),$(CRANE_VERSION))
	$(call go-install-pinned,cosign,$(COSIGN_MOD),$(COSIGN_PKG),$(COSIGN_VERSION))
	$(call go-install-pinned,cosign-v2,$(COSIGN_V2_MOD),$(COSIGN_V2_PKG),$(COSIGN_V2_VERSION))
	$(call go-install-pinned,helm,$(HELM_MOD),$(HELM_PKG),$(HELM_VERSION))

deps:
	@missing=(); \
	for spec in $(DEB_PACKAGES); do \
		pkg=$${spec%%=*}; want=$${spec#*=}; \
		have=$$(dpkg-query -W -f='$${Status} $${Version}' "$$pkg" 2>/dev/null || true); \
		if [ "$$have" != "install ok installed $$want" ]; then missing+=("$$spec"); fi; \
	done; \
	if [ $${#missing[@]} -eq 0 ]; then echo "deps: $(DEB_PACKAGES) present"; exit 0; fi; \
	if [ "$$(id -u)" -ne 0 ]; then \
		echo "deps: missing Debian packages: $${missing[*]}" >&2; \
		echo "deps: install them as root with:" >&2; \
		echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $${missing[*]}" >&2; \
		exit 1; \
	fi; \
	echo "deps: installing $${missing[*]}"; \
	apt-get update; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$${missing[@]}"

vet:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/...
	$(GO) vet -tags soak ./test/soak/...
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:" >&2; echo "$$unformatted" >&2; exit 1; fi

# The race run keeps the model-based test small (it has its own target).
unit:
	PORTCULLIS_MODEL_WORLDS=10 $(GO) test -race ./...

# The model-based randomized test of "nothing refused is served"
# (cmd/portcullis/model_test.go) at full size: 200 worlds x 50 requests,
# the seed printed; replay one with PORTCULLIS_MODEL_SEED=<seed>.
MODEL_WORLDS ?= 200
model:
	PORTCULLIS_MODEL_WORLDS=$(MODEL_WORLDS) $(GO) test -count=1 -v -run '^TestModelNothingRefusedIsServed$$' ./cmd/portcullis/ \
		| grep -v -e '^=== RUN' -e '^    --- PASS' -e '^=== PAUSE' -e '^=== CONT'

# Runs every `func FuzzXxx(f *testing.F)` in the repository for $(FUZZTIME),
# one at a time (go test -fuzz takes one target in one package). With a
# duration, go1.26's fuzzing coordinator can fail a run that found nothing
# with a bare "context deadline exceeded" when the time is up (a race on its
# own deadline, golang/go#75804, fixed in go1.27). Such a run, and only such a
# run (that line, no failing input written), is run again, up to twice (it
# hit one target twice in a row once here); any other failure, or a third,
# fails. A count (-fuzztime=Nx) would dodge the race but
# makes the time per target depend on the machine (minutes here).
fuzz:
	@targets=$$({ grep -rHoE --include='*_test.go' --exclude-dir=.git --exclude-dir=.tools \
		'^func Fuzz[A-Za-z0-9_]+\(' . || true; } \
		| sed -E 's/:func (Fuzz[A-Za-z0-9_]+)\($$/ \1/' | sort -u); \
	if [ -z "$$targets" ]; then echo "fuzz: no fuzz targets"; exit 0; fi; \
	log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	while read -r file name; do \
		pkg=$$(dirname "$$file"); \
		for try in 1 2 3; do \
			echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
			if $(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME) "$$pkg" 2>&1 | tee "$$log"; then break; fi; \
			if [ "$$try" -lt 3 ] && grep -qx '    context deadline exceeded' "$$log" \
				&& ! grep -q 'Failing input written to' "$$log"; then \
				echo "fuzz: $$name stopped on golang/go#75804 (the fuzzing coordinator's own deadline race, no failing input); again"; \
				continue; \
			fi; \
			exit 1; \
		done; \
	done <<< "$$targets"

e2e:
	PATH="$(TOOLS_BIN):$$PATH" $(GO) test -race -tags e2e -count=1 ./test/e2e/...

# The soak (test/soak): the portcullis binary under mixed hostile traffic
# (made-up methods, huge artifacts, stalled readers, slow upstream bodies,
# cold and warm pulls); afterwards goroutines, RSS and metric series must
# be back within their bounds. RSS and goroutines are printed over time.
soak-short:
	PORTCULLIS_SOAK=60s $(GO) test -tags soak -count=1 -v -timeout 5m ./test/soak/ | grep -v -e '^=== RUN'

soak:
	PORTCULLIS_SOAK=10m $(GO) test -tags soak -count=1 -v -timeout 20m ./test/soak/ | grep -v -e '^=== RUN'

# -buildvcs=true: `portcullis version` names the commit and its time (a
# machine may set GOFLAGS=-buildvcs=false); no build date, so that a commit
# always builds the same binary.
build:
	$(GO) build -buildvcs=true -o bin/portcullis ./cmd/portcullis

clean:
	rm -rf bin .tools

# Side-by-side benchmark (test/bench): Portcullis, enforcing a signature
# policy, against its upstream, a distribution pull-through proxy, a plain
# reverse proxy and `cosign verify` (.tools/bin/cosign, if installed), plus
# in-process verification-cost and verdict-cache figures. `make bench`
# (about 20 minutes) writes docs/benchmarks.md and docs/benchmarks.png and
# prints a headline block for README.md; run it on a quiet machine. It
# also builds BENCH_BASELINE (a git revision; default c5cd3cb, the last
# commit before the house redesign moved the code) and runs it beside
# this tree in the manifest, cold and blob phases (BENCH_BASELINE= skips
# it).
# bench-smoke is the quick CI check (tiny sizes, no cosign, no timing
# asserted; fails only if a target does not serve or verify). Extra flags
# via BENCH_FLAGS, e.g. BENCH_FLAGS='-json bench.json' or
# BENCH_FLAGS='-phases cold,herd -keep'; BENCH_OUT= keeps docs/ untouched.
BENCH_FLAGS ?=
BENCH_OUT ?= -md docs/benchmarks.md -png docs/benchmarks.png
BENCH_BASELINE ?= c5cd3cb

.PHONY: bench bench-smoke

bench: tools
	PATH="$(TOOLS_BIN):$$PATH" $(GO) run ./test/bench $(BENCH_OUT) $(if $(BENCH_BASELINE),-baseline $(BENCH_BASELINE)) $(BENCH_FLAGS)

bench-smoke: tools
	PATH="$(TOOLS_BIN):$$PATH" $(GO) run ./test/bench -smoke $(BENCH_FLAGS)

# The container image (build/mkimage; `go doc ./build/mkimage`), as an OCI
# image layout in bin/image/ (no daemon, no base image pulled): the static
# binary, Debian's CA certificates (the package's Mozilla roots, not the
# CAs this machine added), /etc/passwd and /etc/group with nonroot
# (65532), /tmp. Prints the manifest digest and the size (config plus
# compressed layers) and fails over 40 MB. A commit built with the same Go
# toolchain and ca-certificates version gives the same digest: file times
# and the created time are the commit's (SOURCE_DATE_EPOCH overrides).
# IMAGE_ARCH=arm64 builds a linux/arm64 image instead.
IMAGE_OUT := bin/image
IMAGE_ARCH ?= amd64
CA_CERTIFICATES := ca-certificates=20250419~deb12u2
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)

.PHONY: image

image:
	@spec='$(CA_CERTIFICATES)'; pkg=$${spec%%=*}; want=$${spec#*=}; \
	have=$$(dpkg-query -W -f='$${Status} $${Version}' "$$pkg" 2>/dev/null || true); \
	if [ "$$have" = "install ok installed $$want" ]; then echo "image: $$spec present"; exit 0; fi; \
	if [ "$$(id -u)" -ne 0 ]; then \
		echo "image: needs $$spec (installed: $${have:-none}); install it as root with:" >&2; \
		echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$spec" >&2; \
		exit 1; \
	fi; \
	echo "image: installing $$spec"; \
	apt-get update; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$$spec"
	@changed=$$(dpkg --verify ca-certificates); \
	if [ -n "$$changed" ]; then echo "image: files of ca-certificates were modified:" >&2; echo "$$changed" >&2; exit 1; fi
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) GOAMD64=v1 $(GO) build -trimpath -buildvcs=true -ldflags='-s -w' \
		-o bin/image-build/portcullis ./cmd/portcullis
	$(GO) run ./build/mkimage -binary bin/image-build/portcullis -out $(IMAGE_OUT) \
		-ca /usr/share/ca-certificates/mozilla -ca-version "$$(dpkg-query -W -f='$${Version}' ca-certificates)" \
		$(if $(SOURCE_DATE_EPOCH),-created $(SOURCE_DATE_EPOCH))
