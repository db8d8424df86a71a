// Package policy parses, compiles and evaluates the administrator's policy
// file: which images must be signed, by whom, and what happens otherwise.
//
// [Parse] turns the file's bytes into a [Policy]: patterns and regular
// expressions compiled, keys parsed, and the files the policy names (keys,
// trusted_root.json, TUF root.json) read from the fs.FS the caller hands
// it, relative to the policy file's directory there (or its root, for a
// name starting with "/"). The package opens no file of its own: package
// internal/policyfile loads a policy from disk, through os.DirFS("/"), and
// tests use an fstest.MapFS. [Policy.Revision] hashes the policy bytes and
// the contents of the files it names, not where they are, so replicas that
// mount them at other paths agree on it. Evaluating is then a pure
// computation in three steps:
//
//	plan := pol.For("registry.example/acme/app", "sha256:…") // which policies apply
//	for _, a := range plan.Authorities() { … }                // caller verifies each (package verify)
//	out := plan.Decide(results)                               // combine: allowed, and why
//
// An example policy file:
//
//	trustRoots:
//	  - name: corp-sigstore
//	    trustedRootFile: trusted_root.json   # air gap: no network
//	policies:
//	  - name: acme-release
//	    images: ["registry.example/acme/**", "docker.io/library/nginx"]
//	    excludeImages: ["registry.example/acme/sandbox/**"]
//	    mode: enforce            # or warn: serve failures, log them
//	    threshold: 1             # authorities that must pass, by distinct signers
//	    authorities:
//	      - name: release-key
//	        key: {path: cosign.pub}
//	      - name: ci
//	        trustRoot: corp-sigstore
//	        keyless:
//	          identities:
//	            - issuer: https://token.actions.githubusercontent.com
//	              subjectRegExp: ^https://github\.com/acme/
//	  - name: vendor
//	    images: ["registry.example/vendor/**"]
//	    allow: unsigned
//	  - name: provenance
//	    images: ["ghcr.io/acme/**"]
//	    authorities:
//	      - name: github-build
//	        keyless:
//	          identities:
//	            - issuer: https://token.actions.githubusercontent.com
//	              github: {repository: acme/app, workflow: .github/workflows/release.yml, ref: refs/tags/v*}
//	        attestations:
//	          - name: slsa
//	            predicateType: slsaprovenance
//	            condition: 'predicate.buildDefinition.externalParameters.workflow.ref.startsWith("refs/tags/")'
//	            maxAge: 720h
//	allowDigests: []             # break-glass "sha256:<hex>" digests
//	default: deny                # images no policy matches
//
// # Semantics
//
// Patterns are "registry/repository": "*" matches within one path segment,
// a "**" segment one or more whole segments ("acme/**" does not match "acme"),
// everything else is literal. Registries are lower-cased, Docker Hub's
// aliases become "docker.io", and "docker.io/x" means "docker.io/library/x",
// in patterns and images alike (oci.NormalizeImage). Every policy that matches
// an image must pass (AND); within one, Threshold authorities must (k of n).
// allowDigests overrides everything; an image no policy matches gets the
// default. A keyless authority without a trustRoot (or a key authority with
// requireTlog and none) uses the public-good Sigstore instance via TUF,
// named [PublicGood]; Parse warns about it.
//
// An authority may list `attestations` ([Attestation]): it then passes
// when each is satisfied by a verified in-toto statement it signed naming
// the served digest, of a predicate type (an alias of
// [PredicateAliases], or a URI), no older than maxAge, for which a CEL
// condition holds; the caller verifies the statements and hands each to
// [Attestation.Holds] as a [Statement]. Conditions are compiled with
// cel-go at Parse, so a syntax or type error is a problem with its line.
// A keyless identity may constrain Fulcio certificate extensions with
// `github:` ([GitHubIdentity]) and `extensions:`, matched by
// [Identity.ExtensionsMismatch] on the verified certificate's; with
// either, its subject is optional. [AuthorityResult.ValidUntil] and
// [Outcome.ValidUntil] say when an allow resting on maxAge ends.
//
// # Problems
//
// Every problem is reported at once, sorted by line, as
// "FILE:LINE: PATH: MESSAGE" (warnings as "FILE:LINE: warning: PATH:
// MESSAGE"), for example:
//
//	policy.yaml:7: policies[0].mode: want "enforce" or "warn", got "enforse" (did you mean "enforce"?)
//
// [Lint] returns errors and warnings; [Parse] fails with a [*LoadError] iff
// there is an error, and keeps the warnings in [Policy.Warnings]. Files the
// policy names must be regular files (checked before opening, so a named
// pipe cannot block) of at most 64 KiB for a key and 8 MiB for a root.
//
// # What it is not
//
// This package verifies no signatures, fetches nothing and opens no files:
// no os, no network, no TUF client, no context taken, no logging, no sigstore-go
// (cel-go evaluates conditions in process);
// it does not parse the trusted root beyond checking its mediaType (package
// verify does), nor watch or reload the file. A test fails if it imports os
// or net, or comes to depend on net/http, zap or sigstore-go. (It imports
// context only to give a CEL condition its time limit.)
package policy
