#include "store/postgres/postgres_store.hpp"

#include "core/ids.hpp"
#include "core/logging.hpp"
#include "store/postgres/libpq.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

namespace agentwire::store {
namespace {

using Params = std::vector<std::optional<std::string>>;

// Versioned migrations, applied in order under an advisory lock; each in its own transaction with
// its row in agentwire_schema. Never edit one that has shipped: add the next.
const std::vector<std::string>& migrations() {
  static const std::vector<std::string> all = {
      R"sql(
CREATE TABLE threads (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL, title TEXT NOT NULL, created_ms BIGINT NOT NULL,
  system BOOLEAN NOT NULL DEFAULT false, agent TEXT NOT NULL DEFAULT '');
CREATE INDEX threads_by_user ON threads (user_id, created_ms DESC, id DESC);
CREATE TABLE messages (
  ord BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, thread_id TEXT NOT NULL, user_id TEXT NOT NULL,
  role TEXT NOT NULL, content TEXT NOT NULL, run_id TEXT NOT NULL DEFAULT '', created_ms BIGINT NOT NULL);
CREATE INDEX messages_by_thread ON messages (thread_id, created_ms, ord);
CREATE TABLE user_streams (
  user_id TEXT PRIMARY KEY, epoch TEXT NOT NULL, head BIGINT NOT NULL, first_seq BIGINT NOT NULL,
  acked_seq BIGINT NOT NULL);
CREATE TABLE events (
  user_id TEXT NOT NULL, seq BIGINT NOT NULL, type TEXT NOT NULL, thread_id TEXT NOT NULL, run_id TEXT NOT NULL,
  ts_ms BIGINT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (user_id, seq));
CREATE TABLE runs (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL, thread_id TEXT NOT NULL, agent TEXT NOT NULL, node_id TEXT NOT NULL,
  status TEXT NOT NULL, created_ms BIGINT NOT NULL);
CREATE INDEX runs_by_node ON runs (node_id, created_ms);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
)sql",
      // 2: node leases (a node's runs are ended by another node when its lease expires).
      R"sql(
CREATE TABLE nodes (node_id TEXT PRIMARY KEY, lease_until_ms BIGINT NOT NULL, claimed_by TEXT NOT NULL DEFAULT '');
)sql",
      // 3: a thread's default on_busy (double-texting policy of its messages).
      R"sql(
ALTER TABLE threads ADD COLUMN on_busy TEXT NOT NULL DEFAULT '';
)sql",
      // 4: tool approvals (a run parked on a tool call that needs a person's answer).
      R"sql(
CREATE TABLE approvals (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL, thread_id TEXT NOT NULL, run_id TEXT NOT NULL,
  tool_call_id TEXT NOT NULL, tool_name TEXT NOT NULL, args TEXT NOT NULL, run_state TEXT NOT NULL,
  node_id TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL, by TEXT NOT NULL,
  created_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL, resolved_ms BIGINT NOT NULL, resumed BOOLEAN NOT NULL);
CREATE INDEX approvals_by_user ON approvals (user_id, status);
CREATE INDEX approvals_waiting ON approvals (node_id, resumed);
)sql",
      // 5: tokens used per user and UTC day (agents.user_daily_token_budget).
      R"sql(
CREATE TABLE token_usage (user_id TEXT NOT NULL, day TEXT NOT NULL, tokens BIGINT NOT NULL, PRIMARY KEY (user_id, day));
)sql",
  };
  return all;
}

// Any number; the same on every node.
constexpr const char* kMigrationLock = "7349201";

Thread threadRow(const pg::Rows& r, int i) {
  return Thread{r.text(i, 0),        r.text(i, 1), r.text(i, 2), r.integer(i, 3),
                r.text(i, 4) == "t", r.text(i, 5), r.text(i, 6)};
}

// Columns: seq, user_id, type, thread_id, run_id, ts_ms, data.
StoredEvent eventRow(const pg::Rows& r, int i) {
  return StoredEvent{r.integer(i, 0), r.text(i, 1),    r.text(i, 2), r.text(i, 3),
                     r.text(i, 4),    r.integer(i, 5), r.text(i, 6), {}};
}

#define AW_APPROVAL_COLUMNS                                                                                 \
  "id, user_id, thread_id, run_id, tool_call_id, tool_name, args, run_state, node_id, status, reason, by, " \
  "created_ms, expires_ms, resolved_ms, resumed"

Approval approvalRow(const pg::Rows& r, int i) {
  return Approval{r.text(i, 0),     r.text(i, 1),     r.text(i, 2),     r.text(i, 3),
                  r.text(i, 4),     r.text(i, 5),     r.text(i, 6),     r.text(i, 7),
                  r.text(i, 8),     r.text(i, 9),     r.text(i, 10),    r.text(i, 11),
                  r.integer(i, 12), r.integer(i, 13), r.integer(i, 14), r.text(i, 15) == "t"};
}

std::string str(int64_t v) {
  return std::to_string(v);
}

}  // namespace

PostgresStore::PostgresStore(std::string url, int pool_size, std::vector<std::string> dependencies)
    : Component("store", std::move(dependencies)),
      url_(std::move(url)),
      pool_size_(pool_size),
      log_(core::logger("store")) {}

PostgresStore::~PostgresStore() {
  stop();
}

void PostgresStore::start() {
  if (const auto& missing = pg::libpqError(); !missing.empty()) {
    throw std::runtime_error("the PostgreSQL store needs libpq: " + missing);
  }
  pool_ = std::make_unique<pg::Pool>(
      url_, pool_size_,
      idle_tx_timeout_ms_ > 0 ? fmt::format("SET idle_in_transaction_session_timeout = {}", idle_tx_timeout_ms_)
                              : std::string{});
  auto lease = pool_->borrow(std::chrono::seconds(5));
  if (!lease) throw std::runtime_error("no PostgreSQL connection available");
  auto& c = **lease;
  auto fail = [&](const core::Error& e) {
    throw std::runtime_error(fmt::format("cannot set up the PostgreSQL schema: {}", e.message));
  };
  // Session-level lock: a second node starting now waits here until the first one is done.
  if (auto r = c.exec(fmt::format("SELECT pg_advisory_lock({})", kMigrationLock)); !r) fail(r.error());
  auto unlock = [&] { (void)c.exec(fmt::format("SELECT pg_advisory_unlock({})", kMigrationLock)); };
  auto current = c.script(
      "CREATE TABLE IF NOT EXISTS agentwire_schema (version INT PRIMARY KEY, applied_ms BIGINT NOT NULL);"
      "SELECT coalesce(max(version), 0) FROM agentwire_schema");
  if (!current) {
    unlock();
    fail(current.error());
  }
  int64_t version = current->integer(0, 0);
  const auto& all = migrations();
  if (version > static_cast<int64_t>(all.size())) {
    unlock();
    // A newer agentwire migrated this database: this binary could misread or drop what it added.
    throw std::runtime_error(fmt::format(
        "the PostgreSQL database has schema version {}, written by a newer agentwire; this one knows up to {}: run "
        "the newer version on every node",
        version, all.size()));
  }
  for (std::size_t v = static_cast<std::size_t>(version); v < all.size(); ++v) {
    auto applied = c.script(
        fmt::format("BEGIN; {} INSERT INTO agentwire_schema VALUES ({}, {}); COMMIT;", all[v], v + 1, core::nowMs()));
    if (!applied) {
      (void)c.exec("ROLLBACK");
      unlock();
      fail(applied.error());
    }
    log_->info("PostgreSQL schema migrated to version {}", v + 1);
  }
  unlock();
  log_->info("PostgreSQL store ready (schema version {}, {} connections)", all.size(), pool_size_);
}

void PostgresStore::stop() {
  pool_.reset();
}

template <typename T, typename F>
core::Result<T> PostgresStore::withConnection(const char* what, bool write, F&& body) {
  if (!pool_) return core::Error{kUnavailable, "the store is not open"};
  auto lease = pool_->borrow(std::chrono::seconds(5));
  if (!lease) return core::Error{kUnavailable, fmt::format("{}: no PostgreSQL connection free within 5 s", what)};
  core::Result<T> r = body(**lease);
  if (!r) {
    core::Error e{r.error().code == pg::kRetry ? std::string("internal") : r.error().code,
                  fmt::format("{} failed: {}", what, r.error().message)};
    if (write) noteWrite(core::Error{e.code, e.message}, what);
    return e;
  }
  if (write) noteWrite(true, what);
  return r;
}

void PostgresStore::noteWrite(const core::Result<bool>& outcome, const char* /*what*/) {
  if (outcome) {
    if (write_failing_.exchange(false)) {
      log_->info("PostgreSQL writes succeed again");
      setHealth(lifecycle::HealthState::Healthy);
    }
    return;
  }
  if (outcome.error().code != kUnavailable) return;
  if (!write_failing_.exchange(true)) {
    log_->error("PostgreSQL writes fail: {}; the server is not ready until a write succeeds", outcome.error().message);
  }
  setHealth(lifecycle::HealthState::Unhealthy, "writes fail: " + outcome.error().message);
}

core::Result<Thread> PostgresStore::createThread(const std::string& user_id, const std::string& title, bool system,
                                                 const std::string& agent, const std::string& on_busy) {
  return withConnection<Thread>("create thread", true, [&](pg::Connection& c) -> core::Result<Thread> {
    Thread t{core::newId("thr"), user_id, title.empty() ? "New thread" : title, core::nowMs(), system, agent, on_busy};
    auto r = c.exec(
        "INSERT INTO threads (id, user_id, title, created_ms, system, agent, on_busy) VALUES ($1,$2,$3,$4,$5,$6,$7)",
        Params{t.id, t.user_id, t.title, str(t.created_ms), system ? "t" : "f", t.agent, t.on_busy});
    if (!r) return r.error();
    return t;
  });
}

core::Result<std::optional<Thread>> PostgresStore::findThread(const std::string& thread_id) {
  return withConnection<std::optional<Thread>>(
      "find thread", false, [&](pg::Connection& c) -> core::Result<std::optional<Thread>> {
        auto r = c.exec("SELECT id, user_id, title, created_ms, system, agent, on_busy FROM threads WHERE id = $1",
                        Params{thread_id});
        if (!r) return r.error();
        if (r->size() == 0) return std::optional<Thread>();
        return std::optional<Thread>(threadRow(*r, 0));
      });
}

core::Result<std::vector<Thread>> PostgresStore::listThreads(const std::string& user_id, int limit,
                                                             const ThreadCursor& before) {
  return withConnection<
      std::vector<Thread>>("list threads", false, [&](pg::Connection& c) -> core::Result<std::vector<Thread>> {
    auto r = c.exec(
        "SELECT id, user_id, title, created_ms, system, agent, on_busy FROM threads WHERE user_id = $1 AND NOT system "
        "AND ($2::bigint = 0 OR (created_ms, id) < ($2::bigint, $3)) ORDER BY created_ms DESC, id DESC LIMIT $4",
        Params{user_id, str(before.created_ms), before.id, str(limit)});
    if (!r) return r.error();
    std::vector<Thread> out;
    for (int i = 0; i < r->size(); ++i) out.push_back(threadRow(*r, i));
    return out;
  });
}

core::Result<int64_t> PostgresStore::countThreads(const std::string& user_id) {
  return withConnection<int64_t>("count threads", false, [&](pg::Connection& c) -> core::Result<int64_t> {
    auto r = c.exec("SELECT count(*) FROM threads WHERE user_id = $1 AND NOT system", Params{user_id});
    if (!r) return r.error();
    return r->integer(0, 0);
  });
}

core::Result<bool> PostgresStore::renameThread(const std::string& thread_id, const std::string& title) {
  return withConnection<bool>("rename thread", true, [&](pg::Connection& c) -> core::Result<bool> {
    auto r = c.exec("UPDATE threads SET title = $2 WHERE id = $1 RETURNING id", Params{thread_id, title});
    if (!r) return r.error();
    return r->size() > 0;
  });
}

core::Result<ThreadDeletion> PostgresStore::deleteThread(const std::string& thread_id, bool force) {
  return withConnection<ThreadDeletion>("delete thread", true, [&](pg::Connection& c) -> core::Result<ThreadDeletion> {
    // One statement, so one snapshot: the thread goes only if no run of it is in progress.
    auto r = c.exec(
        "WITH busy AS (SELECT 1 FROM runs WHERE thread_id = $1 AND NOT $2::boolean LIMIT 1), "
        "m AS (DELETE FROM messages WHERE thread_id = $1 AND NOT EXISTS (SELECT 1 FROM busy)), "
        "r AS (DELETE FROM runs WHERE thread_id = $1 AND NOT EXISTS (SELECT 1 FROM busy)), "
        "a AS (DELETE FROM approvals WHERE thread_id = $1 AND NOT EXISTS (SELECT 1 FROM busy)), "
        "t AS (DELETE FROM threads WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM busy) RETURNING id) "
        "SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM busy)",
        Params{thread_id, force ? "t" : "f"});
    if (!r) return r.error();
    if (r->integer(0, 1) > 0) return ThreadDeletion::Busy;
    return r->integer(0, 0) > 0 ? ThreadDeletion::Deleted : ThreadDeletion::NotFound;
  });
}

core::Result<std::vector<Message>> PostgresStore::listMessages(const std::string& thread_id, int limit,
                                                               int64_t before_ms) {
  return withConnection<std::vector<Message>>(
      "list messages", false, [&](pg::Connection& c) -> core::Result<std::vector<Message>> {
        auto r = c.exec(
            "SELECT id, thread_id, user_id, role, content, run_id, created_ms FROM ("
            " SELECT * FROM messages WHERE thread_id = $1 AND ($2::bigint = 0 OR created_ms < $2::bigint)"
            " ORDER BY created_ms DESC, ord DESC LIMIT $3) m ORDER BY created_ms, ord",
            Params{thread_id, str(before_ms), str(limit)});
        if (!r) return r.error();
        std::vector<Message> out;
        for (int i = 0; i < r->size(); ++i) {
          out.push_back(Message{r->text(i, 0), r->text(i, 1), r->text(i, 2), r->text(i, 3), r->text(i, 4),
                                r->text(i, 5), r->integer(i, 6)});
        }
        return out;
      });
}

core::Result<CommitStats> PostgresStore::commit(const WriteBatch& batch) {
  return withConnection<CommitStats>("commit", true, [&](pg::Connection& c) -> core::Result<CommitStats> {
    // The runs the batch's events are fenced by or end: locked first, in id order, then the
    // streams' heads in user order, so two nodes' batches always lock in one order (no deadlock).
    std::set<std::string> fenced_runs;
    for (const auto& e : batch.events) {
      if (!e.run_id.empty() && (e.requires_run_in_flight || endsRun(e.run_status))) fenced_runs.insert(e.run_id);
    }
    for (int attempt = 1;; ++attempt) {
      auto run = [&]() -> core::Result<CommitStats> {
        CommitStats stats;
        if (auto r = c.exec("BEGIN"); !r) return r.error();
        if (!batch.messages.empty()) {
          std::vector<std::string> id, thread, user, role, content, run_id;
          std::vector<int64_t> created;
          for (const auto& m : batch.messages) {
            id.push_back(m.id);
            thread.push_back(m.thread_id);
            user.push_back(m.user_id);
            role.push_back(m.role);
            content.push_back(m.content);
            run_id.push_back(m.run_id);
            created.push_back(m.created_ms);
          }
          auto r = c.exec(
              "INSERT INTO messages (id, thread_id, user_id, role, content, run_id, created_ms) SELECT * FROM "
              "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])",
              Params{pg::textArray(id), pg::textArray(thread), pg::textArray(user), pg::textArray(role),
                     pg::textArray(content), pg::textArray(run_id), pg::intArray(created)});
          if (!r) return r.error();
        }
        if (!batch.runs.empty()) {
          std::vector<std::string> id, user, thread, agent, node, status;
          std::vector<int64_t> created;
          for (const auto& run : batch.runs) {
            id.push_back(run.id);
            user.push_back(run.user_id);
            thread.push_back(run.thread_id);
            agent.push_back(run.agent);
            node.push_back(run.node_id);
            status.push_back(run.status.empty() ? "queued" : run.status);
            created.push_back(run.created_ms);
          }
          auto r = c.exec(
              "INSERT INTO runs (id, user_id, thread_id, agent, node_id, status, created_ms) SELECT * FROM "
              "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])",
              Params{pg::textArray(id), pg::textArray(user), pg::textArray(thread), pg::textArray(agent),
                     pg::textArray(node), pg::textArray(status), pg::intArray(created)});
          if (!r) return r.error();
        }
        // Which events are stored: a fenced event only while its run is in flight, counting the
        // runs this batch starts (inserted above) and ends (by an earlier event of the batch).
        std::vector<bool> keep(batch.events.size(), true);
        std::map<std::string, int64_t> counts;  // per user: events stored, in user-id order
        if (!fenced_runs.empty()) {
          auto live = c.exec("SELECT id FROM runs WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
                             Params{pg::textArray(std::vector<std::string>(fenced_runs.begin(), fenced_runs.end()))});
          if (!live) return live.error();
          std::set<std::string> in_flight;
          for (int i = 0; i < live->size(); ++i) in_flight.insert(live->text(i, 0));
          for (std::size_t i = 0; i < batch.events.size(); ++i) {
            const auto& e = batch.events[i];
            if (e.requires_run_in_flight && !in_flight.contains(e.run_id)) keep[i] = false;
            if (keep[i] && endsRun(e.run_status)) in_flight.erase(e.run_id);
          }
        }
        for (std::size_t i = 0; i < batch.events.size(); ++i) {
          if (keep[i]) ++counts[batch.events[i].user_id];
        }
        if (!counts.empty()) {
          // The sequencer: each user's head moves by its number of events, in this transaction.
          std::vector<std::string> users, epochs;
          std::vector<int64_t> n;
          for (const auto& [u, k] : counts) {
            users.push_back(u);
            epochs.push_back(core::newId("ep"));
            n.push_back(k);
          }
          auto heads = c.exec(
              "INSERT INTO user_streams (user_id, epoch, head, first_seq, acked_seq) "
              "SELECT u, e, k, 1, 0 FROM unnest($1::text[], $2::text[], $3::bigint[]) AS x(u, e, k) ORDER BY u "
              "ON CONFLICT (user_id) DO UPDATE SET head = user_streams.head + EXCLUDED.head "
              "RETURNING user_id, head, acked_seq",
              Params{pg::textArray(users), pg::textArray(epochs), pg::intArray(n)});
          if (!heads) return heads.error();
          struct Next {
            int64_t seq = 0;
            bool acking = false;
          };
          std::map<std::string, Next> next;
          for (int i = 0; i < heads->size(); ++i) {
            auto u = heads->text(i, 0);
            next[u] = Next{heads->integer(i, 1) - counts[u] + 1, heads->integer(i, 2) > 0};
          }
          std::vector<std::string> user, type, thread, run_id, data, finished;
          std::vector<int64_t> seq, ts;
          for (std::size_t i = 0; i < batch.events.size(); ++i) {
            const auto& e = batch.events[i];
            if (!keep[i]) {
              stats.seqs.push_back(CommitStats::kFenced);
              ++stats.fenced;
              continue;
            }
            auto& nx = next[e.user_id];
            stats.seqs.push_back(nx.seq);
            if (nx.acking) ++stats.appended_acking;
            user.push_back(e.user_id);
            seq.push_back(nx.seq++);
            type.push_back(e.type);
            thread.push_back(e.thread_id);
            run_id.push_back(e.run_id);
            ts.push_back(e.ts_ms);
            data.push_back(e.data_json.empty() ? "{}" : e.data_json);
            if (endsRun(e.run_status)) finished.push_back(e.run_id);
          }
          auto r = c.exec(
              "INSERT INTO events (user_id, seq, type, thread_id, run_id, ts_ms, data) SELECT * FROM "
              "unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[])",
              Params{pg::textArray(user), pg::intArray(seq), pg::textArray(type), pg::textArray(thread),
                     pg::textArray(run_id), pg::intArray(ts), pg::textArray(data)});
          if (!r) return r.error();
          if (!finished.empty()) {
            auto d = c.exec("DELETE FROM runs WHERE id = ANY($1::text[])", Params{pg::textArray(finished)});
            if (!d) return d.error();
          }
        }
        if (!batch.acks.empty()) {
          std::vector<std::string> user;
          std::vector<int64_t> seq;
          for (const auto& [u, s] : batch.acks) {
            user.push_back(u);
            seq.push_back(s);
          }
          // Never backwards, never past the head. `old` is the row as this statement found it.
          auto r = c.exec(
              "UPDATE user_streams us SET acked_seq = GREATEST(us.acked_seq, LEAST(a.s, us.head)) "
              "FROM unnest($1::text[], $2::bigint[]) AS a(u, s), user_streams old "
              "WHERE us.user_id = a.u AND old.user_id = a.u RETURNING old.acked_seq, us.acked_seq",
              Params{pg::textArray(user), pg::intArray(seq)});
          if (!r) return r.error();
          for (int i = 0; i < r->size(); ++i) {
            int64_t before = r->integer(i, 0);
            int64_t moved = std::max<int64_t>(0, r->integer(i, 1) - before);
            stats.newly_acked += moved;
            if (before > 0) stats.acked_acking += moved;
          }
        }
        if (counts.empty()) {  // every event of the batch was fenced
          stats.seqs.assign(batch.events.size(), CommitStats::kFenced);
          stats.fenced = batch.events.size();
        }
        if (auto r = c.exec("COMMIT"); !r) return r.error();
        stats.items = batch.size();
        return stats;
      };
      auto r = run();
      if (r) return r;
      (void)c.exec("ROLLBACK");
      if (r.error().code != pg::kRetry || attempt >= 5) return r.error();
      log_->debug("commit attempt {} hit '{}'; retrying", attempt, r.error().message);
    }
  });
}

core::Result<std::vector<StoredEvent>> PostgresStore::runEvents(const std::string& user_id, const std::string& run_id) {
  return withConnection<std::vector<StoredEvent>>(
      "read a run's events", false, [&](pg::Connection& c) -> core::Result<std::vector<StoredEvent>> {
        auto r = c.exec(
            "SELECT seq, user_id, type, thread_id, run_id, ts_ms, data FROM events WHERE user_id = $1 AND run_id = $2 "
            "ORDER BY seq",
            Params{user_id, run_id});
        if (!r) return r.error();
        std::vector<StoredEvent> out;
        for (int i = 0; i < r->size(); ++i) out.push_back(eventRow(*r, i));
        return out;
      });
}

core::Result<std::vector<StoredEvent>> PostgresStore::threadEvents(const std::string& user_id,
                                                                   const std::string& thread_id) {
  return withConnection<std::vector<StoredEvent>>(
      "read a thread's events", false, [&](pg::Connection& c) -> core::Result<std::vector<StoredEvent>> {
        auto r = c.exec(
            "SELECT seq, user_id, type, thread_id, run_id, ts_ms, data FROM events WHERE user_id = $1 AND "
            "thread_id = $2 ORDER BY seq",
            Params{user_id, thread_id});
        if (!r) return r.error();
        std::vector<StoredEvent> out;
        for (int i = 0; i < r->size(); ++i) out.push_back(eventRow(*r, i));
        return out;
      });
}

core::Result<std::vector<StoredEvent>> PostgresStore::eventsAfter(const std::string& user_id, int64_t after_seq,
                                                                  int limit) {
  return withConnection<std::vector<StoredEvent>>(
      "read events", false, [&](pg::Connection& c) -> core::Result<std::vector<StoredEvent>> {
        auto r = c.exec(
            "SELECT seq, user_id, type, thread_id, run_id, ts_ms, data FROM events WHERE user_id = $1 AND seq > $2 "
            "ORDER BY seq LIMIT $3",
            Params{user_id, str(after_seq), str(limit)});
        if (!r) return r.error();
        std::vector<StoredEvent> out;
        for (int i = 0; i < r->size(); ++i) out.push_back(eventRow(*r, i));
        return out;
      });
}

core::Result<std::vector<std::pair<std::string, int64_t>>> PostgresStore::streamHeads(
    const std::vector<std::string>& users) {
  using Out = std::vector<std::pair<std::string, int64_t>>;
  return withConnection<Out>("read stream heads", false, [&](pg::Connection& c) -> core::Result<Out> {
    auto r =
        c.exec("SELECT user_id, head FROM user_streams WHERE user_id = ANY($1::text[])", Params{pg::textArray(users)});
    if (!r) return r.error();
    Out out;
    for (int i = 0; i < r->size(); ++i) out.emplace_back(r->text(i, 0), r->integer(i, 1));
    return out;
  });
}

core::Result<StreamInfo> PostgresStore::streamInfo(const std::string& user_id) {
  return withConnection<StreamInfo>("read stream", true, [&](pg::Connection& c) -> core::Result<StreamInfo> {
    // A plain read first: an INSERT ... ON CONFLICT on an existing row would wait for a writer
    // holding that row's lock (a commit of this user's events) before answering.
    auto existing =
        c.exec("SELECT epoch, head, first_seq, acked_seq FROM user_streams WHERE user_id = $1", Params{user_id});
    if (!existing) return existing.error();
    if (existing->size() > 0) {
      return StreamInfo{existing->text(0, 0), existing->integer(0, 1), existing->integer(0, 2),
                        existing->integer(0, 3)};
    }
    // Created with a new epoch on first use.
    auto r = c.exec(
        "WITH ins AS (INSERT INTO user_streams (user_id, epoch, head, first_seq, acked_seq) VALUES ($1, $2, 0, 1, 0) "
        "ON CONFLICT (user_id) DO NOTHING RETURNING epoch, head, first_seq, acked_seq) "
        "SELECT epoch, head, first_seq, acked_seq FROM ins UNION ALL "
        "SELECT epoch, head, first_seq, acked_seq FROM user_streams WHERE user_id = $1 LIMIT 1",
        Params{user_id, core::newId("ep")});
    if (!r) return r.error();
    if (r->size() == 0) return core::Error{"internal", "the stream row vanished"};
    return StreamInfo{r->text(0, 0), r->integer(0, 1), r->integer(0, 2), r->integer(0, 3)};
  });
}

core::Result<int64_t> PostgresStore::pruneEvents(const std::string& user_id, int64_t keep_last, int64_t older_than_ms) {
  return withConnection<int64_t>("prune events", true, [&](pg::Connection& c) -> core::Result<int64_t> {
    // One statement: the new first seq (the bound by count, then by age, never past the head), the
    // deletion below it, and the stream row's first_seq.
    auto r = c.exec(
        "WITH s AS (SELECT head, first_seq FROM user_streams WHERE user_id = $1), "
        "b AS (SELECT GREATEST(s.first_seq, s.head - $2::bigint + 1) AS by_count, s.head, s.first_seq FROM s), "
        "y AS (SELECT min(e.seq) AS young FROM events e, b WHERE e.user_id = $1 AND e.seq >= b.by_count "
        "      AND $3::bigint > 0 AND e.ts_ms >= $3::bigint), "
        "f AS (SELECT LEAST(GREATEST(b.by_count, CASE WHEN $3::bigint > 0 THEN coalesce(y.young, b.head) "
        "      ELSE b.by_count END), GREATEST(b.head, 1)) AS first, b.first_seq FROM b, y), "
        "d AS (DELETE FROM events WHERE user_id = $1 AND seq < (SELECT first FROM f) "
        "      AND (SELECT first FROM f) > (SELECT first_seq FROM f)) "
        "UPDATE user_streams SET first_seq = GREATEST(first_seq, (SELECT first FROM f)) WHERE user_id = $1 "
        "RETURNING first_seq",
        Params{user_id, str(keep_last), str(older_than_ms)});
    if (!r) return r.error();
    return r->size() > 0 ? r->integer(0, 0) : int64_t{1};
  });
}

core::Result<std::vector<std::pair<std::string, int64_t>>> PostgresStore::unackedThreadsByUser(int limit) {
  using Out = std::vector<std::pair<std::string, int64_t>>;
  return withConnection<Out>("count unacknowledged threads", false, [&](pg::Connection& c) -> core::Result<Out> {
    auto r = c.exec(
        "SELECT s.user_id, count(DISTINCT e.thread_id) FROM user_streams s JOIN events e "
        "ON e.user_id = s.user_id AND e.seq > s.acked_seq WHERE s.acked_seq > 0 AND s.head > s.acked_seq "
        "GROUP BY s.user_id LIMIT $1",
        Params{str(limit)});
    if (!r) return r.error();
    Out out;
    for (int i = 0; i < r->size(); ++i) out.emplace_back(r->text(i, 0), r->integer(i, 1));
    return out;
  });
}

core::Result<bool> PostgresStore::probeWrite() {
  return withConnection<bool>("write probe", true, [&](pg::Connection& c) -> core::Result<bool> {
    auto r = c.exec(
        "INSERT INTO meta (key, value) VALUES ('write_probe', $1) ON CONFLICT (key) DO UPDATE SET value = "
        "EXCLUDED.value",
        Params{str(core::nowMs())});
    if (!r) return r.error();
    return true;
  });
}

core::Result<std::vector<RunRecord>> PostgresStore::unfinishedRuns(const std::string& node_id) {
  return withConnection<std::vector<RunRecord>>(
      "list unfinished runs", false, [&](pg::Connection& c) -> core::Result<std::vector<RunRecord>> {
        auto r = c.exec(
            "SELECT id, user_id, thread_id, agent, node_id, status, created_ms FROM runs WHERE node_id = $1 "
            "ORDER BY created_ms",
            Params{node_id});
        if (!r) return r.error();
        std::vector<RunRecord> out;
        for (int i = 0; i < r->size(); ++i) {
          out.push_back(RunRecord{r->text(i, 0), r->text(i, 1), r->text(i, 2), r->text(i, 3), r->text(i, 4),
                                  r->text(i, 5), r->integer(i, 6)});
        }
        return out;
      });
}

core::Result<std::optional<RunRecord>> PostgresStore::findRun(const std::string& run_id) {
  return withConnection<std::optional<RunRecord>>(
      "find a run", false, [&](pg::Connection& c) -> core::Result<std::optional<RunRecord>> {
        auto r = c.exec("SELECT id, user_id, thread_id, agent, node_id, status, created_ms FROM runs WHERE id = $1",
                        Params{run_id});
        if (!r) return r.error();
        std::optional<RunRecord> out;
        if (r->size() > 0) {
          out = RunRecord{r->text(0, 0), r->text(0, 1), r->text(0, 2),   r->text(0, 3),
                          r->text(0, 4), r->text(0, 5), r->integer(0, 6)};
        }
        return out;
      });
}

core::Result<bool> PostgresStore::addApproval(const Approval& a) {
  return withConnection<bool>("add an approval", true, [&](pg::Connection& c) -> core::Result<bool> {
    // A run waits for one approval at a time: its earlier ones are behind it (see Store::addApproval).
    auto r = c.exec(
        "WITH old AS (UPDATE approvals SET resumed = true WHERE run_id = $4 AND NOT resumed) "
        "INSERT INTO approvals (" AW_APPROVAL_COLUMNS
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        Params{a.id, a.user_id, a.thread_id, a.run_id, a.tool_call_id, a.tool_name, a.args_json, a.run_state_json,
               a.node_id, a.status, a.reason, a.by, str(a.created_ms), str(a.expires_ms), str(a.resolved_ms),
               a.resumed ? "true" : "false"});
    if (!r) return r.error();
    return true;
  });
}

core::Result<std::optional<Approval>> PostgresStore::findApproval(const std::string& approval_id) {
  return withConnection<std::optional<Approval>>(
      "find an approval", false, [&](pg::Connection& c) -> core::Result<std::optional<Approval>> {
        auto r = c.exec("SELECT " AW_APPROVAL_COLUMNS " FROM approvals WHERE id = $1", Params{approval_id});
        if (!r) return r.error();
        std::optional<Approval> out;
        if (r->size() > 0) out = approvalRow(*r, 0);
        return out;
      });
}

core::Result<std::optional<std::pair<bool, Approval>>> PostgresStore::resolveApproval(const std::string& approval_id,
                                                                                      const std::string& status,
                                                                                      const std::string& reason,
                                                                                      const std::string& by) {
  using Out = std::optional<std::pair<bool, Approval>>;
  return withConnection<Out>("resolve an approval", true, [&](pg::Connection& c) -> core::Result<Out> {
    // The row lock makes the first answer win: a concurrent UPDATE waits, then finds it resolved.
    auto r = c.exec(
        "UPDATE approvals SET status = $2, reason = $3, by = $4, resolved_ms = $5 "
        "WHERE id = $1 AND status = 'pending' RETURNING " AW_APPROVAL_COLUMNS,
        Params{approval_id, status, reason, by, str(core::nowMs())});
    if (!r) return r.error();
    if (r->size() > 0) return Out(std::pair(true, approvalRow(*r, 0)));
    auto q = c.exec("SELECT " AW_APPROVAL_COLUMNS " FROM approvals WHERE id = $1", Params{approval_id});
    if (!q) return q.error();
    if (q->size() == 0) return Out();
    return Out(std::pair(false, approvalRow(*q, 0)));
  });
}

core::Result<std::vector<Approval>> PostgresStore::pendingApprovals(const std::string& user_id) {
  return withConnection<std::vector<Approval>>(
      "list pending approvals", false, [&](pg::Connection& c) -> core::Result<std::vector<Approval>> {
        auto r = c.exec("SELECT " AW_APPROVAL_COLUMNS
                        " FROM approvals WHERE user_id = $1 AND status = 'pending' ORDER BY created_ms, id",
                        Params{user_id});
        if (!r) return r.error();
        std::vector<Approval> out;
        for (int i = 0; i < r->size(); ++i) out.push_back(approvalRow(*r, i));
        return out;
      });
}

core::Result<std::vector<Approval>> PostgresStore::parkedApprovals(const std::string& node_id) {
  return withConnection<std::vector<Approval>>(
      "list parked runs", false, [&](pg::Connection& c) -> core::Result<std::vector<Approval>> {
        auto r = c.exec("SELECT " AW_APPROVAL_COLUMNS
                        " FROM approvals a WHERE a.node_id = $1 AND NOT a.resumed "
                        "AND EXISTS (SELECT 1 FROM runs WHERE runs.id = a.run_id) ORDER BY created_ms, id",
                        Params{node_id});
        if (!r) return r.error();
        std::vector<Approval> out;
        for (int i = 0; i < r->size(); ++i) out.push_back(approvalRow(*r, i));
        return out;
      });
}

core::Result<bool> PostgresStore::markApprovalResumed(const std::string& approval_id) {
  return withConnection<bool>("mark an approval resumed", true, [&](pg::Connection& c) -> core::Result<bool> {
    auto r = c.exec("UPDATE approvals SET resumed = true WHERE id = $1 RETURNING id", Params{approval_id});
    if (!r) return r.error();
    return r->size() > 0;
  });
}

// The database's clock, in ms: leases are compared on one clock whatever the nodes' clocks say.
#define AW_DB_NOW_MS "(extract(epoch from clock_timestamp()) * 1000)::bigint"

core::Result<bool> PostgresStore::acquireLease(const std::string& node_id, int64_t lease_ms) {
  return withConnection<bool>("take the node lease", true, [&](pg::Connection& c) -> core::Result<bool> {
    auto r = c.exec("INSERT INTO nodes (node_id, lease_until_ms) VALUES ($1, " AW_DB_NOW_MS
                    " + $2::bigint) ON CONFLICT (node_id) DO UPDATE SET lease_until_ms = EXCLUDED.lease_until_ms, "
                    "claimed_by = ''",
                    Params{node_id, str(lease_ms)});
    if (!r) return r.error();
    return true;
  });
}

core::Result<bool> PostgresStore::renewLease(const std::string& node_id, int64_t lease_ms) {
  return withConnection<bool>("renew the node lease", true, [&](pg::Connection& c) -> core::Result<bool> {
    // A lease claimed by another node is not renewed: that node is ending this node's runs.
    auto r = c.exec("UPDATE nodes SET lease_until_ms = " AW_DB_NOW_MS
                    " + $2::bigint WHERE node_id = $1 AND claimed_by = '' RETURNING node_id",
                    Params{node_id, str(lease_ms)});
    if (!r) return r.error();
    return r->size() > 0;
  });
}

core::Result<std::vector<std::string>> PostgresStore::claimExpiredLeases(const std::string& claimer, int64_t lease_ms) {
  return withConnection<std::vector<std::string>>(
      "claim expired leases", true, [&](pg::Connection& c) -> core::Result<std::vector<std::string>> {
        auto r = c.exec("UPDATE nodes SET lease_until_ms = " AW_DB_NOW_MS
                        " + $2::bigint, claimed_by = $1 WHERE lease_until_ms < " AW_DB_NOW_MS
                        " AND node_id <> $1 RETURNING node_id",
                        Params{claimer, str(lease_ms)});
        if (!r) return r.error();
        std::vector<std::string> out;
        for (int i = 0; i < r->size(); ++i) out.push_back(r->text(i, 0));
        return out;
      });
}

core::Result<bool> PostgresStore::dropLease(const std::string& node_id) {
  return withConnection<bool>("drop a node lease", true, [&](pg::Connection& c) -> core::Result<bool> {
    auto r = c.exec("DELETE FROM nodes WHERE node_id = $1", Params{node_id});
    if (!r) return r.error();
    return true;
  });
}

#undef AW_DB_NOW_MS

core::Result<bool> PostgresStore::truncateForTest() {
  return withConnection<bool>("truncate", true, [&](pg::Connection& c) -> core::Result<bool> {
    auto r = c.exec("TRUNCATE threads, messages, user_streams, events, runs, meta, nodes");
    if (!r) return r.error();
    return true;
  });
}

core::Result<int64_t> PostgresStore::addTokenUsage(const std::string& user_id, const std::string& day, int64_t tokens) {
  return withConnection<int64_t>("add token usage", true, [&](pg::Connection& c) -> core::Result<int64_t> {
    auto r = c.exec(
        "INSERT INTO token_usage (user_id, day, tokens) VALUES ($1, $2, $3) ON CONFLICT (user_id, day) "
        "DO UPDATE SET tokens = token_usage.tokens + EXCLUDED.tokens RETURNING tokens",
        Params{user_id, day, str(tokens)});
    if (!r) return r.error();
    return r->integer(0, 0);
  });
}

core::Result<int64_t> PostgresStore::pruneHistory(int64_t before_ms, const std::string& before_day) {
  return withConnection<int64_t>(
      "prune resolved approvals and old token counts", true, [&](pg::Connection& c) -> core::Result<int64_t> {
        // One statement, so one transaction: `runs` holds the runs in flight (any node's).
        auto r = c.exec(
            "WITH a AS (DELETE FROM approvals WHERE status <> 'pending' AND resolved_ms < $1::bigint AND "
            "(resumed OR NOT EXISTS (SELECT 1 FROM runs WHERE runs.id = approvals.run_id)) RETURNING 1), "
            "t AS (DELETE FROM token_usage WHERE day < $2 RETURNING 1) "
            "SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM t)",
            Params{str(before_ms), before_day});
        if (!r) return r.error();
        return r->integer(0, 0);
      });
}

core::Result<int64_t> PostgresStore::tokenUsage(const std::string& user_id, const std::string& day) {
  return withConnection<int64_t>("read token usage", false, [&](pg::Connection& c) -> core::Result<int64_t> {
    auto r = c.exec("SELECT tokens FROM token_usage WHERE user_id = $1 AND day = $2", Params{user_id, day});
    if (!r) return r.error();
    return r->size() > 0 ? r->integer(0, 0) : int64_t{0};
  });
}

}  // namespace agentwire::store
