# orbweaver: `make demo` and `make test` are the two commands a new machine needs.
# Every tool is built from source into bin/ (cached in ~/.cache/orbweaver) by tools/ensure.sh.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

BIN := $(CURDIR)/bin
GO ?= go
# Fuzz targets run briefly in `make test`; `make fuzz FUZZTIME=5m` digs deeper. A count,
# not a duration, by default: time-limited fuzz runs can fail spuriously with "context
# deadline exceeded" on a loaded machine (golang/go#75804).
FUZZTIME ?= 1000x
# Tools the tests need: the API server and etcd for envtest, kube-controller-manager for
# the workload tier (test/workloads), kube-scheduler, kubelet, kube-proxy and host-local
# for the local cluster (test/cluster: make demo and the e2e suite), kubectl for the
# printer-column tests, controller-gen for generate/verify, helm for the chart, and the
# benchmark's peers (whereabouts, SpiderPool's agent and plugin) for its smoke run, and
# Prometheus and promtool for the monitoring bundle's proof (test/monitoring).
TEST_TOOLS := kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd controller-gen swagger helm bridge macvlan loopback host-local whereabouts spiderpool spiderpool-agent prometheus promtool
CHART := charts/orbweaver
# The chart is linted and rendered for the Kubernetes version the tests run.
CHART_KUBE_VERSION := 1.33.1

# What the binaries say they are (--version, the start-up log line, orbweaver_build_info):
# the release tag, or dev; the commit. make build VERSION=v0.2.0 stamps a release.
VERSION ?= $(shell git describe --tags --exact-match 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet 2>/dev/null || echo -dirty)
LDFLAGS := -X github.com/orbweaver-ipam/orbweaver/pkg/version.version=$(VERSION) -X github.com/orbweaver-ipam/orbweaver/pkg/version.commit=$(COMMIT)
CRD_DIR := charts/orbweaver/crds
API_PKGS := ./apis/...
AGENT_API := pkg/agent/api
# Each component's RBAC, from the +kubebuilder:rbac markers of the packages whose API
# calls it makes; the chart's templates/rbac-*.yaml take their rules from these files.
RBAC_DIR := charts/orbweaver/files/rbac
CONTROLLER_RBAC_PKGS := ./cmd/orbweaver-controller ./pkg/controller/... ./pkg/crdcheck ./pkg/webhook/...
AGENT_RBAC_PKGS := ./cmd/orbweaver-agent ./pkg/agent
GENERATED := apis $(CRD_DIR) $(AGENT_API) $(RBAC_DIR)

export KUBEBUILDER_ASSETS := $(BIN)

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Set-up

.PHONY: tools
tools: ## Build (or link from the cache) the tools the tests and demo need.
	@tools/ensure.sh $(TEST_TOOLS)

.PHONY: demo
demo: tools ## Bring up a real single-node cluster (kubelet, containerd), install orbweaver with its Helm chart, run seed 004's workloads and a StatefulSet, show their IPs.
	@$(GO) run ./test/cluster demo

.PHONY: demo-down
demo-down: ## Tear down what `make demo` started (also after a crash).
	@$(GO) run ./test/cluster down

.PHONY: images
images: ## Build the orbweaver-agent, orbweaver-controller, pause and workload images (docker-archive) into .cluster/images.
	@$(GO) run ./test/cluster images

##@ Development

.PHONY: build
build: ## Build the orbweaver CNI plugin, the node agent, the controller and the kubectl plugin into bin/.
	@mkdir -p $(BIN)
	@CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/orbweaver ./cmd/orbweaver-agent ./cmd/orbweaver-controller ./cmd/kubectl-orbweaver

.PHONY: generate
generate: tools ## Generate deepcopy code and CRD YAML from the API types, the controller's and the agent's RBAC from their markers, and the agent API's models and client.
	@$(BIN)/controller-gen object paths=$(API_PKGS)
	@rm -f $(CRD_DIR)/*.yaml
	@$(BIN)/controller-gen crd paths=$(API_PKGS) output:crd:artifacts:config=$(CRD_DIR)
	@rm -f $(RBAC_DIR)/*.yaml
	@$(BIN)/controller-gen rbac:roleName=orbweaver-controller,fileName=controller.yaml,headerFile=hack/rbac-header.yaml $(foreach p,$(CONTROLLER_RBAC_PKGS),paths=$(p)) output:rbac:artifacts:config=$(RBAC_DIR)
	@$(BIN)/controller-gen rbac:roleName=orbweaver-agent,fileName=agent.yaml,headerFile=hack/rbac-header.yaml $(foreach p,$(AGENT_RBAC_PKGS),paths=$(p)) output:rbac:artifacts:config=$(RBAC_DIR)
	@rm -rf $(AGENT_API)/models $(AGENT_API)/client
	@$(BIN)/swagger generate client --quiet -f $(AGENT_API)/openapi.yaml -t $(AGENT_API) -A agent

.PHONY: fmt
fmt: ## gofmt the tree.
	@gofmt -w $$(git ls-files '*.go')

.PHONY: verify
verify: generate ## Fail on stale generated files, gofmt or vet findings, or broken dependency rules.
	@out=$$(git status --porcelain -- $(GENERATED)); \
	 if [ -n "$$out" ]; then echo "generated files are stale or untracked; run make generate and commit:"; echo "$$out"; git --no-pager diff --stat -- $(GENERATED); exit 1; fi
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^tools/') ); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@$(GO) vet ./...
	@$(GO) run ./test/depcheck

.PHONY: unit
unit: ## Fast inner loop: unit tests only (no API server).
	@$(GO) test -short -count=1 ./...

.PHONY: release
release: tools ## Write release VERSION (semantic, e.g. make release VERSION=1.2.3) into dist/VERSION: stamped static binaries, the images as OCI archives, the packaged chart, digests and SHA256SUMS (REGISTRY names the images, default ghcr.io/orbweaver-ipam).
	@test -n "$(filter-out dev,$(VERSION))" || { echo "make release needs VERSION=x.y.z"; exit 1; }
	@$(GO) run ./hack/release -version $(VERSION) -commit $(COMMIT) -helm $(BIN)/helm $(if $(REGISTRY),-registry $(REGISTRY))

##@ Tests

.PHONY: chart-test
chart-test: tools ## Lint the Helm chart and render it with its default values and with every option on (ci/all-on-values.yaml); test/chart checks what it renders.
	@for values in "" $(CHART)/ci/all-on-values.yaml; do \
	   echo ">> helm lint and template $(CHART) $${values:-(default values)}"; \
	   $(BIN)/helm lint $(CHART) --strict --quiet --kube-version $(CHART_KUBE_VERSION) $${values:+-f $$values}; \
	   $(BIN)/helm template orbweaver $(CHART) --namespace kube-system --kube-version $(CHART_KUBE_VERSION) $${values:+-f $$values} >/dev/null; \
	 done
	@if $(BIN)/helm template orbweaver $(CHART) --set ipam.enableIPv4=notabool >/dev/null 2>&1; then \
	   echo "values.schema.json accepted ipam.enableIPv4=notabool"; exit 1; fi

.PHONY: test
test: tools verify chart-test ## Everything: verify, chart lint and render, unit tests, integration tests (a real API server; test/integration adds real CNI binaries in network namespaces), the e2e suite (test/cluster, as make e2e), the concurrency proofs under -race, brief fuzzing.
	@$(GO) test -count=1 -timeout 20m -skip '$(ALONE_TESTS)' ./...
	@$(GO) test -count=1 -timeout 10m -run '$(ALONE_TESTS)' $(ALONE_PKGS)
	@$(GO) test -race -p 1 -count=1 -timeout 10m -run '$(RACE_TESTS)' $(RACE_PKGS)
	@$(MAKE) --no-print-directory fuzz

# The 100-agent proof runs by itself after the others: its liveness check (no ADD fails
# while the pool has an address for it, each waiting at most 40 s for a grant) is about
# the protocol, not about sharing 2 cores with the e2e cluster and the benchmark's smoke
# run, which stretched grant rounds past 40 s in one CI-like run.
ALONE_TESTS := TestNodeGrantsManyAgentsKills
ALONE_PKGS := ./test/grants
# The concurrency proofs that also run under the race detector in `make test`, one
# package at a time (-p 1): each starts its own API server and many agents, and on 2
# cores two of them at once under the race detector starve each other's API server.
RACE_TESTS := TestManyAgentsOnePool|TestPlanGrants|TestGrants|TestNodeGrants
RACE_PKGS := ./pkg/agent ./pkg/ipam ./pkg/controller/grants ./test/grants

.PHONY: e2e
e2e: tools ## The end-to-end suite alone (test/cluster): a real single-node cluster with kubelet and containerd, orbweaver installed by its chart, real pods (root; part of `make test` unless ORBWEAVER_E2E=0). Not test/integration, which has no kubelet.
	@$(GO) test -count=1 -timeout 20m -v ./test/cluster

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each.
	@for pkg in $$($(GO) list ./...); do \
	   dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	   for target in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
	     echo ">> fuzz $$pkg $$target ($(FUZZTIME))"; \
	     out=$$($(GO) test -run='^$$' -fuzz="^$$target\$$" -fuzztime=$(FUZZTIME) $$pkg 2>&1) || { echo "$$out"; exit 1; }; \
	   done; \
	 done

##@ Benchmarks

# BENCH_FLAGS go to the harness, e.g. BENCH_FLAGS='-nodes 10 -scenarios one-pool -peers orbweaver,spiderpool'
# (go run ./test/bench -h lists them). Without them: every peer, every scenario, at 10, 100
# and 500 nodes, several hours on 2 cores.
BENCH_FLAGS ?=

.PHONY: bench
bench: tools build ## Benchmarks against a real API server: orbweaver, SpiderPool, whereabouts and the floor in one run, at 10-500 nodes (numbers, never pass/fail on time).
	@$(GO) test -run='^$$' -bench=. -benchtime=3x ./pkg/agent/ ./test/eip/
	@$(GO) test -run='^$$' -bench=PlanGrants -benchtime=3x -benchmem ./pkg/ipam/
	@$(GO) run ./test/bench $(BENCH_FLAGS)

.PHONY: clean
clean: ## Remove build output (the tool cache in ~/.cache/orbweaver stays).
	@rm -rf bin/ .demo/
