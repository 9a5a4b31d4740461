#include "core/options_check.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <utility>

#include "flightlog/error.hpp"
#include "format/json.hpp"

namespace flightlog::detail {

namespace {

void require(bool ok, const char* option, const std::string& rule) {
  if (!ok) throw Error(std::string("invalid option ") + option + ": " + rule);
}

std::string n(std::size_t v) {
  return std::to_string(v);
}

bool has_control(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7F) return true;
  }
  return false;
}

bool is_identifier(std::string_view s) {
  if (s.empty() || s.size() > 200) return false;
  for (unsigned char c : s) {
    if (std::isalnum(c) == 0 && c != '_' && c != '.') return false;
  }
  return true;
}

}  // namespace

void validate_options(const Options& o) {
  using namespace std::chrono;
  require(!o.enable_offline || !o.offline_dir.empty(), "offline_dir",
          "is empty; give the journal a directory");
  require(o.enable_offline || !o.endpoint.empty(), "enable_offline",
          "false (memory only) needs an endpoint to ship to");
  // The endpoint's URL is checked by parse_endpoint() when the uploader starts.
  require(!has_control(o.api_key), "api_key",
          "contains a control character (it is sent in an HTTP header)");
  require(is_identifier(o.clickhouse_table), "clickhouse_table",
          "must be a table name of letters, digits, '_' and '.'");
  require(!o.clickhouse_user.empty() && !has_control(o.clickhouse_user), "clickhouse_user",
          "must be a non-empty name without control characters");
  require(o.upload_format == UploadFormat::Ndjson || o.upload_format == UploadFormat::ClickHouse,
          "upload_format", "is not an UploadFormat value");
  require(o.upload_batch_max_records >= 1 &&
              o.upload_batch_max_records <= Options::kMaxUploadBatchRecords,
          "upload_batch_max_records",
          "must be between 1 and " + n(Options::kMaxUploadBatchRecords) + ", got " +
              n(o.upload_batch_max_records));
  require(o.upload_batch_max_bytes >= 1024 && o.upload_batch_max_bytes <= (std::size_t{256} << 20),
          "upload_batch_max_bytes",
          "must be between 1 KiB and 256 MiB, got " + n(o.upload_batch_max_bytes));
  require(o.max_attempts >= 1 && o.max_attempts <= 100, "max_attempts",
          "must be between 1 and 100");
  require(o.backoff_base >= milliseconds(1) && o.backoff_base <= o.backoff_cap, "backoff_base",
          "must be at least 1 ms and at most backoff_cap");
  require(o.backoff_cap <= hours(24), "backoff_cap", "must be at most 24 h");
  for (auto [t, name] : {std::pair{o.connect_timeout, "connect_timeout"},
                         std::pair{o.handshake_timeout, "handshake_timeout"},
                         std::pair{o.request_timeout, "request_timeout"},
                         std::pair{o.shutdown_timeout, "shutdown_timeout"}}) {
    require(t >= milliseconds(1) && t <= minutes(10), name, "must be between 1 ms and 10 min");
  }
  require(o.offline_sync_interval > seconds(0) && o.offline_sync_interval <= hours(24 * 7),
          "offline_sync_interval", "must be between 1 s and 7 days");
  require(o.offline_max_queue_size <= 1'000'000'000'000ULL, "offline_max_queue_size",
          "must be at most 10^12 records (0 = unlimited)");
  for (auto policy : o.full_policy) {
    require(policy == FullPolicy::Drop || policy == FullPolicy::Block, "full_policy",
            "each entry must be FullPolicy::Drop or FullPolicy::Block");
  }
  require(o.max_record_bytes >= 64 && o.max_record_bytes <= (std::size_t{64} << 10),
          "max_record_bytes", "must be between 64 B and 64 KiB, got " + n(o.max_record_bytes));
  require(o.max_producer_threads >= 1 && o.max_producer_threads <= 256, "max_producer_threads",
          "must be between 1 and 256 (each takes about 1 MiB of queue), got " +
              n(o.max_producer_threads));
  require(o.clock_source == ClockSource::Precise || o.clock_source == ClockSource::Cached,
          "clock_source", "is not a ClockSource value");
  require(o.durability == Durability::Full || o.durability == Durability::NoMetaSync ||
              o.durability == Durability::Periodic || o.durability == Durability::None,
          "durability", "is not a Durability value");
  require(o.batch_max_records >= 1 && o.batch_max_records <= 1'000'000, "batch_max_records",
          "must be between 1 and 1000000, got " + n(o.batch_max_records));
  require(o.batch_max_delay > microseconds(0) && o.batch_max_delay <= seconds(10),
          "batch_max_delay", "must be between 1 us and 10 s");
  require(o.min_commit_interval >= microseconds(0) && o.min_commit_interval <= seconds(10),
          "min_commit_interval", "must be between 0 and 10 s");
  require(o.writer_poll_interval > microseconds(0) && o.writer_poll_interval <= seconds(1),
          "writer_poll_interval", "must be between 1 us and 1 s");
  require(o.periodic_sync_interval > milliseconds(0) && o.periodic_sync_interval <= hours(1),
          "periodic_sync_interval", "must be between 1 ms and 1 h");
  require(o.journal_initial_bytes >= (std::size_t{1} << 20), "journal_initial_bytes",
          "must be at least 1 MiB, got " + n(o.journal_initial_bytes));
  require(o.journal_max_bytes >= o.journal_initial_bytes, "journal_max_bytes",
          "must be at least journal_initial_bytes");
  require(o.journal_max_bytes <= (std::size_t{1} << 40), "journal_max_bytes",
          "must be at most 1 TiB, got " + n(o.journal_max_bytes));
  const long cpus = sysconf(_SC_NPROCESSORS_CONF);
  for (unsigned cpu : o.background_cpus) {
    require(cpu < CPU_SETSIZE && static_cast<long>(cpu) < cpus, "background_cpus",
            "CPU " + n(cpu) + " does not exist (this machine has CPUs 0-" +
                std::to_string(cpus - 1) + ")");
  }
}

void validate_schema_names(const std::vector<std::string>& inputs,
                           const std::vector<std::string>& outputs) {
  if (inputs.size() > 255 || outputs.size() > 255) {
    throw Error("schema: at most 255 input and 255 output names");
  }
  for (const auto* side : {&inputs, &outputs}) {
    for (auto name = side->begin(); name != side->end(); ++name) {
      if (name->size() > 255) {
        throw Error("schema: field name of " + std::to_string(name->size()) +
                    " bytes is over the 255-byte limit");
      }
      if (std::find(side->begin(), name, *name) != name) {
        std::string quoted;
        append_json_string(quoted, *name);
        throw Error(std::string("schema: ") + (side == &inputs ? "input" : "output") + " name " +
                    quoted + " appears more than once");
      }
    }
  }
}

}  // namespace flightlog::detail
