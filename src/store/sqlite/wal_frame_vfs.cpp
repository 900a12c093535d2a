#include "store/sqlite/wal_frame_vfs.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>

namespace agentwire::store {
namespace {

constexpr int kFrameHeader = 24;  // WAL_FRAME_HDRSIZE in SQLite's wal.c
// Held bytes are written once they reach this much, at the end of a frame: a large transaction
// goes out in 1 MiB runs, and the memory held stays bounded.
constexpr sqlite3_int64 kMaxHeld = sqlite3_int64{1} << 20;
// The default VFS writes at most 128 KiB - 1 bytes per call (it masks the size with 0x1ffff in
// seekAndWriteFd, and a larger write comes back short, as a full disk): a run is written in chunks.
constexpr sqlite3_int64 kMaxWrite = 124 * 1024;

std::atomic<uint64_t> frames_held{0};
std::atomic<uint64_t> held_writes{0};

// Lives where SQLite allocated the file (szOsFile bytes); the default VFS's file follows it.
// Plain data: SQLite hands over raw memory and never runs constructors.
struct WalFile {
  sqlite3_file base;
  sqlite3_file* real;
  // The end of what SQLite has written since the WAL's header (held bytes included): a frame
  // header written there is a new frame. One written below it is a rewrite (walRewriteChecksums
  // rewrites the headers of earlier frames at a commit), which goes straight through.
  sqlite3_int64 end;
  // Frames appended since the last write to the file: `held` bytes from `held_offset`, always
  // ending at `end`. Written when a commit frame is complete, at kMaxHeld, and before any other
  // operation on the file.
  sqlite3_int64 held_offset;
  sqlite3_int64 held;
  sqlite3_int64 commit_at;  // the held commit frame's offset while its page is awaited, else -1
  int frames;               // frame headers among the held bytes
  unsigned char* buffer;    // sqlite3_malloc'd on the first held frame, kept until close
  sqlite3_int64 capacity;
};
// The default VFS's file starts right after this one: keep it aligned for its pointers and int64s.
static_assert(sizeof(WalFile) % alignof(sqlite3_int64) == 0 && sizeof(WalFile) % alignof(void*) == 0);

WalFile* walFile(sqlite3_file* f) {
  return reinterpret_cast<WalFile*>(f);
}

const sqlite3_io_methods& real(WalFile* f) {
  return *f->real->pMethods;
}

// A frame header whose "database size after commit" field is set ends a transaction (the WAL
// file format: bytes 4-7, zero for every other frame).
bool isCommitHeader(const void* header) {
  const auto* h = static_cast<const unsigned char*>(header);
  return (h[4] | h[5] | h[6] | h[7]) != 0;
}

// Writes the held frames; the file is then as SQLite wrote it. If a write fails:
// - at a commit (its commit frame is held), what is left is dropped: SQLite rolls the whole
//   transaction back after a failed commit, so those frames are garbage, and written by a later
//   retry they could complete a transaction that SQLite reported as failed;
// - otherwise (a spill's frames, flushed before a read), what is left stays held, so the next
//   operation tries again and reports the error too: SQLite may roll back only the statement and
//   go on with the transaction, whose frames it was told were written.
int release(WalFile* f) {
  sqlite3_int64 done = 0;
  int rc = SQLITE_OK;
  while (done < f->held && rc == SQLITE_OK) {
    const auto n = static_cast<int>(std::min(kMaxWrite, f->held - done));
    rc = real(f).xWrite(f->real, f->buffer + done, n, f->held_offset + done);
    if (rc == SQLITE_OK) {
      done += n;
      held_writes.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (rc == SQLITE_OK) {
    frames_held.fetch_add(static_cast<uint64_t>(f->frames), std::memory_order_relaxed);
    f->held = 0;
    f->frames = 0;
  } else if (f->commit_at >= 0) {
    f->end = f->held_offset + done;
    f->held = 0;
    f->frames = 0;
  } else {
    std::memmove(f->buffer, f->buffer + done, static_cast<size_t>(f->held - done));
    f->held_offset += done;
    f->held -= done;
  }
  f->commit_at = -1;
  return rc;
}

// Appends to the held bytes; false when there is no memory for them (nothing held changed).
bool hold(WalFile* f, const void* buf, int amt) {
  const sqlite3_int64 need = f->held + amt;
  if (need > f->capacity) {
    const sqlite3_int64 grown =
        std::max(need, std::min(kMaxHeld + 65536, std::max<sqlite3_int64>(65536, 2 * f->capacity)));
    auto* bigger = static_cast<unsigned char*>(sqlite3_realloc64(f->buffer, static_cast<sqlite3_uint64>(grown)));
    if (bigger == nullptr) return false;
    f->buffer = bigger;
    f->capacity = grown;
  }
  std::memcpy(f->buffer + f->held, buf, static_cast<size_t>(amt));
  f->held += amt;
  f->end = std::max(f->end, f->held_offset + f->held);
  return true;
}

// Writes through to the default VFS, keeping `end`.
int writeThrough(WalFile* f, const void* buf, int amt, sqlite3_int64 offset) {
  int rc = real(f).xWrite(f->real, buf, amt, offset);
  if (rc == SQLITE_OK) {
    // The WAL's own header, at 0, starts it again (a restart): frames are written over the old ones.
    if (offset == 0) f->end = 0;
    f->end = std::max(f->end, offset + amt);
  }
  return rc;
}

int walClose(sqlite3_file* file) {
  WalFile* f = walFile(file);
  int rc = release(f);
  int closed = real(f).xClose(f->real);
  sqlite3_free(f->buffer);
  f->buffer = nullptr;
  f->capacity = 0;
  return rc != SQLITE_OK ? rc : closed;
}

int walRead(sqlite3_file* file, void* buf, int amt, sqlite3_int64 offset) {
  WalFile* f = walFile(file);
  if (int rc = release(f); rc != SQLITE_OK) return rc;
  return real(f).xRead(f->real, buf, amt, offset);
}

// SQLite writes a frame as its header (24 bytes) and then its page, right after the previous
// frame. Those are held and written together: in one write per transaction, once its commit frame
// is complete (before SQLite publishes the commit in the shared memory, so any other connection
// that sees it finds it in the file), or earlier if the held bytes reach kMaxHeld. Frames of a
// transaction not yet committed (a spill) may stay held longer: no other connection reads past the
// last commit, and this connection's own reads write them first.
int walWrite(sqlite3_file* file, const void* buf, int amt, sqlite3_int64 offset) {
  WalFile* f = walFile(file);
  const bool header = amt == kFrameHeader;
  if (f->held == 0 || offset != f->held_offset + f->held) {
    // Not an append to what is held: that goes out first; a new frame's header starts holding again.
    if (int rc = release(f); rc != SQLITE_OK) return rc;
    if (!header || offset < f->end || f->end == 0) return writeThrough(f, buf, amt, offset);
    f->held_offset = offset;
  }
  if (!hold(f, buf, amt)) {  // no memory: write what is held, then this as SQLite asked
    if (int rc = release(f); rc != SQLITE_OK) return rc;
    return writeThrough(f, buf, amt, offset);
  }
  if (header) {
    ++f->frames;
    if (isCommitHeader(buf)) f->commit_at = offset;
    return SQLITE_OK;
  }
  if (f->commit_at >= 0 || f->held >= kMaxHeld) return release(f);
  return SQLITE_OK;
}

int walTruncate(sqlite3_file* file, sqlite3_int64 size) {
  WalFile* f = walFile(file);
  if (int rc = release(f); rc != SQLITE_OK) return rc;
  int rc = real(f).xTruncate(f->real, size);
  if (rc == SQLITE_OK) f->end = std::min(f->end, size);
  return rc;
}

int walSync(sqlite3_file* file, int flags) {
  WalFile* f = walFile(file);
  if (int rc = release(f); rc != SQLITE_OK) return rc;
  return real(f).xSync(f->real, flags);
}

int walFileSize(sqlite3_file* file, sqlite3_int64* size) {
  WalFile* f = walFile(file);
  if (int rc = release(f); rc != SQLITE_OK) return rc;
  return real(f).xFileSize(f->real, size);
}

int walLock(sqlite3_file* file, int level) {
  WalFile* f = walFile(file);
  if (int rc = release(f); rc != SQLITE_OK) return rc;
  return real(f).xLock(f->real, level);
}

int walUnlock(sqlite3_file* file, int level) {
  WalFile* f = walFile(file);
  if (int rc = release(f); rc != SQLITE_OK) return rc;
  return real(f).xUnlock(f->real, level);
}

int walCheckReservedLock(sqlite3_file* file, int* out) {
  WalFile* f = walFile(file);
  if (int rc = release(f); rc != SQLITE_OK) return rc;
  return real(f).xCheckReservedLock(f->real, out);
}

int walFileControl(sqlite3_file* file, int op, void* arg) {
  WalFile* f = walFile(file);
  if (int rc = release(f); rc != SQLITE_OK) return rc;
  return real(f).xFileControl(f->real, op, arg);
}

int walSectorSize(sqlite3_file* file) {
  WalFile* f = walFile(file);
  return real(f).xSectorSize(f->real);
}

int walDeviceCharacteristics(sqlite3_file* file) {
  WalFile* f = walFile(file);
  return real(f).xDeviceCharacteristics(f->real);
}

// SQLite keeps shared memory and mappings on the database file, not on the WAL; these only
// forward, should a version of SQLite ever ask.
int walShmMap(sqlite3_file* file, int page, int size, int extend, void volatile** out) {
  WalFile* f = walFile(file);
  if (int rc = release(f); rc != SQLITE_OK) return rc;
  return real(f).xShmMap(f->real, page, size, extend, out);
}

int walShmLock(sqlite3_file* file, int offset, int n, int flags) {
  WalFile* f = walFile(file);
  if (int rc = release(f); rc != SQLITE_OK) return rc;
  return real(f).xShmLock(f->real, offset, n, flags);
}

void walShmBarrier(sqlite3_file* file) {
  WalFile* f = walFile(file);
  real(f).xShmBarrier(f->real);
}

int walShmUnmap(sqlite3_file* file, int del) {
  WalFile* f = walFile(file);
  if (int rc = release(f); rc != SQLITE_OK) return rc;
  return real(f).xShmUnmap(f->real, del);
}

int walFetch(sqlite3_file* file, sqlite3_int64 offset, int amt, void** out) {
  WalFile* f = walFile(file);
  if (int rc = release(f); rc != SQLITE_OK) return rc;
  return real(f).xFetch(f->real, offset, amt, out);
}

int walUnfetch(sqlite3_file* file, sqlite3_int64 offset, void* p) {
  WalFile* f = walFile(file);
  return real(f).xUnfetch(f->real, offset, p);
}

const sqlite3_io_methods kWalMethods = {
    3,
    walClose,
    walRead,
    walWrite,
    walTruncate,
    walSync,
    walFileSize,
    walLock,
    walUnlock,
    walCheckReservedLock,
    walFileControl,
    walSectorSize,
    walDeviceCharacteristics,
    walShmMap,
    walShmLock,
    walShmBarrier,
    walShmUnmap,
    walFetch,
    walUnfetch,
};

sqlite3_vfs* base(sqlite3_vfs* vfs) {
  return static_cast<sqlite3_vfs*>(vfs->pAppData);
}

int vfsOpen(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  sqlite3_vfs* b = base(vfs);
  // Every file but the WAL is the default VFS's own file, in the memory SQLite gave us.
  if ((flags & SQLITE_OPEN_WAL) == 0) return b->xOpen(b, name, file, flags, out_flags);
  WalFile* f = walFile(file);
  f->base.pMethods = nullptr;
  f->real = reinterpret_cast<sqlite3_file*>(f + 1);
  f->end = 0;
  f->held_offset = 0;
  f->held = 0;
  f->commit_at = -1;
  f->frames = 0;
  f->buffer = nullptr;
  f->capacity = 0;
  int rc = b->xOpen(b, name, f->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    // SQLite closes a file whose open failed only through our pMethods, which stay null.
    if (f->real->pMethods != nullptr) f->real->pMethods->xClose(f->real);
    return rc;
  }
  f->base.pMethods = &kWalMethods;
  return SQLITE_OK;
}

int vfsDelete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
  return base(vfs)->xDelete(base(vfs), name, sync_dir);
}

int vfsAccess(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
  return base(vfs)->xAccess(base(vfs), name, flags, out);
}

int vfsFullPathname(sqlite3_vfs* vfs, const char* name, int n, char* out) {
  return base(vfs)->xFullPathname(base(vfs), name, n, out);
}

void* vfsDlOpen(sqlite3_vfs* vfs, const char* name) {
  return base(vfs)->xDlOpen(base(vfs), name);
}

void vfsDlError(sqlite3_vfs* vfs, int n, char* out) {
  base(vfs)->xDlError(base(vfs), n, out);
}

void (*vfsDlSym(sqlite3_vfs* vfs, void* lib, const char* name))(void) {
  return base(vfs)->xDlSym(base(vfs), lib, name);
}

void vfsDlClose(sqlite3_vfs* vfs, void* lib) {
  base(vfs)->xDlClose(base(vfs), lib);
}

int vfsRandomness(sqlite3_vfs* vfs, int n, char* out) {
  return base(vfs)->xRandomness(base(vfs), n, out);
}

int vfsSleep(sqlite3_vfs* vfs, int us) {
  return base(vfs)->xSleep(base(vfs), us);
}

int vfsCurrentTime(sqlite3_vfs* vfs, double* out) {
  return base(vfs)->xCurrentTime(base(vfs), out);
}

int vfsGetLastError(sqlite3_vfs* vfs, int n, char* out) {
  return base(vfs)->xGetLastError(base(vfs), n, out);
}

int vfsCurrentTimeInt64(sqlite3_vfs* vfs, sqlite3_int64* out) {
  return base(vfs)->xCurrentTimeInt64(base(vfs), out);
}

constexpr const char* kName = "agentwire-wal-frames";

}  // namespace

const char* walFrameVfs() {
  static std::once_flag once;
  static sqlite3_vfs vfs{};
  std::call_once(once, [] {
    sqlite3_vfs* b = sqlite3_vfs_find(nullptr);
    vfs.iVersion = 2;  // no system-call overrides (version 3): they would reach the default VFS's
    vfs.szOsFile = static_cast<int>(sizeof(WalFile)) + b->szOsFile;
    vfs.mxPathname = b->mxPathname;
    vfs.zName = kName;
    vfs.pAppData = b;
    vfs.xOpen = vfsOpen;
    vfs.xDelete = vfsDelete;
    vfs.xAccess = vfsAccess;
    vfs.xFullPathname = vfsFullPathname;
    vfs.xDlOpen = vfsDlOpen;
    vfs.xDlError = vfsDlError;
    vfs.xDlSym = vfsDlSym;
    vfs.xDlClose = vfsDlClose;
    vfs.xRandomness = vfsRandomness;
    vfs.xSleep = vfsSleep;
    vfs.xCurrentTime = vfsCurrentTime;
    vfs.xGetLastError = vfsGetLastError;
    vfs.xCurrentTimeInt64 = vfsCurrentTimeInt64;
    sqlite3_vfs_register(&vfs, 0);
  });
  return kName;
}

WalFrameWrites walFrameWrites() {
  return WalFrameWrites{frames_held.load(std::memory_order_relaxed), held_writes.load(std::memory_order_relaxed)};
}

}  // namespace agentwire::store
