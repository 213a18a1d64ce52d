# KNHK — build, test and run the serverless workflow platform.
# Every target installs what it needs (Go modules, the Python venv of the local
# AWS endpoint, the CDK CLI's npm packages) and is safe to run twice.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
PYTHON    ?= python3
VENV      := .venv
LOCAL     := .local
BUILD     := build
FUNCTIONS := $(notdir $(patsubst %/,%,$(dir $(wildcard functions/*/main.go))))
PORT      ?= 4566
ENDPOINT  := http://127.0.0.1:$(PORT)
GOFLAGS_LAMBDA := -trimpath -ldflags='-s -w' -tags lambda.norpc
# Local synths make tables destroyable; deploy to AWS with -c env=prod (README).
CDK_CONTEXT ?= -c env=local

RIE         := $(LOCAL)/bin/aws-lambda-rie
RIE_VERSION := v0.0.0-20261030222936-bef5c4ba774d

# Defaults for the local endpoint only; real AWS uses your own profile.
LOCAL_ENV := AWS_ENDPOINT_URL=$(ENDPOINT) AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
             AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test

.PHONY: help deps run test build synth local-up local-down local-reset local-deploy e2e bench lint fmt clean tune-demo

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# ---------------------------------------------------------------- installs
$(VENV)/.installed: localstack/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r localstack/requirements.txt
	touch $@

infra/node_modules/.installed: infra/package.json infra/package-lock.json
	cd infra && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(LOCAL)/go-mod.done: go.mod go.sum
	@mkdir -p $(LOCAL)
	$(GO) mod download
	touch $@

$(RIE): | $(LOCAL)/go-mod.done
	GOBIN=$(CURDIR)/$(LOCAL)/bin $(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

deps: $(VENV)/.installed infra/node_modules/.installed $(LOCAL)/go-mod.done $(RIE) ## install Go modules, the endpoint venv, the CDK CLI and the Lambda emulator

# ---------------------------------------------------------------- build
build: $(LOCAL)/go-mod.done ## arm64 bootstrap zips for every function + host binaries
	@mkdir -p $(BUILD)/host
	@for f in $(FUNCTIONS); do \
	  mkdir -p $(BUILD)/lambda/$$f; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build $(GOFLAGS_LAMBDA) -o $(BUILD)/lambda/$$f/bootstrap ./functions/$$f; \
	  (cd $(BUILD)/lambda/$$f && rm -f ../$$f.zip && $(PYTHON) -m zipfile -c ../$$f.zip bootstrap); \
	  CGO_ENABLED=0 $(GO) build -trimpath -tags lambda.norpc -o $(BUILD)/host/$$f ./functions/$$f; \
	  echo "built $$f"; \
	done
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BUILD)/host/knhk ./cmd/knhk
	@echo "built knhk"

# The template depends on the Go sources, the function binaries (asset
# hashes) and the context; synth runs again only when one of them changed.
SYNTH_SUM := $(LOCAL)/synth.sha256
synth: build infra/node_modules/.installed ## synthesize the CDK stack into infra/cdk.out (skipped when nothing it reads changed)
	@files=$$(git ls-files -co --exclude-standard -- '*.go' go.mod go.sum infra/cdk.json infra/package-lock.json 2>/dev/null || true); \
	  sum=$$( { echo '$(CDK_CONTEXT)'; [ -z "$$files" ] || sha256sum $$files; sha256sum $(BUILD)/lambda/*/bootstrap; } | sha256sum | cut -d' ' -f1); \
	  if [ -n "$$files" ] && [ -f infra/cdk.out/KnhkStack.template.json ] && [ "$$sum" = "$$(cat $(SYNTH_SUM) 2>/dev/null)" ]; then \
	    echo "synth: infra/cdk.out is up to date"; \
	  else \
	    rm -f $(SYNTH_SUM); \
	    (cd infra && npx --no-install cdk synth --quiet $(CDK_CONTEXT)); \
	    mkdir -p $(LOCAL); echo "$$sum" > $(SYNTH_SUM); \
	  fi

# ---------------------------------------------------------------- local endpoint
local-up: $(VENV)/.installed ## start the embedded AWS endpoint (moto) on 127.0.0.1:$(PORT)
	@PORT=$(PORT) VENV=$(VENV) LOCAL=$(LOCAL) localstack/endpoint.sh up

local-down: ## stop the embedded endpoint started by local-up (only its pid)
	@PORT=$(PORT) VENV=$(VENV) LOCAL=$(LOCAL) localstack/endpoint.sh down

local-reset: ## empty the embedded endpoint's state
	@PORT=$(PORT) VENV=$(VENV) LOCAL=$(LOCAL) localstack/endpoint.sh reset

local-deploy: synth local-up ## provision the synthesized stack on the local endpoint
	$(LOCAL_ENV) $(BUILD)/host/knhk local deploy --template infra/cdk.out/KnhkStack.template.json --out $(LOCAL)/outputs.json

# ---------------------------------------------------------------- main job
run: deps local-deploy ## the main job on the embedded endpoint (ONCE=1 exits after the summary)
	$(LOCAL_ENV) $(BUILD)/host/knhk run $(if $(ONCE),--once) $(RUN_FLAGS)

# ---------------------------------------------------------------- learning loop
# The scenario's stack: one message per executor invocation (so the mapping's
# maximum concurrency is the capacity), a ceiling of 12, and a loop that acts
# within a minute (docs/learning.md, "Proof on a scenario").
TUNE_DEMO_DIR     := $(LOCAL)/tune-demo
TUNE_DEMO_GUARD   := {"enabled":true,"allow":["maxConcurrency"],"maxStep":1,"cooldown":"50s","reduceCooldown":"50s","settle":"50s","window":"1m","targetAge":"10s","objectiveP99":"2s","p99Tolerance":0.5,"bounds":{"maxConcurrency":{"min":2,"max":12}}}
TUNE_DEMO_CONTEXT := -c env=local -c executorBatchSize=1 -c executorMaxConcurrency=12 -c 'tuner=$(TUNE_DEMO_GUARD)'
tune-demo: deps build ## the learning loop's proof: one scenario on the embedded stack, loop off then on, side by side (about 30 min)
	@mkdir -p $(TUNE_DEMO_DIR)
	cd infra && npx --no-install cdk synth --quiet $(TUNE_DEMO_CONTEXT) -o ../$(TUNE_DEMO_DIR)/cdk.out > /dev/null
	$(BUILD)/host/knhk local tune-demo --template $(TUNE_DEMO_DIR)/cdk.out/KnhkStack.template.json --work $(TUNE_DEMO_DIR) $(TUNE_DEMO_FLAGS)

# ---------------------------------------------------------------- quality
lint: $(LOCAL)/go-mod.done ## gofmt check and go vet
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.venv/*')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

test: deps lint build synth ## everything CI runs: lint, unit, integration, CDK, conformance and e2e tests
	$(GO) test -count=1 -timeout 30m ./... 2>&1 | tee $(LOCAL)/test.log
	@$(GO) test -count=1 -run 'TestConformance$$' -v ./shared/workflow/ctk/ | grep -E 'CTK:|SKIP' || true
	@echo "packages: $$(grep -c '^ok' $(LOCAL)/test.log) ok, $$(grep -c '^FAIL' $(LOCAL)/test.log || true) failed"

e2e: deps build synth ## end-to-end suite against the local stack
	$(GO) test -count=1 -timeout 20m ./test/...

bench: $(LOCAL)/go-mod.done ## Go benchmarks with allocations
	$(GO) test -run '^$$' -bench . -benchmem ./shared/... | tee $(LOCAL)/bench.txt

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build outputs and local state
	rm -rf $(BUILD) $(LOCAL) infra/cdk.out
