# evo - one Makefile for every tool.
#   make                 build bin/evo-* (CPU only so far: the CUDA switch arrives with kernels/)
#   make check           run all tests; ends with "N passed, N failed"
#   make check SANITIZE=1  the same with ASan+UBSan builds (in build/asan)
#   make check-all       both of the above, one summary line (CI)
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

# PMIx (the world under srun --mpi=pmix) and Open MPI (the CPU ranks' comm)
# from Debian's libpmix-dev and libopenmpi-dev.
DIST_CFLAGS := $(shell pkg-config --cflags pmix ompi-c)
DIST_LIBS   := $(shell pkg-config --libs pmix ompi-c)
CPPFLAGS += -D_GNU_SOURCE -Isrc/lib $(DIST_CFLAGS)
# -fopenmp: the CPU backend's parallel loops. --as-needed keeps libopenblas
# and libgomp out of the tools that never call the backend.
CFLAGS   += -std=c11 $(OPT) -Wall -Wextra -Werror -pthread -fopenmp -MMD -MP
LDLIBS   := $(DIST_LIBS) -larchive -ljansson -linih -lpcre2-8 -lutf8proc -lxxhash -lopenblas -lm -pthread
LDFLAGS  += $(LDSAN) -fopenmp -Wl,--as-needed

LIB_SRC  := $(sort $(wildcard src/lib/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIBEVO   := $(BUILD)/libevo.a

# One tool per folder of src/ besides lib; src/convert builds evo-convert2hf.
TOOLS    := $(filter-out lib,$(patsubst src/%/,%,$(sort $(wildcard src/*/))))
tool_bin  = $(BIN)/evo-$(if $(filter convert,$(1)),convert2hf,$(1))
TOOL_BIN := $(foreach t,$(TOOLS),$(call tool_bin,$(t)))

.PHONY: all test-progs check check-all install demo clean
all: $(TOOL_BIN)

# Test drivers: tests/c/<name>.c -> $(BUILD)/tests/<name>, linked against the
# library; tests/run.sh points the scripts at the flavour's folder
# (EVO_TESTBIN).
TEST_PROGS := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(sort $(wildcard tests/c/*.c)))
test-progs: $(TEST_PROGS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

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

check: all test-progs
	@EVO_BINS=$(CURDIR)/$(BIN) tests/run.sh

# Both builds through the whole suite, one summary line (what CI runs).
check-all:
	$(MAKE) all test-progs
	$(MAKE) all test-progs SANITIZE=1
	@EVO_BINS="$(CURDIR)/bin $(CURDIR)/build/asan/bin" tests/run.sh

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

-include $(LIB_OBJ:.o=.d) $(wildcard $(BUILD)/src/*/*.d $(BUILD)/tests/c/*.d)
