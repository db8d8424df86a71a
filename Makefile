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

# Debian 12 packages for the e2e clients, at the versions `apt-cache policy`
# shows for bookworm. Their dependencies (runc, crun, conmon,
# containers-common, a network stack) come with them.
DEB_PACKAGES := \
	skopeo=1.9.3+ds1-1+b10 \
	podman=4.3.1+ds1-8+deb12u1+b3 \
	containerd=1.6.20~ds1-1+deb12u3

FUZZTIME ?= 10s

.PHONY: test tools deps vet unit fuzz e2e build clean

test: tools deps vet unit fuzz e2e

# go-install-pinned BINARY MODULE PACKAGE VERSION: install PACKAGE@VERSION
# into $(TOOLS_BIN) unless the binary there was already built from
# MODULE@VERSION (checked with `go version -m`, so a stale or hand-copied
# binary is replaced).
define go-install-pinned
	@if [ -x "$(TOOLS_BIN)/$(1)" ] && $(GO) version -m "$(TOOLS_BIN)/$(1)" 2>/dev/null \
		| awk '$$1 == "mod" && $$2 == "$(2)" && $$3 == "$(4)" { found = 1 } END { exit !found }'; then \
		echo "tools: $(1) $(4) present"; \
	else \
		echo "tools: installing $(3)@$(4)"; \
		mkdir -p "$(TOOLS_BIN)"; \
		rm -f "$(TOOLS_BIN)/$(1)"; \
		GOBIN="$(TOOLS_BIN)" $(GO) install "$(3)@$(4)"; \
	fi
endef

tools:
	$(call go-install-pinned,registry,$(REGISTRY_MOD),$(REGISTRY_PKG),$(REGISTRY_VERSION))
	$(call go-install-pinned,crane,$(CRANE_MOD),$(CRANE_PKG),$(CRANE_VERSION))

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
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:" >&2; echo "$$unformatted" >&2; exit 1; fi

unit:
	$(GO) test -race ./...

# Runs every `func FuzzXxx(f *testing.F)` in the repository for $(FUZZTIME),
# one at a time (go test -fuzz takes one target in one package).
fuzz:
	@targets=$$({ grep -rHoE --include='*_test.go' --exclude-dir=.git --exclude-dir=.tools \
		'^func Fuzz[A-Za-z0-9_]+\(' . || true; } \
		| sed -E 's/:func (Fuzz[A-Za-z0-9_]+)\($$/ \1/' | sort -u); \
	if [ -z "$$targets" ]; then echo "fuzz: no fuzz targets"; exit 0; fi; \
	while read -r file name; do \
		pkg=$$(dirname "$$file"); \
		echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME) "$$pkg"; \
	done <<< "$$targets"

e2e:
	PATH="$(TOOLS_BIN):$$PATH" $(GO) test -race -tags e2e -count=1 ./test/e2e/...

build:
	$(GO) build -o bin/portcullis ./cmd/portcullis

clean:
	rm -rf bin .tools

# Side-by-side benchmark (test/bench): Portcullis against its upstream, a
# distribution pull-through proxy and a plain reverse proxy. bench-smoke is
# the quick CI check (no timing asserted). Extra flags via BENCH_FLAGS, e.g.
# BENCH_FLAGS='-json bench.json -md bench.md'.
BENCH_FLAGS ?=

.PHONY: bench bench-smoke

bench: tools
	PATH="$(TOOLS_BIN):$$PATH" $(GO) run ./test/bench $(BENCH_FLAGS)

bench-smoke: tools
	PATH="$(TOOLS_BIN):$$PATH" $(GO) run ./test/bench -smoke $(BENCH_FLAGS)
