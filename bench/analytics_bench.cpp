// The analytics sink's cost.
//   BM_RecordOnTheHotPath     what a component pays per row: record() into the bounded queue
//   BM_EncodeRowAndGzip       what the pipeline thread pays per row: JSON line + gzip share
//   BM_IngestToClickHouse     rows per second through the whole pipeline into a real ClickHouse
//                             (AW_CLICKHOUSE_URL=http://127.0.0.1:PORT; skipped without it)
//
//   build/analytics_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include "analytics/clickhouse/clickhouse_sink.hpp"
#include "analytics/pipeline.hpp"
#include "analytics/spool.hpp"

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

namespace {

using namespace agentwire::analytics;

Record sampleRow(int64_t i) {
  Record r;
  r.kind = "event_delivered";
  r.user_id = "user_" + std::to_string(i % 1000);
  r.thread_id = "thr_5f1c0a9e3b7d2c41";
  r.run_id = "run_0a9e3b7d2c415f1c";
  r.event_type = "agent_thinking";
  r.seq = i;
  r.latency_us = 850;
  r.count = 1;
  return r;
}

// A sink that stores nothing: isolates the pipeline's own cost.
class NullSink final : public AnalyticsSink {
 public:
  SendResult ensureSchema() override { return {}; }
  SendResult insert(const Batch&) override { return {}; }
  SendResult contains(const Batch&, bool& found) override {
    found = false;
    return {};
  }
  std::string describe() const override { return "null"; }
};

std::filesystem::path tempSpool(int thread = 0) {
  auto p = std::filesystem::temp_directory_path() /
           ("aw-bench-spool-" + std::to_string(::getpid()) + "-" + std::to_string(thread));
  std::filesystem::create_directories(p);
  return p;
}

void BM_RecordOnTheHotPath(benchmark::State& state) {
  NullSink sink;
  Spool spool(tempSpool(state.thread_index()), 1 << 30);
  spool.open();
  Pipeline::Options o;
  o.queue_max = 1 << 24;
  Pipeline p(sink, spool, o);
  p.start();
  int64_t i = 0;
  for (auto _ : state) p.record(sampleRow(i++));
  p.stop();
  state.SetItemsProcessed(state.iterations());
  std::error_code ec;
  std::filesystem::remove_all(spool.dir(), ec);
}
BENCHMARK(BM_RecordOnTheHotPath)->Threads(1)->Threads(2);

void BM_EncodeRowAndGzip(benchmark::State& state) {
  const int rows = 5000;
  std::vector<Record> batch;
  for (int i = 0; i < rows; ++i) batch.push_back(sampleRow(i));
  for (auto _ : state) {
    std::string body;
    for (int i = 0; i < rows; ++i) {
      body += Pipeline::toJsonRow(batch[i], "node-1", "b-1", i);
      body += '\n';
    }
    benchmark::DoNotOptimize(gzipCompress(body));
  }
  state.SetItemsProcessed(state.iterations() * rows);
}
BENCHMARK(BM_EncodeRowAndGzip)->Unit(benchmark::kMillisecond);

void BM_IngestToClickHouse(benchmark::State& state) {
  const char* url = std::getenv("AW_CLICKHOUSE_URL");
  if (url == nullptr) {
    state.SkipWithError("set AW_CLICKHOUSE_URL to a ClickHouse HTTP endpoint");
    return;
  }
  ClickHouseSink sink(
      ClickHouseSink::Options{url, "bench", "", "", std::chrono::milliseconds(1000), std::chrono::milliseconds(30000)});
  Spool spool(tempSpool(), 1ull << 32);
  spool.open();
  Pipeline::Options o;
  o.queue_max = 1 << 24;
  o.node = "bench";
  Pipeline p(sink, spool, o);
  if (p.start().status != SendStatus::Ok) {
    state.SkipWithError("ClickHouse did not answer");
    return;
  }
  const int64_t rows = state.range(0);
  int64_t i = 0;
  for (auto _ : state) {
    uint64_t target = p.stats().inserted.load() + rows;
    for (int64_t n = 0; n < rows; ++n) p.record(sampleRow(i++));
    while (p.stats().inserted.load() < target) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  p.stop();
  state.SetItemsProcessed(state.iterations() * rows);
  std::error_code ec;
  std::filesystem::remove_all(spool.dir(), ec);
}
BENCHMARK(BM_IngestToClickHouse)->Arg(200000)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
