# firehose — PGXS build
EXTENSION = firehose
EXTVERSION = 0.1.0
MODULE_big = firehose
OBJS = src/firehose.o src/stream.o src/put.o src/staging.o src/worker.o \
       src/transport.o src/sink.o src/sink_http.o src/util.o
DATA = firehose--$(EXTVERSION).sql
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --load-extension=firehose

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src -std=gnu99 -Wno-declaration-after-statement
SHLIB_LINK = -lcurl -lz
EXTRA_CLEAN = results regression.diffs regression.out

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
