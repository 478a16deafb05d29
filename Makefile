# kubepool — see README.md. `make test` is what CI runs.
SHELL := /bin/bash
GO ?= go
STATICCHECK_VERSION ?= v0.8.2
export GOFLAGS ?= -buildvcs=false

.PHONY: all build test unit e2e lint vet docs docs-check deps cluster-up cluster-down cluster-status demo bench clean

all: build

build: ## build bin/kubepool and bin/kubepool-images
	$(GO) build -o bin/kubepool ./cmd/kubepool
	$(GO) build -o bin/kubepool-images ./cmd/kubepool-images

deps: ## install the Debian packages the dev cluster and the tests use
	hack/devcluster/deps.sh

test: ## everything: deps, lint, dev cluster up, unit + e2e tests, cluster down (if this started it)
	hack/test.sh

unit: ## tests that need no dev cluster (they still start real ZooKeeper/registry processes)
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test/e2e)

e2e: ## end-to-end tests against a running dev cluster (make cluster-up)
	KUBEPOOL_E2E=1 $(GO) test -count=1 -timeout 40m ./test/e2e/...

vet:
	$(GO) vet ./...

lint: vet docs-check ## go vet + staticcheck (installed from the module proxy) + generated docs current
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

docs: ## regenerate the command reference in docs/cli from the cobra tree
	$(GO) run ./hack/gendocs

docs-check: ## fail when docs/cli is not what the code says (run `make docs`)
	$(GO) run ./hack/gendocs -check

cluster-up: deps ## start the dev cluster + ZooKeeper + registry (idempotent)
	$(GO) run ./hack/devcluster up

cluster-down: ## stop exactly what cluster-up started
	$(GO) run ./hack/devcluster down

cluster-status:
	$(GO) run ./hack/devcluster status

demo: cluster-up build ## the main job: see README.md
	hack/demo.sh

bench: ## benchmarks whose figures are in BENCHMARKS.md (needs the dev cluster)
	KUBEPOOL_E2E=1 $(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 60m ./...

clean:
	rm -rf bin
