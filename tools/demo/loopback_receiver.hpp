// The demo's upload endpoint on loopback: down until start(), then the tests' TLS
// receiver (tests/support/tls_receiver.hpp) behind a PortRelay on the endpoint's port.
//
// It answers every request 200 and reads each NDJSON line's id and priority as it
// arrives, keeping the order in which records first arrived, so the demo can check that
// every accepted record arrived exactly where the backlog said it should: once, and
// CRITICAL before HIGH before NORMAL before LOW.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "flightlog/value.hpp"
#include "port_relay.hpp"

namespace flightlog::test {
class TlsReceiver;
}

namespace flightlog::demo {

struct Arrival {
  std::uint64_t seq = 0;
  Priority priority = Priority::Normal;
  std::chrono::steady_clock::time_point at;
};

struct ReceiverTally {
  std::vector<Arrival> first_arrivals;  // of this journal's records, in arrival order
  std::uint64_t lines = 0;              // records received, duplicates included
  std::uint64_t duplicates = 0;         // lines whose id had arrived before
  std::uint64_t foreign = 0;            // lines of another journal, or unreadable
  std::uint64_t requests = 0;
  std::uint64_t wire_bytes = 0;
};

class LoopbackReceiver {
 public:
  // Reserves the port. Throws std::runtime_error when it cannot.
  LoopbackReceiver();
  ~LoopbackReceiver();
  LoopbackReceiver(const LoopbackReceiver&) = delete;
  LoopbackReceiver& operator=(const LoopbackReceiver&) = delete;

  std::string url() const;  // https://127.0.0.1:<port>/ingest
  // Writes the CA that signed the receiver's certificate (made at run time) to `path`,
  // for Options::ca_file.
  void write_ca(const std::filesystem::path& path) const;
  // Only lines whose id starts with "<journal_id>-" count as this run's.
  void expect_journal(std::string journal_id);

  void start();  // the receiver comes up: connections are accepted from now on
  void stop();   // and go down (idempotent)
  bool up() const { return up_; }
  std::chrono::steady_clock::time_point started_at() const { return started_at_; }

  // A copy of what has arrived so far (stop() first for the final figures).
  ReceiverTally tally() const;

 private:
  void take(std::string_view body, std::size_t wire_bytes);

  PortRelay relay_;
  std::unique_ptr<test::TlsReceiver> receiver_;
  std::string id_prefix_;
  bool up_ = false;
  std::chrono::steady_clock::time_point started_at_;

  mutable std::mutex mu_;
  ReceiverTally tally_;
  std::unordered_set<std::uint64_t> seen_;
};

}  // namespace flightlog::demo
