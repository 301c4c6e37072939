/* nccl.cc - NCCL's collectives between the ranks of one machine, for the
 * emulated build's tests (built as libnccl.so.2, which comm_nccl.c loads):
 * a communicator is a shared-memory segment named after its unique id,
 * one slot of kSlot bytes a rank. A collective goes in chunks: every rank
 * puts its part of a chunk in its slot, waits for the others (a barrier
 * of two counters in the segment), reads what it needs from the slots,
 * and waits again before the next chunk overwrites them.
 *
 * Sums add the ranks in rank order, in fp32 for bf16 and fp16 (rounded
 * once, to nearest even, dtype_bits.h), in the type otherwise: the same
 * bits on every run. A call goes into its stream's queue, as NCCL's
 * kernels do (the emulated runtime's cudaLaunchHostFunc), and the caller
 * goes on: a peer that never comes holds the stream, not the caller, and
 * the comm's watchdog sees a collective that is not done. A barrier gives
 * up after kTimeout seconds, or when the comm is aborted; the failure is
 * the comm's asynchronous error (ncclCommGetAsyncError), as on a GPU. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <functional>

#include "bits16.h"
#include "nccl.h"

namespace {

constexpr size_t kSlot = 1 << 20;
constexpr double kTimeout = 120.0;

struct segment_header {
    std::atomic<uint64_t> arrived, generation;
};
constexpr size_t kHeader = 64; /* the slots start 64-byte aligned */
static_assert(sizeof(segment_header) <= kHeader, "header fits");

} // namespace

struct evo_emu_nccl_comm {
    int nranks, rank;
    size_t bytes;
    segment_header *head;
    unsigned char *slots;
    std::atomic<int> error{ncclSuccess}; /* the first failure of a queued call */
    std::atomic<bool> aborted{false};
};

namespace {

unsigned char *slot(ncclComm_t c, int r)
{
    return c->slots + (size_t)r * kSlot;
}

double now()
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Every rank of the communicator arrives before any leaves. */
ncclResult_t barrier(ncclComm_t c)
{
    const uint64_t gen = c->head->generation.load();
    if (c->head->arrived.fetch_add(1) + 1 == (uint64_t)c->nranks) {
        c->head->arrived.store(0);
        c->head->generation.fetch_add(1);
        return ncclSuccess;
    }
    const double t0 = now();
    while (c->head->generation.load() == gen) {
        sched_yield();
        if (c->aborted)
            return ncclInternalError;
        if (now() - t0 > kTimeout)
            return ncclRemoteError;
    }
    return ncclSuccess;
}

/* A call queued on stream s, as NCCL's kernels are: it runs when the
 * stream gets there, after the comm's earlier calls; its failure is the
 * comm's asynchronous error, and the calls after a failure do nothing. */
ncclResult_t on_stream(ncclComm_t c, cudaStream_t s, std::function<ncclResult_t()> call)
{
    struct queued {
        ncclComm_t c;
        std::function<ncclResult_t()> call;
    };
    cudaLaunchHostFunc(
        s,
        [](void *arg) {
            queued *q = (queued *)arg;
            if (q->c->error == ncclSuccess && !q->c->aborted) {
                const ncclResult_t rc = q->call();
                if (rc != ncclSuccess)
                    q->c->error = rc;
            }
            delete q;
        },
        new queued{c, std::move(call)});
    return ncclSuccess;
}

size_t type_size(ncclDataType_t t)
{
    switch (t) {
    case ncclUint8: return 1;
    case ncclFloat16:
    case ncclBfloat16: return 2;
    case ncclInt32:
    case ncclFloat32: return 4;
    case ncclFloat64: return 8;
    }
    return 0;
}

double get(const unsigned char *p, size_t i, ncclDataType_t t)
{
    switch (t) {
    case ncclUint8: return p[i];
    case ncclInt32: return ((const int32_t *)p)[i];
    case ncclFloat32: return ((const float *)p)[i];
    case ncclFloat64: return ((const double *)p)[i];
    case ncclFloat16:
    case ncclBfloat16: return evo_emu_widen16(((const uint16_t *)p)[i], t == ncclBfloat16);
    }
    return 0;
}

void put(unsigned char *p, size_t i, ncclDataType_t t, double v)
{
    switch (t) {
    case ncclUint8: p[i] = (unsigned char)v; break;
    case ncclInt32: ((int32_t *)p)[i] = (int32_t)v; break;
    case ncclFloat32: ((float *)p)[i] = (float)v; break;
    case ncclFloat64: ((double *)p)[i] = v; break;
    case ncclFloat16:
    case ncclBfloat16: ((uint16_t *)p)[i] = evo_emu_narrow16((float)v, t == ncclBfloat16); break;
    }
}

/* The reduction of element i over the ranks' slots, each at offset off
 * bytes, in rank order: in fp32 for every float type but fp64 (an fp32
 * sum rounds at every addition, as NCCL's fp32 does), exactly for the
 * integers. */
double reduce_at(ncclComm_t c, size_t off, size_t i, ncclDataType_t t, ncclRedOp_t op)
{
    const bool f32 = t == ncclFloat32 || t == ncclFloat16 || t == ncclBfloat16;
    double acc = get(slot(c, 0) + off, i, t);
    for (int r = 1; r < c->nranks; r++) {
        const double v = get(slot(c, r) + off, i, t);
        if (op == ncclSum)
            acc = f32 ? (double)((float)acc + (float)v) : acc + v;
        else if (op == ncclMax)
            acc = v > acc ? v : acc;
        else
            acc = v < acc ? v : acc;
    }
    return acc;
}

bool valid(ncclComm_t c, ncclDataType_t t, ncclRedOp_t op)
{
    return c && type_size(t) && (op == ncclSum || op == ncclMax || op == ncclMin);
}

/* The collectives' one loop: chunks of at most per_slot elements of
 * count; fill(off, n) puts this rank's part in its slot, take(off, n)
 * reads the slots after every rank has put its part. */
template <typename Fill, typename Take>
ncclResult_t chunked(ncclComm_t c, size_t count, size_t per_slot, Fill fill, Take take)
{
    for (size_t off = 0; off < count; off += per_slot) {
        const size_t n = count - off < per_slot ? count - off : per_slot;
        fill(off, n);
        ncclResult_t rc = barrier(c);
        if (rc != ncclSuccess)
            return rc;
        take(off, n);
        if ((rc = barrier(c)) != ncclSuccess)
            return rc;
    }
    return ncclSuccess;
}

/* The reduction of the ranks' send into recv: on every rank (root -1,
 * all-reduce) or on root's. */
ncclResult_t reduce_into(const void *send, void *recv, size_t count, ncclDataType_t type, ncclRedOp_t op, int root,
                         ncclComm_t c)
{
    const size_t es = type_size(type);
    return chunked(
        c, count, kSlot / es,
        [&](size_t off, size_t n) { memcpy(slot(c, c->rank), (const char *)send + off * es, n * es); },
        [&](size_t off, size_t n) {
            if (root < 0 || c->rank == root)
                for (size_t i = 0; i < n; i++)
                    put((unsigned char *)recv + off * es, i, type, reduce_at(c, 0, i, type, op));
        });
}

ncclResult_t unmap(ncclComm_t c)
{
    if (c) {
        munmap(c->head, c->bytes);
        delete c;
    }
    return ncclSuccess;
}

/* Two ranks of a communicator on one GPU is NCCL's "invalid usage": each
 * rank puts its GPU's bus id in its slot (the current device's, as NCCL
 * takes it), and after a barrier every rank compares them. */
ncclResult_t distinct_gpus(ncclComm_t c)
{
    constexpr int kBusId = 32;
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetPCIBusId((char *)slot(c, c->rank), kBusId, device) != cudaSuccess)
        return ncclSystemError;
    ncclResult_t rc = barrier(c);
    for (int r = 0; rc == ncclSuccess && r < c->nranks; r++)
        if (r != c->rank && !strncmp((const char *)slot(c, r), (const char *)slot(c, c->rank), kBusId)) {
            if (getenv("NCCL_DEBUG"))
                fprintf(stderr, "NCCL WARN Duplicate GPU detected : rank %d and rank %d both on CUDA device %s\n",
                        c->rank, r, (const char *)slot(c, r));
            rc = ncclInvalidUsage;
        }
    /* nobody's slot is overwritten by a collective before all have read */
    const ncclResult_t after = barrier(c);
    return rc != ncclSuccess ? rc : after;
}

/* A send or a receive on a two-rank communicator: the two ranks first
 * show each other what they do (a send against a send, a receive
 * against a receive, or two sizes, would hang NCCL: here it is
 * ncclInvalidUsage), then the message goes through the sender's slot in
 * chunks, both ranks at every barrier, so a send is done when the
 * receiver has the last chunk. */
ncclResult_t point_to_point(void *buf, size_t count, ncclDataType_t type, int peer, ncclComm_t c, cudaStream_t s,
                            bool sending)
{
    if (!valid(c, type, ncclSum) || peer < 0 || peer >= c->nranks || peer == c->rank)
        return ncclInvalidArgument;
    if (c->nranks != 2)
        return ncclInvalidUsage;
    const size_t es = type_size(type);
    return on_stream(c, s, [=] {
        struct intent {
            uint64_t sending, bytes;
        } mine = {sending, count * es}, theirs;
        memcpy(slot(c, c->rank), &mine, sizeof mine);
        ncclResult_t rc = barrier(c);
        if (rc != ncclSuccess)
            return rc;
        memcpy(&theirs, slot(c, peer), sizeof theirs);
        if ((rc = barrier(c)) != ncclSuccess)
            return rc;
        if (theirs.sending == mine.sending || theirs.bytes != mine.bytes) {
            if (getenv("NCCL_DEBUG"))
                fprintf(stderr, "NCCL WARN rank %d: a %s of %llu bytes met a %s of %llu\n", c->rank,
                        sending ? "send" : "receive", (unsigned long long)mine.bytes,
                        theirs.sending ? "send" : "receive", (unsigned long long)theirs.bytes);
            return ncclInvalidUsage;
        }
        return chunked(
            c, count, kSlot / es,
            [&](size_t off, size_t n) {
                if (sending)
                    memcpy(slot(c, c->rank), (const char *)buf + off * es, n * es);
            },
            [&](size_t off, size_t n) {
                if (!sending)
                    memcpy((char *)buf + off * es, slot(c, peer), n * es);
            });
    });
}

} // namespace

extern "C" {

const char *ncclGetErrorString(ncclResult_t r)
{
    switch (r) {
    case ncclSuccess: return "no error";
    case ncclSystemError: return "unhandled system error (the emulator's shared memory)";
    case ncclInternalError: return "internal error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError: return "remote process exited or there was a network error (no peer within 120 s)";
    case ncclInProgress: return "NCCL operation in progress";
    }
    return "unknown result code";
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id)
{
    memset(id, 0, sizeof *id);
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return ncclSystemError;
    for (int i = 0; i < 16; i++)
        snprintf(id->internal + 2 * i, 3, "%02x", r[i]);
    return ncclSuccess;
}

/* Every rank maps the segment (the first creates it, zeros: a barrier at
 * rest); after a first barrier, when all have it open, rank 0 removes its
 * name, so that nothing is left behind however the job ends (a rank whose
 * peers never came removes it too). */
ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank)
{
    if (nranks < 1 || rank < 0 || rank >= nranks || !id.internal[0])
        return ncclInvalidArgument;
    char name[64];
    snprintf(name, sizeof name, "/evo-nccl-%.32s", id.internal);
    const size_t bytes = kHeader + (size_t)nranks * kSlot;
    int fd = shm_open(name, O_CREAT | O_RDWR, 0600);
    if (fd < 0)
        return ncclSystemError;
    void *p =
        ftruncate(fd, (off_t)bytes) == 0 ? mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    close(fd);
    if (p == MAP_FAILED)
        return ncclSystemError;
    ncclComm_t c = new evo_emu_nccl_comm{nranks, rank, bytes, (segment_header *)p, (unsigned char *)p + kHeader};
    ncclResult_t rc = barrier(c);
    if (rc != ncclSuccess || rank == 0)
        shm_unlink(name); /* on a failure, whoever gets here first */
    if (rc == ncclSuccess)
        rc = distinct_gpus(c);
    if (rc != ncclSuccess) {
        unmap(c);
        return rc;
    }
    *comm = c;
    return ncclSuccess;
}

ncclResult_t ncclCommFinalize(ncclComm_t comm)
{
    return comm ? ncclSuccess : ncclInvalidArgument;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm)
{
    return unmap(comm);
}

/* Stops the comm's calls, queued or waiting for peers; the segment stays
 * mapped, as a stream thread may still be inside one (the job ends next). */
ncclResult_t ncclCommAbort(ncclComm_t comm)
{
    if (!comm)
        return ncclInvalidArgument;
    comm->aborted = true;
    return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *err)
{
    if (!comm)
        return ncclInvalidArgument;
    *err = (ncclResult_t)comm->error.load();
    return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                           ncclComm_t c, cudaStream_t s)
{
    if (!valid(c, type, op))
        return ncclInvalidArgument;
    return on_stream(c, s, [=] { return reduce_into(send, recv, count, type, op, -1, c); });
}

/* send: nranks x count; recv: this rank's count of their sum */
ncclResult_t ncclReduceScatter(const void *send, void *recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                               ncclComm_t c, cudaStream_t s)
{
    if (!valid(c, type, op))
        return ncclInvalidArgument;
    const size_t es = type_size(type), per = kSlot / es / (size_t)c->nranks;
    return on_stream(c, s, [=] {
        return chunked(
            c, count, per,
            [&](size_t off, size_t n) {
                for (int q = 0; q < c->nranks; q++)
                    memcpy(slot(c, c->rank) + (size_t)q * n * es,
                           (const char *)send + ((size_t)q * count + off) * es, n * es);
            },
            [&](size_t off, size_t n) {
                for (size_t i = 0; i < n; i++)
                    put((unsigned char *)recv + off * es, i, type,
                        reduce_at(c, (size_t)c->rank * n * es, i, type, op));
            });
    });
}

/* recv: nranks x count, rank r's at r count */
ncclResult_t ncclAllGather(const void *send, void *recv, size_t count, ncclDataType_t type, ncclComm_t c,
                           cudaStream_t s)
{
    if (!valid(c, type, ncclSum))
        return ncclInvalidArgument;
    const size_t es = type_size(type);
    return on_stream(c, s, [=] {
        return chunked(
            c, count, kSlot / es,
            [&](size_t off, size_t n) { memcpy(slot(c, c->rank), (const char *)send + off * es, n * es); },
            [&](size_t off, size_t n) {
                for (int r = 0; r < c->nranks; r++)
                    memcpy((char *)recv + ((size_t)r * count + off) * es, slot(c, r), n * es);
            });
    });
}

ncclResult_t ncclReduce(const void *send, void *recv, size_t count, ncclDataType_t type, ncclRedOp_t op, int root,
                        ncclComm_t c, cudaStream_t s)
{
    if (!valid(c, type, op) || root < 0 || root >= c->nranks)
        return ncclInvalidArgument;
    return on_stream(c, s, [=] { return reduce_into(send, recv, count, type, op, root, c); });
}

ncclResult_t ncclBroadcast(const void *send, void *recv, size_t count, ncclDataType_t type, int root, ncclComm_t c,
                           cudaStream_t s)
{
    if (!valid(c, type, ncclSum) || root < 0 || root >= c->nranks)
        return ncclInvalidArgument;
    const size_t es = type_size(type);
    return on_stream(c, s, [=] {
        return chunked(
            c, count, kSlot / es,
            [&](size_t off, size_t n) {
                if (c->rank == root)
                    memcpy(slot(c, root), (const char *)send + off * es, n * es);
            },
            [&](size_t off, size_t n) { memcpy((char *)recv + off * es, slot(c, root), n * es); });
    });
}

ncclResult_t ncclSend(const void *send, size_t count, ncclDataType_t type, int peer, ncclComm_t c, cudaStream_t s)
{
    return point_to_point((void *)send, count, type, peer, c, s, true);
}

ncclResult_t ncclRecv(void *recv, size_t count, ncclDataType_t type, int peer, ncclComm_t c, cudaStream_t s)
{
    return point_to_point(recv, count, type, peer, c, s, false);
}

} // extern "C"
