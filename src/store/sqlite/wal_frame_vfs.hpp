#pragma once

#include <cstdint>

namespace agentwire::store {

// The name of an SQLite VFS (registered on the first call; thread-safe) that is the default one
// ("unix") except for WAL files: SQLite writes each WAL frame as two pwrite()s, its 24-byte header
// and then its page, frame after frame; this one holds the frames a transaction appends and writes
// them with one pwrite when the commit frame is complete. The writer commits groups of a few to a
// few hundred frames, and a system call costs here what many pages of memcpy cost
// (performance.md).
//
// What SQLite sees does not change: only new frames are held (bytes appended at the end of what
// was written, starting with a frame header; the checksum rewrite of earlier frames' headers at a
// commit, and a page rewritten in place, go straight through), the commit frame's page write
// writes them before it returns (so before SQLite publishes the commit in the WAL index, and before
// COMMIT returns), and held bytes are written before any other operation on the file (read, sync,
// truncate, size, close, file control, a write elsewhere). So every sync and every read sees the
// file as SQLite wrote it, and a commit is in the file (the OS's cache) when SQLite returns from
// it, as before: a process crash loses nothing SQLite called committed. Frames of a transaction
// that has not committed may stay in memory (no other connection reads past the last commit). A
// commit whose write fails drops what is held (SQLite rolls it back), so no later write completes
// it; as with the default VFS, a commit whose frames were written but whose sync then failed
// (synchronous=FULL) is reported failed yet whole in the WAL.
//
// For the WAL of one writing connection (the store's writer): held frames are written at that
// connection's next operation on the file, which would overwrite another writer's frames written
// in between. Other connections (checkpointer, readers, backups) use the default VFS. Other files
// (the database, its shared memory, temporary files) are the default VFS's own, with no layer in
// between.
const char* walFrameVfs();

// Since the process started: frames written through the held path, and the writes that carried
// them (for tests and the A/B).
struct WalFrameWrites {
  uint64_t frames = 0;
  uint64_t writes = 0;
};
WalFrameWrites walFrameWrites();

}  // namespace agentwire::store
