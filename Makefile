# The two commands: `make run` brings the MTA up on this machine, `make test` runs every test.
CONFIG ?= Release
SLN := Mta.Functions.sln

.PHONY: run test faults build deps clean bench-cleanup bench-rpc

deps: node_modules/.bin/azurite

node_modules/.bin/azurite: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

build:
	dotnet build $(SLN) -c $(CONFIG)

# Tests marked Category=Long (minutes of waiting, e.g. for a killed worker's queue messages) run with `make faults`.
# npm ci and the .NET build need nothing from each other, so they run side by side (-j2).
# A test run is hundreds of .NET processes that live seconds (functions workers, mtactl, the publishes) and a test
# process whose hosts come and go: profile-guided optimisation's instrumented recompilations never pay off there, and
# were 15 % of the run's CPU on 2 cores (docs/benchmarks.md, test time). The programs are the same; only the JIT's
# tiering differs from a deployment's default.
test: export DOTNET_TieredPGO = 0
test:
	$(MAKE) --no-print-directory -j2 deps build
	dotnet test $(SLN) -c $(CONFIG) --no-build --filter "Category!=Long" --logger "console;verbosity=normal"

# Fault injection with worker kills: a stream of messages while every part is killed once (about 15 minutes).
faults: deps
	dotnet test $(SLN) -c $(CONFIG) --filter "Category=Long" --logger "console;verbosity=detailed"

# BenchmarkDotNet micro-benchmark of cleanup's CPU work (not part of make test; a few minutes).
bench-cleanup:
	dotnet run -c Release --project bench/Mta.Benchmarks -- --filter '*Cleanup*'

# What one invocation costs between the local functions host and the isolated worker (gRPC round trip, CPU on each
# side); APP is the functions app folder, the build output by default (a `dotnet publish` output for the image's code).
APP ?= functions/bin/$(CONFIG)/net10.0
bench-rpc:
	dotnet build bench/Mta.Benchmarks -c Release
	dotnet bench/Mta.Benchmarks/bin/Release/net10.0/Mta.Benchmarks.dll rpc-hop --app $(APP)

run: deps build
	CONFIG=$(CONFIG) scripts/run-local.sh

clean:
	dotnet clean $(SLN) -c $(CONFIG)
	rm -rf node_modules .azurite data
