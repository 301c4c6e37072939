# evo - one Makefile for every tool.
#   make                 build bin/evo-* (CPU only: needs no CUDA)
#   make CUDA=1          the same tools with the CUDA backend too (kernels/, src/lib/cuda/);
#                        CUDA_HOME=/usr/local/cuda, CUDA_ARCH="80 90" (sm_80, sm_90) by default
#   make CUDA=emu        the CUDA backend and kernels on the CPU emulator (kernels/emu: no
#                        toolkit, no GPU), in build/release-cuda-emu; for tests only
#   make check           run all tests; ends with "N passed, N failed"
#   make check SANITIZE=1  the same with ASan+UBSan builds (in build/asan)
#   make check-slow      make check with the long sweeps (200 kills during saves,
#                        3000 bit flips a file)
#   make check-all       both of the above (and the CUDA build's host-side tests where
#                        nvcc is, and the CUDA backend on the CPU emulator), one summary
#                        line (CI)
#   make check-gpu       scripts/gpu-check: every check that needs a GPU, on this machine's
#                        GPU, with a report in results/gpu/
#   make fuzz            tests/fuzz/: every reader's libFuzzer harness (clang, ASan+UBSan)
#                        for FUZZ_SECONDS (default 60) each, growing tests/fuzz/corpus
#   make install PREFIX=/usr/local   tools and man pages
#   make demo            the pipeline on the bundled data

PREFIX   ?= /usr/local
CC       ?= cc
SANITIZE ?= 0

ifeq ($(SANITIZE),1)
BUILD    := build/asan
BIN      := build/asan/bin
OPT      := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDSAN    := -fsanitize=address,undefined
else
BUILD    := build/release
BIN      := bin
OPT      := -O2 -fvect-cost-model=dynamic -g
LDSAN    :=
endif

# The CUDA flavour: its own object folder (build/release-cuda), the same
# bin/ (a GPU node's tools), kernels by nvcc with every warning an error,
# linked against the toolkit's cuBLASLt and static CUDA runtime.
CUDA      ?= 0
CUDA_HOME ?= /usr/local/cuda
CUDA_ARCH ?= 80 90
NVCC      ?= $(CUDA_HOME)/bin/nvcc
ifeq ($(CUDA),1)
BUILD    := $(BUILD)-cuda
CPPFLAGS += -DEVO_CUDA -I$(CUDA_HOME)/include -I.
NVCCFLAGS := -std=c++17 -O3 -lineinfo -Isrc/lib -Ikernels -Werror all-warnings \
             -Xcompiler -Wall,-Wextra,-Werror $(foreach a,$(CUDA_ARCH),-gencode arch=compute_$(a),code=sm_$(a))
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcudart_static -ldl -lrt -lstdc++
endif
# The emulated flavour: the same host side and kernels compiled by the host's
# C++ compiler against kernels/emu's CUDA runtime, wmma and cuBLASLt, which
# run every grid on the CPU, and its NCCL over shared memory, the
# libnccl.so.2 in $(BUILD)/lib the NCCL comm loads (kernels/emu/README.md).
ifeq ($(CUDA),emu)
BUILD    := $(BUILD)-cuda-emu
CXX      ?= g++
CPPFLAGS += -DEVO_CUDA -DEVO_CUDA_EMULATOR -Ikernels/emu/include -I.
EMU_CXXFLAGS := -std=c++17 -O2 -g -DEVO_CUDA_EMULATOR -Ikernels/emu/include -Isrc/lib -Ikernels \
                -Wall -Wextra -Werror -Wno-unknown-pragmas -MMD -MP
# the run path: the tools and the test programs find the emulator's
# libnccl.so.2 before any other on the machine (a test build: never installed);
# it asks the programs' emulated runtime which GPU a rank is on and queues
# its calls on their streams
CUDA_LIBS := -lstdc++ -Wl,-rpath,$(CURDIR)/$(BUILD)/lib \
             $(foreach f,cudaGetDevice cudaDeviceGetPCIBusId cudaLaunchHostFunc,-Wl,--export-dynamic-symbol=$(f))
endif

# PMIx (the world under srun --mpi=pmix) and Open MPI (the CPU ranks' comm)
# from Debian's libpmix-dev and libopenmpi-dev.
DIST_CFLAGS := $(shell pkg-config --cflags pmix ompi-c)
DIST_LIBS   := $(shell pkg-config --libs pmix ompi-c)
CPPFLAGS += -D_GNU_SOURCE -Isrc/lib $(DIST_CFLAGS)
# -fopenmp: the CPU backend's parallel loops. --as-needed keeps libopenblas
# and libgomp out of the tools that never call the backend.
CFLAGS   += -std=c11 $(OPT) -Wall -Wextra -Werror -pthread -fopenmp -MMD -MP
LDLIBS   := $(CUDA_LIBS) $(DIST_LIBS) -larchive -ljansson -linih -lpcre2-8 -lutf8proc -lxxhash -lopenblas -lm -pthread
LDFLAGS  += $(LDSAN) -fopenmp -Wl,--as-needed

# src/lib/cuda/ is the CUDA backend's and the NCCL comm's host side, built
# with CUDA=1 in place of the *_absent.c files that say there is none.
ifeq ($(CUDA),1)
LIB_SRC  := $(filter-out %_absent.c,$(sort $(wildcard src/lib/*/*.c)))
KERNEL_OBJ := $(patsubst kernels/%.cu,$(BUILD)/kernels/%.o,$(sort $(wildcard kernels/*.cu)))
else ifeq ($(CUDA),emu)
LIB_SRC  := $(filter-out %_absent.c,$(sort $(wildcard src/lib/*/*.c)))
KERNEL_OBJ := $(patsubst kernels/%,$(BUILD)/kernels/%.o,$(sort $(wildcard kernels/*.cu $(filter-out %/nccl.cc,$(wildcard kernels/emu/*.cc)))))
else
LIB_SRC  := $(filter-out src/lib/cuda/%,$(sort $(wildcard src/lib/*/*.c)))
KERNEL_OBJ :=
endif
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(KERNEL_OBJ)
LIBEVO   := $(BUILD)/libevo.a

# One tool per folder of src/ besides lib; src/convert builds evo-convert2hf.
TOOLS    := $(filter-out lib,$(patsubst src/%/,%,$(sort $(wildcard src/*/))))
tool_bin  = $(BIN)/evo-$(if $(filter convert,$(1)),convert2hf,$(1))
TOOL_BIN := $(foreach t,$(TOOLS),$(call tool_bin,$(t)))

.PHONY: all test-progs check check-slow check-all check-gpu fuzz fuzz-build install demo clean
all: $(TOOL_BIN)

# Test drivers: tests/c/<name>.c -> $(BUILD)/tests/<name>, linked against the
# library; tests/run.sh points the scripts at the flavour's folder
# (EVO_TESTBIN).
TEST_PROGS := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(sort $(wildcard tests/c/*.c)))
# The LD_PRELOAD fault injector of tests/t0710-faults.sh: plain C, never
# sanitized (a preloaded library cannot come before ASan's runtime).
FAULT_SHIM := $(BUILD)/tests/libfault-inject.so
test-progs: $(TEST_PROGS) $(FAULT_SHIM)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

ifeq ($(CUDA),emu)
$(BUILD)/kernels/%.cu.o: kernels/%.cu
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -x c++ -c $< -o $@

$(BUILD)/kernels/emu/%.cc.o: kernels/emu/%.cc
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -c $< -o $@

EMU_NCCL := $(BUILD)/lib/libnccl.so.2
all: $(EMU_NCCL)
$(EMU_NCCL): kernels/emu/nccl.cc
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -fPIC -shared $< -o $@
else
$(BUILD)/kernels/%.o: kernels/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@
endif

$(LIBEVO): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Each tool is src/<tool>/*.c linked against the shared library.
define tool_rule
$(call tool_bin,$(1)): $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard src/$(1)/*.c))) $(LIBEVO)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $$@ $$^ $(LDLIBS)
endef
$(foreach t,$(TOOLS),$(eval $(call tool_rule,$(t))))

$(TEST_PROGS): $(BUILD)/tests/%: $(BUILD)/tests/c/%.o $(LIBEVO)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(FAULT_SHIM): tests/shim/fault-inject.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl

check: all test-progs
	@EVO_BINS=$(CURDIR)/$(BIN) tests/run.sh

# The same with the long sweeps: 200 kills during saves, 3000 bit flips a
# file (tests that read EVO_SLOW).
check-slow: all test-progs
	@EVO_SLOW=1 EVO_BINS=$(CURDIR)/$(BIN) tests/run.sh

# Both builds through the whole suite, one summary line (what CI runs).
# The CUDA flavour is built wherever nvcc is (CI machines have the toolkit
# and no GPU) and runs the tests of what it adds (tests/run.sh: DIR=TESTS).
HAVE_NVCC := $(wildcard $(NVCC))
CUDA_FLAVOUR := $(if $(HAVE_NVCC),$(CURDIR)/build/release-cuda/bin=t0200-ops.sh:t0600-cuda.sh)
# The CUDA backend on the CPU emulator needs no toolkit: always, the
# programs its test runs.
EMU_FLAVOUR := $(CURDIR)/build/release-cuda-emu/bin=t0610-cuda-emulator.sh
EMU_NEEDS   := $(addprefix build/release-cuda-emu/bin/evo-,tokenize pack train ckpt) \
               $(addprefix build/release-cuda-emu/tests/,op-check op-compare comm-check) \
               build/release-cuda-emu/lib/libnccl.so.2
check-all:
	$(MAKE) all test-progs
	$(MAKE) all test-progs SANITIZE=1
	$(MAKE) fuzz-build
	$(if $(HAVE_NVCC),$(MAKE) all test-progs CUDA=1 BIN=build/release-cuda/bin)
	$(MAKE) $(EMU_NEEDS) CUDA=emu BIN=build/release-cuda-emu/bin
	@EVO_BINS="$(CURDIR)/bin $(CURDIR)/build/asan/bin $(CUDA_FLAVOUR) $(EMU_FLAVOUR)" tests/run.sh

check-gpu:
	scripts/gpu-check

# The fuzz harnesses: the readers' folders (base, text, formats),
# evo-tokenize's input side and evo-convert2hf's HF JSON built again
# by clang with coverage and ASan+UBSan, checksums taken as matching (so
# that mutations get past them: binfmt.c), one libFuzzer program per
# tests/fuzz/fuzz-NAME.c in build/fuzz/bin (tests/fuzz/README.md).
FUZZ_CC      ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS  := -std=c11 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
                -fno-sanitize-recover=all -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -Wall -Wextra -Werror -Wno-unknown-pragmas -MMD -MP
FUZZ_LIB_OBJ := $(patsubst %.c,build/fuzz/%.o,$(filter src/lib/base/% src/lib/text/% src/lib/formats/%,$(LIB_SRC)) \
                src/tokenize/input.c src/tokenize/batch.c src/convert/hf_json.c src/convert/hf_source.c src/convert/names.c src/convert/outdir.c)
FUZZ_BIN     := $(patsubst tests/fuzz/%.c,build/fuzz/bin/%,$(sort $(wildcard tests/fuzz/fuzz-*.c)))
FUZZ_LIBS    := -larchive -ljansson -linih -lpcre2-8 -lutf8proc -lxxhash -lm -pthread

build/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -c $< -o $@

build/fuzz/libevo.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

build/fuzz/bin/%: tests/fuzz/%.c build/fuzz/libevo.a
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< build/fuzz/libevo.a -o $@ $(FUZZ_LIBS)

fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	tests/fuzz/run -max_total_time=$(FUZZ_SECONDS)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 \
	    $(DESTDIR)$(PREFIX)/share/man/man7
	install -m 755 $(TOOL_BIN) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 man/man1/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/man5/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 man/man7/*.7 $(DESTDIR)$(PREFIX)/share/man/man7/

demo: all
	@EVO_BIN=$(CURDIR)/$(BIN) scripts/demo.sh

clean:
	rm -rf build bin/evo-*

-include $(LIB_OBJ:.o=.d) $(wildcard $(BUILD)/src/*/*.d $(BUILD)/tests/c/*.d build/fuzz/src/lib/*/*.d build/fuzz/bin/*.d)
