# sinterfem: every target provisions the toolchain first (bin/provision: the host's
# DOLFINx >= 0.9 if it has one, else a Debian root built from Debian's packages).
#   make demo                       run cases/recurved-2d.toml, print its summary
#   make test                       the whole suite (serial, then the MPI tests on 2 ranks)
#   make test DEBIAN_SUITE=sid      the same on Debian unstable's DOLFINx 0.11
#   make bundle                     the toolchain root and sinterfem in one archive that an
#                                   ordinary user runs on a cluster (docs/hpc.md)
#   make fuzz                       100,000 hostile case and sweep files (tests/test_fuzz.py)
DEBIAN_SUITE ?= trixie
export DEBIAN_SUITE
RUN := bin/sinter-env
PYTEST_ARGS ?=

.PHONY: setup demo test test-serial test-mpi fuzz bench bundle lint clean

# A host with DOLFINx >= 0.9 is used instead of the Debian root: then DEBIAN_SUITE changes
# nothing, and the line below says so (SINTERFEM_TOOLCHAIN=root forces the root).
setup:
	@where=$$(bin/provision $(DEBIAN_SUITE)) && \
	if [ "$$where" = host ]; then \
	  echo "toolchain: the HOST's DOLFINx, NOT the Debian $(DEBIAN_SUITE) root (DEBIAN_SUITE has no effect; SINTERFEM_TOOLCHAIN=root forces the root)"; \
	else \
	  echo "toolchain: the Debian $(DEBIAN_SUITE) root $$where"; \
	fi
	@$(RUN) python3 -c "import dolfinx, sys; print(f'toolchain: DOLFINx {dolfinx.__version__}, Python {sys.version.split()[0]}')"

demo: setup
	$(RUN) python3 -m solver.cli run cases/recurved-2d.toml --out results/recurved-2d

# -rs: every skipped test is listed with its reason (no pvbatch, chromium or slurmctld here).
test: setup
	$(RUN) python3 -m pytest -q -rs -m "not mpi" $(PYTEST_ARGS)
	$(RUN) mpirun -n 2 python3 -m pytest -q -rs --color=no -m mpi -p no:cacheprovider $(PYTEST_ARGS)

# 100,000 hostile case and sweep files through the command line (tests/test_fuzz.py: ten
# times what `make test` tries), derandomized like there: about ten minutes.
fuzz: setup
	SINTERFEM_FUZZ_SCALE=10 $(RUN) python3 -m pytest -q -p no:cacheprovider tests/test_fuzz.py

# scikit-fem and pyamg for bench/skfem_elastic.py only: their wheels for the toolchain's
# Python are fetched here on the host (whose pip reaches the package index) into
# bench/.wheels, and bench/run.py installs them into a venv bench/.venv-pyX.Y, never into
# the toolchain.
bench: setup
	@py=$$($(RUN) python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])') && \
	python3 -m pip download -q --no-deps --only-binary=:all: --python-version $$py \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d bench/.wheels scikit-fem pyamg || \
	  echo "bench: no scikit-fem/pyamg wheels fetched here: bench/run.py tries pip in its venv"
	$(RUN) python3 bench/run.py --out bench/results.json

# sinter-bundle-SUITE.tar.zst: unpack anywhere, run sinter-bundle/bin/sinter as any user.
bundle: setup
	bin/bundle

lint:
	ruff check solver meshes tests bench

clean:
	rm -rf results
