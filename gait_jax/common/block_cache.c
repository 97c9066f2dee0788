// Keeps XLA's large CPU buffers mapped between executions instead of returning them at free.
//
// XLA:CPU takes each execution's temp block (150 MB a tiny train step, 1 GB at the GREW widths)
// from posix_memalign (some others from malloc), and glibc maps every block of 32 MiB or more
// afresh and unmaps it at free (no tunable raises that limit; a single arena would, but
// serialises every thread's allocations). So every step faults and zeroes its whole working
// set again — and on a VM whose freed memory goes back to the host, faults it in from the host.
// This library, preloaded by gait_jax's commands (gait_jax/common/block_cache.py), serves
// requests of at least 32 MiB from its own mappings and keeps a freed one for the next request
// of about its size; everything else goes to glibc untouched. It asks for huge pages where
// glibc's tunable `glibc.malloc.hugetlb=1` asks for them for glibc's own mappings.
// jemalloc and tcmalloc cache large blocks too but are not on PyPI, and replace every allocation.
//
// Built by tools/build_block_cache.sh; gait_jax_block_cache_stats() reports what it did.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern void* __libc_malloc(size_t);
extern void* __libc_memalign(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void __libc_free(void*);

#define SMALLEST ((size_t)32 << 20)  // glibc maps blocks this large itself: ours from here up
#define LARGEST ((size_t)1 << 47)    // more than any address space maps: glibc's to refuse
#define ALIGN ((size_t)2 << 20)      // a huge page: blocks start on one
#define SLOTS 64                     // blocks mapped at once (in use + kept)
#define KEPT_MAX 8                   // freed blocks kept for reuse
#define SLACK 8                      // a kept block serves requests down to 7/8 of its size

typedef struct {
  char* base;      // the block, ALIGN-aligned
  size_t size;     // its mapped bytes (a multiple of ALIGN)
  int in_use;
  uint64_t freed;  // when it was freed (a counter): the oldest kept goes first
} Block;

static Block blocks[SLOTS];
static int mapped;                   // slots used
static size_t kept_bytes, kept_cap;  // kept_cap: a quarter of the machine's memory
static int huge;                     // madvise(MADV_HUGEPAGE) each new mapping
static uint64_t clock_, n_mapped, n_reused, n_unmapped;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void lock_fork(void) { pthread_mutex_lock(&lock); }
static void unlock_fork(void) { pthread_mutex_unlock(&lock); }

__attribute__((constructor)) static void init(void) {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  kept_cap = (pages > 0 && page > 0) ? (size_t)pages * (size_t)page / 4 : (size_t)4 << 30;
  const char* tunables = getenv("GLIBC_TUNABLES");
  huge = tunables && strstr(tunables, "glibc.malloc.hugetlb=1") != NULL;
  pthread_atfork(lock_fork, unlock_fork, unlock_fork);
}

static size_t round_up(size_t n) { return (n + ALIGN - 1) & ~(ALIGN - 1); }

// An ALIGN-aligned mapping of `size` bytes (NULL on failure): over-map, trim both ends.
static char* map_block(size_t size) {
  size_t span = size + ALIGN;
  char* raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return NULL;
  char* base = (char*)(((uintptr_t)raw + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1));
  if (base > raw) munmap(raw, (size_t)(base - raw));
  if (raw + span > base + size) munmap(base + size, (size_t)(raw + span - (base + size)));
  if (huge) madvise(base, size, MADV_HUGEPAGE);
  return base;
}

static void drop(int i) {  // unmaps kept slot i; the caller holds the lock
  kept_bytes -= blocks[i].size;
  munmap(blocks[i].base, blocks[i].size);
  n_unmapped++;
  blocks[i] = blocks[--mapped];
}

// The slot of the block kept longest (-1 where none is kept), and how many are kept.
static int oldest_kept(int* kept) {  // the caller holds the lock
  int oldest = -1;
  *kept = 0;
  for (int i = 0; i < mapped; i++) {
    if (blocks[i].in_use) continue;
    ++*kept;
    if (oldest < 0 || blocks[i].freed < blocks[oldest].freed) oldest = i;
  }
  return oldest;
}

static int find(const void* p) {  // the caller holds the lock
  for (int i = 0; i < mapped; i++)
    if (blocks[i].base == p) return i;
  return -1;
}

// A block for `n` bytes: the smallest kept one that fits within SLACK, else a new mapping.
static void* take(size_t n) {
  if (n > LARGEST) return NULL;  // glibc's to refuse (and round_up's to overflow)
  size_t size = round_up(n);
  pthread_mutex_lock(&lock);
  int best = -1;
  for (int i = 0; i < mapped; i++) {
    Block* b = &blocks[i];
    if (!b->in_use && b->size >= size && b->size - b->size / SLACK <= size &&
        (best < 0 || b->size < blocks[best].size))
      best = i;
  }
  if (best >= 0) {  // read under the lock: another thread's drop() moves slots
    char* base = blocks[best].base;
    blocks[best].in_use = 1;
    kept_bytes -= blocks[best].size;
    n_reused++;
    pthread_mutex_unlock(&lock);
    return base;
  }
  if (mapped == SLOTS) {  // every slot taken: the oldest kept block makes room, else glibc
    int kept, oldest = oldest_kept(&kept);
    if (oldest < 0) {
      pthread_mutex_unlock(&lock);
      return NULL;
    }
    drop(oldest);
  }
  char* base = map_block(size);
  if (base) {
    blocks[mapped++] = (Block){base, size, 1, 0};
    n_mapped++;
  }
  pthread_mutex_unlock(&lock);
  return base;
}

// Gives block i back: kept for reuse, the oldest kept ones unmapped beyond the caps.
static void give_back(int i) {
  Block* b = &blocks[i];
  b->in_use = 0;
  b->freed = ++clock_;
  kept_bytes += b->size;
  for (;;) {
    int kept, oldest = oldest_kept(&kept);
    if (oldest < 0 || (kept <= KEPT_MAX && kept_bytes <= kept_cap)) break;
    drop(oldest);
  }
}

// Cheap test first: every block of ours starts on a huge-page boundary, few of glibc's do.
static int maybe_ours(const void* p) { return p && ((uintptr_t)p & (ALIGN - 1)) == 0; }

// The mapped size of our block at p; 0 where p is glibc's.
static size_t our_size(const void* p) {
  if (!maybe_ours(p)) return 0;
  pthread_mutex_lock(&lock);
  int i = find(p);
  size_t size = i >= 0 ? blocks[i].size : 0;
  pthread_mutex_unlock(&lock);
  return size;
}

int posix_memalign(void** out, size_t alignment, size_t n) {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1))) return EINVAL;
  void* p = NULL;
  if (n >= SMALLEST && alignment <= ALIGN) p = take(n);
  if (!p) p = __libc_memalign(alignment, n ? n : 1);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

void* aligned_alloc(size_t alignment, size_t n) {
  void* p = NULL;
  if (alignment == 0 || (alignment & (alignment - 1))) {
    errno = EINVAL;
    return NULL;
  }
  if (n >= SMALLEST && alignment <= ALIGN) p = take(n);
  return p ? p : __libc_memalign(alignment, n);
}

void* memalign(size_t alignment, size_t n) { return aligned_alloc(alignment, n); }

// operator new's route too (XLA takes some 32 MiB blocks with it). calloc stays glibc's: a fresh
// mapping is the zeroed memory it must return.
void* malloc(size_t n) {
  void* p = n >= SMALLEST ? take(n) : NULL;
  return p ? p : __libc_malloc(n);
}

void free(void* p) {
  if (maybe_ours(p)) {
    pthread_mutex_lock(&lock);
    int i = find(p);
    if (i >= 0) {
      give_back(i);
      pthread_mutex_unlock(&lock);
      return;
    }
    pthread_mutex_unlock(&lock);
  }
  __libc_free(p);
}

void* realloc(void* p, size_t n) {
  size_t size = our_size(p);
  if (!size) return __libc_realloc(p, n);
  // Ours: moved into glibc's memory, the block given back.
  void* q = __libc_malloc(n ? n : 1);
  if (!q) return NULL;
  memcpy(q, p, n < size ? n : size);
  free(p);
  return q;
}

size_t malloc_usable_size(void* p) {
  size_t size = our_size(p);
  if (size) return size;
  static size_t (*next)(void*);
  if (!next) next = (size_t (*)(void*))dlsym(RTLD_NEXT, "malloc_usable_size");
  return p && next ? next(p) : 0;
}

// Counts since start: blocks mapped, requests served by a kept block, blocks unmapped, and the
// bytes kept now.
void gait_jax_block_cache_stats(uint64_t out[4]) {
  pthread_mutex_lock(&lock);
  out[0] = n_mapped;
  out[1] = n_reused;
  out[2] = n_unmapped;
  out[3] = kept_bytes;
  pthread_mutex_unlock(&lock);
}
