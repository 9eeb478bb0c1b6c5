# The two commands of the README.
.PHONY: run test dev

## run: Envoy with the scim-edge filter and etcd on 127.0.0.1, a demo tenant, tokens printed
run:
	bash envoy/run.sh

## test: every test (lints, core, Spin component in wasmtime, Envoy filter in real Envoy, compliance)
test:
	bash scripts/test.sh

## dev: the Spin component on the wasmtime dev host, state in SQLite (.scim-edge/)
dev:
	cargo run -p scim-edge-host-tests --bin scim-edge-dev
