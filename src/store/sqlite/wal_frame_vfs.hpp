#pragma once

#include <cstdint>

namespace agentwire::store {

// The name of an SQLite VFS (registered on the first call; thread-safe) that is the default one
// ("unix") except for WAL files: SQLite writes each WAL frame as two pwrite()s, its 24-byte header
// and then the page right after it; this one holds the header back and writes both with the
// page's write. The writer makes about 14 frames per chat run, and a system call costs here what
// a page of memcpy costs many times over (performance.md).
//
// What SQLite sees does not change: only a new frame's header is held (a 24-byte write at the end
// of what was written; the checksum rewrite of earlier frames' headers at a commit goes straight
// through), and a held header is written before any other operation on the file (read, sync,
// truncate, size, close, file control, a write elsewhere). So every sync and every read sees the
// file as SQLite wrote it, and a commit is in the file (the OS's cache) when SQLite returns from
// it, as before: a process crash loses nothing SQLite called committed. Other files (the database,
// its shared memory, temporary files) are the default VFS's own, with no layer in between.
const char* walFrameVfs();

// Frames written by one pwrite since the process started (for tests and the A/B).
uint64_t walFramesJoined();

}  // namespace agentwire::store
