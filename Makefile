# firehose — PGXS build
EXTENSION = firehose
EXTVERSION = 0.1.0
MODULE_big = firehose
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
# the install script is assembled from src/sql/*.sql, in name order
DATA_built = firehose--$(EXTVERSION).sql
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --load-extension=firehose

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src -I/usr/include/libxml2 -I$(libpq_srcdir) -std=gnu99 -Wno-declaration-after-statement
SHLIB_LINK = -lcurl -lz -lzstd -lsnappy -lxml2 -lcrypto
# libpq for destination "postgres", linked as contrib's dblink and
# postgres_fdw link it (PGXS: -L$(libdir) -lpq, headers in includedir)
SHLIB_LINK_INTERNAL = $(libpq)
EXTRA_CLEAN = results regression.diffs regression.out

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies: every object includes the one header
$(OBJS): src/firehose.h
src/aws_sigv4.o: src/aws_sigv4.h
src/s3_keys.o: src/s3_keys.h
src/sink_s3.o: src/aws_sigv4.h src/s3_keys.h
src/os_index.o src/sink_opensearch.o: src/os_index.h
src/aws_request.o: src/aws_sigv4.h
src/parquet_writer.o: src/parquet_writer.h
src/answers.o src/sink_http.o src/sink_opensearch.o src/sink_s3.o src/sink_splunk.o: src/answers.h

# unit tests of the pure C files (no PostgreSQL needed)
.PHONY: unit
unit:
	bash test/unit/run

firehose--$(EXTVERSION).sql: $(sort $(wildcard src/sql/*.sql))
	cat $^ > $@
