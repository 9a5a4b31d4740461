// The demo's SQL to a ClickHouse server (--clickhouse): create the record table if it
// is missing, and count afterwards which of this run's records arrived. Queries go over
// the same HTTPS interface, with the library's own HTTPS client and the same CA and
// credentials as the uploader; the password travels in a header and is never printed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace flightlog::detail {
class HttpsClient;
}

namespace flightlog::demo {

struct ClickHouseCount {
  std::uint64_t unique_ids = 0;
  std::uint64_t rows = 0;  // duplicates included, until ClickHouse merges them away
};

class ClickHouse {
 public:
  // Throws flightlog::Error for a bad URL or CA file.
  ClickHouse(const std::string& url, std::string user, std::string password,
             const std::filesystem::path& ca_file);
  ~ClickHouse();
  ClickHouse(const ClickHouse&) = delete;
  ClickHouse& operator=(const ClickHouse&) = delete;

  // The answer's body. Throws std::runtime_error with the status and ClickHouse's message
  // (never the password) for anything but 200.
  std::string run(const std::string& query);

  // CREATE TABLE IF NOT EXISTS, with the README's columns: a ReplacingMergeTree ordered
  // by id, so re-sent records collapse.
  void create_table(const std::string& table);

  // Rows of this journal's records with seq >= first_seq.
  ClickHouseCount count(const std::string& table, const std::string& journal_id,
                        std::uint64_t first_seq);

 private:
  std::string user_;
  std::string password_;
  std::unique_ptr<detail::HttpsClient> client_;
};

}  // namespace flightlog::demo
